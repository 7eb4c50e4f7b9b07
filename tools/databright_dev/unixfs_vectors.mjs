// Generates tests/storage/vectors/unixfs.json (and the small CAR files beside it) with the
// JavaScript IPFS libraries themselves, so that our UnixFS builder and CAR writer are checked
// against the reference implementation. Run it in a scratch directory outside the repository
// (the tests never need npm):
//
//   mkdir /tmp/unixfsvec && cd /tmp/unixfsvec && npm init -y
//   npm install ipfs-unixfs-importer@17.1.1 blockstore-core@7.0.1 @ipld/car@5.4.7 \
//     @ipld/dag-pb@4.2.0 multiformats@14.0.5
//   cp REPO/tools/databright_dev/unixfs_vectors.mjs .
//   node unixfs_vectors.mjs REPO/tests/storage/vectors
//
// The importer is configured as `ipfs add --cid-version 1` of kubo's classic profile: fixed
// 262144-byte chunks, raw leaves, balanced layout with at most 174 links per node, CIDv1, a
// single-chunk file reduced to its raw leaf. The options are spelled out rather than left to
// the importer's defaults, which have changed between its major versions.
//
// Input bytes: the first `size` bytes of SHAKE128("databright unixfs vector"), which Python's
// hashlib rebuilds in one call (tests/storage/test_unixfs.py), so the 45.6 MB cases need no
// committed data.
//
// For every size the vector records the root CID, the sha256 of the input, the number of
// distinct blocks, and the sha256 and length of a CARv1 written by @ipld/car with that root
// and the blocks in depth-first pre-order (root first, each distinct block once: the order
// of `ipfs dag export` and of the trustless gateway's `dfs`). For the sizes up to 1 KiB the CAR file
// itself is written next to the vector as unixfs_<size>.car.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { importer } from 'ipfs-unixfs-importer';
import { fixedSize } from 'ipfs-unixfs-importer/chunker';
import { balanced } from 'ipfs-unixfs-importer/layout';
import { MemoryBlockstore } from 'blockstore-core/memory';
import { CarWriter } from '@ipld/car/writer';
import * as dagPb from '@ipld/dag-pb';
import { CID } from 'multiformats/cid';

const require = createRequire(import.meta.url);
const version = (name) => require(`./node_modules/${name}/package.json`).version;

const OUT = process.argv[2];
if (!OUT) throw new Error('usage: node unixfs_vectors.mjs OUTPUT_FOLDER');

const CHUNK = 262144;
const MAX_LINKS = 174;
const SEED = Buffer.from('databright unixfs vector');
const SIZES = [0, 5, CHUNK, CHUNK + 1, 3_000_000, MAX_LINKS * CHUNK, MAX_LINKS * CHUNK + 1];
const CAR_FILES_UP_TO = 1024; // larger CARs are checked by hash only (no 256 KiB files in git)

function inputBytes(size) {
  return createHash('shake128', { outputLength: size }).update(SEED).digest();
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

async function blockBytes(store, cid) {
  const got = store.get(cid);
  if (got instanceof Uint8Array) return got;
  if (typeof got?.then === 'function') return await got;
  const parts = [];
  for await (const part of got) parts.push(part); // blockstore-core 7 streams blocks
  return Buffer.concat(parts);
}

async function dfs(store, cid, seen, out) {
  const key = cid.toString();
  if (seen.has(key)) return;
  seen.add(key);
  const bytes = await blockBytes(store, cid);
  out.push({ cid, bytes });
  if (cid.code === dagPb.code) {
    for (const link of dagPb.decode(bytes).Links) await dfs(store, link.Hash, seen, out);
  }
}

async function carOf(root, blocks) {
  const { writer, out } = CarWriter.create([root]);
  const chunks = [];
  const collected = (async () => {
    for await (const chunk of out) chunks.push(chunk);
  })();
  for (const block of blocks) await writer.put(block);
  await writer.close();
  await collected;
  return Buffer.concat(chunks);
}

const cases = [];
for (const size of SIZES) {
  const data = inputBytes(size);
  const store = new MemoryBlockstore();
  const options = {
    cidVersion: 1,
    rawLeaves: true,
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: CHUNK }),
    layout: balanced({ maxChildrenPerNode: MAX_LINKS }),
  };
  let root;
  for await (const entry of importer([{ content: data }], store, options)) root = entry.cid;
  const blocks = [];
  await dfs(store, root, new Set(), blocks);
  const car = await carOf(CID.asCID(root) ?? CID.parse(root.toString()), blocks);
  const entry = {
    size,
    data_sha256: sha256(data),
    cid: root.toString(),
    blocks: blocks.length,
    car_sha256: sha256(car),
    car_bytes: car.length,
  };
  if (size <= CAR_FILES_UP_TO) {
    entry.car_file = `unixfs_${size}.car`;
    writeFileSync(join(OUT, entry.car_file), car);
  }
  cases.push(entry);
}

const script = readFileSync(new URL(import.meta.url));
const vector = {
  generator: 'tools/databright_dev/unixfs_vectors.mjs',
  script_sha256: sha256(script),
  node: process.version,
  libraries: Object.fromEntries(
    ['ipfs-unixfs-importer', 'blockstore-core', '@ipld/car', '@ipld/dag-pb', 'multiformats'].map(
      (name) => [name, version(name)],
    ),
  ),
  profile: { chunk_bytes: CHUNK, max_links: MAX_LINKS, raw_leaves: true, layout: 'balanced' },
  seed: SEED.toString(),
  cases,
};
writeFileSync(join(OUT, 'unixfs.json'), JSON.stringify(vector, null, 1) + '\n');
console.log(cases.map((c) => `${c.size} ${c.cid}`).join('\n'));
