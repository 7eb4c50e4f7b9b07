"""Ingestion speed of proposal files: validate, hash, build the manifest, store.

Run: ``.venv/bin/python benchmarks/ingestion.py`` (about a minute; ``--mb 20`` for a quick run).

For each input format (npz, csv, parquet) a ~100 MB file of digits-like rows (64 float32
features with two decimals, a class label 0..9) is generated, then timed end to end:
``read_proposal`` (parse, convert, check, hash every example) followed by ``store_proposal``
(canonical .npz, Merkle tree, manifest, three atomic fsynced blob writes into a fresh store).
Speed is the input file's size over that time. Peers measured in the same run on the same
files: plain ``hashlib.sha256`` over the file (read + hash) and a plain file copy (with fsync,
like the store's writes). The goal is >= 50 MB/s (wall clock) for every format. "per CPU-s" is
the file size over the CPU seconds spent (this process and its forked hashers): on a shared,
busy machine it says what one idle core would do. Blobs are addressed by their IPFS UnixFS CID
(256 KiB leaves hashed one by one, a dag-pb tree above them); a last line times that against
one plain sha2-256 of the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from databright.storage import (
    KECCAK_BACKEND,
    DatasetSchema,
    LocalBlobStore,
    MerkleTree,
    example_hashes,
    read_proposal,
    store_proposal,
)
from databright.storage._parallel import hash_workers
from databright.storage.hashing import example_prefix
from databright.storage.unixfs import file_cid

GOAL_MB_S = 50.0
N_FEATURES = 64


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.round(rng.random((n, N_FEATURES)) * 16, 2).astype(np.float32)
    y = rng.integers(0, 10, n)
    return X, y


def write_inputs(folder: Path, target_mb: float) -> dict[str, Path]:
    # npz rows are 64*4 + 8 bytes; size the data so the npz is ~target_mb.
    n = int(target_mb * 1e6 / (N_FEATURES * 4 + 8))
    X, y = make_data(n)
    paths = {"npz": folder / "digits.npz", "csv": folder / "digits.csv"}
    np.savez(paths["npz"], X=X.reshape(n, 8, 8), y=y)
    columns = {f"pixel_{i}": X[:, i] for i in range(N_FEATURES)}
    columns["label"] = y
    table = pa.table(columns)
    pacsv.write_csv(table, paths["csv"])
    paths["parquet"] = folder / "digits.parquet"
    pq.write_table(table, paths["parquet"], compression="none", use_dictionary=False)
    return paths


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds (this process and its forked hashers) of ``fn()``."""
    walls, cpus = [], []
    for _ in range(repeats):
        cpu = _cpu()
        start = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def sha256_file(path: Path) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    h.digest()


def copy_file(path: Path, dest: Path) -> None:
    shutil.copyfile(path, dest)
    with open(dest, "rb+") as f:
        os.fsync(f.fileno())
    dest.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="size of the npz input in MB")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    args = parser.parse_args()

    schema = DatasetSchema(
        task="classification",
        feature_shape=(8, 8),
        dtype="float32",
        labels=tuple(range(10)),
        max_file_bytes=1 << 31,
    )
    load = os.getloadavg()
    print(
        f"keccak backend: {KECCAK_BACKEND}; hash workers: {hash_workers()}; "
        f"python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        folder = Path(tmp)
        paths = write_inputs(folder, args.mb)
        n_rows = None
        rows = []
        for fmt, path in paths.items():
            size_mb = path.stat().st_size / 1e6

            def ingest(path: Path = path) -> int:
                store = LocalBlobStore(folder / "store")
                examples = read_proposal(path, schema)
                stored = store_proposal(store, examples, schema)
                shutil.rmtree(store.root)
                return stored.n_examples

            n_rows = ingest()
            t_read, _ = timed(lambda path=path: read_proposal(path, schema), args.repeats)
            t_all, cpu_all = timed(ingest, args.repeats)
            t_sha, _ = timed(lambda path=path: sha256_file(path), args.repeats)
            t_copy, _ = timed(lambda path=path: copy_file(path, folder / "copy.bin"), args.repeats)
            rows.append((fmt, size_mb, t_read, t_all, cpu_all, t_sha, t_copy))

        print(f"\n{n_rows} examples of 8x8 float32 per file; median of {args.repeats} runs")
        print(f"load average before the run: {load[0]:.2f} on {os.cpu_count()} CPUs\n")
        header = (
            f"{'input':8} {'MB':>6} {'validate+hash':>14} {'ingest (all)':>13} {'per CPU-s':>10} "
            f"{'sha256 peer':>12} {'copy peer':>10} {'vs sha256':>9} {'vs copy':>8}  "
            f"goal >= {GOAL_MB_S:.0f} MB/s"
        )
        print(header)
        print("-" * len(header))
        ok = True
        for fmt, size_mb, t_read, t_all, cpu_all, t_sha, t_copy in rows:
            speed = size_mb / t_all
            ok &= speed >= GOAL_MB_S
            print(
                f"{fmt:8} {size_mb:6.1f} {size_mb / t_read:9.1f} MB/s {speed:8.1f} MB/s "
                f"{size_mb / cpu_all:5.1f} MB/s {size_mb / t_sha:7.0f} MB/s {size_mb / t_copy:5.0f} MB/s "
                f"{t_sha / t_all:9.3f} {t_copy / t_all:8.3f}  "
                f"{'meets goal' if speed >= GOAL_MB_S else 'BELOW GOAL'}"
            )

        # Where the time goes: the per-example hash and the Merkle tree, vectorised vs naive.
        X, y = make_data(200_000, seed=1)
        X = X.reshape(-1, 8, 8)
        t_vec, _ = timed(lambda: example_hashes(X, y), args.repeats)
        prefix = example_prefix(np.float32, (8, 8))

        def naive() -> None:
            for i in range(len(X)):
                label = b"i" + int(y[i]).to_bytes(8, "little", signed=True)
                hashlib.sha256(prefix + X[i].tobytes() + label).digest()

        t_naive, _ = timed(naive, 1)
        hashes = example_hashes(X, y)
        t_tree, _ = timed(lambda: MerkleTree(hashes), args.repeats)
        print(
            f"\nexample hashing, 200k rows: vectorised {len(X) / t_vec / 1e6:.2f} M rows/s, "
            f"naive per-row loop {len(X) / t_naive / 1e6:.2f} M rows/s "
            f"({t_naive / t_vec:.1f}x); Merkle tree: {len(X) / t_tree / 1e6:.2f} M leaves/s"
        )
        # The blob's content address: the IPFS UnixFS CID against one sha2-256 of the bytes.
        blob = paths["npz"].read_bytes()
        t_plain, _ = timed(lambda: hashlib.sha256(blob).digest(), args.repeats)
        t_unixfs, _ = timed(lambda: file_cid(blob), args.repeats)
        mb = len(blob) / 1e6
        print(
            f"content address of the {mb:.0f} MB npz: UnixFS CID {mb / t_unixfs:.0f} MB/s, "
            f"plain sha2-256 {mb / t_plain:.0f} MB/s ({t_unixfs / t_plain:.2f}x its time)"
        )
        print(f"\nresult: {'all formats meet' if ok else 'NOT all formats meet'} the goal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
