"""Per-example hashes: a documented byte encoding, the same from every file format."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from databright.storage import example_hash, example_hashes


def test_encoding_is_as_documented() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    expected = hashlib.sha256(
        b"databright-example-v1|float32|2,3|"
        + x.astype("<f4").tobytes()
        + b"i"
        + (7).to_bytes(8, "little")
    ).digest()
    assert example_hash(x, 7) == expected
    assert example_hashes(x[None], np.array([7]))[0].tobytes() == expected


def test_string_and_float_labels_are_encoded_as_documented() -> None:
    x = np.array([1, 2], dtype=np.uint8)
    prefix = b"databright-example-v1|uint8|2|" + b"\x01\x02"
    assert example_hash(x, "cat") == hashlib.sha256(prefix + b"s\x03\x00\x00\x00cat").digest()
    assert (
        example_hash(x, 0.5) == hashlib.sha256(prefix + b"f" + np.float64(0.5).tobytes()).digest()
    )


def test_dtype_shape_and_label_kind_all_matter() -> None:
    x = np.zeros(4, dtype=np.float32)
    base = example_hash(x, 1)
    assert example_hash(x.reshape(2, 2), 1) != base
    assert example_hash(x.view(np.int32), 1) != base
    assert example_hash(x, 2) != base
    assert example_hash(x, 1.0) != base
    assert example_hash(x, "1") != base


def test_negative_zero_hashes_as_zero() -> None:
    assert example_hash(np.array([-0.0, 1.0]), 1) == example_hash(np.array([0.0, 1.0]), 1)
    X = np.array([[-0.0, 1.0], [0.0, 1.0]])
    hashes = example_hashes(X, np.array([1, 1]))
    assert hashes[0].tobytes() == hashes[1].tobytes()


def test_byte_order_does_not_matter() -> None:
    X = np.arange(12, dtype=">f8").reshape(3, 4)
    y = np.array([1, 2, 3], dtype=">i8")
    native = example_hashes(X.astype("<f8"), y.astype("<i8"))
    assert np.array_equal(example_hashes(X, y), native)


def test_large_batches_cross_chunks() -> None:
    rng = np.random.default_rng(1)
    X = rng.random((40_000, 3)).astype(np.float32)
    y = rng.integers(0, 5, 40_000)
    hashes = example_hashes(X, y)
    for i in (0, 16383, 16384, 39_999):
        assert hashes[i].tobytes() == example_hash(X[i], int(y[i]))


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="same number of examples"):
        example_hashes(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(TypeError, match="cannot be hashed"):
        example_hashes(np.array([["a"]]), np.array([1]))
    with pytest.raises(TypeError, match="labels of dtype"):
        example_hashes(np.zeros((1, 2)), np.array([1 + 2j]))
    with pytest.raises(TypeError, match="cannot hash a label"):
        example_hash(np.zeros(2), None)
    assert example_hashes(np.zeros((0, 2)), np.zeros(0)).shape == (0, 32)


feature_dtypes = st.sampled_from(["<f4", ">f4", "<f8", "<i8", "<u1", "<i2", "<f2"])


@settings(max_examples=60, deadline=None)
@given(
    X=feature_dtypes.flatmap(
        lambda dt: hnp.arrays(
            dt,
            st.tuples(st.integers(1, 20), st.integers(1, 4), st.integers(1, 3)),
            elements={"allow_nan": False, "allow_infinity": False} if "f" in dt else None,
        )
    ),
    kind=st.sampled_from(["int", "float", "str"]),
)
def test_vectorised_matches_reference(X: np.ndarray, kind: str) -> None:
    n = len(X)
    labels: list[object]
    if kind == "int":
        y = np.arange(n, dtype=np.int64) - 3
        labels = [int(v) for v in y]
    elif kind == "float":
        y = np.linspace(-1, 1, n)
        labels = [float(v) for v in y]
    else:
        y = np.array([f"class-{i % 3}é" for i in range(n)])
        labels = [str(v) for v in y]
    hashes = example_hashes(X, y)
    assert hashes.shape == (n, 32)
    for i in range(n):
        assert hashes[i].tobytes() == example_hash(X[i], labels[i])
