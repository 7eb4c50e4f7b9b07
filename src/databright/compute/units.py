"""Work units: k optimizer steps of a spec from an agreed checkpoint on an assigned shard.

Replicas of a unit are compared by the hash of their output, so a unit must be a pure function
of its inputs: the same spec, checkpoint, shard, step count and seed give the same checkpoint
bytes. :func:`run_unit` runs under :func:`databright.ml.train.pinned` (one thread, deterministic
algorithms) and draws its batches from its own seeded generator. Across machines bit-identity
needs the same CPU kernels too, which is why workers declare a :func:`local_numeric_class` and
replicas only go to workers of one class (DESIGN.md, Computation).

A unit's checkpoints are *training checkpoints* (:mod:`databright.ml.checkpoint`): the
weights and, beside them, the optimizer's state (Adam's moments and step counts, SGD's
momentum buffers) as tensors under ``optimizer/<parameter>/<slot>``, never pickled. A unit
rebuilds its optimizer from its input's state (:func:`restore_optimizer`) and writes the state
its steps left into its output, so N units of k steps give bit for bit the weights of one run
of N*k steps on the same batches, whatever optimizer the spec names. A checkpoint of weights
alone (a job's first input, and every checkpoint of a spec whose optimizer keeps no state:
SGD without momentum) starts the optimizer afresh. Because the state is in the output, the
output hash and the state hashes of :mod:`.replication` cover it: replicas agree on the
moments too. The trained model that leaves the market is the weights alone
(:func:`databright.ml.checkpoint.model_checkpoint`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from eth_utils import keccak
from numpy.typing import ArrayLike, NDArray

from databright.compute.protocol import pack_arrays, pack_parts, unpack_arrays, unpack_parts
from databright.errors import InvalidArgument
from databright.ml.checkpoint import (
    OPTIMIZER_PREFIX,
    checkpoint_tensors,
    load_training_checkpoint,
    parameter_layout,
    save_training_checkpoint,
    training_checkpoint_tensors,
)
from databright.ml.spec import ModelSpec, Optimizer
from databright.ml.train import pinned

if TYPE_CHECKING:
    import torch

__all__ = [
    "MAX_STEPS_PER_UNIT",
    "UnitPayload",
    "WorkUnit",
    "local_numeric_class",
    "optimizer_slots",
    "optimizer_state",
    "output_hash",
    "relative_l2",
    "restore_optimizer",
    "run_steps",
    "run_unit",
    "unit_state",
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


def optimizer_slots(optimizer: Optimizer) -> tuple[str, ...]:
    """The tensors torch's optimizer of this spec keeps per parameter once it has stepped (its
    ``optimizer.state[p]``, created at the first step): none for SGD without momentum."""
    if optimizer.type == "sgd":
        return ("momentum_buffer",) if optimizer.momentum else ()
    return ("exp_avg", "exp_avg_sq", "step")  # Adam and AdamW (no amsgrad: specs cannot ask)


def optimizer_state(
    module: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, torch.Tensor]:
    """The optimizer's live state tensors (not copies) by their training-checkpoint names,
    ``optimizer/<parameter>/<slot>``; a parameter it has not stepped yet has none."""
    import torch

    out: dict[str, torch.Tensor] = {}
    for name, param in module.named_parameters():
        for slot, value in optimizer.state.get(param, {}).items():
            if isinstance(value, torch.Tensor):
                out[f"{OPTIMIZER_PREFIX}{name}/{slot}"] = value
    return out


def _scalar_dtype() -> torch.dtype:
    import torch

    # the dtype torch's Adam gives its step counter (torch.optim.optimizer._get_scalar_dtype)
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _check_optimizer_state(
    spec: ModelSpec,
    params: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
    saved: dict[str, torch.Tensor],
    recorded: str | None,
) -> dict[str, dict[str, torch.Tensor]]:
    """``saved`` (a checkpoint's optimizer tensors) by parameter and slot, once it is shown to
    be a state the spec's optimizer could have reached for parameters of ``params`` (shape
    and dtype by name); otherwise InvalidArgument, one sentence."""
    kind = spec.optimizer.type
    if not saved and recorded is None:
        return {}  # weights alone: the optimizer starts afresh
    if recorded is None or not saved:
        raise InvalidArgument(
            "the checkpoint's optimizer state is incomplete (it names an optimizer without "
            "its tensors, or holds optimizer tensors without naming the optimizer); start from "
            "the weights alone or from a whole training checkpoint."
        )
    if recorded != kind:
        raise InvalidArgument(
            f"the checkpoint carries the state of a {recorded[:20]!r} optimizer but the spec "
            f"trains with {kind!r}; start from its weights alone or use the spec it was trained "
            "with."
        )
    slots = optimizer_slots(spec.optimizer)
    by_param: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in sorted(saved.items()):
        name, _, slot = key.removeprefix(OPTIMIZER_PREFIX).rpartition("/")
        if name not in params or slot not in slots:
            raise InvalidArgument(
                f"the checkpoint's optimizer tensor {key[:80]!r} is not a state {kind} keeps for "
                f"a parameter of this spec (it keeps {', '.join(slots) or 'none'}); start from "
                "the weights alone or from a checkpoint the market wrote."
            )
        by_param.setdefault(name, {})[slot] = tensor
    for name, state in by_param.items():
        for slot in slots:
            t = state.get(slot)
            step = slot == "step"
            shape, dtype = ((), _scalar_dtype()) if step else params[name]
            if t is None or tuple(t.shape) != shape or t.dtype != dtype:
                raise InvalidArgument(
                    f"the checkpoint's optimizer state of {name} has no {slot} of shape "
                    f"{shape} and dtype {str(dtype).removeprefix('torch.')} as {kind} keeps it; "
                    "start from the weights alone or from a checkpoint the market wrote."
                )
            if step and not (float(t) >= 1 and float(t).is_integer()):
                raise InvalidArgument(
                    f"the checkpoint's optimizer step count of {name} is {float(t)!r}, not a "
                    "whole number of steps taken; start from a checkpoint the market wrote."
                )
            if slot == "exp_avg_sq" and bool((t < 0).any()):
                raise InvalidArgument(
                    f"the checkpoint's second moments of {name} are negative somewhere, which "
                    f"{kind} never computes; start from a checkpoint the market wrote."
                )
    return by_param


def restore_optimizer(
    spec: ModelSpec,
    module: torch.nn.Module,
    saved: dict[str, torch.Tensor],
    recorded: str | None,
) -> torch.optim.Optimizer:
    """The spec's optimizer over ``module``'s parameters holding the state a checkpoint
    carried (``saved`` and ``recorded``, as :func:`load_training_checkpoint` gives them),
    exactly as the run that wrote it left it; afresh when it carried none. InvalidArgument,
    in one sentence, when the state is not one the spec's optimizer could have reached."""
    layout = {n: (tuple(p.shape), p.dtype) for n, p in module.named_parameters()}
    by_param = _check_optimizer_state(spec, layout, saved, recorded)
    optimizer = spec.optimizer.build(module.parameters())
    for name, param in module.named_parameters():
        if name in by_param:
            # the tensors read from the checkpoint are fresh and writable: the optimizer
            # updates them in place from here on, as it did its own before the checkpoint
            optimizer.state[param] = dict(by_param[name])
    return optimizer


