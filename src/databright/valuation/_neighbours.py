"""Nearest neighbours: dense numpy for the sizes valuation sees, scikit-learn beyond."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

_DENSE_LIMIT = 4_000_000  # query x reference pairs held in memory at once (32 MB)
_BLOCK_ROWS = 8192  # reference rows gathered at once by the blocked searches


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


def pairs_within(
    query: NDArray[np.float64],
    ref: NDArray[np.float64],
    radius: float,
    *,
    among: NDArray[np.intp] | None = None,
    max_pairs: int = _DENSE_LIMIT,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Pairs ``(i, j)`` with row ``i`` of ``query`` within ``radius`` of row ``j`` of ``ref``
    (inclusive), sorted by ``i`` then ``j``; with ``among``, of row ``among[j]`` of ``ref``.

    ``ref`` is read in blocks of ``max_pairs // len(query)`` rows (8192 at most), so memory stays bounded
    however many rows it has: time and memory grow with ``len(query) x len(ref)``, never
    with ``len(ref)`` squared.
    """
    idx = np.arange(len(ref)) if among is None else np.asarray(among, np.intp)
    if len(query) == 0 or len(idx) == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    block = max(1, min(max_pairs // len(query), _BLOCK_ROWS))
    r2 = np.float32(radius * radius)
    found_i: list[NDArray[np.intp]] = []
    found_j: list[NDArray[np.intp]] = []
    for s in range(0, len(idx), block):
        i, j = np.nonzero(sq32(query, ref[idx[s : s + block]]) <= r2)
        found_i.append(i)
        found_j.append(j + s)
    qi = np.concatenate(found_i).astype(np.intp)
    rj = np.concatenate(found_j).astype(np.intp)
    order = np.lexsort((rj, qi))
    return qi[order], rj[order]


def row_hashes(x: NDArray[np.float64], *, block: int = 8192) -> NDArray[np.uint64]:
    """A 64-bit hash of each row's float64 bytes, ``-0.0`` read as ``0.0``.

    Equal rows hash alike, so rows with a hash no other row has are certainly unique; rows
    sharing a hash still need a byte comparison. Read in blocks, so no copy of ``x`` is made.
    """
    mult = np.random.default_rng(0x5EED).integers(1, 2**63, x.shape[1], dtype=np.uint64)
    mult |= np.uint64(1)
    out = np.empty(len(x), np.uint64)
    for s in range(0, len(x), block):
        rows = np.ascontiguousarray(x[s : s + block], dtype=np.float64) + 0.0
        out[s : s + block] = rows.view(np.uint64) @ mult  # wraps modulo 2**64
    return out


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


def typical_spacing(
    x: NDArray[np.float64],
    k: int,
    *,
    rows: int = 256,
    among: NDArray[np.intp] | None = None,
    max_pairs: int = _DENSE_LIMIT,
) -> float:
    """Median distance from a row to its ``k``-th nearest other row, over up to ``rows``
    evenly spaced rows (a subsample is plenty for a median, and keeps this cheap).

    ``among`` restricts both the rows and their neighbours to those rows of ``x`` (without
    copying them). The other rows are read in blocks (of ``max_pairs // rows`` rows, 8192 at
    most), keeping the
    ``k`` nearest so far: ``rows x N`` work and bounded memory.
    """
    idx = np.arange(len(x)) if among is None else np.asarray(among, np.intp)
    n = len(idx)
    k = min(k, n - 1)
    pick = np.unique(np.linspace(0, n - 1, min(rows, n)).astype(np.intp))
    query = x[idx[pick]]
    block = max(k, min(max_pairs // len(pick), _BLOCK_ROWS))
    best = np.zeros((len(pick), 0), np.float32)
    for s in range(0, n, block):
        d2 = sq32(query, x[idx[s : s + block]])
        mine = (pick >= s) & (pick < s + block)
        d2[np.flatnonzero(mine), pick[mine] - s] = np.inf  # a row is not its own neighbour
        if d2.shape[1] > k:
            d2 = np.partition(d2, k - 1, axis=1)[:, :k]
        best = np.concatenate([best, d2], axis=1)
        if best.shape[1] > k:
            best = np.partition(best, k - 1, axis=1)[:, :k]
    kth = np.partition(best, k - 1, axis=1)[:, k - 1]
    return float(np.median(np.sqrt(np.maximum(kth, 0.0))))


def knearest(
    query: NDArray[np.float64], ref: NDArray[np.float64], k: int, *, max_pairs: int = _DENSE_LIMIT
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Distances and indices of the ``k`` nearest rows of ``ref``, nearest first, reading
    ``ref`` in blocks (``len(query) x len(ref)`` work, bounded memory, no tree to build)."""
    k = min(k, len(ref))
    if k < 1 or len(query) == 0:
        return np.zeros((len(query), 0)), np.zeros((len(query), 0), np.intp)
    block = max(k, min(max_pairs // len(query), _BLOCK_ROWS))
    best_d = np.zeros((len(query), 0), np.float32)
    best_i = np.zeros((len(query), 0), np.intp)
    for s in range(0, len(ref), block):
        d2 = sq32(query, ref[s : s + block])
        idx = np.broadcast_to(np.arange(s, s + d2.shape[1], dtype=np.intp), d2.shape)
        best_d = np.concatenate([best_d, d2], axis=1)
        best_i = np.concatenate([best_i, idx], axis=1)
        if best_d.shape[1] > k:
            part = np.argpartition(best_d, k - 1, axis=1)[:, :k]
            best_d = np.take_along_axis(best_d, part, axis=1)
            best_i = np.take_along_axis(best_i, part, axis=1)
    order = np.argsort(best_d, axis=1, kind="stable")
    dist = np.sqrt(np.maximum(np.take_along_axis(best_d, order, axis=1), 0.0)).astype(np.float64)
    return dist, np.take_along_axis(best_i, order, axis=1)
