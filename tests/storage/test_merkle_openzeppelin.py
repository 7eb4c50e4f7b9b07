"""Our Merkle trees against vectors made by OpenZeppelin's own JavaScript library.

``vectors/oz_merkle_tree.json`` was written by ``vectors/oz_merkle_tree.mjs`` (its source sits
beside it; how to run it is in its header) with ``@openzeppelin/merkle-tree`` 1.0.8, so these
tests need neither node nor npm.

Which of OpenZeppelin's trees is ours: ``MerkleTree(example_hashes)`` hashes each example hash
once, ``leaf = keccak256(example_hash)``, then builds OpenZeppelin's sorted-pair complete tree
over the sorted leaves. ``SimpleMerkleTree`` takes its ``bytes32`` values as the leaves, unhashed,
so ours equals ``SimpleMerkleTree.of(exampleHashes.map(keccak256))``: same root, and the same
proof for every example, listed in input order. Given the example hashes themselves,
``SimpleMerkleTree.of(exampleHashes)`` is our ``MerkleTree.from_leaves`` (no leaf hashing), not
``MerkleTree``. ``StandardMerkleTree.of(hashes.map(h => [h]), ['bytes32'])`` hashes each leaf
twice, ``keccak256(keccak256(abi.encode(h)))``, so its root never equals ours (see
:mod:`databright.storage.merkle` for why one hash suffices here).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from databright.storage import MerkleTree, keccak256, leaf_hash, verify_proof

VECTORS = Path(__file__).parent / "vectors"
SIZES = [1, 2, 3, 7, 16, 33]


@cache
def _vector() -> dict[str, Any]:
    return json.loads((VECTORS / "oz_merkle_tree.json").read_text(encoding="utf-8"))


def _b32(value: str) -> bytes:
    assert value.startswith("0x") and len(value) == 66, value
    return bytes.fromhex(value[2:])


def _example_hashes(size: int) -> list[bytes]:
    return [_b32(h) for h in _vector()["example_hashes"][:size]]


def _case(size: int) -> dict[str, Any]:
    (case,) = [c for c in _vector()["cases"] if c["size"] == size]
    return case


def test_vector_was_made_by_the_script_beside_it() -> None:
    vector = _vector()
    assert vector["library"] == "@openzeppelin/merkle-tree"
    assert vector["version"] == "1.0.8"
    script = (VECTORS / vector["script"]).read_bytes()
    assert hashlib.sha256(script).hexdigest() == vector["script_sha256"]
    assert [c["size"] for c in vector["cases"]] == SIZES
    # The script's example hashes, recomputed: the vector is about the inputs we think it is.
    assert _example_hashes(max(SIZES)) == [
        hashlib.sha256(f"databright oz vector example {i}".encode()).digest()
        for i in range(max(SIZES))
    ]


@pytest.mark.parametrize("size", SIZES)
def test_root_and_every_proof_equal_simple_merkle_tree_of_keccak_leaves(size: int) -> None:
    hashes = _example_hashes(size)
    oz = _case(size)["simple_of_keccak_leaves"]
    assert [_b32(leaf) for leaf in oz["leaves"]] == [leaf_hash(h) for h in hashes]
    tree = MerkleTree(hashes)
    assert tree.root == _b32(oz["root"])
    for i, h in enumerate(hashes):
        oz_proof = [_b32(node) for node in oz["proofs"][i]]
        assert tree.proof(i) == oz_proof, f"proof of example {i} of {size}"
        assert tree.leaf(i) == keccak256(h)
        assert verify_proof(h, oz_proof, tree.root)


@pytest.mark.parametrize("size", SIZES)
def test_from_leaves_is_simple_merkle_tree_over_the_same_values(size: int) -> None:
    hashes = _example_hashes(size)
    case = _case(size)
    assert MerkleTree.from_leaves(hashes).root == _b32(case["simple_of_example_hashes"]["root"])
    leaves = [leaf_hash(h) for h in hashes]
    assert MerkleTree.from_leaves(leaves).root == _b32(case["simple_of_keccak_leaves"]["root"])


@pytest.mark.parametrize("size", SIZES)
def test_unsorted_layout_equals_sort_leaves_false(size: int) -> None:
    oz = _case(size)["simple_unsorted_keccak_leaves"]
    leaves = [leaf_hash(h) for h in _example_hashes(size)]
    tree = MerkleTree.from_leaves(leaves, sort_leaves=False)
    assert tree.root == _b32(oz["root"])
    assert [tree.proof(i) for i in range(size)] == [
        [_b32(node) for node in proof] for proof in oz["proofs"]
    ]


@pytest.mark.parametrize("size", SIZES)
def test_other_oz_constructions_give_other_roots(size: int) -> None:
    """Guards the docstring's claim: only ``SimpleMerkleTree`` over keccak leaves is ours."""
    case = _case(size)
    ours = MerkleTree(_example_hashes(size)).root
    assert ours != _b32(case["simple_of_example_hashes"]["root"])
    assert ours != _b32(case["standard_bytes32"]["root"])
    if size == 1:  # a lone leaf is the root: Standard's leaf is keccak256 of ours
        assert _b32(case["standard_bytes32"]["root"]) == keccak256(ours)
