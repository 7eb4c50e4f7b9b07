"""Flags with reasons: likely mislabelled examples, likely poisoning, out-of-distribution data.

Judgements lean on the validation data, the one set the evaluator trusts:

* **mislabelled**: an example whose label disagrees with the majority of its ``k`` nearest
  validation examples and, when the method values examples, whose value is negative or whose
  label at most ``clear_disagreement`` of those neighbours share;
* **poisoning**: a proposal where at least ``poison_share`` of the examples look mislabelled
  (a label-flipped cluster), whose labels are not classes of the validation data
  (out-of-class), or whose value is negative beyond two standard errors (most of its examples
  negative, when examples are valued);
* **out of distribution**: an example farther from every validation example than
  ``ood_factor`` times the 99th percentile of the validation set's own nearest-neighbour
  distances.

Duplicates are flagged by :mod:`databright.valuation.dedup`. With ``scope="newest"`` only the
last proposal to arrive is judged (the evaluator's case: the accepted data were judged when
they were proposals), which costs ``proposal x M`` distances instead of ``N x M``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from databright.errors import ValuationError
from databright.valuation._neighbours import kneighbours, sq32
from databright.valuation.data import ValuationData
from databright.valuation.dedup import SCOPES, Scope
from databright.valuation.result import Flag, FlagKind

__all__ = ["FlagPolicy", "detect_flags"]


@dataclass(frozen=True)
class FlagPolicy:
    """Thresholds of :func:`detect_flags`."""

    k: int = 10
    clear_disagreement: float = 0.2
    """At most this share of neighbours agreeing flags an example whatever its value."""
    poison_share: float = 0.15
    """Recalibrated from 0.3, which missed every proposal with 20% bad examples."""
    ood_factor: float = 1.5
    """Recalibrated from 2.5, under which even uniform-noise digits never fired."""
    scope: Scope = "all"
    """``"all"`` judges every proposal; ``"newest"`` only the last to arrive."""

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValuationError(f"scope must be one of {SCOPES}, got {self.scope!r}")


def _rows(a: NDArray[np.intp]) -> tuple[int, ...]:
    return tuple(int(i) for i in a)


def detect_flags(
    data: ValuationData,
    kept: NDArray[np.bool_],
    x_val: NDArray[np.float64],
    y_val: NDArray[np.generic],
    proposal_values: NDArray[np.float64],
    proposal_stderr: NDArray[np.float64],
    values: NDArray[np.float64] | None = None,
    policy: FlagPolicy | None = None,
    val_d2: NDArray[np.float32] | None = None,
) -> tuple[Flag, ...]:
    """Flags for every proposal; ``values`` are per-example values when the method has them.

    ``val_d2`` may hold the squared distances (kept examples x validation points), already
    computed by the method.
    """
    policy = policy or FlagPolicy()
    flags: list[Flag] = []
    rows = np.flatnonzero(kept)
    if policy.scope == "newest":
        mine = data.player[rows] == len(data.arrival) - 1
        rows = rows[mine]
        if val_d2 is not None:
            val_d2 = val_d2[mine]
    if len(rows) == 0 or len(y_val) == 0:
        return ()
    x = data.x[rows]
    y = data.y[rows]
    k = min(policy.k, len(y_val))
    if val_d2 is not None:
        idx = np.argpartition(val_d2, k - 1, axis=1)[:, :k]
        dist = np.sqrt(np.min(np.take_along_axis(val_d2, idx, axis=1), axis=1, keepdims=True))
    else:
        dist, idx = kneighbours(x, x_val, k)
    neigh = y_val[idx]
    agree = (neigh == y[:, None]).mean(axis=1)
    suspicious = agree < 0.5
    if values is not None:
        suspicious &= (values[rows] < 0) | (agree <= policy.clear_disagreement)
    known = np.isin(y, y_val)

    # the validation set's own spacing, leaving each point out
    if len(y_val) > 1:
        vv = sq32(x_val, x_val)
        np.fill_diagonal(vv, np.inf)
        limit = float(np.sqrt(max(np.quantile(vv.min(axis=1), 0.99), 0.0))) * policy.ood_factor
    else:
        limit = np.inf
    far = dist[:, 0] > limit

    player = data.player[rows]
    for p, pid in enumerate(data.arrival):
        mine = player == p
        n_mine = int(mine.sum())
        if n_mine == 0:
            continue
        bad = mine & suspicious
        n_bad = int(bad.sum())
        if n_bad:
            flags.append(
                Flag(
                    FlagKind.MISLABELLED,
                    pid,
                    _rows(rows[bad]),
                    f"{n_bad} of {n_mine} examples have labels that most of their {k} nearest "
                    "validation examples contradict.",
                )
            )
        alien = mine & ~known
        if alien.any():
            labels = sorted({str(v) for v in y[alien].tolist()})
            flags.append(
                Flag(
                    FlagKind.POISONING,
                    pid,
                    _rows(rows[alien]),
                    f"{int(alien.sum())} examples carry labels ({', '.join(labels[:5])}) that are "
                    "not classes of this dataset (out-of-class).",
                )
            )
        if n_bad >= policy.poison_share * n_mine and n_bad >= 2:
            flags.append(
                Flag(
                    FlagKind.POISONING,
                    pid,
                    _rows(rows[bad]),
                    f"{100 * n_bad / n_mine:.0f}% of its examples contradict their nearest "
                    "validation examples, like a label-flipped cluster.",
                )
            )
        elif proposal_values[p] < 0 and proposal_values[p] + 2 * proposal_stderr[p] < 0:
            if values is None:
                flags.append(
                    Flag(
                        FlagKind.POISONING,
                        pid,
                        _rows(rows[mine]),
                        "Its value is negative by more than two standard errors: adding it makes "
                        "the model worse.",
                    )
                )
            elif np.mean(values[rows[mine]] < 0) >= 0.5:
                neg = mine & (values[rows] < 0)
                flags.append(
                    Flag(
                        FlagKind.POISONING,
                        pid,
                        _rows(rows[neg]),
                        f"{int(neg.sum())} of {n_mine} examples are negatively valued and the "
                        "proposal as a whole makes the model worse.",
                    )
                )
        out = mine & far
        if out.any():
            flags.append(
                Flag(
                    FlagKind.OUT_OF_DISTRIBUTION,
                    pid,
                    _rows(rows[out]),
                    f"{int(out.sum())} examples lie farther from every validation example than "
                    f"{limit:.3g} ({policy.ood_factor:g}x the validation data's own spacing).",
                )
            )
    return tuple(flags)
