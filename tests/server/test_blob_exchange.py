"""Blobs that travel: a store served as a trustless gateway, fetched and verified by another."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests
from databright_dev.serving import serving
from fastapi import FastAPI
from fastapi.responses import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from databright.errors import BlobNotFound, InvalidArgument
from databright.server.gateway import blob_gateway
from databright.storage import LocalBlobStore, MemoryBlobStore, cid_for_bytes, cid_to_digest
from databright.storage.remote import (
    MISS_TTL_S,
    GatewaySource,
    SourcedBlobStore,
    check_source_url,
)


@pytest.fixture(scope="module")
def peer() -> object:
    """One participant's store, served for the whole module."""
    store = MemoryBlobStore()
    with serving(blob_gateway(store)) as url:
        yield store, url


def test_a_blob_travels_verified_and_is_kept(peer, tmp_path: Path) -> None:
    store, url = peer
    cid = store.put(b"the schema of dataset 1")
    mine = SourcedBlobStore(LocalBlobStore(tmp_path / "blobs"), [GatewaySource(url)])
    assert not mine.has(cid)
    assert mine.get(cid) == b"the schema of dataset 1"
    assert mine.has(cid) and mine.local.get(cid) == b"the schema of dataset 1"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=4096))
def test_whatever_one_store_holds_another_fetches_byte_for_byte(peer, data: bytes) -> None:
    store, url = peer
    cid = store.put(data)
    mine = SourcedBlobStore(MemoryBlobStore(), [GatewaySource(url)])
    assert mine.get(cid) == data


def test_the_gateway_answers_raw_blocks_as_the_spec_says(peer) -> None:
    store, url = peer
    cid = store.put(b"x" * 1000)
    by_query = requests.get(f"{url}/ipfs/{cid}", params={"format": "raw"}, timeout=10)
    assert by_query.status_code == 200 and by_query.content == b"x" * 1000
    assert by_query.headers["content-type"] == "application/vnd.ipld.raw"
    assert by_query.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in by_query.headers["cache-control"]
    by_accept = requests.get(
        f"{url}/ipfs/{cid}", headers={"Accept": "application/vnd.ipld.raw"}, timeout=10
    )
    assert by_accept.content == b"x" * 1000
    head = requests.head(f"{url}/ipfs/{cid}?format=raw", timeout=10)
    assert head.status_code == 200 and head.headers["content-length"] == "1000"


def test_the_gateway_refuses_what_it_does_not_serve(peer) -> None:
    _, url = peer
    bad = requests.get(f"{url}/ipfs/not-a-cid?format=raw", timeout=10)
    assert bad.status_code == 400 and "not a CID" in bad.json()["error"]["message"]
    absent = cid_for_bytes(b"nobody stored this")
    assert requests.get(f"{url}/ipfs/{absent}?format=raw", timeout=10).status_code == 404
    cid = peer[0].put(b"y")
    plain = requests.get(f"{url}/ipfs/{cid}", timeout=10)
    assert plain.status_code == 406 and "format=raw" in plain.json()["error"]["message"]
    assert requests.post(f"{url}/ipfs/{cid}?format=raw", timeout=10).status_code == 405
    assert requests.get(f"{url}/ipfs/", timeout=10).status_code == 404  # no listing


