"""Index pages made once per state of the index.

A list page read from the index is a function of the request (its path and query) and of the
chain prefix the index holds: the last indexed block and its hash (a reorg changes the hash, so
a page never outlives the blocks it was read from). :class:`PageCache` keeps the JSON of each
page's items under that key, least recently used first out and bounded in bytes; what is fresh
on every request (how far the index lags the chain, whether the node answers) is written around
the cached part each time. The index changes only when the indexer commits a batch, so while
the chain is quiet, or between two batches, a page is read and serialised once, however many
people ask for it.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel, TypeAdapter

from databright.server.api.schemas import IndexStatus

__all__ = ["MAX_CACHED_BYTES", "WAIT_S", "PageCache", "cached_response", "page_response"]

#: The most bytes of page JSON kept (the largest pages, a dataset's thousand shareholders, are
#: about 100 kB).
MAX_CACHED_BYTES = 32 * 1024 * 1024
#: How long a request waits for another that is making the same page before making its own.
WAIT_S = 5.0


class PageCache:
    """Pages' items as JSON, by (request, index state); thread-safe (handlers run in a pool)."""

    def __init__(self, max_bytes: int = MAX_CACHED_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._making: dict[Hashable, threading.Event] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, make: Callable[[], bytes]) -> bytes:
        """The bytes kept under ``key``, else ``make()``'s (kept unless larger than the cache).
        Requests that miss one key at once make it once: the others wait for the first (at
        most ``WAIT_S``, then make their own); other keys never wait on it."""
        with self._lock:
            body = self._hit(key)
            if body is not None:
                return body
            self.misses += 1
            making = self._making.get(key)
            if making is None:
                self._making[key] = making = threading.Event()
                mine = True
            else:
                mine = False
        if not mine:
            making.wait(WAIT_S)
            with self._lock:
                body = self._hit(key)
            if body is not None:
                return body
        try:
            body = make()
            self._keep(key, body)
        finally:
            if mine:
                with self._lock:
                    del self._making[key]
                making.set()
        return body

    def peek(self, key: Hashable) -> bytes | None:
        """The bytes kept under ``key``, or None (nothing is made, nobody waits)."""
        with self._lock:
            return self._hit(key)

    def _hit(self, key: Hashable) -> bytes | None:
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        return body

    def _keep(self, key: Hashable, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        with self._lock:
            if key not in self._entries:
                self._entries[key] = body
                self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, old = self._entries.popitem(last=False)
                self._bytes -= len(old)


@functools.cache
def _list_of(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def page_response(
    cache: PageCache,
    key: Hashable,
    model: type[BaseModel],
    read: Callable[[], tuple[Sequence[BaseModel], str | None]],
    index: IndexStatus,
) -> Response:
    """A ``Page`` of ``model`` as JSON: its items and next cursor from the cache (``read()``
    on a miss), ``index`` (the page's freshness) written afresh."""

    def make() -> bytes:
        items, next_cursor = read()
        return (
            b'"items":'
            + _list_of(model).dump_json(list(items), by_alias=True)
            + b',"next_cursor":'
            + json.dumps(next_cursor).encode()
        )

    return _respond(cache.get(key, make), index)


def cached_response(cache: PageCache, key: Hashable, index: IndexStatus) -> Response | None:
    """:func:`page_response`'s answer when the page is kept under ``key``, else None."""
    kept = cache.peek(key)
    return None if kept is None else _respond(kept, index)


def _respond(kept: bytes, index: IndexStatus) -> Response:
    body = b'{"source":"index",' + kept + b',"index":'
    body += index.model_dump_json(by_alias=True).encode() + b"}"
    return Response(body, media_type="application/json")
