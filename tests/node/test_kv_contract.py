"""The key-value contract py-evm's chain relies on, run against every store it can run on.

py-evm writes its chain through a ``DatabaseAPI`` (a dict of bytes to bytes) wrapped in an
``AtomicDB``. The node's SQLite :class:`KeyValueStore` must behave exactly like py-evm's own
``MemoryDB`` there; both run this one suite. A new store is one more line in :data:`STORES`.
What only the SQLite store has (its commit buffer, reopening, damage detection) is tested in
``test_store.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from eth.abc import DatabaseAPI
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from hypothesis import given, settings
from hypothesis import strategies as st

from databright.node.store import KeyValueStore

#: Each store py-evm's chain may run on, made fresh in an empty directory.
STORES: dict[str, Callable[[Path], DatabaseAPI]] = {
    "sqlite": lambda directory: KeyValueStore(directory / "kv.sqlite3"),
    "memory": lambda directory: MemoryDB(),
}


def _close(store: DatabaseAPI) -> None:
    close = getattr(store, "close", None)
    if close is not None:
        close()


@pytest.fixture(params=sorted(STORES))
def kv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseAPI]:
    store = STORES[request.param](tmp_path)
    yield store
    _close(store)


# --- the mapping -----------------------------------------------------------------------------


def test_set_then_get(kv: DatabaseAPI) -> None:
    kv[b"k"] = b"v"
    assert kv[b"k"] == b"v"
    kv[b"k"] = b"w"  # overwrite
    assert kv[b"k"] == b"w"
    kv.set(b"other", b"x")
    assert kv[b"other"] == b"x"


def test_missing_key_raises_key_error(kv: DatabaseAPI) -> None:
    with pytest.raises(KeyError):
        kv[b"missing"]
    assert kv.get(b"missing") is None
    assert b"missing" not in kv
    assert not kv.exists(b"missing")


def test_contains(kv: DatabaseAPI) -> None:
    kv[b"k"] = b"v"
    assert b"k" in kv and kv.exists(b"k")
    assert b"k\x00" not in kv and b"" not in kv  # keys are exact bytes, not prefixes


def test_delete(kv: DatabaseAPI) -> None:
    kv[b"k"] = b"v"
    del kv[b"k"]
    assert b"k" not in kv
    with pytest.raises(KeyError):
        kv[b"k"]
    kv[b"k"] = b"again"  # a deleted key can come back
    assert kv[b"k"] == b"again"


def test_deleting_a_missing_key(kv: DatabaseAPI) -> None:
    with pytest.raises(KeyError):
        del kv[b"missing"]
    kv.delete(b"missing")  # the forgiving form
    assert b"missing" not in kv


def test_values_are_bytes_as_given(kv: DatabaseAPI) -> None:
    hashed = bytes(range(32))
    kv[hashed] = b"\x00\xff" * 300
    kv[b"\x00"] = b""  # empty value: present, not missing
    assert kv[hashed] == b"\x00\xff" * 300
    assert kv[b"\x00"] == b"" and b"\x00" in kv


# --- atomic batches (AtomicDB over the store, as the chain uses it) ------------------------


def test_batch_lands_whole(kv: DatabaseAPI) -> None:
    kv[b"old"] = b"1"
    atomic = AtomicDB(kv)
    with atomic.atomic_batch() as batch:
        batch[b"a"] = b"1"
        batch[b"b"] = b"2"
        del batch[b"old"]
        assert batch[b"a"] == b"1" and b"old" not in batch  # the batch sees its own writes
        assert b"a" not in kv and kv[b"old"] == b"1"  # the store does not, yet
    assert kv[b"a"] == b"1" and kv[b"b"] == b"2" and b"old" not in kv


def test_failed_batch_leaves_nothing(kv: DatabaseAPI) -> None:
    kv[b"old"] = b"1"
    atomic = AtomicDB(kv)
    with pytest.raises(RuntimeError), atomic.atomic_batch() as batch:
        batch[b"a"] = b"1"
        del batch[b"old"]
        raise RuntimeError("half-built block")
    assert b"a" not in kv and kv[b"old"] == b"1"


def test_batch_delete_of_a_missing_key_raises(kv: DatabaseAPI) -> None:
    with pytest.raises(KeyError), AtomicDB(kv).atomic_batch() as batch:
        del batch[b"missing"]


def test_writes_outside_a_batch_go_straight_through(kv: DatabaseAPI) -> None:
    atomic = AtomicDB(kv)
    atomic[b"k"] = b"v"
    assert kv[b"k"] == b"v"
    del atomic[b"k"]
    assert b"k" not in kv


# --- against a dict ---------------------------------------------------------------------------

keys = st.binary(min_size=1, max_size=3)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, st.binary(max_size=4)),
        st.tuples(st.just("delete"), keys, st.just(b"")),
    ),
    max_size=40,
)


@pytest.mark.parametrize("kind", sorted(STORES))
@settings(max_examples=40, deadline=None)
@given(ops=operations)
def test_store_matches_a_dict(
    tmp_path_factory: pytest.TempPathFactory, kind: str, ops: list[tuple[str, bytes, bytes]]
) -> None:
    store = STORES[kind](tmp_path_factory.mktemp(kind))
    model: dict[bytes, bytes] = {}
    try:
        for op, key, value in ops:
            if op == "set":
                store[key] = value
                model[key] = value
            elif key in model:
                del store[key]
                del model[key]
            else:
                with pytest.raises(KeyError):
                    del store[key]
            for probe in {key, *model}:
                assert (probe in store) == (probe in model)
                assert store.get(probe) == model.get(probe)
    finally:
        _close(store)
