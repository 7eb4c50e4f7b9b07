from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.neighbors import KNeighborsClassifier
from valuation_helpers import blobs, exact_banzhaf, exact_shapley

from databright.errors import ValuationError
from databright.valuation import (
    CopyPolicy,
    MaxSamples,
    MaxTime,
    MinSamples,
    MSRBanzhaf,
    StandardErrorBelow,
    TMCShapley,
    Utility,
    ValuationData,
    proposal_game,
)

NO_COPY_CHECK = CopyPolicy(enabled=False)


def _game_fn(utility: Utility, data: ValuationData):
    game = proposal_game(utility, data.x, data.y, data.player, len(data.arrival))

    def u(s: frozenset[int]) -> float:
        mask = np.zeros(len(data.arrival), bool)
        mask[list(s)] = True
        return game(mask)

    return game, u


def _small(seed: int, n_prop: int = 5):
    x, y, prop, xv, yv = blobs(seed, n_prop=n_prop, size=6, n_val=60, d=3)
    return ValuationData(x, y, prop), xv, yv


def test_brute_force_enumerator_on_a_textbook_game() -> None:
    # glove game: player 0 holds a left glove, 1 and 2 right gloves; a pair is worth 1
    def u(s: frozenset[int]) -> float:
        return float(0 in s and (1 in s or 2 in s))

    np.testing.assert_allclose(exact_shapley(3, u), [2 / 3, 1 / 6, 1 / 6])
    np.testing.assert_allclose(exact_banzhaf(3, u), [3 / 4, 1 / 4, 1 / 4])


@pytest.mark.parametrize("scorer", ["accuracy", "margin"])
@pytest.mark.parametrize(
    ("model", "game"),
    [(RidgeClassifier(alpha=0.5), "_RidgeGame"), (KNeighborsClassifier(4), "_KNNGame")],
)
def test_fast_paths_equal_refitting_sklearn(scorer: str, model, game: str) -> None:
    data, xv, yv = _small(1, n_prop=6)
    fast = Utility(model, xv, yv, scorer=scorer)
    slow = Utility(model, xv, yv, scorer=scorer, fast=False)
    game_fast, _ = _game_fn(fast, data)
    game_slow, _ = _game_fn(slow, data)
    assert type(game_fast).__name__ == game
    assert type(game_slow).__name__ == "_ModelGame"
    rng = np.random.default_rng(0)
    masks = [m for m in rng.random((40, 6)) < 0.5 if len(np.unique(data.y[m[data.player]])) >= 2]
    for mask in masks:
        assert game_fast(mask) == pytest.approx(game_slow(mask), abs=1e-5)
    np.testing.assert_allclose(
        game_fast.many(np.array(masks)), [game_slow(m) for m in masks], atol=1e-5
    )
    order = rng.permutation(6)
    np.testing.assert_allclose(
        game_fast.walk_many(order[None])[0], list(game_slow.walk(order)), atol=1e-5
    )
    assert game_fast(np.zeros(6, bool)) == fast.default_score


def test_knn_fast_path_scores_default_below_k_examples() -> None:
    data, xv, yv = _small(2, n_prop=3)  # proposals of 6 examples
    game, _ = _game_fn(Utility(KNeighborsClassifier(8), xv, yv, default_score=-0.5), data)
    assert game(np.array([True, False, False])) == -0.5
    assert game(np.array([True, True, False])) > -0.5


def test_tmc_matches_exact_shapley_over_proposals() -> None:
    data, xv, yv = _small(2)
    utility = Utility(RidgeClassifier(), xv, yv, scorer="margin")
    _, u = _game_fn(utility, data)
    exact = exact_shapley(5, u)
    result = (
        TMCShapley(
            utility, stopping=MaxSamples(3000), seed=1, copy_policy=NO_COPY_CHECK, flags=False
        )
        .fit(data)
        .result
    )
    np.testing.assert_allclose(
        result.proposal_values, exact, atol=4 * result.proposal_stderr.max() + 1e-3
    )
    assert result.n_samples == 3000


