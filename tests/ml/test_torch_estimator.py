"""The torch adapter: a torch module trained and scored through scikit-learn's interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import RidgeClassifier

from databright.errors import ValuationError
from databright.ml import TorchClassifier, as_estimator, embed, fresh, is_torch_module


def _blobs(seed: int = 0, n: int = 120, d: int = 4, classes: int = 3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (classes, d))
    y = rng.integers(0, classes, n)
    return centres[y] + rng.normal(0, 1, (n, d)), y


def _net(d: int = 4, classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.ReLU(), torch.nn.Linear(8, classes))


def test_is_torch_module() -> None:
    assert is_torch_module(_net())
    assert not is_torch_module(RidgeClassifier())
    assert not is_torch_module(lambda a: a)


def test_fit_learns_and_restarts_from_the_initial_state() -> None:
    x, y = _blobs()
    clf = TorchClassifier(_net(), epochs=20)
    before = clf.decision_function(x)
    first = clf.fit(x, y).decision_function(x)
    assert np.mean(clf.predict(x) == y) > 0.9
    assert not np.allclose(first, before)
    again = clf.fit(x, y).decision_function(x)
    np.testing.assert_array_equal(first, again)  # fit starts over, with the same seed
    assert first.shape == (len(x), 3) and first.dtype == np.float64


def test_partial_fit_goes_on_from_the_current_state() -> None:
    x, y = _blobs()
    clf = TorchClassifier(_net(), epochs=1).fit(x, y)
    after_fit = clf.decision_function(x)
    clf.partial_fit(x, y)
    assert not np.allclose(clf.decision_function(x), after_fit)
    fresh_fit = TorchClassifier(_net(), epochs=1).fit(x, y).decision_function(x)
    np.testing.assert_array_equal(fresh_fit, after_fit)


def test_classes_from_the_output_width_or_given() -> None:
    x, y = _blobs(classes=2)
    assert TorchClassifier(_net(classes=2)).classes_.tolist() == [0, 1]
    named = TorchClassifier(_net(classes=2), classes=[3, 7], epochs=20)
    pred = named.fit(x, np.where(y == 0, 3, 7)).predict(x)
    assert set(pred.tolist()) <= {3, 7}
    assert np.mean(pred == np.where(y == 0, 3, 7)) > 0.9


def test_labels_outside_the_classes_are_refused() -> None:
    x, _ = _blobs()
    with pytest.raises(ValuationError, match="labels outside"):
        TorchClassifier(_net(classes=2)).fit(x, np.full(len(x), 5))


def test_only_modules_are_wrapped() -> None:
    with pytest.raises(ValuationError, match=r"torch\.nn\.Module"):
        TorchClassifier(RidgeClassifier())


def test_clone_is_untrained_and_leaves_the_original() -> None:
    x, y = _blobs()
    clf = TorchClassifier(_net(), epochs=5)
    untrained = clf.decision_function(x)
    trained = clf.fit(x, y).decision_function(x)
    for twin in (clone(clf), fresh(clf)):
        assert twin is not clf and twin.module is not clf.module
        np.testing.assert_array_equal(twin.decision_function(x), untrained)
    np.testing.assert_array_equal(clf.decision_function(x), trained)


def test_as_estimator_and_fresh() -> None:
    net = _net()
    wrapped = as_estimator(net)
    assert isinstance(wrapped, TorchClassifier) and wrapped.module is net
    ridge = RidgeClassifier(alpha=2.0)
    assert as_estimator(ridge) is ridge
    with pytest.raises(ValuationError, match="estimator"):
        as_estimator(object())
    x, y = _blobs()
    ridge.fit(x, y)
    copy = fresh(ridge)
    assert copy.get_params()["alpha"] == 2.0 and not hasattr(copy, "coef_")


def test_embed_with_a_module_a_callable_or_nothing() -> None:
    x, _ = _blobs(n=10)
    assert embed(None, x) is x
    np.testing.assert_array_equal(embed(lambda a: a[:, :2] * 2, x), x[:, :2] * 2)
    net = _net()
    whole = embed(net, x)
    np.testing.assert_allclose(embed(net, x, batch=3), whole, atol=1e-6)  # float32 sums
    assert whole.shape == (10, 3) and whole.dtype == np.float64
    assert embed(lambda a: a[:, 0], x).shape == (10, 1)  # always one row per example
