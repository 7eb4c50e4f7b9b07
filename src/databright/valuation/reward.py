"""The evaluator's score of one proposal: which examples are paid, which count against it.

A market simulation (30 contributors, voters following the score) showed what a per-example
average misses: a 90%-clean batch carries its bad examples through, a class the validation set
barely covers hides wrong labels, and every contributor is paid alike however late it comes.
So the score is built example by example. Each example of the proposal gets one status:

* ``copy`` - it copies an earlier example (accepted, or of an earlier pending proposal, or an
  earlier row of its own; see :func:`~databright.valuation.dedup.match_copies`): worth 0;
* ``out_of_distribution`` - farther from every trusted example (validation and accepted data)
  than ``far_factor`` times the validation set's own 99th-percentile nearest distance;
  counted against the batch;
* ``contradicted`` - at most ``contradicted`` of its ``k`` nearest trusted examples share its
  label (votes class-balanced: each neighbour counts ``1 / trusted examples of its class``) (or its label is no class of the validation data): counted against the batch;
* ``doubtful`` - fewer than ``doubtful`` of them share it: not paid, not counted against;
* ``paid`` - the rest: paid their value (KNN-Shapley, class-balanced, relative to the average
  accepted example; a harmful example's value is negative and counts as such).

Then, with ``n`` the proposal's examples, ``v_i`` the paid values relative to the average
accepted example, ``b`` the examples counted against it, ``P`` the penalty, ``c`` the prior
examples and ``premium = 1 + n_initial / n_accepted`` (diminishing returns: 2 while the data is
as small as the initial sample, tending to 1 as it grows):

    score_bps = round(10000 * premium * (sum(v_i) - P * b) / (n + c))

``c`` zero-valued phantom examples per proposal make splitting one batch into many small ones
(Sybils) never pay more than sending it whole, and shrink the score of tiny, noisy batches.
Clean data is contradicted too, at a rate that depends on its class (a class the trusted
data barely covers is contradicted more): ``b`` counts the out-of-distribution examples and
only the contradicted ones beyond that rate, measured on the trusted data themselves (each
class's examples checked against the others). Flags fire only beyond what clean data shows:
mislabelled when more examples are contradicted than that rate explains (two standard
deviations and one example of slack), poisoning when the excess is a share ``poison_share``
of the proposal or when contradicted examples pile onto one label (a targeted attack or a
backdoor).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.errors import ValuationError
from databright.valuation._neighbours import knearest, row_hashes
from databright.valuation.data import ProposalKey
from databright.valuation.dedup import CopyReference, Matches
from databright.valuation.result import Flag, FlagKind

__all__ = ["ExampleVerdict", "Reward", "RewardPolicy", "reward"]

STATUSES = ("paid", "doubtful", "contradicted", "out_of_distribution", "copy")


@dataclass(frozen=True)
class RewardPolicy:
    """Settings of :func:`reward` (see the module docstring for the formula)."""

    k: int = 10
    """Trusted neighbours of the label check."""
    doubtful: float = 0.2
    contradicted: float = 0.2
    balance: float = 1.0
    """Neighbour votes weigh ``(trusted examples of their class) ** -balance``: 1 is fully
    class-balanced, 0 a plain vote."""
    penalty: float = 8.0
    """Average accepted examples each example counted against the batch costs it."""
    far_factor: float = 1.5
    prior_examples: float = 4.0
    near_tol: float = 0.45
    """Near-copy distance as a fraction of the validation set's spacing."""
    early_premium: bool = True
    poison_share: float = 0.15
    targeted_min: int = 3

    def __post_init__(self) -> None:
        if self.k < 1 or self.penalty < 0 or self.prior_examples < 0 or self.far_factor <= 0:
            raise ValuationError("k >= 1, penalty >= 0, prior_examples >= 0, far_factor > 0")
        if not 0 <= self.contradicted <= self.doubtful <= 1:
            raise ValuationError("need 0 <= contradicted <= doubtful <= 1")


