"""Work units: k optimizer steps of a spec from an agreed checkpoint on an assigned shard.

Replicas of a unit are compared by the hash of their output, so a unit must be a pure function
of its inputs: the same spec, checkpoint, shard, step count and seed give the same checkpoint
bytes. :func:`run_unit` runs under :func:`databright.ml.train.pinned` (one thread, deterministic
algorithms) and draws its batches from its own seeded generator. Across machines bit-identity
needs the same CPU kernels too, which is why workers declare a :func:`local_numeric_class` and
replicas only go to workers of one class (DESIGN.md, Computation).

The optimizer starts afresh in every unit (its moments are not part of the checkpoint), so
SGD without momentum is the spec for which k-step units equal one long run exactly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from eth_utils import keccak
from numpy.typing import ArrayLike, NDArray

from databright.compute.protocol import pack_arrays, pack_parts, unpack_arrays, unpack_parts
from databright.errors import InvalidArgument
from databright.ml.checkpoint import checkpoint_tensors, load_checkpoint, save_checkpoint
from databright.ml.spec import ModelSpec
from databright.ml.train import pinned

if TYPE_CHECKING:
    import torch

__all__ = [
    "MAX_STEPS_PER_UNIT",
    "UnitPayload",
    "WorkUnit",
    "local_numeric_class",
    "output_hash",
    "relative_l2",
    "run_steps",
    "run_unit",
]

MAX_STEPS_PER_UNIT = 100_000


@lru_cache(maxsize=64)
def _spec(text: str) -> ModelSpec:
    """A unit's spec (``text``: its JSON, keys sorted), validated and dry-run once per job: a
    worker's units share it, and a ModelSpec is frozen."""
    return ModelSpec.from_dict(json.loads(text))


@dataclass(frozen=True)
class WorkUnit:
    """What a worker is asked to compute: ``steps`` steps (the job's steps ``step_start`` up to
    ``step_start + steps``) from the checkpoint hashing to ``input_hash`` on ``example_ids``."""

    unit_id: int
    job_id: int
    seq: int
    step_start: int
    steps: int
    input_hash: str
    example_ids: tuple[int, ...]
    seed: int


def output_hash(checkpoint: bytes) -> str:
    """The content hash replicas are compared by (0x-prefixed keccak-256, as on-chain)."""
    return "0x" + bytes(keccak(bytes(checkpoint))).hex()


def local_numeric_class(threads: int = 1) -> str:
    """This machine's numeric class: torch's version, the CPU kernels it dispatches to and the
    thread count, which together fixed bitwise results in the measurements of DESIGN.md."""
    import torch

    capability = os.environ.get("ATEN_CPU_CAPABILITY") or torch.backends.cpu.get_cpu_capability()
    return f"torch-{torch.__version__}/{capability.lower()}/t{threads}"


def run_unit(
    spec: ModelSpec,
    checkpoint: bytes,
    x: ArrayLike,
    y: ArrayLike,
    steps: int,
    seed: int,
) -> bytes:
    """Checkpoint bytes after ``steps`` optimizer steps on ``(x, y)`` from ``checkpoint``;
    batches of ``spec.batch_size`` are drawn without replacement from a permutation seeded by
    ``seed``, reshuffled each pass. Deterministic on one numeric class."""
    out = run_steps(spec, checkpoint, x, y, steps, seed)
    assert out is not None  # every step was run
    return out


