"""Copying a proposal must not pay: copy + original <= 1.1x the original alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from databright.errors import ValuationError
from databright.valuation import (
    CopyPolicy,
    DataOOB,
    FlagKind,
    KNNShapley,
    MaxSamples,
    MSRBanzhaf,
    TMCShapley,
    Utility,
    ValuationData,
    find_copies,
)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))[:700]
    x = StandardScaler().fit_transform(x[idx])
    y = y[idx]
    prop = np.repeat(np.arange(20), 25)
    return x[:500], y[:500], prop, x[500:], y[500:]


def _with_copy(x, y, prop, original: int, jitter: float, seed: int = 1):
    rows = prop == original
    noise = jitter * np.random.default_rng(seed).standard_normal((rows.sum(), x.shape[1]))
    return ValuationData(
        np.vstack([x, x[rows] + noise]),
        np.concatenate([y, y[rows]]),
        np.concatenate([prop, np.full(rows.sum(), 1000)]),
    )


@pytest.mark.parametrize("jitter", [0.0, 0.02, 0.06])
@pytest.mark.parametrize("method", ["knn", "tmc", "msr", "oob"])
def test_copy_ratio_at_most_1_1(digits, method: str, jitter: float) -> None:
    x, y, prop, xv, yv = digits

    def value(data: ValuationData, dedup: bool = True) -> dict:
        copies = CopyPolicy(enabled=dedup)
        if method == "knn":
            m = KNNShapley(
                Utility(KNeighborsClassifier(5), xv, yv), copy_policy=copies, flags=False
            )
        elif method == "tmc":
            u = Utility(RidgeClassifier(), xv, yv, scorer="margin")
            m = TMCShapley(u, stopping=MaxSamples(32), copy_policy=copies, flags=False)
        elif method == "msr":
            u = Utility(RidgeClassifier(), xv, yv, scorer="margin")
            m = MSRBanzhaf(u, stopping=MaxSamples(256), copy_policy=copies, flags=False)
        else:
            m = DataOOB(
                Utility(RidgeClassifier(), xv, yv), n_estimators=20, copy_policy=copies, flags=False
            )
        r = m.fit(data).result
        return {p: r.value_of(p) for p in r.proposals}

    alone = value(ValuationData(x, y, prop))[3]
    both = value(_with_copy(x, y, prop, 3, jitter))
    assert (both[3] + both[1000]) / alone <= 1.1
    assert both[1000] == 0.0
    if method == "knn":  # and without the rule copying pays
        naive = value(_with_copy(x, y, prop, 3, jitter), dedup=False)
        assert (naive[3] + naive[1000]) / alone > 1.4


def test_copies_are_flagged_with_their_original(digits) -> None:
    x, y, prop, xv, yv = digits
    for jitter, kind in [(0.0, FlagKind.DUPLICATE), (0.05, FlagKind.NEAR_DUPLICATE)]:
        data = _with_copy(x, y, prop, 3, jitter)
        result = KNNShapley(Utility(KNeighborsClassifier(5), xv, yv)).fit(data).result
        flags = [f for f in result.flags_for(1000) if f.kind is kind]
        assert len(flags) == 1
        assert flags[0].original == 3
        assert set(flags[0].examples) == set(range(500, 525))
        assert "valued at zero" in flags[0].reason
        assert result.copies.sum() == 25
        assert not result.flags_for(3) or all(
            f.kind not in (FlagKind.DUPLICATE, FlagKind.NEAR_DUPLICATE) for f in result.flags_for(3)
        )


def test_earliest_proposal_keeps_the_value_by_arrival() -> None:
    x = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 0.0]])
    data = ValuationData(x, [0, 1, 0], ["b", "b", "a"], arrival=["a", "b"])
    copies = find_copies(data, near_tol=0)
    assert copies.original.tolist() == [2, -1, -1]  # "a" arrived first: row 0 copies row 2
    flags = copies.flags(data)
    assert flags[0].proposal == "b" and flags[0].original == "a"


def test_relabelled_exact_copy_is_a_copy_but_not_a_near_copy() -> None:
    x = np.array([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0], [10.001, 0.0], [20.0, 0.0]])
    data = ValuationData(x, [0, 1, 0, 1, 0], [0, 1, 0, 1, 1])
    copies = find_copies(data, scale=1.0)
    assert copies.original.tolist() == [-1, 0, -1, -1, -1]
    assert "different label" in copies.flags(data)[0].reason


def test_within_proposal_repeats_and_distinct_data() -> None:
    x = np.vstack([np.eye(4), np.eye(4)[:1]])
    data = ValuationData(x, [0, 1, 2, 3, 0], [0, 0, 0, 0, 0])
    copies = find_copies(data)
    assert copies.original.tolist() == [-1, -1, -1, -1, 0]
    assert "same proposal" in copies.flags(data)[0].reason
    clean = ValuationData(
        np.random.default_rng(0).normal(size=(200, 20)), np.zeros(200), np.arange(200) // 10
    )
    assert not find_copies(clean).mask.any()


def test_all_copies_cannot_be_valued() -> None:
    with pytest.raises(ValuationError):
        find_copies(ValuationData(np.zeros((2, 2)), [0, 0], [0, 1]), near_tol=-1)


def test_copy_policy_defaults_and_checks() -> None:
    assert CopyPolicy() == CopyPolicy(enabled=True, near_tol=0.2)
    with pytest.raises(ValuationError):
        CopyPolicy(near_tol=-0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        CopyPolicy().near_tol = 0.5  # type: ignore[misc]
    with pytest.raises(ValuationError, match="CopyPolicy"):
        KNNShapley(Utility(KNeighborsClassifier(1), [[0.0]], [0]), copy_policy=False)  # type: ignore[arg-type]


def test_copy_policy_finds_what_it_is_told_to(digits) -> None:
    x, y, prop, _, _ = digits
    exact = _with_copy(x, y, prop, 3, 0.0)
    jittered = _with_copy(x, y, prop, 3, 0.05)
    assert CopyPolicy().find(jittered).mask.sum() == 25
    assert CopyPolicy(near_tol=0).find(exact).mask.sum() == 25
    assert not CopyPolicy(near_tol=0).find(jittered).mask.any()  # exact copies only
    off = CopyPolicy(enabled=False).find(exact)
    assert not off.mask.any() and off.threshold == 0.0
    np.testing.assert_array_equal(
        CopyPolicy().find(jittered).original, find_copies(jittered, near_tol=0.2).original
    )


def test_methods_apply_their_copy_policy(digits) -> None:
    x, y, prop, xv, yv = digits
    data = _with_copy(x, y, prop, 3, 0.05)
    u = Utility(KNeighborsClassifier(5), xv, yv)
    default = KNNShapley(u, flags=False).fit(data).result
    explicit = KNNShapley(u, copy_policy=CopyPolicy(True, 0.2), flags=False).fit(data).result
    np.testing.assert_array_equal(default.values, explicit.values)
    assert default.copies.sum() == 25
    exact_only = KNNShapley(u, copy_policy=CopyPolicy(near_tol=0), flags=False).fit(data).result
    assert not exact_only.copies.any() and exact_only.value_of(1000) > 0
