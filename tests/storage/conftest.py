"""Shared fixtures for the storage tests: a small schema and a few proposal files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from databright.storage import BlobStore, DatasetSchema

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
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "store")


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
