"""``.parquet`` proposal files: one numeric column per feature in file order, plus a column
named ``label``. Features are named by column (``column 'pixel_5'``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from databright.storage.examples import RawExamples, check_count
from databright.storage.formats.columns import numeric_columns
from databright.storage.problems import Problems
from databright.storage.schema import DatasetSchema

__all__ = ["read_parquet"]


def read_parquet(path: Path, schema: DatasetSchema, problems: Problems) -> RawExamples:
    """The values of a Parquet proposal file, as it holds them (see the module docs)."""
    try:
        parquet = pq.ParquetFile(path)
        arrow_schema = parquet.schema_arrow
        n = parquet.metadata.num_rows
    except (pa.ArrowException, OSError, ValueError) as exc:
        problems.fatal(f"is not a readable Parquet file ({exc})")
    names = list(arrow_schema.names)
    if names.count("label") != 1:
        problems.fatal(
            "has no column named 'label'; put each example's label in a column named 'label'"
            if "label" not in names
            else "has more than one column named 'label'"
        )
    feature_cols = [j for j, name in enumerate(names) if name != "label"]
    if len(feature_cols) != schema.n_features:
        problems.fatal(
            f"has {len(feature_cols)} feature columns; this dataset's examples have "
            f"{schema.n_features} values (shape {schema.feature_shape})"
        )
    for j in feature_cols:
        t = arrow_schema.field(j).type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            problems.fatal(f"column {names[j]!r} has type {t}; feature columns must hold numbers")
    check_count(n, schema, problems)
    try:
        table = parquet.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        problems.fatal(f"is a damaged Parquet file ({exc})")
    columns, empty = numeric_columns(table, feature_cols)
    label = table.column(names.index("label"))
    if pa.types.is_dictionary(label.type):
        label = label.cast(label.type.value_type)
    if label.null_count:
        rows = np.flatnonzero(label.is_null().to_numpy(zero_copy_only=False))
        problems.add_rows(rows, lambda r: "label is empty")
        label = pc.fill_null(label, "" if pa.types.is_string(label.type) else 0)
    y_src = label.to_numpy(zero_copy_only=False)

    def name_of(k: int) -> str:
        return f"column {names[feature_cols[k]]!r}"

    return RawExamples(columns, y_src, name_of, empty)
