"""The computation market's pull protocol: what a message costs, and what verification costs.

    .venv/bin/python benchmarks/compute_protocol.py [--messages 300] [--units 24] [--steps 500]
                                                    [--repeat 3] [--database sqlite]
                                                    [--json out.json]

Everything runs in one process on one core (``OMP_NUM_THREADS=1``): the coordinator's HTTP app
(``databright.server.coordinator``) served by uvicorn on a free loopback port in a thread, and
workers (``databright.compute.worker``) speaking through ``http_transport``, one after another
in the main thread; so ``time.process_time()`` counts the coordinator's CPU and the workers'
together. Peers in the same run:

1. **Round trip** of one protocol message (a ``register``: sealed by the worker, its secp256k1
   signature recovered, its nonce written to the SQLite state, answered) against a bare HTTP
   echo of the same bytes mounted on the same server. Goal: <= 10 ms (median).
2. **One honest worker through the protocol** (replicas = 1: load the unit's checkpoint,
   train, save, seal, upload, the coordinator checks and stores it and answers with the next
   unit, as the CLI's workers ask it to) against a plain torch loop doing the same optimizer
   steps on the same shards with no checkpoints and no network. The plain loop runs each unit
   just before the worker computes it (:class:`PairedWorker`, timed apart), so the machine's
   drift touches both alike. Goal: <= 1.1x.
3. **TMR** (three workers of one numeric class per unit, exact-hash agreement): total CPU
   against the plain loop. Goal: <= 3.3x.
4. **Adaptive replication** (BOINC): a worker with ``trusted_after`` valid results runs a unit
   alone except with probability ``adaptive_probability`` (then a pair checks it). The workers
   first build their record in an earlier, untimed job; the spot checks are drawn with a seed
   per run and the figure is the mean over the runs. Goal: <= 1.3x.

The coordinator's state is SQLite (the embedded default) or, with ``--database postgresql``, a
scratch schema on the PostgreSQL server of ``DATABRIGHT_TEST_POSTGRES`` (the tests' default
``postgres@127.0.0.1:5432/test``). Each measure but adaptive is the median of ``--repeat`` runs'
ratios. Last, the protocol's cost per
replica in ms: the figure that says how long a unit must be for a given overhead.

The data are synthetic (64 features, 10 classes, enough examples that ``--units`` shards stay
within every worker's 5% exposure limit); the model is the digits MLP of
``benchmarks/specs/digits_mlp.json`` without dropout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import numpy as np
import requests
import torch
from databright_dev.postgres import scratch_schema
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi import Request
from fastapi.responses import Response
from torch.nn import functional

from databright.compute.coordinator import Coordinator
from databright.compute.protocol import seal
from databright.compute.replication import ReplicationPolicy
from databright.compute.state import SqlComputeState
from databright.compute.transport import http_transport
from databright.compute.units import UnitPayload
from databright.compute.worker import Worker
from databright.ml.checkpoint import save_checkpoint
from databright.ml.spec import ModelSpec
from databright.server.coordinator import coordinator_app
from databright.server.threaded import serving_in_thread

GOAL_RTT_MS = 10.0
GOAL_ONE = 1.1
GOAL_TMR = 3.3
GOAL_ADAPTIVE = 1.3

SPEC = ModelSpec.from_dict(
    {
        "input_shape": [64],
        "classes": 10,
        "layers": [
            {"type": "Linear", "out_features": 64},
            {"type": "ReLU"},
            {"type": "Linear", "out_features": 10},
        ],
        "optimizer": {"type": "adam", "lr": 0.003},
        "batch_size": 64,
        "seed": 0,
    }
)
SHARD = 128
RECORD_UNITS = 2  # the untimed earlier job that gives adaptive's workers their record


@contextmanager
def compute_state(database: str) -> Iterator[SqlComputeState]:
    """A fresh coordinator state on ``database`` ("sqlite" or "postgresql"), closed and
    removed afterwards."""
    with ExitStack() as stack:
        if database == "postgresql":
            url = stack.enter_context(scratch_schema(prefix="bench"))
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            url = f"sqlite:///{Path(tmp) / 'compute.sqlite3'}"
        state = SqlComputeState(url)
        stack.callback(state.close)
        yield state


def account(i: int) -> LocalAccount:
    return Account.from_key("0x" + f"{i + 41:02x}" * 32)


@contextmanager
def served(coordinator: Coordinator) -> Iterator[str]:
    """The coordinator's app, plus a bare echo route, on a free loopback port."""
    app = coordinator_app(coordinator, poll_s=0.0)

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/octet-stream")

    with serving_in_thread(app) as url:
        yield url


def data(units: int) -> tuple[np.ndarray, np.ndarray]:
    """Enough examples that ``units`` shards of SHARD examples are within 5% of the dataset."""
    n = max(20 * SHARD * units + 20 * SHARD, 2000)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 64)).astype(np.float32)
    w = rng.normal(size=(64, 10)).astype(np.float32)
    return x, np.argmax(x @ w, axis=1).astype(np.int64)


