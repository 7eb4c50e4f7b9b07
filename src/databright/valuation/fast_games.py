"""Exact fast games for two scikit-learn models: same scores as refitting, checked by the tests.

* ``RidgeClassifier``: its fit depends on the data only through sums (count, feature sums,
  Gram matrix, feature-target products), so each proposal's sums are computed once and a
  coalition's model is one small linear solve;
* ``KNeighborsClassifier`` (uniform weights, Euclidean): each proposal's k nearest examples to
  every validation point are found once, and a coalition's neighbours are a merge of its
  members' lists.

Both evaluate a batch of coalitions (one step of 32 permutations) in one vectorised pass, so a
utility evaluation costs microseconds instead of a refit, which is what makes Shapley over
proposals cheap. :meth:`Utility.ridge_alpha <databright.valuation.utility.Utility.ridge_alpha>`
and :meth:`~databright.valuation.utility.Utility.knn_k` say when they apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.errors import ValuationError
from databright.valuation._neighbours import sq_distances
from databright.valuation.games import Game
from databright.valuation.utility import Utility

__all__: list[str] = []


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
