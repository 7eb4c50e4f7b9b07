"""Immutable results of a valuation, and the flags raised on suspicious proposals."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.errors import ValuationError
from databright.valuation.data import ProposalKey

__all__ = ["Flag", "FlagKind", "ValuationResult"]


class FlagKind(enum.StrEnum):
    """Why a proposal (or some of its examples) looks wrong."""

    MISLABELLED = "mislabelled"
    POISONING = "poisoning"
    DUPLICATE = "duplicate"
    NEAR_DUPLICATE = "near_duplicate"
    OUT_OF_DISTRIBUTION = "out_of_distribution"


@dataclass(frozen=True)
class Flag:
    """A warning about some examples of one proposal, with a one-sentence reason."""

    kind: FlagKind
    proposal: ProposalKey
    examples: tuple[int, ...]
    """Row indices into the valued data."""
    reason: str
    original: ProposalKey | None = None
    """For (near) duplicates: the earliest proposal holding the original examples."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "proposal": self.proposal,
            "examples": list(self.examples),
            "reason": self.reason,
            "original": self.original,
        }


def _ro(a: NDArray[Any]) -> NDArray[Any]:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class ValuationResult:
    """Values per example and per proposal, with standard errors and flags.

    Arrays are read-only copies. For methods whose players are proposals (TMC-Shapley, MSR
    Banzhaf, LOO gain) a proposal's value is spread evenly over its examples that were valued;
    copies detected before valuation are worth exactly zero.
    """

    method: str
    values: NDArray[np.float64]
    """One value per example (row of the data)."""
    stderr: NDArray[np.float64]
    proposals: tuple[ProposalKey, ...]
    """Proposal ids in order of arrival."""
    proposal_values: NDArray[np.float64]
    proposal_stderr: NDArray[np.float64]
    proposal_sizes: NDArray[np.intp]
    """Examples per proposal, copies included."""
    copies: NDArray[np.bool_]
    """True for examples that were found to copy an earlier example and valued at zero."""
    player: NDArray[np.intp]
    """Index into ``proposals`` of each example's proposal."""
    flags: tuple[Flag, ...] = ()
    converged: bool = True
    """False when a sampling method stopped on its time or sample budget before its target."""
    n_samples: int = 0
    """Permutations, subsets, models or validation points the estimate rests on."""
    seconds: float = 0.0
    """CPU seconds spent in ``fit``."""
    total_gain: float = float("nan")
    """u(N) - u(empty set) of the game, when the method has one."""

    def __post_init__(self) -> None:
        n, p = len(self.values), len(self.proposals)
        if len(self.stderr) != n or len(self.copies) != n or len(self.player) != n:
            raise ValuationError("values, stderr and copies must have one entry per example")
        if not (
            len(self.proposal_values) == len(self.proposal_stderr) == len(self.proposal_sizes) == p
        ):
            raise ValuationError("per-proposal arrays must have one entry per proposal")
        for name in (
            "values",
            "stderr",
            "proposal_values",
            "proposal_stderr",
            "proposal_sizes",
            "copies",
            "player",
        ):
            object.__setattr__(self, name, _ro(getattr(self, name)))
        object.__setattr__(self, "flags", tuple(self.flags))
        object.__setattr__(self, "proposals", tuple(self.proposals))

    def _index(self, proposal: ProposalKey) -> int:
        try:
            return self.proposals.index(proposal)
        except ValueError:
            raise ValuationError(f"proposal {proposal!r} is not part of this result") from None

    def value_of(self, proposal: ProposalKey) -> float:
        """Total value of one proposal."""
        return float(self.proposal_values[self._index(proposal)])

    def stderr_of(self, proposal: ProposalKey) -> float:
        return float(self.proposal_stderr[self._index(proposal)])

    def flags_for(self, proposal: ProposalKey) -> tuple[Flag, ...]:
        self._index(proposal)
        return tuple(f for f in self.flags if f.proposal == proposal)

    def ranking(self) -> list[ProposalKey]:
        """Proposals from most to least valuable."""
        order = np.argsort(-self.proposal_values, kind="stable")
        return [self.proposals[i] for i in order]

    def mean_value_per_example(self) -> float:
        """Average value of a valued (non-copy) example: the reference of the basis-point scale."""
        kept = int(np.count_nonzero(~self.copies))
        if kept == 0:
            raise ValuationError("every example is a copy; there is no reference value")
        return float(self.proposal_values.sum() / kept)
