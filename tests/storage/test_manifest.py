"""Storing a proposal (data, schema, manifest) and fetching it back, checked end to end."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from databright.errors import StorageError
from databright.storage import (
    BlobCorrupt,
    BlobNotFound,
    BlobStore,
    DatasetSchema,
    Examples,
    LocalBlobStore,
    Manifest,
    ManifestMismatch,
    MemoryBlobStore,
    MerkleTree,
    cid_for_bytes,
    decode_examples,
    encode_examples,
    load_proposal,
    store_proposal,
    validate_examples,
    verify_proof,
)

from .conftest import Backend

Data = tuple[np.ndarray, np.ndarray]


@pytest.fixture
def examples(schema: DatasetSchema, data: Data) -> Examples:
    return validate_examples(*data, schema, source="d.npz")


def test_store_and_load_round_trip(
    backend: Backend, schema: DatasetSchema, examples: Examples
) -> None:
    store = backend.store
    stored = store_proposal(store, examples, schema)
    assert stored.n_examples == 40
    assert stored.merkle_root == MerkleTree(examples.hashes).root
    assert stored.schema_cid == schema.cid()
    assert sorted(store) == sorted([stored.data_cid, stored.manifest_cid, stored.schema_cid])
    # The manifest blob ties the other two together under the root that goes on-chain.
    manifest = Manifest.from_bytes(store.get(stored.manifest_cid))
    assert manifest.data_cid == stored.data_cid
    assert manifest.schema_cid == stored.schema_cid
    assert manifest.merkle_root == stored.merkle_root
    assert len(manifest) == stored.n_examples
    assert DatasetSchema.from_json(store.get(stored.schema_cid)) == schema

    loaded = load_proposal(
        store, stored.manifest_cid, expected_root=stored.merkle_root, schema=schema
    )
    assert loaded.schema == schema
    assert loaded.manifest.data_cid == stored.data_cid
    np.testing.assert_array_equal(loaded.examples.X, examples.X)
    np.testing.assert_array_equal(loaded.examples.y, examples.y)
    np.testing.assert_array_equal(loaded.examples.hashes, examples.hashes)
    assert loaded.examples.source == f"manifest {stored.manifest_cid}"


def test_storing_is_deterministic(
    tmp_path: Path, schema: DatasetSchema, examples: Examples, data: Data
) -> None:
    first = store_proposal(LocalBlobStore(tmp_path / "a"), examples, schema)
    second = store_proposal(LocalBlobStore(tmp_path / "b"), examples, schema)
    third = store_proposal(MemoryBlobStore(), examples, schema)
    assert first == second == third
    # The same examples arriving in another layout (big-endian, Fortran order) are validated
    # into equal arrays, which encode to the very same bytes, hence the same data CID.
    X, y = data
    again = validate_examples(np.asfortranarray(X.astype(">f4")), y.astype(">i8"), schema)
    assert again is not examples
    assert encode_examples(again) == encode_examples(examples)
    assert store_proposal(MemoryBlobStore(), again, schema) == first


def test_data_blob_is_a_plain_npz(
    store: BlobStore, schema: DatasetSchema, examples: Examples
) -> None:
    stored = store_proposal(store, examples, schema)
    with np.load(io.BytesIO(store.get(stored.data_cid)), allow_pickle=False) as npz:
        assert sorted(npz.files) == ["X", "y"]
        np.testing.assert_array_equal(npz["X"], examples.X)
        assert npz["X"].dtype.str == "<f4" and npz["y"].dtype.str == "<i8"


def test_string_labels_round_trip(store: BlobStore) -> None:
    pets = DatasetSchema(
        task="classification", feature_shape=(2,), dtype="float64", labels=("cat", "dog")
    )
    examples = validate_examples(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array(["cat", "dog"]), pets)
    stored = store_proposal(store, examples, pets)
    loaded = load_proposal(store, stored.manifest_cid)
    assert loaded.examples.y.tolist() == ["cat", "dog"]


def test_manifest_json_is_canonical(
    store: BlobStore, schema: DatasetSchema, examples: Examples
) -> None:
    stored = store_proposal(store, examples, schema)
    raw = store.get(stored.manifest_cid)
    doc = json.loads(raw)
    assert raw == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    assert doc["format"] == "databright-manifest/1"
    assert doc["example_encoding"] == "databright-example-v1"
    assert doc["merkle"] == "oz-simple-v1:keccak256-leaf"
    assert doc["count"] == 40
    assert doc["data"] == stored.data_cid and doc["schema"] == stored.schema_cid
    assert doc["merkle_root"] == stored.merkle_root.hex()
    assert doc["examples"] == [examples.hash(i).hex() for i in range(40)]


def test_manifest_proofs_verify(schema: DatasetSchema, examples: Examples) -> None:
    manifest = Manifest(schema.cid(), cid_for_bytes(b"data"), examples.hashes)
    for i in range(len(manifest)):
        assert verify_proof(manifest.example_hash(i), manifest.proof(i), manifest.merkle_root)
    again = Manifest.from_bytes(manifest.to_bytes())
    assert again.merkle_root == manifest.merkle_root
    assert again.count == 40
    assert "count=40" in repr(manifest)


def test_empty_manifest_is_refused(schema: DatasetSchema) -> None:
    with pytest.raises(ValueError, match="at least one example"):
        Manifest(schema.cid(), cid_for_bytes(b"data"), np.zeros((0, 32), np.uint8))


def _stored_doc(store: BlobStore, schema: DatasetSchema, examples: Examples) -> dict:
    return json.loads(store.get(store_proposal(store, examples, schema).manifest_cid))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.update(format="other/1"), "format is 'other/1'"),
        (lambda d: d.update(merkle="unsorted"), "Merkle construction 'unsorted' is unknown"),
        (lambda d: d.update(example_encoding="v0"), "example encoding 'v0' is unknown"),
        (lambda d: d.update(count=41), "'count' is 41 but 40 example hashes are listed"),
        (lambda d: d["examples"].__setitem__(0, "zz" * 32), "an example hash is not 64 lowercase hex digits"),
        (lambda d: d["examples"].__setitem__(0, 5), "'examples' is not a list of hex strings"),
        (lambda d: d.update(merkle_root="0x12"), "'merkle_root' is not 64 lowercase hex digits"),
        (lambda d: d.update(data="nope"), "'nope' is not a CID"),
        (lambda d: d.update(examples=[], count=0), "it lists no examples"),
    ],
)  # fmt: skip
def test_malformed_manifests(
    store: BlobStore, schema: DatasetSchema, examples: Examples, change, reason: str
) -> None:
    doc = _stored_doc(store, schema, examples)
    change(doc)
    cid = store.put(json.dumps(doc).encode())
    with pytest.raises(ManifestMismatch) as info:
        load_proposal(store, cid)
    assert str(info.value).startswith(f"manifest {cid} is not a valid DataBright manifest (")
    assert reason in str(info.value)
    assert isinstance(info.value, StorageError)


def test_not_json_at_all(store: BlobStore) -> None:
    cid = store.put(b"\xff\xfe not json")
    with pytest.raises(ManifestMismatch, match="is not a valid DataBright manifest \\(not JSON"):
        load_proposal(store, cid)
    cid = store.put(b"[1, 2]")
    with pytest.raises(ManifestMismatch, match="not a JSON object"):
        load_proposal(store, cid)


def test_altered_root_is_caught(
    store: BlobStore, schema: DatasetSchema, examples: Examples
) -> None:
    doc = _stored_doc(store, schema, examples)
    doc["merkle_root"] = "00" * 32
    cid = store.put(json.dumps(doc).encode())
    with pytest.raises(ManifestMismatch, match=f"manifest {cid} records Merkle root 0000"):
        load_proposal(store, cid)


def test_root_other_than_the_chains(
    store: BlobStore, schema: DatasetSchema, examples: Examples
) -> None:
    stored = store_proposal(store, examples, schema)
    with pytest.raises(ManifestMismatch) as info:
        load_proposal(store, stored.manifest_cid, expected_root=b"\x01" * 32)
    assert str(info.value) == (
        f"manifest {stored.manifest_cid} has Merkle root {stored.merkle_root.hex()} but the chain "
        f"records {'01' * 32}; it is not the manifest that was proposed, fetch the one the chain "
        "points to"
    )
    assert info.value.index is None


def test_schema_of_another_dataset(
    store: BlobStore, schema: DatasetSchema, examples: Examples
) -> None:
    stored = store_proposal(store, examples, schema)
    other = DatasetSchema(
        task="classification", feature_shape=(2, 3), dtype="float32", labels=(0, 1)
    )
    with pytest.raises(ManifestMismatch, match="the proposal belongs to another dataset"):
        load_proposal(store, stored.manifest_cid, schema=other)


def test_data_that_disagrees_with_the_manifest_names_the_example(
    store: BlobStore, schema: DatasetSchema, examples: Examples, data: Data
) -> None:
    X, y = data
    stored = store_proposal(store, examples, schema)
    X2 = X.copy()
    X2[17, 0, 0] += 1
    X2[30, 1, 1] += 1
    other = validate_examples(X2, y, schema)
    other_data = store.put(encode_examples(other))
    doc = json.loads(store.get(stored.manifest_cid))
    doc["data"] = other_data  # the manifest's hashes, someone else's data
    cid = store.put(json.dumps(doc).encode())
    with pytest.raises(ManifestMismatch) as info:
        load_proposal(store, cid)
    assert info.value.index == 17
    assert str(info.value) == (
        f"example 17 of data blob {other_data} hashes to {other.hash(17).hex()} but manifest "
        f"{cid} lists {examples.hash(17).hex()} (2 examples differ); the data does not match "
        "its manifest, refetch it or reject the proposal"
    )


def test_data_with_fewer_examples(
    store: BlobStore, schema: DatasetSchema, examples: Examples, data: Data
) -> None:
    X, y = data
    stored = store_proposal(store, examples, schema)
    short = store.put(encode_examples(validate_examples(X[:39], y[:39], schema)))
    doc = json.loads(store.get(stored.manifest_cid))
    doc["data"] = short
    cid = store.put(json.dumps(doc).encode())
    with pytest.raises(
        ManifestMismatch, match=f"data blob {short} holds 39 examples but manifest {cid} lists 40"
    ):
        load_proposal(store, cid)


def test_data_blob_that_is_not_an_archive(
    store: BlobStore, schema: DatasetSchema, examples: Examples
) -> None:
    stored = store_proposal(store, examples, schema)
    doc = json.loads(store.get(stored.manifest_cid))
    doc["data"] = store.put(b"not a zip")
    cid = store.put(json.dumps(doc).encode())
    with pytest.raises(
        ManifestMismatch, match=f"data blob {doc['data']} is not a readable .npz file"
    ):
        load_proposal(store, cid)


def test_corrupted_blob_is_caught_on_load(
    backend: Backend, schema: DatasetSchema, examples: Examples
) -> None:
    store = backend.store
    stored = store_proposal(store, examples, schema)
    raw = bytearray(store.get(stored.data_cid))
    raw[200] ^= 0x01
    backend.overwrite(stored.data_cid, bytes(raw))
    with pytest.raises(BlobCorrupt, match=f"blob {stored.data_cid} .* is damaged"):
        load_proposal(store, stored.manifest_cid)


def test_missing_schema_blob(backend: Backend, schema: DatasetSchema, examples: Examples) -> None:
    store = backend.store
    stored = store_proposal(store, examples, schema)
    backend.remove(stored.schema_cid)
    with pytest.raises(BlobNotFound, match=f"blob {stored.schema_cid} is not in "):
        load_proposal(store, stored.manifest_cid)
    store.put(b'{"task": "nonsense"}')
    doc = json.loads(store.get(stored.manifest_cid))
    doc["schema"] = cid_for_bytes(b'{"task": "nonsense"}')
    cid = store.put(json.dumps(doc).encode())
    with pytest.raises(StorageError, match="is not a valid schema"):
        load_proposal(store, cid)


def test_decode_refuses_data_of_another_shape(schema: DatasetSchema, examples: Examples) -> None:
    wide = DatasetSchema(
        task="classification", feature_shape=(6,), dtype="float32", labels=tuple(range(10))
    )
    with pytest.raises(ManifestMismatch, match=r"holds X of shape \(40, 2, 3\)"):
        decode_examples(encode_examples(examples), wide)
    regression = DatasetSchema(task="regression", feature_shape=(2, 3), dtype="float32")
    with pytest.raises(ManifestMismatch, match="labels of dtype int64, which does not fit"):
        decode_examples(encode_examples(examples), regression)


def test_store_refuses_examples_of_another_schema(store: BlobStore, examples: Examples) -> None:
    wide = DatasetSchema(
        task="classification", feature_shape=(6,), dtype="float32", labels=tuple(range(10))
    )
    with pytest.raises(ValueError, match="were not validated against this schema"):
        store_proposal(store, examples, wide)


def test_pickle_in_a_data_blob_is_never_loaded(
    store: BlobStore, schema: DatasetSchema, examples: Examples
) -> None:
    stored = store_proposal(store, examples, schema)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in (("X.npy", np.empty((40, 2, 3), dtype=object)), ("y.npy", examples.y)):
            member = io.BytesIO()
            np.save(member, array, allow_pickle=True)
            archive.writestr(name, member.getvalue())
    doc = json.loads(store.get(stored.manifest_cid))
    doc["data"] = store.put(buffer.getvalue())
    cid = store.put(json.dumps(doc).encode())
    with pytest.raises(ManifestMismatch, match="holds Python objects"):
        load_proposal(store, cid)
