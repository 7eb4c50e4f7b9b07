"""Reading proposal files (.npz, .csv, .parquet) and refusing bad ones with clear messages."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from databright.errors import InvalidProposal
from databright.storage import (
    DatasetSchema,
    ProposalProblem,
    ProposalRejected,
    example_hash,
    read_proposal,
    validate_examples,
)

from .conftest import write_csv, write_npz, write_parquet, write_text

Data = tuple[np.ndarray, np.ndarray]


def rejected(path: Path, schema: DatasetSchema, **kwargs: object) -> ProposalRejected:
    with pytest.raises(ProposalRejected) as info:
        read_proposal(path, schema, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, InvalidProposal)
    assert isinstance(info.value, ValueError)
    return info.value


def header_csv(rows: list[str], columns: str = "p0,p1,p2,p3,p4,p5,label") -> str:
    return "\n".join([columns, *rows]) + "\n"


GOOD_ROW = "1,2,3,4,5,6,7"

# --- every format gives the same examples ------------------------------------------------


def test_same_examples_hash_the_same_in_every_format(
    tmp_path: Path, schema: DatasetSchema, data: Data
) -> None:
    X, y = data
    results = [
        read_proposal(write_npz(tmp_path / "d.npz", X, y), schema),
        read_proposal(write_npz(tmp_path / "flat.npz", X.reshape(40, 6), y), schema),
        read_proposal(write_npz(tmp_path / "f64.npz", X.astype(np.float64), y), schema),
        read_proposal(write_csv(tmp_path / "d.csv", X, y), schema),
        read_proposal(write_csv(tmp_path / "bare.csv", X, y, header=False), schema),
        read_proposal(write_csv(tmp_path / "first.csv", X, y, label_first=True), schema),
        read_proposal(write_parquet(tmp_path / "d.parquet", X, y), schema),
    ]
    for examples in results:
        assert len(examples) == 40
        assert examples.X.dtype == np.float32 and examples.X.shape == (40, 2, 3)
        assert examples.y.dtype == np.int64
        np.testing.assert_array_equal(examples.X, X)
        np.testing.assert_array_equal(examples.y, y)
        np.testing.assert_array_equal(examples.hashes, results[0].hashes)
    assert results[0].hash(3) == example_hash(X[3], int(y[3]))
    assert results[0].source == "d.npz"
    assert results[0].hash_list()[5] == results[0].hash(5)
    assert results[0].nbytes == X.nbytes + y.nbytes


def test_examples_are_read_only(tmp_path: Path, schema: DatasetSchema, data: Data) -> None:
    examples = read_proposal(write_npz(tmp_path / "d.npz", *data), schema)
    with pytest.raises(ValueError, match="read-only"):
        examples.X[0, 0, 0] = 1


def test_string_labels_and_regression(tmp_path: Path) -> None:
    pets = DatasetSchema(
        task="classification", feature_shape=(2,), dtype="float64", labels=("cat", "dog")
    )
    path = write_text(tmp_path / "pets.csv", "w,h,label\n1.5,2,cat\n3,4,dog\n")
    examples = read_proposal(path, pets)
    assert examples.y.tolist() == ["cat", "dog"]
    assert examples.hash(0) == example_hash(np.array([1.5, 2.0]), "cat")
    np.savez(tmp_path / "pets.npz", X=np.array([[1.5, 2.0], [3, 4]]), y=np.array(["cat", "dog"]))
    assert read_proposal(tmp_path / "pets.npz", pets).hash(0) == examples.hash(0)
    table = pa.table({"w": [1.5, 3.0], "h": [2.0, 4.0], "label": ["cat", "dog"]})
    pq.write_table(table, tmp_path / "pets.parquet")
    assert read_proposal(tmp_path / "pets.parquet", pets).hash(1) == examples.hash(1)
    table = table.set_column(2, "label", pa.array(["cat", "dog"]).dictionary_encode())
    pq.write_table(table, tmp_path / "dict.parquet")
    assert read_proposal(tmp_path / "dict.parquet", pets).hash(1) == examples.hash(1)

    prices = DatasetSchema(task="regression", feature_shape=(2,), dtype="float32")
    path = write_text(tmp_path / "prices.csv", "a,b,label\n1,2,3.25\n4,5,-0.5\n")
    examples = read_proposal(path, prices)
    assert examples.y.dtype == np.float64
    assert examples.y.tolist() == [3.25, -0.5]
    assert examples.hash(0) == example_hash(np.array([1, 2], dtype=np.float32), 3.25)


def test_integer_features_and_whole_float_labels(tmp_path: Path) -> None:
    pixels = DatasetSchema(task="classification", feature_shape=(3,), dtype="uint8", labels=(0, 1))
    np.savez(tmp_path / "px.npz", X=np.array([[0, 128, 255]], dtype=np.int64), y=np.array([1.0]))
    examples = read_proposal(tmp_path / "px.npz", pixels)
    assert examples.X.dtype == np.uint8 and examples.X.tolist() == [[0, 128, 255]]
    assert examples.y.tolist() == [1]
    path = write_text(tmp_path / "px.csv", "0,128,255,1\n")
    assert read_proposal(path, pixels).hash(0) == examples.hash(0)
    big = DatasetSchema(task="classification", feature_shape=(1,), dtype="int64", labels=(0,))
    path = write_text(tmp_path / "big.csv", "9007199254740993,0\n")  # 2**53 + 1, exact in int64
    assert read_proposal(path, big).X.tolist() == [[9007199254740993]]


def test_negative_zero_is_stored_as_zero(tmp_path: Path, schema: DatasetSchema) -> None:
    path = write_text(tmp_path / "z.csv", header_csv(["-0,0,0,0,0,0,1", "0,0,0,0,0,0,2"]))
    examples = read_proposal(path, schema)
    assert not np.signbit(examples.X).any()


def test_in_memory_arrays(schema: DatasetSchema, data: Data) -> None:
    X, y = data
    examples = validate_examples(X, y, schema, source="upload")
    assert examples.source == "upload"
    y2 = y.copy()
    y2[1] = 12
    with pytest.raises(ProposalRejected, match=r"^upload row 2: label 12 is not in"):
        validate_examples(X, y2, schema, source="upload")
    with pytest.raises(ProposalRejected, match="holds Python objects"):
        validate_examples(np.array([[object()] * 6]), [1], schema)


# --- whole-file problems -----------------------------------------------------------------


def test_missing_file(tmp_path: Path, schema: DatasetSchema) -> None:
    assert str(rejected(tmp_path / "gone.csv", schema)) == "gone.csv: does not exist"


def test_directory_is_not_a_file(tmp_path: Path, schema: DatasetSchema) -> None:
    (tmp_path / "dir.csv").mkdir()
    assert str(rejected(tmp_path / "dir.csv", schema)) == "dir.csv: is not a regular file"


def test_empty_file(tmp_path: Path, schema: DatasetSchema) -> None:
    (tmp_path / "empty.npz").write_bytes(b"")
    error = rejected(tmp_path / "empty.npz", schema)
    assert str(error) == "empty.npz: is empty"
    assert error.problems == (ProposalProblem("empty.npz", None, "is empty"),)


def test_oversized_file(tmp_path: Path, data: Data) -> None:
    small = DatasetSchema(
        task="classification",
        feature_shape=(2, 3),
        dtype="float32",
        labels=tuple(range(10)),
        max_file_bytes=500,
    )
    path = write_npz(tmp_path / "big.npz", *data)
    assert str(rejected(path, small)) == (
        f"big.npz: is {path.stat().st_size} bytes, more than the 500 bytes this dataset accepts "
        "in one file; split it into several proposals"
    )


def test_too_many_examples(tmp_path: Path, data: Data) -> None:
    few = DatasetSchema(
        task="classification",
        feature_shape=(2, 3),
        dtype="float32",
        labels=tuple(range(10)),
        max_examples=10,
    )
    for path in (write_npz(tmp_path / "d.npz", *data), write_csv(tmp_path / "d.csv", *data)):
        assert str(rejected(path, few)) == (
            f"{path.name}: has 40 examples, more than the 10 this dataset accepts in one "
            "proposal; split it into several proposals"
        )


def test_unsupported_format(tmp_path: Path, schema: DatasetSchema) -> None:
    write_text(tmp_path / "d.txt", "1,2")
    assert str(rejected(tmp_path / "d.txt", schema)) == (
        "d.txt: has the unsupported format '.txt'; DataBright reads .npz, .csv, .parquet"
    )


def test_no_examples(tmp_path: Path, schema: DatasetSchema) -> None:
    path = write_text(tmp_path / "head.csv", header_csv([]))
    assert str(rejected(path, schema)) == "head.csv: contains no examples"
    np.savez(tmp_path / "none.npz", X=np.zeros((0, 2, 3), np.float32), y=np.zeros(0, np.int64))
    assert str(rejected(tmp_path / "none.npz", schema)) == "none.npz: contains no examples"


# --- .npz --------------------------------------------------------------------------------


def test_garbage_npz(tmp_path: Path, schema: DatasetSchema) -> None:
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip archive")
    message = str(rejected(tmp_path / "junk.npz", schema))
    assert message.startswith("junk.npz: is not a readable .npz file (")
    assert message.endswith("); save it with numpy.savez(path, X=X, y=y)")


def test_pickled_object_array_is_never_loaded(tmp_path: Path, schema: DatasetSchema) -> None:
    # An object array is how a pickle gets into an .npz; np.load would run it with
    # allow_pickle=True. The header alone is enough to refuse it.
    objects = np.empty((2, 2, 3), dtype=object)
    objects[...] = 1.0
    np.savez(tmp_path / "evil.npz", X=objects, y=np.array([1, 2]))
    assert str(rejected(tmp_path / "evil.npz", schema)) == (
        "evil.npz: array X holds Python objects (pickled data), which DataBright never loads; "
        "save plain numeric arrays"
    )


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((2, 2, 3))}, "holds the arrays X, not X and y; save features as X and labels as y: numpy.savez(path, X=X, y=y)"),
        ({"X": np.zeros((2, 2, 3)), "y": np.zeros(2), "z": np.zeros(1)}, "holds unexpected arrays (z); a proposal file holds exactly X and y"),
        ({"X": np.zeros((2, 5)), "y": np.zeros(2)}, "X holds examples of shape (5,); this dataset's examples have shape (2, 3)"),
        ({"X": np.zeros((2, 3, 2)), "y": np.zeros(2)}, "X holds examples of shape (3, 2); this dataset's examples have shape (2, 3)"),
        ({"X": np.zeros((2, 2, 3)), "y": np.zeros(3)}, "y has shape (3,); it must be a 1-D array with one label per example (X has 2 examples)"),
        ({"X": np.zeros((2, 2, 3)), "y": np.zeros((2, 1))}, "y has shape (2, 1); it must be a 1-D array with one label per example (X has 2 examples)"),
        ({"X": np.full((2, 2, 3), "abc"), "y": np.zeros(2)}, "X has dtype <U3; features must be numbers (the dataset stores float32)"),
        ({"X": np.zeros((2, 2, 3), np.complex64), "y": np.zeros(2)}, "X has dtype complex64; features must be numbers (the dataset stores float32)"),
        ({"X": np.zeros((2, 2, 3)), "y": np.array(["a", "b"])}, "labels are text (e.g. 'a') but this dataset's labels are integers {0..9}"),
    ],
)  # fmt: skip
def test_bad_npz_structure(
    tmp_path: Path, schema: DatasetSchema, arrays: dict[str, np.ndarray], message: str
) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    assert str(rejected(tmp_path / "bad.npz", schema)) == f"bad.npz: {message}"


def test_zip_that_is_not_an_npz(tmp_path: Path, schema: DatasetSchema) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "z.npz", "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert str(rejected(tmp_path / "z.npz", schema)) == (
        "z.npz: is not a NumPy .npz archive (it holds 'readme.txt')"
    )


def test_truncated_npz_member(tmp_path: Path, schema: DatasetSchema) -> None:
    import zipfile

    header = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 3), }"
    header = header.ljust(10 + 118, b" ") + b"\n"
    with zipfile.ZipFile(tmp_path / "cut.npz", "w") as archive:
        archive.writestr("X.npy", header + b"\x00" * 8)  # 8 of the 24 bytes promised
        y = __import__("io").BytesIO()
        np.save(y, np.zeros(2, np.int64))
        archive.writestr("y.npy", y.getvalue())
    message = str(rejected(tmp_path / "cut.npz", schema))
    assert message.startswith("cut.npz: array X ")
    assert "save the file again" in message


def test_string_labels_refuse_numbers(tmp_path: Path) -> None:
    pets = DatasetSchema(
        task="classification", feature_shape=(1,), dtype="float32", labels=("cat", "dog")
    )
    np.savez(tmp_path / "p.npz", X=np.zeros((2, 1)), y=np.array([3, 4]))
    assert str(rejected(tmp_path / "p.npz", pets)) == (
        "p.npz: labels are numbers (e.g. 3) but this dataset's labels are strings {'cat', 'dog'}"
    )


# --- row problems ------------------------------------------------------------------------


def test_label_outside_the_set_names_file_and_row(
    tmp_path: Path, schema: DatasetSchema, data: Data
) -> None:
    X, y = data
    y = y.copy()
    y[16] = 11
    path = write_csv(tmp_path / "digits_part3.csv", X, y)
    assert str(rejected(path, schema)) == (
        "digits_part3.csv row 17: label 11 is not in the dataset's label set {0..9}"
    )
    path = write_npz(tmp_path / "digits_part3.npz", X, y)
    error = rejected(path, schema)
    assert error.problems == (
        ProposalProblem(
            "digits_part3.npz", 17, "label 11 is not in the dataset's label set {0..9}"
        ),
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.nan, "feature (1, 2) is NaN; values must be finite numbers"),
        (np.inf, "feature (1, 2) is infinite or too large for a number; values must be finite"),
        (-np.inf, "feature (1, 2) is infinite or too large for a number; values must be finite"),
        (1e39, "feature (1, 2) = 1e+39 does not fit in float32"),
    ],
)
def test_non_finite_features_in_npz(
    tmp_path: Path, schema: DatasetSchema, data: Data, value: float, message: str
) -> None:
    X, y = data
    X = X.astype(np.float64)
    X[3, 1, 2] = value
    path = write_npz(tmp_path / "d.npz", X, y)
    assert str(rejected(path, schema)) == f"d.npz row 4: {message}"


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("nan", "column 'p2' is NaN; values must be finite numbers"),
        ("-inf", "column 'p2' is infinite or too large for a number; values must be finite"),
        ("1e400", "column 'p2' is infinite or too large for a number; values must be finite"),
        ("", "column 'p2' is empty"),
        ("abc", "column 'p2' = 'abc' is not a number"),
        ("1_0", "column 'p2' = '1_0' is not a number"),
    ],
)
def test_bad_cells_in_csv(tmp_path: Path, schema: DatasetSchema, cell: str, message: str) -> None:
    path = write_text(tmp_path / "d.csv", header_csv([GOOD_ROW, f"1,2,{cell},4,5,6,7"]))
    assert str(rejected(path, schema)) == f"d.csv row 2: {message}"


def test_headerless_csv_names_columns_by_position(tmp_path: Path, schema: DatasetSchema) -> None:
    path = write_text(tmp_path / "d.csv", f"{GOOD_ROW}\n1,2,3,nan,5,6,7\n")
    assert str(rejected(path, schema)) == (
        "d.csv row 2: column 4 is NaN; values must be finite numbers"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (header_csv([GOOD_ROW, "1,2,3,4,5,6"]), "d.csv row 2: has 6 values but the file has 7 columns"),
        (header_csv([GOOD_ROW, GOOD_ROW, "1,2,3,4,5,6,7,8"]), "d.csv row 3: has 8 values but the file has 7 columns"),
        (header_csv(["1,2,3,4,5,6,cat"]), "d.csv row 1: label 'cat' is not in the dataset's label set {0..9}"),
        (header_csv(["1,2,3,4,5,6,"]), "d.csv row 1: label is empty"),
        (header_csv(["1,2,3,4,5,6,3.5"]), "d.csv row 1: label 3.5 is not in the dataset's label set {0..9}"),
        ("x0,x1,x2,x3,x4,x5,y\n" + GOOD_ROW, "d.csv: has a header row without a 'label' column; name the label column 'label', or remove the header and put the label in the last column"),
        ("label,p0,p1,p2,p3,p4,p5,label\n", "d.csv: has more than one column named 'label'"),
        ("p0,p1,label\n1,2,3\n", "d.csv: has 2 feature columns; this dataset's examples have 6 values (shape (2, 3))"),
        ("\n" + GOOD_ROW, "d.csv: starts with a blank line; the first line must be the header or the first example"),
    ],
)  # fmt: skip
def test_malformed_csv(tmp_path: Path, schema: DatasetSchema, text: str, message: str) -> None:
    path = write_text(tmp_path / "d.csv", text)
    assert str(rejected(path, schema)) == message


def test_blank_lines_are_not_counted_as_rows(tmp_path: Path, schema: DatasetSchema) -> None:
    path = write_text(tmp_path / "d.csv", header_csv([GOOD_ROW, "", "1,2,3,4,5,6,x"]))
    assert str(rejected(path, schema)) == (
        "d.csv row 2: label 'x' is not in the dataset's label set {0..9}"
    )


def test_csv_that_is_not_utf8(tmp_path: Path, schema: DatasetSchema) -> None:
    (tmp_path / "latin.csv").write_bytes("p0,p1,p2,p3,p4,p5,label,café\n".encode("latin-1"))
    assert str(rejected(tmp_path / "latin.csv", schema)) == (
        "latin.csv: is not UTF-8 text; save the CSV file as UTF-8"
    )


def test_regression_target_problems(tmp_path: Path) -> None:
    prices = DatasetSchema(task="regression", feature_shape=(1,), dtype="float32")
    path = write_text(tmp_path / "p.csv", "a,label\n1,2\n2,nan\n3,abc\n")
    assert str(rejected(path, prices)) == "p.csv row 3: label 'abc' is not a number"
    path = write_text(tmp_path / "p.csv", "a,label\n1,2\n2,nan\n3,\n")
    error = rejected(path, prices)
    assert [str(p) for p in error.problems] == [
        "p.csv row 2: label is NaN; values must be finite numbers",
        "p.csv row 3: label is empty",
    ]
    np.savez(tmp_path / "p.npz", X=np.zeros((1, 1)), y=np.array(["a"]))
    assert str(rejected(tmp_path / "p.npz", prices)) == (
        "p.npz: labels have dtype <U1; regression targets must be numbers"
    )


@pytest.mark.parametrize(
    ("dtype", "value", "message"),
    [
        ("uint8", 300, "feature 1 = 300 is outside the uint8 range 0..255"),
        ("uint8", -1, "feature 1 = -1 is outside the uint8 range 0..255"),
        ("uint8", 1.5, "feature 1 = 1.5 is not a whole number, and the dataset stores uint8 values"),
        ("int8", 1e30, "feature 1 = 1e+30 is outside the int8 range -128..127"),
        ("int16", np.nan, "feature 1 is NaN; values must be finite numbers"),
        ("float32", 2**24 + 1, "feature 1 = 16777217 cannot be stored exactly as float32"),
        ("int32", 2**40, "feature 1 = 1099511627776 is outside the int32 range -2147483648..2147483647"),
    ],
)  # fmt: skip
def test_lossy_conversions_are_refused(
    tmp_path: Path, dtype: str, value: float, message: str
) -> None:
    schema = DatasetSchema(task="classification", feature_shape=(2,), dtype=dtype, labels=(0,))
    source = np.array([[0, value]], dtype=np.int64 if isinstance(value, int) else np.float64)
    np.savez(tmp_path / "v.npz", X=source, y=np.array([0]))
    assert str(rejected(tmp_path / "v.npz", schema)) == f"v.npz row 1: {message}"


def test_duplicates_inside_the_proposal(tmp_path: Path, schema: DatasetSchema, data: Data) -> None:
    X, y = data
    X = np.concatenate([X[:5], X[1:2], X[5:7], X[1:2]])
    y = np.concatenate([y[:5], y[1:2], y[5:7], y[1:2]])
    path = write_npz(tmp_path / "dup.npz", X, y)
    error = rejected(path, schema)
    assert str(error) == (
        "dup.npz row 6: this example repeats row 2 (same features and label) "
        "(and 1 more problem, listed in .problems)"
    )
    assert [p.row for p in error.problems] == [6, 9]
    # Same features with another label is a different example.
    y2 = y.copy()
    y2[5] = (y2[1] + 1) % 10
    y2[8] = (y2[1] + 2) % 10
    assert len(read_proposal(write_npz(tmp_path / "ok.npz", X, y2), schema)) == 9


def test_examples_already_in_the_dataset(tmp_path: Path, schema: DatasetSchema, data: Data) -> None:
    X, y = data
    known = {example_hash(X[2], int(y[2])), hashlib.sha256(b"unrelated").digest()}
    path = write_parquet(tmp_path / "again.parquet", X, y)
    error = rejected(path, schema, known_hashes=known)
    digest = example_hash(X[2], int(y[2])).hex()[:16]
    assert str(error) == (
        f"again.parquet row 3: this example is already in the dataset (example hash {digest}...)"
    )


def test_problems_are_collected_in_file_order_up_to_a_limit(
    tmp_path: Path, schema: DatasetSchema, data: Data
) -> None:
    X, y = data
    X = X.copy()
    y = y.copy()
    y[[3, 30]] = 42
    X[[1, 20, 35], 0, 0] = np.nan
    path = write_npz(tmp_path / "many.npz", X, y)
    error = rejected(path, schema)
    assert error.problem_count == 5
    assert [p.row for p in error.problems] == [2, 4, 21, 31, 36]
    assert str(error).endswith("(and 4 more problems, listed in .problems)")
    limited = rejected(path, schema, max_problems=2)
    assert limited.problem_count == 5
    assert [p.row for p in limited.problems] == [2, 4]
    assert str(limited).endswith("(and 4 more problems; .problems lists the first 2)")
    assert str(limited.problems[1]) == (
        "many.npz row 4: label 42 is not in the dataset's label set {0..9}"
    )


def test_one_problem_per_row(tmp_path: Path, schema: DatasetSchema) -> None:
    path = write_text(tmp_path / "d.csv", header_csv(["nan,nan,inf,1,1,1,99"]))
    error = rejected(path, schema)
    assert [str(p) for p in error.problems] == [
        "d.csv row 1: column 'p0' is NaN; values must be finite numbers",
        "d.csv row 1: label 99 is not in the dataset's label set {0..9}",
    ]


# --- .parquet ------------------------------------------------------------------------------


def test_garbage_parquet(tmp_path: Path, schema: DatasetSchema) -> None:
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 but not really")
    assert str(rejected(tmp_path / "junk.parquet", schema)).startswith(
        "junk.parquet: is not a readable Parquet file ("
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({f"p{i}": [1.0] for i in range(6)}), "has no column named 'label'; put each example's label in a column named 'label'"),
        (pa.table({**{f"p{i}": [1.0] for i in range(5)}, "label": [1]}), "has 5 feature columns; this dataset's examples have 6 values (shape (2, 3))"),
        (pa.table({**{f"p{i}": [1.0] for i in range(5)}, "p5": ["x"], "label": [1]}), "column 'p5' has type string; feature columns must hold numbers"),
        (pa.table({**{f"p{i}": [1.0, 2.0] for i in range(5)}, "p5": [1.0, None], "label": [1, 2]}), "row 2: column 'p5' is empty"),
        (pa.table({**{f"p{i}": [1.0, 2.0] for i in range(6)}, "label": pa.array([1, None], pa.int64())}), "row 2: label is empty"),
    ],
)  # fmt: skip
def test_bad_parquet(tmp_path: Path, schema: DatasetSchema, table: pa.Table, message: str) -> None:
    pq.write_table(table, tmp_path / "t.parquet")
    sep = " " if message.startswith("row") else ": "
    assert str(rejected(tmp_path / "t.parquet", schema)) == f"t.parquet{sep}{message}"


def test_unreadable_file(
    tmp_path: Path, schema: DatasetSchema, data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path / "secret.csv", *data)

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # chmod 0 does not stop root, so refuse the open itself (the CSV reader's first read).
    monkeypatch.setattr("databright.storage.formats.csv.open", denied, raising=False)
    assert str(rejected(path, schema)) == "secret.csv: cannot be read (Permission denied)"


def test_byte_order_mark_and_windows_line_ends(tmp_path: Path) -> None:
    schema = DatasetSchema(
        task="classification", feature_shape=(2,), dtype="float32", labels=(0, 1)
    )
    path = tmp_path / "excel.csv"
    path.write_bytes('\ufeff"a","b","label"\r\n1,2,0\r\n3,4,1\r\n'.encode())
    examples = read_proposal(path, schema)
    assert examples.X.tolist() == [[1, 2], [3, 4]]
    assert examples.y.tolist() == [0, 1]


def test_compressed_npz(tmp_path: Path, schema: DatasetSchema, data: Data) -> None:
    X, y = data
    np.savez_compressed(tmp_path / "small.npz", X=X, y=y)
    plain = read_proposal(write_npz(tmp_path / "plain.npz", X, y), schema)
    np.testing.assert_array_equal(
        read_proposal(tmp_path / "small.npz", schema).hashes, plain.hashes
    )


def test_npz_headers_are_checked_before_any_data_is_read(tmp_path: Path) -> None:
    import io
    import zipfile

    few = DatasetSchema(
        task="classification", feature_shape=(2, 3), dtype="float32", labels=(0,), max_examples=1000
    )
    # A header promising 10 million examples (240 MB) with no data behind it: refused on the
    # header alone, so a small archive cannot make the reader allocate or decompress gigabytes.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10_000_000, 2, 3)}
    )
    labels = io.BytesIO()
    np.save(labels, np.zeros(10_000_000, dtype=np.uint8)[:0])
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as archive:
        archive.writestr("X.npy", header.getvalue())
        archive.writestr("y.npy", labels.getvalue())
    assert str(rejected(tmp_path / "bomb.npz", few)).startswith(
        "bomb.npz: y has shape (0,); it must be a 1-D array"
    )
    labels = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        labels, {"descr": "|u1", "fortran_order": False, "shape": (10_000_000,)}
    )
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as archive:
        archive.writestr("X.npy", header.getvalue())
        archive.writestr("y.npy", labels.getvalue())
    assert str(rejected(tmp_path / "bomb.npz", few)) == (
        "bomb.npz: has 10000000 examples, more than the 1000 this dataset accepts in one "
        "proposal; split it into several proposals"
    )


THREE = DatasetSchema(task="classification", feature_shape=(3,), dtype="float32", labels=(0, 1))


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("semi.csv", "a;b;c;label\n1;2;3;0\n", "separates its columns with ';'"),
        ("tabs.csv", "a\tb\tc\tlabel\n1\t2\t3\t0\n", "separates its columns with a tab"),
        ("huge.csv", "a,b,c,label\n" + "1" * 400 + ",2,3,0\n", "too large for a number"),
        ("wide.csv", "1" * 200_000 + ",2,3,0\n", "cannot be read as CSV"),
    ],
)
def test_misread_files_are_named_for_what_they_are(
    tmp_path: Path, name: str, content: str, says: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert says in str(rejected(path, THREE))


def test_float64_values_float32_would_lose_are_refused_not_rounded(tmp_path: Path) -> None:
    path = tmp_path / "tiny.npz"
    X = np.array([[0.1, 1e-50, 16777217.0], [1.0, 2.0, 3.0]], dtype=np.float64)
    np.savez(path, X=X, y=np.array([0, 1]))
    message = str(rejected(path, THREE))
    assert "1e-50 is too small for float32" in message and "row 1" in message
    # Ordinary rounding (half an ulp, 6e-8 relative at most) is the documented conversion.
    np.savez(path, X=X[1:] + 0.1, y=np.array([1]))
    assert read_proposal(path, THREE).X.dtype == np.float32
