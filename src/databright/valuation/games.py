"""Games over proposals: u(S) for a coalition S of proposals, built from a utility.

A proposal's Shapley or Banzhaf value is computed from the utilities of many coalitions of
proposals. :func:`proposal_game` builds the game for a utility: an exact fast path for
ridge and k-nearest-neighbour classifiers (:mod:`databright.valuation.fast_games`), otherwise
:class:`_ModelGame`, which refits the model per coalition and caches coalition scores.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.valuation.utility import Utility

__all__ = ["Game", "proposal_game"]


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


def proposal_game(
    utility: Utility, x: NDArray[Any], y: NDArray[Any], player: NDArray[np.intp], n_players: int
) -> Game:
    """The game whose players are proposals: u(S) = utility of the union of their examples."""
    # fast_games builds on Game, so it can only be imported once this module is
    from databright.valuation.fast_games import _KNNGame, _RidgeGame

    alpha = utility.ridge_alpha()
    if alpha is not None:
        return _RidgeGame(utility, alpha, x, y, player, n_players)
    k = utility.knn_k()
    if k is not None:
        return _KNNGame(utility, k, x, y, player, n_players)
    return _ModelGame(utility, x, y, player, n_players)
