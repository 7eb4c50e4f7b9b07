"""Content addresses, blob stores, proposal files, manifests and Merkle proofs.

The path of a proposal's data through this package::

    examples = read_proposal("digits_part3.csv", schema, known_hashes=dataset_hashes)
    store = LocalBlobStore(root)  # or any other BlobStore: MemoryBlobStore() in tests
    stored = store_proposal(store, examples, schema)
    # stored.manifest_cid (as cid_to_digest -> bytes32) and stored.merkle_root go on-chain
    loaded = load_proposal(store, stored.manifest_cid, expected_root=root_from_chain)

Every blob is addressed by the CID ``ipfs add --cid-version 1`` gives it (raw up to 256 KiB, a
UnixFS dag-pb root above; :mod:`.unixfs`), every example by the sha2-256 of a canonical
encoding, and every proposal by an OpenZeppelin-compatible Merkle root of its example hashes, so
that any single example can be traced to the proposal, and the contributor, it came from.
"""

from databright.errors import (
    BlobCorrupt,
    BlobNotFound,
    InvalidCID,
    InvalidSchema,
    ManifestMismatch,
    ProposalProblem,
    ProposalRejected,
)
from databright.storage.blobstore import BlobStore, LocalBlobStore, MemoryBlobStore
from databright.storage.cid import cid_for_bytes, cid_to_digest, digest_to_cid, normalize_cid
from databright.storage.hashing import (
    EXAMPLE_ENCODING,
    KECCAK_BACKEND,
    example_hash,
    example_hashes,
    keccak256,
)
from databright.storage.manifest import (
    MANIFEST_FORMAT,
    LoadedProposal,
    Manifest,
    StoredProposal,
    decode_examples,
    encode_examples,
    load_proposal,
    store_proposal,
)
from databright.storage.merkle import MERKLE_CONSTRUCTION, MerkleTree, leaf_hash, verify_proof
from databright.storage.proposal import (
    SUPPORTED_FORMATS,
    Examples,
    read_proposal,
    validate_examples,
)
from databright.storage.schema import FEATURE_DTYPES, DatasetSchema, Task

__all__ = [
    "EXAMPLE_ENCODING",
    "FEATURE_DTYPES",
    "KECCAK_BACKEND",
    "MANIFEST_FORMAT",
    "MERKLE_CONSTRUCTION",
    "SUPPORTED_FORMATS",
    "BlobCorrupt",
    "BlobNotFound",
    "BlobStore",
    "DatasetSchema",
    "Examples",
    "InvalidCID",
    "InvalidSchema",
    "LoadedProposal",
    "LocalBlobStore",
    "Manifest",
    "ManifestMismatch",
    "MemoryBlobStore",
    "MerkleTree",
    "ProposalProblem",
    "ProposalRejected",
    "StoredProposal",
    "Task",
    "cid_for_bytes",
    "cid_to_digest",
    "decode_examples",
    "digest_to_cid",
    "encode_examples",
    "example_hash",
    "example_hashes",
    "keccak256",
    "leaf_hash",
    "load_proposal",
    "normalize_cid",
    "read_proposal",
    "store_proposal",
    "validate_examples",
    "verify_proof",
]
