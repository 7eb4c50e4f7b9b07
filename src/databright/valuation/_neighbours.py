"""Nearest neighbours: dense numpy for the sizes valuation sees, scikit-learn beyond."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

_DENSE_LIMIT = 4_000_000  # query x reference pairs held in memory at once (32 MB)


def sq_distances(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    d2 = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :]
    d2 -= 2.0 * (a @ b.T)
    np.maximum(d2, 0.0, out=d2)
    return d2


def kneighbours(
    query: NDArray[np.float64], ref: NDArray[np.float64], k: int, *, same: bool = False
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Distances and indices of the ``k`` nearest rows of ``ref``, nearest first.

    ``same=True`` means query and ref are the same rows, and a row is not its own neighbour.
    """
    k = min(k, len(ref) - (1 if same else 0))
    if k < 1:
        return np.zeros((len(query), 0)), np.zeros((len(query), 0), np.intp)
    if len(query) * len(ref) > _DENSE_LIMIT:
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=k + (1 if same else 0)).fit(ref)
        dist, idx = nn.kneighbors(query)
        if same:
            dist, idx = dist[:, 1:], idx[:, 1:]
        return dist, idx.astype(np.intp)
    d2 = sq_distances(query, ref)
    if same:
        np.fill_diagonal(d2, np.inf)
    idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
    part = np.take_along_axis(d2, idx, axis=1)
    order = np.argsort(part, axis=1)
    return np.sqrt(np.take_along_axis(part, order, axis=1)), np.take_along_axis(idx, order, axis=1)


def sq32(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float32]:
    a32 = a.astype(np.float32)
    b32 = b.astype(np.float32)
    d2 = a32 @ b32.T
    d2 *= -2.0
    d2 += np.einsum("ij,ij->i", a, a).astype(np.float32)[:, None]
    d2 += np.einsum("ij,ij->i", b, b).astype(np.float32)[None, :]
    return d2


def within(x: NDArray[np.float64], radius: float) -> list[NDArray[np.intp]]:
    """For each row, the other rows closer than ``radius`` (inclusive)."""
    n = len(x)
    out = [np.zeros(0, np.intp)] * n
    if n * n > _DENSE_LIMIT:
        from sklearn.neighbors import NearestNeighbors

        found: Any = (
            NearestNeighbors(radius=radius).fit(x).radius_neighbors(x, return_distance=False)
        )
        return [np.asarray(f[f != i], np.intp) for i, f in enumerate(found)]
    close = sq32(x, x) <= np.float32(radius * radius)
    np.fill_diagonal(close, False)
    for i in np.flatnonzero(close.any(axis=1)).tolist():
        out[i] = np.flatnonzero(close[i])
    return out


def typical_spacing(x: NDArray[np.float64], k: int, *, rows: int = 256) -> float:
    """Median distance from a row to its ``k``-th nearest other row, over up to ``rows``
    evenly spaced rows (a subsample is plenty for a median, and keeps this cheap)."""
    n = len(x)
    k = min(k, n - 1)
    pick = np.unique(np.linspace(0, n - 1, min(rows, n)).astype(np.intp))
    if len(pick) * n > _DENSE_LIMIT:
        dist, _ = kneighbours(x[pick], x, k + 1)
        return float(np.median(dist[:, k]))
    d2 = sq32(x[pick], x)
    d2[np.arange(len(pick)), pick] = np.inf
    kth = np.partition(d2, k - 1, axis=1)[:, k - 1]
    return float(np.median(np.sqrt(np.maximum(kth, 0.0))))
