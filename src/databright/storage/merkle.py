"""The Merkle tree over a proposal's example hashes, verifiable on-chain.

Construction (``MERKLE_CONSTRUCTION``), chosen so that snekmate's
``merkle_proof_verification._verify(proof, root, leaf)`` and OpenZeppelin's
``MerkleProof.verify`` accept our proofs, and OpenZeppelin's JavaScript library rebuilds the same
root with ``SimpleMerkleTree.of(exampleHashes.map(h => keccak256(h)))``:

* leaf = ``keccak256(example_hash)`` (32 bytes in; in Vyper ``keccak256(example_hash)``);
* inner node = ``keccak256(min(a, b) ++ max(a, b))``, pairs ordered as unsigned 256-bit
  integers (byte order), which is snekmate's ``_hash_pair``: a proof needs no left/right flags
  and no index;
* leaves sorted ascending, then laid out as OpenZeppelin's complete binary tree in an array of
  ``2n - 1`` nodes: sorted leaf ``k`` at ``2n - 2 - k``, node ``i``'s children at ``2i + 1`` and
  ``2i + 2``, the root at ``0``. An odd level needs no padding (the complete tree pairs the
  last node one level up); one leaf is its own root with an empty proof; zero leaves have no
  root and are refused.

Why one keccak on the leaf, where OpenZeppelin's ``StandardMerkleTree`` hashes twice: the second
hash exists to stop a 64-byte leaf pre-image from posing as an inner node (whose pre-image is
64 bytes). Our leaf pre-image is always a 32-byte sha2-256 digest, so it can never be an inner
node's pre-image, and passing an inner node off as a leaf needs a keccak pre-image. A contract
must still hash the example hash itself (never accept a leaf from a caller). Dropping the second
hash removes a third of the keccak calls, which dominate ingestion time.

Sorting makes the root a commitment to the *set* of examples; their order is fixed by the
manifest, whose CID goes on-chain next to the root.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import methodcaller
from typing import Final, cast

import numpy as np
import numpy.typing as npt

from databright.errors import InvalidProposal
from databright.storage._parallel import map_ranges
from databright.storage.hashing import _keccak_new, keccak256

__all__ = ["MERKLE_CONSTRUCTION", "MerkleTree", "leaf_hash", "verify_proof"]

MERKLE_CONSTRUCTION: Final = "oz-simple-v1:keccak256-leaf"

_digest = methodcaller("digest")


def leaf_hash(example_hash: bytes) -> bytes:
    """The tree leaf for an example hash: ``keccak256(example_hash)``."""
    return keccak256(bytes(example_hash))


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak256(a + b if a < b else b + a)


def verify_proof(example_hash: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether ``proof`` shows that ``example_hash`` is in the tree with ``root``.

    Mirrors snekmate's ``_verify`` (sorted pairs, no index). Malformed input (a value that is
    not 32 bytes) is answered ``False``, not an exception, since proofs come from strangers.
    """
    values = [example_hash, root, *proof]
    if any(not isinstance(v, bytes | bytearray) or len(v) != 32 for v in values):
        return False
    computed = leaf_hash(example_hash)
    for sibling in proof:
        computed = _hash_pair(computed, bytes(sibling))
    return computed == bytes(root)


def _as_hash_matrix(values: npt.ArrayLike | Iterable[bytes]) -> npt.NDArray[np.uint8]:
    if isinstance(values, np.ndarray):
        matrix = np.ascontiguousarray(values, dtype=np.uint8)
    else:
        items = [bytes(v) for v in cast(Iterable[bytes], values)]
        if any(len(v) != 32 for v in items):
            raise ValueError("every Merkle leaf value must be 32 bytes (an example hash)")
        matrix = np.frombuffer(b"".join(items), dtype=np.uint8).reshape(len(items), 32)
    if matrix.ndim != 2 or matrix.shape[1] != 32:
        raise ValueError(f"expected an (n, 32) array of example hashes, got shape {matrix.shape}")
    return matrix


