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
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from databright.errors import CheckpointMismatch
from databright.ml.spec import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = [
    "ARCHITECTURE_KEY",
    "checkpoint_metadata",
    "checkpoint_tensors",
    "load_checkpoint",
    "save_checkpoint",
]

ARCHITECTURE_KEY = "databright.architecture"
"""Metadata key holding :meth:`ModelSpec.architecture_digest` of the spec the weights fit."""

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
    meta = checkpoint_metadata(blob)
    recorded = meta.get(ARCHITECTURE_KEY)
    if recorded is not None and recorded != spec.architecture_digest():
        raise CheckpointMismatch(
            f"the checkpoint was made for another architecture (digest {recorded[:12]}..., "
            f"the spec's is {spec.architecture_digest()[:12]}...); load it with the spec it was "
            "trained from."
        )
    tensors = checkpoint_tensors(blob)
    # Built on the meta device: no memory and no random numbers are spent on weights that the
    # checkpoint replaces anyway.
    module = spec.build(device="meta")
    expected = module.state_dict()
    for name, want in expected.items():
        got = tensors.get(name)
        if got is None:
            raise CheckpointMismatch(
                f"the checkpoint lacks tensor {name}, which the spec builds; "
                "save the checkpoint from a network built from this spec."
            )
        if tuple(got.shape) != tuple(want.shape):
            raise CheckpointMismatch(
                f"tensor {name} has shape {_shape_words(got.shape)} but the spec builds "
                f"{_shape_words(want.shape)}."
            )
        if got.dtype != want.dtype:
            raise CheckpointMismatch(
                f"tensor {name} has dtype {_dtype_name(got.dtype)} but the spec builds "
                f"{_dtype_name(want.dtype)}."
            )
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise CheckpointMismatch(
            f"the checkpoint has tensor {extra[0]}, which the spec does not build; "
            "load it with the spec it was trained from."
        )
    module.load_state_dict(tensors, strict=True, assign=True)
    module.eval()
    return module