@dataclass(frozen=True)
class ExampleVerdict:
    row: int
    status: str
    value: float | None
    """Value relative to the average accepted example (paid and doubtful examples)."""
    agree: float | None
    """Share of the trusted neighbours that share its label."""
    reason: str
    original: ProposalKey | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "status": self.status,
            "value": None if self.value is None else round(self.value, 6),
            "agree": None if self.agree is None else round(self.agree, 4),
            "reason": self.reason,
            "original": self.original,
        }


@dataclass(frozen=True)
class Reward:
    score_bps: int
    premium: float
    paid_value: float
    against: float
    """Examples counted against the proposal: out of distribution, plus contradicted beyond
    what clean data of their classes shows."""
    expected_contradicted: float
    examples: tuple[ExampleVerdict, ...]
    flags: tuple[Flag, ...]
    policy: RewardPolicy

    def counts(self) -> dict[str, int]:
        return {s: sum(e.status == s for e in self.examples) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        p = self.policy
        return {
            "score_bps": self.score_bps,
            "formula": (
                "round(10000 * premium * (sum(value of paid examples) - penalty * examples "
                "counted against) / (examples + prior_examples)); values relative to the "
                "average accepted example"
            ),
            "premium": round(self.premium, 6),
            "paid_value": round(self.paid_value, 6),
            "counted_against": round(self.against, 4),
            "contradicted_in_clean_data": round(self.expected_contradicted, 4),
            "penalty": p.penalty,
            "prior_examples": p.prior_examples,
            "counts": self.counts(),
            "examples": [e.to_dict() for e in self.examples],
        }


def _trusted_agreement(
    q: NDArray[np.float64],
    labels: NDArray[Any],
    sets: Sequence[tuple[NDArray[np.float64], NDArray[Any]]],
    k: int,
    balance: float = 1.0,
    skip_self: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Distance to the nearest trusted row, and the class-balanced share of the ``k`` nearest
    trusted rows (over several sets) that carry each query's label: each neighbour votes
    ``(trusted rows of its class) ** -balance``, so a class the trusted data barely covers is
    not outvoted just for being thin."""
    ds, ls = [], []
    kk = k + int(skip_self)
    for x, y in sets:
        if len(x):
            d, i = knearest(q, x, kk)
            ds.append(d)
            ls.append(np.asarray(y)[i])
    d = np.concatenate(ds, axis=1)
    lab = np.concatenate(ls, axis=1)
    order = np.argsort(d, axis=1, kind="stable")[:, int(skip_self) : kk]
    d = np.take_along_axis(d, order, axis=1)
    lab = np.take_along_axis(lab, order, axis=1)
    classes, counts = np.unique(
        np.concatenate([np.asarray(y) for _, y in sets]), return_counts=True
    )
    pos = np.clip(np.searchsorted(classes, lab), 0, len(classes) - 1)
    w = counts[pos] ** -balance
    agree = (w * (lab == labels[:, None])).sum(axis=1) / w.sum(axis=1)
    return d[:, 0], agree


_RATES: OrderedDict[bytes, dict[Any, float]] = OrderedDict()
_RATE_ROWS = 24
"""Trusted rows per class whose own label check measures what clean data shows."""


def _class_rates(
    sets: Sequence[tuple[NDArray[np.float64], NDArray[Any]]], p: RewardPolicy
) -> dict[Any, float]:
    """Per class, how often a trusted example (validation or accepted) is itself
    contradicted by its nearest other trusted examples: what clean data of that class shows
    under this check (high for a class the trusted data barely covers). Up to 24 evenly
    spaced rows per class, so ``24 x classes x N`` work; remembered per trusted set."""
    h = hashlib.blake2b(f"{p.k}|{p.contradicted}|{p.balance}".encode(), digest_size=20)
    for x, y in sets:
        h.update(row_hashes(x).tobytes())
        h.update(np.asarray(y).astype(str).tobytes())
    key = h.digest()
    if key in _RATES:
        _RATES.move_to_end(key)
        return _RATES[key]
    xs = np.concatenate([np.asarray(x, np.float64) for x, _ in sets if len(x)])
    ys = np.concatenate([np.asarray(y) for x, y in sets if len(x)])
    rates: dict[Any, float] = {}
    picks = []
    for c in np.unique(ys):
        rows = np.flatnonzero(ys == c)
        picks.append(
            rows[
                np.unique(np.linspace(0, len(rows) - 1, min(len(rows), _RATE_ROWS)).astype(np.intp))
            ]
        )
    pick = np.concatenate(picks)
    _, agree = _trusted_agreement(xs[pick], ys[pick], sets, p.k, p.balance, skip_self=True)
    for c in np.unique(ys):
        mine = ys[pick] == c
        rates[c.item() if hasattr(c, "item") else c] = float(np.mean(agree[mine] <= p.contradicted))
    _RATES[key] = rates
    while len(_RATES) > 16:
        _RATES.popitem(last=False)
    return rates


def reward(
    new_x: NDArray[np.float64],
    new_y: NDArray[Any],
    *,
    key: ProposalKey,
    matches: Matches,
    owner: Sequence[ProposalKey],
    values: NDArray[np.float64],
    reference: float,
    x_val: NDArray[np.float64],
    y_val: NDArray[Any],
    accepted_x: NDArray[np.float64],
    accepted_y: NDArray[Any],
    copy_reference: CopyReference,
    n_initial: int,
    policy: RewardPolicy | None = None,
) -> Reward:
    """Score one proposal (see the module docstring).

    ``values`` holds the value of each new example that is no copy (in row order), ``owner``
    the proposal of each row of ``[earlier; new]`` that ``matches`` refers to, ``reference``
    the average value of an accepted example and ``n_initial`` the size of the dataset's
    initial sample (the premium's scale).
    """
    p = policy or RewardPolicy()
    new_x = np.asarray(new_x, np.float64)
    new_y = np.asarray(new_y)
    n = len(new_y)
    kept = ~matches.mask
    if len(values) != int(kept.sum()):
        raise ValuationError("values must hold one value per new example that is no copy")
    rel = np.zeros(n)
    rel[kept] = np.asarray(values, np.float64) / reference
    agree = np.full(n, np.nan)
    nearest = np.full(n, np.nan)
    rows = np.flatnonzero(kept)
    if len(rows):
        nearest[rows], agree[rows] = _trusted_agreement(
            new_x[rows], new_y[rows], [(x_val, y_val), (accepted_x, accepted_y)], p.k, p.balance
        )
    known = np.isin(new_y, np.asarray(y_val))
    far_limit = p.far_factor * copy_reference.far
    status = np.full(n, "paid", dtype=object)
    status[kept & (agree < p.doubtful)] = "doubtful"
    status[kept & ((agree <= p.contradicted) | ~known)] = "contradicted"
    status[kept & (nearest > far_limit)] = "out_of_distribution"
    status[~kept] = "copy"
    paid = status == "paid"
    # clean data is contradicted too, at its class's rate: only the excess counts against
    trusted = [(x_val, y_val), (accepted_x, accepted_y)]
    rates = _class_rates(trusted, p) if len(rows) else {}
    expected = float(
        sum(rates.get(v.item() if hasattr(v, "item") else v, 0.0) for v in new_y[rows])
    )
    n_contra = int(np.count_nonzero(status == "contradicted"))
    n_far = int(np.count_nonzero(status == "out_of_distribution"))
    against = max(0.0, n_contra - expected) + n_far
    n_accepted = len(accepted_y)
    premium = 1.0 + n_initial / n_accepted if p.early_premium and n_accepted > 0 else 1.0
    paid_value = float(rel[paid].sum())
    raw = BPS * premium * (paid_value - p.penalty * against) / (n + p.prior_examples)
    score = round(raw) if math.isfinite(raw) else 0

    verdicts = []
    for i in range(n):
        st = str(status[i])
        a = None if np.isnan(agree[i]) else float(agree[i])
        orig = None
        if st == "copy":
            orig = owner[int(matches.original[i])]
            how = {"exact": "exactly", "near": f"within {matches.threshold:.3g}"}.get(
                matches.how[i], "up to brightness (same direction)"
            )
            reason = f"copies an example of {orig!r} {how}: worth 0"
        elif st == "out_of_distribution":
            reason = f"{nearest[i]:.3g} from every trusted example (limit {far_limit:.3g}): counted against"
        elif st == "contradicted":
            reason = (
                f"{100 * (a or 0.0):.0f}% of its {p.k} nearest trusted examples share its label: "
                "counted against"
                if known[i]
                else "its label is no class of the validation data: counted against"
            )
        elif st == "doubtful":
            reason = f"only {100 * (a or 0.0):.0f}% of its {p.k} nearest trusted examples share its label: not paid"
        else:
            reason = "paid its value"
        v = float(rel[i]) if st in ("paid", "doubtful") else None
        verdicts.append(ExampleVerdict(i, st, v, a, reason, orig))

    flags = _flags(key, status, new_y, matches, owner, expected, p, far_limit)
    return Reward(score, premium, paid_value, against, expected, tuple(verdicts), flags, p)


BPS = 10_000


def _flags(
    key: ProposalKey,
    status: NDArray[Any],
    y: NDArray[Any],
    matches: Matches,
    owner: Sequence[ProposalKey],
    expected: float,
    p: RewardPolicy,
    far_limit: float,
) -> tuple[Flag, ...]:
    n = len(y)
    out: list[Flag] = []
    groups: dict[tuple[ProposalKey, bool], list[int]] = {}
    for i in np.flatnonzero(matches.mask).tolist():
        o = owner[int(matches.original[i])]
        groups.setdefault((o, matches.how[i] == "exact"), []).append(i)
    for (o, exact), rows in groups.items():
        if not exact and len(rows) < max(3, 0.1 * n):
            continue  # a stray near match or two happens to clean data too (still worth 0)
        out.append(
            Flag(
                FlagKind.DUPLICATE if exact else FlagKind.NEAR_DUPLICATE,
                key,
                tuple(rows),
                f"{len(rows)} examples copy {'earlier rows of this proposal' if o == key else repr(o)}"
                f"{' exactly' if exact else ' nearly'}, so they are worth zero.",
                original=o,
            )
        )
    contra = np.flatnonzero(status == "contradicted")
    n_kept = int(np.count_nonzero(status != "copy"))
    rate = expected / max(n_kept, 1)
    slack = expected + 2.0 * math.sqrt(n_kept * rate * (1.0 - rate)) + 1.0
    if len(contra) > slack:
        out.append(
            Flag(
                FlagKind.MISLABELLED,
                key,
                tuple(contra.tolist()),
                f"{len(contra)} of {n_kept} examples have labels their nearest trusted examples "
                f"contradict (clean data of these classes would show about {expected:.1f}).",
            )
        )
    if len(contra) >= 2 and len(contra) - expected >= p.poison_share * max(n_kept, 1):
        out.append(
            Flag(
                FlagKind.POISONING,
                key,
                tuple(contra.tolist()),
                f"{100 * len(contra) / max(n_kept, 1):.0f}% of its examples contradict their "
                "nearest trusted examples: they are counted against it.",
            )
        )
    elif len(contra) >= p.targeted_min:
        labels, counts = np.unique(y[contra], return_counts=True)
        top = int(np.argmax(counts))
        if counts[top] >= p.targeted_min and counts[top] >= 2 * len(contra) / 3:
            out.append(
                Flag(
                    FlagKind.POISONING,
                    key,
                    tuple(contra[y[contra] == labels[top]].tolist()),
                    f"{int(counts[top])} examples are labelled {labels[top]!s} against their "
                    "nearest trusted examples: a targeted relabelling or a backdoor.",
                )
            )
    far = np.flatnonzero(status == "out_of_distribution")
    if len(far) >= 2 or (n and len(far) >= 0.1 * n):
        out.append(
            Flag(
                FlagKind.OUT_OF_DISTRIBUTION,
                key,
                tuple(far.tolist()),
                f"{len(far)} examples lie farther than {far_limit:.3g} from every trusted example "
                f"({p.far_factor:g}x the validation data's 99th-percentile spacing).",
            )
        )
    return tuple(out)
