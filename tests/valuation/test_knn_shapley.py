from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.neighbors import KNeighborsClassifier
from valuation_helpers import exact_shapley, knn_utility

from databright.errors import ValuationError
from databright.valuation import (
    CopyPolicy,
    KNNShapley,
    Utility,
    ValuationData,
    knn_shapley_values,
)


def _tiny(seed: int, n: int, m: int, classes: int = 2):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, 2)),
        rng.integers(0, classes, n),
        rng.normal(size=(m, 2)),
        rng.integers(0, classes, m),
    )


@pytest.mark.parametrize(
    ("seed", "n", "k"), [(0, 5, 1), (1, 6, 2), (2, 7, 3), (3, 6, 6), (4, 4, 5)]
)
def test_equals_brute_force_shapley_of_knn_utility(seed: int, n: int, k: int) -> None:
    x, y, xv, yv = _tiny(seed, n, 4, classes=3)
    values, *_ = knn_shapley_values(x, y, xv, yv, k)
    expected = exact_shapley(n, knn_utility(x, y, xv, yv, k))
    np.testing.assert_allclose(values, expected, atol=1e-6)


def test_batches_do_not_change_values() -> None:
    x, y, xv, yv = _tiny(5, 40, 33)
    a = knn_shapley_values(x, y, xv, yv, 3, batch_size=4)
    b = knn_shapley_values(x, y, xv, yv, 3, batch_size=1000)
    for u, v in zip(a[:4], b[:4], strict=True):
        np.testing.assert_allclose(u, v, atol=1e-7)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 30), m=st.integers(1, 10), k=st.integers(1, 8))
def test_efficiency_values_add_up_to_total_gain(seed: int, n: int, m: int, k: int) -> None:
    x, y, xv, yv = _tiny(seed, n, m)
    values, _, groups, _, _ = knn_shapley_values(x, y, xv, yv, k)
    u = knn_utility(x, y, xv, yv, k)
    total = u(frozenset(range(n))) - u(frozenset())
    assert values.sum() == pytest.approx(total, abs=1e-6)
    assert groups.sum() == pytest.approx(total, abs=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 25), k=st.integers(1, 6))
def test_symmetry_twins_get_equal_values(seed: int, n: int, k: int) -> None:
    # a twin at a tiny offset with the same label is interchangeable with the original
    x, y, xv, yv = _tiny(seed, n, 6)
    x = np.vstack([x, x[:1] + 1e-7])
    y = np.concatenate([y, y[:1]])
    values, *_ = knn_shapley_values(x, y, xv, yv, k)
    assert values[0] == pytest.approx(values[-1], abs=1e-6)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 25), k=st.integers(1, 6))
def test_null_player_is_worth_nothing(seed: int, n: int, k: int) -> None:
    # farther than everything from every validation point, with a label none of them has:
    # it never displaces a neighbour and never counts as correct
    x, y, xv, yv = _tiny(seed, n, 6)
    x = np.vstack([x, [[1e3, 1e3]]])
    y = np.concatenate([y, [7]])
    values, *_ = knn_shapley_values(x, y, xv, yv, k)
    assert values[-1] == pytest.approx(0.0, abs=1e-9)


def test_method_values_per_example_and_proposal(noisy_blobs) -> None:
    x, y, prop, xv, yv, bad = noisy_blobs
    result = (
        KNNShapley(Utility(KNeighborsClassifier(5), xv, yv)).fit(ValuationData(x, y, prop)).result
    )
    assert result.method == "knn_shapley"
    assert np.all(result.values[bad] < np.median(result.values))
    assert result.ranking()[-1] == 2
    sums = np.bincount(prop, weights=result.values)
    np.testing.assert_allclose(result.proposal_values, sums, atol=1e-9)
    assert result.proposal_values.sum() == pytest.approx(result.total_gain)
    assert np.all(result.stderr >= 0) and np.all(result.proposal_stderr > 0)


def test_k_taken_from_the_model_and_checked() -> None:
    u = Utility(KNeighborsClassifier(7), np.zeros((2, 2)), [0, 1])
    assert KNNShapley(u).k == 7
    with pytest.raises(ValuationError):
        KNNShapley(u, k=0)


def test_torch_embedding_is_used() -> None:
    x, y, xv, yv = _tiny(3, 30, 12)
    ident = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        ident.weight.copy_(torch.eye(2))
    data = ValuationData(x, y, np.arange(30) // 5)
    u = Utility(KNeighborsClassifier(3), xv, yv)
    raw = KNNShapley(u, flags=False).fit(data).result
    emb = KNNShapley(u, embedding=ident, flags=False).fit(data).result
    np.testing.assert_allclose(raw.values, emb.values, atol=1e-6)
    squash = KNNShapley(
        u, embedding=lambda a: a[:, :1], flags=False, copy_policy=CopyPolicy(enabled=False)
    ).fit(data)
    squash = squash.result
    expected, *_ = knn_shapley_values(x[:, :1], y, xv[:, :1], yv, 3)
    np.testing.assert_allclose(squash.values, expected, atol=1e-7)


def test_result_is_immutable(noisy_blobs) -> None:
    x, y, prop, xv, yv, _ = noisy_blobs
    result = (
        KNNShapley(Utility(KNeighborsClassifier(5), xv, yv)).fit(ValuationData(x, y, prop)).result
    )
    with pytest.raises(ValueError):
        result.values[0] = 1.0
    with pytest.raises(AttributeError):
        result.method = "x"  # type: ignore[misc]


def test_no_result_before_fit() -> None:
    u = Utility(KNeighborsClassifier(5), np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValuationError, match="fit"):
        _ = KNNShapley(u).result
