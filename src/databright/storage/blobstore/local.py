"""A content-addressed blob store in a local directory.

Blobs live at ``ROOT/blobs/<first two hex digits of the digest>/<cid>``. A write goes to a
temporary file in ``ROOT/staging`` (same file system, so the final rename is atomic), is
fsynced, then ``os.replace``-d into place and the directory fsynced: a crash leaves either the
whole blob or nothing, never half a blob under a valid name. Every read is checked against the
CID, because a blob handed out under an address it does not match would be attributed to the
wrong contributor; a damaged blob raises :class:`BlobCorrupt` and its bytes are never returned.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from multiformats import CID

from databright.atomic import publish, staged_file
from databright.errors import BlobCorrupt, BlobNotFound, StorageError
from databright.storage.blobstore.protocol import CHUNK, blob_corrupt, blob_not_found
from databright.storage.cid import cid_for_bytes, cid_to_digest, normalize_cid
from databright.storage.unixfs import FileHasher, matches, matches_stream

__all__ = ["LocalBlobStore"]


class LocalBlobStore:
    """Content-addressed blobs under one directory (a :class:`BlobStore`).

    ``put`` returns the CID of what it stored; ``get``/``open``/``path`` verify the blob against
    its CID before handing it out. Safe for several processes writing the same store: two
    writers of the same blob race only to rename identical bytes onto the same name. Beyond the
    protocol it has ``root`` and :meth:`path`, the file that holds a blob.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs"
        self._staging = self.root / "staging"
        try:
            self._blobs.mkdir(parents=True, exist_ok=True)
            self._staging.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the blob store at {self.root} ({exc.strerror or exc}); "
                "choose a writable directory"
            ) from exc

    def __repr__(self) -> str:
        return f"LocalBlobStore({str(self.root)!r})"

    # --- addressing ---------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"the store at {self.root}"

    def _location(self, cid: str) -> Path:
        return self._blobs / cid_to_digest(cid).hex()[:2] / cid

    # --- writing ------------------------------------------------------------------------

    def put(self, data: bytes | bytearray | memoryview) -> str:
        """Store ``data`` and return its CID; storing the same bytes twice is a no-op.

        A damaged copy already in the store is replaced, so ``put`` of the original bytes is
        also how a corrupted blob is repaired.
        """
        cid = cid_for_bytes(data)
        if self._intact(cid):
            self._touch(cid)
            return cid
        self._write(cid, [data])
        return cid

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store the file at ``path``, streamed in 1 MiB chunks, and return its CID.

        The copy and the UnixFS hash are made in one pass in constant memory, whatever the size.
        """
        src = Path(path)
        hasher = FileHasher()
        try:
            with open(src, "rb") as f_in, self._staged() as (tmp, f_out):
                while chunk := f_in.read(CHUNK):
                    hasher.update(chunk)
                    f_out.write(chunk)
                cid = hasher.cid()
                f_out.flush()
                os.fsync(f_out.fileno())
                if self._intact(cid):
                    self._touch(cid)
                else:
                    self._publish(tmp, cid)
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            raise StorageError(
                f"cannot add {src} to {self._where} ({exc.strerror or exc})"
            ) from exc
        return cid

    def _staged(self) -> contextlib.AbstractContextManager[tuple[Path, BinaryIO]]:
        return staged_file(self._staging, prefix=".blob-")

    def _publish(self, tmp: Path, cid: str) -> None:
        publish(tmp, self._location(cid))

    def _write(self, cid: str, parts: list[bytes | bytearray | memoryview]) -> None:
        try:
            with self._staged() as (tmp, f):
                for part in parts:
                    f.write(part)
                f.flush()
                os.fsync(f.fileno())
                self._publish(tmp, cid)
        except OSError as exc:
            raise StorageError(
                f"cannot write blob {cid} to the store at {self.root} ({exc.strerror or exc}); "
                "check free space and permissions"
            ) from exc

    def _touch(self, cid: str) -> None:
        # A blob stored again is new again: `store gc` keeps young blobs, so data a command is
        # about to reference on-chain is never collected between its put and its transaction.
        with contextlib.suppress(OSError):
            os.utime(self._location(cid))

    def _intact(self, cid: str) -> bool:
        """Whether the blob is present and matches its CID (used to skip redundant writes)."""
        try:
            with open(self._location(cid), "rb") as f:
                return matches_stream(cid, f)
        except FileNotFoundError:
            return False

    # --- reading ------------------------------------------------------------------------

    def has(self, cid: str | CID) -> bool:
        """Whether a blob is stored under ``cid`` (not whether it is intact: see ``verify``)."""
        return self._location(normalize_cid(cid)).is_file()

    def __contains__(self, cid: object) -> bool:
        return isinstance(cid, str | CID) and self.has(cid)

    def __iter__(self) -> Iterator[str]:
        """The CIDs of every stored blob, in no particular order."""
        for shard in sorted(self._blobs.iterdir()):
            if shard.is_dir():
                for blob in sorted(shard.iterdir()):
                    if not blob.name.startswith("."):
                        yield blob.name

    def get(self, cid: str | CID) -> bytes:
        """The bytes stored under ``cid``, after checking that they hash to it."""
        cid = normalize_cid(cid)
        location = self._location(cid)
        try:
            data = location.read_bytes()
        except FileNotFoundError:
            raise self._not_found(cid) from None
        if not matches(cid, data):
            raise self._corrupt(cid, location)
        return data

    def open(self, cid: str | CID) -> BinaryIO:
        """An open binary file positioned at the start of a verified blob.

        The whole blob is hashed through this very handle before it is returned, so a large
        blob is checked without holding it in memory.
        """
        cid = normalize_cid(cid)
        location = self._location(cid)
        try:
            f = open(location, "rb")  # noqa: SIM115 - handed to the caller
        except FileNotFoundError:
            raise self._not_found(cid) from None
        try:
            if not matches_stream(cid, f):
                raise self._corrupt(cid, location)
            f.seek(0)
        except BaseException:
            f.close()
            raise
        return f

    def path(self, cid: str | CID, *, verify: bool = True) -> Path:
        """The file holding ``cid``, checked against its CID unless ``verify=False``.

        For tools that need a path (memory mapping); the check holds at the time of the call.
        """
        cid = normalize_cid(cid)
        location = self._location(cid)
        if not location.is_file():
            raise self._not_found(cid)
        if verify:
            self.verify(cid)
        return location

    def verify(self, cid: str | CID) -> None:
        """Raise :class:`BlobCorrupt` (or :class:`BlobNotFound`) unless the blob is intact."""
        self.open(cid).close()

    def size(self, cid: str | CID) -> int:
        """Size in bytes of the stored blob (unverified)."""
        cid = normalize_cid(cid)
        try:
            return self._location(cid).stat().st_size
        except FileNotFoundError:
            raise self._not_found(cid) from None

    def stored_at(self, cid: str | CID) -> float:
        """When the blob was last stored (``put`` of the same bytes renews it), as a Unix time."""
        cid = normalize_cid(cid)
        try:
            return self._location(cid).stat().st_mtime
        except FileNotFoundError:
            raise self._not_found(cid) from None

    def remove(self, cid: str | CID) -> bool:
        """Delete the blob stored under ``cid``; False if there was none.

        For store maintenance (``databright store gc``): nothing in a market ever deletes a blob
        it may have referenced on-chain.
        """
        location = self._location(normalize_cid(cid))
        try:
            location.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageError(
                f"cannot remove {location} ({exc.strerror or exc}); check its permissions"
            ) from exc
        return True

    def _not_found(self, cid: str) -> BlobNotFound:
        return blob_not_found(cid, self._where)

    def _corrupt(self, cid: str, location: Path) -> BlobCorrupt:
        return blob_corrupt(
            cid, self._where, f"delete {location} and put() the original data again"
        )
