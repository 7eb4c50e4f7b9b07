"""databright.models.sale: the off-chain half of the fair weight sale (no chain here).

The encodings are checked against eth_abi (what the contract's ``abi_encode`` produces); that the
contract judges complaints as :func:`complaint_holds` does is checked in
``tests/contracts/test_weight_sale.py``.
"""

from __future__ import annotations

import json
import secrets

import pytest
from eth_abi import encode
from hypothesis import given, settings
from hypothesis import strategies as st

from databright.errors import InvalidArgument, ManifestMismatch
from databright.models import sale as ws
from databright.storage.hashing import keccak256

KEY = bytes(range(32))
blobs = st.binary(min_size=1, max_size=6 * ws.CHUNK + 100)


def _tamper(blob: bytes, index: int, offset: int) -> bytes:
    at = min(index * ws.CHUNK + offset % ws.CHUNK, len(blob) - 1)
    return blob[:at] + bytes([blob[at] ^ 0xFF]) + blob[at + 1 :]


# --- chunks and the tree -----------------------------------------------------------------------


def test_chunks_pad_only_the_last_chunk_with_zeros() -> None:
    blob = b"\x01" * (2 * ws.CHUNK + 5)
    parts = ws.chunks(blob)
    assert [len(p) for p in parts] == [ws.CHUNK] * 3
    assert parts[2] == b"\x01" * 5 + bytes(ws.CHUNK - 5)
    assert len(ws.chunks(b"\x02" * ws.CHUNK)) == 1  # an exact multiple gets no extra chunk


def test_an_empty_checkpoint_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="empty"):
        ws.chunks(b"")
    with pytest.raises(InvalidArgument, match="at least one leaf"):
        ws.merkle_root([])


def test_the_tree_is_positional_and_padded_with_zero_leaves() -> None:
    a, b, c = (keccak256(bytes([i])) for i in range(3))
    assert ws.merkle_root([a]) == a
    assert ws.merkle_root([a, b]) == keccak256(a + b)
    assert ws.merkle_root([b, a]) != ws.merkle_root([a, b])  # order matters: proofs pin indices
    assert ws.merkle_root([a, b, c]) == keccak256(keccak256(a + b) + keccak256(c + bytes(32)))


def test_a_leaf_that_is_not_32_bytes_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="32 bytes"):
        ws.merkle_root([b"short"])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 17])
def test_every_proof_leads_to_the_root_and_is_as_long_as_the_tree_is_deep(n: int) -> None:
    leaves = [keccak256(i.to_bytes(4, "big")) for i in range(n)]
    root = ws.merkle_root(leaves)
    for i in range(n):
        proof = ws.merkle_proof(leaves, i)
        assert len(proof) == ws.tree_depth(n) == (n - 1).bit_length()
        assert ws.root_from_proof(leaves[i], i, proof) == root
        if n > 1:
            assert ws.root_from_proof(leaves[i], i ^ 1, proof) != root  # wrong position


def test_a_proof_for_a_leaf_outside_the_tree_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="outside"):
        ws.merkle_proof([bytes(32)], 1)


def test_weights_root_is_the_abi_encoding_the_contract_hashes() -> None:
    blob = secrets.token_bytes(3 * ws.CHUNK + 1)
    tree = ws.merkle_root([keccak256(c) for c in ws.chunks(blob)])
    expected = keccak256(encode(["bytes32", "uint256", "uint256"], [tree, 4, len(blob)]))
    assert ws.weights_root(blob) == ws.weights_root_of(tree, 4, len(blob)) == expected
    assert ws.weights_root(blob + b"\x00") != expected  # the size is pinned, not only the chunks


# --- encryption --------------------------------------------------------------------------------


def test_pad_and_key_commitment_are_the_abi_encodings_the_contract_hashes() -> None:
    types = ["bytes32", "uint256", "uint256", "uint256"]
    pad = ws.pad(KEY, 7, 3)
    assert len(pad) == ws.CHUNK
    for j in (0, 31):
        assert pad[32 * j : 32 * j + 32] == keccak256(encode(types, [KEY, 7, 3, j]))
    assert ws.key_commitment(KEY, 7) == keccak256(encode(["bytes32", "uint256"], [KEY, 7]))


def test_a_key_must_be_32_bytes() -> None:
    with pytest.raises(InvalidArgument, match="32 bytes"):
        ws.encrypt(b"weights", b"short", 1)
    with pytest.raises(InvalidArgument, match="32 bytes"):
        ws.key_commitment(b"x" * 33, 1)


@settings(max_examples=30, deadline=None)
@given(blob=blobs, sale_id=st.integers(0, 2**256 - 1), key=st.binary(min_size=32, max_size=32))
def test_decrypting_the_ciphertext_gives_the_weights_back(
    blob: bytes, sale_id: int, key: bytes
) -> None:
    cipher = ws.encrypt(blob, key, sale_id)
    assert len(cipher) == len(ws.chunks(blob)) * ws.CHUNK
    assert ws.decrypt(cipher, key, sale_id, len(blob)) == blob
    assert ws.find_complaint(cipher, key, sale_id, blob) is None
    assert ws.find_complaint(cipher, key, sale_id, ws.leaves(blob)) is None


