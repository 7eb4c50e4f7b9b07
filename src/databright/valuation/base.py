"""What every valuation method shares: copy removal, flagging and building the result."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Self

import numpy as np
from numpy.typing import NDArray

from databright.errors import ValuationError
from databright.valuation.data import ValuationData
from databright.valuation.dedup import CopyPolicy
from databright.valuation.flags import FlagPolicy, detect_flags
from databright.valuation.result import ValuationResult
from databright.valuation.utility import Utility

__all__ = ["Valuation"]


@dataclass
class _Estimate:
    """What a method computes on the kept (non-copy) examples."""

    proposal_values: NDArray[np.float64]
    proposal_stderr: NDArray[np.float64]
    values: NDArray[np.float64] | None = None
    """Per kept example, for methods that value examples; else spread from proposals."""
    stderr: NDArray[np.float64] | None = None
    converged: bool = True
    n_samples: int = 0
    total_gain: float = float("nan")
    val_d2: NDArray[np.float32] | None = None
    """Squared distances (kept examples x validation points), when the method has them."""


class Valuation(ABC):
    """A valuation method built from a utility; ``fit(data)`` returns self, then read ``result``.

    Args:
        utility: model + scorer + validation data.
        copy_policy: whether exact and near copies of earlier examples are left out and valued
            at zero, and how near a near copy is (default ``CopyPolicy()``: on, ``near_tol``
            0.2; see :mod:`databright.valuation.dedup`).
        flags: compute flags (mislabelled, poisoning, duplicates, out of distribution).
        flag_policy: thresholds for the flags.
    """

    name: str = "valuation"
    _signed: bool = True
    """Whether a negative example value means harm (used by the flags)."""

    def __init__(
        self,
        utility: Utility,
        *,
        copy_policy: CopyPolicy | None = None,
        flags: bool = True,
        flag_policy: FlagPolicy | None = None,
    ) -> None:
        if not isinstance(utility, Utility):
            raise ValuationError("a valuation method is built from a databright Utility")
        if copy_policy is None:
            copy_policy = CopyPolicy()
        if not isinstance(copy_policy, CopyPolicy):
            raise ValuationError("copy_policy must be a CopyPolicy")
        self.utility = utility
        self.copy_policy = copy_policy
        self.flags = flags
        self.flag_policy = flag_policy or FlagPolicy()
        self._result: ValuationResult | None = None

    @property
    def result(self) -> ValuationResult:
        if self._result is None:
            raise ValuationError(f"{type(self).__name__} has no result yet; call fit(data) first")
        return self._result

    @abstractmethod
    def _estimate(self, data: ValuationData, kept: NDArray[np.bool_]) -> _Estimate: ...

    def fit(self, data: ValuationData) -> Self:
        if not isinstance(data, ValuationData):
            raise ValuationError("fit takes a ValuationData (examples with their proposal ids)")
        start = time.process_time()
        copies = self.copy_policy.find(data)
        kept = ~copies.mask
        if not kept.any():
            raise ValuationError("every example is a copy; there is nothing to value")
        est = self._estimate(data, kept)
        n_prop = len(data.arrival)
        # proposals made only of copies are not in the game: exactly zero, not a noisy zero
        empty = np.bincount(data.player[kept], minlength=n_prop) == 0
        est.proposal_values = np.where(empty, 0.0, est.proposal_values)
        est.proposal_stderr = np.where(empty, 0.0, est.proposal_stderr)
        values = np.zeros(data.n)
        stderr = np.zeros(data.n)
        if est.values is not None:
            values[kept] = est.values
            stderr[kept] = est.stderr if est.stderr is not None else 0.0
        else:
            kept_sizes = np.bincount(data.player[kept], minlength=n_prop)
            share = 1.0 / np.maximum(kept_sizes, 1)
            values[kept] = (est.proposal_values * share)[data.player[kept]]
            stderr[kept] = (est.proposal_stderr * share)[data.player[kept]]
        flags = copies.flags(data) if self.flags else ()
        if self.flags:
            flags += detect_flags(
                data,
                kept,
                self.utility.x_val,
                self.utility.y_val,
                est.proposal_values,
                est.proposal_stderr,
                values if est.values is not None and self._signed else None,
                self.flag_policy,
                est.val_d2,
            )
        self._result = ValuationResult(
            method=self.name,
            values=values,
            stderr=stderr,
            proposals=data.arrival,
            proposal_values=est.proposal_values,
            proposal_stderr=est.proposal_stderr,
            proposal_sizes=data.sizes,
            copies=copies.mask,
            player=data.player,
            flags=flags,
            converged=est.converged,
            n_samples=est.n_samples,
            seconds=time.process_time() - start,
            total_gain=est.total_gain,
        )
        return self
