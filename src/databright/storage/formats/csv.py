"""``.csv`` proposal files.

UTF-8, comma-separated; if the first line has a cell ``label`` it is a header and that column
holds the label (any position), otherwise there is no header and the last column is the label;
the other columns are the features in file order (C order of ``feature_shape``). Row ``N`` is
the N-th data line (the header and blank lines are not counted); features are named by column
(``column 'pixel_5'``, or ``column 3`` counting from 1 without a header).

Arrow parses the file in one pass; only when it refuses the file is the file read again, line by
line, to say which rows are wrong.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from databright.storage.examples import RawExamples, check_count
from databright.storage.formats.columns import numeric_columns
from databright.storage.problems import Problems
from databright.storage.schema import DatasetSchema

__all__ = ["read_csv"]

_CSV_BLOCK: Final = 1 << 24


_INT_TEXT: Final = re.compile(r"-?[0-9]+")


def _is_number(cell: str) -> bool:
    if "_" in cell:
        return False
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_csv(path: Path, schema: DatasetSchema, problems: Problems) -> RawExamples:
    """The values of a CSV proposal file, as it holds them (see the module docs)."""
    with open(path, "rb") as f:
        first = f.readline()
    try:
        first_text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.fatal("is not UTF-8 text; save the CSV file as UTF-8")
    try:
        cells = next(csv.reader([first_text.rstrip("\r\n")]), [])
    except csv.Error as exc:  # e.g. a cell over the csv module's field limit
        problems.fatal(f"its first line cannot be read as CSV ({exc}); is it a CSV file?")
    if not cells:
        problems.fatal(
            "starts with a blank line; the first line must be the header or the first example"
        )
    stripped = [c.strip() for c in cells]
    has_header = "label" in stripped
    if has_header:
        if stripped.count("label") > 1:
            problems.fatal("has more than one column named 'label'")
        label_col = stripped.index("label")
    else:
        if any(not _is_number(c) for c in cells[:-1]):
            problems.fatal(
                "has a header row without a 'label' column; name the label column 'label', or "
                "remove the header and put the label in the last column"
            )
        label_col = len(cells) - 1
    n_cols = len(cells)
    if n_cols == 1 and schema.n_features > 0:
        used = next((sep for sep in (";", "\t", "|") if sep in cells[0]), None)
        if used is not None:
            shown = "a tab" if used == "\t" else repr(used)
            problems.fatal(
                f"separates its columns with {shown}; DataBright reads comma-separated CSV: "
                "save it with commas"
            )
    feature_cols = [j for j in range(n_cols) if j != label_col]
    if len(feature_cols) != schema.n_features:
        problems.fatal(
            f"has {len(feature_cols)} feature columns; this dataset's examples have "
            f"{schema.n_features} values (shape {schema.feature_shape})"
        )

    def column_name(j: int) -> str:
        return f"column {stripped[j]!r}" if has_header else f"column {j + 1}"

    dst = schema.np_dtype
    if dst.name == "int64":
        feature_type = pa.int64()
    elif dst.name == "uint64":
        feature_type = pa.uint64()
    else:  # float64 holds every value of the other dtypes exactly
        feature_type = pa.float64()
    label_type = pa.string() if schema.string_labels else pa.float64()
    names = [f"c{j}" for j in range(n_cols)]
    types = {names[j]: feature_type for j in feature_cols}
    types[names[label_col]] = label_type
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1 if has_header else 0, block_size=_CSV_BLOCK
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                null_values=[""],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        _diagnose_csv(
            path, has_header, n_cols, feature_cols, label_col, column_name, schema, problems
        )
        problems.fatal(f"cannot be read as CSV ({exc})")
    except (pa.ArrowException, OSError) as exc:
        problems.fatal(f"cannot be read as CSV ({exc})")

    n = table.num_rows
    check_count(n, schema, problems)
    columns, empty = numeric_columns(table, feature_cols)
    label = table.column(label_col)
    if label.null_count:
        rows = np.flatnonzero(label.is_null().to_numpy(zero_copy_only=False))
        problems.add_rows(rows, lambda r: "label is empty")
        label = pc.fill_null(label, 0)
    y_src = label.to_numpy(zero_copy_only=False)

    def name_of(k: int) -> str:
        return column_name(feature_cols[k])

    return RawExamples(columns, y_src, name_of, empty)


def _diagnose_csv(
    path: Path,
    has_header: bool,
    n_cols: int,
    feature_cols: list[int],
    label_col: int,
    column_name: Callable[[int], str],
    schema: DatasetSchema,
    problems: Problems,
) -> None:
    """Find the rows pyarrow refused (it does not say which): the slow path, errors only."""
    integer_features = schema.np_dtype.name in ("int64", "uint64")
    described = schema.describe_labels() if schema.task == "classification" else ""
    found = 0
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            records = csv.reader(f)
            row = 0
            for i, cells in enumerate(records):
                if (i == 0 and has_header) or not cells:
                    continue
                row += 1
                message = _csv_row_problem(
                    cells,
                    n_cols,
                    feature_cols,
                    label_col,
                    column_name,
                    integer_features,
                    schema,
                    described,
                )
                if message is not None:
                    problems.add(row, message)
                    found += 1
                    if found >= problems.limit:
                        break
    except (UnicodeDecodeError, csv.Error) as exc:
        problems.fatal(f"cannot be read as CSV ({exc})")
    if found:
        problems.raise_if_any()


def _csv_row_problem(
    cells: list[str],
    n_cols: int,
    feature_cols: list[int],
    label_col: int,
    column_name: Callable[[int], str],
    integer_features: bool,
    schema: DatasetSchema,
    described: str,
) -> str | None:
    if len(cells) != n_cols:
        return f"has {len(cells)} values but the file has {n_cols} columns"
    for j in feature_cols:
        cell = cells[j]
        if cell == "":
            return f"{column_name(j)} is empty"
        valid = _INT_TEXT.fullmatch(cell) is not None if integer_features else _is_number(cell)
        if not valid:
            what = "a whole number" if integer_features else "a number"
            return f"{column_name(j)} = {cell!r} is not {what}"
    cell = cells[label_col]
    if schema.task == "regression":
        if cell == "":
            return "label is empty"
        if not _is_number(cell):
            return f"label {cell!r} is not a number"
    elif not schema.string_labels and not _is_number(cell):
        return f"label {cell!r} is not in the dataset's label set {described}"
    return None
