"""What every blob store does, run against each implementation (the ``backend`` fixture).

Tests that only make sense for one store (crash safety and staging files on disk, the mapping
behind the memory store) are in test_local_blobstore.py and test_memory_blobstore.py.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from multiformats import CID

from databright.errors import InvalidCID, NotFound, StorageError
from databright.storage import BlobCorrupt, BlobNotFound, BlobStore, cid_for_bytes
from databright.storage.blobstore import cid_in_store
from databright.storage.cid import cid_to_digest, cids_for_digest
from databright.storage.unixfs import CHUNK_BYTES, file_cid

from .conftest import Backend


def _flipped(data: bytes, offset: int) -> bytes:
    raw = bytearray(data)
    raw[offset] ^= 0xFF
    return bytes(raw)


def test_is_a_blob_store(backend: Backend) -> None:
    assert isinstance(backend.store, BlobStore)


def test_put_get_round_trip(backend: Backend) -> None:
    store = backend.store
    cid = store.put(b"some bytes")
    assert cid == cid_for_bytes(b"some bytes")
    assert store.get(cid) == b"some bytes"
    assert store.has(cid)
    assert cid in store
    assert store.size(cid) == 10
    assert list(store) == [cid]


def test_put_accepts_bytearray_and_memoryview(backend: Backend) -> None:
    store = backend.store
    data = bytearray(b"mutable")
    cid = store.put(data)
    assert store.put(memoryview(b"mutable")) == cid
    data[0:1] = b"M"  # the caller's buffer changing later does not change the blob
    assert store.get(cid) == b"mutable"


def test_put_is_idempotent(backend: Backend) -> None:
    first = backend.store.put(b"x" * 1000)
    second = backend.store.put(b"x" * 1000)
    assert first == second
    assert list(backend.store) == [first]


def test_iteration_lists_every_blob_once(backend: Backend) -> None:
    cids = {backend.store.put(bytes([i]) * i) for i in range(5)}
    assert sorted(backend.store) == sorted(cids)


def test_empty_blob(backend: Backend) -> None:
    cid = backend.store.put(b"")
    assert backend.store.get(cid) == b""
    assert backend.store.size(cid) == 0


def test_put_file_streams_and_matches_put(backend: Backend, tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 12345)  # more than one 1 MiB chunk
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    cid = backend.store.put_file(source)
    assert cid == cid_for_bytes(data)
    assert backend.store.get(cid) == data
    assert backend.store.put_file(str(source)) == cid  # again, by str: a no-op
    assert list(backend.store) == [cid]


def test_put_file_of_a_missing_file(backend: Backend, tmp_path: Path) -> None:
    pattern = rf"cannot add .*missing\.bin to {re.escape(backend.where)} \(No such file"
    with pytest.raises(StorageError, match=pattern):
        backend.store.put_file(tmp_path / "missing.bin")
    assert list(backend.store) == []


def test_open_returns_verified_handle_at_start(backend: Backend) -> None:
    cid = backend.store.put(b"0123456789")
    with backend.store.open(cid) as f:
        assert f.read(4) == b"0123"
        assert f.read() == b"456789"


def test_cid_objects_and_other_multibases_are_accepted(backend: Backend) -> None:
    cid = backend.store.put(b"abc")
    parsed = CID.decode(cid)
    assert backend.store.get(parsed) == b"abc"
    assert backend.store.has(parsed) and parsed in backend.store
    base58 = str(parsed.set(base="base58btc"))
    assert base58 != cid
    assert backend.store.get(base58) == b"abc"


def test_unknown_cid_is_not_found(backend: Backend) -> None:
    store = backend.store
    cid = cid_for_bytes(b"never stored")
    assert not store.has(cid)
    assert cid not in store
    with pytest.raises(BlobNotFound) as info:
        store.get(cid)
    assert str(info.value) == (
        f"blob {cid} is not in {backend.where}; add it with put() or fetch it from a peer that "
        "has it"
    )
    assert info.value.cid == cid
    # Catchable as DataBright's NotFound, as a StorageError and as Python's LookupError/OSError.
    assert isinstance(info.value, NotFound)
    assert isinstance(info.value, StorageError)
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, OSError)
    for call in (store.open, store.verify, store.size):
        with pytest.raises(BlobNotFound):
            call(cid)


def test_blob_removed_behind_the_stores_back_is_not_found(backend: Backend) -> None:
    cid = backend.store.put(b"here today")
    backend.remove(cid)
    assert not backend.store.has(cid)
    with pytest.raises(BlobNotFound):
        backend.store.get(cid)
    assert backend.store.put(b"here today") == cid
    assert backend.store.get(cid) == b"here today"


def test_contains_refuses_non_cids(backend: Backend) -> None:
    assert 42 not in backend.store
    assert b"bytes are not a CID" not in backend.store


def test_invalid_cid_is_refused(backend: Backend) -> None:
    for call in (backend.store.get, backend.store.has, backend.store.open, backend.store.size):
        with pytest.raises(InvalidCID, match="is not a CID"):
            call("../../etc/passwd")


@pytest.mark.parametrize("offset", [0, 5, -1])
def test_damaged_blob_is_detected_and_never_handed_out(backend: Backend, offset: int) -> None:
    store = backend.store
    cid = store.put(b"precious example data")
    backend.overwrite(cid, _flipped(b"precious example data", offset))
    with pytest.raises(BlobCorrupt) as info:
        store.get(cid)
    message = str(info.value)
    assert message.startswith(
        f"blob {cid} in {backend.where} is damaged (its bytes no longer match its CID); "
    )
    assert message.endswith("put() the original data again or fetch it from a peer")
    assert info.value.cid == cid
    assert isinstance(info.value, StorageError)
    with pytest.raises(BlobCorrupt):
        store.open(cid)
    with pytest.raises(BlobCorrupt):
        store.verify(cid)
    # Still there (has, size and iteration do not read the bytes), just not to be trusted.
    assert store.has(cid)
    assert store.size(cid) == len(b"precious example data")
    assert list(store) == [cid]


def test_truncated_blob_is_detected(backend: Backend) -> None:
    cid = backend.store.put(b"0123456789")
    backend.overwrite(cid, b"01234")
    with pytest.raises(BlobCorrupt, match="is damaged"):
        backend.store.get(cid)
    assert backend.store.size(cid) == 5  # unverified, as documented


def test_put_of_the_original_repairs_a_damaged_blob(backend: Backend) -> None:
    cid = backend.store.put(b"repair me")
    backend.overwrite(cid, b"repair mE")
    assert backend.store.put(b"repair me") == cid
    assert backend.store.get(cid) == b"repair me"
    backend.store.verify(cid)


def test_put_file_of_the_original_repairs_a_damaged_blob(backend: Backend, tmp_path: Path) -> None:
    source = tmp_path / "original.bin"
    source.write_bytes(b"repair me from a file")
    cid = backend.store.put_file(source)
    backend.overwrite(cid, b"garbage")
    assert backend.store.put_file(source) == cid
    assert backend.store.get(cid) == b"repair me from a file"


# --- IPFS-exact addresses for blobs of more than one chunk ----------------------------------


def _big(n: int) -> bytes:
    return hashlib.shake_128(b"a blob of several chunks").digest(n)


def test_a_large_blob_is_addressed_as_ipfs_add_addresses_it(backend: Backend) -> None:
    data = _big(2 * CHUNK_BYTES + 3)
    cid = backend.store.put(data)
    assert cid == file_cid(data) and CID.decode(cid).codec.name == "dag-pb"
    assert backend.store.get(cid) == data
    with backend.store.open(cid) as f:
        assert f.read() == data
    backend.store.verify(cid)
    assert backend.store.size(cid) == len(data)


def test_put_file_streams_to_the_same_cid_as_put(backend: Backend, tmp_path: Path) -> None:
    for n in (0, 5, CHUNK_BYTES, CHUNK_BYTES + 1, 5 * CHUNK_BYTES - 1):
        path = tmp_path / f"blob{n}"
        path.write_bytes(_big(n))
        assert backend.store.put_file(path) == file_cid(_big(n)) == cid_for_bytes(_big(n))
        assert backend.store.get(file_cid(_big(n))) == _big(n)


def test_a_damaged_large_blob_is_never_handed_out(backend: Backend) -> None:
    data = _big(CHUNK_BYTES + 10)
    cid = backend.store.put(data)
    backend.overwrite(cid, _flipped(data, CHUNK_BYTES + 5))  # in the second leaf
    with pytest.raises(BlobCorrupt):
        backend.store.get(cid)
    with pytest.raises(BlobCorrupt):
        backend.store.open(cid)
    assert backend.store.put(data) == cid  # put of the original repairs it
    assert backend.store.get(cid) == data


def test_a_large_blob_under_its_old_raw_cid_still_verifies(backend: Backend) -> None:
    # Stores written before UnixFS trees hold large blobs under CIDv1(raw, sha256(bytes)).
    data = _big(CHUNK_BYTES + 10)
    legacy = str(CID("base32", 1, "raw", ("sha2-256", hashlib.sha256(data).digest())))
    backend.overwrite(legacy, data)
    assert backend.store.get(legacy) == data
    backend.store.verify(legacy)
    backend.overwrite(legacy, _flipped(data, 3))
    with pytest.raises(BlobCorrupt):
        backend.store.get(legacy)


def test_cid_in_store_finds_a_blob_by_its_chain_digest(backend: Backend) -> None:
    small, large = backend.store.put(b"small"), backend.store.put(_big(CHUNK_BYTES + 1))
    assert cid_in_store(backend.store, cid_to_digest(small)) == small
    assert cid_in_store(backend.store, cid_to_digest(large)) == large
    absent = hashlib.sha256(b"nobody has this").digest()
    assert cid_in_store(backend.store, absent) == cids_for_digest(absent)[0]  # the raw one
