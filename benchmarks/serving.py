"""Paid predictions vs plain torch: what the receipt check costs per request.

    .venv/bin/python benchmarks/serving.py [--requests 2000] [--rounds 5] [--json out.json]

The model is the digits MLP of ``benchmarks/specs/digits_mlp.json`` trained for one epoch on
scikit-learn's digits (through ``databright.ml``: spec, ``train``, safetensors checkpoint,
``Predictor``); without ``databright.ml.predictor`` a plain torch MLP 64-128-10 with random
weights stands in. Each request is timed alone (``perf_counter`` around the call), batch 1 and
batch 64, in these modes, in the same run and interleaved in ``--rounds`` blocks so that a
busy machine hurts them alike:

- ``torch``: plain inference of the same checkpoint (``module(torch.from_numpy(x)).argmax``
  under ``inference_mode``), the peer;
- ``serving``: ``Serving.predict`` with a receipt the client signed beforehand (signing
  excluded): input checks, EIP-712 digest, ECDSA recovery, the book's ``BEGIN IMMEDIATE``
  check-and-write committed to a real SQLite file (WAL), then the same inference;
- ``serving+sign``: the same with the client's ``sign_receipt`` inside the timed call;
- ``serving+wallet``: the same with the client's ``Wallet.pay`` (signing and the atomic
  rename of its state file, ``durable=False``) inside the timed call; the fsynced default is
  timed alone below the table.

Goals (issue 10): overhead <= 10% at batch 64 and <= 1 ms per request at batch 1 (``serving``
vs ``torch``). Escrow state comes from an in-process stand-in (the chain is the SDK's part; the
node caches it per user anyway, so the chain is off the request path).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from eth_account import Account
from sklearn.datasets import load_digits

from databright.models.receipts import (
    EscrowState,
    Receipt,
    ReceiptBook,
    ReceiptDomain,
    Wallet,
    receipt_digest,
    recover_signer,
    sign_receipt,
)
from databright.models.serving import Serving

GOAL_OVERHEAD_64 = 10.0  # percent
GOAL_MS_1 = 1.0  # ms per request
SPEC = Path(__file__).resolve().parent / "specs" / "digits_mlp.json"
DOMAIN = ReceiptDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
PRICE = 1_000_000_000  # 1 gwei per prediction
DEPOSIT = 10**30


def load_model() -> tuple[str, Callable[[np.ndarray], np.ndarray], torch.nn.Module, np.ndarray]:
    """(description, the serving predict, the plain module, the digits features)."""
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    try:
        from databright.ml.predictor import Predictor
        from databright.ml.spec import ModelSpec
        from databright.ml.train import train
    except ImportError:
        torch.manual_seed(0)
        torch.set_num_threads(1)
        module = torch.nn.Sequential(
            torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)
        ).eval()

        def predict(a: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(a)).argmax(1).numpy()

        return "plain torch MLP 64-128-10, random weights", predict, module, x
    raw = json.loads(SPEC.read_text())
    raw["epochs"] = 1
    spec = ModelSpec.from_dict(raw)
    result = train(spec, x, y)
    predictor = Predictor(spec, result.checkpoint)
    acc = result.metrics["holdout_accuracy"]
    what = (
        f"{SPEC.name}, 1 epoch on digits (hold-out accuracy {acc:.2f}), "
        f"{spec.parameter_count:,} parameters, Predictor"
    )
    return what, predictor.predict, predictor.module, x


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(
    batch: int,
    serving: Serving,
    plain: Callable[[np.ndarray], np.ndarray],
    features: np.ndarray,
    rng: np.random.Generator,
    per_round: int,
    rounds: int,
    tmp: Path,
) -> dict[str, dict[str, Any]]:
    """Time every mode at one batch size; rows keyed ``mode@batch``."""
    users = {mode: Account.create() for mode in ("serving", "serving+sign", "serving+wallet")}
    n_total = per_round * rounds + 1  # + the warm-up
    # The receipts of "serving" are signed before the clock starts: signing excluded.
    presigned = [
        sign_receipt(users["serving"], DOMAIN, 1, PRICE * batch * (i + 1), i + 1)
        for i in range(n_total)
    ]
    wallet = Wallet(users["serving+wallet"], DOMAIN, tmp / "wallet", durable=False)
    wallet.set_limit(1, DEPOSIT)
    counters = {"serving": 0, "serving+sign": 0}
    inputs = [
        np.ascontiguousarray(features[rng.integers(0, len(features), batch)]) for _ in range(64)
    ]

    def call(mode: str, x: np.ndarray) -> np.ndarray:
        if mode == "torch":
            return plain(x)
        if mode == "serving+wallet":
            return serving.predict(x, wallet.pay(1, PRICE * len(x)))
        counters[mode] += 1
        i = counters[mode]
        if mode == "serving":
            receipt: Receipt = presigned[i - 1]
        else:
            receipt = sign_receipt(users[mode], DOMAIN, 1, PRICE * len(x) * i, i)
        return serving.predict(x, receipt)

    modes = ("torch", "serving", "serving+sign", "serving+wallet")
    lat: dict[str, list[float]] = {m: [] for m in modes}
    spent: dict[str, float] = dict.fromkeys(modes, 0.0)
    for mode in modes:  # warm-up, and a check that every mode answers alike
        np.testing.assert_array_equal(call(mode, inputs[0]), plain(inputs[0]))
    for _ in range(rounds):
        for mode in modes:
            block_start = time.perf_counter()
            for j in range(per_round):
                x = inputs[j % len(inputs)]
                t0 = time.perf_counter()
                call(mode, x)
                lat[mode].append(time.perf_counter() - t0)
            spent[mode] += time.perf_counter() - block_start
    base_p50 = statistics.median(lat["torch"])
    rows = {}
    for mode in modes:
        p50 = statistics.median(lat[mode])
        rows[f"{mode}@{batch}"] = {
            "mode": mode,
            "batch": batch,
            "requests": len(lat[mode]),
            "predictions_per_s": len(lat[mode]) * batch / spent[mode],
            "p50_ms": p50 * 1e3,
            "p99_ms": percentile(lat[mode], 99) * 1e3,
            "overhead_pct": (p50 - base_p50) / base_p50 * 100,
            "overhead_ms": (p50 - base_p50) * 1e3,
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--requests", type=int, default=2000, help="timed requests per mode and batch size"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved blocks per mode")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    torch.set_num_threads(1)
    what, predict, module, features = load_model()
    rng = np.random.default_rng(0)
    per_round = max(args.requests // args.rounds, 1)

    def plain(a: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(a)).argmax(1).numpy()

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="databright-serving-") as tmp:
        book = ReceiptBook(Path(tmp) / "node")
        serving = Serving(1, PRICE, predict, book, lambda user: EscrowState(DEPOSIT), DOMAIN)

        for batch in (1, 64):
            results.update(
                measure(batch, serving, plain, features, rng, per_round, args.rounds, Path(tmp))
            )

        # Where the receipt check's time goes (single operations, median of many).
        user = Account.create()
        receipts = [sign_receipt(user, DOMAIN, 2, PRICE * (i + 1), i + 1) for i in range(500)]
        parts = {
            "EIP-712 digest": lambda r: receipt_digest(
                DOMAIN, r.model_id, r.user_bytes, r.total, r.nonce
            ),
            "ECDSA recovery (incl. digest)": lambda r: recover_signer(DOMAIN, r),
            "book.accept (recovery + SQLite transaction)": lambda r: book.accept(
                r, price_wei=PRICE, examples=1, escrow=EscrowState(DEPOSIT), domain=DOMAIN
            ),
            "client sign_receipt": lambda r: sign_receipt(user, DOMAIN, 3, r.total, r.nonce),
            "client Wallet.pay, durable=False (rename)": lambda r: fast.pay(4, PRICE),
            "client Wallet.pay, durable=True (fsync)": lambda r: durable.pay(5, PRICE),
        }
        fast = Wallet(user, DOMAIN, Path(tmp) / "w-fast", durable=False)
        durable = Wallet(user, DOMAIN, Path(tmp) / "w-durable")
        for wallet in (fast, durable):
            wallet.set_limit(4, DEPOSIT)
            wallet.set_limit(5, DEPOSIT)
        breakdown = {}
        for name, fn in parts.items():
            times = []
            for r in receipts:
                t0 = time.perf_counter()
                fn(r)
                times.append(time.perf_counter() - t0)
            breakdown[name] = statistics.median(times) * 1e6
        book.close()

    print(f"model: {what}")
    print(f"torch threads: {torch.get_num_threads()}, SQLite file on {tempfile.gettempdir()}")
    print(f"{per_round * args.rounds} requests per row, {args.rounds} interleaved rounds\n")
    head = f"{'batch':>5}  {'mode':<15} {'pred/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'overhead (p50)':>18}"
    print(head)
    print("-" * len(head))
    for row in results.values():
        over = (
            ""
            if row["mode"] == "torch"
            else f"{row['overhead_ms'] * 1e3:+7.0f} us {row['overhead_pct']:+6.0f}%"
        )
        print(
            f"{row['batch']:>5}  {row['mode']:<15} {row['predictions_per_s']:>10,.0f} "
            f"{row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {over:>18}"
        )
    print("\nreceipt check, per operation (median):")
    for name, us in breakdown.items():
        print(f"  {name:<45} {us:7.1f} us")
    s1, s64 = results["serving@1"], results["serving@64"]
    ok1 = s1["p50_ms"] <= GOAL_MS_1
    ok64 = s64["overhead_pct"] <= GOAL_OVERHEAD_64
    print(
        f"\ngoal batch 1: <= {GOAL_MS_1} ms per request through serving: "
        f"{s1['p50_ms']:.3f} ms p50 ({'met' if ok1 else 'NOT met'})"
    )
    print(
        f"goal batch 64: overhead <= {GOAL_OVERHEAD_64:.0f}%: {s64['overhead_pct']:.0f}% "
        f"({s64['overhead_ms'] * 1e3:.0f} us on {results['torch@64']['p50_ms'] * 1e3:.0f} us of "
        f"inference; {'met' if ok64 else 'NOT met'})"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"model": what, "rows": results, "breakdown_us": breakdown}, indent=1)
        )


if __name__ == "__main__":
    sys.exit(main())
