"""Shapley and Banzhaf values with proposals as players, estimated by sampling.

Valuing tens of proposals instead of thousands of examples, with a utility whose coalition
values are cached, or computed exactly and in batches for ridge and k-nearest-neighbour
classifiers (see :mod:`databright.valuation.fast_games`), is what makes these fast. Both draw
samples (permutations or subsets) in batches of ``batch_size`` until their ``stopping``
criterion says stop (see :mod:`databright.valuation.stopping`; by default
``MaxSamples(1000)``); it is checked after each batch, a batch never overshoots a sample budget
(with antithetic pairs a count is rounded up to an even number), and the result is converged
when a converged verdict (e.g. :class:`~databright.valuation.stopping.StandardErrorBelow`)
ended the sampling.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import NDArray

from databright.errors import ValuationError
from databright.valuation.base import Valuation, _Estimate
from databright.valuation.data import ValuationData
from databright.valuation.dedup import CopyPolicy
from databright.valuation.flags import FlagPolicy
from databright.valuation.games import Game, proposal_game
from databright.valuation.stopping import MaxSamples, Progress, StoppingCriterion, Verdict
from databright.valuation.utility import Utility

__all__ = ["DEFAULT_STOPPING", "MSRBanzhaf", "TMCShapley"]

DEFAULT_STOPPING: StoppingCriterion = MaxSamples(1000)


def _game(
    utility: Utility, data: ValuationData, kept: NDArray[np.bool_]
) -> tuple[Game, NDArray[np.intp]]:
    """The game over proposals that still have examples, and which proposals those are.

    Proposals made only of copies are left out altogether, so adding a copy changes neither
    the game nor the random stream: the original's estimate is exactly what it was.
    """
    active, player = np.unique(data.player[kept], return_inverse=True)
    game = proposal_game(utility, data.x[kept], data.y[kept], player.astype(np.intp), len(active))
    return game, active.astype(np.intp)


def _spread(n: int, active: NDArray[np.intp], est: _Estimate) -> _Estimate:
    values = np.zeros(n)
    stderr = np.zeros(n)
    values[active] = est.proposal_values
    stderr[active] = est.proposal_stderr
    est.proposal_values, est.proposal_stderr = values, stderr
    return est


class _Sampled(Valuation):
    def __init__(
        self,
        utility: Utility,
        *,
        stopping: StoppingCriterion | None = None,
        seed: int | None = 0,
        copy_policy: CopyPolicy | None = None,
        flags: bool = True,
        flag_policy: FlagPolicy | None = None,
    ) -> None:
        super().__init__(utility, copy_policy=copy_policy, flags=flags, flag_policy=flag_policy)
        if stopping is None:
            stopping = DEFAULT_STOPPING
        if not isinstance(stopping, StoppingCriterion):
            raise ValuationError("stopping must be a StoppingCriterion, e.g. MaxSamples(1000)")
        if not stopping.bounded:
            raise ValuationError(
                f"{stopping!r} may never stop; add a budget with |, e.g. | MaxSamples(1000)"
            )
        self.stopping = stopping
        self.seed = seed

    def _room(self, count: int, batch: int) -> int:
        """How many of a batch of samples the sample budget still allows."""
        budget = self.stopping.sample_budget
        return batch if budget is None else min(batch, budget - count)

    def _check(self, count: int, stderr: NDArray[np.float64], start: float) -> Verdict:
        return self.stopping.check(Progress(count, stderr, time.process_time() - start))


class TMCShapley(_Sampled):
    """Truncated Monte-Carlo Shapley values of proposals (Ghorbani and Zou, 2019).

    Each sample is a random order of the proposals; a proposal's marginal contribution is the
    change in utility when it joins those before it. Once a prefix scores within
    ``truncation_rtol`` of the full coalition (after ``burn_in`` of the proposals), the rest of
    the permutation is taken to add nothing. ``antithetic`` pairs each permutation with its
    reverse, which lowers the variance for free. With ``truncation_rtol=0`` the values add up
    exactly to u(N) - u(empty) (efficiency).
    """

    name = "tmc_shapley"

    def __init__(
        self,
        utility: Utility,
        *,
        truncation_rtol: float = 0.0,
        burn_in: float = 0.4,
        antithetic: bool = True,
        batch_size: int = 32,
        stopping: StoppingCriterion | None = None,
        seed: int | None = 0,
        copy_policy: CopyPolicy | None = None,
        flags: bool = True,
        flag_policy: FlagPolicy | None = None,
    ) -> None:
        super().__init__(
            utility,
            stopping=stopping,
            seed=seed,
            copy_policy=copy_policy,
            flags=flags,
            flag_policy=flag_policy,
        )
        if truncation_rtol < 0 or not 0 <= burn_in <= 1:
            raise ValuationError("truncation_rtol must be >= 0 and burn_in within [0, 1]")
        self.truncation_rtol = truncation_rtol
        self.burn_in = burn_in
        self.antithetic = antithetic
        self.batch_size = max(1, batch_size)

    def _marginals(self, game: Game, orders: NDArray[np.intp], grand: float) -> NDArray[np.float64]:
        """Marginal contributions (b, n) of every player along each order."""
        b, n = orders.shape
        rows = np.arange(b)[:, None]
        tol = self.truncation_rtol * abs(grand)
        if tol > 0:
            util = np.empty((b, n))
            burn = int(np.ceil(self.burn_in * n))
            for i, order in enumerate(orders):
                prev = game.default
                for t, u in enumerate(game.walk(order)):
                    util[i, t] = prev = u
                    if t + 1 >= burn and abs(u - grand) <= tol:
                        util[i, t:] = prev  # the rest is taken to add nothing
                        break
        else:
            util = game.walk_many(orders)
        steps = np.diff(util, axis=1, prepend=game.default)
        marg = np.empty((b, n))
        marg[rows, orders] = steps
        return marg

    def _estimate(self, data: ValuationData, kept: NDArray[np.bool_]) -> _Estimate:
        start = time.process_time()
        game, active = _game(self.utility, data, kept)
        n = game.n_players
        rng = np.random.default_rng(self.seed)
        grand = game.grand
        total = np.zeros(n)
        # the error comes from independent draws: single permutations or antithetic pairs
        draw_sum = np.zeros(n)
        draw_sq = np.zeros(n)
        draws = 0
        count = 0
        stderr = np.full(n, np.inf)
        per_draw = 2 if self.antithetic else 1
        while True:
            k = max(1, self._room(count, self.batch_size) // per_draw)
            orders = np.stack([rng.permutation(n) for _ in range(k)])
            if self.antithetic:
                orders = np.concatenate([orders, orders[:, ::-1]])
            marg = self._marginals(game, orders, grand)
            total += marg.sum(axis=0)
            count += len(orders)
            draw = (marg[:k] + marg[k:]) / 2 if self.antithetic else marg
            draw_sum += draw.sum(axis=0)
            draw_sq += (draw * draw).sum(axis=0)
            draws += k
            if draws > 1:
                mean = draw_sum / draws
                var = np.maximum(draw_sq / draws - mean * mean, 0.0)
                stderr = np.sqrt(var / (draws - 1))
            verdict = self._check(count, stderr, start)
            if verdict.stop:
                break
        stderr = np.where(np.isfinite(stderr), stderr, 0.0)
        est = _Estimate(
            proposal_values=total / count,
            proposal_stderr=stderr,
            converged=verdict is Verdict.CONVERGED,
            n_samples=count,
            total_gain=grand - game.default,
        )
        return _spread(len(data.arrival), active, est)


class MSRBanzhaf(_Sampled):
    """Banzhaf values of proposals by Maximum Sample Reuse (Wang and Jia, 2023).

    Each sample is a random coalition (every proposal in with probability 1/2); its utility
    updates every player: value = mean u(S) over samples containing the proposal minus the mean
    over samples without it.
    """

    name = "msr_banzhaf"

    def _estimate(self, data: ValuationData, kept: NDArray[np.bool_]) -> _Estimate:
        start = time.process_time()
        game, active = _game(self.utility, data, kept)
        n = game.n_players
        rng = np.random.default_rng(self.seed)
        sums = np.zeros((2, n))
        sq = np.zeros((2, n))
        cnt = np.zeros((2, n))
        count = 0
        stderr = np.full(n, np.inf)
        batch = 32
        while True:
            k = max(1, self._room(count, batch))
            members = rng.random((k, n)) < 0.5
            u = game.many(members)
            inside = members.astype(np.float64)
            outside = 1.0 - inside
            sums[1] += u @ inside
            sums[0] += u @ outside
            sq[1] += (u * u) @ inside
            sq[0] += (u * u) @ outside
            cnt[1] += inside.sum(axis=0)
            cnt[0] += outside.sum(axis=0)
            count += k
            c = np.maximum(cnt, 1)
            mean = sums / c
            var = np.maximum(sq / c - mean * mean, 0.0) / np.maximum(cnt - 1, 1)
            stderr = np.where(cnt.min(axis=0) >= 2, np.sqrt(var.sum(axis=0)), np.inf)
            verdict = self._check(count, stderr, start)
            if verdict.stop:
                break
        c = np.maximum(cnt, 1)
        values = sums[1] / c[1] - sums[0] / c[0]
        stderr = np.where(np.isfinite(stderr), stderr, 0.0)
        est = _Estimate(
            proposal_values=values,
            proposal_stderr=stderr,
            converged=verdict is Verdict.CONVERGED,
            n_samples=count,
            total_gain=game.grand - game.default,
        )
        return _spread(len(data.arrival), active, est)
