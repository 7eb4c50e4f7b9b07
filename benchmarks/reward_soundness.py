"""Do the evaluator's scores pay good data and starve bad data? A market simulation, no chain.

Run: ``.venv/bin/python benchmarks/reward_soundness.py`` (about a minute on two cores).

Per dataset (digits scaled to [0, 1]; a generated 4-class set of 20 features scaled to [0, 1])
an initiator registers a clean sample and ~38 accounts propose in rounds. Within a round the
proposals are pending together; each is valued by ``databright.market.evaluator``'s
``value_proposal`` with its default method, in arrival order, with the earlier pending
proposals of the round passed as earlier data when the evaluator takes them. At the round's end
voters accept every proposal scoring >= 5000 bps, and acceptance mints
``min(score, cap) / 10000 x examples`` shares (cap 20000; a score <= 0 mints none), as
``contracts/DataMarket.vy`` does. The validation set is thin on two classes (4 examples each),
as in the simulation that found the problems.

The cast: honest contributors of several sizes (one early and one late of equal size and
quality, one bringing only the two rare classes, one split into 12 Sybil accounts), careless
ones (10/25/40% wrong labels), copiers (jitter 0.002 / 0.05 of accepted data, brightness x0.9,
a mix of two proposals, jitter 0.02 of a pending proposal, two overlapping proposals sent at
once), poisoners (wrong labels aimed at the thin classes, a backdoor: trigger features ->
label 7 / 3, the same backdoor hidden as 4 examples in a clean batch of 36) and uniform noise.

Printed per dataset: the share of minted shares that went to honest contributors (goal >= 95%),
each copier's shares per example relative to its original's (goal <= 10%; for the overlapping
pair: the shares the 15 repeated rows earned relative to the original's), the early/late shares
per example (goal >= 1.2), the Sybil's shares split / merged (goal <= 1.0), and the precision and
recall of flags (any flag on a proposal) for finding the non-honest proposals.
"""

from __future__ import annotations

import argparse
import inspect
import os
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits, make_classification
from sklearn.neighbors import KNeighborsClassifier

ACCEPT_BPS = 5_000
CAP_BPS = 20_000
K = 5


@dataclass
class Proposal:
    name: str
    role: str  # honest | sybil | careless | copier | poisoner | noise
    x: NDArray[np.float64]
    y: NDArray[np.int64]
    original: tuple[str, ...] = ()
    score: int = 0
    accepted: bool = False
    shares: float = 0.0
    flags: tuple[str, ...] = ()
    counts: str = ""


@dataclass
class World:
    name: str
    x_val: NDArray[np.float64]
    y_val: NDArray[np.int64]
    x_init: NDArray[np.float64]
    y_init: NDArray[np.int64]
    rounds: list[list[Proposal]] = field(default_factory=list)


def _load(name: str) -> tuple[NDArray[np.float64], NDArray[np.int64], tuple[int, int], int]:
    """Features in [0, 1], labels, the two thin classes, the backdoor's target class."""
    if name == "digits":
        x, y = load_digits(return_X_y=True)
        return x / 16.0, y.astype(np.int64), (8, 9), 7
    x, y = make_classification(
        n_samples=4000,
        n_features=20,
        n_informative=10,
        n_redundant=4,
        n_classes=4,
        n_clusters_per_class=2,
        class_sep=1.6,
        flip_y=0.0,
        random_state=3,
    )
    x = (x - x.min(axis=0)) / (x.max(axis=0) - x.min(axis=0))
    return x, y.astype(np.int64), (2, 3), 1


