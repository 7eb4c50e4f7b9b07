"""The :class:`BlobStore` protocol, and what its implementations share: hashing a stream in
chunks and the wording of their errors, so that a caller meets the same messages whichever
store it was handed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import BinaryIO, Final, Protocol, runtime_checkable

from multiformats import CID

from databright.errors import BlobCorrupt, BlobNotFound
from databright.storage.cid import cids_for_digest

__all__ = ["CHUNK", "BlobStore", "blob_corrupt", "blob_not_found", "cid_in_store", "hash_stream"]

CHUNK: Final = 1 << 20
"""How much of a file or blob is read at a time when streaming it."""


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed blobs: ``put`` returns the CID of what it stored, and every read is
    checked against the CID before a single byte is handed out.

    CIDs are what ``ipfs add --cid-version 1`` gives the bytes (:mod:`databright.storage.unixfs`:
    a raw CIDv1 up to 256 KiB, the dag-pb root of a UnixFS file above), as ``str`` or
    ``multiformats.CID``; a blob is stored whole under its CID, and its DAG's blocks are rebuilt
    from it when asked for (a CAR). A store also reads and verifies blobs under raw CIDs of any
    size (stored before UnixFS trees). a string that is not one is refused with
    :class:`~databright.errors.InvalidCID` (a ``ValueError``) before the store is touched.

    A blob's file ``path`` is deliberately not part of the protocol: only a store on disk has
    one (:meth:`LocalBlobStore.path`), and handing out a temporary copy from other stores would
    make a caller pay for a write it may not need and leave it a file to clean up. Code that
    needs a path (memory mapping a large blob) asks for a ``LocalBlobStore``; everything else
    reads through ``get`` or ``open``.
    """

    def put(self, data: bytes | bytearray | memoryview) -> str:
        """Store ``data`` and return its CID; storing the same bytes again is a no-op.

        A damaged copy already in the store is replaced, so ``put`` of the original bytes is
        also how a corrupted blob is repaired.
        """

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store the file at ``path``, read in chunks, and return its CID.

        Raises :class:`~databright.errors.StorageError` if the file cannot be read or stored.
        """

    def has(self, cid: str | CID) -> bool:
        """Whether a blob is stored under ``cid`` (not whether it is intact: see ``verify``)."""

    def __contains__(self, cid: object) -> bool:
        """``has(cid)`` for CIDs; anything that is not a ``str`` or ``CID`` is not in it."""

    def __iter__(self) -> Iterator[str]:
        """The CIDs of every stored blob, in no particular order."""

    def get(self, cid: str | CID) -> bytes:
        """The bytes stored under ``cid``, after checking that they hash to it."""

    def open(self, cid: str | CID) -> BinaryIO:
        """A binary file of the verified blob, positioned at its start; the caller closes it."""

    def verify(self, cid: str | CID) -> None:
        """Raise :class:`~databright.errors.BlobCorrupt` (or ``BlobNotFound``) unless the blob
        is intact."""

    def size(self, cid: str | CID) -> int:
        """Size in bytes of the stored blob (unverified)."""


def hash_stream(f: BinaryIO) -> bytes:
    """The sha2-256 digest of what is left in ``f``, read in :data:`CHUNK` pieces.

    That is a raw CID's digest; a blob's CID in general is checked by
    :func:`databright.storage.unixfs.matches_stream`.
    """
    h = hashlib.sha256()
    while chunk := f.read(CHUNK):
        h.update(chunk)
    return h.digest()


def blob_not_found(cid: str, where: str) -> BlobNotFound:
    """The error for a CID that ``where`` (``"the store at /srv/blobs"``) does not hold."""
    return BlobNotFound(
        f"blob {cid} is not in {where}; add it with put() or fetch it from a peer that has it",
        cid=cid,
    )


def blob_corrupt(
    cid: str, where: str, repair: str = "put() the original data again"
) -> BlobCorrupt:
    """The error for a blob in ``where`` whose bytes no longer match ``cid``; ``repair`` says
    how to mend it in that store."""
    return BlobCorrupt(
        f"blob {cid} in {where} is damaged (its bytes no longer match its CID); {repair} or "
        "fetch it from a peer",
        cid=cid,
    )


def cid_in_store(store: BlobStore, digest: bytes) -> str:
    """The CID under which ``store`` holds the blob whose ``bytes32`` digest the chain keeps.

    The chain keeps a digest, not a CID: a blob of up to 256 KiB (or one stored before UnixFS
    trees) is under the raw CID with that digest, a larger one under the dag-pb CID. Returns
    the one the store has, the raw one if it has neither (so that a miss names the usual CID).
    """
    raw, dag_pb = cids_for_digest(digest)
    if not store.has(raw) and store.has(dag_pb):
        return dag_pb
    return raw
