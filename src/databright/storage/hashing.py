"""Per-example hashes and the keccak256 used by the Merkle tree.

An example's identity is the sha2-256 of a canonical byte string, so the same example hashes the
same whether it arrived as CSV text, a Parquet column or an ``.npz`` array (once it has been
converted to the dataset's dtype), and a copy of someone else's example is caught by hash.

Encoding ``databright-example-v1`` (all integers little-endian)::

    prefix   = b"databright-example-v1|" + dtype name + b"|" + shape + b"|"
               dtype name: numpy's name of the dataset dtype (float32, int64, uint8, ...)
               shape:      the per-example feature shape as decimal integers joined by ","
                           (b"8,8"; empty for a scalar feature)
    features = the example's values in the dataset dtype, little-endian, C (row-major)
               order; floats are canonicalised by adding +0.0, so -0.0 is encoded as +0.0
    label    = b"i" + int64            for an integer class label
             | b"f" + float64          for a regression target (-0.0 encoded as +0.0)
             | b"s" + uint32 n + n bytes of UTF-8   for a string class label
    example hash = sha256(prefix + features + label)

For example, 8x8 float32 features with class 3 hash
``b"databright-example-v1|float32|8,8|" + 256 feature bytes + b"i" + (3).to_bytes(8, "little")``.

Hashing millions of small rows one Python call at a time is the ingestion bottleneck, so
:func:`example_hashes` lays a chunk of rows out as one ``uint8`` matrix of encoded examples with
numpy (no per-row concatenation) and only then calls ``hashlib.sha256`` per row through
``map``; :func:`example_hash` is the plain reference implementation the tests compare it with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from operator import methodcaller
from typing import Final

import numpy as np
import numpy.typing as npt

from databright.storage._parallel import map_ranges

__all__ = [
    "EXAMPLE_ENCODING",
    "KECCAK_BACKEND",
    "example_hash",
    "example_hashes",
    "example_prefix",
    "keccak256",
]

EXAMPLE_ENCODING: Final = "databright-example-v1"

_digest = methodcaller("digest")
_CHUNK_ROWS: Final = 16384

# keccak256 is called ~3 times per example by the Merkle tree; pycryptodome's per-call overhead
# (~7 us) would dominate ingestion, safe-pysha3 (~0.5 us) does not. Both give the same hash.
_keccak_new: Callable[[bytes], object]
try:
    from _pysha3 import keccak_256 as _keccak_new  # type: ignore[no-redef]

    KECCAK_BACKEND: str = "safe-pysha3"
except ImportError:  # pragma: no cover - depends on the environment
    from Crypto.Hash import keccak as _crypto_keccak

    def _keccak_new(data: bytes) -> object:
        return _crypto_keccak.new(digest_bits=256, data=data)

    KECCAK_BACKEND = "pycryptodome"


def keccak256(data: bytes) -> bytes:
    """Ethereum's keccak256 (not NIST SHA3-256) of ``data``."""
    return _digest(_keccak_new(data))  # type: ignore[no-any-return]


def example_prefix(dtype: npt.DTypeLike, shape: Sequence[int]) -> bytes:
    """The constant prefix of every encoded example of a dataset (see the module docs)."""
    name = np.dtype(dtype).name
    dims = ",".join(str(int(d)) for d in shape)
    return f"{EXAMPLE_ENCODING}|{name}|{dims}|".encode("ascii")


def _label_kind(y: np.ndarray) -> str:
    kind = y.dtype.kind
    if kind in "iub":
        return "i"
    if kind == "f":
        return "f"
    if kind == "U":
        return "s"
    raise TypeError(f"labels of dtype {y.dtype} cannot be hashed; use integers, floats or strings")


def _encode_label(label: object) -> bytes:
    if isinstance(label, str | np.str_):
        raw = str(label).encode("utf-8")
        return b"s" + len(raw).to_bytes(4, "little") + raw
    if isinstance(label, int | np.integer | bool | np.bool_):
        return b"i" + int(label).to_bytes(8, "little", signed=True)
    if isinstance(label, float | np.floating):
        return b"f" + (np.float64(label) + 0.0).astype("<f8").tobytes()
    raise TypeError(f"cannot hash a label of type {type(label).__name__}")