def unit_state(checkpoint: bytes, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Every tensor of a unit's (training) checkpoint by name, the weights checked as
    :func:`databright.ml.checkpoint.load_checkpoint` checks them and the optimizer state as
    :func:`restore_optimizer` does: what a state hash covers."""
    # no network is built: a coordinator checks every result it receives this way
    weights, saved, recorded = training_checkpoint_tensors(checkpoint, spec)
    _check_optimizer_state(spec, parameter_layout(spec), saved, recorded)
    return {**weights, **saved}


def run_unit(
    spec: ModelSpec,
    checkpoint: bytes,
    x: ArrayLike,
    y: ArrayLike,
    steps: int,
    seed: int,
) -> bytes:
    """Training-checkpoint bytes after ``steps`` optimizer steps on ``(x, y)`` from
    ``checkpoint`` (its weights, and its optimizer state when it carries one); batches of
    ``spec.batch_size`` are drawn without replacement from a permutation seeded by ``seed``,
    reshuffled each pass. Deterministic on one numeric class."""
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
    after_step: Callable[[int, torch.nn.Module, torch.optim.Optimizer], None] | None = None,
    hook_at: Collection[int] | None = None,
) -> bytes | None:
    """:func:`run_unit`'s steps, with ``after_step(i, module, optimizer)`` called after step i
    (the traces of :mod:`.replication` hash the state there; ``hook_at``: only after those
    steps) and ``stop_after`` to stop after that many steps, returning None then (a referee
    needs only a prefix)."""
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
    with pinned(1):
        # pinned(seed=) seeds through torch.manual_seed, which also queues the seeding of
        # every accelerator backend, formatting a stack trace for each (~0.8 ms a unit); a
        # unit runs on the CPU, whose generator alone is seeded here, to the same numbers.
        torch.default_generator.manual_seed(seed)
        module, saved, recorded = load_training_checkpoint(checkpoint, spec)
        module.train()
        optimizer = restore_optimizer(spec, module, saved, recorded)
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
                    after_step(step, module, optimizer)
        if last < steps:
            return None
        module.eval()
        return save_training_checkpoint(
            module,
            optimizer_state(module, optimizer),
            spec.optimizer.type,
            {"format": "pt"},
            spec=spec,
        )


def relative_l2(candidate: bytes, reference: bytes) -> float:
    """||candidate - reference|| / ||reference||, over the weights and over the optimizer
    state apart, the larger of the two (moments are far smaller than weights: pooled, a
    replica's moments could be anything within a tolerance meant for its weights); infinity
    when the two checkpoints do not even hold the same tensors (a malformed result is never
    "close")."""
    import torch

    a, b = checkpoint_tensors(candidate), checkpoint_tensors(reference)
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        return float("inf")
    worst = 0.0
    for optimizer in (False, True):
        names = sorted(n for n in b if n.startswith(OPTIMIZER_PREFIX) == optimizer)
        if not names:
            continue
        diff = 0.0
        norm = 0.0
        for name in names:
            ta, tb = a[name].to(torch.float64), b[name].to(torch.float64)
            diff += float(((ta - tb) ** 2).sum())
            norm += float((tb**2).sum())
        if not np.isfinite(diff):
            return float("inf")
        worst = max(worst, float(np.sqrt(diff) / max(np.sqrt(norm), 1e-30)))
    return worst


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
