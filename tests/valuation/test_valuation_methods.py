"""Data-OOB, LOO gain, utilities and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.tree import DecisionTreeClassifier

from databright.errors import DataBrightError, ValuationError
from databright.valuation import (
    DataOOB,
    KNNShapley,
    LOOGain,
    MaxSamples,
    TMCShapley,
    TorchClassifier,
    Utility,
    ValuationData,
    fine_tune,
)


def test_data_oob_finds_the_noisy_proposal(noisy_blobs) -> None:
    x, y, prop, xv, yv, bad = noisy_blobs
    u = Utility(DecisionTreeClassifier(max_depth=3), xv, yv)
    result = DataOOB(u, n_estimators=40).fit(ValuationData(x, y, prop)).result
    assert result.ranking()[-1] == 2
    assert np.all((result.values >= 0) & (result.values <= 1))
    assert result.values[bad].mean() < 0.5 < np.delete(result.values, bad).mean()
    with pytest.raises(ValuationError):
        DataOOB(u, n_estimators=1)


@pytest.mark.parametrize("against", ["rest", "start"])
def test_loo_gain_from_sgd_checkpoint(noisy_blobs, against: str) -> None:
    x, y, prop, xv, yv, _ = noisy_blobs
    start = SGDClassifier(loss="log_loss", random_state=0).partial_fit(
        xv[:20], yv[:20], classes=[0, 1, 2]
    )
    before = start.coef_.copy()
    method = LOOGain(Utility(start, xv, yv), epochs=2, against=against)
    result = method.fit(ValuationData(x, y, prop)).result
    assert result.method == "loo_gain" and np.isfinite(result.proposal_values).all()
    np.testing.assert_array_equal(start.coef_, before)  # the checkpoint is not touched
    if against == "start":
        assert result.value_of(2) <= np.median(result.proposal_values)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_loo_gain_with_mlp_warm_start_and_torch_module(noisy_blobs) -> None:
    x, y, prop, xv, yv, _ = noisy_blobs
    data = ValuationData(x, y, prop)
    mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0).fit(xv, yv)
    assert LOOGain(Utility(mlp, xv, yv)).fit(data).result.n_samples == 10
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    r = LOOGain(Utility(RidgeClassifier(), xv, yv), start=net, against="start").fit(data).result
    assert np.isfinite(r.proposal_values).all()


def test_fine_tune_needs_a_trainable_model() -> None:
    with pytest.raises(ValuationError, match="fine-tuned"):
        fine_tune(KNeighborsClassifier(), np.zeros((2, 2)), np.array([0, 1]))
    with pytest.raises(ValuationError):
        LOOGain(Utility(RidgeClassifier(), np.zeros((2, 2)), [0, 1]), against="nope")  # type: ignore[arg-type]


def test_unfitted_start_model_is_a_valuation_error(noisy_blobs) -> None:
    x, y, prop, xv, yv, _ = noisy_blobs
    with pytest.raises(ValuationError, match="checkpoint"):
        LOOGain(Utility(SGDClassifier(), xv, yv), against="start").fit(
            ValuationData(x[: 0 or None], y, prop)
        )


def test_torch_module_as_utility_model(noisy_blobs) -> None:
    # the adapter itself is tested in tests/ml; here: a Utility takes a module and values with it
    x, y, prop, xv, yv, _ = noisy_blobs
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 3))
    u = Utility(net, xv, yv, scorer="margin")
    assert isinstance(u.model, TorchClassifier)
    assert u(x, y) > u(x[:3], y[:3]) - 1.0
    assert u(x[:0], y[:0]) == u.default_score
    r = (
        TMCShapley(u, stopping=MaxSamples(2), flags=False)
        .fit(ValuationData(x[:36], y[:36], prop[:36]))
        .result
    )
    assert r.proposal_values.sum() == pytest.approx(r.total_gain)
    acc = Utility(net, xv, yv)
    fitted = acc.fit_model(x, y)
    assert 0.0 <= acc.score(fitted) <= 1.0
    assert fitted is not acc.model  # fitted on a fresh copy


def test_utility_checks_its_inputs() -> None:
    with pytest.raises(ValuationError, match="scorer"):
        Utility(RidgeClassifier(), np.zeros((2, 2)), [0, 1], scorer="nope")
    with pytest.raises(ValuationError, match="estimator"):
        Utility(object(), np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValuationError):
        Utility(RidgeClassifier(), np.zeros((2, 2)), [0, 1, 2])
    with pytest.raises(ValuationError):
        KNNShapley("not a utility")  # type: ignore[arg-type]
    u = Utility(RidgeClassifier(), np.zeros((2, 2)), [0, 1], scorer=lambda a, b: 0.5)
    assert u.scorer_name == "<lambda>"
    # one class cannot be fitted by a logistic regression: the default score stands in
    assert Utility(LogisticRegression(), [[0.0], [1.0]], [0, 1])(np.zeros((3, 1)), [0, 0, 0]) == 0.0


def test_valuation_data_checks_its_inputs() -> None:
    with pytest.raises(ValuationError):
        ValuationData(np.zeros((3, 2)), [0, 1], [0, 0, 0])
    with pytest.raises(ValuationError):
        ValuationData(np.zeros((0, 2)), [], [])
    with pytest.raises(ValuationError, match="NaN"):
        ValuationData(np.full((1, 1), np.nan), [0], [0])
    with pytest.raises(ValuationError):
        ValuationData(np.zeros((2, 1)), [0, 1], [0.5, 1.5])
    with pytest.raises(ValuationError, match="arrival"):
        ValuationData(np.zeros((2, 1)), [0, 1], [0, 1], arrival=[0])
    with pytest.raises(ValuationError):
        KNNShapley(Utility(KNeighborsClassifier(1), [[0.0]], [0])).fit("data")  # type: ignore[arg-type]
    data = ValuationData(np.arange(4.0), [0, 1, 0, 1], ["b", "b", "a", "a"], arrival=["a", "b"])
    assert data.proposals == ("a", "b") and data.sizes.tolist() == [2, 2]
    assert data.rank().tolist() == [2, 3, 0, 1]
    assert isinstance(ValuationError("x"), DataBrightError) and isinstance(
        ValuationError("x"), ValueError
    )