def example_hash(
    features: npt.ArrayLike, label: object, dtype: npt.DTypeLike | None = None
) -> bytes:
    """The hash of one example; clear rather than fast (use :func:`example_hashes` in bulk).

    ``features`` is converted to ``dtype`` when given (it must already hold the dataset's
    values); a Python ``int`` label is a class label, a ``float`` a regression target.
    """
    x = np.asarray(features, dtype=dtype)
    if x.dtype.kind not in "iuf":
        raise TypeError(f"features of dtype {x.dtype} cannot be hashed; use a numeric dtype")
    if x.dtype.kind == "f":
        x = x + x.dtype.type(0)
    body = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("<")).tobytes()
    encoded = example_prefix(x.dtype, x.shape) + body + _encode_label(label)
    return hashlib.sha256(encoded).digest()


def example_hashes(X: np.ndarray, y: np.ndarray) -> npt.NDArray[np.uint8]:
    """The hashes of all examples, as an ``(n, 32)`` ``uint8`` array (row ``i`` is example ``i``).

    ``X`` has shape ``(n, *feature_shape)`` in the dataset dtype; ``y`` has shape ``(n,)`` and
    holds integers (class labels), floats (regression targets) or strings (class labels).
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim < 1 or y.ndim != 1 or len(X) != len(y):
        raise ValueError(f"X {X.shape} and y {y.shape} must hold the same number of examples")
    if X.dtype.kind not in "iuf":
        raise TypeError(f"features of dtype {X.dtype} cannot be hashed; use a numeric dtype")
    n = len(X)
    if n == 0:
        return np.empty((0, 32), dtype=np.uint8)
    kind = _label_kind(y)
    little = X.dtype.newbyteorder("<")
    flat = X.reshape(n, -1)
    prefix = np.frombuffer(example_prefix(X.dtype, X.shape[1:]), dtype=np.uint8)
    p = len(prefix)
    f = flat.shape[1] * X.dtype.itemsize
    label_width = 9 if kind in "if" else 0
    width = p + f + label_width
    labels: np.ndarray | None = None
    if kind == "i":
        labels = y.astype("<i8")
    elif kind == "f":
        labels = y.astype("<f8") + 0.0
    string_codes: np.ndarray | None = None
    string_encodings: list[bytes] = []
    if kind == "s":
        uniques, codes = np.unique(y, return_inverse=True)
        string_encodings = [_encode_label(str(u)) for u in uniques]
        string_codes = codes.reshape(-1)

    def hash_range(begin: int, end: int) -> bytes:
        rows = min(end - begin, _CHUNK_ROWS)
        buf = np.empty((rows, width), dtype=np.uint8)
        buf[:, :p] = prefix
        if labels is not None:
            buf[:, p + f] = ord(kind)
        sha256 = hashlib.sha256
        parts: list[bytes] = []
        for start in range(begin, end, rows):
            stop = min(end, start + rows)
            m = stop - start
            block = buf[:m]
            features = block[:, p : p + f].view(little)
            if X.dtype.kind == "f":
                np.add(flat[start:stop], X.dtype.type(0), out=features)
            else:
                features[...] = flat[start:stop]
            if labels is not None:
                block[:, p + f + 1 :] = labels[start:stop].view(np.uint8).reshape(m, 8)
            encoded = block.view(f"V{width}").reshape(m).tolist()
            digests: Iterable[bytes]
            if string_codes is None:
                digests = map(_digest, map(sha256, encoded))
            else:
                tails = [string_encodings[c] for c in string_codes[start:stop].tolist()]
                digests = (sha256(e + t).digest() for e, t in zip(encoded, tails, strict=True))
            parts.append(b"".join(digests))
        return b"".join(parts)

    joined = map_ranges(n, 32, hash_range)
    return np.frombuffer(joined, dtype=np.uint8).reshape(n, 32)
