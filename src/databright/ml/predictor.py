"""Serving predictions from a registered checkpoint, with as little per-request overhead as torch
itself.

A serving node answers many small paid requests, so the weights are loaded once (through
:func:`load_checkpoint`: the spec builds the network, the checkpoint only fills its tensors) and
each call does only what plain inference does: one zero-copy conversion of the input, one
forward pass under ``torch.inference_mode``, one argmax. The input's shape is checked against
the spec (one sentence when it is wrong), because a wrongly shaped request must be refused before
it is paid for, not fail deep inside torch.

Threads: torch's intra-op thread count is process-wide. A predictor sets it (to ``threads``, one
by default) when it is created, which is what a serving process wants; batches of the sizes
served here (1 to a few hundred rows of a small network) are fastest on one thread anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from databright.errors import InvalidArgument
from databright.ml.checkpoint import load_checkpoint
from databright.ml.spec import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = ["MAX_BATCH", "Predictor", "as_batch"]

MAX_BATCH = 65_536
"""The most examples one call predicts: a request is paid per prediction, and a huge one would
hold the serving node for everyone else."""


def as_batch(x: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.float32]:
    """``x`` as a C-contiguous float32 batch of examples of ``shape`` (one example becomes a
    batch of one); one sentence when it is not that."""
    try:
        a = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidArgument(
            "the input is not an array of numbers; send numbers shaped like the examples."
        ) from None
    if a.shape == shape:
        a = a[None]
    elif a.ndim != len(shape) + 1 or a.shape[1:] != shape:
        raise InvalidArgument(
            f"the input has shape {a.shape} but the model takes "
            f"(examples, {', '.join(map(str, shape))}) or one example of shape {shape}; "
            "reshape it."
        )
    if not 0 < len(a) <= MAX_BATCH:
        raise InvalidArgument(
            f"the input has {len(a):,} examples; send between 1 and {MAX_BATCH:,}."
        )
    # No finiteness check: NaN in gives an arbitrary class out, as in plain torch, and a numpy
    # pass over the input between torch calls measured 15-25 us per request here.
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


class Predictor:
    """A checkpoint ready to answer: ``predict`` gives class numbers, ``predict_proba`` the
    softmax probabilities, for a batch ``(n, *input_shape)`` or one example ``input_shape``."""

    def __init__(self, spec: ModelSpec, checkpoint: bytes, *, threads: int | None = 1) -> None:
        import torch

        self.spec = spec
        self.module: torch.nn.Module = load_checkpoint(checkpoint, spec)
        self.module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise InvalidArgument(
                    f"threads must be a whole number of at least 1, got {threads!r}."
                )
            torch.set_num_threads(threads)
        self._shape = spec.input_shape

    def _batch(self, x: ArrayLike) -> torch.Tensor:
        import torch

        return torch.from_numpy(as_batch(x, self._shape))

    def logits(self, x: ArrayLike) -> NDArray[np.float32]:
        """The network's raw outputs, one row of ``classes`` numbers per example."""
        import torch

        xt = self._batch(x)
        with torch.inference_mode():
            return cast("NDArray[np.float32]", self.module(xt).numpy())

    def predict(self, x: ArrayLike) -> NDArray[np.int64]:
        """Class numbers ``0..classes-1``, one per example."""
        import torch

        xt = self._batch(x)
        with torch.inference_mode():
            return cast("NDArray[np.int64]", self.module(xt).argmax(1).numpy())

    def predict_proba(self, x: ArrayLike) -> NDArray[np.float32]:
        """Class probabilities (softmax of the logits), one row per example."""
        import torch

        xt = self._batch(x)
        with torch.inference_mode():
            return cast("NDArray[np.float32]", torch.softmax(self.module(xt), dim=1).numpy())

    def __call__(self, x: ArrayLike) -> NDArray[np.int64]:
        return self.predict(x)

    def __repr__(self) -> str:
        return (
            f"Predictor(input_shape={self.spec.input_shape}, classes={self.spec.classes}, "
            f"parameters={self.spec.parameter_count:,})"
        )
