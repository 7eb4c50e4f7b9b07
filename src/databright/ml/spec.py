"""Declarative model specs: a model is data (JSON), never code.

A model owner in the market hands in a JSON document naming allow-listed ``torch.nn`` layers and
their arguments, the input shape of one example, the number of classes, the loss and the
optimiser. Nobody ever runs an owner's code: :meth:`ModelSpec.build` turns the spec into a
``torch.nn.Sequential`` of known layers only. Input sizes of layers (``in_features``,
``in_channels``, normalised shapes) are inferred, never written, so a spec cannot disagree with
itself.

Validation runs the network once on the ``meta`` device: torch works out every shape and the
parameter count without allocating a byte, so even a spec asking for billions of parameters is
refused cheaply. Each problem is reported as one sentence naming the layer.

:meth:`ModelSpec.to_json` gives canonical bytes (sorted keys, no spaces, defaults written out),
so the same spec always has the same bytes and therefore the same content address.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from databright.errors import InvalidModelSpec

if TYPE_CHECKING:
    import torch

__all__ = [
    "LAYER_TYPES",
    "MAX_INPUT_SIZE",
    "MAX_LAYERS",
    "MAX_PARAMETERS",
    "MAX_SPEC_BYTES",
    "OPTIMIZERS",
    "Layer",
    "ModelSpec",
    "Optimizer",
    "validate_spec",
]

MAX_PARAMETERS = 10_000_000
"""The most trainable parameters a spec may have: keeps training and serving on a CPU node
bounded (40 MB of float32 weights)."""

MAX_LAYERS = 128
MAX_INPUT_SIZE = 1_000_000
"""The most numbers in one example (the product of ``input_shape``)."""

MAX_SPEC_BYTES = 256 * 1024
"""A spec is a short document; anything longer is refused before parsing."""

_MAX_WIDTH = 65_536  # out_features / out_channels
_MAX_KERNEL = 64
_MAX_EPOCHS = 10_000
_MAX_BATCH = 65_536
_MAX_SEED = 2**63 - 1

OPTIMIZERS = ("adam", "adamw", "sgd")
_LOSSES = ("cross_entropy",)


# --- argument checkers ---------------------------------------------------------------------
# Each takes (where, name, value) and returns the normalised value or raises one sentence.


def _int_in(lo: int, hi: int) -> Callable[[str, str, Any], int]:
    def check(where: str, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidModelSpec(
                f"{where}: {name} must be a whole number, got {_show(value)}; write e.g. {lo}."
            )
        if not lo <= value <= hi:
            raise InvalidModelSpec(
                f"{where}: {name} is {value:,}, outside {lo:,}..{hi:,}; choose a value in that range."
            )
        return value

    return check


def _float_in(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Any:
    def check(where: str, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidModelSpec(f"{where}: {name} must be a number, got {_show(value)}.")
        v = float(value)
        below = v <= lo if lo_open else v < lo
        above = v >= hi if hi_open else v > hi
        if not math.isfinite(v) or below or above:
            left = "(" if lo_open else "["
            right = ")" if hi_open else "]"
            raise InvalidModelSpec(
                f"{where}: {name} is {_show(value)}, outside {left}{lo:g}, {hi:g}{right}; "
                "choose a value in that range."
            )
        return v

    return check


def _int_or_pair(lo: int, hi: int) -> Callable[[str, str, Any], int | tuple[int, ...]]:
    single = _int_in(lo, hi)

    def check(where: str, name: str, value: Any) -> int | tuple[int, ...]:
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise InvalidModelSpec(
                    f"{where}: {name} must be a number or a pair [height, width], "
                    f"got {len(value)} numbers."
                )
            return tuple(single(where, name, v) for v in value)
        return single(where, name, value)

    return check


def _shape(where: str, name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise InvalidModelSpec(
            f"{where}: {name} must be a non-empty list of sizes such as [1, 8, 8], got {_show(value)}."
        )
    check = _int_in(1, MAX_INPUT_SIZE)
    return tuple(check(where, f"{name}[{i}]", v) for i, v in enumerate(value))


def _bool(where: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidModelSpec(f"{where}: {name} must be true or false, got {_show(value)}.")
    return value


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) or not _jsonable(value) else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class _LayerKind:
    """What a layer type accepts: its arguments (checker, default; ``None`` default = required)
    and the number of dimensions its input must have (without the batch), if it cares."""

    args: Mapping[str, tuple[Callable[[str, str, Any], Any], Any]]
    input_dims: tuple[int, ...] | None = None
    input_words: str = ""


_REQUIRED: Any = object()
_SAME_AS_KERNEL: Any = object()  # a pooling stride left out is the kernel size, as in torch

_NONE: Mapping[str, tuple[Callable[[str, str, Any], Any], Any]] = {}

_KINDS: dict[str, _LayerKind] = {
    "Linear": _LayerKind(
        {"out_features": (_int_in(1, _MAX_WIDTH), _REQUIRED), "bias": (_bool, True)},
        (1,),
        "(features,)",
    ),
    "Conv1d": _LayerKind(
        {
            "out_channels": (_int_in(1, _MAX_WIDTH), _REQUIRED),
            "kernel_size": (_int_in(1, _MAX_KERNEL), _REQUIRED),
            "stride": (_int_in(1, _MAX_KERNEL), 1),
            "padding": (_int_in(0, _MAX_KERNEL), 0),
            "bias": (_bool, True),
        },
        (2,),
        "(channels, length)",
    ),
    "Conv2d": _LayerKind(
        {
            "out_channels": (_int_in(1, _MAX_WIDTH), _REQUIRED),
            "kernel_size": (_int_or_pair(1, _MAX_KERNEL), _REQUIRED),
            "stride": (_int_or_pair(1, _MAX_KERNEL), 1),
            "padding": (_int_or_pair(0, _MAX_KERNEL), 0),
            "bias": (_bool, True),
        },
        (3,),
        "(channels, height, width)",
    ),
    "ReLU": _LayerKind(_NONE),
    "GELU": _LayerKind(_NONE),
    "Tanh": _LayerKind(_NONE),
    "Sigmoid": _LayerKind(_NONE),
    "LeakyReLU": _LayerKind({"negative_slope": (_float_in(0.0, 1.0), 0.01)}),
    "Dropout": _LayerKind({"p": (_float_in(0.0, 1.0, hi_open=True), 0.5)}),
    "Flatten": _LayerKind(_NONE),
    "BatchNorm1d": _LayerKind(_NONE, (1, 2), "(features,) or (channels, length)"),
    "BatchNorm2d": _LayerKind(_NONE, (3,), "(channels, height, width)"),
    "LayerNorm": _LayerKind(_NONE),
    "MaxPool1d": _LayerKind(
        {
            "kernel_size": (_int_in(1, _MAX_KERNEL), _REQUIRED),
            "stride": (_int_in(1, _MAX_KERNEL), _SAME_AS_KERNEL),
        },
        (2,),
        "(channels, length)",
    ),
    "AvgPool1d": _LayerKind(
        {
            "kernel_size": (_int_in(1, _MAX_KERNEL), _REQUIRED),
            "stride": (_int_in(1, _MAX_KERNEL), _SAME_AS_KERNEL),
        },
        (2,),
        "(channels, length)",
    ),
    "MaxPool2d": _LayerKind(
        {
            "kernel_size": (_int_or_pair(1, _MAX_KERNEL), _REQUIRED),
            "stride": (_int_or_pair(1, _MAX_KERNEL), _SAME_AS_KERNEL),
        },
        (3,),
        "(channels, height, width)",
    ),
    "AvgPool2d": _LayerKind(
        {
            "kernel_size": (_int_or_pair(1, _MAX_KERNEL), _REQUIRED),
            "stride": (_int_or_pair(1, _MAX_KERNEL), _SAME_AS_KERNEL),
        },
        (3,),
        "(channels, height, width)",
    ),
    "Reshape": _LayerKind({"shape": (_shape, _REQUIRED)}),
    "Unflatten": _LayerKind({"shape": (_shape, _REQUIRED)}),
}

LAYER_TYPES: tuple[str, ...] = tuple(_KINDS)
"""The layer types a spec may use, in the order the error messages list them."""

_OPTIMIZER_ARGS: dict[str, dict[str, tuple[Callable[[str, str, Any], Any], Any]]] = {
    "sgd": {
        "lr": (_float_in(0.0, 10.0, lo_open=True), _REQUIRED),
        "momentum": (_float_in(0.0, 1.0, hi_open=True), 0.0),
        "weight_decay": (_float_in(0.0, 1.0), 0.0),
    },
    "adam": {
        "lr": (_float_in(0.0, 10.0, lo_open=True), _REQUIRED),
        "weight_decay": (_float_in(0.0, 1.0), 0.0),
    },
    "adamw": {
        "lr": (_float_in(0.0, 10.0, lo_open=True), _REQUIRED),
        "weight_decay": (_float_in(0.0, 1.0), 0.01),
    },
}


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, list | tuple) else value


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


def _arguments(
    where: str,
    kind_name: str,
    given: Mapping[str, Any],
    allowed: Mapping[str, tuple[Callable[[str, str, Any], Any], Any]],
    hint: str = "",
) -> tuple[tuple[str, Any], ...]:
    """Checked arguments with defaults filled in, sorted by name (so the spec is canonical)."""
    for name in given:
        if name not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise InvalidModelSpec(
                f"{where}: {kind_name} does not take {name!r}{hint}; it takes: {names}."
            )
    out = []
    for name, (check, default) in sorted(allowed.items()):
        if name in given:
            out.append((name, _freeze(check(where, name, given[name]))))
        elif default is _REQUIRED:
            raise InvalidModelSpec(f"{where}: {kind_name} needs {name!r}; add it.")
        elif default is _SAME_AS_KERNEL:
            out.append((name, _freeze(check(where, "kernel_size", given.get("kernel_size")))))
        else:
            out.append((name, default))
    return tuple(out)


@dataclass(frozen=True)
class Layer:
    """One allow-listed layer: its type and its checked arguments (sorted, defaults filled in)."""

    type: str
    args: tuple[tuple[str, Any], ...] = ()

    def arg(self, name: str, default: Any = None) -> Any:
        return dict(self.args).get(name, default)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **{k: _thaw(v) for k, v in self.args}}


@dataclass(frozen=True)
class Optimizer:
    """The optimiser and its settings (``momentum`` only for SGD)."""

    type: str
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "lr": self.lr, "weight_decay": self.weight_decay}
        if self.type == "sgd":
            out["momentum"] = self.momentum
        return out

    def build(self, params: Any) -> torch.optim.Optimizer:
        import torch

        if self.type == "sgd":
            return torch.optim.SGD(
                params,
                lr=self.lr,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
                foreach=False,
            )
        cls = torch.optim.Adam if self.type == "adam" else torch.optim.AdamW
        # foreach=False: the single-tensor path is the one whose arithmetic we pin down.
        return cls(params, lr=self.lr, weight_decay=self.weight_decay, foreach=False)


_TOP_LEVEL: dict[str, Any] = {
    "input_shape": None,
    "classes": None,
    "layers": None,
    "loss": "cross_entropy",
    "optimizer": None,
    "epochs": 10,
    "batch_size": 64,
    "seed": 0,
    "holdout": 0.2,
}


@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec; build one with :meth:`from_json`, :meth:`from_dict` or
    :func:`validate_spec` (the constructor does not check anything).

    ``input_shape`` is one example's shape (no batch dimension); the network maps a batch of
    examples to ``classes`` logits. ``holdout`` is the fraction of a dataset that training
    keeps aside (stratified, seeded) to report metrics on.
    """

    input_shape: tuple[int, ...]
    classes: int
    layers: tuple[Layer, ...]
    optimizer: Optimizer
    loss: str = "cross_entropy"
    epochs: int = 10
    batch_size: int = 64
    seed: int = 0
    holdout: float = 0.2
    parameter_count: int = 0
    """Trainable parameters, worked out during validation."""

    # --- parsing -------------------------------------------------------------------------

    @classmethod
    def from_json(cls, text: bytes | str) -> ModelSpec:
        """Parse and validate a JSON spec; duplicate keys, NaN and Infinity are refused."""
        raw = text.encode() if isinstance(text, str) else bytes(text)
        if len(raw) > MAX_SPEC_BYTES:
            raise InvalidModelSpec(
                f"the spec is {len(raw):,} bytes, over the limit of {MAX_SPEC_BYTES:,}; "
                "a spec names layers, it holds no weights."
            )
        try:
            obj = json.loads(
                raw.decode("utf-8"),
                object_pairs_hook=_no_duplicates,
                parse_constant=_no_constant,
            )
        except UnicodeDecodeError as e:
            raise InvalidModelSpec(
                f"the spec is not UTF-8 text ({e.reason}); save it as UTF-8."
            ) from None
        except json.JSONDecodeError as e:
            raise InvalidModelSpec(
                f"the spec is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); fix it."
            ) from None
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: Any) -> ModelSpec:
        """Validate a parsed spec (a mapping as JSON gives it)."""
        if not isinstance(obj, Mapping):
            raise InvalidModelSpec(
                f"the spec must be a JSON object with keys {', '.join(_TOP_LEVEL)}, got {_show(obj)}."
            )
        for key in obj:
            if key not in _TOP_LEVEL:
                raise InvalidModelSpec(
                    f"the spec has an unknown key {key!r}; allowed: {', '.join(_TOP_LEVEL)}."
                )
        for key, default in _TOP_LEVEL.items():
            if default is None and key not in obj:
                raise InvalidModelSpec(f"the spec lacks {key!r}; add it.")

        input_shape = _shape("the spec", "input_shape", obj["input_shape"])
        size = math.prod(input_shape)
        if size > MAX_INPUT_SIZE:
            raise InvalidModelSpec(
                f"the spec: input_shape {input_shape} has {size:,} numbers per example, "
                f"over the limit of {MAX_INPUT_SIZE:,}."
            )
        classes = _int_in(2, _MAX_WIDTH)("the spec", "classes", obj["classes"])
        loss = obj.get("loss", "cross_entropy")
        if loss not in _LOSSES:
            raise InvalidModelSpec(
                f"the spec: unknown loss {_show(loss)}; allowed: {', '.join(_LOSSES)}."
            )
        optimizer = _optimizer(obj["optimizer"])
        epochs = _int_in(1, _MAX_EPOCHS)("the spec", "epochs", obj.get("epochs", 10))
        batch_size = _int_in(1, _MAX_BATCH)("the spec", "batch_size", obj.get("batch_size", 64))
        seed = _int_in(0, _MAX_SEED)("the spec", "seed", obj.get("seed", 0))
        holdout = _float_in(0.0, 0.5, lo_open=True)("the spec", "holdout", obj.get("holdout", 0.2))

        raw_layers = obj["layers"]
        if not isinstance(raw_layers, list) or not raw_layers:
            raise InvalidModelSpec(
                f"the spec: layers must be a non-empty list of {{'type': ...}} objects, "
                f"got {_show(raw_layers)}."
            )
        if len(raw_layers) > MAX_LAYERS:
            raise InvalidModelSpec(
                f"the spec has {len(raw_layers)} layers, over the limit of {MAX_LAYERS}; "
                "use fewer layers."
            )
        layers = tuple(_layer(i, raw) for i, raw in enumerate(raw_layers))
        count = _dry_run(input_shape, classes, layers)
        return cls(
            input_shape=input_shape,
            classes=classes,
            layers=layers,
            optimizer=optimizer,
            loss=loss,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            holdout=holdout,
            parameter_count=count,
        )

    # --- canonical form ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "classes": self.classes,
            "layers": [layer.to_dict() for layer in self.layers],
            "loss": self.loss,
            "optimizer": self.optimizer.to_dict(),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "holdout": self.holdout,
        }

    def to_json(self) -> bytes:
        """Canonical bytes: sorted keys, no spaces, defaults written out, UTF-8."""
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()

    def architecture_digest(self) -> str:
        """SHA-256 (hex) of what fixes the network's function (input shape, classes, layers),
        but not how it is trained: a checkpoint records it, so weights are never loaded into a
        network of another shape that happens to have tensors of the same sizes (ReLU vs Tanh)."""
        arch = {
            "input_shape": list(self.input_shape),
            "classes": self.classes,
            "layers": [layer.to_dict() for layer in self.layers],
        }
        blob = json.dumps(arch, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    # --- use ---------------------------------------------------------------------------

    def build(self, *, device: str = "cpu") -> torch.nn.Sequential:
        """The network, its weights initialised from ``seed`` (the same spec gives the same
        initial weights; torch's global random state is left as it was)."""
        import torch

        if device == "meta":
            return _modules(self.input_shape, self.layers, device="meta")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return _modules(self.input_shape, self.layers, device=device)

    def check_dataset(self, feature_shape: tuple[int, ...] | list[int], classes: int) -> None:
        """Refuse, with one sentence, a dataset this model cannot be trained on."""
        shape = tuple(int(d) for d in feature_shape)
        if shape != self.input_shape:
            raise InvalidModelSpec(
                f"the spec expects examples of shape {self.input_shape} but the dataset's "
                f"examples have shape {shape}; set input_shape to {list(shape)}."
            )
        if int(classes) != self.classes:
            raise InvalidModelSpec(
                f"the spec has {self.classes} classes but the dataset has {classes}; "
                f"set classes to {classes} and make the last layer give {classes} outputs."
            )


def validate_spec(obj: ModelSpec | Mapping[str, Any] | bytes | str) -> ModelSpec:
    """A :class:`ModelSpec` from JSON text, a parsed mapping, or a spec (validated again)."""
    if isinstance(obj, ModelSpec):
        return ModelSpec.from_dict(obj.to_dict())
    if isinstance(obj, bytes | bytearray | memoryview | str):
        return ModelSpec.from_json(bytes(obj) if not isinstance(obj, str) else obj)
    return ModelSpec.from_dict(obj)


# --- helpers ---------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidModelSpec(
                f"the spec repeats the key {key!r}; keep one, as JSON readers disagree on which wins."
            )
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise InvalidModelSpec(f"the spec contains {name}, which is not JSON; write a finite number.")