def test_msr_matches_exact_banzhaf_over_proposals() -> None:
    data, xv, yv = _small(3)
    utility = Utility(RidgeClassifier(), xv, yv, scorer="margin")
    _, u = _game_fn(utility, data)
    exact = exact_banzhaf(5, u)
    result = (
        MSRBanzhaf(
            utility, stopping=MaxSamples(6000), seed=1, copy_policy=NO_COPY_CHECK, flags=False
        )
        .fit(data)
        .result
    )
    np.testing.assert_allclose(
        result.proposal_values, exact, atol=4 * result.proposal_stderr.max() + 1e-3
    )


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n_prop=st.integers(2, 6), samples=st.integers(1, 40))
def test_tmc_efficiency(seed: int, n_prop: int, samples: int) -> None:
    data, xv, yv = _small(seed, n_prop)
    utility = Utility(RidgeClassifier(), xv, yv, scorer="margin")
    result = (
        TMCShapley(utility, stopping=MaxSamples(samples), seed=seed, flags=False).fit(data).result
    )
    assert result.proposal_values.sum() == pytest.approx(result.total_gain, abs=1e-9)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_symmetric_proposals_get_equal_exact_values(seed: int) -> None:
    # two proposals with the same examples are interchangeable: the game is symmetric in them
    x, y, prop, xv, yv = blobs(seed, n_prop=4, size=5, n_val=40, d=3)
    twin = prop == 0
    data = ValuationData(
        np.vstack([x, x[twin]]), np.concatenate([y, y[twin]]), np.concatenate([prop, np.full(5, 9)])
    )
    _, u = _game_fn(Utility(RidgeClassifier(), xv, yv, scorer="margin"), data)
    for values in (exact_shapley(5, u), exact_banzhaf(5, u)):
        assert values[0] == pytest.approx(values[-1], abs=1e-9)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), antithetic=st.booleans())
def test_null_proposal_gets_zero(seed: int, antithetic: bool) -> None:
    # a proposal with no examples left (all copies) changes no coalition's utility
    data, xv, yv = _small(seed, 4)
    copy_rows = data.player == 1
    both = ValuationData(
        np.vstack([data.x, data.x[copy_rows]]),
        np.concatenate([data.y, data.y[copy_rows]]),
        np.concatenate([data.proposal, np.full(copy_rows.sum(), 99)]),
    )
    utility = Utility(RidgeClassifier(), xv, yv, scorer="margin")
    for method in (
        TMCShapley(utility, stopping=MaxSamples(20), seed=seed, antithetic=antithetic, flags=False),
        MSRBanzhaf(utility, stopping=MaxSamples(64), seed=seed, flags=False),
    ):
        assert method.fit(both).result.value_of(99) == 0.0


@pytest.mark.parametrize("model", [RidgeClassifier(), KNeighborsClassifier(5)])
def test_noisy_proposal_ranks_last(noisy_blobs, model) -> None:
    x, y, prop, xv, yv, _ = noisy_blobs
    utility = Utility(model, xv, yv, scorer="margin")
    data = ValuationData(x, y, prop)
    for method in (
        TMCShapley(utility, stopping=MaxSamples(64)),
        MSRBanzhaf(utility, stopping=MaxSamples(512)),
    ):
        result = method.fit(data).result
        assert result.ranking()[-1] == 2
        assert result.value_of(2) < 0


def test_stops_on_stderr_target_and_on_time() -> None:
    data, xv, yv = _small(4)
    utility = Utility(RidgeClassifier(), xv, yv, scorer="margin")
    loose = (
        TMCShapley(utility, stopping=StandardErrorBelow(0.05) & MinSamples(10) | MaxSamples(5000))
        .fit(data)
        .result
    )
    assert loose.converged and loose.n_samples < 5000
    assert loose.proposal_stderr.max() <= 0.05
    quick = (
        MSRBanzhaf(
            utility,
            stopping=StandardErrorBelow(1e-9) & MinSamples(30) | MaxTime(0.05) | MaxSamples(10**7),
        )
        .fit(data)
        .result
    )
    assert not quick.converged and quick.n_samples < 10**7


def test_generic_models_use_the_cached_refit_game() -> None:
    data, xv, yv = _small(5, 4)
    utility = Utility(LogisticRegression(max_iter=200), xv, yv)
    method = TMCShapley(utility, stopping=MaxSamples(8), flags=False)
    result = method.fit(data).result
    assert result.proposal_values.sum() == pytest.approx(result.total_gain)
    game, _ = _game_fn(utility, data)
    assert game(np.ones(4, bool)) == game(np.ones(4, bool))
    assert len(game.cache) == 1  # type: ignore[attr-defined]


def test_bad_arguments() -> None:
    utility = Utility(RidgeClassifier(), np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValuationError):
        TMCShapley(utility, stopping=MaxSamples(0))
    with pytest.raises(ValuationError):
        TMCShapley(utility, truncation_rtol=-1)
    with pytest.raises(ValuationError):
        MSRBanzhaf(utility, stopping=StandardErrorBelow(0))
    with pytest.raises(ValuationError):
        MSRBanzhaf(utility, stopping=MaxTime(-1))


def test_truncation_still_ranks_the_noisy_proposal_last(noisy_blobs) -> None:
    x, y, prop, xv, yv, _ = noisy_blobs
    utility = Utility(RidgeClassifier(), xv, yv)
    result = (
        TMCShapley(utility, truncation_rtol=0.01, stopping=MaxSamples(64))
        .fit(ValuationData(x, y, prop))
        .result
    )
    assert result.ranking()[-1] == 2
