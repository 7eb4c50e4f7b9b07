"""Reading a contributor's proposal file and checking it against the dataset's schema.

Nothing is stored until a file passes every check, and nothing untrusted is ever unpickled:
``.npz`` arrays are read with ``allow_pickle=False`` after their headers have been checked
(dtype, shape, count), so an object array or an archive that would expand to gigabytes is
refused before its data is read.

**Formats.** ``.npz``: arrays ``X`` (``(n, *feature_shape)``, or flat ``(n, n_features)`` in C
order) and ``y`` (``(n,)``), nothing else. ``.csv``: UTF-8, comma-separated; if the first line
has a cell ``label`` it is a header and that column holds the label (any position), otherwise
there is no header and the last column is the label; the other columns are the features in
file order (C order of ``feature_shape``). ``.parquet``: one numeric column per feature in file
order plus a column named ``label``.

**Rows.** ``row N`` in a message is the N-th example of the file, counting from 1: for CSV the
header (and blank lines) are not counted, so ``row 1`` is the first data line; for ``.npz`` it
is ``X[N-1]``. Features are named by column for CSV/Parquet (``column 'pixel_5'``, or
``column 3`` counting from 1 without a header) and by 0-based index within the example for
``.npz`` (``feature (2, 3)``).

**Conversion to the dataset dtype (no silent loss).** Floats to a float dtype are rounded to the
nearest representable value (CSV text is read as float64 first), and must be finite before and
after (NaN, infinities and overflow are refused). Integers to a float dtype must be exactly
representable. Floats to an integer dtype must be whole numbers within its range; integers to
an integer dtype must be within its range. Anything else (strings, objects, complex,
datetimes) is refused. ``-0.0`` becomes ``+0.0``. Class labels must be in the label set
(integer labels may arrive as whole floats, ``3.0``); regression targets are float64 and
finite.

**Duplicates.** After the value checks pass, every example is hashed
(:mod:`databright.storage.hashing`) and refused if its hash is in ``known_hashes`` (already in
the dataset) or appeared earlier in the same file.

All problems (up to ``max_problems``, in file order, one per row) are collected into one
:class:`ProposalRejected`, whose message is the first of them, e.g.
``digits_part3.csv row 17: label 11 is not in the dataset's label set {0..9}``.
"""

from __future__ import annotations

import csv
import math
import re
import zipfile
import zlib
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, NoReturn

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from databright.errors import ProposalProblem, ProposalRejected
from databright.storage.hashing import example_hashes
from databright.storage.schema import DatasetSchema

__all__ = ["SUPPORTED_FORMATS", "Examples", "read_proposal", "validate_examples"]

SUPPORTED_FORMATS: Final = (".npz", ".csv", ".parquet")
_PARQUET_SUFFIXES: Final = (".parquet", ".pq")
_DEFAULT_MAX_PROBLEMS: Final = 20
_CSV_BLOCK: Final = 1 << 24


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


# --- collecting problems -------------------------------------------------------------------


class _Problems:
    """Problems of one file, kept in file order, at most one per check and row."""

    def __init__(self, source: str, limit: int) -> None:
        self.source = source
        self.limit = max(1, limit)
        self.items: list[ProposalProblem] = []
        self.count = 0

    def fatal(self, message: str, row: int | None = None) -> NoReturn:
        """A problem that stops reading (the file as a whole is unusable)."""
        problem = ProposalProblem(self.source, row, message)
        items = sorted([*self.items, problem], key=_problem_order)[: self.limit]
        raise ProposalRejected(items, self.count + 1)

    def add(self, row: int | None, message: str) -> None:
        self.count += 1
        if len(self.items) < 4 * self.limit:
            self.items.append(ProposalProblem(self.source, row, message))

    def add_rows(self, rows: npt.NDArray[np.intp], message: Callable[[int], str]) -> None:
        """Rows (0-based, ascending) that fail one check; only the first few get a message."""
        self.count += len(rows)
        for r in rows[: self.limit].tolist():
            self.items.append(ProposalProblem(self.source, r + 1, message(r)))

    def raise_if_any(self) -> None:
        if self.count:
            items = sorted(self.items, key=_problem_order)[: self.limit]
            raise ProposalRejected(items, self.count)


