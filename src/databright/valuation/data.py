"""Training examples grouped into proposals, the input of every valuation method."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from databright.errors import ValuationError

__all__ = ["ProposalKey", "ValuationData"]

ProposalKey = int | str
"""A proposal's id: the on-chain integer id, or any string a caller uses for it."""


def _frozen(a: NDArray[Any]) -> NDArray[Any]:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _key(v: Any) -> ProposalKey:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise ValuationError(f"proposal ids must be int or str, got {type(v).__name__}: {v!r}")
    return v


@dataclass(frozen=True, eq=False)
class ValuationData:
    """Labelled training examples, each belonging to one proposal (a contributor's batch).

    ``arrival`` lists the proposals in the order they were submitted; it decides which of two
    copies is the original. Left empty, proposals arrive in order of their first example.
    """

    x: NDArray[Any]
    y: NDArray[Any]
    proposal: NDArray[Any]
    arrival: tuple[ProposalKey, ...] = ()
    player: NDArray[np.intp] = field(init=False, repr=False)
    """Index into :attr:`proposals` of each example's proposal."""

    def __init__(
        self,
        x: ArrayLike,
        y: ArrayLike,
        proposal: ArrayLike,
        arrival: Sequence[ProposalKey] = (),
    ) -> None:
        xa = np.asarray(x)
        if xa.ndim == 1:
            xa = xa[:, None]
        if xa.ndim != 2:
            raise ValuationError(f"x must be a 2-D array of examples, got shape {xa.shape}")
        ya = np.asarray(y)
        pa = np.asarray(proposal)
        if ya.ndim != 1 or pa.ndim != 1:
            raise ValuationError("y and proposal must be 1-D arrays, one entry per example")
        if not (len(xa) == len(ya) == len(pa)):
            raise ValuationError(
                f"x, y and proposal must have one row per example, got {len(xa)}, {len(ya)}, {len(pa)}"
            )
        if len(xa) == 0:
            raise ValuationError("there are no examples to value")
        if not np.issubdtype(xa.dtype, np.number):
            raise ValuationError("x must be numeric")
        if not np.all(np.isfinite(xa)):
            raise ValuationError("x contains NaN or infinite values; clean or impute them first")
        keys = [_key(v) for v in pa.tolist()]
        first_seen = list(dict.fromkeys(keys))
        order = tuple(_key(v) for v in arrival) if arrival else tuple(first_seen)
        if len(set(order)) != len(order):
            raise ValuationError("arrival lists a proposal twice")
        seen = set(first_seen)
        missing = seen - set(order)
        if missing:
            raise ValuationError(f"arrival does not list proposals {sorted(map(str, missing))}")
        order = tuple(k for k in order if k in seen)
        index = {k: i for i, k in enumerate(order)}
        object.__setattr__(self, "x", _frozen(xa.astype(np.float64, copy=False)))
        object.__setattr__(self, "y", _frozen(ya))
        object.__setattr__(self, "proposal", _frozen(pa))
        object.__setattr__(self, "arrival", order)
        object.__setattr__(
            self, "player", _frozen(np.fromiter((index[k] for k in keys), np.intp, len(keys)))
        )

    @property
    def n(self) -> int:
        """Number of examples."""
        return len(self.y)

    @property
    def proposals(self) -> tuple[ProposalKey, ...]:
        """Proposal ids in order of arrival (the players of proposal-level games)."""
        return self.arrival

    @property
    def sizes(self) -> NDArray[np.intp]:
        """Number of examples of each proposal, in order of arrival."""
        return np.bincount(self.player, minlength=len(self.arrival))

    @property
    def classes(self) -> NDArray[Any]:
        """Sorted distinct labels."""
        return np.unique(self.y)

    def rank(self) -> NDArray[np.intp]:
        """Position of each example in submission order (by proposal, then by row)."""
        order = np.lexsort((np.arange(self.n), self.player))
        rank = np.empty(self.n, np.intp)
        rank[order] = np.arange(self.n)
        return rank