def round_trips(url: str, coordinator: Coordinator, messages: int) -> dict[str, float]:
    alice = account(0)
    coordinator.register_worker(alice.address, "bench")
    transport = http_transport(url, 10)
    body = json.dumps({"numeric_class": "bench"}).encode()
    http = requests.Session()
    http.trust_env = False
    protocol, echo = [], []
    for _ in range(messages):
        t = time.perf_counter()
        transport("register", seal(alice, body, purpose="register"), body)
        protocol.append(time.perf_counter() - t)
        t = time.perf_counter()
        http.post(f"{url}/echo", data=body, timeout=10).raise_for_status()
        echo.append(time.perf_counter() - t)
    return {
        "protocol_ms": 1000 * statistics.median(protocol),
        "echo_ms": 1000 * statistics.median(echo),
        "protocol_p90_ms": 1000 * sorted(protocol)[int(0.9 * len(protocol))],
    }


class PlainPeer:
    """The plain loop of :func:`plain`, run unit by unit: one module and optimizer across the
    units, each unit's steps on its shard. ``cpu_s`` is the CPU it has spent so far."""

    def __init__(self) -> None:
        torch.manual_seed(SPEC.seed)
        self.module = SPEC.build()
        self.optimizer = SPEC.optimizer.build(self.module.parameters())
        self.cpu_s = 0.0
        self.units: set[int] = set()

    def run(self, unit_id: int, x: np.ndarray, y: np.ndarray, steps: int, seed: int) -> None:
        if unit_id in self.units:  # once a unit, however many replicas compute it
            return
        self.units.add(unit_id)
        t = time.process_time()
        xt, yt = torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y))
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(xt), generator=generator)
        cursor = 0
        for _ in range(steps):
            if cursor + SPEC.batch_size > len(xt):
                order, cursor = torch.randperm(len(xt), generator=generator), 0
            idx = order[cursor : cursor + SPEC.batch_size]
            cursor += SPEC.batch_size
            self.optimizer.zero_grad(set_to_none=True)
            functional.cross_entropy(self.module(xt[idx]), yt[idx]).backward()
            self.optimizer.step()
        self.cpu_s += time.process_time() - t