def run_steps(
    spec: ModelSpec,
    checkpoint: bytes,
    x: ArrayLike,
    y: ArrayLike,
    steps: int,
    seed: int,
    *,
    stop_after: int | None = None,
    after_step: Callable[[int, torch.nn.Module], None] | None = None,
    hook_at: Collection[int] | None = None,
) -> bytes | None:
    """:func:`run_unit`'s steps, with ``after_step(i, module)`` called after step i (the
    traces of :mod:`.replication` hash the state there; ``hook_at``: only after those steps)
    and ``stop_after`` to stop after that many steps, returning None then (a referee needs
    only a prefix)."""
    import torch
    from torch.nn import functional

    if (
        isinstance(steps, bool)
        or not isinstance(steps, int)
        or not 1 <= steps <= MAX_STEPS_PER_UNIT
    ):
        raise InvalidArgument(f"steps must be 1..{MAX_STEPS_PER_UNIT}, got {steps!r}.")
    last = steps if stop_after is None else stop_after
    if not 0 <= last <= steps:
        raise InvalidArgument(f"stop_after must be 0..{steps}, got {stop_after!r}.")
    xa = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    ya = np.ascontiguousarray(np.asarray(y, dtype=np.int64))
    if len(xa) == 0 or len(xa) != len(ya) or tuple(xa.shape[1:]) != spec.input_shape:
        raise InvalidArgument(
            f"the shard has features {tuple(xa.shape)} and labels {tuple(ya.shape)}; a unit needs "
            f"one label per example and examples of shape {spec.input_shape}."
        )
    with pinned(1, seed=seed):
        module = load_checkpoint(checkpoint, spec)
        module.train()
        optimizer = spec.optimizer.build(module.parameters())
        generator = torch.Generator().manual_seed(seed)
        xt, yt = torch.from_numpy(xa.copy()), torch.from_numpy(ya.copy())
        batch = min(spec.batch_size, len(xt))
        order = torch.randperm(len(xt), generator=generator)
        cursor = 0
        for step in range(last):
            if cursor + batch > len(xt):
                order = torch.randperm(len(xt), generator=generator)
                cursor = 0
            idx = order[cursor : cursor + batch]
            cursor += batch
            optimizer.zero_grad(set_to_none=True)
            loss = functional.cross_entropy(module(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            if after_step is not None and (hook_at is None or step in hook_at):
                with torch.no_grad():
                    after_step(step, module)
        if last < steps:
            return None
        module.eval()
        return save_checkpoint(module, {"format": "pt"}, spec=spec)


def relative_l2(candidate: bytes, reference: bytes) -> float:
    """||candidate - reference|| / ||reference|| over all tensors; infinity when the two
    checkpoints do not even hold the same tensors (a malformed result is never "close")."""
    import torch

    a, b = checkpoint_tensors(candidate), checkpoint_tensors(reference)
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        return float("inf")
    diff = 0.0
    norm = 0.0
    for name in sorted(b):
        ta, tb = a[name].to(torch.float64), b[name].to(torch.float64)
        diff += float(((ta - tb) ** 2).sum())
        norm += float((tb**2).sum())
    if not np.isfinite(diff):
        return float("inf")
    return float(np.sqrt(diff) / max(np.sqrt(norm), 1e-30))


@dataclass(frozen=True)
class UnitPayload:
    """Everything a worker needs for a unit, as one framed body: the unit, the spec, the input
    checkpoint and the shard (safetensors)."""

    unit: WorkUnit
    spec: ModelSpec
    checkpoint: bytes
    x: NDArray[np.float32]
    y: NDArray[np.int64]

    def to_body(self) -> bytes:
        meta = {"unit": {**self.unit.__dict__, "example_ids": list(self.unit.example_ids)}}
        meta["spec"] = self.spec.to_dict()
        shard = pack_arrays({"x": self.x, "y": self.y})
        return pack_parts(meta, {"checkpoint": self.checkpoint, "shard": shard})

    @classmethod
    def from_body(cls, body: bytes) -> UnitPayload:
        """Parse and check a unit body; the checkpoint must hash to the unit's input hash."""
        meta, parts = unpack_parts(body)
        try:
            raw = dict(meta["unit"])
            unit = WorkUnit(
                unit_id=int(raw["unit_id"]),
                job_id=int(raw["job_id"]),
                seq=int(raw["seq"]),
                step_start=int(raw["step_start"]),
                steps=int(raw["steps"]),
                input_hash=str(raw["input_hash"]),
                example_ids=tuple(int(i) for i in raw["example_ids"]),
                seed=int(raw["seed"]),
            )
            checkpoint, shard = parts["checkpoint"], unpack_arrays(parts["shard"])
            x, y = shard["x"], shard["y"]
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument(
                "the unit body lacks a field or part; it must come from UnitPayload.to_body()."
            ) from None
        spec = _spec(json.dumps(meta.get("spec"), sort_keys=True))
        if output_hash(checkpoint) != unit.input_hash:
            raise InvalidArgument(
                f"the unit's checkpoint does not hash to its input hash {unit.input_hash}; "
                "ask the coordinator for the unit again."
            )
        return cls(unit, spec, checkpoint, x, y)
