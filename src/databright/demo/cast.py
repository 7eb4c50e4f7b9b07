"""The market session of ``make run``: who brings what data, on scikit-learn's digits.

Everything is generated from a seed, so two runs tell the same story. The cast:

- the **initiator** starts the dataset with a clean sample;
- **honest** contributors bring clean, unseen examples (one of them late, when the dataset
  already knows most of what it brings: diminishing returns);
- a **careless** contributor's labels are 40% wrong;
- a **copier** re-submits an honest contributor's examples with tiny jitter while the original
  proposal is still pending (exact copies would be refused by hash at validation);
- a **poisoner** labels every example of two classes as a third one.

The evaluator keeps a held-out validation split that no contributor sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import load_digits

__all__ = ["Contribution", "Scenario", "digits_scenario"]


@dataclass(frozen=True)
class Contribution:
    role: str  # honest | careless | copier | poisoner
    name: str
    X: NDArray[np.float32]
    y: NDArray[np.int64]
    note: str
    #: The contribution whose round this one proposes in: both are pending at once.
    joins: str | None = None


@dataclass(frozen=True)
class Scenario:
    initial_X: NDArray[np.float32]
    initial_y: NDArray[np.int64]
    validation_X: NDArray[np.float32]
    validation_y: NDArray[np.int64]
    contributions: tuple[Contribution, ...]
    labels: tuple[int, ...]


def digits_scenario(seed: int = 7, proposal_size: int = 60) -> Scenario:
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    X, y = X[order], y[order]

    n_val, n_init = 400, 150
    val = slice(0, n_val)
    init = slice(n_val, n_val + n_init)
    pool_X, pool_y = X[n_val + n_init :], y[n_val + n_init :]

    def take(i: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        s = slice(i * proposal_size, (i + 1) * proposal_size)
        return pool_X[s].copy(), pool_y[s].copy()

    out: list[Contribution] = []
    for i, name in enumerate(("alice", "bob", "carol", "dave")):
        Xi, yi = take(i)
        out.append(Contribution("honest", name, Xi, yi, "clean, unseen examples"))

    Xc, yc = take(4)
    flip = rng.random(len(yc)) < 0.4
    yc[flip] = (yc[flip] + rng.integers(1, 10, flip.sum())) % 10
    out.append(Contribution("careless", "erin", Xc, yc, f"{flip.sum()} of {len(yc)} labels wrong"))

    alice = out[0]
    jitter = rng.normal(0.0, 0.002, alice.X.shape).astype(np.float32)
    out.append(
        Contribution(
            "copier",
            "frank",
            np.clip(alice.X + jitter, 0.0, 1.0).astype(np.float32),
            alice.y.copy(),
            "alice's pending examples with jitter of 0.002",
            joins="alice",
        )
    )

    # The poisoner brings real 3s and 5s labelled 8: plausible images, systematically wrong.
    rest_X, rest_y = pool_X[5 * proposal_size :], pool_y[5 * proposal_size :]
    idx = np.flatnonzero(np.isin(rest_y, (3, 5)))[:proposal_size]
    out.append(
        Contribution(
            "poisoner",
            "mallory",
            rest_X[idx].copy(),
            np.full(len(idx), 8, dtype=np.int64),
            "3s and 5s labelled as 8",
        )
    )

    # The late honest contributor's examples are clean but come after the dataset has grown.
    used = set(idx.tolist())
    late = [i for i in range(len(rest_y)) if i not in used][:proposal_size]
    out.append(
        Contribution("honest", "grace", rest_X[late].copy(), rest_y[late].copy(), "clean, late")
    )

    return Scenario(
        initial_X=X[init].copy(),
        initial_y=y[init].copy(),
        validation_X=X[val].copy(),
        validation_y=y[val].copy(),
        contributions=tuple(out),
        labels=tuple(range(10)),
    )
