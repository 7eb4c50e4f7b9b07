"""Forked hashing gives exactly what hashing in one process gives, and survives failures."""

from __future__ import annotations

import os

import numpy as np
import pytest

from databright.storage import MerkleTree, example_hashes
from databright.storage._parallel import hash_workers, map_ranges


def _rows(start: int, stop: int) -> bytes:
    return b"".join(i.to_bytes(4, "little") for i in range(start, stop))


@pytest.fixture
def three_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRIGHT_HASH_WORKERS", "3")


@pytest.mark.usefixtures("three_workers")
@pytest.mark.parametrize("n", [0, 1, 5, 999, 1000, 1001, 12345])
def test_ranges_are_joined_in_order(n: int) -> None:
    assert map_ranges(n, 4, _rows, min_rows=10) == _rows(0, n)


@pytest.mark.usefixtures("three_workers")
def test_a_failing_child_is_redone_by_the_parent() -> None:
    parent = os.getpid()

    def only_in_parent(start: int, stop: int) -> bytes:
        if os.getpid() != parent:
            raise RuntimeError("child trouble")
        return _rows(start, stop)

    assert map_ranges(3000, 4, only_in_parent, min_rows=10) == _rows(0, 3000)


@pytest.mark.usefixtures("three_workers")
def test_a_short_answer_is_redone_by_the_parent() -> None:
    parent = os.getpid()

    def truncated_in_child(start: int, stop: int) -> bytes:
        data = _rows(start, stop)
        return data if os.getpid() == parent else data[:-1]

    assert map_ranges(3000, 4, truncated_in_child, min_rows=10) == _rows(0, 3000)


@pytest.mark.usefixtures("three_workers")
def test_an_error_in_the_parent_propagates() -> None:
    def broken(start: int, stop: int) -> bytes:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        map_ranges(3000, 4, broken, min_rows=10)


def test_worker_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRIGHT_HASH_WORKERS", "4")
    assert hash_workers() == 4
    monkeypatch.setenv("DATABRIGHT_HASH_WORKERS", "0")
    assert hash_workers() == 1
    monkeypatch.setenv("DATABRIGHT_HASH_WORKERS", "many")
    assert hash_workers() == 1
    monkeypatch.delenv("DATABRIGHT_HASH_WORKERS")
    assert 1 <= hash_workers() <= 8


def test_parallel_hashes_and_tree_match_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    X = rng.random((60_000, 4)).astype(np.float32)
    y = rng.integers(0, 3, 60_000)
    monkeypatch.setenv("DATABRIGHT_HASH_WORKERS", "1")
    serial = example_hashes(X, y)
    serial_root = MerkleTree(serial).root
    monkeypatch.setenv("DATABRIGHT_HASH_WORKERS", "3")
    parallel = example_hashes(X, y)
    np.testing.assert_array_equal(parallel, serial)
    assert MerkleTree(parallel).root == serial_root
