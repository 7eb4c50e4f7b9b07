"""The columnar formats (CSV, Parquet), read through Arrow: numeric columns to numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["numeric_columns"]


def numeric_columns(
    table: pa.Table, indices: list[int]
) -> tuple[list[npt.NDArray[Any]], npt.NDArray[np.bool_] | None]:
    """The given columns as numpy arrays, blanks filled with 0 and marked in ``empty``."""
    columns: list[npt.NDArray[Any]] = []
    empty: npt.NDArray[np.bool_] | None = None
    for k, j in enumerate(indices):
        column = table.column(j)
        if column.null_count:
            if empty is None:
                empty = np.zeros((table.num_rows, len(indices)), dtype=bool)
            empty[:, k] = column.is_null().to_numpy(zero_copy_only=False)
            column = pc.fill_null(column, 0)
        columns.append(column.to_numpy())
    return columns, empty
