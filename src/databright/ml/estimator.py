"""The scikit-learn estimator interface, and torch modules adapted to it.

Valuation fits and scores models through scikit-learn's interface (``fit``, ``predict``,
``partial_fit``, ``decision_function``, ``clone``). A torch module is wrapped in
:class:`TorchClassifier` so the same code trains it; torch itself is imported only when a
module is actually used, so scikit-learn-only users never pay for importing it.
"""

from __future__ import annotations

import copy
import sys
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from databright.errors import ValuationError

__all__ = ["TorchClassifier", "as_estimator", "fresh", "is_torch_module"]


def is_torch_module(model: object) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (False, without importing torch, if torch
    has not been imported: then nothing can be a module)."""
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
        if not is_torch_module(module):
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
    if is_torch_module(model):
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