def _keccak_rows(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """keccak256 of every row of a uint8 matrix, as an (m, 32) matrix."""
    m, width = rows.shape
    if m == 0:
        return np.empty((0, 32), dtype=np.uint8)
    records = np.ascontiguousarray(rows).view(f"V{width}").reshape(m)

    def hash_range(start: int, stop: int) -> bytes:
        return b"".join(map(_digest, map(_keccak_new, records[start:stop].tolist())))

    return np.frombuffer(map_ranges(m, 32, hash_range), dtype=np.uint8).reshape(m, 32)


def _sorted_pairs(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Rows ``min(a, b) ++ max(a, b)`` (byte order) for each pair of rows, vectorised."""
    wa = a.view(">u8")
    wb = b.view(">u8")
    # Lexicographic a < b over the four big-endian words, most significant first.
    less = np.zeros(len(a), dtype=bool)
    equal = np.ones(len(a), dtype=bool)
    for k in range(4):
        less |= equal & (wa[:, k] < wb[:, k])
        equal &= wa[:, k] == wb[:, k]
    out = np.empty((len(a), 64), dtype=np.uint8)
    out[:, :32] = np.where(less[:, None], a, b)
    out[:, 32:] = np.where(less[:, None], b, a)
    return out


class MerkleTree:
    """The Merkle tree over example hashes (see the module docs for the construction).

    Built level by level with numpy doing the pair sorting and concatenation, so only the
    keccak calls themselves are per-node Python work.
    """

    def __init__(self, example_hashes: npt.ArrayLike | Iterable[bytes]) -> None:
        values = _as_hash_matrix(example_hashes)
        if len(values) == 0:
            raise InvalidProposal(
                "a proposal needs at least one example: an empty Merkle tree has no root"
            )
        self._build(_keccak_rows(values), sort_leaves=True)

    @classmethod
    def from_leaves(
        cls, leaves: npt.ArrayLike | Iterable[bytes], *, sort_leaves: bool = True
    ) -> MerkleTree:
        """A tree over ready-made 32-byte leaves (no leaf hashing), as OpenZeppelin's
        ``makeMerkleTree``; ``sort_leaves=False`` keeps their order (``sortLeaves: false``).
        """
        values = _as_hash_matrix(leaves)
        if len(values) == 0:
            raise ValueError("a Merkle tree needs at least one leaf")
        tree = cls.__new__(cls)
        tree._build(values, sort_leaves=sort_leaves)
        return tree

    def _build(self, leaves: npt.NDArray[np.uint8], *, sort_leaves: bool) -> None:
        n = len(leaves)
        if sort_leaves:
            # Byte-string order; numpy's "S" comparison ignores trailing NULs, which for strings
            # of equal length gives the same order as comparing all 32 bytes.
            order = np.argsort(leaves.view("S32").reshape(n), kind="stable")
        else:
            order = np.arange(n)
        size = 2 * n - 1
        tree = np.empty((size, 32), dtype=np.uint8)
        # Leaf k (in tree order) sits at size-1-k: the leaves fill the tail of the array reversed.
        tree[size - n :] = leaves[order[::-1]]
        position = np.empty(n, dtype=np.int64)
        position[order] = size - 1 - np.arange(n)
        # Inner nodes are 0..n-2; going up depth by depth, the inner nodes of one depth form a
        # contiguous index range whose children (one depth down) are contiguous too.
        for depth in range(size.bit_length() - 1, -1, -1):
            lo = (1 << depth) - 1
            hi = min((1 << (depth + 1)) - 2, n - 2)
            if lo <= hi:
                children = tree[2 * lo + 1 : 2 * hi + 3]
                tree[lo : hi + 1] = _keccak_rows(_sorted_pairs(children[0::2], children[1::2]))
        tree.flags.writeable = False
        self._tree = tree
        self._position = position
        self._n = n

    def __len__(self) -> int:
        return self._n

    @property
    def root(self) -> bytes:
        """The 32-byte root that goes on-chain."""
        return bytes(self._tree[0])

    @property
    def nodes(self) -> npt.NDArray[np.uint8]:
        """The whole tree, ``(2n - 1, 32)``, in OpenZeppelin's array layout (read-only)."""
        return self._tree

    def leaf(self, index: int) -> bytes:
        """The leaf of example ``index`` (its position in the manifest, not in the tree)."""
        return bytes(self._tree[self._position[self._check(index)]])

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from example ``index``'s leaf up to the root (OpenZeppelin order)."""
        node = int(self._position[self._check(index)])
        proof: list[bytes] = []
        while node > 0:
            sibling = node + 1 if node % 2 else node - 1
            proof.append(bytes(self._tree[sibling]))
            node = (node - 1) // 2
        return proof

    def _check(self, index: int) -> int:
        if not 0 <= index < self._n:
            raise IndexError(f"example index {index} is outside 0..{self._n - 1}")
        return index
