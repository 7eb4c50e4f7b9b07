"""The proposal file formats DataBright reads, one module each, and which suffix goes to which.

* ``.npz`` (:mod:`~databright.storage.formats.npz`): arrays ``X`` and ``y``, never unpickled;
* ``.csv`` (:mod:`~databright.storage.formats.csv`): UTF-8, a ``label`` column or the last one;
* ``.parquet`` or ``.pq`` (:mod:`~databright.storage.formats.parquet`): a ``label`` column.

**Rows.** ``row N`` in a message is the N-th example of the file, counting from 1, whatever the
format. A reader takes ``(path, schema, problems)``, refuses through ``problems.fatal`` what
makes the file unusable as a whole (wrong columns, wrong shape, too many examples), and returns
the file's values unconverted, as :class:`~databright.storage.examples.RawExamples`, for the
checks of :func:`~databright.storage.proposal.read_proposal`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final, TypeAlias

from databright.storage.examples import RawExamples
from databright.storage.formats.csv import read_csv
from databright.storage.formats.npz import read_npz, read_npz_arrays
from databright.storage.formats.parquet import read_parquet
from databright.storage.problems import Problems
from databright.storage.schema import DatasetSchema

__all__ = [
    "READERS",
    "SUPPORTED_FORMATS",
    "Reader",
    "read_csv",
    "read_npz",
    "read_npz_arrays",
    "read_parquet",
]

Reader: TypeAlias = Callable[[Path, DatasetSchema, Problems], RawExamples]

SUPPORTED_FORMATS: Final = (".npz", ".csv", ".parquet")
READERS: Final[Mapping[str, Reader]] = {
    ".npz": read_npz,
    ".csv": read_csv,
    ".parquet": read_parquet,
    ".pq": read_parquet,
}
