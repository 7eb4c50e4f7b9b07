"""The Merkle tree over example hashes: proofs verify off-chain and with snekmate on-chain."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from databright.errors import InvalidProposal
from databright.storage import MerkleTree, keccak256, leaf_hash, verify_proof


def _hashes(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(n)]


def _reference_root(example_hashes: list[bytes]) -> bytes:
    """OpenZeppelin's makeMerkleTree over sorted leaves, written out the slow, obvious way."""
    leaves = sorted(keccak256(h) for h in example_hashes)
    tree: list[bytes] = [b""] * (2 * len(leaves) - 1)
    for i, leaf in enumerate(leaves):
        tree[len(tree) - 1 - i] = leaf
    for i in range(len(tree) - 1 - len(leaves), -1, -1):
        a, b = tree[2 * i + 1], tree[2 * i + 2]
        tree[i] = keccak256(min(a, b) + max(a, b))
    return tree[0]


def test_keccak256_is_ethereums_not_sha3() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )


def test_single_leaf_is_its_own_root() -> None:
    (h,) = _hashes(1)
    tree = MerkleTree([h])
    assert tree.root == leaf_hash(h) == keccak256(h)
    assert tree.proof(0) == []
    assert verify_proof(h, [], tree.root)
    assert len(tree) == 1


def test_two_leaves_hash_as_a_sorted_pair() -> None:
    a, b = _hashes(2)
    la, lb = keccak256(a), keccak256(b)
    expected = keccak256(min(la, lb) + max(la, lb))
    assert MerkleTree([a, b]).root == MerkleTree([b, a]).root == expected


def test_no_leaves_are_refused() -> None:
    with pytest.raises(InvalidProposal, match="needs at least one example"):
        MerkleTree([])
    with pytest.raises(ValueError, match="at least one leaf"):
        MerkleTree.from_leaves([])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 31, 33, 100])
def test_matches_reference_and_every_proof_verifies(n: int) -> None:
    hashes = _hashes(n)
    tree = MerkleTree(hashes)
    assert tree.root == _reference_root(hashes)
    for i, h in enumerate(hashes):
        proof = tree.proof(i)
        assert len(proof) <= n.bit_length()
        assert verify_proof(h, proof, tree.root)
        assert tree.leaf(i) == leaf_hash(h)


def test_root_commits_to_the_set_not_the_order() -> None:
    hashes = _hashes(9)
    assert MerkleTree(hashes).root == MerkleTree(hashes[::-1]).root


def test_accepts_numpy_matrix() -> None:
    hashes = _hashes(10)
    matrix = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(10, 32)
    assert MerkleTree(matrix).root == MerkleTree(hashes).root


def test_unsorted_layout_keeps_leaf_order() -> None:
    leaves = [keccak256(h) for h in _hashes(5)]
    tree = MerkleTree.from_leaves(leaves, sort_leaves=False)
    nodes = tree.nodes
    assert [bytes(nodes[8 - i]) for i in range(5)] == leaves
    assert tree.root == bytes(nodes[0])


def test_bad_leaf_values_are_refused() -> None:
    with pytest.raises(ValueError, match="must be 32 bytes"):
        MerkleTree([b"short"])
    with pytest.raises(ValueError, match=r"\(n, 32\) array"):
        MerkleTree(np.zeros((3, 31), dtype=np.uint8))


def test_proof_index_out_of_range() -> None:
    tree = MerkleTree(_hashes(3))
    with pytest.raises(IndexError, match=r"outside 0\.\.2"):
        tree.proof(3)
    with pytest.raises(IndexError):
        tree.leaf(-1)


def test_malformed_proofs_are_answered_false() -> None:
    hashes = _hashes(4)
    tree = MerkleTree(hashes)
    proof = tree.proof(0)
    assert not verify_proof(hashes[0][:31], proof, tree.root)
    assert not verify_proof(hashes[0], [*proof[:-1], b"\x00" * 31], tree.root)
    assert not verify_proof(hashes[0], proof, tree.root[:-1])
    assert not verify_proof(hashes[0], [*proof, "x" * 32], tree.root)  # type: ignore[list-item]


unique_hashes = st.lists(
    # Many values end in zero bytes, to exercise the sort order of the leaves.
    st.binary(min_size=32, max_size=32)
    | st.binary(min_size=1, max_size=31).map(lambda b: b.ljust(32, b"\x00")),
    min_size=1,
    max_size=70,
    unique=True,
)


@settings(max_examples=60, deadline=None)
@given(hashes=unique_hashes, data=st.data())
def test_property_every_leaf_proves_and_tampering_fails(
    hashes: list[bytes], data: st.DataObject
) -> None:
    tree = MerkleTree(hashes)
    assert tree.root == _reference_root(hashes)
    i = data.draw(st.integers(0, len(hashes) - 1), label="index")
    proof = tree.proof(i)
    assert verify_proof(hashes[i], proof, tree.root)
    # A modified example hash does not verify.
    bit = data.draw(st.integers(0, 255), label="bit")
    changed = bytearray(hashes[i])
    changed[bit // 8] ^= 1 << (bit % 8)
    assert not verify_proof(bytes(changed), proof, tree.root)
    # Neither does a modified proof.
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1), label="proof element")
        bad = list(proof)
        flipped = bytearray(bad[k])
        flipped[bit // 8] ^= 1 << (bit % 8)
        bad[k] = bytes(flipped)
        assert not verify_proof(hashes[i], bad, tree.root)
        assert not verify_proof(hashes[i], proof[:-1], tree.root)
    # Every leaf of the tree proves.
    assert all(verify_proof(h, tree.proof(j), tree.root) for j, h in enumerate(hashes))


# --- on-chain: snekmate's merkle_proof_verification accepts the same proofs --------------------

_VERIFIER = """
# pragma version ~=0.4.3
from snekmate.utils import merkle_proof_verification as mpv

@external
@pure
def contains(proof: DynArray[bytes32, 255], root: bytes32, example_hash: bytes32) -> bool:
    return mpv._verify(proof, root, keccak256(example_hash))
"""


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    boa = pytest.importorskip("boa")
    pytest.importorskip("snekmate")
    interpret = pytest.importorskip("boa.interpret")
    saved = interpret._disk_cache
    # Keep titanoboa's compile cache out of the home directory (disabling it is broken in 0.2.8).
    interpret.set_cache_dir(str(tmp_path_factory.mktemp("titanoboa")))
    try:
        yield boa.loads(_VERIFIER)
    finally:
        interpret._disk_cache = saved


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10])
def test_snekmate_verifies_our_proofs(verifier: object, n: int) -> None:
    hashes = _hashes(n)
    tree = MerkleTree(hashes)
    for i, h in enumerate(hashes):
        assert verifier.contains(tree.proof(i), tree.root, h)  # type: ignore[attr-defined]
    stranger = hashlib.sha256(b"not in the proposal").digest()
    assert not verifier.contains(tree.proof(0), tree.root, stranger)  # type: ignore[attr-defined]
