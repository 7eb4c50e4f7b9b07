"""CARv1: byte-identical to @ipld/car's, read back verified, malformed input refused."""

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
from multiformats import CID, multihash

from databright.errors import BlobCorrupt, DataBrightError, InvalidArgument
from databright.storage.car import read_car, write_car, write_file_car
from databright.storage.unixfs import CHUNK_BYTES, assemble, blocks, file_cid

VECTORS = Path(__file__).parent / "vectors"


@cache
def _vector() -> dict[str, Any]:
    return json.loads((VECTORS / "unixfs.json").read_text(encoding="utf-8"))


def _data(size: int) -> bytes:
    return hashlib.shake_128(_vector()["seed"].encode()).digest(size)


def _car(data: bytes) -> bytes:
    out = io.BytesIO()
    write_car(out, file_cid(data), blocks(data))
    return out.getvalue()


@pytest.mark.parametrize("case", _vector()["cases"][:5], ids=lambda c: str(c["size"]))
def test_our_car_is_byte_identical_to_ipld_car(case: dict[str, Any]) -> None:
    data = _data(case["size"])
    car = _car(data)
    assert (len(car), hashlib.sha256(car).hexdigest()) == (case["car_bytes"], case["car_sha256"])
    via_file = io.BytesIO()
    assert write_file_car(via_file, case["cid"], io.BytesIO(data)) == len(car)
    assert via_file.getvalue() == car


@pytest.mark.parametrize("name", ["unixfs_0.car", "unixfs_5.car"])
def test_a_car_written_by_ipld_car_is_read(name: str) -> None:
    (case,) = [c for c in _vector()["cases"] if c.get("car_file") == name]
    roots, pairs = read_car(io.BytesIO((VECTORS / name).read_bytes()))
    assert roots == [case["cid"]]
    blocks_read = dict(pairs)
    assert assemble(case["cid"], blocks_read.__getitem__) == _data(case["size"])


def test_a_multi_block_car_round_trips() -> None:
    data = _data(3 * CHUNK_BYTES + 17)
    roots, pairs = read_car(io.BytesIO(_car(data)))
    got = list(pairs)
    assert roots == [file_cid(data)] == [got[0][0]]
    assert got == list(blocks(data))
    assert assemble(roots[0], dict(got).__getitem__) == data


def test_several_roots_round_trip() -> None:
    a, b = b"first", b"second"
    out = io.BytesIO()
    write_car(out, [file_cid(a), file_cid(b)], [(file_cid(a), a), (file_cid(b), b)])
    roots, pairs = read_car(io.BytesIO(out.getvalue()))
    assert roots == [file_cid(a), file_cid(b)]
    assert dict(pairs) == {file_cid(a): a, file_cid(b): b}


def test_write_file_car_refuses_a_file_that_is_not_the_cid() -> None:
    big = _data(CHUNK_BYTES + 1)
    out = io.BytesIO()
    with pytest.raises(BlobCorrupt, match="does not match that CID"):
        write_file_car(out, file_cid(big), io.BytesIO(big[:-1] + b"\x00"))
    with pytest.raises(BlobCorrupt, match="does not match that CID"):
        write_file_car(out, file_cid(b"hello"), io.BytesIO(b"hellO"))
    assert out.getvalue() == b""  # nothing written before the check


# --- malformed input ------------------------------------------------------------------------

HELLO = _car(b"hello")


def _read_all(car: bytes) -> list[tuple[str, bytes]]:
    _roots, pairs = read_car(io.BytesIO(car))
    return list(pairs)


@pytest.mark.parametrize(
    ("car", "message"),
    [
        (b"", "ends inside a length prefix"),
        (HELLO[:10], "ends inside the header"),
        (HELLO[:-1], "ends inside a block"),
        (b"\x80\x00", "not minimally encoded"),
        (b"\x00", "header length is 0 bytes"),
        (b"\x03\xa0\x00\x00", "not the DAG-CBOR map"),
        (HELLO[:1] + HELLO[1:].replace(b"version\x01", b"version\x03"), "version is not 1"),
    ],
    ids=["empty", "short-header", "short-block", "varint", "zero-header", "not-map", "version"],
)
def test_malformed_cars_are_refused(car: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        _read_all(car)


def test_a_car_without_roots_is_refused() -> None:
    header = b"\xa2\x65roots\x80\x67version\x01"
    with pytest.raises(InvalidArgument, match="names no root"):
        _read_all(bytes([len(header)]) + header)


def test_carv2_is_named() -> None:
    pragma = bytes.fromhex("0aa16776657273696f6e02")
    with pytest.raises(InvalidArgument, match="CARv2"):
        _read_all(pragma + bytes(40))


def test_a_block_that_does_not_match_its_cid_is_refused() -> None:
    forged = HELLO[:-5] + b"HELLO"
    with pytest.raises(BlobCorrupt, match="does not match its CID"):
        _read_all(forged)


def test_an_oversized_section_is_refused_before_it_is_read() -> None:
    big = _car(_data(CHUNK_BYTES))
    _roots, pairs = read_car(io.BytesIO(big), max_block_bytes=1024)
    with pytest.raises(InvalidArgument, match="exceeds the 1024-byte limit"):
        list(pairs)


def test_a_block_hashed_otherwise_is_refused() -> None:
    cid = CID("base32", 1, "raw", multihash.digest(b"hello", "sha2-512"))
    out = io.BytesIO()
    write_car(out, str(cid), [(str(cid), b"hello")])
    with pytest.raises(InvalidArgument, match="hashed with sha2-512"):
        _read_all(out.getvalue())


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(HELLO) - 1), st.integers(0, 255))
def test_any_one_byte_change_is_refused_or_harmless(at: int, value: int) -> None:
    car = bytearray(HELLO)
    car[at] = value
    try:
        pairs = _read_all(bytes(car))
    except DataBrightError:
        return
    assert all(hashlib.sha256(b).digest() == CID.decode(c).raw_digest for c, b in pairs)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_refused_with_a_databright_error(car: bytes) -> None:
    with contextlib.suppress(DataBrightError):
        _read_all(car)
