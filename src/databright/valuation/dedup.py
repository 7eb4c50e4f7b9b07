"""Finding copied examples: exact duplicates by hash, near duplicates by distance.

The rule (applied by every method before it values anything): examples are taken in
submission order (proposals by arrival, then rows). An example is a **copy** when

* its features equal those of an earlier example exactly (same bytes after normalising
  ``-0.0``), whatever its label (the same input relabelled is a copy too, and a suspicious
  one), or
* it has the same label as an earlier example that is itself no copy, and lies within
  ``near_tol x scale`` of it (Euclidean), where ``scale`` is the median distance from a
  distinct example to its nearest distinct neighbour (over up to 256 evenly spaced examples):
  a typical spacing of the data.

A copy is attributed to the earliest such example; copies are left out of the game and valued
at exactly zero, so the original proposal keeps the value it has without the copy.

The default ``near_tol=0.2`` catches Gaussian jitter of up to about 0.08 of a feature's
standard deviation on standardised data of a few tens of dimensions (digits, breast cancer)
without touching distinct examples there; in two or three dimensions distinct points do come
that close, so lower it or pass ``near_tol=0`` (exact copies only).

Methods take these settings as a :class:`CopyPolicy`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from databright.errors import ValuationError
from databright.valuation._neighbours import typical_spacing, within
from databright.valuation.data import ProposalKey, ValuationData
from databright.valuation.result import Flag, FlagKind

__all__ = ["Copies", "CopyPolicy", "find_copies"]


@dataclass(frozen=True, eq=False)
class Copies:
    """Which examples copy which: ``original[i]`` is -1 for an example kept, else the row of
    the earliest example it copies."""

    original: NDArray[np.intp]
    exact: NDArray[np.bool_]
    threshold: float
    """Distance under which two examples were taken for near copies (0 when not checked)."""

    @classmethod
    def none(cls, n: int) -> Copies:
        """No copies among ``n`` examples (copies not looked for)."""
        return cls(np.full(n, -1, np.intp), np.zeros(n, np.bool_), 0.0)

    @property
    def mask(self) -> NDArray[np.bool_]:
        """True for copies."""
        return self.original >= 0

    def flags(self, data: ValuationData) -> tuple[Flag, ...]:
        """One flag per (copying proposal, original proposal, exact or near)."""
        groups: dict[tuple[int, int, bool], list[int]] = defaultdict(list)
        for i in np.flatnonzero(self.mask).tolist():
            j = int(self.original[i])
            groups[(int(data.player[i]), int(data.player[j]), bool(self.exact[i]))].append(i)
        out: list[Flag] = []
        for (p, o, exact), rows in sorted(groups.items()):
            pid: ProposalKey = data.arrival[p]
            oid: ProposalKey = data.arrival[o]
            relabelled = int(np.count_nonzero(data.y[rows] != data.y[self.original[rows]]))
            where = "earlier examples of the same proposal" if p == o else f"proposal {oid!r}"
            how = "exactly" if exact else f"within distance {self.threshold:.3g}"
            extra = f", {relabelled} of them with a different label" if relabelled else ""
            out.append(
                Flag(
                    kind=FlagKind.DUPLICATE if exact else FlagKind.NEAR_DUPLICATE,
                    proposal=pid,
                    examples=tuple(rows),
                    reason=(
                        f"{len(rows)} examples copy {where} {how}{extra}, "
                        "so they are valued at zero."
                    ),
                    original=oid,
                )
            )
        return tuple(out)


def _exact_groups(x: NDArray[np.float64]) -> NDArray[np.intp]:
    rows = np.ascontiguousarray(x + 0.0)  # -0.0 and 0.0 hash alike
    view = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1])))
    _, inverse = np.unique(view.ravel(), return_inverse=True)
    return inverse.ravel().astype(np.intp)


def find_copies(
    data: ValuationData,
    *,
    near_tol: float = 0.2,
    k_scale: int = 1,
    scale: float | None = None,
) -> Copies:
    """Mark exact and near copies of earlier examples (see the module docstring for the rule).

    ``near_tol=0`` checks exact copies only; ``scale`` overrides the data-derived spacing.
    """
    if near_tol < 0 or k_scale < 1:
        raise ValuationError("near_tol must be >= 0 and k_scale >= 1")
    n = data.n
    rank = data.rank()
    order = np.argsort(rank)
    original = np.full(n, -1, np.intp)
    exact = np.zeros(n, np.bool_)

    group = _exact_groups(data.x)
    first: dict[int, int] = {}
    for i in order.tolist():
        g = int(group[i])
        if g in first:
            original[i] = first[g]
            exact[i] = True
        else:
            first[g] = i

    threshold = 0.0
    kept = np.flatnonzero(original < 0)
    if near_tol > 0 and len(kept) > 1:
        xk = data.x[kept]
        if scale is None:
            scale = typical_spacing(xk, k_scale)
        threshold = near_tol * scale
        if threshold > 0:
            neigh = within(xk, threshold)
            krank = rank[kept]
            ky = data.y[kept]
            alive = np.ones(len(kept), np.bool_)
            for a in np.argsort(krank).tolist():
                cand = neigh[a]
                if len(cand) == 0:
                    continue
                cand = cand[(krank[cand] < krank[a]) & alive[cand] & (ky[cand] == ky[a])]
                if len(cand):
                    b = int(cand[np.argmin(krank[cand])])
                    alive[a] = False
                    original[kept[a]] = kept[b]
        # exact copies of a near copy point at the near copy's own original
        again = exact & (original >= 0)
        idx = np.flatnonzero(again)
        root = original[idx]
        moved = original[root] >= 0
        original[idx[moved]] = original[root[moved]]
        exact[idx[moved]] = False
    return Copies(original=original, exact=exact, threshold=threshold)


@dataclass(frozen=True)
class CopyPolicy:
    """Whether a method leaves copies of earlier examples out (valued at zero), and how near a
    near copy is.

    Args:
        enabled: look for copies; without it copying pays (only for comparisons).
        near_tol: near-copy distance as a fraction of the data's typical spacing (see the
            module docstring); 0 looks for exact copies only.
    """

    enabled: bool = True
    near_tol: float = 0.2

    def __post_init__(self) -> None:
        if not self.near_tol >= 0:
            raise ValuationError("near_tol must be >= 0")

    def find(self, data: ValuationData) -> Copies:
        """The copies in ``data`` under this policy (none when disabled)."""
        if not self.enabled:
            return Copies.none(data.n)
        return find_copies(data, near_tol=self.near_tol)
