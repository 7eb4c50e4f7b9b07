"""The page cache: a page is made once per key, the least recently used go first, the bound
is in bytes, and the freshness written around the cached part is each request's own."""

from __future__ import annotations

import json
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from databright.server.api.page_cache import PageCache, page_response
from databright.server.api.schemas import DatasetOut, IndexStatus


def test_a_page_is_made_once_per_key_and_the_oldest_go_first() -> None:
    cache = PageCache(max_bytes=10)
    made: list[str] = []

    def make(text: str) -> bytes:
        made.append(text)
        return text.encode()

    assert cache.get("a", lambda: make("aaaa")) == b"aaaa"
    assert cache.get("a", lambda: make("zzzz")) == b"aaaa"  # kept: not made again
    cache.get("b", lambda: make("bbbb"))
    cache.get("a", lambda: make("aaaa"))  # a is now the most recently used
    cache.get("c", lambda: make("cccc"))  # 12 bytes: b, the least recently used, goes
    assert made == ["aaaa", "bbbb", "cccc"]
    cache.get("b", lambda: make("bbbb"))
    assert made[-1] == "bbbb" and (cache.hits, cache.misses) == (2, 4)
    # larger than the whole cache: served, not kept, nothing else evicted for it
    assert cache.get("big", lambda: make("x" * 11)) == b"x" * 11
    cache.get("big", lambda: make("x" * 11))
    assert made[-2:] == ["x" * 11, "x" * 11]


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 30)), max_size=200))
def test_the_cache_never_holds_more_than_its_bound(ops: list[tuple[int, int]]) -> None:
    cache = PageCache(max_bytes=64)
    for key, size in ops:
        body = cache.get(key, lambda size=size, key=key: bytes([key]) * size)  # type: ignore[misc]
        assert body == bytes([key]) * len(body)
        assert cache._bytes <= 64 and cache._bytes == sum(map(len, cache._entries.values()))


def test_requests_missing_one_page_at_once_make_it_once() -> None:
    cache = PageCache()
    started, release = threading.Event(), threading.Event()
    made: list[int] = []

    def slow() -> bytes:
        made.append(1)
        started.set()
        release.wait(5)
        return b"page"

    out: list[bytes] = []
    first = threading.Thread(target=lambda: out.append(cache.get("k", slow)))
    first.start()
    started.wait(5)
    others = [threading.Thread(target=lambda: out.append(cache.get("k", slow))) for _ in range(3)]
    for t in others:
        t.start()
    assert cache.get("other", lambda: b"x") == b"x"  # another key does not wait
    # the others asked while the first was making the page (else they would only have hit it)
    deadline = time.monotonic() + 5
    while cache.misses < 5 and time.monotonic() < deadline:  # "k" four times, "other" once
        time.sleep(0.01)
    assert cache.misses == 5 and not out
    release.set()
    for t in [first, *others]:
        t.join()
    assert out == [b"page"] * 4 and made == [1]


def test_a_failed_make_lets_the_next_request_try() -> None:
    cache = PageCache()

    def broken() -> bytes:
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        cache.get("k", broken)
    assert cache.get("k", lambda: b"ok") == b"ok"


def test_threads_asking_at_once_get_whole_pages() -> None:
    cache = PageCache()
    out: list[bytes] = []

    def ask() -> None:
        for i in range(200):
            out.append(cache.get(i % 7, lambda i=i: str(i % 7).encode() * 1000))  # type: ignore[misc]

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 800 and all(len(set(b)) == 1 and len(b) == 1000 for b in out)


def test_the_page_is_the_schema_with_fresh_status() -> None:
    cache = PageCache()
    item = DatasetOut(
        id="1", name='<b>"x"</b>', initiator="0x" + "1" * 40, token="0x" + "2" * 40,
        created_block=3, evaluators=[], proposals=0, accepted=0, voting_period_s="60",
        commit_period_s="30", reveal_period_s="30", evaluation_fee_wei="0", deposit_wei="1",
    )  # fmt: skip
    status = IndexStatus(
        chain_id=1, market="0x" + "3" * 40, indexed_block=5, head_block=9, lag=4, stale=False
    )
    first = page_response(cache, "k", DatasetOut, lambda: ([item], "7"), status)
    later = page_response(
        cache, "k", DatasetOut, lambda: ([], None), status.model_copy(update={"head_block": 10})
    )
    a, b = json.loads(first.body), json.loads(later.body)
    assert a["items"] == b["items"] == [item.model_dump()] and a["next_cursor"] == "7"
    assert a["source"] == "index" and (a["index"]["head_block"], b["index"]["head_block"]) == (
        9,
        10,
    )
