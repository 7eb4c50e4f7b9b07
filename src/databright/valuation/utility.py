"""Utilities: how good a set of training examples is, as the validation score of a model fit on it.

A :class:`Utility` fits a fresh copy of its model on the examples and scores it on the
validation data. Methods whose players are proposals turn it into a game over proposals (see
:mod:`databright.valuation.games`). The model is a scikit-learn estimator or a torch module,
wrapped by :mod:`databright.ml`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from databright.errors import ValuationError
from databright.ml import as_estimator, fresh

__all__ = ["Scorer", "Utility"]

Scorer = Callable[[NDArray[Any], NDArray[Any]], float]
"""``scorer(y_true, y_pred) -> float``; higher is better."""


def _accuracy(y_true: NDArray[Any], y_pred: NDArray[Any]) -> float:
    return float(np.mean(y_true == y_pred))


def _balanced_accuracy(y_true: NDArray[Any], y_pred: NDArray[Any]) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y_true, y_pred))


_SCORERS: dict[str, Scorer] = {"accuracy": _accuracy, "balanced_accuracy": _balanced_accuracy}
_DECISION_SCORERS = ("margin",)


class Utility:
    """How good a set of training examples is: fit ``model`` on it, score on validation data.

    Args:
        model: a scikit-learn estimator or a torch module (wrapped in
            :class:`~databright.ml.TorchClassifier`).
        x_val, y_val: validation data the model is scored on.
        scorer: ``"accuracy"``, ``"balanced_accuracy"``, ``"margin"`` or
            ``scorer(y_true, y_pred) -> float``. ``"margin"`` is the mean over validation points
            of the decision function's margin ``d_true - max_other d``, clipped to [-1, 1]: a
            smooth, bounded accuracy whose marginal contributions are far less noisy than
            accuracy's 0/1 steps (it needs ``decision_function`` or ``predict_proba``).
        default_score: the score of no data, and of a fit that fails (e.g. one class only).
        fast: use the exact fast paths for ``RidgeClassifier`` and ``KNeighborsClassifier``
            (see :mod:`databright.valuation.fast_games`).
        cache_size: how many coalition scores a game keeps.
    """

    def __init__(
        self,
        model: Any,
        x_val: ArrayLike,
        y_val: ArrayLike,
        *,
        scorer: str | Scorer = "accuracy",
        default_score: float = 0.0,
        fast: bool = True,
        cache_size: int = 1 << 16,
    ) -> None:
        self.model = as_estimator(model)
        self.x_val = np.asarray(x_val, dtype=np.float64)
        if self.x_val.ndim == 1:
            self.x_val = self.x_val[:, None]
        self.y_val = np.asarray(y_val)
        if self.x_val.ndim != 2 or self.y_val.ndim != 1 or len(self.x_val) != len(self.y_val):
            raise ValuationError("validation data must be a 2-D x and a 1-D y of the same length")
        if len(self.y_val) == 0:
            raise ValuationError("the validation set is empty")
        self.uses_decision = False
        self.scorer: Scorer
        self.scorer_name: str
        if isinstance(scorer, str):
            if scorer in _DECISION_SCORERS:
                self.scorer_name, self.scorer = scorer, _accuracy
                self.uses_decision = True
            elif scorer in _SCORERS:
                self.scorer_name, self.scorer = scorer, _SCORERS[scorer]
            else:
                known = sorted([*_SCORERS, *_DECISION_SCORERS])
                raise ValuationError(f"unknown scorer {scorer!r}; use one of {known}")
        else:
            self.scorer_name, self.scorer = getattr(scorer, "__name__", "custom"), scorer
        self.default_score = float(default_score)
        self.fast = fast
        self.cache_size = cache_size

    def score(self, fitted: Any) -> float:
        """Score of an already fitted model on the validation data."""
        if not self.uses_decision:
            return float(self.scorer(self.y_val, fitted.predict(self.x_val)))
        if hasattr(fitted, "decision_function"):
            dec = np.asarray(fitted.decision_function(self.x_val), dtype=np.float64)
            if dec.ndim == 1:
                dec = np.stack([-dec, dec], axis=1)
        elif hasattr(fitted, "predict_proba"):
            dec = np.asarray(fitted.predict_proba(self.x_val), dtype=np.float64)
        else:
            raise ValuationError("the margin scorer needs decision_function or predict_proba")
        model_classes = np.asarray(fitted.classes_)
        classes = np.union1d(model_classes, self.y_val)
        full = np.full((len(self.y_val), len(classes)), -np.inf)
        full[:, np.searchsorted(classes, model_classes)] = dec
        cls = np.searchsorted(classes, self.y_val)
        rows = np.arange(len(self.y_val))
        return float(_margins(full[None], rows, cls, np.ones(len(rows), np.bool_))[0])

    def fit_model(self, x: ArrayLike, y: ArrayLike) -> Any:
        model = fresh(self.model)
        model.fit(np.asarray(x), np.asarray(y))
        return model

    def __call__(self, x: ArrayLike, y: ArrayLike) -> float:
        """u(S): the validation score of the model fitted on ``(x, y)``."""
        xa = np.asarray(x)
        if len(xa) == 0:
            return self.default_score
        try:
            return self.score(self.fit_model(xa, y))
        except (ValueError, IndexError, RuntimeError):
            # Subsets with one class or too few rows cannot be fitted by many models.
            return self.default_score

    def ridge_alpha(self) -> float | None:
        """The penalty when the exact closed-form ridge path applies, else None."""
        if not self.fast:
            return None
        from sklearn.linear_model import RidgeClassifier

        m = self.model
        if type(m) is not RidgeClassifier:
            return None
        p = m.get_params()
        if not p["fit_intercept"] or p["class_weight"] is not None or p["positive"]:
            return None
        alpha = p["alpha"]
        if not isinstance(alpha, int | float):
            return None
        return float(alpha)

    def knn_k(self) -> int | None:
        """The number of neighbours when the exact merged-neighbour KNN path applies, else None."""
        if not self.fast:
            return None
        from sklearn.neighbors import KNeighborsClassifier

        m = self.model
        if type(m) is not KNeighborsClassifier:
            return None
        p = m.get_params()
        euclidean = p["metric"] == "euclidean" or (p["metric"] == "minkowski" and p["p"] == 2)
        if p["weights"] != "uniform" or not euclidean or p["metric_params"]:
            return None
        return int(p["n_neighbors"])


def _margins(
    dec: NDArray[np.float64],
    rows: NDArray[np.intp],
    cls: NDArray[np.intp],
    known: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """Mean clipped margin over validation points, for a stack (b, m, C) of decisions."""
    true = dec[:, rows, cls]
    others = dec.copy()
    others[:, rows, cls] = -np.inf
    with np.errstate(invalid="ignore"):
        margin = np.clip(true - others.max(axis=2), -1.0, 1.0)
    margin = np.where(np.isnan(margin), -1.0, margin)
    margin[:, ~known] = -1.0
    return margin.mean(axis=1)
