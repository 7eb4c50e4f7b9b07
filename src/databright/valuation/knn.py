"""Exact KNN-Shapley (Jia et al., 2019), vectorised over validation points.

For one validation point with training examples sorted from nearest (rank 1) to farthest
(rank N), the Shapley value of the unweighted K-nearest-neighbour utility
``u(S) = 1/K * #{correct labels among the min(K, |S|) nearest in S}`` is

    s_N = 1[y_N = y] * c_N,    c_i = min(K, i) / (K i)
    s_i = s_{i+1} + (1[y_i = y] - 1[y_{i+1} = y]) * c_i

which unrolls into ``s_i = 1[y_i = y] c_i - sum_{j > i} 1[y_j = y] (c_{j-1} - c_j)``: one
cumulative sum along the ranks, in float64. Values are averaged over validation points. Every
training example gets a value, so each validation point sorts all N of them (one sort of packed
64-bit keys, distance bits and row, per point: the bulk of the time). Features may first be
embedded by a torch module (or any callable; see :func:`databright.ml.embed`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
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

__all__ = ["KNNShapley", "class_weights", "knn_shapley_values"]


_KEEP_PAIRS = 1 << 22
"""Largest training x validation distance matrix kept for the flags (16 MB)."""
_MAX_WORKERS = 8
_BLOCK_ROWS = 1 << 16
_BATCH_PAIRS = 1 << 22
_THREADED_PAIRS = 1 << 23
"""Validation x training pairs handled at once (a few arrays of this many 8-byte values)."""


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
    val_weights: NDArray[np.float64] | None = None,
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
    values), and with ``keep_distances`` the squared distances (train x validation; this
    holds ``N x M`` floats, so only for small data).

    Distances are taken in float32 after centring the data (which keeps float32 exact enough
    to rank); equal distances keep the training rows' order (grouped by ``groups``, stably),
    as a stable sort would. Values are accumulated in float64. Validation points are handled
    in blocks of at most ``batch_size`` and at most ``2**22`` distances, on a few threads; the
    blocks' sums are added in block order, so the result does not depend on the threads, and
    memory grows with ``N``, not with ``N x M``.

    ``val_weights`` (one non-negative weight per validation point) makes the utility a weighted
    accuracy, e.g. class-balanced; the values stay the exact Shapley values of that utility
    (a weighted mean over validation points instead of a plain one).
    """
    n = len(y_train)
    m = len(y_val)
    if n == 0 or m == 0:
        raise ValuationError("KNN-Shapley needs training and validation examples")
    if k < 1:
        raise ValuationError("k must be at least 1")
    if n >= 2**32:
        raise ValuationError("KNN-Shapley ranks at most 2**32 - 1 training examples")
    if groups is None:
        groups = np.zeros(n, np.intp)
        n_groups = 1
    groups = np.asarray(groups, np.intp)
    # rows sorted by group, so each validation point's group sums are contiguous slices
    by_group = np.argsort(groups, kind="stable")
    sizes = np.bincount(groups, minlength=n_groups)
    present = sizes > 0
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])[present]
    x64 = np.asarray(x_train, dtype=np.float64)
    centre = x64.mean(axis=0)
    xt = np.empty(x64.shape, np.float32)
    for s in range(0, n, _BLOCK_ROWS):  # no full float64 copy
        xt[s : s + _BLOCK_ROWS] = x64[by_group[s : s + _BLOCK_ROWS]] - centre
    xv = (np.asarray(x_val, dtype=np.float64) - centre).astype(np.float32)
    labels = np.concatenate([np.asarray(y_train)[by_group], np.asarray(y_val)])
    _, codes = np.unique(labels, return_inverse=True)
    code_type = np.min_scalar_type(max(int(codes.max()), 0))
    ranks = np.arange(1, n + 1, dtype=np.float64)
    c = np.minimum(k, ranks) / (k * ranks)
    w = np.zeros(n)
    w[1:] = c[:-1] - c[1:]
    ctx = _Context(
        xt=xt,
        xv=xv,
        sq_t=np.einsum("ij,ij->i", xt, xt),
        sq_v=np.einsum("ij,ij->i", xv, xv),
        # the smallest integers that hold the classes: the per-row gather stays in cache
        code_t=codes[:n].astype(code_type),
        code_v=codes[n:].astype(code_type),
        c=c,
        w=w,
        starts=starts,
        kept_d2=np.empty((m, n), np.float32) if keep_distances else None,
        weights=None,
    )
    if val_weights is None:
        weights = np.ones(m)
    else:
        weights = np.asarray(val_weights, np.float64)
        if weights.shape != (m,) or not np.all(weights >= 0) or weights.sum() <= 0:
            raise ValuationError("val_weights must be one non-negative weight per validation point")
        weights = weights * (m / weights.sum())  # mean 1: the plain mean when all are equal
    ctx = dataclasses.replace(ctx, weights=weights)
    step = max(1, min(batch_size, _BATCH_PAIRS // n))
    blocks = [(s, min(s + step, m)) for s in range(0, m, step)]
    acc = np.zeros((2, n))
    g_acc = np.zeros((2, int(present.sum())))
    # blocks are independent and summed in block order, so threads change nothing but time
    # Below a few million distances, starting threads (and limiting BLAS) costs more than
    # it saves: the digits-sized valuations of the demo and the benchmark run single-threaded.
    workers = min(_workers(), len(blocks)) if n * m >= _THREADED_PAIRS else 1
    with (
        _one_blas_thread() if workers > 1 else nullcontext(),
        ThreadPoolExecutor(workers) if workers > 1 else nullcontext() as pool,
    ):
        parts = pool.map(ctx.block, blocks) if pool is not None else map(ctx.block, blocks)
        for part, g_part in parts:
            acc += part
            g_acc += g_part
    total, total_sq = acc
    g_total = np.zeros(n_groups)
    g_total_sq = np.zeros(n_groups)
    g_total[present], g_total_sq[present] = g_acc

    def mean_se(
        t: NDArray[np.float64], t2: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        mean = t / m
        var = np.maximum(t2 / m - mean * mean, 0.0)
        se = np.sqrt(var / (m - 1)) if m > 1 else np.zeros_like(mean)
        return mean, se

    values, stderr = mean_se(total, total_sq)
    g_values, g_stderr = mean_se(g_total, g_total_sq)
    unsort = np.empty(n, np.intp)
    unsort[by_group] = np.arange(n)
    kept_d2 = None if ctx.kept_d2 is None else ctx.kept_d2[:, unsort].T.copy()
    return values[unsort], stderr[unsort], g_values, g_stderr, kept_d2


def class_weights(y: NDArray[Any]) -> NDArray[np.float64]:
    """Weights (mean 1) under which every class of ``y`` weighs the same in total."""
    _, codes, counts = np.unique(np.asarray(y), return_inverse=True, return_counts=True)
    w = 1.0 / counts[codes.ravel()]
    return w * (len(w) / w.sum())


def _one_blas_thread() -> AbstractContextManager[object]:
    """One BLAS thread while our threads run: each of them multiplies matrices, and BLAS
    threads on top of them fight over the cores (and spin while they wait)."""
    try:  # comes with scikit-learn; without it, only slower
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _workers() -> int:
    try:
        return max(1, min(len(os.sched_getaffinity(0)), _MAX_WORKERS))
    except AttributeError:  # not on every platform
        return max(1, min(os.cpu_count() or 1, _MAX_WORKERS))


@dataclass(frozen=True)
class _Context:
    """What every block of validation points reads (rows in group order)."""

    xt: NDArray[np.float32]
    xv: NDArray[np.float32]
    sq_t: NDArray[np.float32]
    sq_v: NDArray[np.float32]
    code_t: NDArray[np.integer[Any]]
    code_v: NDArray[np.integer[Any]]
    c: NDArray[np.float64]
    w: NDArray[np.float64]
    starts: NDArray[np.intp]
    kept_d2: NDArray[np.float32] | None
    weights: NDArray[np.float64] | None
    """Weight of each validation point (mean 1); ``None`` only while the context is built."""

    def block(self, rows: tuple[int, int]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Sums over validation points ``rows`` of each example's value and squared value,
        and of each present group's."""
        s, e = rows
        n = len(self.sq_t)
        d2 = self.xv[s:e] @ self.xt.T
        d2 *= -2.0
        d2 += self.sq_t[None, :]
        d2 += self.sq_v[s:e, None]
        np.maximum(d2, 0.0, out=d2)  # +0.0 for a negative rounding, never -0.0
        if self.kept_d2 is not None:
            self.kept_d2[s:e] = d2
        # (distance bits, row) in one 64-bit key: non-negative float32 bits order like the
        # floats, and equal distances keep row order, as a stable sort would
        bits = d2.view(np.uint32)
        row_id = np.arange(n, dtype=np.uint64)
        low = np.uint64(0xFFFFFFFF)
        key = np.empty(n, np.uint64)
        order = key.view(np.int64)
        match = np.empty(n, np.bool_)
        sv = np.empty(n)
        per = np.empty(n)
        tmp = np.empty(n)
        acc = np.zeros((2, n))
        g_acc = np.zeros((2, len(self.starts)))
        for r in range(e - s):
            np.left_shift(bits[r], 32, out=key, dtype=np.uint64)
            key |= row_id
            key.sort()
            key &= low
            np.equal(self.code_t[order], self.code_v[s + r], out=match)
            np.multiply(match, self.w, out=sv)
            np.cumsum(sv, out=sv)
            sv -= sv[-1]
            np.multiply(match, self.c, out=tmp)
            sv += tmp
            per[order] = sv
            wr = 1.0 if self.weights is None else float(self.weights[s + r])
            if wr != 1.0:
                per *= wr
            acc[0] += per
            np.multiply(per, per, out=tmp)
            acc[1] += tmp
            g = np.add.reduceat(per, self.starts)
            g_acc[0] += g
            g_acc[1] += g * g
        return acc, g_acc


class KNNShapley(Valuation):
    """Exact Shapley values of a K-nearest-neighbour classifier's validation accuracy.

    Args:
        utility: its validation data is used; ``k`` defaults to the model's ``n_neighbors``
            when the model is a ``KNeighborsClassifier``, else 5.
        k: neighbours.
        embedding: a torch module or callable mapping features to embeddings; distances are
            then taken between embeddings.
        class_balanced: weight validation points so that every class of the validation data
            counts equally (each point ``1 / (classes x points of its class)``): the value of
            an example then does not depend on how many validation points its class happens
            to have (a thin class no longer hides wrong labels on it).
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
        class_balanced: bool = False,
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
        self.class_balanced = class_balanced

    def _estimate(self, data: ValuationData, kept: NDArray[np.bool_]) -> _Estimate:
        xt = embed(self.embedding, data.x[kept])
        xv = embed(self.embedding, self.utility.x_val)
        weights = class_weights(self.utility.y_val) if self.class_balanced else None
        values, stderr, pv, ps, d2 = knn_shapley_values(
            xt,
            data.y[kept],
            xv,
            self.utility.y_val,
            self.k,
            groups=data.player[kept],
            n_groups=len(data.arrival),
            batch_size=self.batch_size,
            val_weights=weights,
            # reused by the flags when small; beyond that they search neighbours in blocks
            keep_distances=self.embedding is None
            and self.flags
            and self.flag_policy.scope == "all"
            and len(xt) * len(xv) <= _KEEP_PAIRS,
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