def _optimizer(raw: Any) -> Optimizer:
    where = "the spec's optimizer"
    if not isinstance(raw, Mapping) or "type" not in raw:
        raise InvalidModelSpec(
            f'{where} must be an object like {{"type": "adam", "lr": 0.001}}, got {_show(raw)}.'
        )
    kind = raw["type"]
    if kind not in _OPTIMIZER_ARGS:
        raise InvalidModelSpec(
            f"{where}: unknown type {_show(kind)}; allowed: {', '.join(OPTIMIZERS)}."
        )
    given = {k: v for k, v in raw.items() if k != "type"}
    args = dict(_arguments(where, kind, given, _OPTIMIZER_ARGS[kind]))
    return Optimizer(
        type=kind,
        lr=args["lr"],
        momentum=args.get("momentum", 0.0),
        weight_decay=args["weight_decay"],
    )


def _layer(index: int, raw: Any) -> Layer:
    where = f"layer {index}"
    if not isinstance(raw, Mapping) or "type" not in raw:
        raise InvalidModelSpec(
            f'{where} must be an object like {{"type": "Linear", "out_features": 10}}, '
            f"got {_show(raw)}."
        )
    kind_name = raw["type"]
    if not isinstance(kind_name, str) or kind_name not in _KINDS:
        raise InvalidModelSpec(
            f"{where}: unknown layer type {_show(kind_name)}; allowed: {', '.join(LAYER_TYPES)}."
        )
    hint = ""
    given = {k: v for k, v in raw.items() if k != "type"}
    for name in given:
        if name.startswith("in_") or name in ("num_features", "normalized_shape"):
            hint = " (input sizes are inferred from the previous layer)"
    return Layer(kind_name, _arguments(where, kind_name, given, _KINDS[kind_name].args, hint))


