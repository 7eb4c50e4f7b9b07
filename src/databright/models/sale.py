"""Buying a model's weights outright, fairly: the off-chain half of ``contracts/WeightSale.vy``.

A seller cannot be trusted to hand over the weights that were benchmarked, and a buyer cannot
be trusted to pay once it has them. FairSwap (Dziembowski, Eckey, Faust 2018) resolves this with
an escrow that never looks at the weights: the seller sends the weights encrypted, commits to
the ciphertext and to the key, reveals the key on-chain once the buyer confirms it holds the
ciphertext, and the contract judges only a short proof of misbehaviour (one chunk and two Merkle
paths) that a cheated buyer can build. This module computes everything both sides need off-chain;
the contract's NatSpec header states the on-chain protocol (states, deadlines, who may call what).

Weights root. A checkpoint (the safetensors file's bytes) is cut into :data:`CHUNK` = 1024-byte
chunks, the last zero-padded; ``leaf_i = keccak256(chunk_i)``; the tree is a binary Merkle tree
over the leaves padded with zero ``bytes32`` leaves to a power of two, parent =
``keccak256(left ++ right)`` (positional, so a proof pins the index, and the contract insists on
a proof exactly as long as the tree is deep, so an inner node cannot pose as a leaf). The weights
root ``keccak256(abi_encode(tree_root, n_chunks, byte_length))`` pins the size too. The model
registers it next to its checkpoint's CID digest; the evaluator recomputes it from the checkpoint
it benchmarks, so the root the buyer holds the seller to is the root of the benchmarked bytes.

Weights manifest. The buyer must know each chunk's leaf to prove a chunk wrong, without having the
weights. The seller publishes a manifest (:func:`weights_manifest`, JSON) listing every leaf with
the model; :func:`leaves_from_manifest` rebuilds the weights root from it and refuses one that
does not match the registered root. A seller who publishes no valid manifest simply cannot sell
(a buyer checks the manifest before buying); a manifest that matches the root but not the
checkpoint is impossible, since the evaluator saw the real checkpoint and its root.

Encryption. Word ``j`` (32 bytes) of chunk ``i`` is XORed with
``keccak256(abi_encode(key, sale_id, i, j))`` (key a random ``bytes32``). The pad depends on the
sale, so a key used for two sales never yields the same pad twice (the XOR of two ciphertexts
would leak the XOR of the weights), and ``key_commitment = keccak256(abi_encode(key, sale_id))``
is bound to its sale: a key or commitment from one sale cannot be replayed into another. The
contract recomputes 32 pad words to decrypt the disputed chunk, which costs little gas.

Complaint. After the key is revealed the buyer decrypts every chunk and compares its leaf with the
manifest; :func:`find_complaint` returns the first chunk that does not match, with the cipher
chunk, its proof against the delivered ``cipher_root`` and the plain leaf with its proof against
the registered tree, i.e. the arguments of ``WeightSale.complain``. :func:`complaint_holds`
judges a complaint exactly as the contract does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from databright.errors import InvalidArgument, ManifestMismatch
from databright.storage.hashing import keccak256

__all__ = [
    "CHUNK",
    "CHUNK_WORDS",
    "MANIFEST_FORMAT",
    "MAX_DEPTH",
    "Complaint",
    "chunks",
    "cipher_root",
    "complaint_holds",
    "decrypt",
    "delivery_matches",
    "encrypt",
    "find_complaint",
    "key_commitment",
    "leaves",
    "leaves_from_manifest",
    "merkle_proof",
    "merkle_root",
    "pad",
    "root_from_proof",
    "tree_depth",
    "weights_manifest",
    "weights_root",
    "weights_root_of",
]

CHUNK: Final = 1024
"""Bytes per chunk: 32 words of 32 bytes, the unit the contract decrypts and hashes."""

CHUNK_WORDS: Final = CHUNK // 32

MAX_DEPTH: Final = 40
"""The deepest tree the contract accepts (``WeightSale.MAX_DEPTH``): up to 2**40 chunks."""

MANIFEST_FORMAT: Final = "databright-weights-manifest-v1"

_ZERO: Final = bytes(32)


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def chunks(blob: bytes) -> list[bytes]:
    """``blob`` cut into :data:`CHUNK`-byte chunks, the last zero-padded; an empty blob is refused
    because the contract's tree needs at least one leaf."""
    blob = bytes(blob)
    if not blob:
        raise InvalidArgument("The checkpoint is empty; give the bytes of a safetensors file.")
    out = [blob[i : i + CHUNK] for i in range(0, len(blob), CHUNK)]
    out[-1] = out[-1].ljust(CHUNK, b"\x00")
    return out


