"""What only the memory store does: the mapping behind it, trusted no more than a disk.

The behaviour every store shares is tested in test_blobstore.py, against this store too.
"""

from __future__ import annotations

import pytest

from databright.storage import BlobCorrupt, MemoryBlobStore, cid_for_bytes


def test_blobs_live_in_the_mapping_handed_in() -> None:
    blobs: dict[str, bytes] = {}
    store = MemoryBlobStore(blobs)
    cid = store.put(b"kept here")
    assert blobs == {cid: b"kept here"}


def test_entries_already_in_the_mapping_are_verified_on_read() -> None:
    good, bad = cid_for_bytes(b"good"), cid_for_bytes(b"bad")
    store = MemoryBlobStore({good: b"good", bad: b"not what the CID says"})
    assert store.get(good) == b"good"
    with pytest.raises(BlobCorrupt, match=f"blob {bad} in the in-memory store is damaged"):
        store.get(bad)


def test_open_gives_an_independent_file() -> None:
    store = MemoryBlobStore()
    cid = store.put(b"0123456789")
    with store.open(cid) as first, store.open(cid) as second:
        assert first.read(3) == b"012"
        assert second.read() == b"0123456789"


def test_stores_are_independent_and_say_how_many_blobs_they_hold() -> None:
    one, other = MemoryBlobStore(), MemoryBlobStore()
    cid = one.put(b"only in one")
    assert cid in one and cid not in other
    assert repr(one) == "<MemoryBlobStore, 1 blob>"
    assert repr(other) == "<MemoryBlobStore, 0 blobs>"