def _problem_order(p: ProposalProblem) -> tuple[int, int]:
    return (0, 0) if p.row is None else (1, p.row)


# --- value conversion ------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, np.floating | float):
        v = float(value)
        if math.isfinite(v) and v.is_integer() and abs(v) < 1e16:
            return str(int(v))
        return repr(v)
    if isinstance(value, np.integer | int):
        return str(int(value))
    return repr(str(value))


def _convert(
    src: npt.NDArray[Any],
    dst: np.dtype[Any],
    problems: _Problems,
    name_of: Callable[[int], str],
    empty: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[Any]:
    """Convert an ``(n, k)`` array to ``dst`` by the module's rules, reporting bad rows.

    Each failing row gets one problem, for its first failing cell; ``empty`` marks cells that
    were blank in the file (their value in ``src`` is a placeholder).
    """
    kind = src.dtype.kind
    if empty is None:
        # Clean data, the common case, costs one conversion and one finiteness pass.
        if dst.kind == "f" and kind == "f":
            with np.errstate(over="ignore", invalid="ignore"):
                out = src.astype(dst)
            if np.isfinite(out).all():  # NaN, infinities and overflow all end non-finite
                out += dst.type(0)  # -0.0 -> +0.0, so equal values hash and store alike
                return out
        elif kind in "biu" and np.can_cast(src.dtype, dst, "safe"):
            return src.astype(dst)
    checks: list[tuple[npt.NDArray[np.bool_], Callable[[str, Any], str]]] = []
    if empty is not None:
        checks.append((empty, lambda name, v: f"{name} is empty"))
    if dst.kind == "f":
        if kind == "f":
            nan = np.isnan(src)
            inf = np.isinf(src)
            with np.errstate(over="ignore", invalid="ignore"):
                out = src.astype(dst)
            checks.append((nan, lambda name, v: f"{name} is NaN; values must be finite numbers"))
            checks.append(
                (inf, lambda name, v: f"{name} is infinite; values must be finite numbers")
            )
            if dst.itemsize < src.dtype.itemsize:
                too_big = np.isinf(out) & ~inf & ~nan
                checks.append(
                    (too_big, lambda name, v: f"{name} = {_fmt(v)} does not fit in {dst.name}")
                )
        else:
            out = src.astype(dst)
            if not np.can_cast(src.dtype, dst, "safe"):
                with np.errstate(invalid="ignore", over="ignore"):
                    inexact = out.astype(src.dtype) != src
                checks.append(
                    (
                        inexact,
                        lambda name, v: (
                            f"{name} = {_fmt(v)} cannot be stored exactly as {dst.name}"
                        ),
                    )
                )
    else:
        info = np.iinfo(dst)
        span = f"{info.min}..{info.max}"
        if kind == "f":
            nan = np.isnan(src)
            inf = np.isinf(src)
            finite = ~(nan | inf)
            with np.errstate(invalid="ignore"):
                fraction = finite & (np.floor(src) != src)
                outside = finite & ((src < float(info.min)) | (src >= float(info.max) + 1.0))
            bad = nan | inf | fraction | outside
            out = np.where(bad, 0, src).astype(dst)
            checks.append((nan, lambda name, v: f"{name} is NaN; values must be finite numbers"))
            checks.append(
                (inf, lambda name, v: f"{name} is infinite; values must be finite numbers")
            )
            checks.append(
                (
                    fraction,
                    lambda name, v: (
                        f"{name} = {_fmt(v)} is not a whole number, and the dataset stores "
                        f"{dst.name} values"
                    ),
                )
            )
            checks.append(
                (
                    outside,
                    lambda name, v: f"{name} = {_fmt(v)} is outside the {dst.name} range {span}",
                )
            )
        elif np.can_cast(src.dtype, dst, "safe"):
            out = src.astype(dst)
        else:
            src_info = np.iinfo(src.dtype)
            outside = np.zeros(src.shape, dtype=bool)
            if src_info.min < info.min:
                outside |= src < info.min
            if src_info.max > info.max:
                outside |= src > info.max
            out = np.where(outside, 0, src).astype(dst)
            checks.append(
                (
                    outside,
                    lambda name, v: f"{name} = {_fmt(v)} is outside the {dst.name} range {span}",
                )
            )
    _report(src, checks, problems, name_of)
    if dst.kind == "f":
        out += dst.type(0)  # -0.0 -> +0.0, so equal values hash and store alike
    return out


def _report(
    src: npt.NDArray[Any],
    checks: list[tuple[npt.NDArray[np.bool_], Callable[[str, Any], str]]],
    problems: _Problems,
    name_of: Callable[[int], str],
) -> None:
    active = [(mask, msg) for mask, msg in checks if mask.any()]
    if not active:
        return
    bad = np.logical_or.reduce([mask for mask, _ in active])
    rows = np.flatnonzero(bad.any(axis=1))

    def message(r: int) -> str:
        c = int(np.argmax(bad[r]))
        for mask, msg in active:
            if mask[r, c]:
                return msg(name_of(c), src[r, c])
        raise AssertionError("unreachable")

    problems.add_rows(rows, message)


def _labels(
    y_src: npt.NDArray[Any], schema: DatasetSchema, problems: _Problems
) -> npt.NDArray[Any]:
    """Convert labels to int64 / ``<U`` / float64 and check them against the schema."""
    kind = y_src.dtype.kind
    if schema.task == "regression":
        if kind not in "biuf":
            problems.fatal(f"labels have dtype {y_src.dtype}; regression targets must be numbers")
        out = _convert(y_src.reshape(-1, 1), np.dtype("<f8"), problems, lambda c: "label")
        return out.reshape(-1)
    described = schema.describe_labels()

    def not_in_set(r: int) -> str:
        return f"label {_fmt(y_src[r])} is not in the dataset's label set {described}"

    if schema.string_labels:
        if kind == "O":
            y_src = y_src.astype(str)
            kind = "U"
        if kind != "U":
            example = _fmt(y_src[0]) if len(y_src) else "?"
            problems.fatal(
                f"labels are numbers (e.g. {example}) but this dataset's labels are strings "
                f"{described}"
            )
        ok = np.isin(y_src, np.asarray(schema.labels, dtype=str))
        problems.add_rows(np.flatnonzero(~ok), not_in_set)
        return y_src.astype(str)
    if kind not in "biuf":
        example = _fmt(y_src[0]) if len(y_src) else "?"
        problems.fatal(
            f"labels are {'text' if kind in 'UOS' else y_src.dtype} (e.g. {example}) but this "
            f"dataset's labels are integers {described}"
        )
    allowed = np.asarray(schema.labels, dtype=np.int64)
    if kind == "f":
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(y_src) & (np.floor(y_src) == y_src)
            ok = whole & np.isin(np.where(whole, y_src, 0.5), allowed.astype(np.float64))
    else:
        ok = np.isin(y_src, allowed)
    problems.add_rows(np.flatnonzero(~ok), not_in_set)
    return np.where(ok, y_src, 0).astype(np.int64)


# --- the checks shared by every format --------------------------------------------------------


def _assemble(
    columns: list[npt.NDArray[Any]],
    dst: np.dtype[Any],
    problems: _Problems,
    name_of: Callable[[int], str],
    empty: npt.NDArray[np.bool_] | None,
) -> npt.NDArray[Any]:
    """Columns of a CSV or Parquet file as an ``(n, k)`` array in ``dst``.

    Casting each column straight into the result avoids an intermediate float64 matrix; only
    when that finds a problem (or blanks) are the source values gathered for messages.
    """
    if empty is None and dst.kind == "f" and all(c.dtype.kind == "f" for c in columns):
        out = _interleave(columns, dst)
        if np.isfinite(out).all():
            out += dst.type(0)
            return out
    src = _interleave(columns, np.result_type(*[c.dtype for c in columns]))
    return _convert(src, dst, problems, name_of, empty)


def _interleave(columns: list[npt.NDArray[Any]], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    """Columns side by side as a row-major matrix, filled a cache-sized band of rows at a time
    (four times faster than writing each whole column with a stride)."""
    n = len(columns[0])
    out = np.empty((n, len(columns)), dtype=dtype)
    band = max(1, (1 << 20) // max(1, out.itemsize * len(columns)))
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, n, band):
            rows = out[start : start + band]
            for k, column in enumerate(columns):
                rows[:, k] = column[start : start + band]
    return out


def _finish(
    X_src: npt.NDArray[Any] | list[npt.NDArray[Any]],
    y_src: npt.NDArray[Any],
    schema: DatasetSchema,
    problems: _Problems,
    name_of: Callable[[int], str],
    known_hashes: Container[bytes] | None,
    empty: npt.NDArray[np.bool_] | None = None,
) -> Examples:
    n = len(y_src)
    if isinstance(X_src, list):
        X2 = _assemble(X_src, schema.np_dtype, problems, name_of, empty)
    else:
        X2 = _convert(X_src.reshape(n, -1), schema.np_dtype, problems, name_of, empty)
    y = _labels(y_src, schema, problems)
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


def _check_count(n: int, schema: DatasetSchema, problems: _Problems) -> None:
    if n == 0:
        problems.fatal("contains no examples")
    if n > schema.max_examples:
        problems.fatal(
            f"has {n} examples, more than the {schema.max_examples} this dataset accepts in one "
            "proposal; split it into several proposals"
        )


def _index_names(shape: Sequence[int]) -> Callable[[int], str]:
    def name_of(flat: int) -> str:
        if len(shape) <= 1:
            return f"feature {flat}"
        return f"feature {tuple(int(i) for i in np.unravel_index(flat, tuple(shape)))}"

    return name_of


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
    problems = _Problems(source, max_problems)
    X_arr = np.asarray(X)
    y_arr = np.asarray(y)
    if X_arr.dtype.hasobject or (y_arr.dtype.hasobject and not schema.string_labels):
        problems.fatal("holds Python objects; pass numeric arrays (and str arrays for labels)")
    _check_structure(X_arr.shape, X_arr.dtype, y_arr.shape, schema, problems)
    return _finish(X_arr, y_arr, schema, problems, _index_names(schema.feature_shape), known_hashes)


def _check_structure(
    x_shape: tuple[int, ...],
    x_dtype: np.dtype[Any],
    y_shape: tuple[int, ...],
    schema: DatasetSchema,
    problems: _Problems,
) -> None:
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
    _check_count(n, schema, problems)


# --- .npz -----------------------------------------------------------------------------------


def _npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)  # type: ignore[no-any-return]
    return np.lib.format.read_array_header_2_0(f)  # type: ignore[no-any-return]


def read_npz_arrays(
    file: str | Path | IO[bytes],
    fail: Callable[[str], NoReturn],
    check: Callable[[dict[str, tuple[tuple[int, ...], np.dtype[Any]]]], None] | None = None,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Read ``X`` and ``y`` from an ``.npz`` without ever unpickling.

    The headers are read first; ``check`` sees ``{name: (shape, dtype)}`` and may refuse the file
    (through ``fail``) before any array data is decompressed.
    """
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        fail(f"is not a readable .npz file ({exc}); save it with numpy.savez(path, X=X, y=y)")
    with archive:
        names = archive.namelist()
        strays = [name for name in names if not name.endswith(".npy")]
        if strays:
            fail(f"is not a NumPy .npz archive (it holds {strays[0]!r})")
        arrays = {name[:-4] for name in names}
        if not {"X", "y"} <= arrays:
            held = ", ".join(sorted(arrays)) or "nothing"
            fail(
                f"holds the arrays {held}, not X and y; save features as X and labels as y: "
                "numpy.savez(path, X=X, y=y)"
            )
        if arrays != {"X", "y"}:
            extra = ", ".join(sorted(arrays - {"X", "y"}))
            fail(f"holds unexpected arrays ({extra}); a proposal file holds exactly X and y")
        headers: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {}
        for key in ("X", "y"):
            try:
                with archive.open(f"{key}.npy") as f:
                    shape, _, dtype = _npy_header(f)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                fail(f"array {key} has a malformed header ({exc}); save the file again")
            if dtype.hasobject:
                fail(
                    f"array {key} holds Python objects (pickled data), which DataBright never "
                    "loads; save plain numeric arrays"
                )
            headers[key] = (tuple(shape), dtype)
        if check is not None:
            check(headers)
        out: dict[str, npt.NDArray[Any]] = {}
        for key in ("X", "y"):
            try:
                with archive.open(f"{key}.npy") as f:
                    out[key] = np.lib.format.read_array(f, allow_pickle=False)
            except (
                ValueError,
                OSError,
                EOFError,
                zipfile.BadZipFile,
                zlib.error,
                NotImplementedError,
            ) as exc:
                fail(f"array {key} is damaged ({exc}); save the file again with numpy.savez")
    return out["X"], out["y"]


def _read_npz(
    path: Path, schema: DatasetSchema, problems: _Problems
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], Callable[[int], str]]:
    def check(headers: dict[str, tuple[tuple[int, ...], np.dtype[Any]]]) -> None:
        (x_shape, x_dtype), (y_shape, _) = headers["X"], headers["y"]
        _check_structure(x_shape, x_dtype, y_shape, schema, problems)

    X, y = read_npz_arrays(path, problems.fatal, check)
    return X, y, _index_names(schema.feature_shape)


# --- .csv -----------------------------------------------------------------------------------

_INT_TEXT: Final = re.compile(r"-?[0-9]+")


def _is_number(cell: str) -> bool:
    if "_" in cell:
        return False
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_csv(
    path: Path, schema: DatasetSchema, problems: _Problems
) -> tuple[
    list[npt.NDArray[Any]], npt.NDArray[Any], Callable[[int], str], npt.NDArray[np.bool_] | None
]:
    with open(path, "rb") as f:
        first = f.readline()
    try:
        first_text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.fatal("is not UTF-8 text; save the CSV file as UTF-8")
    cells = next(csv.reader([first_text.rstrip("\r\n")]), [])
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
    _check_count(n, schema, problems)
    columns, empty = _numeric_columns(table, feature_cols)
    label = table.column(label_col)
    if label.null_count:
        rows = np.flatnonzero(label.is_null().to_numpy(zero_copy_only=False))
        problems.add_rows(rows, lambda r: "label is empty")
        label = pc.fill_null(label, 0)
    y_src = label.to_numpy(zero_copy_only=False)

    def name_of(k: int) -> str:
        return column_name(feature_cols[k])

    return columns, y_src, name_of, empty


def _numeric_columns(
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


def _diagnose_csv(
    path: Path,
    has_header: bool,
    n_cols: int,
    feature_cols: list[int],
    label_col: int,
    column_name: Callable[[int], str],
    schema: DatasetSchema,
    problems: _Problems,
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


# --- .parquet --------------------------------------------------------------------------------


def _read_parquet(
    path: Path, schema: DatasetSchema, problems: _Problems
) -> tuple[
    list[npt.NDArray[Any]], npt.NDArray[Any], Callable[[int], str], npt.NDArray[np.bool_] | None
]:
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
    _check_count(n, schema, problems)
    try:
        table = parquet.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        problems.fatal(f"is a damaged Parquet file ({exc})")
    columns, empty = _numeric_columns(table, feature_cols)
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

    return columns, y_src, name_of, empty


# --- entry point -----------------------------------------------------------------------------


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
    problems = _Problems(file.name, max_problems)
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
    empty: npt.NDArray[np.bool_] | None = None
    X_src: npt.NDArray[Any] | list[npt.NDArray[Any]]
    try:
        if suffix == ".npz":
            X_src, y_src, name_of = _read_npz(file, schema, problems)
        elif suffix == ".csv":
            X_src, y_src, name_of, empty = _read_csv(file, schema, problems)
        elif suffix in _PARQUET_SUFFIXES:
            X_src, y_src, name_of, empty = _read_parquet(file, schema, problems)
        else:
            problems.fatal(
                f"has the unsupported format {suffix or '(no extension)'!r}; DataBright reads "
                f"{', '.join(SUPPORTED_FORMATS)}"
            )
    except OSError as exc:  # permissions, I/O errors: the file is there but unreadable
        problems.fatal(f"cannot be read ({exc.strerror or exc})")
    return _finish(X_src, y_src, schema, problems, name_of, known_hashes, empty)