def build(name: str, seed: int = 0, merge_sybil: bool = False) -> World:
    x, y, thin, target = _load(name)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    classes = np.unique(y)
    per_class = 30 if name == "digits" else 60
    val_rows = np.concatenate(
        [np.flatnonzero(y == c)[: 4 if c in thin else per_class] for c in classes]
    )
    free = np.ones(len(y), bool)
    free[val_rows] = False
    # drawn at random: the first free rows lean to the thin classes (validation took the rest)
    init_rows = rng.choice(np.flatnonzero(free), 100, replace=False)
    free[init_rows] = False
    w = World(name, x[val_rows], y[val_rows], x[init_rows], y[init_rows])
    n_classes = len(classes)
    d = x.shape[1]
    trigger = np.array([0, 7, 56, 63]) if name == "digits" else np.array([0, 5, 11])

    def take(n: int, only: tuple[int, ...] | None = None) -> tuple[NDArray[Any], NDArray[Any]]:
        ok = free if only is None else free & np.isin(y, only)
        rows = np.flatnonzero(ok)
        rows = rng.choice(rows, min(n, len(rows)), replace=False)
        if len(rows) < n:
            raise RuntimeError(f"{name}: the pool ran out")
        free[rows] = False
        return x[rows].copy(), y[rows].copy()

    def honest(nm: str, n: int, role: str = "honest") -> Proposal:
        return Proposal(nm, role, *take(n))

    def careless(nm: str, n: int, share: float) -> Proposal:
        xs, ys = take(n)
        bad = rng.permutation(n)[: round(share * n)]
        ys[bad] = (ys[bad] + rng.integers(1, n_classes, len(bad))) % n_classes
        return Proposal(nm, "careless", xs, ys)

    def jitter(p: Proposal, s: float, nm: str) -> Proposal:
        xs = np.clip(p.x + rng.normal(0.0, s, p.x.shape), 0.0, 1.0)
        return Proposal(nm, "copier", xs, p.y.copy(), (p.name,))

    def backdoor(xs: NDArray[Any], ys: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
        xs = xs.copy()
        xs[:, trigger] = 1.0
        return xs, np.full(len(ys), target, np.int64)

    early = honest("early", 40)
    h_a = honest("honest-a", 60)
    h_b = honest("honest-b", 30)
    w.rounds.append(
        [early, h_a, h_b, careless("careless-10", 40, 0.10), jitter(h_b, 0.02, "copy-pending")]
    )
    h_c = honest("honest-c", 50)
    h_d = honest("honest-d", 25)
    xs, ys = take(28, tuple(int(c) for c in classes if c not in thin))
    xt, yt = take(12, thin)
    yt = np.where(yt == thin[0], (thin[0] + 1) % n_classes, (thin[1] + 2) % n_classes)
    yt = np.where(np.isin(yt, thin), (yt + 3) % n_classes, yt)
    relabel = Proposal("relabel-thin", "poisoner", np.vstack([xs, xt]), np.concatenate([ys, yt]))
    w.rounds.append(
        [h_c, jitter(h_a, 0.002, "copy-0.002"), careless("careless-25", 40, 0.25), relabel, h_d]
    )
    o1 = honest("overlap-1", 40)
    xo, yo = take(25)
    o2 = Proposal(
        "overlap-2",
        "copier",
        np.vstack([o1.x[:15], xo]),
        np.concatenate([o1.y[:15], yo]),
        ("overlap-1",),
    )
    bx, by = backdoor(*take(36))
    noise = Proposal(
        "noise", "noise", rng.uniform(0.0, 1.0, (30, d)), rng.integers(0, n_classes, 30)
    )
    w.rounds.append(
        [
            jitter(h_c, 0.05, "copy-0.05"),
            o1,
            o2,
            Proposal("backdoor", "poisoner", bx, by),
            honest("honest-e", 45),
            noise,
        ]
    )
    cx, cy = take(32)
    sx, sy = backdoor(*take(4))
    stealthy = Proposal(
        "backdoor-stealthy", "poisoner", np.vstack([cx, sx]), np.concatenate([cy, sy])
    )
    w.rounds.append(
        [
            Proposal("brightness-0.9", "copier", h_a.x * 0.9, h_a.y.copy(), (h_a.name,)),
            careless("careless-40", 40, 0.40),
            stealthy,
            Proposal("rare-classes", "honest", *take(30, thin)),
            honest("honest-f", 35),
        ]
    )
    half_b, half_d = h_b.x[:15], h_d.x[:12]
    mix = Proposal(
        "mix",
        "copier",
        np.clip(np.vstack([half_b, half_d]) + rng.normal(0, 0.01, (27, d)), 0, 1),
        np.concatenate([h_b.y[:15], h_d.y[:12]]),
        (h_b.name, h_d.name),
    )
    sx, sy = take(60)
    if merge_sybil:
        sybil = [Proposal("sybil", "sybil", sx, sy)]
    else:
        sybil = [
            Proposal(f"sybil-{i}", "sybil", sx[5 * i : 5 * i + 5], sy[5 * i : 5 * i + 5])
            for i in range(12)
        ]
    w.rounds.append([mix, *sybil, honest("honest-g", 50), honest("honest-h", 30)])
    # more honest rounds: the dataset grows before the late contributor comes
    for r in range(3):
        w.rounds.append([honest(f"honest-{r}{j}", 40) for j in range(4)])
    w.rounds.append([honest("honest-i", 40), Proposal("late", "honest", *take(40))])
    return w


def simulate(w: World) -> dict[str, Proposal]:
    from databright.market.evaluator import default_method, value_proposal
    from databright.valuation import Utility

    takes_earlier = "earlier" in inspect.signature(value_proposal).parameters
    acc_x, acc_y = [w.x_init], [w.y_init]
    origin = [np.zeros(len(w.y_init), np.int64)]
    entries = 1
    out: dict[str, Proposal] = {}
    for rnd in w.rounds:
        pending: list[tuple[NDArray[Any], NDArray[Any]]] = []
        ax, ay, ao = np.vstack(acc_x), np.concatenate(acc_y), np.concatenate(origin)
        for p in rnd:
            utility = Utility(KNeighborsClassifier(n_neighbors=K), w.x_val, w.y_val)
            extra: dict[str, Any] = {"earlier": list(pending)} if takes_earlier else {}
            score, body, _ = value_proposal(
                default_method(K),
                utility,
                (ax, ay, ao),
                (p.x, p.y),
                key=f"proposal-{p.name}",
                title=p.name,
                **extra,
            )
            ours = next(q for q in body["proposals"] if q["proposal"] == f"proposal-{p.name}")
            p.score = score
            p.flags = tuple(sorted({f["kind"] for f in ours["flags"]}))
            if "reward" in body:  # which examples were paid (the evaluator's report says)
                c = body["reward"]["counts"]
                p.counts = "/".join(str(c[s]) for s in c)
            pending.append((p.x, p.y))
            out[p.name] = p
        for p in rnd:  # the round's votes close: voters follow the score
            p.accepted = p.score >= ACCEPT_BPS
            if p.accepted:
                p.shares = min(p.score, CAP_BPS) / 10_000 * len(p.y)
                acc_x.append(p.x)
                acc_y.append(p.y)
                origin.append(np.full(len(p.y), entries, np.int64))
                entries += 1
    return out


def per_example(p: Proposal) -> float:
    return p.shares / len(p.y)


def summarise(name: str, ps: dict[str, Proposal], merged: dict[str, Proposal]) -> dict[str, Any]:
    honest_roles = {"honest", "sybil"}
    total = sum(p.shares for p in ps.values())
    honest = sum(p.shares for p in ps.values() if p.role in honest_roles)
    copiers: dict[str, float] = {}
    for p in ps.values():
        if p.role != "copier":
            continue
        if p.name == "overlap-2":
            o = ps["overlap-1"]
            fresh = 25 * per_example(o)  # its 25 fresh rows, paid at the original's rate
            copiers[p.name] = (p.shares - fresh) / max(15 * per_example(o), 1e-12)
        else:
            base = np.mean([per_example(ps[o]) for o in p.original])
            copiers[p.name] = per_example(p) / base if base > 0 else float("nan")
    early, late = per_example(ps["early"]), per_example(ps["late"])
    split = sum(p.shares for p in ps.values() if p.role == "sybil")
    whole = merged["sybil"].shares
    flagged = {n for n, p in ps.items() if p.flags}
    bad = {n for n, p in ps.items() if p.role not in honest_roles}
    tp = len(flagged & bad)
    return {
        "dataset": name,
        "honest_share": honest / total if total else float("nan"),
        "copiers": copiers,
        "early_late": early / late if late > 0 else float("inf"),
        "sybil": split / whole if whole > 0 else float("nan"),
        "precision": tp / len(flagged) if flagged else float("nan"),
        "recall": tp / len(bad),
        "flagged_honest": sorted(flagged - bad),
        "missed": sorted(bad - flagged),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="*", default=["digits", "generated"])
    ap.add_argument("--verbose", action="store_true", help="one line per proposal")
    args = ap.parse_args()
    rows = []
    for name in args.datasets:
        ps = simulate(build(name))
        merged = simulate(build(name, merge_sybil=True))
        if args.verbose:
            print(
                f"\n{name}: proposal, role, examples, score bps, accepted, shares, "
                "paid/doubtful/contradicted/out-of-distribution/copy examples, flags"
            )
            for p in ps.values():
                print(
                    f"  {p.name:<18} {p.role:<9} {len(p.y):>3} {p.score:>7} "
                    f"{'yes' if p.accepted else 'no ':>3} {p.shares:>6.1f}  {p.counts:<14} {','.join(p.flags)}"
                )
        rows.append(summarise(name, ps, merged))
    print()
    head = "goal".ljust(34) + "".join(f"{r['dataset']:>12}" for r in rows)
    print(head)
    print("-" * len(head))

    def line(label: str, vals: list[str]) -> None:
        print(label.ljust(34) + "".join(f"{v:>12}" for v in vals))

    line("honest share of shares (>=95%)", [f"{100 * r['honest_share']:.1f}%" for r in rows])
    for c in rows[0]["copiers"]:
        line(f"copier {c} / original (<=10%)", [f"{100 * r['copiers'][c]:.0f}%" for r in rows])
    line("early / late per example (>=1.2)", [f"{r['early_late']:.2f}" for r in rows])
    line("Sybil split / merged (<=1.0)", [f"{r['sybil']:.2f}" for r in rows])
    line("flag precision", [f"{r['precision']:.2f}" for r in rows])
    line("flag recall", [f"{r['recall']:.2f}" for r in rows])
    for r in rows:
        print(f"{r['dataset']}: honest flagged {r['flagged_honest']}; bad unflagged {r['missed']}")


if __name__ == "__main__":
    main()
