"""When a sampling method (TMC-Shapley, MSR Banzhaf) stops drawing samples.

A stopping criterion looks at the :class:`Progress` of an estimate after each batch of samples
and gives a :class:`Verdict`: go on, stop because the estimate is good enough (converged), or
stop because a budget is spent. Criteria are small, immutable and composable:

* ``a | b`` stops as soon as either stops;
* ``a & b`` stops only once both would.

So ``StandardErrorBelow(0.01) & MinSamples(30) | MaxSamples(1000) | MaxTime(60)`` reads "stop
once every proposal's standard error is at most 0.01 after at least 30 samples, or after 1000
samples, or after a minute of CPU time, whichever comes first" (``&`` binds tighter than
``|``, as in Python). A stop is *converged* when a converged verdict decides it, so the result
says whether the target was met or the budget ran out.

Criteria hold no state: time is counted from the start of each estimate, so one criterion can
serve any number of methods and fits.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from databright.errors import ValuationError

__all__ = [
    "MaxSamples",
    "MaxTime",
    "MinSamples",
    "Progress",
    "StandardErrorBelow",
    "StoppingCriterion",
    "Verdict",
]


class Verdict(enum.IntEnum):
    """What a criterion says, ordered so that ``|`` keeps the larger and ``&`` the smaller."""

    CONTINUE = 0
    OUT_OF_BUDGET = 1
    """Stop: a sample or time budget is spent before the estimate is known to be good."""
    CONVERGED = 2
    """Stop: the estimate is as good as asked (or, for :class:`MinSamples`, may stop)."""

    @property
    def stop(self) -> bool:
        return self is not Verdict.CONTINUE


@dataclass(frozen=True, eq=False)
class Progress:
    """Where an estimate stands after a batch of samples."""

    samples: int
    """Permutations (TMC-Shapley) or coalitions (MSR Banzhaf) drawn so far."""
    stderr: NDArray[np.float64]
    """Standard error of each proposal's value (inf while it cannot be estimated yet)."""
    seconds: float
    """CPU seconds since the estimate began."""


class StoppingCriterion(ABC):
    """Decides from the :class:`Progress` of an estimate whether to stop; compose with | and &."""

    @abstractmethod
    def check(self, progress: Progress) -> Verdict: ...

    def __call__(self, progress: Progress) -> Verdict:
        return self.check(progress)

    @property
    def sample_budget(self) -> int | None:
        """The most samples this criterion lets a method draw (None: no sample limit)."""
        return None

    @property
    def bounded(self) -> bool:
        """Whether it is sure to stop at some point, whatever the standard errors do."""
        return False

    def __or__(self, other: StoppingCriterion) -> StoppingCriterion:
        if not isinstance(other, StoppingCriterion):
            return NotImplemented
        return _AnyOf((*_parts(self, _AnyOf), *_parts(other, _AnyOf)))

    def __and__(self, other: StoppingCriterion) -> StoppingCriterion:
        if not isinstance(other, StoppingCriterion):
            return NotImplemented
        return _AllOf((*_parts(self, _AllOf), *_parts(other, _AllOf)))


@dataclass(frozen=True)
class MaxSamples(StoppingCriterion):
    """Stop (out of budget) once ``n`` samples are drawn."""

    n: int

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValuationError("MaxSamples needs at least 1 sample")

    def check(self, progress: Progress) -> Verdict:
        return Verdict.OUT_OF_BUDGET if progress.samples >= self.n else Verdict.CONTINUE

    @property
    def sample_budget(self) -> int | None:
        return self.n

    @property
    def bounded(self) -> bool:
        return True


@dataclass(frozen=True)
class MinSamples(StoppingCriterion):
    """Allow a stop only once ``n`` samples are drawn: combine with ``&``.

    On its own it stops (converged) at ``n`` samples.
    """

    n: int

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValuationError("MinSamples needs at least 1 sample")

    def check(self, progress: Progress) -> Verdict:
        return Verdict.CONVERGED if progress.samples >= self.n else Verdict.CONTINUE


@dataclass(frozen=True)
class MaxTime(StoppingCriterion):
    """Stop (out of budget) after ``seconds`` of CPU time, checked after each batch."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValuationError("MaxTime needs a positive number of seconds")

    def check(self, progress: Progress) -> Verdict:
        return Verdict.OUT_OF_BUDGET if progress.seconds >= self.seconds else Verdict.CONTINUE

    @property
    def bounded(self) -> bool:
        return True


@dataclass(frozen=True)
class StandardErrorBelow(StoppingCriterion):
    """Stop (converged) once every proposal's standard error is at most ``threshold``."""

    threshold: float

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ValuationError("StandardErrorBelow needs a positive threshold")

    def check(self, progress: Progress) -> Verdict:
        done = bool(np.all(progress.stderr <= self.threshold))
        return Verdict.CONVERGED if done else Verdict.CONTINUE


@dataclass(frozen=True)
class _AnyOf(StoppingCriterion):
    """Stops when any part stops; converged when a converged part decides it."""

    parts: tuple[StoppingCriterion, ...]

    def check(self, progress: Progress) -> Verdict:
        return max(p.check(progress) for p in self.parts)

    @property
    def sample_budget(self) -> int | None:
        budgets = [b for p in self.parts if (b := p.sample_budget) is not None]
        return min(budgets) if budgets else None

    @property
    def bounded(self) -> bool:
        return any(p.bounded for p in self.parts)

    def __repr__(self) -> str:
        return " | ".join(_wrapped(p, _AllOf) for p in self.parts)


@dataclass(frozen=True)
class _AllOf(StoppingCriterion):
    """Stops when every part would; converged only when every part is."""

    parts: tuple[StoppingCriterion, ...]

    def check(self, progress: Progress) -> Verdict:
        return min(p.check(progress) for p in self.parts)

    @property
    def sample_budget(self) -> int | None:
        budgets = [p.sample_budget for p in self.parts]
        if any(b is None for b in budgets):
            return None
        return max(b for b in budgets if b is not None)

    @property
    def bounded(self) -> bool:
        return all(p.bounded for p in self.parts)

    def __repr__(self) -> str:
        return " & ".join(_wrapped(p, _AnyOf) for p in self.parts)


def _parts(c: StoppingCriterion, kind: type) -> tuple[StoppingCriterion, ...]:
    """``a | b | c`` is one flat _AnyOf of three, not nested pairs (same for &)."""
    return c.parts if isinstance(c, _AnyOf | _AllOf) and type(c) is kind else (c,)


def _wrapped(c: StoppingCriterion, kind: type) -> str:
    return f"({c!r})" if type(c) is kind else repr(c)
