"""The evaluator's reward: copies against a fixed reference, example-by-example pay, premium."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits
from valuation_helpers import exact_shapley, knn_utility

from databright.errors import ValuationError
from databright.valuation import (
    CopyReference,
    FlagKind,
    RewardPolicy,
    class_weights,
    knn_shapley_values,
    match_copies,
    reward,
)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    return x[order] / 16.0, y[order]


# ---- class-balanced KNN-Shapley stays exact --------------------------------------------


@pytest.mark.parametrize(("seed", "k"), [(0, 1), (1, 2), (2, 3)])
def test_weighted_validation_is_the_shapley_value_of_the_weighted_utility(seed, k) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(6, 2)), rng.integers(0, 2, 6)
    xv, yv = rng.normal(size=(3, 2)), rng.integers(0, 2, 3)
    # integer weights are repeated validation points
    values, *_ = knn_shapley_values(x, y, xv, yv, k, val_weights=np.array([2.0, 1.0, 1.0]))
    rep = np.array([0, 0, 1, 2])
    expected = exact_shapley(6, knn_utility(x, y, xv[rep], yv[rep], k))
    np.testing.assert_allclose(values, expected, atol=1e-6)
    plain, *_ = knn_shapley_values(x, y, xv, yv, k)
    same, *_ = knn_shapley_values(x, y, xv, yv, k, val_weights=np.full(3, 7.0))
    np.testing.assert_allclose(same, plain, atol=1e-12)


def test_class_weights_weigh_every_class_alike() -> None:
    y = np.array([0, 0, 0, 1, 2, 2])
    w = class_weights(y)
    assert w.mean() == pytest.approx(1.0)
    assert [w[y == c].sum() for c in range(3)] == pytest.approx([2.0, 2.0, 2.0])
    with pytest.raises(ValuationError):
        knn_shapley_values(
            np.zeros((2, 1)), [0, 1], np.zeros((2, 1)), [0, 1], 1, val_weights=np.ones(3)
        )


# ---- copies against a fixed reference --------------------------------------------------


def test_jittered_brightened_and_mixed_copies_are_caught(digits) -> None:
    x, y = digits
    ref = CopyReference.of(x[:300])
    old_x, old_y = x[300:1300], y[300:1300]
    rng = np.random.default_rng(1)
    src = np.arange(40)
    for made, how in [
        (np.clip(old_x[src] + rng.normal(0, 0.05, (40, 64)), 0, 1), {"near", "rescaled"}),
        (old_x[src] * 0.9, {"near", "rescaled"}),
        (old_x[src], {"exact"}),
    ]:
        m = match_copies(made, old_y[src], old_x, old_y, ref)
        assert m.mask.all()
        assert set(m.how) <= how
        assert (m.original == src).mean() > 0.9  # the earliest such example, nearly always its own
    fresh = match_copies(x[1300:1500], y[1300:1500], old_x, old_y, ref)
    assert fresh.mask.mean() < 0.03  # distinct digits are not copies


def test_exact_copy_relabelled_and_repeats_within_the_proposal() -> None:
    ref = CopyReference(spacing=1.0, direction_spacing=0.1, far=5.0)
    old = np.array([[0.0, 1.0], [5.0, 5.0]])
    new = np.array([[0.0, 1.0], [3.0, 0.0], [3.0, 0.05], [3.0, 0.0], [9.0, 0.0]])
    m = match_copies(new, [1, 0, 0, 1, 0], old, [0, 0], ref)
    # exact whatever the label; near only with the same label; an own earlier row counts
    assert m.original.tolist() == [0, -1, 3, 3, -1]
    assert m.how[:4] == ("exact", "", "near", "exact")
    with pytest.raises(ValuationError):
        match_copies(new, [0] * 5, old, [0, 0], ref, near_tol=-1)


def test_reference_is_fixed_by_the_trusted_data(digits) -> None:
    x, _ = digits
    a = CopyReference.of(x[:300])
    assert CopyReference.of(x[:300].copy()) == a  # remembered, and the same
    assert 0 < a.spacing < a.far and a.direction_spacing > 0
    assert CopyReference.of(x[:1]).far == float("inf")


# ---- the score -------------------------------------------------------------------------


def _score(digits, new_x, new_y, values, *, n_acc=600, n_initial=100, policy=None, earlier=None):
    x, y = digits
    acc_x, acc_y = x[300 : 300 + n_acc], y[300 : 300 + n_acc]
    old_x = acc_x if earlier is None else np.vstack([acc_x, earlier])
    old_y = acc_y if earlier is None else np.concatenate([acc_y, y[1500 : 1500 + len(earlier)]])
    ref = CopyReference.of(x[:300])
    m = match_copies(new_x, new_y, old_x, old_y, ref)
    owner = (
        ["registry-0"] * len(acc_y) + ["pending"] * (len(old_y) - len(acc_y)) + ["new"] * len(new_y)
    )
    return reward(
        new_x,
        new_y,
        key="new",
        matches=m,
        owner=owner,
        values=np.asarray(values)[~m.mask] if len(values) == len(new_y) else np.asarray(values),
        reference=1.0,
        x_val=x[:300],
        y_val=y[:300],
        accepted_x=acc_x,
        accepted_y=acc_y,
        copy_reference=ref,
        n_initial=n_initial,
        policy=policy,
    )


def test_clean_batch_is_paid_its_value_with_the_early_premium(digits) -> None:
    x, y = digits
    new_x, new_y = x[1000:1040], y[1000:1040]
    r = _score(digits, new_x, new_y, np.ones(40), n_acc=600, n_initial=100)
    assert r.premium == pytest.approx(1 + 100 / 600)
    paid = r.counts()["paid"]
    assert paid >= 38
    assert r.score_bps == round(10_000 * r.premium * (paid - 8 * r.against) / 44)
    late = _score(digits, new_x, new_y, np.ones(40), n_acc=1200, n_initial=100)
    assert late.premium < r.premium and late.score_bps < r.score_bps
    assert not [f for f in r.flags if f.kind is not FlagKind.NEAR_DUPLICATE]
    doc = json.loads(json.dumps(r.to_dict()))
    assert len(doc["examples"]) == 40 and doc["examples"][0]["status"] in ("paid", "contradicted")


def test_bad_examples_count_against_a_mostly_clean_batch(digits) -> None:
    x, y = digits
    new_x, new_y = x[1000:1040], y[1000:1040].copy()
    clean = _score(digits, new_x, new_y, np.ones(40))
    wrong = np.arange(4)
    new_y[wrong] = (new_y[wrong] + 3) % 10  # 10% careless labels, values as if harmless
    bad = _score(digits, new_x, new_y, np.ones(40))
    assert {e.status for e in bad.examples if e.row in wrong} == {"contradicted"}
    assert bad.score_bps < clean.score_bps - 4 * 8 * 10_000 / 44 * 0.5
    assert bad.score_bps < 5_000  # voters following the score reject it
    kinds = {f.kind for f in bad.flags}
    assert FlagKind.MISLABELLED in kinds
    targeted = new_y.copy()
    targeted[wrong] = 7 if not (y[1000:1004] == 7).any() else 6
    flags = _score(digits, new_x, targeted, np.ones(40)).flags
    assert any(f.kind is FlagKind.POISONING and "targeted" in f.reason for f in flags)


def test_noise_is_out_of_distribution_and_copies_earn_nothing(digits) -> None:
    x, y = digits
    rng = np.random.default_rng(3)
    noise = _score(digits, rng.uniform(0, 1, (20, 64)), rng.integers(0, 10, 20), np.zeros(20))
    assert noise.counts()["out_of_distribution"] == 20 and noise.score_bps < 0
    assert any(f.kind is FlagKind.OUT_OF_DISTRIBUTION for f in noise.flags)
    pending = x[1500:1530]
    copy = _score(digits, pending + 0.0, y[1500:1530], np.ones(30), earlier=pending)
    assert copy.score_bps == 0 and copy.counts()["copy"] == 30
    assert {e.original for e in copy.examples} == {"pending"}
    assert any(f.kind is FlagKind.DUPLICATE and f.original == "pending" for f in copy.flags)


def test_splitting_a_batch_does_not_pay(digits) -> None:
    x, y = digits
    whole = _score(digits, x[1000:1060], y[1000:1060], np.ones(60))
    parts = [_score(digits, x[s : s + 5], y[s : s + 5], np.ones(5)) for s in range(1000, 1060, 5)]
    assert sum(5 * p.score_bps for p in parts) < 60 * whole.score_bps


def test_reward_policy_and_inputs_are_checked(digits) -> None:
    with pytest.raises(ValuationError):
        RewardPolicy(contradicted=0.6, doubtful=0.5)
    with pytest.raises(ValuationError):
        RewardPolicy(k=0)
    x, y = digits
    with pytest.raises(ValuationError, match="one value"):
        _score(digits, x[1000:1010], y[1000:1010], np.ones(3))
