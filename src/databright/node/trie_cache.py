"""Memoized node decoding for py-evm's Merkle Patricia trie: the one internal hook of the node.

Why: py-evm keeps no decoded trie nodes between transactions (every block gets a fresh state
object), so every account and storage access walks the trie from the root, RLP-decoding each
node on its path and unpacking each node's hex-prefix key into nibbles, all in pure Python. For a
token transfer on this node that decoding was ~15% of the time per transaction. Both are pure
functions of immutable bytes, so their results can be kept:

* ``trie.hexary.decode_node`` (raw node bytes -> list): cached by the bytes; each call gets a
  fresh copy of the lists, because ``HexaryTrie`` edits decoded nodes in place;
* ``decode_nibbles`` and ``bytes_to_nibbles`` (bytes -> tuple of ints), where ``trie.hexary``
  and ``trie.utils.nodes`` look them up: cached by the bytes; tuples are immutable.

Nothing else changes: the same functions compute every value once; roots, proofs and database
contents are the same (``tests/node/test_trie_cache.py`` checks it against the
originals). The hook replaces module globals, so it applies to the whole process.

Checked against trie 4.0.0 (under py-evm 0.12.1b1 and eth-tester 0.14.0b1). If those modules
no longer have the names replaced here, :func:`install` leaves them alone and the node simply
runs without the caches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["install", "installed", "uninstall"]

_NODE_CACHE_SIZE = 1 << 16  # distinct nodes; a branch node is ~0.6 KB encoded, ~2 KB decoded
_NIBBLES_CACHE_SIZE = 1 << 16

_originals: dict[tuple[Any, str], Callable[..., Any]] = {}


def _thaw(node: Any) -> Any:
    # A decoded node is a list of bytes and (for embedded small nodes) lists: copy the lists.
    return [item if type(item) is bytes else _thaw(item) for item in node]


def _freeze(node: Any) -> Any:
    return tuple(item if type(item) is bytes else _freeze(item) for item in node)


def _cached_decode_node(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.lru_cache(_NODE_CACHE_SIZE)
    def frozen(encoded: bytes) -> Any:
        node = original(encoded)
        return _freeze(node) if type(node) is list else node

    def decode_node(encoded_node_or_hash: Any) -> Any:
        if type(encoded_node_or_hash) is not bytes:
            return original(encoded_node_or_hash)
        node = frozen(encoded_node_or_hash)
        return _thaw(node) if type(node) is tuple else node

    return decode_node


def _cached_bytes_function(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    cached = functools.lru_cache(_NIBBLES_CACHE_SIZE)(original)

    def function(value: Any) -> Any:
        return cached(value) if type(value) is bytes else original(value)

    return function


def _targets() -> list[tuple[Any, str, Callable[[Callable[[Any], Any]], Callable[[Any], Any]]]]:
    import trie.hexary
    import trie.utils.nodes

    return [
        (trie.hexary, "decode_node", _cached_decode_node),
        (trie.hexary, "bytes_to_nibbles", _cached_bytes_function),
        (trie.hexary, "decode_nibbles", _cached_bytes_function),
        (trie.utils.nodes, "decode_nibbles", _cached_bytes_function),
    ]


def install() -> None:
    """Put the caches in place (idempotent)."""
    for module, name, wrap in _targets():
        key = (module, name)
        original = getattr(module, name, None)
        if key in _originals or not callable(original):
            continue
        _originals[key] = original
        setattr(module, name, wrap(original))


def uninstall() -> None:
    """Put the original functions back (for tests that compare both)."""
    for (module, name), original in list(_originals.items()):
        setattr(module, name, original)
        del _originals[(module, name)]


def installed() -> bool:
    return bool(_originals)
