"""Helpers for the valuation tests: brute-force game values and planted data."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

Game = Callable[[frozenset[int]], float]


def exact_shapley(n: int, u: Game) -> np.ndarray:
    """Shapley values by enumerating every coalition (n <= 10)."""
    values = np.zeros(n)
    cache = {
        frozenset(s): u(frozenset(s))
        for r in range(n + 1)
        for s in itertools.combinations(range(n), r)
    }
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for r in range(n):
            w = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for s in itertools.combinations(others, r):
                fs = frozenset(s)
                values[i] += w * (cache[fs | {i}] - cache[fs])
    return values


def exact_banzhaf(n: int, u: Game) -> np.ndarray:
    values = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for r in range(n):
            for s in itertools.combinations(others, r):
                fs = frozenset(s)
                values[i] += u(fs | {i}) - u(fs)
    return values / 2 ** (n - 1)


def knn_utility(x_tr, y_tr, x_val, y_val, k: int) -> Game:
    """u(S) = mean over validation points of (1/K) #correct among the min(K,|S|) nearest in S."""
    d = ((x_val[:, None, :] - x_tr[None, :, :]) ** 2).sum(-1)

    def u(s: frozenset[int]) -> float:
        if not s:
            return 0.0
        idx = np.array(sorted(s))
        total = 0.0
        for j in range(len(y_val)):
            near = idx[np.argsort(d[j, idx], kind="stable")[:k]]
            total += np.sum(y_tr[near] == y_val[j]) / k
        return total / len(y_val)

    return u


def blobs(
    seed: int, n_prop: int = 8, size: int = 12, n_val: int = 120, d: int = 5, classes: int = 3
):
    """Separable Gaussian blobs, proposals of ``size`` examples, clean validation data."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (classes, d))
    n = n_prop * size
    y = rng.integers(0, classes, n)
    x = centres[y] + rng.normal(0, 1, (n, d))
    yv = rng.integers(0, classes, n_val)
    xv = centres[yv] + rng.normal(0, 1, (n_val, d))
    prop = np.repeat(np.arange(n_prop), size)
    return x, y, prop, xv, yv


def flip(y: np.ndarray, rows: np.ndarray, classes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = y.copy()
    y[rows] = (y[rows] + rng.integers(1, classes, len(rows))) % classes
    return y