def leaves(blob: bytes) -> list[bytes]:
    """The tree's leaves for ``blob``: ``keccak256`` of each padded chunk."""
    return [keccak256(c) for c in chunks(blob)]


def tree_depth(n_leaves: int) -> int:
    """The depth of the tree over ``n_leaves`` leaves (0 for one leaf), i.e. every proof's length."""
    if n_leaves < 1:
        raise InvalidArgument(
            "A weights tree needs at least one leaf; give a non-empty checkpoint."
        )
    return (n_leaves - 1).bit_length()


def _levels(leaf_list: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves (zero-padded to a power of two) first, the root last."""
    for leaf in leaf_list:
        if len(leaf) != 32:
            raise InvalidArgument("A Merkle leaf is not 32 bytes; give keccak256 digests.")
    level = list(leaf_list) + [_ZERO] * ((1 << tree_depth(len(leaf_list))) - len(leaf_list))
    levels = [level]
    while len(level) > 1:
        level = [keccak256(level[k] + level[k + 1]) for k in range(0, len(level), 2)]
        levels.append(level)
    return levels


def merkle_root(leaf_list: Sequence[bytes]) -> bytes:
    """The positional Merkle root over ``leaf_list`` (zero leaves pad it to a power of two)."""
    return _levels(leaf_list)[-1][0]


def merkle_proof(leaf_list: Sequence[bytes], index: int) -> list[bytes]:
    """The siblings from leaf ``index`` up to the root, bottom first (``tree_depth`` of them)."""
    if not 0 <= index < len(leaf_list):
        raise InvalidArgument(
            f"Leaf index {index} is outside the tree's {len(leaf_list)} leaves; give 0 to {len(leaf_list) - 1}."
        )
    proof = []
    for level in _levels(leaf_list)[:-1]:
        proof.append(level[index ^ 1])
        index >>= 1
    return proof


def root_from_proof(leaf: bytes, index: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf`` at ``index`` (as the contract's ``_root``)."""
    node = bytes(leaf)
    for sibling in proof:
        node = keccak256(node + sibling) if index & 1 == 0 else keccak256(sibling + node)
        index >>= 1
    return node


def weights_root_of(tree_root: bytes, n_chunks: int, byte_length: int) -> bytes:
    """``keccak256(abi_encode(tree_root, n_chunks, byte_length))``: the root with the size pinned."""
    return keccak256(bytes(tree_root) + _word(n_chunks) + _word(byte_length))


def weights_root(blob: bytes) -> bytes:
    """The 32-byte weights root a model registers for its checkpoint ``blob``."""
    leaf_list = leaves(blob)
    return weights_root_of(merkle_root(leaf_list), len(leaf_list), len(blob))


def pad(key: bytes, sale_id: int, index: int) -> bytes:
    """The 1024-byte one-time pad of chunk ``index`` in sale ``sale_id``."""
    key = _key(key)
    head = key + _word(sale_id) + _word(index)
    return b"".join(keccak256(head + _word(j)) for j in range(CHUNK_WORDS))


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _key(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) != 32:
        raise InvalidArgument(
            "A sale key must be 32 bytes; generate one with secrets.token_bytes(32)."
        )
    return bytes(key)


def encrypt(blob: bytes, key: bytes, sale_id: int) -> bytes:
    """The ciphertext the seller delivers for sale ``sale_id``: every padded chunk XOR its pad
    (``len(chunks(blob)) * CHUNK`` bytes)."""
    return b"".join(_xor(c, pad(key, sale_id, i)) for i, c in enumerate(chunks(blob)))


def _cipher_chunks(cipher: bytes) -> list[bytes]:
    if not cipher or len(cipher) % CHUNK:
        raise InvalidArgument(
            f"The ciphertext is {len(cipher)} bytes, not a positive multiple of {CHUNK}; ask the seller to deliver it again."
        )
    return [bytes(cipher[i : i + CHUNK]) for i in range(0, len(cipher), CHUNK)]


def decrypt(cipher: bytes, key: bytes, sale_id: int, byte_length: int) -> bytes:
    """The plaintext of ``cipher``, cut to ``byte_length`` bytes (the checkpoint's size)."""
    parts = _cipher_chunks(cipher)
    if not (len(parts) - 1) * CHUNK < byte_length <= len(parts) * CHUNK:
        raise InvalidArgument(
            f"A ciphertext of {len(parts)} chunks cannot hold {byte_length} bytes; give the byte length the sale lists."
        )
    plain = b"".join(_xor(c, pad(key, sale_id, i)) for i, c in enumerate(parts))
    return plain[:byte_length]


def cipher_root(cipher: bytes) -> bytes:
    """The Merkle root over ``keccak256`` of each ciphertext chunk (the seller's delivery root)."""
    return merkle_root([keccak256(c) for c in _cipher_chunks(cipher)])


def delivery_matches(cipher: bytes, expected_cipher_root: bytes, n_chunks: int) -> bool:
    """Whether a ciphertext handed over off-chain is what the seller committed to: exactly
    ``n_chunks`` chunks (the listed count) under ``expected_cipher_root``. A buyer accepts only
    then, and cancels otherwise: once accepted, a complaint needs every chunk of it."""
    if len(cipher) != n_chunks * CHUNK or n_chunks < 1:
        return False
    return cipher_root(cipher) == bytes(expected_cipher_root)


def key_commitment(key: bytes, sale_id: int) -> bytes:
    """``keccak256(abi_encode(key, sale_id))``: the seller's commitment to the key, bound to one
    sale so that it cannot be replayed into another."""
    return keccak256(_key(key) + _word(sale_id))


@dataclass(frozen=True)
class Complaint:
    """The arguments of ``WeightSale.complain``: chunk ``index`` of the ciphertext with its proof
    against the delivered cipher root, and the benchmarked chunk's leaf with its proof against the
    registered tree root."""

    index: int
    cipher_chunk: bytes
    cipher_proof: tuple[bytes, ...]
    plain_leaf: bytes
    plain_proof: tuple[bytes, ...]

    @property
    def cipher_words(self) -> list[bytes]:
        """The cipher chunk as the contract takes it: 32 words of 32 bytes."""
        return [self.cipher_chunk[k : k + 32] for k in range(0, CHUNK, 32)]

    def args(self, sale_id: int) -> tuple[int, int, list[bytes], list[bytes], bytes, list[bytes]]:
        """``(sale_id, index, cipher_words, cipher_proof, plain_leaf, plain_proof)`` for the call."""
        return (
            sale_id,
            self.index,
            self.cipher_words,
            list(self.cipher_proof),
            self.plain_leaf,
            list(self.plain_proof),
        )


def find_complaint(
    cipher: bytes, key: bytes, sale_id: int, expected: bytes | Sequence[bytes]
) -> Complaint | None:
    """The first chunk of ``cipher`` that ``key`` does not decrypt to the benchmarked chunk, ready
    to send to ``complain``; ``None`` when every chunk decrypts correctly.

    ``expected`` is the benchmarked checkpoint's bytes or, as a buyer has it, its leaves (from
    :func:`leaves_from_manifest`). A ciphertext of another length than the leaves is refused: the
    buyer should have checked it against the delivery (and cancelled) before accepting.
    """
    plain_leaves = leaves(expected) if isinstance(expected, bytes | bytearray) else list(expected)
    parts = _cipher_chunks(cipher)
    if len(parts) != len(plain_leaves):
        raise InvalidArgument(
            f"The ciphertext has {len(parts)} chunks but the benchmarked weights {len(plain_leaves)}; cancel the sale instead of accepting such a delivery."
        )
    for i, c in enumerate(parts):
        if keccak256(_xor(c, pad(key, sale_id, i))) != plain_leaves[i]:
            cipher_leaves = [keccak256(p) for p in parts]
            return Complaint(
                index=i,
                cipher_chunk=c,
                cipher_proof=tuple(merkle_proof(cipher_leaves, i)),
                plain_leaf=plain_leaves[i],
                plain_proof=tuple(merkle_proof(plain_leaves, i)),
            )
    return None


def complaint_holds(
    complaint: Complaint,
    *,
    key: bytes,
    sale_id: int,
    cipher_root: bytes,
    tree_root: bytes,
    n_chunks: int,
) -> bool:
    """Whether the contract upholds ``complaint`` (the same checks, in the same order): the index
    is a real chunk, both proofs are exactly as long as the tree is deep and lead to the delivered
    cipher root and the registered tree root, and the chunk decrypts to something else than the
    benchmarked leaf."""
    index = complaint.index
    if not 0 <= index < n_chunks or len(complaint.cipher_chunk) != CHUNK:
        return False
    depth = tree_depth(n_chunks)
    if len(complaint.cipher_proof) != depth or len(complaint.plain_proof) != depth:
        return False
    if (
        root_from_proof(keccak256(complaint.cipher_chunk), index, complaint.cipher_proof)
        != cipher_root
    ):
        return False
    if root_from_proof(complaint.plain_leaf, index, complaint.plain_proof) != tree_root:
        return False
    plain = _xor(complaint.cipher_chunk, pad(key, sale_id, index))
    return keccak256(plain) != complaint.plain_leaf


def weights_manifest(blob: bytes) -> bytes:
    """The JSON manifest a seller publishes with its model: size, roots and every chunk's leaf."""
    leaf_list = leaves(blob)
    tree_root = merkle_root(leaf_list)
    doc = {
        "format": MANIFEST_FORMAT,
        "chunk_size": CHUNK,
        "byte_length": len(blob),
        "n_chunks": len(leaf_list),
        "tree_root": "0x" + tree_root.hex(),
        "weights_root": "0x" + weights_root_of(tree_root, len(leaf_list), len(blob)).hex(),
        "leaves": ["0x" + leaf.hex() for leaf in leaf_list],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _hex32(value: object) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 66:
        raise InvalidArgument(
            "A weights manifest entry is not a 0x-prefixed 32-byte hex string; ask the seller for a valid manifest."
        )
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidArgument(
            "A weights manifest entry is not valid hex; ask the seller for a valid manifest."
        ) from None


def leaves_from_manifest(manifest: bytes, expected_weights_root: bytes) -> list[bytes]:
    """The leaves a weights manifest lists, once their root, chunk count and byte length are
    checked to give ``expected_weights_root`` (the root registered for the model's version)."""
    try:
        doc = json.loads(manifest)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(
            "The weights manifest is not JSON; ask the seller for the manifest it published."
        ) from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != MANIFEST_FORMAT
        or doc.get("chunk_size") != CHUNK
    ):
        raise InvalidArgument(
            f"The weights manifest is not a {MANIFEST_FORMAT} manifest with {CHUNK}-byte chunks; ask the seller for one."
        )
    raw_leaves, byte_length = doc.get("leaves"), doc.get("byte_length")
    if not isinstance(raw_leaves, list) or not raw_leaves or type(byte_length) is not int:
        raise InvalidArgument(
            "The weights manifest lacks its leaves or byte length; ask the seller for a complete manifest."
        )
    if len(raw_leaves) > 1 << MAX_DEPTH:
        raise InvalidArgument(
            "The weights manifest lists more chunks than the contract can judge; such weights cannot be sold."
        )
    leaf_list = [_hex32(v) for v in raw_leaves]
    n = len(leaf_list)
    if not (n - 1) * CHUNK < byte_length <= n * CHUNK:
        raise ManifestMismatch(
            f"The weights manifest's byte length {byte_length} does not fit its {n} chunks; do not buy from it."
        )
    if weights_root_of(merkle_root(leaf_list), n, byte_length) != bytes(expected_weights_root):
        raise ManifestMismatch(
            "The weights manifest does not give the registered weights root; do not buy these weights until the seller publishes the matching manifest."
        )
    return leaf_list
