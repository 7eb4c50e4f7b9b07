"""ONNX export of a checkpoint, and a predictor that serves it with ONNX Runtime.

Measured here on the digits MLP of ``benchmarks/specs/digits_mlp.json`` (one thread, the same
weights, predictions identical): ONNX Runtime answered in about half the time of torch eager
inference at batch 1 and at batch 64 (torch's per-call dispatch dominates networks this small).
So a serving node may prefer :class:`OnnxPredictor`; :class:`databright.ml.Predictor` stays the
reference that needs nothing beyond torch.

The graph is exported from the network the spec builds, filled with the checkpoint's tensors
(never from an owner's code), with a dynamic batch dimension, by torch's TorchScript exporter
(``dynamo=False``: the newer exporter needs ``onnxscript``, which nothing else here uses).
``onnx`` and ``onnxruntime`` are imported only when these functions are used.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from databright.errors import InvalidArgument, ModelError
from databright.ml.checkpoint import load_checkpoint
from databright.ml.predictor import as_batch
from databright.ml.spec import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = ["OPSET", "OnnxPredictor", "export_onnx"]

OPSET = 17
"""ONNX operator set of exported graphs (LayerNormalization needs 17)."""


def _export_module(module: torch.nn.Module, spec: ModelSpec) -> bytes:
    import torch

    try:
        import onnx  # noqa: F401  (torch's exporter needs it; say so in our words if absent)
    except ImportError:
        raise ModelError(
            "ONNX export needs the 'onnx' package; install it with pip install onnx."
        ) from None
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            (torch.zeros((1, *spec.input_shape)),),
            buffer,  # type: ignore[arg-type]  # file-like objects are accepted
            dynamo=False,
            opset_version=OPSET,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            do_constant_folding=True,
        )
    return buffer.getvalue()


def export_onnx(spec: ModelSpec, checkpoint: bytes) -> bytes:
    """The checkpoint as an ONNX model (input ``x``: ``(batch, *input_shape)`` float32; output
    ``logits``: ``(batch, classes)``). The checkpoint is verified against the spec first."""
    module = load_checkpoint(checkpoint, spec)
    return _export_module(module, spec)


class OnnxPredictor:
    """The same interface as :class:`databright.ml.Predictor`, answered by ONNX Runtime on
    the CPU with ``threads`` intra-op threads."""

    def __init__(self, spec: ModelSpec, checkpoint: bytes, *, threads: int = 1) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ModelError(
                "ONNX serving needs the 'onnxruntime' package; install it with "
                "pip install onnxruntime, or serve with Predictor."
            ) from None
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise InvalidArgument(f"threads must be a whole number of at least 1, got {threads!r}.")
        self.spec = spec
        self.model = export_onnx(spec, checkpoint)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session: Any = onnxruntime.InferenceSession(
            self.model, options, providers=["CPUExecutionProvider"]
        )
        self._shape = spec.input_shape

    def logits(self, x: ArrayLike) -> NDArray[np.float32]:
        return cast(
            "NDArray[np.float32]", self._session.run(None, {"x": as_batch(x, self._shape)})[0]
        )

    def predict(self, x: ArrayLike) -> NDArray[np.int64]:
        return cast("NDArray[np.int64]", self.logits(x).argmax(1))

    def predict_proba(self, x: ArrayLike) -> NDArray[np.float32]:
        z = self.logits(x)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return cast("NDArray[np.float32]", e / e.sum(axis=1, keepdims=True))

    def __call__(self, x: ArrayLike) -> NDArray[np.int64]:
        return self.predict(x)
