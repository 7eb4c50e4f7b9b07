"""The trie caches change no result: random trie edits give the same roots, values and stored
nodes with and without them, and decoded nodes handed out can be edited without harm."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from databright.node import trie_cache

_keys = st.one_of(st.binary(min_size=32, max_size=32), st.binary(min_size=1, max_size=3))
_ops = st.lists(st.tuples(st.booleans(), _keys, st.binary(min_size=1, max_size=40)), max_size=60)


@contextlib.contextmanager
def _caches(on: bool) -> Iterator[None]:
    """Caches on or off inside, as they were outside (the node process installs them)."""
    was_installed = trie_cache.installed()
    trie_cache.install() if on else trie_cache.uninstall()
    try:
        yield
    finally:
        trie_cache.install() if was_installed else trie_cache.uninstall()


@pytest.fixture
def cached() -> Iterator[None]:
    with _caches(True):
        yield


def _run(ops: list[tuple[bool, bytes, bytes]]) -> tuple[bytes, dict[bytes, bytes], dict]:
    db: dict[bytes, bytes] = {}
    trie = HexaryTrie(db, prune=True)
    model: dict[bytes, bytes] = {}
    for is_set, key, value in ops:
        if is_set:
            trie[key] = value
            model[key] = value
        elif key in model:
            del trie[key]
            del model[key]
    values = {key: trie[key] for key in model}
    return trie.root_hash, values, dict(db)


@settings(max_examples=60, deadline=None)
@given(ops=_ops)
def test_same_roots_values_and_nodes(ops: list[tuple[bool, bytes, bytes]]) -> None:
    with _caches(True):
        with_cache = _run(ops)
        with_cache_again = _run(ops)  # now from warm caches
    with _caches(False):
        without = _run(ops)
    assert with_cache == with_cache_again == without
    assert with_cache[1] == {key: value for key, value in _model(ops).items()}


def _model(ops: list[tuple[bool, bytes, bytes]]) -> dict[bytes, bytes]:
    model: dict[bytes, bytes] = {}
    for is_set, key, value in ops:
        if is_set:
            model[key] = value
        else:
            model.pop(key, None)
    return model


def test_decoded_nodes_are_fresh_copies(cached: None) -> None:
    import trie.hexary

    db: dict[bytes, bytes] = {}
    t = HexaryTrie(db)
    for i in range(40):
        t[bytes([i]) * 32] = b"v" * (i + 1)
    root = t.get_node(t.root_hash)
    assert isinstance(root, list) and len(root) == 17
    root[0] = b"edited"
    again = t.get_node(t.root_hash)
    assert again[0] != b"edited" and again is not root
    assert trie.hexary.decode_node is not trie_cache._originals[(trie.hexary, "decode_node")]


def test_install_is_idempotent_and_uninstall_restores(cached: None) -> None:
    import trie.hexary

    current = trie.hexary.decode_node
    trie_cache.install()
    assert trie.hexary.decode_node is current
    original = trie_cache._originals[(trie.hexary, "decode_node")]
    trie_cache.uninstall()
    try:
        assert trie.hexary.decode_node is original and not trie_cache.installed()
    finally:
        trie_cache.install()
