"""The federated round engine on digits: attacks fail against trimmed mean, a label flipper
scores last, payouts follow positive contributions only."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

from databright.compute.aggregation import Aggregator
from databright.compute.federated import (
    ATTACKS,
    Attack,
    Client,
    alie_z,
    payout_shares,
    payout_wei,
    run_federated,
    split_dirichlet,
    split_iid,
)
from databright.errors import InvalidArgument
from databright.ml.spec import ModelSpec

SPEC = ModelSpec.from_dict(
    {
        "input_shape": [64],
        "classes": 10,
        "layers": [
            {"type": "Linear", "out_features": 32},
            {"type": "ReLU"},
            {"type": "Linear", "out_features": 10},
        ],
        "optimizer": {"type": "sgd", "lr": 0.3},
        "batch_size": 16,
    }
)
ROUNDS = 6


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x = (x[order] / 16).astype(np.float32)
    y = y[order].astype(np.int64)
    return x[:600], y[:600], x[1300:1550], y[1300:1550]


def _clients(
    digits: tuple[np.ndarray, ...], attack: Attack | None, byzantine: tuple[int, ...]
) -> list[Client]:
    x, y, _, _ = digits
    return [
        Client(x[idx], y[idx], attack if i in byzantine else None)
        for i, idx in enumerate(split_iid(y, 10))
    ]


@pytest.fixture(scope="module")
def clean_accuracy(digits: tuple[np.ndarray, ...]) -> float:
    _, _, xv, yv = digits
    return run_federated(
        SPEC, _clients(digits, None, ()), xv, yv, rounds=ROUNDS, local_epochs=2
    ).accuracy


@pytest.mark.parametrize("kind", ATTACKS)
def test_attacks_fail_against_trimmed_mean(
    digits: tuple[np.ndarray, ...], clean_accuracy: float, kind: str
) -> None:
    _, _, xv, yv = digits
    clients = _clients(digits, Attack(kind), (2, 5))  # type: ignore[arg-type]
    robust = run_federated(
        SPEC, clients, xv, yv, rounds=ROUNDS, local_epochs=2, aggregator=Aggregator()
    )
    assert clean_accuracy > 0.8
    assert robust.accuracy >= clean_accuracy - 0.05
    if kind in ("gaussian", "sign_flip", "scaled"):
        # The same attack breaks the plain mean: the attack is real, the rule is what holds.
        plain = run_federated(
            SPEC, clients, xv, yv, rounds=ROUNDS, local_epochs=2, aggregator=Aggregator("mean")
        )
        assert plain.accuracy < clean_accuracy - 0.3


def test_contributions_rank_a_label_flipper_last_and_pay_it_nothing(
    digits: tuple[np.ndarray, ...],
) -> None:
    _, _, xv, yv = digits
    clients = _clients(digits, Attack("label_flip"), (3,))
    result = run_federated(SPEC, clients, xv, yv, rounds=ROUNDS, local_epochs=2, contributions=True)
    assert int(np.argmin(result.contributions)) == 3
    assert result.contributions[3] < 0
    assert result.shares[3] == 0.0
    assert result.shares.sum() == pytest.approx(1.0)
    assert all(len(r.contributions) == len(clients) for r in result.history)
    per_round = np.array([r.contributions for r in result.history]).sum(axis=0)
    assert np.allclose(per_round, result.contributions)


def test_runs_are_deterministic(digits: tuple[np.ndarray, ...]) -> None:
    _, _, xv, yv = digits
    clients = _clients(digits, Attack("gaussian"), (1,))
    a = run_federated(SPEC, clients, xv, yv, rounds=2, local_epochs=2, seed=7)
    b = run_federated(SPEC, clients, xv, yv, rounds=2, local_epochs=2, seed=7)
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert [r.accuracy for r in a.history] == [r.accuracy for r in b.history]


def test_a_client_sending_infinity_is_dropped_as_byzantine(
    digits: tuple[np.ndarray, ...],
) -> None:
    _, _, xv, yv = digits
    # Scaling by 1e39 overflows float32: the update arrives as infinities.
    clients = _clients(digits, Attack("scaled", 1e39), (4,))
    with np.errstate(over="ignore", invalid="ignore"):
        result = run_federated(SPEC, clients, xv, yv, rounds=4, local_epochs=2, contributions=True)
    assert all(r.rejected == (4,) for r in result.history)
    assert result.contributions[4] == 0.0 and result.shares[4] == 0.0
    assert np.isfinite(result.accuracy) and result.accuracy > 0.5


def test_krum_collapses_where_trimmed_mean_does_not_on_non_iid_clients(
    digits: tuple[np.ndarray, ...],
) -> None:
    x, y, xv, yv = digits
    clients = [Client(x[i], y[i]) for i in split_dirichlet(y, 10, alpha=0.5, seed=1)]
    trimmed = run_federated(SPEC, clients, xv, yv, rounds=ROUNDS, local_epochs=2)
    single = run_federated(
        SPEC, clients, xv, yv, rounds=ROUNDS, local_epochs=2, aggregator=Aggregator("krum", f=2)
    )
    assert trimmed.accuracy > single.accuracy


def test_splits_partition_the_examples() -> None:
    y = np.repeat(np.arange(10), 50)
    for parts in (split_iid(y, 7, seed=3), split_dirichlet(y, 7, alpha=0.5, seed=3)):
        joined = np.concatenate(parts)
        assert sorted(joined.tolist()) == list(range(len(y)))
        assert min(len(p) for p in parts) >= 10
    skewed = split_dirichlet(y, 7, alpha=0.1, seed=0)
    # Non-IID: some client holds mostly one class.
    assert max(np.bincount(y[p], minlength=10).max() / len(p) for p in skewed) > 0.5


def test_alie_z_matches_the_paper() -> None:
    # n = 20, f = 4: s = 7, z = Phi^-1(13/20).
    assert alie_z(20, 4) == pytest.approx(0.3853, abs=1e-3)
    # n = 50, f = 12 (the paper's example): s = 14, z = Phi^-1(0.72) ~ 0.58.
    assert alie_z(50, 12) == pytest.approx(0.5828, abs=1e-3)


@settings(max_examples=200, deadline=None)
@given(
    amount=st.integers(0, 10**24),
    scores=st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=12),
)
def test_payout_wei_adds_up_and_follows_positive_scores(amount: int, scores: list[float]) -> None:
    paid = payout_wei(amount, scores)
    shares = payout_shares(scores)
    assert len(paid) == len(scores)
    assert all(p >= 0 for p in paid)
    if any(s > 0 for s in scores):
        assert sum(paid) == amount
        assert shares.sum() == pytest.approx(1.0)
    else:
        assert sum(paid) == 0 and shares.sum() == 0
    for s, p in zip(scores, paid, strict=True):
        if s <= 0:
            assert p == 0
    for i, j in [(i, j) for i in range(len(scores)) for j in range(len(scores))]:
        if scores[i] > scores[j] > 0:
            assert paid[i] >= paid[j]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: Attack("poison"), "unknown attack"),  # type: ignore[arg-type, list-item, dict-item]
        (lambda d: Attack("gaussian", -1.0), "at least 0"),
        (lambda d: split_iid([0, 1], 3), "cannot be split among 3 clients"),
        (lambda d: split_dirichlet(np.zeros(20, int), 3, min_examples=10), "cannot give 3"),
        (lambda d: split_dirichlet(np.zeros(20, int), 2, alpha=0.0), "positive number"),
        (lambda d: payout_wei(-1, [1.0]), "whole number of wei"),
        (lambda d: payout_shares([np.nan]), "NaN"),
        (
            lambda d: run_federated(
                SPEC, _clients(d, None, ())[:4], d[2], d[3], aggregator=Aggregator("krum", f=1)
            ),
            "needs at least 5 clients",
        ),
        (
            lambda d: run_federated(SPEC, [Client(d[0][:5, :10], d[1][:5])], d[2], d[3]),
            "client 0's examples have shape",
        ),
        (
            lambda d: run_federated(SPEC, _clients(d, None, ()), d[2], d[3], rounds=0),
            "rounds must be",
        ),
    ],
)
def test_one_sentence_per_bad_input(
    digits: tuple[np.ndarray, ...], call: object, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message) as caught:
        call(digits)  # type: ignore[operator]
    assert str(caught.value).endswith(".")
