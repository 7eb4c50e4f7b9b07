"""Reading a contributor's proposal file and checking it against the dataset's schema.

Nothing is stored until a file passes every check, and nothing untrusted is ever unpickled. The
checks, in the order they run, each live with what they know about:

* the file's format (:mod:`databright.storage.formats`: ``.npz``, ``.csv``, ``.parquet``),
  which also says how rows and features are named in messages;
* the shape and number of the examples (:mod:`databright.storage.examples`);
* every value's conversion to the dataset dtype, with no silent loss, and every label against
  the label set (:mod:`databright.storage.dtypes`);
* duplicates, here.

**Duplicates.** After the value checks pass, every example is hashed
(:mod:`databright.storage.hashing`) and refused if its hash is in ``known_hashes`` (already in
the dataset) or appeared earlier in the same file.

All problems (up to ``max_problems``, in file order, one per row) are collected into one
:class:`ProposalRejected`, whose message is the first of them, e.g.
``digits_part3.csv row 17: label 11 is not in the dataset's label set {0..9}``.
"""

from __future__ import annotations

from collections.abc import Container
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from databright.storage.dtypes import assemble_columns, convert_labels, convert_values
from databright.storage.examples import (
    Examples,
    RawExamples,
    check_structure,
    indexed_feature_names,
)
from databright.storage.formats import READERS, SUPPORTED_FORMATS
from databright.storage.hashing import example_hashes
from databright.storage.problems import Problems
from databright.storage.schema import DatasetSchema

__all__ = ["SUPPORTED_FORMATS", "Examples", "read_proposal", "validate_examples"]

_DEFAULT_MAX_PROBLEMS: Final = 20


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"


def read_proposal(
    path: str | Path,
    schema: DatasetSchema,
    *,
    known_hashes: Container[bytes] | None = None,
    max_problems: int = _DEFAULT_MAX_PROBLEMS,
) -> Examples:
    """Read a proposal file and check every example against ``schema``.

    ``known_hashes`` holds the example hashes already in the dataset (a ``set`` of 32-byte
    ``bytes``). Returns the validated :class:`Examples`; raises :class:`ProposalRejected`
    (an ``InvalidProposal``) listing what is wrong, and stores nothing either way.
    """
    file = Path(path)
    problems = Problems(file.name, max_problems)
    try:
        size = file.stat().st_size
    except FileNotFoundError:
        problems.fatal("does not exist")
    except OSError as exc:
        problems.fatal(f"cannot be read ({exc.strerror or exc})")
    if not file.is_file():
        problems.fatal("is not a regular file")
    if size == 0:
        problems.fatal("is empty")
    if size > schema.max_file_bytes:
        problems.fatal(
            f"is {_size(size)}, more than the {_size(schema.max_file_bytes)} this dataset "
            "accepts in one file; split it into several proposals"
        )
    suffix = file.suffix.lower()
    reader = READERS.get(suffix)
    if reader is None:
        problems.fatal(
            f"has the unsupported format {suffix or '(no extension)'!r}; DataBright reads "
            f"{', '.join(SUPPORTED_FORMATS)}"
        )
    try:
        raw = reader(file, schema, problems)
    except OSError as exc:  # permissions, I/O errors: the file is there but unreadable
        problems.fatal(f"cannot be read ({exc.strerror or exc})")
    return _checked_examples(raw, schema, problems, known_hashes)


def validate_examples(
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    schema: DatasetSchema,
    *,
    source: str = "<arrays>",
    known_hashes: Container[bytes] | None = None,
    max_problems: int = _DEFAULT_MAX_PROBLEMS,
) -> Examples:
    """Check in-memory arrays as :func:`read_proposal` checks a file (same rules, same messages).

    ``source`` names the arrays in messages. Raises :class:`ProposalRejected`.
    """
    problems = Problems(source, max_problems)
    X_arr = np.asarray(X)
    y_arr = np.asarray(y)
    if X_arr.dtype.hasobject or (y_arr.dtype.hasobject and not schema.string_labels):
        problems.fatal("holds Python objects; pass numeric arrays (and str arrays for labels)")
    check_structure(X_arr.shape, X_arr.dtype, y_arr.shape, schema, problems)
    raw = RawExamples(X_arr, y_arr, indexed_feature_names(schema.feature_shape))
    return _checked_examples(raw, schema, problems, known_hashes)


def _checked_examples(
    raw: RawExamples,
    schema: DatasetSchema,
    problems: Problems,
    known_hashes: Container[bytes] | None,
) -> Examples:
    """The dtype rules, then duplicates: ``raw`` as :class:`Examples`, or every problem."""
    n = len(raw.labels)
    if isinstance(raw.features, list):
        X2 = assemble_columns(raw.features, schema.np_dtype, problems, raw.feature_name, raw.empty)
    else:
        X2 = convert_values(
            raw.features.reshape(n, -1), schema.np_dtype, problems, raw.feature_name, raw.empty
        )
    y = convert_labels(raw.labels, schema, problems)
    problems.raise_if_any()  # duplicates are only meaningful among well-formed examples
    X = np.ascontiguousarray(X2.reshape((n, *schema.feature_shape)))
    hashes = example_hashes(X, y)
    keys: list[bytes] = hashes.view("V32").reshape(n).tolist()
    if known_hashes is not None:
        for i, key in enumerate(keys):
            if key in known_hashes:
                problems.add(
                    i + 1,
                    f"this example is already in the dataset (example hash {key.hex()[:16]}...)",
                )
    if len(set(keys)) != n:
        first: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            j = first.setdefault(key, i)
            if j != i:
                problems.add(i + 1, f"this example repeats row {j + 1} (same features and label)")
    problems.raise_if_any()
    return Examples(X=X, y=y, hashes=hashes, source=problems.source)
