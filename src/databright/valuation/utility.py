"""Utilities (model + scorer + validation data) and the coalition games built from them.

A :class:`Utility` says how good a set of training examples is: fit a fresh copy of the model
on it and score it on the validation data. Methods whose players are proposals turn it into a
game over proposals (:func:`proposal_game`) whose coalition values are cached.

Two scikit-learn models get exact fast paths (same scores as refitting, checked by the tests):

* ``RidgeClassifier``: its fit depends on the data only through sums (count, feature sums,
  Gram matrix, feature-target products), so each proposal's sums are computed once and a
  coalition's model is one small linear solve;
* ``KNeighborsClassifier`` (uniform weights, Euclidean): each proposal's k nearest examples to
  every validation point are found once, and a coalition's neighbours are a merge of its
  members' lists.

Both evaluate a batch of coalitions (one step of 32 permutations) in one vectorised pass, so a
utility evaluation costs microseconds instead of a refit, which is what makes Shapley over
proposals cheap. Any other model is refitted per coalition, with coalition scores cached.
"""

from __future__ import annotations

import copy
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from databright.errors import ValuationError

__all__ = ["Game", "Scorer", "TorchClassifier", "Utility", "proposal_game"]

Scorer = Callable[[NDArray[Any], NDArray[Any]], float]
"""``scorer(y_true, y_pred) -> float``; higher is better."""


def _accuracy(y_true: NDArray[Any], y_pred: NDArray[Any]) -> float:
    return float(np.mean(y_true == y_pred))


def _balanced_accuracy(y_true: NDArray[Any], y_pred: NDArray[Any]) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y_true, y_pred))


_SCORERS: dict[str, Scorer] = {"accuracy": _accuracy, "balanced_accuracy": _balanced_accuracy}
_DECISION_SCORERS = ("margin",)


