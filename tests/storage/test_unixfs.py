"""UnixFS CIDs against the reference importer, and the verifier against forged DAGs.

``vectors/unixfs.json`` was written by ``tools/databright_dev/unixfs_vectors.mjs`` (how to run
it is in its header) with ``ipfs-unixfs-importer`` 17.1.1 configured as ``ipfs add
--cid-version 1`` (kubo's classic profile), so these tests need neither node nor npm. The input
bytes are SHAKE128 of a seed, rebuilt here, so the 45.6 MB cases commit no data.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID

from databright.errors import BlobCorrupt, BlobNotFound, DataBrightError, InvalidArgument
from databright.storage.unixfs import (
    CHUNK_BYTES,
    MAX_LINKS,
    FileHasher,
    _file_data,
    _pb_node,
    assemble,
    blocks,
    blocks_of_stream,
    file_cid,
    file_cid_of_stream,
    matches,
    matches_stream,
)

REPO = Path(__file__).resolve().parents[2]
VECTORS = Path(__file__).parent / "vectors"
SIZES = [0, 5, CHUNK_BYTES, CHUNK_BYTES + 1, 3_000_000, MAX_LINKS * CHUNK_BYTES]
SIZES.append(MAX_LINKS * CHUNK_BYTES + 1)  # two levels of links: 175 leaves


@cache
def _vector() -> dict[str, Any]:
    return json.loads((VECTORS / "unixfs.json").read_text(encoding="utf-8"))


@cache
def _data(size: int) -> bytes:
    return hashlib.shake_128(_vector()["seed"].encode()).digest(size)


def _case(size: int) -> dict[str, Any]:
    (case,) = [c for c in _vector()["cases"] if c["size"] == size]
    return case


def test_vector_was_made_by_the_committed_generator() -> None:
    vector = _vector()
    script = REPO / vector["generator"]
    assert hashlib.sha256(script.read_bytes()).hexdigest() == vector["script_sha256"]
    assert vector["libraries"]["ipfs-unixfs-importer"] == "17.1.1"
    assert vector["profile"] == {
        "chunk_bytes": CHUNK_BYTES,
        "max_links": MAX_LINKS,
        "raw_leaves": True,
        "layout": "balanced",
    }
    assert [c["size"] for c in vector["cases"]] == SIZES


@pytest.mark.parametrize("size", SIZES)
def test_cid_equals_the_reference_importer(size: int) -> None:
    case = _case(size)
    data = _data(size)
    assert hashlib.sha256(data).hexdigest() == case["data_sha256"]  # the same input bytes
    assert file_cid(data) == case["cid"]
    assert file_cid_of_stream(io.BytesIO(data)) == case["cid"]
    # A single-chunk file is its raw leaf: the CID DataBright always gave it.
    assert case["cid"].startswith("bafkrei" if size <= CHUNK_BYTES else "bafybei")


@pytest.mark.parametrize("size", SIZES)
def test_blocks_rebuild_the_file_and_match_the_reference_count(size: int) -> None:
    data = _data(size)
    case = _case(size)
    pairs = list(blocks(data))
    assert pairs[0][0] == case["cid"]  # the root first
    assert len(pairs) == case["blocks"]
    assert len({cid for cid, _ in pairs}) == len(pairs)
    assert assemble(case["cid"], dict(pairs).__getitem__) == data
    from_stream = [
        (str(CID.decode(c).set(base="base32")), b) for c, b in blocks_of_stream(io.BytesIO(data))
    ]
    assert from_stream == pairs


def test_equal_chunks_are_one_block() -> None:
    data = bytes(3 * CHUNK_BYTES)  # three equal leaves
    pairs = list(blocks(data))
    assert len(pairs) == 2  # the root and the one zero leaf it links three times
    assert assemble(pairs[0][0], dict(pairs).__getitem__) == data


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(0, 3 * CHUNK_BYTES + 7),
    cuts=st.lists(st.integers(0, 3 * CHUNK_BYTES + 7), max_size=6),
)
def test_the_cid_does_not_depend_on_how_the_bytes_arrive(size: int, cuts: list[int]) -> None:
    data = _data(size)
    hasher = FileHasher()
    start = 0
    for cut in sorted(c for c in cuts if c <= size):
        hasher.update(data[start:cut])
        start = cut
    hasher.update(data[start:])
    cid = hasher.cid()
    assert cid == file_cid(data)
    assert matches(cid, data)
    assert matches_stream(cid, io.BytesIO(data))
    assert assemble(cid, dict(blocks(data)).__getitem__) == data


def test_a_finished_hasher_takes_no_more_bytes() -> None:
    hasher = FileHasher()
    hasher.update(b"abc")
    hasher.cid()
    with pytest.raises(InvalidArgument, match="finished"):
        hasher.update(b"d")


def test_matches_accepts_legacy_raw_cids_of_large_blobs() -> None:
    data = _data(CHUNK_BYTES + 1)
    legacy = str(CID("base32", 1, "raw", ("sha2-256", hashlib.sha256(data).digest())))
    assert matches(legacy, data)
    assert matches_stream(legacy, io.BytesIO(data))
    assert not matches(file_cid(data), data[:-1] + b"\x00")
    assert not matches(file_cid(data), data[:CHUNK_BYTES])


# --- the verifier against forged DAGs -------------------------------------------------------


def _pb_cid(block: bytes) -> str:
    return str(CID("base32", 1, "dag-pb", ("sha2-256", hashlib.sha256(block).digest())))


def _raw_cid(block: bytes) -> str:
    return str(CID("base32", 1, "raw", ("sha2-256", hashlib.sha256(block).digest())))


def test_a_damaged_leaf_is_refused() -> None:
    data = _data(CHUNK_BYTES + 100)
    pairs = dict(blocks(data))
    keys = list(pairs)
    root, leaf = keys[0], keys[2]
    pairs[leaf] = pairs[leaf][:-1] + b"?"
    with pytest.raises(BlobCorrupt, match=f"block {leaf} does not match its CID"):
        assemble(root, pairs.__getitem__)


def test_a_missing_block_is_not_found() -> None:
    data = _data(CHUNK_BYTES + 100)
    pairs = dict(blocks(data))
    root = next(iter(pairs))
    del pairs[list(pairs)[1]]
    with pytest.raises(BlobNotFound, match="is missing"):
        assemble(root, pairs.__getitem__)


def test_sizes_that_do_not_add_up_are_refused() -> None:
    leaf = b"hello"
    lying = _pb_node([(bytes(CID.decode(_raw_cid(leaf))), 5)], _file_data(10, [10]))
    store = {_pb_cid(lying): lying, _raw_cid(leaf): leaf}
    with pytest.raises(InvalidArgument, match="has 5 bytes, its parent says 10"):
        assemble(_pb_cid(lying), store.__getitem__)
    inconsistent = _pb_node([(bytes(CID.decode(_raw_cid(leaf))), 5)], _file_data(7, [5]))
    with pytest.raises(InvalidArgument, match="says 7 bytes but its parts add to 5"):
        assemble(_pb_cid(inconsistent), {_pb_cid(inconsistent): inconsistent}.__getitem__)


def test_a_small_dag_declaring_a_huge_file_is_refused_before_fetching_children() -> None:
    # One leaf linked MAX_LINKS times, three levels deep: 5 GB described by three blocks.
    leaf = bytes(CHUNK_BYTES)
    child, size, store = _raw_cid(leaf), CHUNK_BYTES, {_raw_cid(leaf): leaf}
    for _ in range(3):
        link = bytes(CID.decode(child))
        node = _pb_node(
            [(link, size)] * MAX_LINKS, _file_data(size * MAX_LINKS, [size] * MAX_LINKS)
        )
        child, size = _pb_cid(node), size * MAX_LINKS
        store[child] = node
    asked: list[str] = []

    def get_block(cid: str) -> bytes:
        asked.append(cid)
        return store[cid]

    with pytest.raises(InvalidArgument, match="more than 1000000 bytes"):
        assemble(child, get_block, max_bytes=1_000_000)
    assert asked == [child]


def test_not_a_file_and_not_dag_pb_are_refused() -> None:
    directory = _pb_node([], b"\x08\x01")
    with pytest.raises(InvalidArgument, match="type 1, not a file"):
        assemble(_pb_cid(directory), {_pb_cid(directory): directory}.__getitem__)
    garbage = b"\xff\xff\xff"
    with pytest.raises(InvalidArgument, match="not a UnixFS file node"):
        assemble(_pb_cid(garbage), {_pb_cid(garbage): garbage}.__getitem__)


def test_a_deep_chain_is_refused() -> None:
    leaf = b"x"
    child, store = _raw_cid(leaf), {_raw_cid(leaf): leaf}
    for _ in range(20):
        node = _pb_node([(bytes(CID.decode(child)), 1)], _file_data(1, [1]))
        child = _pb_cid(node)
        store[child] = node
    with pytest.raises(InvalidArgument, match="deeper than"):
        assemble(child, store.__getitem__)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_root_block_is_refused_with_a_databright_error_or_read(block: bytes) -> None:
    cid = _pb_cid(block)
    with contextlib.suppress(DataBrightError):
        assemble(cid, {cid: block}.__getitem__)


def test_blocks_of_stream_checks_the_root_and_every_leaf_it_rereads() -> None:
    data = _data(2 * CHUNK_BYTES + 9)
    with pytest.raises(BlobCorrupt, match="does not match that CID"):
        blocks_of_stream(io.BytesIO(data), expect=file_cid(data[:-1]))
    f = io.BytesIO(data)
    pairs = blocks_of_stream(f, expect=file_cid(data))  # the tree is built: first read done
    f.getbuffer()[CHUNK_BYTES + 1] ^= 0xFF  # the file changes before its leaves are read
    with pytest.raises(BlobCorrupt, match="changed while block"):
        list(pairs)
