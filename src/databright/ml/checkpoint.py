"""Checkpoints: a model's weights as safetensors bytes, the same weights always the same bytes.

Weights travel between strangers in the market, so they are never pickled and never read with
``torch.load``: a checkpoint is a `safetensors <https://huggingface.co/docs/safetensors>`_ file,
read with ``safetensors.torch.load`` (a JSON header and raw little-endian tensor bytes; reading it
runs no code).

Writing is done here rather than with ``safetensors.torch.save`` because that writer emits the
``__metadata__`` map in hash-map order, which changes from process to process: the same weights
would get different bytes and so a different content address. This writer follows the same
format (8-byte little-endian header length, JSON header padded with spaces to a multiple of 8,
tensors widest dtype first, then by name) with every header key sorted, and the tests read its output back with the
safetensors library itself.

A checkpoint written for a spec records the spec's architecture digest
(``databright.architecture``), so that loading refuses weights made for another network whose
tensors merely have the same sizes (Tanh swapped for ReLU).

A *training checkpoint* is a checkpoint that also carries the optimizer's state, so that
training resumes from it exactly where it stopped (the computation market's work units hand
one to the next): the same file format, the optimizer's tensors stored beside the weights
under names starting with ``optimizer/`` and the optimizer's type in the metadata
(``databright.optimizer``); never ``optimizer.state_dict()``, which holds Python objects.
:func:`save_training_checkpoint` writes one, :func:`load_training_checkpoint` reads one (or a
plain checkpoint, whose optimizer state is then empty) and :func:`model_checkpoint` gives its
weights alone: what serving, evaluation and ONNX export load with :func:`load_checkpoint`,
which refuses a training checkpoint (a tensor the spec does not build).
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from databright.errors import CheckpointMismatch
from databright.ml.spec import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = [
    "ARCHITECTURE_KEY",
    "OPTIMIZER_KEY",
    "OPTIMIZER_PREFIX",
    "checkpoint_metadata",
    "checkpoint_tensors",
    "load_checkpoint",
    "load_training_checkpoint",
    "model_checkpoint",
    "parameter_layout",
    "save_checkpoint",
    "save_training_checkpoint",
    "training_checkpoint_tensors",
]

ARCHITECTURE_KEY = "databright.architecture"
"""Metadata key holding :meth:`ModelSpec.architecture_digest` of the spec the weights fit."""

OPTIMIZER_KEY = "databright.optimizer"
"""Metadata key of a training checkpoint: the type of the optimizer whose state it carries."""

OPTIMIZER_PREFIX = "optimizer/"
"""The names of a training checkpoint's optimizer tensors start with this (a network's own
tensor names are dotted module paths and never contain a slash)."""

_MAX_HEADER = 100_000_000  # the limit the safetensors format itself sets

_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def save_checkpoint(
    module: torch.nn.Module,
    metadata: Mapping[str, str] | None = None,
    *,
    spec: ModelSpec | None = None,
) -> bytes:
    """The module's ``state_dict`` as safetensors bytes (deterministic: same weights and
    metadata, same bytes). With ``spec``, its architecture digest is recorded too."""
    meta = dict(metadata or {})
    for key, value in meta.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise CheckpointMismatch(
                f"checkpoint metadata must map text to text, but {key!r} maps to "
                f"{type(value).__name__}; convert it with str()."
            )
    if spec is not None:
        meta[ARCHITECTURE_KEY] = spec.architecture_digest()
    return _serialize(dict(module.state_dict()), meta)


def _serialize(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    import torch

    if sys.byteorder != "little":  # pragma: no cover - every platform torch ships for
        raise CheckpointMismatch("this machine is big-endian; safetensors files are little-endian.")
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    chunks: list[bytes] = []
    offset = 0
    # Widest elements first, then by name (as the safetensors writer does): every tensor then
    # starts at a multiple of its element size, so readers that map the file can use it in place.
    for name in sorted(tensors, key=lambda n: (-tensors[n].element_size(), n)):
        tensor = tensors[name].detach().to("cpu").contiguous()
        code = _DTYPES.get(_dtype_name(tensor.dtype))
        if code is None:
            raise CheckpointMismatch(
                f"tensor {name} has dtype {_dtype_name(tensor.dtype)}, which checkpoints do not "
                f"store; use one of {', '.join(_DTYPES)}."
            )
        data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {
            "dtype": code,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def _header(blob: bytes) -> dict[str, Any]:
    """The parsed JSON header, or one sentence on why these bytes are not a safetensors file."""
    if len(blob) < 8:
        raise CheckpointMismatch(
            f"not a safetensors file: {len(blob)} bytes is too short for a header; "
            "hand in the checkpoint's bytes."
        )
    (size,) = struct.unpack("<Q", blob[:8])
    if size > _MAX_HEADER or 8 + size > len(blob):
        raise CheckpointMismatch(
            f"not a safetensors file: the header claims {size:,} bytes of the file's "
            f"{len(blob):,}; hand in the checkpoint's bytes."
        )
    try:
        header = json.loads(blob[8 : 8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointMismatch(
            "not a safetensors file: its header is not JSON; hand in the checkpoint's bytes."
        ) from None
    if not isinstance(header, dict):
        raise CheckpointMismatch(
            "not a safetensors file: its header is not a JSON object; hand in the checkpoint's bytes."
        )
    return header


def checkpoint_metadata(blob: bytes) -> dict[str, str]:
    """The text metadata stored in a checkpoint's header (no tensor is read)."""
    meta = _header(bytes(blob)).get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise CheckpointMismatch(
            "not a safetensors file: its __metadata__ is not a map of text to text."
        )
    return dict(meta)