def _is_torch_module(model: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


class TorchClassifier:
    """A torch module seen as a scikit-learn classifier (``fit``/``partial_fit``/``predict``).

    The module maps a float32 batch of features to class logits; labels are the integers
    ``0..C-1`` unless ``classes`` is given. ``fit`` restarts from the module's state at
    construction, ``partial_fit`` goes on from the current state (fine-tuning). Training is
    plain mini-batch SGD with cross-entropy, shuffled by a seeded generator.
    """

    def __init__(
        self,
        module: Any,
        *,
        classes: ArrayLike | None = None,
        epochs: int = 10,
        lr: float = 0.05,
        batch_size: int = 64,
        weight_decay: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not _is_torch_module(module):
            raise ValuationError("TorchClassifier needs a torch.nn.Module")
        self.module = module
        self.classes = None if classes is None else np.asarray(classes)
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.seed = seed
        self._initial = copy.deepcopy(module.state_dict())
        self._steps = 0

    def __sklearn_clone__(self) -> TorchClassifier:
        twin = copy.deepcopy(self)
        twin.module.load_state_dict(twin._initial)
        twin._steps = 0
        return twin

    @property
    def classes_(self) -> NDArray[Any]:
        if self.classes is not None:
            return self.classes
        import torch

        with torch.no_grad():
            first = next(p for p in self.module.parameters())
            n_in = first.shape[-1] if first.ndim > 1 else 1
            out = self.module(torch.zeros(1, n_in))
        return np.arange(out.shape[-1])

    def _targets(self, y: NDArray[Any]) -> NDArray[np.int64]:
        classes = self.classes_
        pos = np.searchsorted(classes, y)
        pos = np.clip(pos, 0, len(classes) - 1)
        if not np.all(classes[pos] == y):
            raise ValuationError("labels outside the classes the torch module predicts")
        return pos.astype(np.int64)

    def _train(self, x: NDArray[Any], y: NDArray[Any], epochs: int) -> None:
        import torch

        xt = torch.as_tensor(np.asarray(x, np.float32))
        yt = torch.as_tensor(self._targets(np.asarray(y)))
        gen = torch.Generator().manual_seed(self.seed + self._steps)
        opt = torch.optim.SGD(self.module.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = torch.nn.CrossEntropyLoss()
        self.module.train()
        for _ in range(epochs):
            perm = torch.randperm(len(xt), generator=gen)
            for start in range(0, len(xt), self.batch_size):
                idx = perm[start : start + self.batch_size]
                opt.zero_grad()
                loss = loss_fn(self.module(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
            self._steps += 1
        self.module.eval()

    def fit(self, x: ArrayLike, y: ArrayLike) -> TorchClassifier:
        self.module.load_state_dict(self._initial)
        self._steps = 0
        self._train(np.asarray(x), np.asarray(y), self.epochs)
        return self

    def partial_fit(
        self, x: ArrayLike, y: ArrayLike, classes: ArrayLike | None = None
    ) -> TorchClassifier:
        self._train(np.asarray(x), np.asarray(y), 1)
        return self

    def decision_function(self, x: ArrayLike) -> NDArray[np.float64]:
        """Logits, one column per class."""
        import torch

        with torch.no_grad():
            logits = self.module(torch.as_tensor(np.asarray(x, np.float32)))
        return cast(NDArray[np.float64], logits.numpy().astype(np.float64))

    def predict(self, x: ArrayLike) -> NDArray[Any]:
        return cast(NDArray[Any], self.classes_[np.argmax(self.decision_function(x), axis=1)])


def as_estimator(model: Any) -> Any:
    """A scikit-learn-like estimator for ``model`` (torch modules get wrapped)."""
    if _is_torch_module(model):
        return TorchClassifier(model)
    if not (hasattr(model, "fit") and hasattr(model, "predict")):
        raise ValuationError(
            f"the model must be a scikit-learn estimator or a torch module, got {type(model).__name__}"
        )
    return model


def fresh(model: Any) -> Any:
    """An unfitted copy of an estimator."""
    from sklearn.base import clone

    return clone(model)


class Utility:
    """How good a set of training examples is: fit ``model`` on it, score on validation data.

    Args:
        model: a scikit-learn estimator or a torch module (wrapped in :class:`TorchClassifier`).
        x_val, y_val: validation data the model is scored on.
        scorer: ``"accuracy"``, ``"balanced_accuracy"``, ``"margin"`` or
            ``scorer(y_true, y_pred) -> float``. ``"margin"`` is the mean over validation points
            of the decision function's margin ``d_true - max_other d``, clipped to [-1, 1]: a
            smooth, bounded accuracy whose marginal contributions are far less noisy than
            accuracy's 0/1 steps (it needs ``decision_function`` or ``predict_proba``).
        default_score: the score of no data, and of a fit that fails (e.g. one class only).
        fast: use the exact fast paths for ``RidgeClassifier`` and ``KNeighborsClassifier``
            (see the module docstring).
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


class Game(ABC):
    """A cooperative game over players (proposals): ``game(mask) -> u(S)``."""

    n_players: int
    default: float

    @abstractmethod
    def __call__(self, members: NDArray[np.bool_]) -> float: ...

    def walk(self, order: NDArray[np.intp]) -> Iterator[float]:
        """u of each growing prefix of ``order`` (the first player, the first two, ...)."""
        mask = np.zeros(self.n_players, np.bool_)
        for p in order.tolist():
            mask[p] = True
            yield self(mask)

    def walk_many(self, orders: NDArray[np.intp]) -> NDArray[np.float64]:
        """:meth:`walk` for each row of ``orders``, as an array (b, n)."""
        return np.array([list(self.walk(o)) for o in orders], dtype=np.float64).reshape(
            orders.shape
        )

    def many(self, masks: NDArray[np.bool_]) -> NDArray[np.float64]:
        """u of each row of ``masks``."""
        return np.array([self(m) for m in masks], dtype=np.float64)

    @property
    def grand(self) -> float:
        return self(np.ones(self.n_players, np.bool_))


class _ModelGame(Game):
    def __init__(
        self,
        utility: Utility,
        x: NDArray[Any],
        y: NDArray[Any],
        player: NDArray[np.intp],
        n_players: int,
    ):
        self.utility = utility
        self.x, self.y = x, y
        self.n_players = n_players
        self.default = utility.default_score
        self.rows = [np.flatnonzero(player == p) for p in range(n_players)]
        self.cache: dict[bytes, float] = {}
        self.evaluations = 0

    def __call__(self, members: NDArray[np.bool_]) -> float:
        key = np.packbits(members).tobytes()
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        chosen = np.flatnonzero(members)
        if len(chosen) == 0:
            value = self.default
        else:
            idx = np.concatenate([self.rows[p] for p in chosen.tolist()])
            value = self.utility(self.x[idx], self.y[idx]) if len(idx) else self.default
        self.evaluations += 1
        if len(self.cache) < self.utility.cache_size:
            self.cache[key] = value
        return value


class _RidgeGame(Game):
    """Exact RidgeClassifier fits from summed per-proposal statistics, many at a time.

    Validation decisions are taken in float32 (the solve stays in float64): scores move by
    less than 1e-6, and the one large product per coalition runs twice as fast.
    """

    def __init__(
        self,
        utility: Utility,
        alpha: float,
        x: NDArray[Any],
        y: NDArray[Any],
        player: NDArray[np.intp],
        n_players: int,
    ):
        self.utility = utility
        self.n_players = n_players
        self.default = utility.default_score
        self.classes = np.unique(y)
        c = len(self.classes)
        d = x.shape[1]
        self.d = d
        onehot = (y[:, None] == self.classes[None, :]).astype(np.float64)
        z = np.hstack([np.ones((len(x), 1)), x, 2.0 * onehot - 1.0])
        self.stats = np.zeros((n_players, 1 + d, 1 + d + c))
        self.counts = np.zeros((n_players, c))
        for p in range(n_players):
            zp = z[player == p]
            self.stats[p] = zp[:, : 1 + d].T @ zp
            self.counts[p] = onehot[player == p].sum(axis=0)
        self.eye = alpha * np.eye(d)
        self.cache: dict[bytes, float] = {}
        self.evaluations = 0
        self.x_val = np.ascontiguousarray(utility.x_val, dtype=np.float32)
        m = len(utility.y_val)
        self.val_rows = np.arange(m)
        pos = np.clip(np.searchsorted(self.classes, utility.y_val), 0, c - 1)
        self.val_known = self.classes[pos] == utility.y_val
        self.val_cls = pos
        self.not_true = np.zeros((m, 1, c), np.float32)
        self.not_true[self.val_rows, 0, pos] = -np.inf

    def _scores(self, s: NDArray[np.float64], counts: NDArray[np.float64]) -> NDArray[np.float64]:
        """Scores of a stack of coalitions given their summed statistics."""
        out = np.full(len(s), self.default)
        n = s[:, 0, 0]
        ok = n > 0
        if not ok.any():
            return out
        if not ok.all():
            s, counts, n = s[ok], counts[ok], n[ok]
        d = self.d
        self.evaluations += len(s)
        sx = s[:, 0, 1 : 1 + d] / n[:, None]
        sy = s[:, 0, 1 + d :] / n[:, None]
        nsx = n[:, None, None] * sx[:, :, None]
        a = s[:, 1:, 1 : 1 + d] - nsx * sx[:, None, :]
        a += self.eye
        r = s[:, 1:, 1 + d :] - nsx * sy[:, None, :]
        try:
            w = np.linalg.solve(a, r)
        except np.linalg.LinAlgError:
            w = np.linalg.pinv(a) @ r
        bias = sy - np.einsum("bd,bdc->bc", sx, w)
        b, c = bias.shape
        wt = w.transpose(1, 0, 2).reshape(d, b * c).astype(np.float32)
        dec = (self.x_val @ wt).reshape(len(self.x_val), b, c)
        dec += bias.astype(np.float32)[None]
        absent = counts <= 0
        if absent.any():
            dec[:, absent] = -np.inf
        if self.utility.uses_decision:
            true = dec[self.val_rows, :, self.val_cls]
            dec += self.not_true
            with np.errstate(invalid="ignore"):
                margin = np.clip(true - dec.max(axis=2), -1.0, 1.0)
            margin[np.isnan(margin)] = -1.0
            margin[~self.val_known] = -1.0
            out[ok] = margin.mean(axis=0, dtype=np.float64)
        else:
            pred = self.classes[np.argmax(dec, axis=2)]
            out[ok] = [self.utility.scorer(self.utility.y_val, p) for p in pred.T]
        return out

    def __call__(self, members: NDArray[np.bool_]) -> float:
        key = np.packbits(members).tobytes()
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        value = float(self.many(members[None, :])[0])
        if len(self.cache) < self.utility.cache_size:
            self.cache[key] = value
        return value

    def many(self, masks: NDArray[np.bool_]) -> NDArray[np.float64]:
        m = masks.astype(np.float64)
        return self._scores(np.tensordot(m, self.stats, axes=1), m @ self.counts)

    def walk_many(self, orders: NDArray[np.intp]) -> NDArray[np.float64]:
        b, n = orders.shape
        s = np.zeros((b, *self.stats.shape[1:]))
        counts = np.zeros((b, self.counts.shape[1]))
        out = np.empty((b, n))
        for t in range(n):
            s += self.stats[orders[:, t]]
            counts += self.counts[orders[:, t]]
            out[:, t] = self._scores(s, counts)
        return out

    def walk(self, order: NDArray[np.intp]) -> Iterator[float]:
        yield from self.walk_many(order[None, :])[0].tolist()


class _KNNGame(Game):
    """Exact KNeighborsClassifier fits (uniform weights, Euclidean) by merging neighbour lists.

    Each proposal's ``k`` nearest examples to every validation point are found once; the
    ``k`` nearest of a coalition are the ``k`` nearest of its members' lists, so growing a
    coalition by one proposal is one small merge. A neighbour is one int64 key, the float32
    distance's bits (ordered like the distance, as it is not negative) above a 16-bit label,
    so a merge is one ``np.partition``. Coalitions with fewer than ``k`` examples cannot be
    fitted by scikit-learn and score the default, as a refit would.
    """

    _LABEL_BITS = 16

    def __init__(
        self,
        utility: Utility,
        k: int,
        x: NDArray[Any],
        y: NDArray[Any],
        player: NDArray[np.intp],
        n_players: int,
    ):
        from databright.valuation._neighbours import sq_distances

        self.utility = utility
        self.k = k
        self.n_players = n_players
        self.default = utility.default_score
        self.classes = np.unique(y)
        c = len(self.classes)
        if c >= 1 << self._LABEL_BITS:
            raise ValuationError("too many classes for the KNN fast path; pass fast=False")
        m = len(utility.y_val)
        codes = np.searchsorted(self.classes, y).astype(np.int64)
        self.none = self._key(np.full(1, np.inf, np.float32), np.full(1, c, np.int64))[0]
        self.tops = np.full((n_players, m, k), self.none, np.int64)
        self.sizes = np.bincount(player, minlength=n_players)
        for p in range(n_players):
            rows = np.flatnonzero(player == p)
            if len(rows) == 0:
                continue
            d2 = sq_distances(utility.x_val, x[rows]).astype(np.float32)
            keys = self._key(d2, np.broadcast_to(codes[rows], d2.shape))
            take = min(k, len(rows))
            if take < len(rows):
                keys = np.partition(keys, take - 1, axis=1)[:, :take]
            self.tops[p, :, :take] = keys
        pos = np.clip(np.searchsorted(self.classes, utility.y_val), 0, c - 1)
        self.val_known = self.classes[pos] == utility.y_val
        self.val_cls = pos
        self.val_rows = np.arange(m)
        self.cache: dict[bytes, float] = {}
        self.evaluations = 0

    def _key(self, d2: NDArray[np.float32], labels: NDArray[np.int64]) -> NDArray[np.int64]:
        bits = np.ascontiguousarray(d2, dtype=np.float32).view(np.int32).astype(np.int64)
        return (bits << self._LABEL_BITS) | labels

    def _scores(self, keys: NDArray[np.int64], n_examples: NDArray[np.intp]) -> NDArray[np.float64]:
        """Scores of a stack (b, m, k) of neighbour keys."""
        b, m, k = keys.shape
        c = len(self.classes)
        out = np.full(b, self.default)
        ok = n_examples >= k
        if not ok.any():
            return out
        labels = keys[ok] & ((1 << self._LABEL_BITS) - 1)
        b = len(labels)
        self.evaluations += b
        cell = (np.arange(b * m)[:, None] * (c + 1) + labels.reshape(b * m, k)).ravel()
        votes = np.bincount(cell, minlength=b * m * (c + 1)).reshape(b, m, c + 1)[:, :, :c]
        if self.utility.uses_decision:
            share = votes / k
            true = share[:, self.val_rows, self.val_cls]
            share[:, self.val_rows, self.val_cls] = -np.inf
            margin = true - share.max(axis=2) if c > 1 else true
            margin[:, ~self.val_known] = -1.0
            out[ok] = margin.mean(axis=1)
        else:
            pred = self.classes[np.argmax(votes, axis=2)]
            out[ok] = [self.utility.scorer(self.utility.y_val, p) for p in pred]
        return out

    def _merge(self, keys: NDArray[np.int64], more: NDArray[np.int64]) -> NDArray[np.int64]:
        both = np.concatenate([keys, more], axis=2)
        both.partition(self.k - 1, axis=2)
        return both[:, :, : self.k]

    def walk_many(self, orders: NDArray[np.intp]) -> NDArray[np.float64]:
        b, n = orders.shape
        keys = np.full((b, len(self.val_rows), self.k), self.none, np.int64)
        count = np.zeros(b, np.intp)
        out = np.empty((b, n))
        for t in range(n):
            keys = self._merge(keys, self.tops[orders[:, t]])
            count += self.sizes[orders[:, t]]
            out[:, t] = self._scores(keys, count)
        return out

    def walk(self, order: NDArray[np.intp]) -> Iterator[float]:
        yield from self.walk_many(order[None, :])[0].tolist()

    def many(self, masks: NDArray[np.bool_]) -> NDArray[np.float64]:
        b = len(masks)
        keys = np.full((b, len(self.val_rows), self.k), self.none, np.int64)
        for p in range(self.n_players):
            if masks[:, p].any():
                more = np.where(masks[:, p, None, None], self.tops[p][None], self.none)
                keys = self._merge(keys, more)
        return self._scores(keys, masks.astype(np.intp) @ self.sizes)

    def __call__(self, members: NDArray[np.bool_]) -> float:
        key = np.packbits(members).tobytes()
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        value = float(self.many(members[None, :])[0])
        if len(self.cache) < self.utility.cache_size:
            self.cache[key] = value
        return value


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


def proposal_game(
    utility: Utility, x: NDArray[Any], y: NDArray[Any], player: NDArray[np.intp], n_players: int
) -> Game:
    """The game whose players are proposals: u(S) = utility of the union of their examples."""
    alpha = utility.ridge_alpha()
    if alpha is not None:
        return _RidgeGame(utility, alpha, x, y, player, n_players)
    k = utility.knn_k()
    if k is not None:
        return _KNNGame(utility, k, x, y, player, n_players)
    return _ModelGame(utility, x, y, player, n_players)
