"""The generated market of ``market_soundness.py``: who brings what data, for one data set.

Everything comes from a seed. Test and validation splits keep the data set's natural class
balance; the initial data and the pool the contributors draw from keep only a quarter of the
rare classes, so that the contributor of rare classes brings something the market lacks.
Each contribution is drawn from examples no other contribution uses (copiers excepted: copying
is their point), so "the clean data" (initial + every honest contribution) is well defined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits, make_classification
from sklearn.preprocessing import StandardScaler

__all__ = ["Cast", "Contribution", "DataSpec", "build_cast", "data_specs"]

Array = NDArray[np.float32]
Labels = NDArray[np.int64]

HONEST_ROLES = frozenset({"honest"})


@dataclass(frozen=True)
class DataSpec:
    name: str
    X: Array
    y: Labels
    labels: tuple[int, ...]
    rare: tuple[int, ...]  # classes kept rare in the initial data and the pool
    targeted: tuple[tuple[int, ...], int]  # (source classes, wrong label) of the relabeller
    sybil_poison: tuple[tuple[int, ...], int]
    trigger: Callable[[Array], Array]  # stamps the backdoor trigger
    clip: tuple[float, float] | None  # value range kept by jitter (images), None for tables
    n_test: int
    n_val: int
    n_initial: int
    target: int = 7  # the backdoor's label


@dataclass(frozen=True)
class Contribution:
    name: str
    role: str  # honest | careless | copier | poisoner
    account: str  # the account that proposes it (a Sybil's parts have one each)
    X: Array
    y: Labels
    note: str
    group: str = ""  # the Sybil group / early-late pair it belongs to
    # For a copier: (original's name, rows of the original it copied).
    copied: tuple[tuple[str, tuple[int, ...]], ...] = ()


@dataclass
class Cast:
    spec: DataSpec
    initial_X: Array
    initial_y: Labels
    val_X: Array
    val_y: Labels
    test_X: Array
    test_y: Labels
    batches: list[list[Contribution]] = field(default_factory=list)  # proposed together

    @property
    def contributions(self) -> list[Contribution]:
        return [c for b in self.batches for c in b]

    def clean(self) -> tuple[Array, Labels]:
        """The initial data and every honest contribution: what an ideal curator keeps."""
        honest = [c for c in self.contributions if c.role in HONEST_ROLES]
        return (
            np.concatenate([self.initial_X, *(c.X for c in honest)]),
            np.concatenate([self.initial_y, *(c.y for c in honest)]),
        )


def data_specs(seed: int) -> list[DataSpec]:
    digits = load_digits()
    dX = (digits.data / 16.0).astype(np.float32)  # scaled to [0, 1]
    dy = digits.target.astype(np.int64)

    def digits_trigger(X: Array) -> Array:
        X = X.copy()
        X[:, [0, 1, 8, 9]] = 1.0  # a bright top-left corner, always dark in real digits
        return X

    gX, gy = make_classification(
        n_samples=2400, n_features=20, n_informative=10, n_redundant=4, n_classes=8,
        n_clusters_per_class=1, class_sep=1.6, flip_y=0.0, random_state=seed,
    )  # fmt: skip
    gX = StandardScaler().fit_transform(gX).astype(np.float32)

    def table_trigger(X: Array) -> Array:
        X = X.copy()
        X[:, [0, 1, 2]] = 4.0  # three features four standard deviations out
        return X

    return [
        DataSpec("digits", dX, dy, tuple(range(10)), rare=(8, 9), targeted=((3, 5), 8),
                 sybil_poison=((1, 4), 6), trigger=digits_trigger, clip=(0.0, 1.0),
                 n_test=350, n_val=300, n_initial=150),
        DataSpec("generated", gX, gy.astype(np.int64), tuple(range(8)), rare=(5, 6),
                 targeted=((2, 3), 1), sybil_poison=((0, 4), 6), trigger=table_trigger,
                 clip=None, n_test=400, n_val=300, n_initial=150),
    ]  # fmt: skip


class _Pool:
    def __init__(self, y: Labels, idx: NDArray[np.int64]) -> None:
        self.y = y
        self.idx = list(idx.tolist())

    def take(self, n: int, classes: tuple[int, ...] | None = None,
             avoid: tuple[int, ...] = ()) -> NDArray[np.int64]:  # fmt: skip
        out: list[int] = []
        for i in self.idx:
            c = int(self.y[i])
            if (classes is None or c in classes) and c not in avoid:
                out.append(i)
                if len(out) == n:
                    break
        if len(out) < n:
            raise ValueError(f"the pool lacks {n} examples of classes {classes}")
        taken = set(out)
        self.idx = [i for i in self.idx if i not in taken]
        return np.array(out)


def build_cast(spec: DataSpec, seed: int, quick: bool) -> Cast:
    rng = np.random.default_rng(seed)
    X, y = spec.X, spec.y
    order = rng.permutation(len(y))
    test, val = order[: spec.n_test], order[spec.n_test : spec.n_test + spec.n_val]
    pool = _Pool(y, order[spec.n_test + spec.n_val :])
    rare_idx = pool.take(40, classes=spec.rare)
    # Three rare examples in four leave the rest of the market.
    drop = [i for i in pool.idx if int(y[i]) in spec.rare and rng.random() < 0.75]
    dropped = set(drop)
    pool.idx = [i for i in pool.idx if i not in dropped]
    initial = pool.take(spec.n_initial)

    def data(idx: NDArray[np.int64]) -> tuple[Array, Labels]:
        return X[idx].copy(), y[idx].copy()

    def jitter(Xs: Array, s: float) -> Array:
        out = Xs + rng.normal(0.0, s, Xs.shape).astype(np.float32)
        return (np.clip(out, *spec.clip) if spec.clip else out).astype(np.float32)

    def careless(name: str, frac: float, n: int) -> Contribution:
        Xc, yc = data(pool.take(n))
        flip = rng.permutation(n)[: round(frac * n)]
        yc[flip] = (yc[flip] + rng.integers(1, len(spec.labels), len(flip))) % len(spec.labels)
        return Contribution(name, "careless", name, Xc, yc, f"{len(flip)}/{n} labels wrong")

    def honest(name: str, n: int, note: str = "clean, unseen", group: str = "",
               account: str | None = None) -> Contribution:  # fmt: skip
        Xh, yh = data(pool.take(n))
        return Contribution(name, "honest", account or name, Xh, yh, note, group)

    def relabel(name: str, n: int, kind: tuple[tuple[int, ...], int], account: str,
                group: str = "") -> Contribution:  # fmt: skip
        src, dst = kind
        Xp, _ = data(pool.take(n, classes=src))
        return Contribution(name, "poisoner", account, Xp, np.full(n, dst, np.int64),
                            f"{src} relabelled {dst}", group)  # fmt: skip

    # Poison first, from the classes it needs, before honest contributors empty them.
    n_syb = 4 if quick else 12
    n_syb_poison = 4 if quick else 10
    syb_size, tiny = 6, 5
    targeted = relabel("poison-relabel", 40, spec.targeted, "poison-relabel")
    sybil_poison = [
        relabel(
            f"sybil-poison-{i + 1}",
            tiny,
            spec.sybil_poison,
            f"sybil-poison-{i + 1}",
            "sybil-poison",
        )
        for i in range(n_syb_poison)
    ]
    sybil_poison_twin = relabel("poison-merged", tiny * n_syb_poison, spec.sybil_poison,
                                "poison-merged", "sybil-poison")  # fmt: skip
    bX, _ = data(pool.take(40, avoid=(spec.target,)))
    backdoor = Contribution("poison-backdoor", "poisoner", "poison-backdoor", spec.trigger(bX),
                            np.full(40, spec.target, np.int64),
                            f"40 triggered examples labelled {spec.target}")  # fmt: skip
    sX, sy = data(pool.take(32))
    hX, _ = data(pool.take(4, avoid=(spec.target,)))
    perm = rng.permutation(36)
    stealthy = Contribution(
        "poison-stealthy", "poisoner", "poison-stealthy",
        np.concatenate([sX, spec.trigger(hX)])[perm],
        np.concatenate([sy, np.full(4, spec.target, np.int64)])[perm],
        f"4 triggered examples labelled {spec.target} hidden in 32 clean ones",
    )  # fmt: skip

    early = honest("early", 50, "clean, first of an equal pair", "early-late")
    h80 = honest("honest-80", 80)
    h40 = honest("honest-40", 40)
    h20 = honest("honest-20", 20)
    rX, ry = data(rare_idx)
    rare = Contribution("rare-classes", "honest", "rare-classes", rX, ry,
                        f"40 examples of the rare classes {spec.rare}")  # fmt: skip
    sybils = [
        honest(
            f"sybil-honest-{i + 1}", syb_size, "a part of one honest contributor", "sybil-honest"
        )
        for i in range(n_syb)
    ]
    twin = honest("honest-merged", syb_size * n_syb, "the Sybil's size, merged", "sybil-honest")
    pend = honest("honest-pending", 40, "copied while pending")
    late = honest("late", 50, "clean, last of an equal pair", "early-late")

    def copier(name: str, orig: Contribution, s: float | None, rows: range | None = None,
               account: str | None = None, note: str = "") -> Contribution:  # fmt: skip
        r = np.arange(len(orig.y)) if rows is None else np.array(rows)
        Xc = orig.X[r] * 0.9 if s is None else jitter(orig.X[r], s)
        return Contribution(name, "copier", account or name, Xc.astype(np.float32),
                            orig.y[r].copy(), note or f"{orig.name}, jitter {s}",
                            copied=((orig.name, tuple(int(i) for i in r)),))  # fmt: skip

    mix_a = copier("x", h80, 0.02, range(20))
    mix_b = copier("x", h40, 0.02, range(20))
    mix = Contribution("copy-mix", "copier", "copy-mix", np.concatenate([mix_a.X, mix_b.X]),
                       np.concatenate([mix_a.y, mix_b.y]),
                       "20 of honest-80 and 20 of honest-40, jitter 0.02",
                       copied=mix_a.copied + mix_b.copied)  # fmt: skip

    one = [
        early,
        h80,
        careless("careless-10", 0.10, 40),
        h40,
        copier("copy-j0.002", h80, 0.002),
        careless("careless-25", 0.25, 40),
        targeted,
        h20,
        copier("copy-j0.02", h40, 0.02),
        backdoor,
        copier("copy-j0.05", h80, 0.05),
        rare,
        copier("copy-x0.9", early, None, note="early's examples, brightness x0.9"),
        careless("careless-40", 0.40, 40),
        stealthy,
        *sybils,
        twin,
        mix,
    ]
    batches: list[list[Contribution]] = [[c] for c in one]
    # A copy of a proposal still pending, and two overlapping copies sent at once.
    batches.append([pend, copier("copy-pending", pend, 0.002, note="honest-pending while pending")])
    batches.append([
        copier("copy-overlap-a", h40, 0.02, range(0, 30), "copy-overlap",
               "honest-40 rows 0-29, jitter 0.02, sent with -b"),
        copier("copy-overlap-b", h40, 0.02, range(10, 40), "copy-overlap",
               "honest-40 rows 10-39, jitter 0.02, sent with -a"),
    ])  # fmt: skip
    batches += [[c] for c in sybil_poison] + [[sybil_poison_twin], [late]]
    return Cast(spec, *data(initial), *data(val), *data(test), batches=batches)