def _shape_words(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _one_layer(layer: Layer, in_shape: tuple[int, ...], device: str) -> torch.nn.Module:
    """The torch module for one layer whose input (without batch) has shape ``in_shape``."""
    import torch
    from torch import nn

    t = layer.type
    a = dict(layer.args)
    dtype = torch.float32
    if t == "Linear":
        return nn.Linear(in_shape[0], a["out_features"], bias=a["bias"], device=device, dtype=dtype)
    if t in ("Conv1d", "Conv2d"):
        conv = nn.Conv1d if t == "Conv1d" else nn.Conv2d
        return conv(
            in_shape[0],
            a["out_channels"],
            a["kernel_size"],
            stride=a["stride"],
            padding=a["padding"],
            bias=a["bias"],
            device=device,
            dtype=dtype,
        )
    if t in ("ReLU", "GELU", "Tanh", "Sigmoid", "Flatten"):
        return getattr(nn, t)()  # type: ignore[no-any-return]
    if t == "LeakyReLU":
        return nn.LeakyReLU(a["negative_slope"])
    if t == "Dropout":
        return nn.Dropout(a["p"])
    if t == "BatchNorm1d":
        return nn.BatchNorm1d(in_shape[0], device=device, dtype=dtype)
    if t == "BatchNorm2d":
        return nn.BatchNorm2d(in_shape[0], device=device, dtype=dtype)
    if t == "LayerNorm":
        return nn.LayerNorm(in_shape[-1], device=device, dtype=dtype)
    if t in ("MaxPool1d", "AvgPool1d", "MaxPool2d", "AvgPool2d"):
        pool = getattr(nn, t)
        return pool(a["kernel_size"], stride=a.get("stride"))  # type: ignore[no-any-return]
    if t in ("Reshape", "Unflatten"):
        shape = tuple(a["shape"])
        if len(in_shape) == 1:
            return nn.Unflatten(1, shape)
        # Parameter-free, nested so that the indices of later layers stay their spec indices.
        return nn.Sequential(nn.Flatten(), nn.Unflatten(1, shape))
    raise AssertionError(f"layer type {t} is allow-listed but not built")


def _modules(
    input_shape: tuple[int, ...], layers: tuple[Layer, ...], device: str
) -> torch.nn.Sequential:
    """Build the layers in order, each sized by the output shape of the one before."""
    import torch

    built = []
    with torch.no_grad():
        for layer, shape in zip(layers, _layer_inputs(input_shape, layers), strict=True):
            module = _one_layer(layer, shape, device)
            module.train()
            built.append(module)
    return torch.nn.Sequential(*built)


@functools.lru_cache(maxsize=256)
def _layer_inputs(
    input_shape: tuple[int, ...], layers: tuple[Layer, ...]
) -> tuple[tuple[int, ...], ...]:
    """Each layer's input shape, worked out on the meta device (which allocates nothing) once
    per architecture: a meta forward costs milliseconds, and a coordinator builds a module for
    every checkpoint it loads."""
    import torch

    shape = input_shape
    shapes = []
    with torch.no_grad():
        for layer in layers:
            shapes.append(shape)
            probe = _one_layer(layer, shape, "meta").eval()  # batch norm refuses a batch of one
            shape = tuple(probe(torch.zeros((1, *shape), device="meta")).shape[1:])
    return tuple(shapes)


def _misfit(where: str, layer: Layer, shape: tuple[int, ...], error: Exception) -> str:
    """One sentence for a layer torch refused to apply to its input."""
    if layer.arg("kernel_size") is not None:
        settings = ", ".join(
            f"{name} {_show(_thaw(layer.arg(name)))}"
            for name in ("kernel_size", "stride", "padding")
            if layer.arg(name) is not None
        )
        return (
            f"{where}: {layer.type} with {settings} does not fit its input "
            f"{_shape_words(shape)}; make the kernel smaller, add padding, or enlarge the input."
        )
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    reason = reason.replace(". ", "; ").rstrip(".")
    return (
        f"{where}: {layer.type} does not fit its input {_shape_words(shape)} ({reason}); "
        "change its arguments or the layers before it."
    )


def _dry_run(input_shape: tuple[int, ...], classes: int, layers: tuple[Layer, ...]) -> int:
    """Work out every layer's output shape on the meta device (nothing is allocated) and return
    the parameter count; each failure is one sentence naming the layer."""
    import torch

    shape = input_shape
    count = 0
    with torch.no_grad():
        for index, layer in enumerate(layers):
            where = f"layer {index}"
            kind = _KINDS[layer.type]
            if kind.input_dims is not None and len(shape) not in kind.input_dims:
                dims = " or ".join(f"{d}-d" for d in kind.input_dims)
                raise InvalidModelSpec(
                    f"{where}: {layer.type} needs a {dims} input {kind.input_words} "
                    f"but gets {_shape_words(shape)}."
                )
            if layer.type in ("Reshape", "Unflatten"):
                target = tuple(layer.arg("shape"))
                if math.prod(target) != math.prod(shape):
                    raise InvalidModelSpec(
                        f"{where}: {layer.type} to {_shape_words(target)} holds "
                        f"{math.prod(target):,} numbers but its input {_shape_words(shape)} "
                        f"holds {math.prod(shape):,}."
                    )
            try:
                module = _one_layer(layer, shape, "meta").eval()
                count += sum(p.numel() for p in module.parameters())
                out = module(torch.zeros((1, *shape), device="meta"))
            except (RuntimeError, ValueError, TypeError) as e:
                raise InvalidModelSpec(_misfit(where, layer, shape, e)) from None
            shape = tuple(int(d) for d in out.shape[1:])
            if 0 in shape:
                raise InvalidModelSpec(
                    f"{where}: {layer.type} turns {_shape_words(shape)} into an empty output; "
                    "make its kernel or stride smaller."
                )
    if count > MAX_PARAMETERS:
        raise InvalidModelSpec(
            f"the model has {count:,} parameters, over the limit of {MAX_PARAMETERS:,}; "
            "make the layers smaller."
        )
    if len(shape) != 1:
        raise InvalidModelSpec(
            f"the last layer gives outputs of shape {_shape_words(shape)} but a classifier must "
            f"give ({classes},); end with Flatten and Linear(out_features={classes})."
        )
    if shape[0] != classes:
        raise InvalidModelSpec(
            f"the last layer gives {shape[0]} outputs but the spec has {classes} classes; "
            f"make it give {classes}."
        )
    return count
