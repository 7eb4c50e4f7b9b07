"""DataBright's valuation methods against pyDVL 0.10 on the same noisy data, in one command.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/valuation_vs_pydvl.py [--quick]

Data: scikit-learn digits (proposals of 25) and breast cancer (proposals of 10), features
standardised on the training split; 10% of training labels flipped overall: a few proposals
(a tenth of them, at least 3) get 40% of their labels flipped, the rest of the flips are spread
as evenly as possible over the other proposals. The task is finding the 40%-noisy proposals:
AUROC of ranking proposals by value (lowest first), per-example methods summed per proposal.

pyDVL needs numpy<2, so it runs in its own environment (.venv-pydvl, built on demand by
benchmarks/pydvl_env.sh) in a subprocess; data go over as .npz (allow_pickle=False), values come
back as JSON. Times are CPU seconds of ``fit`` (process time, one thread, imports and data
loading excluded). Models: KNN-Shapley k=10; pyDVL's TMC and LOO over examples with
RidgeClassifier and accuracy (TMC with its default truncation, rtol 0.01, burn-in 0.4); ours
over proposals with the clipped-margin score, antithetic permutations, stopping at stderr 0.01
or 200 permutations, on the exact fast paths of KNeighborsClassifier(10) ("knn", the headline)
and RidgeClassifier ("ridge"); MSR-Banzhaf (no pyDVL run) likewise; LOO gain fine-tunes an
SGDClassifier checkpoint for one epoch; Data-OOB with 100 bagged decision trees (pyDVL's time
includes fitting the ensemble).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import RidgeClassifier, SGDClassifier
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from databright.valuation import (
    CopyPolicy,
    DataOOB,
    FlagKind,
    KNNShapley,
    LOOGain,
    MaxSamples,
    MinSamples,
    MSRBanzhaf,
    StandardErrorBelow,
    TMCShapley,
    Utility,
    ValuationData,
)

ROOT = Path(__file__).resolve().parent.parent
PYDVL_PY = ROOT / ".venv-pydvl" / "bin" / "python"
K = 10
OOB_TREES = 100

DATASETS = {
    # name: (loader, proposal size, training examples)
    "digits": (load_digits, 25, 1200),
    "breast_cancer": (load_breast_cancer, 10, 400),
}


def make_data(name: str, seed: int) -> dict[str, np.ndarray]:
    loader, size, n_train = DATASETS[name]
    x, y = loader(return_X_y=True)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(y))
    tr, va = idx[:n_train], idx[n_train:]
    scaler = StandardScaler().fit(x[tr])
    x_train, x_val = scaler.transform(x[tr]), scaler.transform(x[va])
    y_train, y_val = y[tr].copy(), y[va]
    n_prop = n_train // size
    prop = np.repeat(np.arange(n_prop), size)
    classes = np.unique(y)
    noisy = rng.choice(n_prop, max(3, n_prop // 10), replace=False)
    flips: list[int] = []
    for p in noisy:
        flips += rng.choice(np.flatnonzero(prop == p), round(0.4 * size), replace=False).tolist()
    clean = [p for p in rng.permutation(n_prop) if p not in set(noisy.tolist())]
    for j in range(round(0.1 * n_train) - len(flips)):
        p = clean[j % len(clean)]
        taken = set(flips)
        flips.append(int(rng.choice([i for i in np.flatnonzero(prop == p) if i not in taken])))
    for i in flips:
        y_train[i] = rng.choice(classes[classes != y_train[i]])
    is_noisy = np.zeros(n_prop, bool)
    is_noisy[noisy] = True
    return {
        "x_train": x_train,
        "y_train": y_train,
        "proposal": prop,
        "x_val": x_val,
        "y_val": y_val,
        "noisy": is_noisy,
    }


def auroc(d: dict[str, np.ndarray], proposal_values: np.ndarray) -> float:
    return float(roc_auc_score(d["noisy"], -proposal_values))


def per_proposal(d: dict[str, np.ndarray], example_values: np.ndarray) -> np.ndarray:
    return np.bincount(d["proposal"], weights=example_values)


def poison_hits(d: dict[str, np.ndarray], result) -> tuple[int, int, int]:
    """(noisy proposals flagged as poisoning, clean ones flagged, noisy ones missed)."""
    flagged = {f.proposal for f in result.flags if f.kind is FlagKind.POISONING}
    noisy = set(np.flatnonzero(d["noisy"]).tolist())
    return len(flagged & noisy), len(flagged - noisy), len(noisy - flagged)


def ours(d: dict[str, np.ndarray], seed: int, hits: dict[str, list[tuple[int, int, int]]]):
    """method -> (cpu seconds, AUROC); poisoning-flag hits are appended to ``hits``."""
    data = ValuationData(d["x_train"], d["y_train"], d["proposal"])
    xv, yv = d["x_val"], d["y_val"]
    margin = Utility(RidgeClassifier(), xv, yv, scorer="margin")
    knn_margin = Utility(KNeighborsClassifier(K), xv, yv, scorer="margin")
    start = SGDClassifier(loss="log_loss", random_state=seed).partial_fit(
        d["x_train"], d["y_train"], classes=np.unique(d["y_train"])
    )
    tmc_stop = StandardErrorBelow(0.01) & MinSamples(30) | MaxSamples(200)
    msr_stop = StandardErrorBelow(0.002) & MinSamples(30) | MaxSamples(4000)
    methods = {
        "knn": KNNShapley(Utility(KNeighborsClassifier(K), xv, yv)),
        "tmc": TMCShapley(knn_margin, stopping=tmc_stop, seed=seed),
        "tmc_ridge": TMCShapley(margin, stopping=tmc_stop, seed=seed),
        "msr_banzhaf": MSRBanzhaf(knn_margin, stopping=msr_stop, seed=seed),
        "loo": LOOGain(Utility(start, xv, yv), epochs=1, seed=seed),
        "oob": DataOOB(
            Utility(DecisionTreeClassifier(), xv, yv), n_estimators=OOB_TREES, seed=seed
        ),
    }
    out = {}
    for name, method in methods.items():
        result = method.fit(data).result
        out[name] = (result.seconds, auroc(d, result.proposal_values))
        if name in ("knn", "tmc"):
            hits.setdefault(name, []).append(poison_hits(d, result))
    return out


def copy_ratios(d: dict[str, np.ndarray]) -> dict[str, float]:
    """(copy + original) / original alone, for a copied proposal, exact and jittered."""
    xv, yv = d["x_val"], d["y_val"]
    x, y, prop = d["x_train"], d["y_train"], d["proposal"]
    # copy the most valuable clean proposal, so that the ratio's denominator is not near zero
    knn = KNNShapley(Utility(KNeighborsClassifier(K), xv, yv), flags=False)
    first = knn.fit(ValuationData(x, y, prop)).result.proposal_values
    victim = int(np.argmax(np.where(d["noisy"], -np.inf, first)))
    rows = prop == victim
    noise = 0.05 * np.random.default_rng(7).standard_normal((int(rows.sum()), x.shape[1]))
    out = {}
    for label, method_of in {
        "knn": lambda dedup: KNNShapley(
            Utility(KNeighborsClassifier(K), xv, yv),
            copy_policy=CopyPolicy(enabled=dedup),
            flags=False,
        ),
        "tmc": lambda dedup: TMCShapley(
            Utility(RidgeClassifier(), xv, yv, scorer="margin"),
            stopping=MaxSamples(64),
            copy_policy=CopyPolicy(enabled=dedup),
            flags=False,
        ),
    }.items():
        alone = method_of(True).fit(ValuationData(x, y, prop)).result.value_of(victim)
        for kind, jitter in (("exact", 0.0), ("jitter", 1.0)):
            both = ValuationData(
                np.vstack([x, x[rows] + jitter * noise]),
                np.concatenate([y, y[rows]]),
                np.concatenate([prop, np.full(int(rows.sum()), 10_000)]),
            )
            for dedup in (True, False):
                r = method_of(dedup).fit(both).result
                key = f"{label}_{kind}" + ("" if dedup else "_naive")
                out[key] = (r.value_of(victim) + r.value_of(10_000)) / alone
    return out


def ensure_pydvl() -> None:
    if PYDVL_PY.exists():
        probe = subprocess.run([str(PYDVL_PY), "-c", "import pydvl"], capture_output=True)
        if probe.returncode == 0:
            return
    print("building .venv-pydvl (pyDVL 0.10 needs numpy<2) ...", flush=True)
    subprocess.run(["bash", str(ROOT / "benchmarks" / "pydvl_env.sh")], check=True)


def pydvl(
    d: dict[str, np.ndarray], seed: int, methods: list[str], tmc_permutations: int, tmp: Path
) -> dict[str, tuple[float, float]]:
    npz = tmp / f"data_{seed}.npz"
    np.savez(npz, **{k: d[k] for k in ("x_train", "y_train", "x_val", "y_val")})
    job = tmp / f"job_{seed}.json"
    answer = tmp / f"answer_{seed}.json"
    job.write_text(
        json.dumps(
            {
                "npz": str(npz),
                "seed": seed,
                "k": K,
                "tmc_permutations": tmc_permutations,
                "oob_estimators": OOB_TREES,
                "methods": methods,
                "out": str(answer),
            }
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [str(PYDVL_PY), str(ROOT / "benchmarks" / "pydvl_runner.py"), str(job)],
        check=True,
        env=env,
    )
    got = json.loads(answer.read_text())
    return {
        m: (v["cpu_seconds"], auroc(d, per_proposal(d, np.asarray(v["values"]))))
        for m, v in got.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds; pyDVL TMC shortened")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--tmc-seeds",
        type=int,
        default=1,
        help="seeds per data set on which pyDVL's TMC runs (about 4 min on digits, 2 on cancer)",
    )
    ap.add_argument("--tmc-permutations", type=int, default=100)
    ap.add_argument("--json", type=Path, help="also write the table's numbers here")
    args = ap.parse_args()
    if args.quick:
        args.seeds = 2
        args.tmc_permutations = 10
    ensure_pydvl()
    t0 = time.perf_counter()
    rows: dict[str, dict[str, dict[str, list[tuple[float, float]]]]] = {}
    ratios: dict[str, dict[str, float]] = {}
    hits: dict[str, dict[str, list[tuple[int, int, int]]]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for name in DATASETS:
            rows[name] = {"ours": {}, "pydvl": {}}
            for seed in range(args.seeds):
                d = make_data(name, seed)
                for m, v in ours(d, seed, hits.setdefault(name, {})).items():
                    rows[name]["ours"].setdefault(m, []).append(v)
                methods = ["knn", "loo", "oob"]
                run_tmc = seed < args.tmc_seeds and not (args.quick and name == "digits")
                if run_tmc:
                    methods.append("tmc")
                for m, v in pydvl(d, seed, methods, args.tmc_permutations, tmp).items():
                    rows[name]["pydvl"].setdefault(m, []).append(v)
                print(f"  {name} seed {seed} done ({time.perf_counter() - t0:.0f} s)", flush=True)
            ratios[name] = copy_ratios(make_data(name, 0))
    report(rows, ratios, hits, args)
    if args.json:
        doc = {"rows": rows, "copy_ratios": ratios, "poisoning_flags": hits}
        args.json.write_text(json.dumps(doc, indent=1))
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")


def report(rows, ratios, hits, args) -> None:
    names = {
        "knn": "KNN-Shapley",
        "tmc": "TMC (knn)",
        "tmc_ridge": "TMC (ridge)",
        "msr_banzhaf": "MSR (knn)",
        "loo": "LOO",
        "oob": "Data-OOB",
    }
    print(
        f"\nCPU seconds per fit (mean over seeds) and AUROC of finding the 40%-noisy proposals"
        f" (mean [min]); {args.seeds} seeds"
    )
    if args.quick:
        print(
            f"QUICK: pyDVL TMC ran {args.tmc_permutations} permutations on breast cancer only;"
            f" its time is scaled x{100 / args.tmc_permutations:g} to 100 permutations"
        )
    else:
        print(
            f"pyDVL TMC ({args.tmc_permutations} permutations over examples) ran on"
            f" {args.tmc_seeds} seed(s) per data set only: it takes minutes per run here"
        )
    print(
        "ours: KNN/Data-OOB over examples; TMC/MSR over proposals; LOO = fine-tuning gain over"
        " proposals\n"
    )
    head = f"{'data':14} {'method':12} {'ours s':>9} {'ours AUROC':>15} {'pyDVL s':>9} {'pyDVL AUROC':>15} {'speed-up':>9}"
    print(head)
    print("-" * len(head))
    for data, by in rows.items():
        for m, label in names.items():
            o = by["ours"].get(m)
            p = by["pydvl"].get("tmc" if m == "tmc_ridge" else m)

            def cell(v):
                if not v:
                    return f"{'-':>9} {'-':>15}"
                s = np.mean([a for a, _ in v])
                a = [b for _, b in v]
                return f"{s:9.3f} {np.mean(a):8.3f} [{min(a):.2f}]"

            ps = None
            if p:
                ps = np.mean([a for a, _ in p])
                if m in ("tmc", "tmc_ridge") and args.quick:
                    ps *= 100 / args.tmc_permutations
                    p = [(a * 100 / args.tmc_permutations, b) for a, b in p]
            speed = ""
            if o and ps is not None:
                if m in ("tmc", "tmc_ridge"):  # compare on the seeds both ran
                    speed = f"{ps / np.mean([a for a, _ in o[: len(p)]]):8.0f}x"
                else:
                    speed = f"{ps / np.mean([a for a, _ in o]):8.1f}x"
            print(f"{data:14} {label:12} {cell(o)} {cell(p)} {speed:>9}")
    print("\ncopy ratio = value(original + copy) / value(original alone); goal <= 1.1")
    for data, r in ratios.items():
        print(
            f"{data:14} KNN exact {r['knn_exact']:.3f} jitter {r['knn_jitter']:.3f}"
            f" (naive {r['knn_exact_naive']:.2f} / {r['knn_jitter_naive']:.2f});"
            f" TMC exact {r['tmc_exact']:.3f} jitter {r['tmc_jitter']:.3f}"
            f" (naive {r['tmc_exact_naive']:.2f} / {r['tmc_jitter_naive']:.2f})"
        )
    print("(jitter: Gaussian, 0.05 standard deviations per standardised feature)")
    print("\npoisoning flags against the planted 40%-noisy proposals, all seeds together")
    for data, by in hits.items():
        parts = []
        for m, label in (("knn", "KNN-Shapley"), ("tmc", "TMC (knn)")):
            tp, fp, fn = (sum(h[i] for h in by[m]) for i in range(3))
            parts.append(f"{label}: found {tp} of {tp + fn}, {fp} false alarms")
        print(f"{data:14} " + "; ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
