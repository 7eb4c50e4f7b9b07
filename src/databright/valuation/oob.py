"""Data-OOB (Kwon and Zou, 2023): how often the models that never saw an example get it right.

A bagged ensemble is fitted on bootstrap samples; an example's value is the mean score
(accuracy by default) of the members whose bootstrap left it out. Values lie in [0, 1] for
accuracy; a proposal's value is the sum over its examples, like the other example-level
methods.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.errors import ValuationError
from databright.ml import fresh
from databright.valuation.base import Valuation, _Estimate
from databright.valuation.data import ValuationData
from databright.valuation.dedup import CopyPolicy
from databright.valuation.flags import FlagPolicy
from databright.valuation.utility import Utility

__all__ = ["DataOOB"]


class DataOOB(Valuation):
    """Out-of-bag values from a bagged ensemble.

    Args:
        utility: its model is the ensemble's member unless ``base`` is given (a decision tree
            is the usual, cheap choice); validation data are used for flags only.
        n_estimators: ensemble size.
        max_samples: bootstrap size as a fraction of the examples.
        seed: bootstrap seed.
    """

    name = "data_oob"
    _signed = False

    def __init__(
        self,
        utility: Utility,
        *,
        base: Any = None,
        n_estimators: int = 100,
        max_samples: float = 1.0,
        seed: int | None = 0,
        copy_policy: CopyPolicy | None = None,
        flags: bool = True,
        flag_policy: FlagPolicy | None = None,
    ) -> None:
        super().__init__(utility, copy_policy=copy_policy, flags=flags, flag_policy=flag_policy)
        if n_estimators < 2:
            raise ValuationError("Data-OOB needs at least two ensemble members")
        if not 0 < max_samples <= 1:
            raise ValuationError("max_samples must lie in (0, 1]")
        self.base = utility.model if base is None else base
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.seed = seed

    def _estimate(self, data: ValuationData, kept: NDArray[np.bool_]) -> _Estimate:
        x = data.x[kept]
        y = data.y[kept]
        n = len(y)
        rng = np.random.default_rng(self.seed)
        size = max(1, round(self.max_samples * n))
        hits = np.zeros(n)
        hits_sq = np.zeros(n)
        seen = np.zeros(n)
        for _ in range(self.n_estimators):
            boot = rng.integers(0, n, size)
            oob = np.ones(n, np.bool_)
            oob[boot] = False
            if not oob.any():
                continue
            try:
                model = fresh(self.base).fit(x[boot], y[boot])
            except ValueError:
                continue  # a bootstrap with one class; the others carry the estimate
            score = (model.predict(x[oob]) == y[oob]).astype(np.float64)
            hits[oob] += score
            hits_sq[oob] += score * score
            seen[oob] += 1
        if not (seen > 0).any():
            raise ValuationError("no ensemble member could be fitted; the data may hold one class")
        counts = np.maximum(seen, 1)
        values = hits / counts
        var = np.maximum(hits_sq / counts - values * values, 0.0)
        stderr = np.sqrt(var / np.maximum(seen - 1, 1))
        values[seen == 0] = 0.0
        player = data.player[kept]
        n_prop = len(data.arrival)
        pv = np.bincount(player, weights=values, minlength=n_prop).astype(np.float64)
        ps = np.sqrt(
            np.bincount(player, weights=stderr * stderr, minlength=n_prop).astype(np.float64)
        )
        return _Estimate(
            proposal_values=pv,
            proposal_stderr=ps,
            values=values,
            stderr=stderr,
            n_samples=self.n_estimators,
        )