def test_the_pad_depends_on_the_key_the_sale_and_the_chunk() -> None:
    blob = bytes(2 * ws.CHUNK)
    cipher = ws.encrypt(blob, KEY, 1)
    assert cipher[: ws.CHUNK] != cipher[ws.CHUNK :]
    assert ws.encrypt(blob, KEY, 2) != cipher
    assert ws.decrypt(cipher, bytes(32), 1, len(blob)) != blob
    assert ws.decrypt(cipher, KEY, 2, len(blob)) != blob
    assert ws.key_commitment(KEY, 1) != ws.key_commitment(KEY, 2)


def test_decrypt_refuses_a_ciphertext_or_length_that_does_not_fit() -> None:
    cipher = ws.encrypt(b"w" * 1500, KEY, 1)
    with pytest.raises(InvalidArgument, match="multiple of 1024"):
        ws.decrypt(cipher[:-1], KEY, 1, 1500)
    with pytest.raises(InvalidArgument, match="multiple of 1024"):
        ws.cipher_root(b"")
    with pytest.raises(InvalidArgument, match="cannot hold"):
        ws.decrypt(cipher, KEY, 1, 1024)
    with pytest.raises(InvalidArgument, match="cannot hold"):
        ws.decrypt(cipher, KEY, 1, 2049)


def test_cipher_root_is_the_tree_over_the_ciphertext_chunks() -> None:
    cipher = ws.encrypt(b"w" * 3000, KEY, 1)
    parts = [cipher[i : i + ws.CHUNK] for i in range(0, len(cipher), ws.CHUNK)]
    assert ws.cipher_root(cipher) == ws.merkle_root([keccak256(p) for p in parts])


def test_a_delivery_matches_only_its_root_and_chunk_count() -> None:
    cipher = ws.encrypt(b"w" * 3000, KEY, 1)
    root = ws.cipher_root(cipher)
    assert ws.delivery_matches(cipher, root, 3)
    assert not ws.delivery_matches(cipher, root, 4)
    assert not ws.delivery_matches(cipher[:-1] + b"\x00", root, 3)
    assert not ws.delivery_matches(cipher + bytes(ws.CHUNK), root, 3)
    assert not ws.delivery_matches(b"", root, 0)


# --- complaints --------------------------------------------------------------------------------


def _judge(c: ws.Complaint, blob: bytes, cipher: bytes, key: bytes, sale_id: int) -> bool:
    return ws.complaint_holds(
        c,
        key=key,
        sale_id=sale_id,
        cipher_root=ws.cipher_root(cipher),
        tree_root=ws.merkle_root(ws.leaves(blob)),
        n_chunks=len(ws.chunks(blob)),
    )


@settings(max_examples=40, deadline=None)
@given(
    blob=blobs,
    data=st.data(),
    sale_id=st.integers(1, 2**64),
    key=st.binary(min_size=32, max_size=32),
)
def test_every_single_chunk_tampering_is_found_and_its_complaint_holds(
    blob: bytes, data: st.DataObject, sale_id: int, key: bytes
) -> None:
    n = len(ws.chunks(blob))
    index = data.draw(st.integers(0, n - 1), label="index")
    offset = data.draw(st.integers(0, ws.CHUNK - 1), label="offset")
    forged = _tamper(blob, index, offset)
    cipher = ws.encrypt(forged, key, sale_id)
    complaint = ws.find_complaint(cipher, key, sale_id, ws.leaves(blob))
    assert complaint is not None and complaint.index == index
    assert complaint == ws.find_complaint(cipher, key, sale_id, blob)
    assert _judge(complaint, blob, cipher, key, sale_id)
    # The same proofs do not convict an honest seller.
    honest = ws.encrypt(blob, key, sale_id)
    assert ws.find_complaint(honest, key, sale_id, blob) is None


@settings(max_examples=40, deadline=None)
@given(blob=blobs, data=st.data())
def test_a_wrong_key_is_caught_at_the_first_chunk(blob: bytes, data: st.DataObject) -> None:
    other = data.draw(st.binary(min_size=32, max_size=32).filter(lambda k: k != KEY))
    cipher = ws.encrypt(blob, KEY, 5)
    complaint = ws.find_complaint(cipher, other, 5, blob)
    assert complaint is not None and complaint.index == 0
    assert _judge(complaint, blob, cipher, other, 5)
    assert not _judge(complaint, blob, cipher, KEY, 5)  # under the right key the chunk is fine


