"""Blobs in memory: a :class:`~databright.storage.blobstore.BlobStore` backed by a mapping.

For tests, demos and short-lived tools: nothing survives the process. Reads are checked exactly
as the local store checks its files (every ``get`` hashes the bytes against the CID), so the
same tests hold for both, and a damaged entry of the backing mapping is refused, never handed
out. There is no ``path``: a blob in memory has no file (see the protocol's docs).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import BinaryIO, Final

from multiformats import CID

from databright.errors import StorageError
from databright.storage.blobstore.protocol import CHUNK, blob_corrupt, blob_not_found
from databright.storage.cid import cid_for_bytes, normalize_cid
from databright.storage.unixfs import FileHasher, matches

__all__ = ["MemoryBlobStore"]

_WHERE: Final = "the in-memory store"


class MemoryBlobStore:
    """Content-addressed blobs in a mapping from CID to bytes (a :class:`BlobStore`).

    ``blobs`` is the mapping to keep them in, a new ``dict`` by default; what it already holds,
    or is later changed to behind the store's back, is trusted no more than a disk: every read
    is verified against the CID.
    """

    def __init__(self, blobs: MutableMapping[str, bytes] | None = None) -> None:
        self._blobs: MutableMapping[str, bytes] = {} if blobs is None else blobs

    def __repr__(self) -> str:
        n = len(self._blobs)
        return f"<MemoryBlobStore, {n} blob{'' if n == 1 else 's'}>"

    # --- writing ------------------------------------------------------------------------

    def put(self, data: bytes | bytearray | memoryview) -> str:
        """Store ``data`` and return its CID; storing the same bytes twice is a no-op.

        A damaged copy already in the store is replaced, so ``put`` of the original bytes is
        also how a corrupted blob is repaired.
        """
        cid = cid_for_bytes(data)
        if not self._intact(cid):
            self._blobs[cid] = bytes(data)
        return cid

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store the file at ``path``, read in 1 MiB chunks, and return its CID."""
        src = Path(path)
        hasher = FileHasher()
        chunks: list[bytes] = []
        try:
            with open(src, "rb") as f:
                while chunk := f.read(CHUNK):
                    hasher.update(chunk)
                    chunks.append(chunk)
        except OSError as exc:
            raise StorageError(f"cannot add {src} to {_WHERE} ({exc.strerror or exc})") from exc
        cid = hasher.cid()
        if not self._intact(cid):
            self._blobs[cid] = b"".join(chunks)
        return cid

    def _intact(self, cid: str) -> bool:
        data = self._blobs.get(cid)
        return data is not None and matches(cid, data)

    # --- reading ------------------------------------------------------------------------

    def has(self, cid: str | CID) -> bool:
        """Whether a blob is stored under ``cid`` (not whether it is intact: see ``verify``)."""
        return normalize_cid(cid) in self._blobs

    def __contains__(self, cid: object) -> bool:
        return isinstance(cid, str | CID) and self.has(cid)

    def __iter__(self) -> Iterator[str]:
        """The CIDs of every stored blob, in no particular order."""
        return iter(list(self._blobs))

    def get(self, cid: str | CID) -> bytes:
        """The bytes stored under ``cid``, after checking that they hash to it."""
        cid = normalize_cid(cid)
        try:
            data = self._blobs[cid]
        except KeyError:
            raise blob_not_found(cid, _WHERE) from None
        if not matches(cid, data):
            raise blob_corrupt(cid, _WHERE)
        return bytes(data)

    def open(self, cid: str | CID) -> BinaryIO:
        """An in-memory binary file of the verified blob, positioned at its start."""
        return io.BytesIO(self.get(cid))

    def verify(self, cid: str | CID) -> None:
        """Raise :class:`BlobCorrupt` (or :class:`BlobNotFound`) unless the blob is intact."""
        self.get(cid)

    def size(self, cid: str | CID) -> int:
        """Size in bytes of the stored blob (unverified)."""
        cid = normalize_cid(cid)
        try:
            return len(self._blobs[cid])
        except KeyError:
            raise blob_not_found(cid, _WHERE) from None
