"""Content-addressed blob stores: one protocol, several places to keep the bytes.

:class:`BlobStore` is what the rest of DataBright asks of a store: put bytes and learn their
CID, get them back verified against it. :class:`LocalBlobStore` keeps blobs in a directory and
survives crashes; :class:`MemoryBlobStore` keeps them in a dict, for tests and short-lived
tools. Every store checks every read against the CID and fails alike:
:class:`~databright.errors.BlobNotFound` for a CID it does not hold,
:class:`~databright.errors.BlobCorrupt` for bytes that no longer match their CID, which are then
never handed out.
"""

from databright.storage.blobstore.local import LocalBlobStore
from databright.storage.blobstore.memory import MemoryBlobStore
from databright.storage.blobstore.protocol import BlobStore, cid_in_store

__all__ = ["BlobStore", "LocalBlobStore", "MemoryBlobStore", "cid_in_store"]