def test_forged_complaints_do_not_hold() -> None:
    blob = secrets.token_bytes(5 * ws.CHUNK - 9)
    cipher = ws.encrypt(_tamper(blob, 2, 0), KEY, 3)
    real = ws.find_complaint(cipher, KEY, 3, blob)
    assert real is not None and _judge(real, blob, cipher, KEY, 3)
    leaves = ws.leaves(blob)
    forgeries = [
        ws.Complaint(5, real.cipher_chunk, real.cipher_proof, real.plain_leaf, real.plain_proof),
        ws.Complaint(3, real.cipher_chunk, real.cipher_proof, real.plain_leaf, real.plain_proof),
        ws.Complaint(
            2, real.cipher_chunk, real.cipher_proof[:-1], real.plain_leaf, real.plain_proof
        ),
        ws.Complaint(2, real.cipher_chunk, real.cipher_proof, leaves[3], real.plain_proof),
        ws.Complaint(2, bytes(ws.CHUNK), real.cipher_proof, real.plain_leaf, real.plain_proof),
        ws.Complaint(
            2, real.cipher_chunk[:-1], real.cipher_proof, real.plain_leaf, real.plain_proof
        ),
    ]
    for forged in forgeries:
        assert not _judge(forged, blob, cipher, KEY, 3)


def test_a_ciphertext_of_another_length_is_refused_not_judged() -> None:
    blob = b"w" * 3000
    cipher = ws.encrypt(blob + b"more" * 300, KEY, 1)
    with pytest.raises(InvalidArgument, match="cancel the sale"):
        ws.find_complaint(cipher, KEY, 1, blob)


def test_complaint_args_are_what_complain_takes() -> None:
    blob = b"w" * 2100
    cipher = ws.encrypt(_tamper(blob, 1, 0), KEY, 9)
    c = ws.find_complaint(cipher, KEY, 9, blob)
    assert c is not None
    sale_id, index, words, cipher_proof, leaf, plain_proof = c.args(9)
    assert (sale_id, index, leaf) == (9, 1, c.plain_leaf)
    assert len(words) == 32 and b"".join(words) == c.cipher_chunk == cipher[ws.CHUNK : 2 * ws.CHUNK]
    assert len(cipher_proof) == len(plain_proof) == 2


# --- the weights manifest ----------------------------------------------------------------------


def test_the_manifest_gives_the_leaves_of_the_registered_root() -> None:
    blob = secrets.token_bytes(4 * ws.CHUNK + 1)
    manifest = ws.weights_manifest(blob)
    doc = json.loads(manifest)
    assert doc["n_chunks"] == 5 and doc["byte_length"] == len(blob)
    assert doc["weights_root"] == "0x" + ws.weights_root(blob).hex()
    assert ws.leaves_from_manifest(manifest, ws.weights_root(blob)) == ws.leaves(blob)


def _edit(manifest: bytes, **changes: object) -> bytes:
    doc = json.loads(manifest)
    doc.update(changes)
    return json.dumps(doc).encode()


def test_a_manifest_that_does_not_give_the_root_is_refused() -> None:
    blob = secrets.token_bytes(3 * ws.CHUNK)
    root, manifest = ws.weights_root(blob), ws.weights_manifest(blob)
    leaves = json.loads(manifest)["leaves"]
    with pytest.raises(ManifestMismatch, match="registered weights root"):
        ws.leaves_from_manifest(manifest, ws.weights_root(blob + b"x"))
    with pytest.raises(ManifestMismatch, match="registered weights root"):
        ws.leaves_from_manifest(_edit(manifest, leaves=[leaves[1], leaves[0], leaves[2]]), root)
    with pytest.raises(ManifestMismatch, match="registered weights root"):
        ws.leaves_from_manifest(_edit(manifest, byte_length=3 * ws.CHUNK - 1), root)
    with pytest.raises(ManifestMismatch, match="does not fit"):
        ws.leaves_from_manifest(_edit(manifest, byte_length=2 * ws.CHUNK), root)


@pytest.mark.parametrize(
    ("manifest", "match"),
    [
        (b"\xff not json", "not JSON"),
        (b"[]", "manifest with 1024-byte chunks"),
        (b'{"format": "databright-weights-manifest-v1", "chunk_size": 512}', "1024-byte chunks"),
        (
            b'{"format": "databright-weights-manifest-v1", "chunk_size": 1024, "leaves": []}',
            "lacks its leaves",
        ),
        (
            b'{"format": "databright-weights-manifest-v1", "chunk_size": 1024, "byte_length": 1,'
            b' "leaves": ["0x12"]}',
            "32-byte hex",
        ),
        (
            b'{"format": "databright-weights-manifest-v1", "chunk_size": 1024, "byte_length": 1,'
            b' "leaves": ["0x' + b"zz" * 32 + b'"]}',
            "not valid hex",
        ),
    ],
)
def test_a_malformed_manifest_is_refused_in_one_sentence(manifest: bytes, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        ws.leaves_from_manifest(manifest, bytes(32))
