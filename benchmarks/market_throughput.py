"""Complete proposal cycles per second through the SDK, and data ingestion speed.

    .venv/bin/python benchmarks/market_throughput.py [--cycles 60] [--nodes anvil,embedded]

A cycle is what a proposal costs the market: propose (validate against the schema and every
example already in the dataset, hash, manifest, store, register on-chain), three share-weighted
votes from three accounts, and finalize with the mint; each step waits for its receipt. Cycles
run one after another through ``databright.market.Market`` on a real node.

Next to it, in the same run: the raw transaction rate of the same node for the same five
transactions (``benchmarks/chain_throughput.py``'s raw web3 peer), which bounds any SDK, and the
published anchor: a Hyperledger Fabric AI marketplace registered 70 models/s on 12 peers.
Ingestion: validate + hash + manifest + store of a ~64 MB npz proposal, in MB/s, next to a
plain sha256 of the same bytes (see ``benchmarks/ingestion.py`` for all formats).
Goals: >= 70 cycles/s on anvil; ingestion >= 50 MB/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chain_throughput import start

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.market import SHARE_UNIT, Governance, Market
from databright.storage import (
    DatasetSchema,
    LocalBlobStore,
    read_proposal,
    store_proposal,
    validate_examples,
)

SCHEMA = DatasetSchema(
    task="classification", feature_shape=(64,), dtype="float32", labels=tuple(range(10))
)
ANCHOR = 70.0


def cycles(kind: str, n: int, size: int) -> tuple[float, float]:
    """(cycles/s through the SDK, raw tx/s of the node for the same transactions / 5)."""
    with tempfile.TemporaryDirectory() as tmp:
        url, accts, stop = start(kind, Path(tmp) / "node")
        try:
            deploy(connect(url, accts[0]), Path(tmp))
            rng = np.random.default_rng(0)
            initiator = Market.connect(url, accts[0], Path(tmp))
            voters = [initiator, initiator.as_account(accts[1]), initiator.as_account(accts[2])]
            contributor = initiator.as_account(accts[3])
            X0 = rng.random((1000, 64), dtype=np.float32)
            y0 = rng.integers(0, 10, 1000)
            # Threshold 20%: the three voters stay decisive while contributors gain shares.
            ds = initiator.create_dataset(
                "bench",
                SCHEMA,
                validate_examples(X0, y0, SCHEMA),
                Governance(voting_period_s=3600, quorum_bps=2000, threshold_bps=2000),
            )
            token = initiator.token(ds)
            for v in voters[1:]:
                token.transfer(v.address, 300 * SHARE_UNIT)
            batches = [
                validate_examples(
                    rng.random((size, 64), dtype=np.float32), rng.integers(0, 10, size), SCHEMA
                )
                for _ in range(n)
            ]
            t = time.perf_counter()
            for ex in batches:
                p = contributor.propose(ds, ex)
                for v in voters:
                    v.vote(p.id, True)
                contributor.finalize(p.id)
            sdk = n / (time.perf_counter() - t)
            assert initiator.dataset(ds).registry_length == n + 1
            # The node's own bound: five plain transfers per cycle, raw.
            gw = connect(url, accts[4])
            t = time.perf_counter()
            for _ in range(5 * 40):
                gw.transfer(accts[5].address, 1)  # type: ignore[arg-type]
            bound = 40 / (time.perf_counter() - t)
            return sdk, bound
        finally:
            stop()


def ingestion(mb: int) -> tuple[float, float]:
    rows = mb * 2**20 // (64 * 4)
    rng = np.random.default_rng(1)
    X = rng.random((rows, 64), dtype=np.float32)
    y = rng.integers(0, 10, rows)
    schema = DatasetSchema(task="classification", feature_shape=(64,), dtype="float32",
                           labels=tuple(range(10)), max_file_bytes=2**31)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.npz"
        np.savez(path, X=X, y=y)
        size = path.stat().st_size
        t = time.perf_counter()
        ex = read_proposal(path, schema)
        store_proposal(LocalBlobStore(Path(tmp) / "store"), ex, schema)
        ours = size / 2**20 / (time.perf_counter() - t)
        data = path.read_bytes()
        t = time.perf_counter()
        hashlib.sha256(data).digest()
        peer = size / 2**20 / (time.perf_counter() - t)
    return ours, peer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=60)
    p.add_argument("--examples", type=int, default=20, help="examples per proposal")
    p.add_argument("--nodes", default="anvil,embedded")
    p.add_argument("--mb", type=int, default=64)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"{'node':9} {'SDK cycles/s':>13} {'node bound':>11} {'anchor':>7} {'ratio':>6}")
    for kind in args.nodes.split(","):
        sdk, bound = cycles(kind, args.cycles, args.examples)
        print(f"{kind:9} {sdk:13.1f} {bound:11.1f} {ANCHOR:7.0f} {sdk / ANCHOR:6.2f}"
              f"  {'met' if sdk >= ANCHOR else 'MISSED'} (goal >= 70 on anvil)")  # fmt: skip
    ours, peer = ingestion(args.mb)
    print(f"ingestion (npz, {args.mb} MB): {ours:.1f} MB/s; plain sha256 {peer:.0f} MB/s; "
          f"ratio {ours / peer:.3f}; goal >= 50 MB/s {'met' if ours >= 50 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
