"""Complete proposal cycles per second through the SDK, and data ingestion speed.

    .venv/bin/python benchmarks/market_throughput.py [--quick] [--cycles 60] [--batch 10]
                                                     [--nodes anvil,embedded] [--mb 64]

A cycle is what a proposal costs the market, six transactions: validate (against the schema),
hash, manifest, store, commit_proposal + propose (the propose in a later block than its
commitment, as the contract requires), three share-weighted votes from three accounts, and
finalize with the mint (the three votes make the outcome final, so it settles before the
deadline). Measured two ways on the same node and dataset, in the same run:

- sequential: ``Market.propose``, ``vote`` and ``finalize``, each transaction waiting for its
  receipt before the next is sent;
- pipelined (half of the cycles): ``databright.market.pipeline`` on ``--batch`` proposals at a
  time: each commitment sent as soon as its proposal is stored, then all proposals, then every
  voter's votes, then the finalizes, each phase's receipts awaited together (one batch request
  per poll round);
- overlapped (the other half): the same, with the next batch checked, stored and committed in a
  second thread (``prepare_proposals``) while this batch's transactions are mined
  (``register_proposals``, votes, finalizes).

Next to them, the node's own bound: the raw rate of plain transfers from one account, sent one
at a time (send, wait) and pipelined (all in flight, awaited together), divided by the six
transactions of a cycle; and the published anchor: a Hyperledger Fabric AI marketplace
registered 70 models/s on 12 peers.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chain_throughput import start

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.market import SHARE_UNIT, STATUS_NAMES, Governance, Market
from databright.market.pipeline import (
    finalize_many,
    prepare_proposals,
    propose_many,
    register_proposals,
    vote_many,
)
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
TX_PER_CYCLE = 6


def cycles(kind: str, n: int, size: int, batch: int) -> dict[str, float]:
    """Cycles/s, sequential and pipelined, and the node's raw bounds in cycles/s."""
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
                for _ in range(2 * n)
            ]
            out: dict[str, float] = {}
            t = time.perf_counter()
            for ex in batches[:n]:
                p = contributor.propose(ds, ex)
                for v in voters:
                    v.vote(p.id, True)
                contributor.finalize(p.id)
            out["sequential"] = n / (time.perf_counter() - t)
            t = time.perf_counter()
            for i in range(n, n + n // 2, batch):
                created = propose_many(contributor, ds, batches[i : min(i + batch, n + n // 2)])
                ids = [int(e.args["proposal_id"]) for e in created]
                vote_many(voters, ids, True)
                done = finalize_many(contributor, ids)
                assert all(STATUS_NAMES[e.args["status"]] == "accepted" for e in done)
            out["pipelined"] = (n // 2) / (time.perf_counter() - t)
            # The same, with the next batch checked, stored and committed in a second thread
            # while this one's transactions are mined.
            chunks = [batches[i : min(i + batch, 2 * n)] for i in range(n + n // 2, 2 * n, batch)]
            t = time.perf_counter()
            with ThreadPoolExecutor(1) as pool:
                ahead = pool.submit(prepare_proposals, contributor, ds, chunks[0], True)
                for k in range(len(chunks)):
                    prepared = ahead.result()
                    if k + 1 < len(chunks):
                        ahead = pool.submit(prepare_proposals, contributor, ds, chunks[k + 1], True)
                    created = register_proposals(contributor, prepared)
                    ids = [int(e.args["proposal_id"]) for e in created]
                    vote_many(voters, ids, True)
                    done = finalize_many(contributor, ids)
                    assert all(STATUS_NAMES[e.args["status"]] == "accepted" for e in done)
            out["overlapped"] = (n - n // 2) / (time.perf_counter() - t)
            assert initiator.dataset(ds).registry_length == 2 * n + 1
            # The node's own bound: plain transfers from one account, raw.
            gw = connect(url, accts[4])
            to = accts[5].address
            count = TX_PER_CYCLE * 40
            t = time.perf_counter()
            for _ in range(count):
                gw.transfer(to, 1)  # type: ignore[arg-type]
            out["bound_sequential"] = count / TX_PER_CYCLE / (time.perf_counter() - t)
            t = time.perf_counter()
            for _ in range(0, count, TX_PER_CYCLE * batch):
                gw.wait_many([gw.submit(to, value=1) for _ in range(TX_PER_CYCLE * batch)])
            out["bound_pipelined"] = count / TX_PER_CYCLE / (time.perf_counter() - t)
            return out
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
    p.add_argument(
        "--quick", action="store_true", help="20 sequential cycles, batches of 5, 16 MB ingestion"
    )
    p.add_argument(
        "--cycles",
        type=int,
        default=60,
        help="sequential cycles; the pipelined modes run half as many each",
    )
    p.add_argument("--batch", type=int, default=10, help="proposals in flight together")
    p.add_argument("--examples", type=int, default=20, help="examples per proposal")
    p.add_argument("--nodes", default="anvil,embedded")
    p.add_argument("--mb", type=int, default=64)
    args = p.parse_args()
    if args.quick:
        args.cycles, args.mb = min(args.cycles, 20), min(args.mb, 16)
        args.batch = min(args.batch, 5)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"cycles/s ({TX_PER_CYCLE} transactions each; bound: raw transfers / {TX_PER_CYCLE}; "
          f"anchor {ANCHOR:.0f}; goal >= {ANCHOR:.0f} on anvil)")  # fmt: skip
    print(f"{'node':9} {'mode':11} {'SDK':>7} {'bound':>7} {'of bound':>9} {'of anchor':>10}")
    for kind in args.nodes.split(","):
        r = cycles(kind, args.cycles, args.examples, args.batch)
        for mode in ("sequential", "pipelined", "overlapped"):
            sdk, bound = r[mode], r[f"bound_{mode.replace('overlapped', 'pipelined')}"]
            verdict = ("met" if sdk >= ANCHOR else "MISSED") if kind == "anvil" else ""
            print(f"{kind:9} {mode:11} {sdk:7.1f} {bound:7.1f} {sdk / bound:9.2f} "
                  f"{sdk / ANCHOR:10.2f}  {verdict}")  # fmt: skip
    ours, peer = ingestion(args.mb)
    print(f"ingestion (npz, {args.mb} MB): {ours:.1f} MB/s; plain sha256 {peer:.0f} MB/s; "
          f"ratio {ours / peer:.3f}; goal >= 50 MB/s {'met' if ours >= 50 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
