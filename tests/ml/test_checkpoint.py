"""Checkpoints: safetensors bytes, deterministic, read back by the safetensors library, and
refused with one sentence when they do not fit the spec."""

from __future__ import annotations

import copy
import json
import struct

import pytest
import safetensors.torch
import torch

from databright.errors import CheckpointMismatch
from databright.ml.checkpoint import (
    ARCHITECTURE_KEY,
    checkpoint_metadata,
    checkpoint_tensors,
    load_checkpoint,
    save_checkpoint,
)
from databright.ml.spec import ModelSpec

MLP = {
    "input_shape": [64],
    "classes": 10,
    "layers": [
        {"type": "Linear", "out_features": 32},
        {"type": "ReLU"},
        {"type": "Dropout", "p": 0.1},
        {"type": "Linear", "out_features": 10},
    ],
    "optimizer": {"type": "adam", "lr": 0.01},
}
CNN = {
    "input_shape": [1, 8, 8],
    "classes": 10,
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "BatchNorm2d"},
        {"type": "ReLU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "Linear", "out_features": 10},
    ],
    "optimizer": {"type": "sgd", "lr": 0.1},
}


@pytest.fixture(scope="module")
def cnn() -> ModelSpec:
    return ModelSpec.from_dict(CNN)


@pytest.fixture(scope="module")
def mlp() -> ModelSpec:
    return ModelSpec.from_dict(MLP)


def test_round_trip_gives_the_same_function(cnn: ModelSpec) -> None:
    module = cnn.build()
    with torch.no_grad():  # make the batch-norm statistics non-trivial
        module[1].running_mean.add_(0.5)
        module[1].num_batches_tracked.add_(7)
    module.eval()
    blob = save_checkpoint(module, {"format": "pt"}, spec=cnn)
    loaded = load_checkpoint(blob, cnn)
    assert not loaded.training
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(module(x), loaded(x))
    for name, tensor in module.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])
    assert all(p.requires_grad for p in loaded.parameters())  # ready to fine-tune


def test_bytes_are_deterministic_and_read_by_safetensors(cnn: ModelSpec) -> None:
    module = cnn.build()
    meta_a = {f"k{i}": str(i) for i in range(20)}
    meta_b = dict(reversed(list(meta_a.items())))
    blob = save_checkpoint(module, meta_a, spec=cnn)
    assert blob == save_checkpoint(module, meta_b, spec=cnn)
    assert blob == save_checkpoint(copy.deepcopy(module), meta_a, spec=cnn)
    (size,) = struct.unpack("<Q", blob[:8])
    assert size % 8 == 0
    # The library itself reads every tensor back, bit for bit.
    theirs = safetensors.torch.load(blob)
    assert set(theirs) == set(module.state_dict())
    for name, tensor in module.state_dict().items():
        assert torch.equal(theirs[name], tensor) and theirs[name].dtype == tensor.dtype
    # Every tensor starts at a multiple of its element size.
    header = json.loads(blob[8 : 8 + size])
    for name, entry in header.items():
        if name != "__metadata__":
            assert entry["data_offsets"][0] % theirs[name].element_size() == 0


def test_metadata(mlp: ModelSpec) -> None:
    blob = save_checkpoint(mlp.build(), {"format": "pt", "dataset": "7"}, spec=mlp)
    meta = checkpoint_metadata(blob)
    assert meta == {"format": "pt", "dataset": "7", ARCHITECTURE_KEY: mlp.architecture_digest()}
    assert checkpoint_metadata(save_checkpoint(mlp.build())) == {}
    with pytest.raises(
        CheckpointMismatch, match="metadata must map text to text, but 'n' maps to int"
    ):
        save_checkpoint(mlp.build(), {"n": 3})  # type: ignore[dict-item]


def test_changed_weights_change_bytes(mlp: ModelSpec) -> None:
    module = mlp.build()
    blob = save_checkpoint(module)
    with torch.no_grad():
        module[0].weight[0, 0] += 1e-6
    assert save_checkpoint(module) != blob


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "not a safetensors file: 0 bytes is too short for a header"),
        (
            struct.pack("<Q", 10**12) + b"{}",
            "not a safetensors file: the header claims 1,000,000,000,000 bytes",
        ),
        (struct.pack("<Q", 4) + b"\xff\xfe{}", "not a safetensors file: its header is not JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a safetensors file: its header is not a JSON object"),
        (
            struct.pack("<Q", 56) + b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}',
            "not a safetensors file:",
        ),
        (b"\x80\x04\x95" + b"pickle!" * 4, "not a safetensors file"),
    ],
)
def test_not_a_checkpoint(mlp: ModelSpec, blob: bytes, message: str) -> None:
    with pytest.raises(CheckpointMismatch) as info:
        load_checkpoint(blob, mlp)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def _tampered(spec: ModelSpec, change: str) -> bytes:
    tensors = dict(spec.build().state_dict())
    if change == "missing":
        del tensors["3.bias"]
    elif change == "shape":
        tensors["3.weight"] = torch.zeros(10, 31)
    elif change == "dtype":
        tensors["3.weight"] = tensors["3.weight"].double()
    elif change == "extra":
        tensors["4.weight"] = torch.zeros(2)
    return safetensors.torch.save(tensors)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", "the checkpoint lacks tensor 3.bias, which the spec builds"),
        ("shape", "tensor 3.weight has shape (10, 31) but the spec builds (10, 32)."),
        ("dtype", "tensor 3.weight has dtype float64 but the spec builds float32."),
        ("extra", "the checkpoint has tensor 4.weight, which the spec does not build"),
    ],
)
def test_tensors_that_do_not_fit(mlp: ModelSpec, change: str, message: str) -> None:
    blob = _tampered(mlp, change)
    with pytest.raises(CheckpointMismatch) as info:
        load_checkpoint(blob, mlp)
    assert str(info.value).startswith(message)


def test_same_tensors_other_architecture_is_refused(mlp: ModelSpec) -> None:
    """Tanh instead of ReLU has tensors of the very same names and shapes."""
    tanh_raw = copy.deepcopy(MLP)
    tanh_raw["layers"][1] = {"type": "Tanh"}
    tanh = ModelSpec.from_dict(tanh_raw)
    blob = save_checkpoint(mlp.build(), spec=mlp)
    with pytest.raises(CheckpointMismatch, match="made for another architecture"):
        load_checkpoint(blob, tanh)
    # Without the recorded digest the tensors alone cannot tell, and they load.
    load_checkpoint(save_checkpoint(mlp.build()), tanh)


def test_checkpoint_tensors(mlp: ModelSpec) -> None:
    module = mlp.build()
    tensors = checkpoint_tensors(save_checkpoint(module))
    assert set(tensors) == set(module.state_dict())
