// Generates tests/storage/vectors/oz_merkle_tree.json with OpenZeppelin's own Merkle tree library.
// Run it in a scratch directory outside the repository (the tests never need npm):
//
//   mkdir /tmp/ozmerkle && cd /tmp/ozmerkle && npm init -y
//   npm install @openzeppelin/merkle-tree@1.0.8
//   cp REPO/tests/storage/vectors/oz_merkle_tree.mjs .
//   node oz_merkle_tree.mjs > REPO/tests/storage/vectors/oz_merkle_tree.json
//
// Example hashes are sha2-256("databright oz vector example <i>"). For each size the vector
// records four trees over the first `size` of them:
//   simple_of_keccak_leaves: SimpleMerkleTree.of(exampleHashes.map(keccak256)) -- root and the
//     proof of every example, indexed in input order (OpenZeppelin's getProof(i));
//   simple_of_example_hashes: SimpleMerkleTree.of(exampleHashes), leaves taken as they are;
//   simple_unsorted_keccak_leaves: as the first, with { sortLeaves: false };
//   standard_bytes32: StandardMerkleTree.of(exampleHashes.map(h => [h]), ['bytes32']), whose
//     leaf is keccak256(keccak256(abi.encode(h))).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { SimpleMerkleTree, StandardMerkleTree } = require('@openzeppelin/merkle-tree');
const { keccak256 } = require('@openzeppelin/merkle-tree/dist/hashes');
const { version } = require('@openzeppelin/merkle-tree/package.json');

const SIZES = [1, 2, 3, 7, 16, 33];
const hex = (bytes) => '0x' + Buffer.from(bytes).toString('hex');
const exampleHashes = Array.from({ length: Math.max(...SIZES) }, (_, i) =>
  hex(createHash('sha256').update(`databright oz vector example ${i}`).digest()),
);

const cases = SIZES.map((size) => {
  const hashes = exampleHashes.slice(0, size);
  const leaves = hashes.map((h) => keccak256(h));
  const simple = SimpleMerkleTree.of(leaves);
  const unsorted = SimpleMerkleTree.of(leaves, { sortLeaves: false });
  return {
    size,
    simple_of_keccak_leaves: {
      root: simple.root,
      leaves,
      proofs: hashes.map((_, i) => simple.getProof(i)),
    },
    simple_of_example_hashes: { root: SimpleMerkleTree.of(hashes).root },
    simple_unsorted_keccak_leaves: {
      root: unsorted.root,
      proofs: hashes.map((_, i) => unsorted.getProof(i)),
    },
    standard_bytes32: { root: StandardMerkleTree.of(hashes.map((h) => [h]), ['bytes32']).root },
  };
});

const script = readFileSync(new URL(import.meta.url), 'utf8');
console.log(
  JSON.stringify(
    {
      library: '@openzeppelin/merkle-tree',
      version,
      node: process.version,
      script: 'oz_merkle_tree.mjs',
      script_sha256: createHash('sha256').update(script).digest('hex'),
      example_hashes: exampleHashes,
      cases,
    },
    null,
    1,
  ),
);
