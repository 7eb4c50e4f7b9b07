"""Exact KNN-Shapley (Jia et al., 2019), vectorised over validation points.

For one validation point with training examples sorted from nearest (rank 1) to farthest
(rank N), the Shapley value of the unweighted K-nearest-neighbour utility
``u(S) = 1/K * #{correct labels among the min(K, |S|) nearest in S}`` is

    s_N = 1[y_N = y] * min(K, N) / (K N)    (1[y_N = y] / N once N >= K)
    s_i = s_{i+1} + (1[y_i = y] - 1[y_{i+1} = y]) / K * min(K, i) / i

which unrolls into a reversed cumulative sum along the ranks; values are averaged over
validation points. Features may first be embedded by a torch module (or any callable; see
:func:`databright.ml.embed`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.errors import ValuationError
from databright.ml import embed
from databright.valuation.base import Valuation, _Estimate
from databright.valuation.data import ValuationData
from databright.valuation.dedup import CopyPolicy
from databright.valuation.flags import FlagPolicy
from databright.valuation.utility import Utility

__all__ = ["KNNShapley", "knn_shapley_values"]


def knn_shapley_values(
    x_train: NDArray[Any],
    y_train: NDArray[Any],
    x_val: NDArray[Any],
    y_val: NDArray[Any],
    k: int,
    *,
    groups: NDArray[np.intp] | None = None,
    n_groups: int = 0,
    batch_size: int = 256,
    keep_distances: bool = False,
) -> tuple[
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float32] | None,
]:
    """Exact KNN-Shapley values of the training examples.

    Returns ``(values, stderr, group_values, group_stderr, d2)``: the mean over validation
    points and the standard error of that mean, per example and per group (sums of examples'
    values), and with ``keep_distances`` the squared distances (train x validation).
    Ranks are computed in float32, values accumulated in float64.
    """
    n = len(y_train)
    m = len(y_val)
    if n == 0 or m == 0:
        raise ValuationError("KNN-Shapley needs training and validation examples")
    if k < 1:
        raise ValuationError("k must be at least 1")
    xt = np.asarray(x_train, dtype=np.float64)
    xv = np.asarray(x_val, dtype=np.float64)
    if groups is None:
        groups = np.zeros(n, np.intp)
        n_groups = 1
    ranks = np.arange(1, n, dtype=np.float64)
    coef = (np.minimum(k, ranks) / (k * ranks)).astype(np.float32)  # for ranks 1..N-1
    _, codes = np.unique(np.concatenate([y_train, y_val]), return_inverse=True)
    code_t = codes[:n].astype(np.int32)
    code_v = codes[n:].astype(np.int32)
    onehot = np.zeros((n, n_groups), np.float32)
    onehot[np.arange(n), groups] = 1.0
    sq_t = np.einsum("ij,ij->i", xt, xt)
    sq_v = np.einsum("ij,ij->i", xv, xv)
    kept_d2 = np.empty((n, m), np.float32) if keep_distances else None
    total = np.zeros(n)
    total_sq = np.zeros(n)
    g_total = np.zeros(n_groups)
    g_total_sq = np.zeros(n_groups)
    for s in range(0, m, batch_size):
        xb = xv[s : s + batch_size]
        b = len(xb)
        # |x_val|^2 is the same along a row and cannot change the order; float32 sorts faster
        dist = (sq_t[None, :] - 2.0 * (xb @ xt.T)).astype(np.float32)
        if kept_d2 is not None:
            kept_d2[:, s : s + b] = np.maximum(dist.T + sq_v[s : s + b].astype(np.float32), 0.0)
        order = np.argsort(dist, axis=1)
        match = (code_t[order] == code_v[s : s + b, None]).astype(np.float32)
        sv = np.empty_like(match)
        sv[:, -1] = match[:, -1] * (min(k, n) / (k * n))
        if n > 1:
            step = (match[:, :-1] - match[:, 1:]) * coef
            sv[:, :-1] = np.cumsum(step[:, ::-1], axis=1)[:, ::-1] + sv[:, -1:]
        per_example = np.empty_like(sv)
        np.put_along_axis(per_example, order, sv, axis=1)
        total += per_example.sum(axis=0, dtype=np.float64)
        total_sq += np.einsum("ij,ij->j", per_example, per_example, dtype=np.float64)
        per = (per_example @ onehot).astype(np.float64)
        g_total += per.sum(axis=0)
        g_total_sq += (per * per).sum(axis=0)

    def mean_se(
        t: NDArray[np.float64], t2: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        mean = t / m
        var = np.maximum(t2 / m - mean * mean, 0.0)
        se = np.sqrt(var / (m - 1)) if m > 1 else np.zeros_like(mean)
        return mean, se

    values, stderr = mean_se(total, total_sq)
    g_values, g_stderr = mean_se(g_total, g_total_sq)
    return values, stderr, g_values, g_stderr, kept_d2


class KNNShapley(Valuation):
    """Exact Shapley values of a K-nearest-neighbour classifier's validation accuracy.

    Args:
        utility: its validation data is used; ``k`` defaults to the model's ``n_neighbors``
            when the model is a ``KNeighborsClassifier``, else 5.
        k: neighbours.
        embedding: a torch module or callable mapping features to embeddings; distances are
            then taken between embeddings.
        Other keywords as for :class:`~databright.valuation.base.Valuation`.
    """

    name = "knn_shapley"

    def __init__(
        self,
        utility: Utility,
        *,
        k: int | None = None,
        embedding: Callable[..., Any] | Any = None,
        batch_size: int = 256,
        copy_policy: CopyPolicy | None = None,
        flags: bool = True,
        flag_policy: FlagPolicy | None = None,
    ) -> None:
        super().__init__(utility, copy_policy=copy_policy, flags=flags, flag_policy=flag_policy)
        if k is None:
            k = int(getattr(utility.model, "n_neighbors", 5))
        if k < 1:
            raise ValuationError("k must be at least 1")
        self.k = k
        self.embedding = embedding
        self.batch_size = batch_size

    def _estimate(self, data: ValuationData, kept: NDArray[np.bool_]) -> _Estimate:
        xt = embed(self.embedding, data.x[kept])
        xv = embed(self.embedding, self.utility.x_val)
        values, stderr, pv, ps, d2 = knn_shapley_values(
            xt,
            data.y[kept],
            xv,
            self.utility.y_val,
            self.k,
            groups=data.player[kept],
            n_groups=len(data.arrival),
            batch_size=self.batch_size,
            keep_distances=self.embedding is None and self.flags,
        )
        return _Estimate(
            proposal_values=pv,
            proposal_stderr=ps,
            values=values,
            stderr=stderr,
            n_samples=len(self.utility.y_val),
            total_gain=float(values.sum()),
            val_d2=d2,
        )
