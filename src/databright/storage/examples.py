"""A proposal's examples before their checks (:class:`RawExamples`) and after
(:class:`Examples`), and the shape and count rules that every format shares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from databright.storage.problems import Problems
from databright.storage.schema import DatasetSchema

__all__ = ["Examples", "RawExamples", "check_count", "check_structure", "indexed_feature_names"]


@dataclass(frozen=True, eq=False)
class Examples:
    """Validated examples, ready to store: arrays in the dataset's dtype and their hashes.

    ``X`` is ``(n, *feature_shape)`` in the schema dtype (little-endian); ``y`` is int64 (integer
    class labels), ``<U`` strings (string class labels) or float64 (regression targets);
    ``hashes`` is ``(n, 32)`` uint8, row ``i`` the hash of example ``i``. The arrays are
    read-only: an ``Examples`` is what was checked, so it must not change afterwards.
    """

    X: npt.NDArray[Any]
    y: npt.NDArray[Any]
    hashes: npt.NDArray[np.uint8]
    source: str = "<arrays>"

    def __post_init__(self) -> None:
        for array in (self.X, self.y, self.hashes):
            array.flags.writeable = False

    def __len__(self) -> int:
        return len(self.y)

    def hash(self, index: int) -> bytes:
        """The 32-byte hash of example ``index``."""
        return bytes(self.hashes[index])

    def hash_list(self) -> list[bytes]:
        """All example hashes as ``bytes``, e.g. to extend a dataset's set of known hashes."""
        return self.hashes.view("V32").reshape(len(self.hashes)).tolist()  # type: ignore[no-any-return]

    @property
    def nbytes(self) -> int:
        """Size of the feature and label arrays in memory."""
        return int(self.X.nbytes + self.y.nbytes)


class RawExamples(NamedTuple):
    """A proposal's values as its file holds them, before the dtype rules
    (:mod:`databright.storage.dtypes`) and the duplicate check.

    ``features`` is one ``(n, ...)`` array (``.npz``, arrays in memory) or one array per feature
    column (CSV, Parquet); ``labels`` holds the ``n`` labels; ``feature_name(k)`` names feature
    ``k`` (0-based, flat) in messages; ``empty`` marks the feature cells that were blank in the
    file (their value in ``features`` is a placeholder), or is ``None`` when none were.
    """

    features: npt.NDArray[Any] | list[npt.NDArray[Any]]
    labels: npt.NDArray[Any]
    feature_name: Callable[[int], str]
    empty: npt.NDArray[np.bool_] | None = None


def check_count(n: int, schema: DatasetSchema, problems: Problems) -> None:
    """Refuse a proposal of no examples, or of more than the dataset takes at once."""
    if n == 0:
        problems.fatal("contains no examples")
    if n > schema.max_examples:
        problems.fatal(
            f"has {n} examples, more than the {schema.max_examples} this dataset accepts in one "
            "proposal; split it into several proposals"
        )


def check_structure(
    x_shape: tuple[int, ...],
    x_dtype: np.dtype[Any],
    y_shape: tuple[int, ...],
    schema: DatasetSchema,
    problems: Problems,
) -> None:
    """Refuse arrays whose shapes or feature dtype cannot hold this dataset's examples.

    Needs only the shapes and dtype, so an ``.npz`` is checked on its headers alone.
    """
    if len(x_shape) < 1:
        problems.fatal("X is a scalar; it must hold one row of features per example")
    n = x_shape[0]
    if len(y_shape) != 1 or y_shape[0] != n:
        problems.fatal(
            f"y has shape {y_shape}; it must be a 1-D array with one label per example "
            f"(X has {n} examples)"
        )
    per_example = tuple(x_shape[1:])
    if per_example not in (schema.feature_shape, (schema.n_features,)) and not (
        schema.feature_shape == () and per_example in ((), (1,))
    ):
        problems.fatal(
            f"X holds examples of shape {per_example}; this dataset's examples have shape "
            f"{schema.feature_shape}"
        )
    if x_dtype.kind not in "biuf":
        problems.fatal(
            f"X has dtype {x_dtype}; features must be numbers (the dataset stores {schema.dtype})"
        )
    check_count(n, schema, problems)


def indexed_feature_names(shape: Sequence[int]) -> Callable[[int], str]:
    """Features named by index within the example: ``feature 4``, ``feature (2, 3)``."""

    def name_of(flat: int) -> str:
        if len(shape) <= 1:
            return f"feature {flat}"
        return f"feature {tuple(int(i) for i in np.unravel_index(flat, tuple(shape)))}"

    return name_of