def test_a_damaged_blob_is_never_served(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    cid = store.put(b"intact bytes")
    store.path(cid, verify=False).write_bytes(b"tampered!!!!")
    with serving(blob_gateway(store)) as url:
        assert requests.get(f"{url}/ipfs/{cid}?format=raw", timeout=10).status_code == 404


def _liar() -> FastAPI:
    app = FastAPI()

    @app.get("/ipfs/{cid}")
    def lie(cid: str) -> Response:
        return Response(b"not what you asked for", media_type="application/vnd.ipld.raw")

    return app


def test_a_lying_source_is_skipped_and_nothing_it_sent_is_stored(peer) -> None:
    store, honest = peer
    cid = store.put(b"the real data")
    with serving(_liar()) as liar:
        alone = SourcedBlobStore(MemoryBlobStore(), [GatewaySource(liar)])
        with pytest.raises(BlobNotFound, match="do not match"):
            alone.get(cid)
        assert list(alone) == []
        both = SourcedBlobStore(MemoryBlobStore(), [GatewaySource(liar), GatewaySource(honest)])
        assert both.get(cid) == b"the real data"


def test_an_oversized_answer_is_cut_off(peer) -> None:
    store, url = peer
    cid = store.put(b"z" * 5000)
    small = SourcedBlobStore(MemoryBlobStore(), [GatewaySource(url, max_bytes=1000)])
    with pytest.raises(BlobNotFound, match="limit"):
        small.get(cid)


def test_missing_blobs_name_every_source_and_what_to_do(peer) -> None:
    _, url = peer
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nobody listens once it closes
    cid = cid_for_bytes(b"withheld")
    store = SourcedBlobStore(MemoryBlobStore(), [GatewaySource(url), GatewaySource(dead, 2)])
    with pytest.raises(BlobNotFound) as err:
        store.get(cid)
    message = str(err.value)
    assert "does not hold it" in message and "unreachable" in message
    assert "databright store serve" in message and err.value.cid == cid
    with pytest.raises(BlobNotFound, match="no blob source is configured"):
        SourcedBlobStore(MemoryBlobStore()).get(cid)


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "ftp://x", "http://", "file:///etc"])
def test_a_source_must_be_an_http_url(url: str) -> None:
    with pytest.raises(InvalidArgument, match="http://"):
        check_source_url(url)


def test_a_large_blob_travels_as_a_car_every_block_checked(peer) -> None:
    store, url = peer
    data = bytes(range(256)) * 1500  # 384,000 bytes: two 256 KiB leaves under a dag-pb root
    cid = store.put(data)
    assert cid.startswith("bafybei")  # dag-pb, as `ipfs add --cid-version 1` gives
    mine = SourcedBlobStore(MemoryBlobStore(), [GatewaySource(url)])
    assert mine.get(cid) == data


def test_the_address_of_an_on_chain_digest_is_found_where_the_blob_is(peer) -> None:
    store, url = peer
    small, large = store.put(b"a schema"), store.put(b"\x07" * 300_000)
    mine = SourcedBlobStore(MemoryBlobStore(), [GatewaySource(url)])
    for cid in (small, large):
        assert mine.locate(cid_to_digest(cid)) == cid
    nobody = cid_for_bytes(b"held by no one")
    assert SourcedBlobStore(MemoryBlobStore()).locate(cid_to_digest(nobody)) == nobody


def test_a_digest_nobody_holds_is_not_asked_for_again_until_its_miss_expires(peer) -> None:
    """A page listing many models must not cost a HEAD to every source per blob per request;
    yet a blob a contributor starts serving later is found once the miss expires."""
    store, url = peer
    asked: list[str] = []

    class Counted(GatewaySource):
        def holds(self, cid: str) -> bool:
            asked.append(cid)
            return super().holds(cid)

    source = Counted(url)
    now = [1000.0]
    mine = SourcedBlobStore(MemoryBlobStore(), [source], clock=lambda: now[0])
    late = b"served only later"
    digest = cid_to_digest(cid_for_bytes(late))
    assert mine.locate(digest) == cid_for_bytes(late)
    first = len(asked)
    assert first >= 1
    store.put(late)  # its contributor starts serving it
    now[0] += MISS_TTL_S / 2
    assert mine.locate(digest) == cid_for_bytes(late) and len(asked) == first
    now[0] += MISS_TTL_S
    assert mine.locate(digest) == cid_for_bytes(late) and len(asked) > first
    # found now: kept, never asked again
    again = len(asked)
    now[0] += 10 * MISS_TTL_S
    mine.locate(digest)
    assert len(asked) == again
