"""The local blob store: atomic writes, every read verified against its CID."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from databright.errors import NotFound, StorageError
from databright.storage import BlobCorrupt, BlobNotFound, BlobStore, cid_for_bytes


def _flip_byte(path: Path, offset: int = 0) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_put_get_round_trip(store: BlobStore) -> None:
    cid = store.put(b"some bytes")
    assert cid == cid_for_bytes(b"some bytes")
    assert store.get(cid) == b"some bytes"
    assert store.has(cid)
    assert cid in store
    assert store.size(cid) == 10
    assert list(store) == [cid]


def test_put_is_idempotent_and_leaves_no_temporary_files(store: BlobStore) -> None:
    first = store.put(b"x" * 1000)
    second = store.put(b"x" * 1000)
    assert first == second
    assert list(store) == [first]
    assert list((store.root / "staging").iterdir()) == []


def test_empty_blob(store: BlobStore) -> None:
    cid = store.put(b"")
    assert store.get(cid) == b""


def test_put_file_streams_and_matches_put(store: BlobStore, tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 12345)  # more than one 1 MiB chunk
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    cid = store.put_file(source)
    assert cid == cid_for_bytes(data)
    assert store.get(cid) == data
    assert store.put_file(source) == cid  # again: no-op
    assert list((store.root / "staging").iterdir()) == []


def test_put_file_of_a_missing_file(store: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"cannot add .*missing.bin to the store"):
        store.put_file(tmp_path / "missing.bin")


def test_open_returns_verified_handle_at_start(store: BlobStore) -> None:
    cid = store.put(b"0123456789")
    with store.open(cid) as f:
        assert f.read(4) == b"0123"
        assert f.read() == b"456789"


def test_path_points_at_the_blob(store: BlobStore) -> None:
    cid = store.put(b"abc")
    assert store.path(cid).read_bytes() == b"abc"
    assert store.path(cid).name == cid


def test_unknown_cid_is_not_found(store: BlobStore) -> None:
    cid = cid_for_bytes(b"never stored")
    assert not store.has(cid)
    assert cid not in store
    with pytest.raises(BlobNotFound) as info:
        store.get(cid)
    assert str(info.value) == (
        f"blob {cid} is not in the store at {store.root}; add it with put() or fetch it from a "
        "peer that has it"
    )
    assert info.value.cid == cid
    # Catchable as DataBright's NotFound, as a StorageError and as Python's LookupError/OSError.
    assert isinstance(info.value, NotFound)
    assert isinstance(info.value, StorageError)
    assert isinstance(info.value, LookupError)
    for call in (store.open, store.path, store.verify, store.size):
        with pytest.raises(BlobNotFound):
            call(cid)


def test_contains_refuses_non_cids(store: BlobStore) -> None:
    assert 42 not in store


@pytest.mark.parametrize("offset", [0, 5, -1])
def test_flipped_byte_on_disk_is_detected(store: BlobStore, offset: int) -> None:
    cid = store.put(b"precious example data")
    location = store.path(cid)
    _flip_byte(location, offset)
    with pytest.raises(BlobCorrupt) as info:
        store.get(cid)
    assert str(info.value) == (
        f"blob {cid} in the store at {store.root} is damaged (its bytes no longer match its "
        f"CID); delete {location} and put() the original data again or fetch it from a peer"
    )
    assert info.value.cid == cid
    assert isinstance(info.value, StorageError)
    with pytest.raises(BlobCorrupt):
        store.open(cid)
    with pytest.raises(BlobCorrupt):
        store.path(cid)
    with pytest.raises(BlobCorrupt):
        store.verify(cid)
    # Unverified access still finds the (damaged) file, for repair tools.
    assert store.path(cid, verify=False) == location
    assert store.has(cid)


def test_truncated_blob_is_detected(store: BlobStore) -> None:
    cid = store.put(b"0123456789")
    location = store.path(cid)
    location.write_bytes(b"01234")
    with pytest.raises(BlobCorrupt, match="is damaged"):
        store.get(cid)


def test_put_of_the_original_repairs_a_damaged_blob(store: BlobStore) -> None:
    cid = store.put(b"repair me")
    _flip_byte(store.path(cid))
    assert store.put(b"repair me") == cid
    assert store.get(cid) == b"repair me"


def test_failed_write_leaves_nothing_behind(
    store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StorageError, match="No space left on device"):
        store.put(b"will not fit")
    monkeypatch.undo()
    assert not store.has(cid_for_bytes(b"will not fit"))
    assert list((store.root / "staging").iterdir()) == []


def test_store_root_must_be_a_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot create the blob store at"):
        BlobStore(blocker)


def test_invalid_cid_is_refused_before_touching_disk(store: BlobStore) -> None:
    with pytest.raises(ValueError, match="is not a CID"):
        store.get("../../etc/passwd")


def test_blobs_are_sharded_by_digest(store: BlobStore) -> None:
    cid = store.put(b"hello")
    assert store.path(cid).parent.name == "2c"  # sha256(b"hello") starts with 2cf24dba
