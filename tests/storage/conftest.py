"""Shared fixtures for the storage tests: a small schema, a few proposal files, and every
blob store implementation behind one fixture."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from databright.storage import BlobStore, DatasetSchema, LocalBlobStore, MemoryBlobStore

FEATURES = [f"p{i}" for i in range(6)]


@pytest.fixture
def schema() -> DatasetSchema:
    return DatasetSchema(
        task="classification", feature_shape=(2, 3), dtype="float32", labels=tuple(range(10))
    )


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = np.round(rng.random((40, 2, 3)) * 16, 2).astype(np.float32)
    y = rng.integers(0, 10, 40)
    return X, y


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "store")


# --- every BlobStore, for the tests that any store must pass ----------------------------------


@dataclass(frozen=True)
class Backend:
    """A blob store under test, with the test's own way to its bytes, around the store's checks.

    ``where`` is how the store's messages name it; ``overwrite(cid, data)`` replaces the bytes
    kept under ``cid`` and ``remove(cid)`` drops them, as a damaged disk, a bad peer or a
    careless operator would.
    """

    store: BlobStore
    where: str
    overwrite: Callable[[str, bytes], None]
    remove: Callable[[str], None]


def local_backend(tmp_path: Path) -> Backend:
    store = LocalBlobStore(tmp_path / "store")

    def overwrite(cid: str, data: bytes) -> None:
        location = store._location(cid)  # also where no blob is yet (a store's older blobs)
        location.parent.mkdir(exist_ok=True)
        location.write_bytes(data)

    def remove(cid: str) -> None:
        store.path(cid, verify=False).unlink()

    return Backend(store, f"the store at {store.root}", overwrite, remove)


def memory_backend(tmp_path: Path) -> Backend:
    blobs: dict[str, bytes] = {}
    return Backend(
        MemoryBlobStore(blobs), "the in-memory store", blobs.__setitem__, blobs.__delitem__
    )


# Every implementation of BlobStore runs the same tests (test_blobstore.py and the tests that
# take ``backend``): adding one is adding its maker here.
BACKENDS: list[Callable[[Path], Backend]] = [local_backend, memory_backend]


@pytest.fixture(params=BACKENDS, ids=lambda make: make.__name__.removesuffix("_backend"))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    make: Callable[[Path], Backend] = request.param
    return make(tmp_path)


def write_npz(path: Path, X: np.ndarray, y: np.ndarray) -> Path:
    np.savez(path, X=X, y=y)
    return path


def write_csv(
    path: Path, X: np.ndarray, y: np.ndarray, *, header: bool = True, label_first: bool = False
) -> Path:
    flat = X.reshape(len(X), -1)
    columns = {name: flat[:, i] for i, name in enumerate(FEATURES[: flat.shape[1]])}
    if label_first:
        columns = {"label": y, **columns}
    else:
        columns["label"] = y
    pacsv.write_csv(
        pa.table(columns), path, write_options=pacsv.WriteOptions(include_header=header)
    )
    return path


def write_parquet(path: Path, X: np.ndarray, y: np.ndarray) -> Path:
    flat = X.reshape(len(X), -1)
    columns = {name: flat[:, i] for i, name in enumerate(FEATURES[: flat.shape[1]])}
    columns["label"] = y
    pq.write_table(pa.table(columns), path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
