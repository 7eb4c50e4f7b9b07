"""Leave-one-out gain from a starting model: the original DataBright measure.

The starting model is the dataset's current best checkpoint. Each proposal is valued by
fine-tuning copies of it:

* ``against="rest"`` (default): score after fine-tuning on all proposals minus the score after
  fine-tuning on all but this one (leave-one-out);
* ``against="start"``: score after fine-tuning on this proposal alone minus the starting
  model's score (the gain the proposal brings to the checkpoint on its own).

Fine-tuning is ``epochs`` passes of ``partial_fit`` (scikit-learn ``SGDClassifier``,
``MLPClassifier``, a :class:`~databright.ml.TorchClassifier`), a refit with
``warm_start=True`` for estimators that only have that, or SGD on a torch module's copy.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from databright.errors import ValuationError
from databright.ml import TorchClassifier, is_torch_module
from databright.valuation.base import Valuation, _Estimate
from databright.valuation.data import ValuationData
from databright.valuation.dedup import CopyPolicy
from databright.valuation.flags import FlagPolicy
from databright.valuation.utility import Utility

__all__ = ["LOOGain", "fine_tune"]


def fine_tune(
    start: Any, x: NDArray[Any], y: NDArray[Any], *, epochs: int = 1, seed: int = 0
) -> Any:
    """A copy of ``start`` trained further on ``(x, y)``; ``start`` is left untouched."""
    model = copy.deepcopy(start)
    if is_torch_module(model):
        model = TorchClassifier(model, seed=seed)
    if len(y) == 0:
        return model
    rng = np.random.default_rng(seed)
    if hasattr(model, "partial_fit"):
        classes = getattr(model, "classes_", None)
        for _ in range(epochs):
            order = rng.permutation(len(y))
            if classes is None or isinstance(model, TorchClassifier):
                model.partial_fit(x[order], y[order])
            else:
                model.partial_fit(x[order], y[order], classes=classes)
        return model
    if "warm_start" in getattr(model, "get_params", dict)():
        model.set_params(warm_start=True)
        model.fit(x, y)
        return model
    raise ValuationError(
        f"{type(model).__name__} cannot be fine-tuned: it has neither partial_fit nor warm_start"
    )


class LOOGain(Valuation):
    """Accuracy gained by fine-tuning a starting model with a proposal versus without it.

    Args:
        utility: scores fine-tuned models on its validation data.
        start: the starting checkpoint (a fitted estimator or a torch module); defaults to
            the utility's model, which must then be fitted already.
        epochs: fine-tuning passes over the data.
        against: ``"rest"`` or ``"start"`` (see the module docstring).
    """

    name = "loo_gain"

    def __init__(
        self,
        utility: Utility,
        *,
        start: Any = None,
        epochs: int = 1,
        against: Literal["rest", "start"] = "rest",
        seed: int = 0,
        copy_policy: CopyPolicy | None = None,
        flags: bool = True,
        flag_policy: FlagPolicy | None = None,
    ) -> None:
        super().__init__(utility, copy_policy=copy_policy, flags=flags, flag_policy=flag_policy)
        if against not in ("rest", "start"):
            raise ValuationError('against must be "rest" or "start"')
        if epochs < 1:
            raise ValuationError("epochs must be at least 1")
        self.start = utility.model if start is None else start
        self.epochs = epochs
        self.against = against
        self.seed = seed

    def _tuned_score(self, x: NDArray[Any], y: NDArray[Any]) -> float:
        model = fine_tune(self.start, x, y, epochs=self.epochs, seed=self.seed)
        try:
            return self.utility.score(model)
        except Exception as exc:  # an unfitted start model fails here, whatever its kind
            raise ValuationError(
                f"the starting model cannot be scored ({exc}); pass a fitted checkpoint as start"
            ) from exc

    def _estimate(self, data: ValuationData, kept: NDArray[np.bool_]) -> _Estimate:
        x, y, player = data.x[kept], data.y[kept], data.player[kept]
        n_prop = len(data.arrival)
        values = np.zeros(n_prop)
        present = np.unique(player)
        if self.against == "rest":
            full = self._tuned_score(x, y)
            for p in present.tolist():
                rest = player != p
                values[p] = full - self._tuned_score(x[rest], y[rest])
            base = self._tuned_score(x[:0], y[:0])
            gain = full - base
        else:
            base = self._tuned_score(x[:0], y[:0])
            for p in present.tolist():
                mine = player == p
                values[p] = self._tuned_score(x[mine], y[mine]) - base
            gain = self._tuned_score(x, y) - base
        return _Estimate(
            proposal_values=values,
            proposal_stderr=np.zeros(n_prop),
            n_samples=len(present) + 2,
            total_gain=gain,
        )
