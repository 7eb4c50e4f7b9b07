"""Proposal manifests, and storing / fetching a proposal's data through them.

A stored proposal is three blobs: the examples (a canonical ``.npz``), the dataset schema
(canonical JSON) and the manifest (canonical JSON) that ties them together and lists every
example hash in order. The manifest's Merkle root (see :mod:`databright.storage.merkle`) and
its CID are what go on-chain; from them anyone can fetch the data and check every example.

Manifest ``databright-manifest/1`` (JSON, keys sorted, no spaces, UTF-8)::

    {"count": n,
     "data": "<CID of the examples .npz>",
     "example_encoding": "databright-example-v1",
     "examples": ["<64 hex digits>", ...],       # example hashes, in data order
     "format": "databright-manifest/1",
     "merkle": "oz-simple-v1:keccak256-leaf",     # see databright.storage.merkle
     "merkle_root": "<64 hex digits>",
     "schema": "<CID of the schema JSON>"}

The data blob is a zip (stored, not compressed, fixed timestamps) of ``X.npy`` then ``y.npy``
written by ``numpy.lib.format`` without pickle, so the same examples always give the same
bytes and therefore the same CID.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, NoReturn

import numpy as np
import numpy.typing as npt

from databright.errors import InvalidCID, InvalidSchema, ManifestMismatch, StorageError
from databright.storage.blobstore import BlobStore
from databright.storage.cid import normalize_cid
from databright.storage.examples import Examples
from databright.storage.formats.npz import read_npz_arrays
from databright.storage.hashing import EXAMPLE_ENCODING, example_hashes
from databright.storage.merkle import MERKLE_CONSTRUCTION, MerkleTree
from databright.storage.schema import DatasetSchema

__all__ = [
    "MANIFEST_FORMAT",
    "LoadedProposal",
    "Manifest",
    "StoredProposal",
    "decode_examples",
    "encode_examples",
    "load_proposal",
    "store_proposal",
]

MANIFEST_FORMAT: Final = "databright-manifest/1"
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_ZIP_EPOCH: Final = (1980, 1, 1, 0, 0, 0)


class Manifest:
    """What a proposal contains: schema and data CIDs, example hashes in order, Merkle root.

    Built from validated examples (:func:`store_proposal`) or parsed from a stored blob
    (:meth:`from_bytes`, which checks the recorded root against the hashes).
    """

    def __init__(self, schema_cid: str, data_cid: str, example_hashes: npt.ArrayLike) -> None:
        hashes = np.array(example_hashes, dtype=np.uint8, copy=True)
        if hashes.ndim != 2 or hashes.shape[1] != 32:
            raise ValueError(f"example hashes must be an (n, 32) array, got {hashes.shape}")
        hashes.flags.writeable = False
        self.schema_cid = normalize_cid(schema_cid)
        self.data_cid = normalize_cid(data_cid)
        self.example_hashes = hashes
        self._tree = MerkleTree(hashes)  # refuses an empty proposal

    def __len__(self) -> int:
        return len(self.example_hashes)

    def __repr__(self) -> str:
        return f"Manifest(count={len(self)}, data={self.data_cid}, root=0x{self.merkle_root.hex()})"

    @property
    def count(self) -> int:
        """Number of examples."""
        return len(self.example_hashes)

    @property
    def merkle_root(self) -> bytes:
        """The ``bytes32`` root that goes on-chain."""
        return self._tree.root

    @property
    def tree(self) -> MerkleTree:
        """The Merkle tree over the example hashes."""
        return self._tree

    def example_hash(self, index: int) -> bytes:
        """The hash of example ``index`` (0-based, data order)."""
        return bytes(self.example_hashes[index])

    def proof(self, index: int) -> list[bytes]:
        """The Merkle proof that example ``index`` is in this proposal (sorted-pair siblings)."""
        return self._tree.proof(index)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dict (see the module docs for the fields)."""
        hexed = self.example_hashes.tobytes().hex()
        return {**self._header(), "examples": [hexed[i : i + 64] for i in range(0, len(hexed), 64)]}

    def _header(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "data": self.data_cid,
            "example_encoding": EXAMPLE_ENCODING,
            "format": MANIFEST_FORMAT,
            "merkle": MERKLE_CONSTRUCTION,
            "merkle_root": self.merkle_root.hex(),
            "schema": self.schema_cid,
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON, UTF-8: what is stored as the manifest blob.

        Byte for byte ``json.dumps(to_dict(), sort_keys=True, separators=(",", ":"))``; the list
        of example hashes is laid out with numpy because building a million small ``str``
        objects for ``json`` is slower than hashing them.
        """
        n = self.count
        hexed = np.frombuffer(self.example_hashes.tobytes().hex().encode("ascii"), np.uint8)
        cells = np.empty((n, 67), dtype=np.uint8)
        cells[:, 0] = cells[:, 65] = ord('"')
        cells[:, 1:65] = hexed.reshape(n, 64)
        cells[:, 66] = ord(",")
        listing = b"[" + cells.tobytes()[:-1] + b"]"
        doc = {**self._header(), "examples": []}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
        head, tail = text.encode("utf-8").split(b'"examples":[]')
        return head + b'"examples":' + listing + tail

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "manifest") -> Manifest:
        """Parse and check a manifest blob; ``name`` (its CID) is used in error messages.

        Raises :class:`ManifestMismatch` (a ``StorageError``) if the blob is not a manifest or
        its recorded root does not match its example hashes.
        """

        def bad(reason: str) -> NoReturn:
            raise ManifestMismatch(
                f"{name} is not a valid DataBright manifest ({reason}); it cannot be trusted, "
                "fetch the proposal's manifest again"
            )

        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            bad(f"not JSON: {exc}")
        if not isinstance(doc, dict):
            bad("not a JSON object")
        if doc.get("format") != MANIFEST_FORMAT:
            bad(f"format is {doc.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        if doc.get("example_encoding") != EXAMPLE_ENCODING:
            bad(f"example encoding {doc.get('example_encoding')!r} is unknown")
        if doc.get("merkle") != MERKLE_CONSTRUCTION:
            bad(f"Merkle construction {doc.get('merkle')!r} is unknown")
        examples = doc.get("examples")
        if not isinstance(examples, list) or not all(isinstance(h, str) for h in examples):
            bad("'examples' is not a list of hex strings")
        joined = "".join(examples)
        if len(joined) != 64 * len(examples) or not re.fullmatch(r"[0-9a-f]*", joined):
            bad("an example hash is not 64 lowercase hex digits")
        if doc.get("count") != len(examples):
            bad(f"'count' is {doc.get('count')!r} but {len(examples)} example hashes are listed")
        root = doc.get("merkle_root")
        if not isinstance(root, str) or not _HEX64.fullmatch(root):
            bad("'merkle_root' is not 64 lowercase hex digits")
        if len(examples) == 0:
            bad("it lists no examples")
        hashes = np.frombuffer(bytes.fromhex(joined), dtype=np.uint8).reshape(-1, 32)
        try:
            manifest = cls(doc.get("schema", ""), doc.get("data", ""), hashes)
        except InvalidCID as exc:
            bad(str(exc))
        if manifest.merkle_root.hex() != root:
            raise ManifestMismatch(
                f"{name} records Merkle root {root} but its example hashes give "
                f"{manifest.merkle_root.hex()}; the manifest was altered, fetch it again"
            )
        return manifest


# --- the data blob ---------------------------------------------------------------------------


def encode_examples(examples: Examples) -> bytes:
    """The canonical ``.npz`` bytes of validated examples (deterministic: same examples, same
    bytes, same CID)."""
    X = np.ascontiguousarray(examples.X, dtype=examples.X.dtype.newbyteorder("<"))
    y = examples.y
    if y.dtype.kind in "iuf":
        y = np.ascontiguousarray(y, dtype=y.dtype.newbyteorder("<"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in (("X.npy", X), ("y.npy", y)):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=array.nbytes > 1 << 30) as member:
                np.lib.format.write_array(member, array, version=(1, 0), allow_pickle=False)
    return buffer.getvalue()


def decode_examples(
    data: bytes, schema: DatasetSchema, *, name: str = "data blob"
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """``X`` and ``y`` from a data blob written by :func:`encode_examples` (never unpickling).

    Raises :class:`ManifestMismatch` if the blob is not such an archive for ``schema``.
    """

    def fail(reason: str) -> NoReturn:
        raise ManifestMismatch(f"{name} {reason}")

    def check(headers: dict[str, tuple[tuple[int, ...], np.dtype[Any]]]) -> None:
        (x_shape, x_dtype), (y_shape, y_dtype) = headers["X"], headers["y"]
        if x_shape[1:] != schema.feature_shape or x_dtype != schema.np_dtype:
            fail(
                f"holds X of shape {x_shape} and dtype {x_dtype}, not examples of shape "
                f"{schema.feature_shape} and dtype {schema.dtype} as the schema says"
            )
        if y_shape != x_shape[:1]:
            fail(f"holds {x_shape[0]} examples but {y_shape} labels")
        expected = "U" if schema.string_labels else "f" if schema.task == "regression" else "i"
        if y_dtype.kind != expected:
            fail(f"holds labels of dtype {y_dtype}, which does not fit the schema")

    return read_npz_arrays(io.BytesIO(data), fail, check)


# --- storing and fetching --------------------------------------------------------------------


class StoredProposal(NamedTuple):
    """Where a stored proposal lives; ``merkle_root`` and ``manifest_cid`` go on-chain."""

    data_cid: str
    manifest_cid: str
    merkle_root: bytes
    n_examples: int
    schema_cid: str


@dataclass(frozen=True)
class LoadedProposal:
    """A proposal fetched from a store, every example checked against the manifest."""

    manifest: Manifest
    schema: DatasetSchema
    examples: Examples


def store_proposal(store: BlobStore, examples: Examples, schema: DatasetSchema) -> StoredProposal:
    """Put validated examples, their schema and their manifest into ``store``.

    ``examples`` must come from :func:`~databright.storage.read_proposal` (or
    ``validate_examples``) with this ``schema``.
    """
    if examples.X.shape[1:] != schema.feature_shape or examples.X.dtype != schema.np_dtype:
        raise ValueError(
            f"examples of shape {examples.X.shape[1:]} and dtype {examples.X.dtype} were not "
            f"validated against this schema ({schema.feature_shape}, {schema.dtype})"
        )
    data_cid = store.put(encode_examples(examples))
    schema_cid = store.put(schema.to_bytes())
    manifest = Manifest(schema_cid, data_cid, examples.hashes)
    manifest_cid = store.put(manifest.to_bytes())
    return StoredProposal(data_cid, manifest_cid, manifest.merkle_root, len(manifest), schema_cid)


def load_proposal(
    store: BlobStore,
    manifest_cid: str,
    *,
    expected_root: bytes | None = None,
    schema: DatasetSchema | None = None,
) -> LoadedProposal:
    """Fetch a proposal and check it end to end before handing out any example.

    Blobs are verified against their CIDs by the store; then every example's hash is recomputed
    from the data and compared with the manifest, and the manifest's Merkle root with
    ``expected_root`` (the value on-chain) when given. ``schema``, when given, must be the one
    the manifest refers to. Any disagreement raises :class:`ManifestMismatch` (a
    ``StorageError``) naming the first bad example index.
    """
    manifest_cid = normalize_cid(manifest_cid)
    manifest = Manifest.from_bytes(store.get(manifest_cid), name=f"manifest {manifest_cid}")
    if expected_root is not None and bytes(expected_root) != manifest.merkle_root:
        raise ManifestMismatch(
            f"manifest {manifest_cid} has Merkle root {manifest.merkle_root.hex()} but the "
            f"chain records {bytes(expected_root).hex()}; it is not the manifest that was "
            "proposed, fetch the one the chain points to"
        )
    try:
        stored_schema = DatasetSchema.from_json(store.get(manifest.schema_cid))
    except InvalidSchema as exc:
        raise StorageError(
            f"schema blob {manifest.schema_cid} of manifest {manifest_cid} is not a valid "
            f"schema ({exc})"
        ) from exc
    if schema is not None and schema.cid() != manifest.schema_cid:
        raise ManifestMismatch(
            f"manifest {manifest_cid} refers to schema {manifest.schema_cid}, not to this "
            f"dataset's schema {schema.cid()}; the proposal belongs to another dataset"
        )
    X, y = decode_examples(
        store.get(manifest.data_cid), stored_schema, name=f"data blob {manifest.data_cid}"
    )
    if len(y) != manifest.count:
        raise ManifestMismatch(
            f"data blob {manifest.data_cid} holds {len(y)} examples but manifest "
            f"{manifest_cid} lists {manifest.count}; refetch the proposal"
        )
    hashes = example_hashes(X, y)
    wrong = np.flatnonzero((hashes != manifest.example_hashes).any(axis=1))
    if len(wrong):
        i = int(wrong[0])
        raise ManifestMismatch(
            f"example {i} of data blob {manifest.data_cid} hashes to {hashes[i].tobytes().hex()} "
            f"but manifest {manifest_cid} lists {manifest.example_hash(i).hex()}"
            + (f" ({len(wrong)} examples differ)" if len(wrong) > 1 else "")
            + "; the data does not match its manifest, refetch it or reject the proposal",
            index=i,
        )
    if y.dtype.kind == "U":
        y = y.astype(str)
    return LoadedProposal(
        manifest=manifest,
        schema=stored_schema,
        examples=Examples(X=X, y=y, hashes=hashes, source=f"manifest {manifest_cid}"),
    )
