"""Serving: predictions equal plain torch's, inputs checked with one sentence, ONNX agrees."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from databright.errors import CheckpointMismatch, InvalidArgument
from databright.ml.checkpoint import save_checkpoint
from databright.ml.predictor import MAX_BATCH, Predictor
from databright.ml.spec import ModelSpec

RAW: dict[str, Any] = {
    "input_shape": [1, 8, 8],
    "classes": 10,
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "BatchNorm2d"},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "LayerNorm"},
        {"type": "Dropout", "p": 0.2},
        {"type": "Linear", "out_features": 10},
    ],
    "optimizer": {"type": "sgd", "lr": 0.1},
}


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec.from_dict(RAW)


@pytest.fixture(scope="module")
def weights(spec: ModelSpec) -> tuple[torch.nn.Module, bytes]:
    module = spec.build()
    with torch.no_grad():
        module[1].running_var.fill_(2.0)
    module.eval()
    return module, save_checkpoint(module, spec=spec)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(50, 1, 8, 8)).astype(np.float32)


def test_predictions_equal_plain_torch(
    spec: ModelSpec, weights: tuple[torch.nn.Module, bytes], x: np.ndarray
) -> None:
    module, blob = weights
    predictor = Predictor(spec, blob)
    with torch.no_grad():
        logits = module(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(predictor.logits(x), logits)
    np.testing.assert_array_equal(predictor.predict(x), logits.argmax(1))
    np.testing.assert_array_equal(predictor(x), logits.argmax(1))
    proba = predictor.predict_proba(x)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(proba.argmax(1), logits.argmax(1))
    # Batch 1 and one bare example give the batch's answer; float64 and lists are converted.
    assert predictor.predict(x[3]).tolist() == [logits[3].argmax()]
    assert predictor.predict(x[3:4].astype(np.float64)).tolist() == [logits[3].argmax()]
    assert predictor.predict(x[:2].tolist()).tolist() == logits[:2].argmax(1).tolist()
    # A non-contiguous view is served too.
    np.testing.assert_array_equal(predictor.predict(x[::2]), logits[::2].argmax(1))
    assert predictor.predict(x).dtype == np.int64
    assert "classes=10" in repr(predictor)


def test_predictor_pins_threads(spec: ModelSpec, weights: tuple[torch.nn.Module, bytes]) -> None:
    before = torch.get_num_threads()
    try:
        Predictor(spec, weights[1], threads=1)
        assert torch.get_num_threads() == 1
        Predictor(spec, weights[1], threads=None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(InvalidArgument, match="threads must be a whole number of at least 1"):
        Predictor(spec, weights[1], threads=0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            np.zeros((2, 64), np.float32),
            r"the input has shape \(2, 64\) but the model takes \(examples, 1, 8, 8\) or one example of shape \(1, 8, 8\)",
        ),
        (np.zeros((8, 8), np.float32), r"the input has shape \(8, 8\)"),
        (np.zeros((0, 1, 8, 8), np.float32), "the input has 0 examples; send between 1 and"),
        (
            np.zeros((MAX_BATCH + 1, 1, 1, 1), np.float32).reshape(-1)[:0],
            r"the input has shape \(0,\)",
        ),
        ([["a"]], "the input is not an array of numbers"),
    ],
)
def test_bad_input_is_one_sentence(
    spec: ModelSpec, weights: tuple[torch.nn.Module, bytes], value: Any, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        Predictor(spec, weights[1]).predict(value)


def test_too_many_examples(weights: tuple[torch.nn.Module, bytes]) -> None:
    tiny = ModelSpec.from_dict(
        {
            "input_shape": [1],
            "classes": 2,
            "layers": [{"type": "Linear", "out_features": 2}],
            "optimizer": {"type": "sgd", "lr": 0.1},
        }
    )
    predictor = Predictor(tiny, save_checkpoint(tiny.build(), spec=tiny))
    assert predictor.predict(np.zeros((MAX_BATCH, 1))).shape == (MAX_BATCH,)
    with pytest.raises(
        InvalidArgument, match=r"the input has 65,537 examples; send between 1 and 65,536\."
    ):
        predictor.predict(np.zeros((MAX_BATCH + 1, 1)))


def test_checkpoint_must_fit(spec: ModelSpec) -> None:
    other = ModelSpec.from_dict(
        {
            **RAW,
            "layers": [*RAW["layers"][:-1], {"type": "Linear", "out_features": 10, "bias": False}],
        }
    )
    with pytest.raises(CheckpointMismatch):
        Predictor(spec, save_checkpoint(other.build(), spec=other))
    with pytest.raises(CheckpointMismatch, match="not a safetensors file"):
        Predictor(spec, b"\x80\x04pickled")


def test_onnx_serves_the_same_predictions(
    spec: ModelSpec, weights: tuple[torch.nn.Module, bytes], x: np.ndarray
) -> None:
    pytest.importorskip("onnxruntime")
    from databright.ml.onnx import OnnxPredictor, export_onnx

    module, blob = weights
    onnx_predictor = OnnxPredictor(spec, blob)
    with torch.no_grad():
        logits = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(onnx_predictor.logits(x), logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(onnx_predictor.predict(x), logits.argmax(1))
    np.testing.assert_array_equal(onnx_predictor(x[0]), logits[:1].argmax(1))
    np.testing.assert_allclose(onnx_predictor.predict_proba(x).sum(1), 1.0, rtol=1e-5)
    assert export_onnx(spec, blob) == onnx_predictor.model  # the same checkpoint, the same bytes
    with pytest.raises(InvalidArgument, match=r"the input has shape \(2, 64\)"):
        onnx_predictor.predict(np.zeros((2, 64)))
    with pytest.raises(CheckpointMismatch):
        export_onnx(spec, b"")
