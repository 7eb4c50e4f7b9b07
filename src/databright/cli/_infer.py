"""A dataset's schema guessed from its initial file, for ``dataset create`` without ``--schema``.

What a file cannot say is taken from the options given (``--task``, ``--feature-shape``,
``--dtype``, ``--labels``), which always win over the guess:

- ``.npz``: one example's shape is ``X.shape[1:]``, its dtype ``X``'s (if supported);
- ``.csv`` / ``.parquet``: one value per feature column (the ``label`` column, or the last
  column of a CSV without a header, is the label), stored as float32;
- labels: integer or string labels make a classification dataset whose label set is the labels
  the file holds; fractional targets make a regression dataset.

The file is read without unpickling, by the same readers as a proposal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from databright.errors import InvalidSchema, NotFound
from databright.storage import FEATURE_DTYPES, DatasetSchema
from databright.storage.formats.npz import read_npz_arrays

__all__ = ["infer_schema"]

_MAX_LABELS = 10_000  # more distinct values than this is a regression target, not classes


def _fail(path: Path, why: str) -> NoReturn:
    raise InvalidSchema(
        f"cannot infer a schema from {path}: {why}; give --schema FILE or --task and "
        "--feature-shape"
    )


def _columns(path: Path) -> tuple[int, npt.NDArray[Any]]:
    """The number of feature columns and the label column of a CSV or Parquet file."""
    try:
        if path.suffix.lower() == ".parquet":
            table = pq.read_table(path)
        else:
            with path.open("rb") as f:
                first = f.readline().decode("utf-8-sig", errors="replace")
            header = "label" in [c.strip().strip('"') for c in first.rstrip("\r\n").split(",")]
            options = pacsv.ReadOptions(autogenerate_column_names=not header)
            table = pacsv.read_csv(path, read_options=options)
    except (pa.ArrowException, OSError, ValueError) as exc:
        _fail(path, f"it is not readable ({str(exc).splitlines()[0]})")
    names = list(table.column_names)
    label = names.index("label") if "label" in names else len(names) - 1
    if path.suffix.lower() == ".parquet" and "label" not in names:
        _fail(path, "it has no column named 'label'")
    if len(names) < 2:
        _fail(path, "it needs at least one feature column and a label column")
    return len(names) - 1, table.column(label).to_numpy(zero_copy_only=False)


def _task_and_labels(
    path: Path, y: npt.NDArray[Any]
) -> tuple[str, tuple[int, ...] | tuple[str, ...] | None]:
    if y.dtype.kind in "US" or y.dtype == object:
        values = sorted({str(v) for v in y.tolist()})
        return "classification", tuple(values)
    if y.dtype.kind == "b":
        return "classification", (0, 1)
    if y.dtype.kind in "iu":
        values_i = np.unique(y)
    elif y.dtype.kind == "f":
        finite = y[np.isfinite(y)]
        if finite.size and np.all(finite == np.round(finite)):
            values_i = np.unique(finite).astype(np.int64)
        else:
            return "regression", None
    else:
        _fail(path, f"its labels have dtype {y.dtype}, neither numbers nor text")
    if len(values_i) > _MAX_LABELS:
        return "regression", None
    return "classification", tuple(int(v) for v in values_i)


def infer_schema(
    path: Path,
    name: str,
    task: str | None = None,
    shape: tuple[int, ...] | None = None,
    dtype: str | None = None,
    labels: tuple[int, ...] | tuple[str, ...] | None = None,
) -> DatasetSchema:
    """The schema of the examples in ``path``; the options given replace what is guessed."""
    if not path.is_file():
        raise NotFound(f"initial data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        X, y = read_npz_arrays(path, lambda why: _fail(path, f"the file {why}"))
        if X.ndim < 2 or len(X) == 0:
            _fail(path, f"X has shape {X.shape}; it needs one row per example")
        guessed_shape = tuple(int(d) for d in X.shape[1:])
        guessed_dtype = X.dtype.name if X.dtype.name in FEATURE_DTYPES else "float32"
    elif suffix in (".csv", ".parquet"):
        n_features, y = _columns(path)
        guessed_shape, guessed_dtype = (n_features,), "float32"
    else:
        _fail(path, "only .npz, .csv and .parquet files are read")
    guessed_task, guessed_labels = _task_and_labels(path, np.asarray(y))
    final_task = task or guessed_task
    if final_task == "regression":
        final_labels = None
    else:
        final_labels = labels if labels is not None else guessed_labels
        if final_labels is None:  # --task classification over fractional targets
            _fail(path, "its labels are not whole numbers nor text; give --labels")
    return DatasetSchema(
        task=final_task,  # type: ignore[arg-type]  # DatasetSchema refuses unknown tasks
        feature_shape=shape or guessed_shape,
        dtype=dtype or guessed_dtype,
        labels=final_labels,
        name=name,
    )