def checkpoint_tensors(blob: bytes) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint, read by the safetensors library (never ``torch.load``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    _header(bytes(blob))  # our own sentence for the common ways of not being a checkpoint
    try:
        return dict(load(bytes(blob)))
    except (SafetensorError, ValueError, RuntimeError, TypeError) as e:
        reason = str(e).strip().rstrip(".").replace(". ", "; ") or type(e).__name__
        raise CheckpointMismatch(
            f"not a safetensors file: {reason}; hand in the checkpoint's bytes."
        ) from None


def _shape_words(shape: Any) -> str:
    dims = tuple(int(d) for d in shape)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def load_checkpoint(blob: bytes, spec: ModelSpec) -> torch.nn.Sequential:
    """The network ``spec`` builds, holding the checkpoint's weights, in evaluation mode.

    Names, shapes and dtypes must be exactly those ``spec.build()`` has, and a recorded
    architecture digest must be the spec's; otherwise one sentence says what differs.
    """
    _check_architecture(checkpoint_metadata(blob), spec)
    return _network(checkpoint_tensors(blob), spec)


def _check_architecture(meta: Mapping[str, str], spec: ModelSpec) -> None:
    recorded = meta.get(ARCHITECTURE_KEY)
    if recorded is not None and recorded != spec.architecture_digest():
        raise CheckpointMismatch(
            f"the checkpoint was made for another architecture (digest {recorded[:12]}..., "
            f"the spec's is {spec.architecture_digest()[:12]}...); load it with the spec it was "
            "trained from."
        )


def _layout(spec: ModelSpec) -> tuple[tuple[str, tuple[int, ...], torch.dtype, bool], ...]:
    """Every tensor ``spec.build()`` holds: its name, shape and dtype, and whether it is a
    parameter (rather than a buffer), in ``state_dict`` order. Built once per spec and
    default dtype (on the meta device: no memory, no random numbers), so checking a
    checkpoint's tensors costs no network: a coordinator checks every result it receives."""
    import torch

    return _layout_for(spec, torch.get_default_dtype())


@lru_cache(maxsize=64)
def _layout_for(
    spec: ModelSpec, default_dtype: torch.dtype
) -> tuple[tuple[str, tuple[int, ...], torch.dtype, bool], ...]:
    module = spec.build(device="meta")
    params = {name for name, _ in module.named_parameters()}
    return tuple(
        (name, tuple(int(d) for d in t.shape), t.dtype, name in params)
        for name, t in module.state_dict().items()
    )


def parameter_layout(spec: ModelSpec) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The shape and dtype of each parameter ``spec.build()`` has, by name (what an
    optimizer keeps state for), without building the network."""
    return {name: (shape, dtype) for name, shape, dtype, param in _layout(spec) if param}


def _check_weights(tensors: Mapping[str, torch.Tensor], spec: ModelSpec) -> None:
    """Refuse, with one sentence, tensors that are not exactly those ``spec.build()`` holds
    (names, shapes, dtypes)."""
    layout = _layout(spec)
    for name, shape, dtype, _ in layout:
        got = tensors.get(name)
        if got is None:
            raise CheckpointMismatch(
                f"the checkpoint lacks tensor {name}, which the spec builds; "
                "save the checkpoint from a network built from this spec."
            )
        if tuple(got.shape) != shape:
            raise CheckpointMismatch(
                f"tensor {name} has shape {_shape_words(got.shape)} but the spec builds "
                f"{_shape_words(shape)}."
            )
        if got.dtype != dtype:
            raise CheckpointMismatch(
                f"tensor {name} has dtype {_dtype_name(got.dtype)} but the spec builds "
                f"{_dtype_name(dtype)}."
            )
    extra = sorted(set(tensors) - {name for name, *_ in layout})
    if extra:
        raise CheckpointMismatch(
            f"the checkpoint has tensor {extra[0]}, which the spec does not build; "
            "load it with the spec it was trained from."
        )


def _network(tensors: Mapping[str, torch.Tensor], spec: ModelSpec) -> torch.nn.Sequential:
    """The network ``spec`` builds holding exactly ``tensors`` (see :func:`load_checkpoint`)."""
    _check_weights(tensors, spec)
    # Built on the meta device: no memory and no random numbers are spent on weights that the
    # checkpoint replaces anyway.
    module = spec.build(device="meta")
    module.load_state_dict(dict(tensors), strict=True, assign=True)
    module.eval()
    return module


# --- training checkpoints: the weights and the optimizer's state -----------------------------


def save_training_checkpoint(
    module: torch.nn.Module,
    optimizer_state: Mapping[str, torch.Tensor],
    optimizer: str,
    metadata: Mapping[str, str] | None = None,
    *,
    spec: ModelSpec | None = None,
) -> bytes:
    """The module's weights and ``optimizer_state`` (tensors named ``optimizer/...``) of an
    optimizer of type ``optimizer``, as one deterministic safetensors file. With no optimizer
    state (SGD without momentum keeps none) it is exactly :func:`save_checkpoint`'s file."""
    if not optimizer_state:
        return save_checkpoint(module, metadata, spec=spec)
    stray = sorted(n for n in optimizer_state if not n.startswith(OPTIMIZER_PREFIX))
    if stray:
        raise CheckpointMismatch(
            f"optimizer tensor {stray[0]!r} is not named {OPTIMIZER_PREFIX}...; name the "
            "optimizer's tensors apart from the network's."
        )
    meta = dict(metadata or {})
    if not isinstance(optimizer, str) or not optimizer:
        raise CheckpointMismatch("a training checkpoint names its optimizer's type; give it.")
    for key, value in meta.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise CheckpointMismatch(
                f"checkpoint metadata must map text to text, but {key!r} maps to "
                f"{type(value).__name__}; convert it with str()."
            )
    meta[OPTIMIZER_KEY] = optimizer
    if spec is not None:
        meta[ARCHITECTURE_KEY] = spec.architecture_digest()
    return _serialize({**module.state_dict(), **optimizer_state}, meta)


def load_training_checkpoint(
    blob: bytes, spec: ModelSpec
) -> tuple[torch.nn.Sequential, dict[str, torch.Tensor], str | None]:
    """The network ``spec`` builds holding the checkpoint's weights (checked as by
    :func:`load_checkpoint`), the optimizer tensors stored beside them (names starting with
    ``optimizer/``; empty for a plain checkpoint) and the optimizer type the checkpoint
    records (None when it records none). What the optimizer tensors must be is the caller's
    to check: it knows the optimizer."""
    weights, state, recorded = training_checkpoint_tensors(blob, spec)
    module = spec.build(device="meta")
    module.load_state_dict(weights, strict=True, assign=True)
    module.eval()
    return module, state, recorded


def training_checkpoint_tensors(
    blob: bytes, spec: ModelSpec
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], str | None]:
    """:func:`load_training_checkpoint` without the network: the weights (checked against
    the spec as a load checks them), the optimizer tensors and the recorded optimizer type."""
    meta = checkpoint_metadata(blob)
    _check_architecture(meta, spec)
    tensors = checkpoint_tensors(blob)
    state = {n: t for n, t in tensors.items() if n.startswith(OPTIMIZER_PREFIX)}
    weights = {n: t for n, t in tensors.items() if not n.startswith(OPTIMIZER_PREFIX)}
    _check_weights(weights, spec)
    return weights, state, meta.get(OPTIMIZER_KEY)


def model_checkpoint(blob: bytes) -> bytes:
    """The weights alone of a (training) checkpoint, as :func:`save_checkpoint` writes them
    with the same metadata less the optimizer's type: what leaves training as the model. A
    checkpoint without optimizer state comes back as it is, byte for byte."""
    meta = checkpoint_metadata(blob)
    tensors = checkpoint_tensors(blob)
    if OPTIMIZER_KEY not in meta and not any(n.startswith(OPTIMIZER_PREFIX) for n in tensors):
        return bytes(blob)
    meta.pop(OPTIMIZER_KEY, None)
    weights = {n: t for n, t in tensors.items() if not n.startswith(OPTIMIZER_PREFIX)}
    return _serialize(weights, meta)
