"""What only the store on disk does: atomic fsynced writes, staging, sharding, ``path``.

The behaviour every store shares is tested in test_blobstore.py, against this store too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from databright.errors import StorageError
from databright.storage import BlobCorrupt, BlobNotFound, LocalBlobStore, cid_for_bytes


def _flip_byte(path: Path, offset: int = 0) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


def _staged(store: LocalBlobStore) -> list[Path]:
    return list((store.root / "staging").iterdir())


def test_puts_leave_no_temporary_files(store: LocalBlobStore, tmp_path: Path) -> None:
    store.put(b"x" * 1000)
    store.put(b"x" * 1000)
    source = tmp_path / "file.bin"
    source.write_bytes(b"y" * 1000)
    store.put_file(source)
    store.put_file(source)
    assert _staged(store) == []


def test_path_points_at_the_blob(store: LocalBlobStore) -> None:
    cid = store.put(b"abc")
    assert store.path(cid).read_bytes() == b"abc"
    assert store.path(cid).name == cid
    assert store.path(cid).is_relative_to(store.root)


def test_path_of_an_unknown_cid_is_not_found(store: LocalBlobStore) -> None:
    with pytest.raises(BlobNotFound):
        store.path(cid_for_bytes(b"never stored"))
    with pytest.raises(BlobNotFound):
        store.path(cid_for_bytes(b"never stored"), verify=False)


def test_messages_name_the_directory_and_the_damaged_file(store: LocalBlobStore) -> None:
    missing = cid_for_bytes(b"never stored")
    with pytest.raises(BlobNotFound) as not_found:
        store.get(missing)
    assert str(not_found.value) == (
        f"blob {missing} is not in the store at {store.root}; add it with put() or fetch it "
        "from a peer that has it"
    )
    cid = store.put(b"precious example data")
    location = store.path(cid)
    _flip_byte(location)
    with pytest.raises(BlobCorrupt) as corrupt:
        store.get(cid)
    assert str(corrupt.value) == (
        f"blob {cid} in the store at {store.root} is damaged (its bytes no longer match its "
        f"CID); delete {location} and put() the original data again or fetch it from a peer"
    )


def test_path_verifies_unless_told_not_to(store: LocalBlobStore) -> None:
    cid = store.put(b"precious example data")
    location = store.path(cid)
    _flip_byte(location, 5)
    with pytest.raises(BlobCorrupt):
        store.path(cid)
    # Unverified access still finds the (damaged) file, for repair tools.
    assert store.path(cid, verify=False) == location


def test_failed_write_leaves_nothing_behind(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StorageError, match="No space left on device"):
        store.put(b"will not fit")
    monkeypatch.undo()
    assert not store.has(cid_for_bytes(b"will not fit"))
    assert _staged(store) == []


def test_failed_put_file_leaves_nothing_behind(
    store: LocalBlobStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = tmp_path / "file.bin"
    source.write_bytes(b"will not fit either")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StorageError, match=r"cannot add .*file\.bin to the store at .*No space"):
        store.put_file(source)
    monkeypatch.undo()
    assert list(store) == []
    assert _staged(store) == []


def test_store_root_must_be_a_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot create the blob store at"):
        LocalBlobStore(blocker)


def test_two_stores_on_one_directory_see_each_others_blobs(tmp_path: Path) -> None:
    first = LocalBlobStore(tmp_path / "shared")
    cid = first.put(b"written by one process")
    assert LocalBlobStore(tmp_path / "shared").get(cid) == b"written by one process"


def test_blobs_are_sharded_by_digest(store: LocalBlobStore) -> None:
    cid = store.put(b"hello")
    assert store.path(cid).parent.name == "2c"  # sha256(b"hello") starts with 2cf24dba


def test_repr_names_the_directory(store: LocalBlobStore) -> None:
    assert repr(store) == f"LocalBlobStore({str(store.root)!r})"


def test_remove_and_stored_at(store: LocalBlobStore) -> None:
    cid = store.put(b"to be removed")
    assert abs(store.stored_at(cid) - time.time()) < 60
    old = time.time() - 7200
    os.utime(store.path(cid), (old, old))
    store.put(b"to be removed")  # stored again: young again
    assert store.stored_at(cid) > old + 3600
    assert store.remove(cid) is True
    assert cid not in store
    assert store.remove(cid) is False
    with pytest.raises(BlobNotFound):
        store.stored_at(cid)
