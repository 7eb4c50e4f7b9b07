"""CIDs: built by multiformats, convertible to and from the bytes32 the contracts keep."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiformats import CID, multihash

from databright.storage import (
    InvalidCID,
    cid_for_bytes,
    cid_to_digest,
    digest_to_cid,
    normalize_cid,
)
from databright.storage.cid import cids_for_digest
from databright.storage.unixfs import CHUNK_BYTES

HELLO_CID = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"


def test_known_cid_of_hello() -> None:
    # What `ipfs add --cid-version 1 --raw-leaves` prints for the 5 bytes b"hello".
    assert cid_for_bytes(b"hello") == HELLO_CID
    assert cid_to_digest(HELLO_CID) == hashlib.sha256(b"hello").digest()


@given(st.binary(max_size=512))
def test_small_blob_cid_and_digest_round_trip(data: bytes) -> None:
    cid = cid_for_bytes(data)
    digest = cid_to_digest(cid)
    assert digest == hashlib.sha256(data).digest()
    assert len(digest) == 32
    assert digest_to_cid(digest) == cid
    assert cid.startswith("bafkrei")


@given(st.binary(min_size=32, max_size=32))
def test_digest_round_trip(digest: bytes) -> None:
    assert cid_to_digest(digest_to_cid(digest)) == digest


def test_other_multibase_is_normalised_to_base32() -> None:
    base58 = str(CID.decode(HELLO_CID).set(base="base58btc"))
    assert base58.startswith("z")
    assert normalize_cid(base58) == HELLO_CID
    assert cid_to_digest(base58) == cid_to_digest(HELLO_CID)


def test_cid_object_is_accepted() -> None:
    assert normalize_cid(CID.decode(HELLO_CID)) == HELLO_CID


@pytest.mark.parametrize("digest", [b"", b"\x00" * 31, b"\x00" * 33])
def test_digest_of_wrong_length_is_refused(digest: bytes) -> None:
    with pytest.raises(InvalidCID, match=f"got {len(digest)} bytes"):
        digest_to_cid(digest)


def test_garbage_is_not_a_cid() -> None:
    with pytest.raises(InvalidCID, match="'not-a-cid' is not a CID"):
        cid_to_digest("not-a-cid")
    with pytest.raises(InvalidCID, match="expected a CID string"):
        normalize_cid(42)  # type: ignore[arg-type]


def test_cid_v0_and_other_codecs_are_refused() -> None:
    v0 = str(CID("base58btc", 0, "dag-pb", multihash.digest(b"hello", "sha2-256")))
    with pytest.raises(InvalidCID, match="CIDv0 with codec dag-pb"):
        cid_to_digest(v0)
    dag_json = str(CID("base32", 1, "dag-json", multihash.digest(b"{}", "sha2-256")))
    with pytest.raises(InvalidCID, match="raw or dag-pb codec, sha2-256"):
        cid_to_digest(dag_json)
    sha512 = str(CID("base32", 1, "raw", multihash.digest(b"hello", "sha2-512")))
    with pytest.raises(InvalidCID, match="hash sha2-512"):
        cid_to_digest(sha512)


def test_invalid_cid_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        cid_to_digest("x")


def test_large_blob_cid_is_dag_pb_and_its_digest_finds_it() -> None:
    data = bytes(range(256)) * (CHUNK_BYTES // 256 + 1)  # one chunk and 256 bytes
    cid = cid_for_bytes(data)
    assert cid.startswith("bafybei")  # CIDv1 dag-pb sha2-256: a UnixFS root
    digest = cid_to_digest(cid)
    assert digest != hashlib.sha256(data).digest()  # the root block's hash, not the file's
    assert normalize_cid(cid) == cid
    raw, dag_pb = cids_for_digest(digest)
    assert dag_pb == cid
    assert raw == digest_to_cid(digest) and raw.startswith("bafkrei")


@given(st.binary(min_size=32, max_size=32))
def test_both_cids_of_a_digest_give_it_back(digest: bytes) -> None:
    raw, dag_pb = cids_for_digest(digest)
    assert cid_to_digest(raw) == cid_to_digest(dag_pb) == digest
    assert raw == digest_to_cid(digest)
    assert CID.decode(raw).codec.name == "raw"
    assert CID.decode(dag_pb).codec.name == "dag-pb"


def test_cids_for_a_digest_of_wrong_length_are_refused() -> None:
    with pytest.raises(InvalidCID, match="got 31 bytes"):
        cids_for_digest(b"\x00" * 31)


def test_truncated_sha256_digest_is_refused() -> None:
    short = str(CID("base32", 1, "raw", ("sha2-256", b"\x01" * 20)))
    with pytest.raises(InvalidCID, match="raw or dag-pb codec"):
        normalize_cid(short)
