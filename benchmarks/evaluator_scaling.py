"""Evaluator time and memory per proposal as the accepted data grow.

Run: ``.venv/bin/python benchmarks/evaluator_scaling.py`` (1k, 10k and 100k accepted examples,
under a minute); ``--big`` adds 1M (about 2 GB of memory); ``--sizes 1000 20000`` picks others.

Each size runs in a fresh subprocess. The data are synthetic and seeded: 10 Gaussian classes
in 64 features, accepted examples in registry entries of 60, a 60-example proposal of which 10
are jittered copies of accepted examples (so copy detection has something to find), and 1,000
validation examples. The evaluator is driven through ``databright.market.evaluator``'s
``value_proposal`` with its default method, exactly what ``EvaluatorService.value`` runs once
the data are downloaded: copy detection, KNN-Shapley, flags, the JSON report and the PNG plot.
It is timed after a warm-up (imports), best of 3 up to 100k (once beyond), then run again under
``tracemalloc`` for the peak of Python and numpy allocations (the input data, made before, not
counted); ``rss`` is the subprocess's peak resident set, data and interpreter included. The
machine's load average is printed too: on a shared machine it says how far to trust a time.

The peer, measured in the same run on the same data: plain exact KNN with scikit-learn,
``KNeighborsClassifier(algorithm="brute")`` fit on the accepted data and predicting the
validation set (what "1,000 x N distances" costs without any valuation). The goal is <= 2 s and
<= 1 GB per proposal at 100k accepted examples, growing no worse than linearly.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

FEATURES = 64
CLASSES = 10
VALIDATION = 1_000
PROPOSAL = 60
COPIES = 10
ENTRY = 60
K = 5
REPEATS = 3


def make_data(n: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (CLASSES, FEATURES))

    def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, CLASSES, m)
        return centres[y] + rng.normal(0.0, 1.0, (m, FEATURES)), y

    acc_x, acc_y = draw(n)
    new_x, new_y = draw(PROPOSAL)
    src = rng.choice(n, COPIES, replace=False)
    new_x[:COPIES] = acc_x[src] + 0.01 * rng.normal(size=(COPIES, FEATURES))
    new_y[:COPIES] = acc_y[src]
    val_x, val_y = draw(VALIDATION)
    origin = np.arange(n) // ENTRY
    return {"acc": (acc_x, acc_y, origin), "new": (new_x, new_y), "val": (val_x, val_y)}


def evaluator_run(data: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    from sklearn.neighbors import KNeighborsClassifier

    from databright.market.evaluator import default_method, value_proposal
    from databright.valuation import Utility

    def run() -> dict[str, Any]:
        utility = Utility(KNeighborsClassifier(n_neighbors=K), *data["val"])
        score, body, plot = value_proposal(
            default_method(K),
            utility,
            data["acc"],
            data["new"],
            key="proposal-new",
            title="benchmark",
        )
        ours = next(p for p in body["proposals"] if p["proposal"] == "proposal-new")
        return {"score": score, "copies": ours["copies"], "png_bytes": len(plot)}

    return run


def peer_run(data: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    from sklearn.neighbors import KNeighborsClassifier

    def run() -> dict[str, Any]:
        acc_x, acc_y, _ = data["acc"]
        val_x, val_y = data["val"]
        knn = KNeighborsClassifier(n_neighbors=K, algorithm="brute").fit(acc_x, acc_y)
        return {"accuracy": float(np.mean(knn.predict(val_x) == val_y))}

    return run


def worker(n: int, what: str) -> dict[str, Any]:
    build = evaluator_run if what == "evaluator" else peer_run
    build(make_data(200, seed=1))()  # warm-up: imports, first calls
    run = build(make_data(n))
    out: dict[str, Any] = {}
    for _ in range(REPEATS if n <= 100_000 else 1):
        wall, cpu = time.perf_counter(), time.process_time()
        got = run()
        got["seconds"] = time.perf_counter() - wall
        got["cpu_seconds"] = time.process_time() - cpu
        if not out or got["seconds"] < out["seconds"]:
            out = got
    tracemalloc.start()
    run()
    out["peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    return out


def measure(n: int, what: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", str(n), what],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--big", action="store_true", help="also 1M accepted examples")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--worker", nargs=2, metavar=("N", "WHAT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(int(args.worker[0]), args.worker[1])))
        return
    sizes = args.sizes or [1_000, 10_000, 100_000] + ([1_000_000] if args.big else [])
    print(
        f"{PROPOSAL}-example proposal ({COPIES} jittered copies), {VALIDATION} validation "
        f"examples, {FEATURES} features, k={K}"
    )
    head = (
        f"{'accepted':>9} | {'evaluator s':>11} {'cpu s':>6} {'peak MB':>8} {'rss MB':>7} "
        f"{'score':>6} {'copies':>6} | {'sklearn s':>9} {'peak MB':>8} | {'time x':>6}"
    )
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(head)
    print("-" * len(head))
    for n in sizes:
        ours = measure(n, "evaluator")
        peer = measure(n, "peer")
        if "error" in ours or "error" in peer:
            print(f"{n:>9} | {ours.get('error', '')} {peer.get('error', '')}")
            continue
        print(
            f"{n:>9} | {ours['seconds']:>11.2f} {ours['cpu_seconds']:>6.2f} "
            f"{ours['peak_mb']:>8.1f} {ours['maxrss_mb']:>7.0f} {ours['score']:>6} "
            f"{ours['copies']:>6} | {peer['seconds']:>9.2f} {peer['peak_mb']:>8.1f} | "
            f"{ours['seconds'] / peer['seconds']:>6.1f}",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
