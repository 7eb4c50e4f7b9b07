"""Declarative model specs: parsing, canonical bytes, building, and one sentence per problem."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from databright.errors import InvalidModelSpec
from databright.ml.spec import LAYER_TYPES, MAX_PARAMETERS, ModelSpec, validate_spec

MLP: dict[str, Any] = {
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

CNN: dict[str, Any] = {
    "input_shape": [1, 8, 8],
    "classes": 10,
    "layers": [
        {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "BatchNorm2d"},
        {"type": "GELU"},
        {"type": "MaxPool2d", "kernel_size": 2},
        {"type": "Flatten"},
        {"type": "LayerNorm"},
        {"type": "Linear", "out_features": 10},
    ],
    "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9},
    "epochs": 3,
}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.update(changes)
    return out


def test_mlp_builds_and_counts_parameters() -> None:
    spec = ModelSpec.from_dict(MLP)
    module = spec.build()
    assert isinstance(module, torch.nn.Sequential)
    assert spec.parameter_count == sum(p.numel() for p in module.parameters()) == 64 * 32 + 32 + 330
    assert module(torch.zeros(5, 64)).shape == (5, 10)
    assert spec.epochs == 10 and spec.batch_size == 64 and spec.holdout == 0.2  # defaults


def test_every_layer_type_builds() -> None:
    """Each allow-listed layer appears in a spec that builds and runs."""
    conv1d = {
        "input_shape": [16],
        "classes": 3,
        "layers": [
            {"type": "Reshape", "shape": [2, 8]},
            {"type": "Conv1d", "out_channels": 4, "kernel_size": 3, "padding": 1},
            {"type": "BatchNorm1d"},
            {"type": "LeakyReLU", "negative_slope": 0.2},
            {"type": "MaxPool1d", "kernel_size": 2},
            {"type": "AvgPool1d", "kernel_size": 2, "stride": 1},
            {"type": "Tanh"},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": 8},
            {"type": "Sigmoid"},
            {"type": "BatchNorm1d"},
            {"type": "Unflatten", "shape": [2, 2, 2]},
            {"type": "AvgPool2d", "kernel_size": [1, 2]},
            {"type": "Flatten"},
            {"type": "Linear", "out_features": 3},
        ],
        "optimizer": {"type": "adamw", "lr": 0.001},
    }
    used = {layer["type"] for spec in (MLP, CNN, conv1d) for layer in spec["layers"]}
    assert used == set(LAYER_TYPES)
    for raw in (MLP, CNN, conv1d):
        spec = ModelSpec.from_dict(raw)
        module = spec.build()
        module.eval()
        assert module(torch.zeros(2, *spec.input_shape)).shape == (2, spec.classes)


def test_canonical_bytes_ignore_layout_order_and_defaults() -> None:
    spec = ModelSpec.from_dict(MLP)
    explicit = with_(MLP, epochs=10, batch_size=64, seed=0, holdout=0.2, loss="cross_entropy")
    explicit["optimizer"] = {"weight_decay": 0, "lr": 0.01, "type": "adam"}
    explicit["layers"][0] = {"bias": True, "out_features": 32, "type": "Linear"}
    pretty = json.dumps(dict(reversed(list(explicit.items()))), indent=4)
    again = ModelSpec.from_json(pretty)
    assert again == spec
    assert again.to_json() == spec.to_json()
    assert b" " not in spec.to_json()
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert validate_spec(spec) == spec == validate_spec(spec.to_json().decode())
    assert validate_spec(spec.to_json()) == spec


def test_pool_stride_defaults_to_kernel_in_canonical_form() -> None:
    spec = ModelSpec.from_dict(CNN)
    explicit = copy.deepcopy(CNN)
    explicit["layers"][3] = {"type": "MaxPool2d", "kernel_size": 2, "stride": 2}
    assert ModelSpec.from_dict(explicit).to_json() == spec.to_json()


def test_build_is_seeded_and_leaves_global_rng_alone() -> None:
    spec = ModelSpec.from_dict(MLP)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = spec.build().state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)
    b = spec.build().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = ModelSpec.from_dict(with_(MLP, seed=1)).build().state_dict()
    assert not torch.equal(a["0.weight"], other["0.weight"])


def test_architecture_digest_ignores_training_settings() -> None:
    spec = ModelSpec.from_dict(MLP)
    assert (
        spec.architecture_digest()
        == ModelSpec.from_dict(with_(MLP, epochs=3)).architecture_digest()
    )
    tanh = copy.deepcopy(MLP)
    tanh["layers"][1] = {"type": "Tanh"}
    assert spec.architecture_digest() != ModelSpec.from_dict(tanh).architecture_digest()


def _layers(*layers: dict[str, Any]) -> dict[str, Any]:
    return with_(MLP, layers=list(layers))


BAD: list[tuple[dict[str, Any], str]] = [
    (_layers({"type": "Lambda"}), "layer 0: unknown layer type 'Lambda'; allowed: Linear, Conv1d"),
    (
        _layers(
            {"type": "Linear", "out_features": 8},
            {"type": "Conv2d", "out_channels": 3, "kernel_size": 3},
        ),
        "layer 1: Conv2d needs a 3-d input (channels, height, width) but gets (8,).",
    ),
    (
        _layers({"type": "Linear", "out_features": 7}),
        "the last layer gives 7 outputs but the spec has 10 classes",
    ),
    (
        _layers(
            {"type": "Linear", "out_features": 4000},
            {"type": "Linear", "out_features": 4000},
            {"type": "Linear", "out_features": 10},
        ),
        f"the model has 16,304,010 parameters, over the limit of {MAX_PARAMETERS:,}; make the layers smaller.",
    ),
    (
        _layers({"type": "Linear", "in_features": 64, "out_features": 10}),
        "layer 0: Linear does not take 'in_features' (input sizes are inferred",
    ),
    (_layers({"type": "Linear"}), "layer 0: Linear needs 'out_features'; add it."),
    (
        _layers({"type": "Linear", "out_features": 0}),
        "layer 0: out_features is 0, outside 1..65,536",
    ),
    (
        _layers({"type": "Linear", "out_features": 2.5}),
        "layer 0: out_features must be a whole number",
    ),
    (_layers({"type": "Dropout", "p": 1.0}), "layer 0: p is 1.0, outside [0, 1)"),
    (
        _layers({"type": "ReLU", "inplace": True}),
        "layer 0: ReLU does not take 'inplace'; it takes: none.",
    ),
    (_layers("Linear"), "layer 0 must be an object like"),
    (
        _layers({"type": "Reshape", "shape": [65]}),
        "layer 0: Reshape to (65,) holds 65 numbers but its input (64,) holds 64.",
    ),
    (_layers({"type": "Reshape", "shape": []}), "layer 0: shape must be a non-empty list of sizes"),
    (
        _layers({"type": "Reshape", "shape": [1, 8, 8]}, {"type": "MaxPool2d", "kernel_size": 9}),
        "layer 1: MaxPool2d with kernel_size 9, stride 9 does not fit its input (1, 8, 8)",
    ),
    (
        _layers(
            {"type": "Reshape", "shape": [1, 8, 8]},
            {"type": "Conv2d", "out_channels": 2, "kernel_size": [9, 1]},
        ),
        "layer 1: Conv2d with kernel_size [9, 1], stride 1, padding 0 does not fit its input (1, 8, 8)",
    ),
    (
        _layers({"type": "Reshape", "shape": [1, 8, 8]}),
        "the last layer gives outputs of shape (1, 8, 8) but a classifier must give (10,)",
    ),
    (_layers(), "the spec: layers must be a non-empty list"),
    (with_(MLP, foo=1), "the spec has an unknown key 'foo'; allowed: input_shape, classes"),
    ({k: v for k, v in MLP.items() if k != "classes"}, "the spec lacks 'classes'; add it."),
    (with_(MLP, loss="mse"), "the spec: unknown loss 'mse'; allowed: cross_entropy."),
    (
        with_(MLP, optimizer={"type": "lbfgs", "lr": 1}),
        "the spec's optimizer: unknown type 'lbfgs'; allowed: adam, adamw, sgd.",
    ),
    (
        with_(MLP, optimizer={"type": "adam", "lr": 0.1, "momentum": 0.9}),
        "the spec's optimizer: adam does not take 'momentum'; it takes: lr, weight_decay.",
    ),
    (with_(MLP, optimizer={"type": "sgd"}), "the spec's optimizer: sgd needs 'lr'; add it."),
    (
        with_(MLP, optimizer={"type": "sgd", "lr": 0}),
        "the spec's optimizer: lr is 0, outside (0, 10]",
    ),
    (with_(MLP, holdout=0.9), "the spec: holdout is 0.9, outside (0, 0.5]"),
    (with_(MLP, epochs=True), "the spec: epochs must be a whole number, got true"),
    (with_(MLP, batch_size=0), "the spec: batch_size is 0, outside 1..65,536"),
    (
        with_(MLP, input_shape=[1000, 1001]),
        "input_shape (1000, 1001) has 1,001,000 numbers per example, over the limit",
    ),
    (with_(MLP, input_shape=[0]), "the spec: input_shape[0] is 0"),
    (with_(MLP, classes=1), "the spec: classes is 1, outside 2..65,536"),
    (_layers(*([{"type": "ReLU"}] * 129)), "the spec has 129 layers, over the limit of 128"),
    ([1, 2], "the spec must be a JSON object"),
]


@pytest.mark.parametrize(("raw", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_each_problem_is_one_sentence(raw: Any, message: str) -> None:
    with pytest.raises(InvalidModelSpec) as info:
        ModelSpec.from_dict(raw)
    text = str(info.value)
    assert message in text
    assert "\n" not in text and text.endswith(".")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"classes": 2, "classes": 3}', "the spec repeats the key 'classes'"),
        ('{"holdout": NaN}', "the spec contains NaN, which is not JSON"),
        ('{"holdout": Infinity}', "the spec contains Infinity"),
        ("[1", "the spec is not valid JSON (Expecting"),
        (b"\xff\xfe", "the spec is not UTF-8 text"),
        (b" " * 300_000, "the spec is 300,000 bytes, over the limit"),
    ],
)
def test_json_problems(text: str | bytes, message: str) -> None:
    with pytest.raises(
        InvalidModelSpec, match="^" + message.replace("(", r"\(").replace("[", r"\[")
    ):
        ModelSpec.from_json(text)


def test_check_dataset() -> None:
    spec = ModelSpec.from_dict(MLP)
    spec.check_dataset((64,), 10)
    spec.check_dataset([64], 10)
    with pytest.raises(
        InvalidModelSpec,
        match=r"expects examples of shape \(64,\) but the dataset's examples have shape \(8, 8\)",
    ):
        spec.check_dataset((8, 8), 10)
    with pytest.raises(InvalidModelSpec, match="the spec has 10 classes but the dataset has 3"):
        spec.check_dataset((64,), 3)


def test_huge_layer_is_refused_without_allocating() -> None:
    """Validation runs on the meta device: billions of parameters cost nothing to refuse."""
    raw = _layers(
        {"type": "Linear", "out_features": 65_536},
        {"type": "Linear", "out_features": 65_536},
        {"type": "Linear", "out_features": 10},
    )
    with pytest.raises(InvalidModelSpec, match="the model has 8,590,721,034 parameters"):
        ModelSpec.from_dict(with_(raw, input_shape=[65_536]))


@settings(max_examples=30, deadline=None)
@given(
    widths=st.lists(st.integers(1, 48), min_size=0, max_size=3),
    act=st.sampled_from(["ReLU", "GELU", "Tanh", "Sigmoid"]),
    features=st.integers(1, 32),
    classes=st.integers(2, 12),
    lr=st.floats(1e-5, 1.0),
)
def test_random_mlps_round_trip(
    widths: list[int], act: str, features: int, classes: int, lr: float
) -> None:
    """Any valid MLP: canonical bytes are a fixed point, and the counted parameters are the
    built module's."""
    layers: list[dict[str, Any]] = []
    for w in widths:
        layers += [{"type": "Linear", "out_features": w}, {"type": act}]
    layers.append({"type": "Linear", "out_features": classes})
    raw = {
        "input_shape": [features],
        "classes": classes,
        "layers": layers,
        "optimizer": {"type": "sgd", "lr": lr},
    }
    spec = ModelSpec.from_dict(raw)
    assert ModelSpec.from_json(spec.to_json()).to_json() == spec.to_json()
    assert spec.parameter_count == sum(p.numel() for p in spec.build().parameters())
