"""Features mapped through an embedding: a torch module or any callable."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from databright.ml.estimator import is_torch_module

__all__ = ["embed"]


def embed(fn: Any, x: NDArray[np.float64], batch: int = 4096) -> NDArray[np.float64]:
    """``fn(x)`` as a float64 array of one row per example; ``x`` itself when ``fn`` is None.

    A torch module is run in evaluation mode, without gradients, on float32 batches of
    ``batch`` rows, so a large dataset does not have to fit through it at once.
    """
    if fn is None:
        return x
    if is_torch_module(fn):
        import torch

        out = []
        fn.eval()
        with torch.no_grad():
            for s in range(0, len(x), batch):
                out.append(fn(torch.as_tensor(x[s : s + batch], dtype=torch.float32)).numpy())
        e = np.concatenate(out).astype(np.float64)
    else:
        e = np.asarray(fn(x), dtype=np.float64)
    return e.reshape(len(x), -1)