class PairedWorker(Worker):
    """An honest worker that, when a unit first reaches its group, has the plain peer run that
    unit's steps just before it computes (timed apart, and taken out of the protocol's CPU).
    So the peer is measured unit by unit, interleaved with the protocol: on this machine the
    plain loop alone took 5.1 to 7.8 s of CPU for the same work from one minute to the next,
    and a drift that a peer measured minutes apart would misread as protocol cost now touches
    both alike."""

    def __init__(self, *args: Any, peer: PlainPeer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.peer = peer

    def compute_traced(self, payload: UnitPayload) -> tuple[bytes, bytes]:
        u = payload.unit
        self.peer.run(u.unit_id, payload.x, payload.y, u.steps, u.seed)
        return super().compute_traced(payload)


def through_protocol(
    x: np.ndarray,
    y: np.ndarray,
    units: int,
    steps: int,
    policy: ReplicationPolicy,
    workers: int,
    *,
    record_units: int = 0,
    seed: int = 1,
    ask_next: bool = True,
    database: str = "sqlite",
) -> dict[str, Any]:
    """CPU seconds of a job of ``units`` units through a served coordinator and ``workers``;
    with ``record_units``, an earlier job of that many units (not timed) gives the workers a
    record first, as workers of a running market have."""
    with compute_state(database) as state:
        coordinator = Coordinator(state, policy=policy, seed=seed)
        start = save_checkpoint(SPEC.build(), {"format": "pt"}, spec=SPEC)

        def submit(dataset: str, n: int) -> int:
            return coordinator.submit_job(
                SPEC,
                start,
                x,
                y,
                range(len(x)),
                dataset=dataset,
                steps_per_unit=steps,
                units=n,
                shard_size=SHARD,
            )

        def run(job: int) -> None:
            # the job's row, not job_status(): that is the full per-unit report, whose cost
            # grows with the units done and is no part of running a job
            while coordinator.state.get_job(job).state != "done":
                if not any([w.work_once() for w in group]):
                    raise RuntimeError("the job stalled: no worker got a unit")

        with served(coordinator) as url:
            peer = PlainPeer()
            group = [
                PairedWorker(account(i), http_transport(url, 30), ask_next=ask_next, peer=peer)
                for i in range(workers)
            ]
            for w in group:
                w.register()
            if record_units:
                run(submit("earlier", record_units))
            before = sum(w.units_done for w in group)
            peer_before = peer.cpu_s
            job = submit("bench", units)
            t = time.process_time()
            run(job)
            cpu = time.process_time() - t
        replicas = sum(w.units_done for w in group) - before
        paired = peer.cpu_s - peer_before
    return {
        "cpu_s": cpu - paired,
        "plain_cpu_s": paired,
        "ratio": (cpu - paired) / paired,
        "replicas": replicas,
        "referee_runs": coordinator.referee_runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--units", type=int, default=24)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measure; least CPU kept")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y = data(args.units)

    with compute_state(args.database) as state, served(Coordinator(state)) as url:
        rtt = round_trips(url, Coordinator(state), args.messages)

    # Each measure is the median of --repeat runs of its ratio to the plain peer, which is
    # measured inside the same run, unit by unit (PairedWorker): the machine is shared, and its
    # speed drifts by tens of percent from one minute to the next. Adaptive replication is
    # about workers with a record (BOINC's "reliable hosts"): the workers first build one in an
    # earlier job of RECORD_UNITS TMR units, untimed. Which units a trusted worker has
    # spot-checked is a draw: each run draws with its own seed (1, 2, ...), and adaptive is
    # reported over all runs (their total CPU by their peers' total), not the luckiest.
    adaptive_policy = ReplicationPolicy(
        adaptive=True, trusted_after=RECORD_UNITS, adaptive_probability=0.05
    )
    runs: dict[str, list[dict[str, Any]]] = {"one": [], "tmr": [], "adaptive": []}
    for i in range(args.repeat):
        one_policy = ReplicationPolicy(replicas=1)
        db = args.database
        runs["one"].append(
            through_protocol(x, y, args.units, args.steps, one_policy, 1, database=db)
        )
        tmr_policy = ReplicationPolicy()
        runs["tmr"].append(
            through_protocol(x, y, args.units, args.steps, tmr_policy, 3, database=db)
        )
        runs["adaptive"].append(
            through_protocol(
                x,
                y,
                args.units,
                args.steps,
                adaptive_policy,
                3,
                record_units=RECORD_UNITS,
                seed=i + 1,
                database=db,
            )
        )

    def median_run(name: str) -> dict[str, Any]:
        ordered = sorted(runs[name], key=lambda r: r["ratio"])
        return ordered[(len(ordered) - 1) // 2]

    one, tmr = median_run("one"), median_run("tmr")
    adaptive = {
        k: sum(r[k] for r in runs["adaptive"]) / args.repeat
        for k in ("cpu_s", "plain_cpu_s", "replicas")
    }
    adaptive["ratio"] = adaptive["cpu_s"] / adaptive["plain_cpu_s"]
    base = statistics.median(r["plain_cpu_s"] for r in runs["one"])

    rows = [
        ("round trip, protocol (median ms)", rtt["protocol_ms"], GOAL_RTT_MS, "ms"),
        ("round trip, bare echo (median ms)", rtt["echo_ms"], None, "ms"),
        ("one honest worker / plain torch", one["ratio"], GOAL_ONE, "x"),
        ("TMR total CPU / plain torch", tmr["ratio"], GOAL_TMR, "x"),
        ("adaptive total CPU / plain torch", adaptive["ratio"], GOAL_ADAPTIVE, "x"),
    ]
    print(
        f"{args.units} units x {args.steps} steps (batch {SPEC.batch_size}, shard {SHARD}); "
        f"plain torch {base:.2f} s CPU (median, paired); {args.messages} messages; torch "
        f"{torch.__version__}; coordinator state on {args.database}"
    )
    print(f"{'measure':<38} {'value':>9} {'goal':>7}  met")
    for name, value, goal, unit in rows:
        shown_goal = "" if goal is None else f"<= {goal:g}"
        met = "" if goal is None else ("yes" if value <= goal else "NO")
        print(f"{name:<38} {value:>8.2f}{unit:<1} {shown_goal:>7}  {met}")
    print(
        f"replicas computed: one {one['replicas']}, TMR {tmr['replicas']}, adaptive "
        f"{adaptive['replicas']:.1f} a run (p90 protocol round trip {rtt['protocol_p90_ms']:.2f} ms)"
    )
    # What the protocol adds to each replica, whatever the unit's size: the figure that says
    # how long a unit must be for a given overhead.
    for name, run in (("one", one), ("TMR", tmr), ("adaptive", adaptive)):
        per_unit_ms = 1000 * run["plain_cpu_s"] / args.units
        extra = 1000 * run["cpu_s"] / run["replicas"] - per_unit_ms
        print(
            f"{name}: {run['replicas'] / args.units:.2f} replicas a unit, "
            f"{extra:.1f} ms of protocol a replica over a {per_unit_ms:.0f} ms unit"
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"args": vars(args) | {"json": str(args.json)}, "plain_cpu_s": base}
                | {"rtt": rtt, "one": one, "tmr": tmr, "adaptive": adaptive, "runs": runs},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
