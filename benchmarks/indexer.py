"""Indexer throughput (events/s) and lag (blocks) while the market is written at full speed.

    .venv/bin/python benchmarks/indexer.py [--seconds 20] [--nodes anvil,embedded] [--database sqlite]

A writer sends dividend payments to a dataset's share token as fast as the node mines them
(each one block and one event on anvil's automine), while the indexer follows the chain in this
process as the platform's indexer thread does (``follow_pause``: no pause after a step that
found new blocks). The writer is a process of its own, so that it does not take the GIL from
the indexer it races. Printed: the writer's rate (the peer: what the node sustains), the
indexer's catch-up rate over the whole history once the writer stops, and the lag sampled after
each step during the run (median, p90, maximum, share under 2 blocks and spikes of 10 or more),
from the writer's first block on; the first step after it, which finds the chain awake after a
quiet poll interval, is reported apart. Goal (issue 11): lag under 2 blocks at anvil's full
speed. At the end every event the chain holds is checked to be in the index once.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chain_throughput import share_token, start
from databright_dev.postgres import scratch_schema

from databright.chain.deploy import deploy
from databright.chain.gateway import connect
from databright.server.index import IndexedEvent, Indexer, open_index
from databright.server.platform import follow_pause

POLL_S = 0.5  # the platform's default poll interval
SPIKE = 10  # a lag of this many blocks or more is counted as a spike


def run(kind: str, database: str, seconds: float) -> None:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    def database_url(stack: ExitStack, tmp: Path) -> str:
        if database == "sqlite":
            return f"sqlite:///{tmp / f'ix-{uuid.uuid4().hex[:6]}.sqlite3'}"
        return stack.enter_context(scratch_schema(prefix="bench"))

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        url, accounts, stop = start(kind, Path(tmp) / "node")
        stack.callback(stop)
        db_url = database_url(stack, Path(tmp))
        gw = connect(url, accounts[0])
        deployment, _ = deploy(gw, Path(tmp))
        start_block = gw.block_number()
        token = share_token(gw, Path(tmp))
        engine = open_index(db_url)
        indexer = Indexer(connect(url), deployment["DataMarket"], engine, start_block)
        indexer.sync()
        lags: list[int] = []
        # The writer is a process of its own, as the market's users are: in this one it would
        # take the GIL from the indexer it is meant to race.
        writer = subprocess.Popen(
            [sys.executable, __file__, "--write", url, accounts[0].key.hex(), token.address,
             str(seconds)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        last_block = time.monotonic()
        indexed = indexer.state().indexed_block
        woke: int | None = None  # the lag the first step after the writer's first block saw
        while writer.poll() is None:  # as the platform's indexer thread follows the chain
            step = indexer.step()
            # The lag as each step finished: the head the next step starts from (its first
            # request asks for it anyway) minus what the index held. Asking the node in this
            # loop would delay every step by a round trip, and so add to the lag it measures.
            lag = step.head - indexed
            indexed = step.to_block
            found = step.to_block >= step.from_block
            # Until the writer's first block, the chain was quiet and polled every POLL_S:
            # the first lag is the wake-up (up to POLL_S of blocks), reported on its own.
            if woke is None:
                woke = lag if found else None
            else:
                lags.append(lag)
            last_block = time.monotonic() if found else last_block
            if step.lag == 0:
                time.sleep(follow_pause(found, time.monotonic() - last_block, POLL_S))
        out, _ = writer.communicate()
        if writer.returncode != 0:
            raise SystemExit(f"the writer failed ({writer.returncode})")
        sent, write_s = int(out.split()[0]), float(out.split()[1])
        head = gw.block_number()
        t1 = time.perf_counter()
        indexer.sync()
        tail_s = time.perf_counter() - t1

        fresh = open_index(database_url(stack, Path(tmp))) if database == "sqlite" else None
        catch_up = 0.0
        if fresh is not None:
            cold = Indexer(connect(url), deployment["DataMarket"], fresh, start_block)
            t2 = time.perf_counter()
            cold.sync()
            catch_up = time.perf_counter() - t2
        with Session(engine) as s:
            indexed = s.scalar(select(func.count()).select_from(IndexedEvent)) or 0
        on_chain = len(gw.logs(deployment["DataMarket"], [], start_block)) + len(
            gw.logs(token.address, [], start_block)
        )
        print(f"\n{kind} + {database}: {sent} payments in {write_s:.1f} s")
        print(f"  writer (peer): {sent / write_s:8.1f} tx/s = blocks/s")
        print(
            f"  lag while writing: median {statistics.median(lags):.0f}, p90 "
            f"{sorted(lags)[len(lags) * 9 // 10]}, max {max(lags)} blocks ({len(lags)} samples, "
            f"{sum(lag < 2 for lag in lags) / len(lags):.0%} under 2, "
            f"{sum(lag >= SPIKE for lag in lags)} spikes of {SPIKE}+); final catch-up "
            f"{tail_s * 1000:.0f} ms"
        )
        print(f"  waking from a quiet chain (polled every {POLL_S} s): lag {woke} blocks")
        if catch_up:
            print(
                f"  cold index of the whole run: {indexed / catch_up:8.0f} events/s "
                f"({indexed} events, {head - start_block} blocks, {catch_up:.1f} s)"
            )
        verdict = "all" if indexed == on_chain else f"MISSING {on_chain - indexed} of"
        print(f"  {verdict} {on_chain} events on chain are in the index")
        engine.dispose()
        if fresh is not None:
            fresh.dispose()


def write(url: str, key: str, token: str, seconds: float) -> None:
    """The writer process: dividend payments for ``seconds``; prints how many, in how long."""
    contract = connect(url, key).contract("ShareToken", token)
    sent = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        contract.transact("pay", value=1)
        sent += 1
    print(sent, time.perf_counter() - t0)


def main() -> None:
    if sys.argv[1:2] == ["--write"]:
        url, key, token, seconds = sys.argv[2:6]
        write(url, key, token, float(seconds))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--nodes", default="anvil,embedded")
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    for kind in args.nodes.split(","):
        run(kind, args.database, args.seconds)
    print("\ngoal: lag under 2 blocks at anvil's full speed")


if __name__ == "__main__":
    main()
