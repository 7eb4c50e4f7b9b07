"""What only the SQLite key-value store has: its commit buffer, reopening, damage detection.

The key-value contract it shares with py-evm's ``MemoryDB`` is in ``test_kv_contract.py``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from databright.errors import NodeError, StoreCorrupt
from databright.node.store import KeyValueStore


def test_buffered_writes_are_visible_before_commit(tmp_path: Path) -> None:
    store = KeyValueStore(tmp_path / "kv.sqlite3")
    assert not store.dirty
    store[b"a"] = b"1"
    assert store[b"a"] == b"1" and store.dirty
    store.commit()
    del store[b"a"]  # a delete of a committed key is buffered too
    assert b"a" not in store and store.dirty
    store.close()


def test_only_committed_writes_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "kv.sqlite3"
    store = KeyValueStore(path)
    store[b"kept"] = b"1"
    store.set_meta("chain_id", "1337")
    store.commit()
    assert not store.dirty
    store[b"lost"] = b"2"  # never committed: a crash now must not keep it
    store.close()

    reopened = KeyValueStore(path)
    assert reopened[b"kept"] == b"1"
    assert reopened.get_meta("chain_id") == "1337"
    assert b"lost" not in reopened
    assert reopened.get_meta("other") is None
    reopened.close()


def test_delete_is_committed(tmp_path: Path) -> None:
    path = tmp_path / "kv.sqlite3"
    store = KeyValueStore(path)
    store[b"k"] = b"v"
    store.commit()
    del store[b"k"]
    store.commit()
    store.close()
    assert b"k" not in KeyValueStore(path)


def test_rollback_forgets_pending(tmp_path: Path) -> None:
    store = KeyValueStore(tmp_path / "kv.sqlite3")
    store[b"k"] = b"v"
    store.set_meta("m", "x")
    store.rollback()
    assert b"k" not in store and store.get_meta("m") is None and not store.dirty


def test_commit_is_one_transaction(tmp_path: Path) -> None:
    """A failing commit leaves nothing half-written (SQLite rolls the whole batch back)."""
    path = tmp_path / "kv.sqlite3"
    store = KeyValueStore(path)
    store[b"good"] = b"1"
    store._pending_meta["m"] = None  # type: ignore[assignment]  # violates meta.v NOT NULL
    with pytest.raises(sqlite3.IntegrityError):
        store.commit()
    store.close()
    reopened = KeyValueStore(path)
    assert b"good" not in reopened
    reopened.close()


def test_is_empty(tmp_path: Path) -> None:
    store = KeyValueStore(tmp_path / "kv.sqlite3")
    assert store.is_empty()
    store.set_meta("x", "y")
    store.commit()
    assert not store.is_empty()


def test_garbage_file_is_store_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "kv.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreCorrupt, match=r"not a readable SQLite database.*move the data dir"):
        KeyValueStore(path)


def test_unopenable_path_is_node_error(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match="cannot open the chain store"):
        KeyValueStore(tmp_path / "missing-dir" / "kv.sqlite3")


def test_uses_wal(tmp_path: Path) -> None:
    store = KeyValueStore(tmp_path / "kv.sqlite3")
    mode = store._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


keys = st.binary(min_size=1, max_size=3)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, st.binary(max_size=4)),
        st.tuples(st.just("delete"), keys, st.just(b"")),
        st.tuples(st.just("commit"), st.just(b""), st.just(b"")),
        st.tuples(st.just("rollback"), st.just(b""), st.just(b"")),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_store_matches_a_dict_model(tmp_path_factory: pytest.TempPathFactory, ops: list) -> None:
    """Reads see pending writes; after a reopen exactly the committed state is there."""
    path = tmp_path_factory.mktemp("model") / "kv.sqlite3"
    store = KeyValueStore(path)
    committed: dict[bytes, bytes] = {}
    current: dict[bytes, bytes] = {}
    for op, key, value in ops:
        if op == "set":
            store[key] = value
            current[key] = value
        elif op == "delete":
            if key in current:
                del store[key]
                del current[key]
            else:
                with pytest.raises(KeyError):
                    del store[key]
        elif op == "commit":
            store.commit()
            committed = dict(current)
        else:
            store.rollback()
            current = dict(committed)
        for probe in {key, *current}:
            assert (probe in store) == (probe in current)
            if probe in current:
                assert store[probe] == current[probe]
    store.close()
    reopened = KeyValueStore(path)
    for probe in {k for _, k, _ in ops} | set(committed):
        assert (probe in reopened) == (probe in committed)
        if probe in committed:
            assert reopened[probe] == committed[probe]
    reopened.close()
