"""Model splitting: a model's layers cut into stages, one worker per stage, so that no worker
ever holds the whole model (issue 12 §5).

This is pipeline (layer-wise) parallelism in the shape the market needs. A :class:`SplitPlan`
cuts a spec's ``Sequential`` into contiguous stages, each holding at least one weight tensor.
:class:`SplitTraining` (the trusted coordinator's side) gives each stage's weights to one
:class:`StageWorker` and then relays, per micro-batch, the activations forward from stage to
stage and the gradients backward; the loss is computed by the coordinator itself, so labels
never leave it, and the last stage's worker only sees logits. Each worker keeps its stage's
parameters and optimizer state and nothing else; at the end the coordinator collects the
stages and assembles the checkpoint.

Who may hold what is the point of the exercise, so it is enforced where the coordinator hands
out stages (:meth:`SplitTraining.join`): a worker holds at most one stage of a job (a worker
asking for a second one is the attacker trying to assemble the model), and the workers of one
owner together never hold every stage (the exposure ledger's reasoning: one person running
several workers is one holder). Every tensor a worker receives is recorded, by the coordinator
(:attr:`SplitTraining.sent`) and by the worker itself (:attr:`StageWorker.received`), so tests
can check what each one actually got.

Messages are bytes (one safetensors file each, its metadata the message's fields; never
pickle; see :func:`encode_message`) passed through a *link*, a callable ``(route, body) ->
reply``: the worker's :meth:`StageWorker.handle` in-process, or a mailbox of
:class:`databright.compute.split_relay.SplitRelay`, from which workers pull their messages and
to which they answer under their signature (in-process or over HTTP).

The input stage's worker sees every example's features (the last one sees no labels: the
coordinator keeps them), so with an exposure ledger it is charged for all of them and the job
is refused past the 5% limit: splitting hides the model from workers, not the data.

Split training gives the weights unsplit training gives. The batches, hold-out split and
shuffling are those of :func:`databright.ml.train.train` (same helpers, same seeded
generator); dropout draws from torch's global generator, whose state travels with the
activations from stage to stage, so every mask is the one the unsplit network would draw.
With ``micro_batches > 1`` a batch's gradients are summed over micro-batches (equal up to float
rounding), batch normalisation is refused (it would normalise each micro-batch on its own) and
dropout masks are drawn per micro-batch (a valid run, but not the unsplit one).

Stage workers are audited, because a worker that returns wrong but finite activations or
gradients, or skips its optimizer step, would otherwise go unnoticed. Every worker commits, in
each update's reply, to digests of its new state (weights and optimizer state), and keeps the
state it started the batch from. After a batch, with probability ``audit_probability`` drawn
from the coordinator's own generator (never torch's, so training draws the same numbers), the
coordinator asks every stage for a ``snapshot`` of that starting state, checks it against the
worker's previous commitment, and recomputes the stage's batch on the inputs, generator states
and incoming gradients it relayed: activations, generator states, input gradients and the
committed new state must all be equal to the bit (one numeric class, one thread; nothing here
needed a tolerance). The audit is drawn only after the worker committed to everything the batch
made, so a worker cannot behave only when watched. A mismatch is kept as a
:class:`StageEvidence` in :attr:`SplitTraining.evidence` and stops the job with
``NotPermitted``; the collected final weights are checked against the last commitment too.
The coordinator receiving a stage's state is allowed (it is attested); workers still receive
only their own stage's weights.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import secrets
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from blake3 import blake3
from numpy.typing import ArrayLike, NDArray

from databright.compute.exposure import ExposureLedger
from databright.compute.units import optimizer_state, restore_optimizer
from databright.errors import InvalidArgument, NotFound, NotPermitted
from databright.ml.checkpoint import OPTIMIZER_PREFIX, load_checkpoint, save_checkpoint
from databright.ml.spec import ModelSpec

# The private helpers of train(): split training must cut, shuffle and batch exactly as
# unsplit training does, and sharing the code is what guarantees it.
from databright.ml.train import (
    EpochReport,
    as_tensors,
    batch_bounds,
    holdout_split,
    pinned,
    score_module,
)

if TYPE_CHECKING:
    import torch

__all__ = [
    "ROUTES",
    "ScaledActivationsWorker",
    "SplitPlan",
    "SplitResult",
    "SplitTraining",
    "StageEvidence",
    "StageHoldings",
    "StageLink",
    "StageWorker",
    "TensorRecord",
    "decode_message",
    "encode_message",
]

ROUTES: Final = ("load", "forward", "backward", "weights", "snapshot")
"""What the coordinator asks a stage worker."""

StageLink = Callable[[str, bytes], bytes]
"""How the coordinator reaches a stage worker: ``(route, body) -> reply body``."""

_SCORE_CHUNK: Final = 4096  # hold-out scoring goes in chunks of this size, as in train()

# What an honest optimizer (SGD, Adam, AdamW) keeps per parameter: a snapshot holding anything
# else is not a state the spec's optimizer could be in.


@dataclass(frozen=True)
class TensorRecord:
    """One tensor a worker received: the route it came with, its name and its shape."""

    route: str
    name: str
    shape: tuple[int, ...]


# --- the plan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitPlan:
    """Stages of ``spec``: stage ``k`` holds layers ``bounds[k]`` up to ``bounds[k + 1]``.

    Build one with :meth:`of` (bounds given) or :meth:`balanced` (a number of stages); both
    refuse, with one sentence, a plan whose stages do not cover the layers in order, or any
    stage without weights (such a stage would let another stage hold every weight).
    """

    spec: ModelSpec
    bounds: tuple[int, ...]
    tensor_names: tuple[tuple[str, ...], ...]
    """Per stage, the names of its state tensors (parameters and buffers), as in the spec's
    ``state_dict``."""
    shapes: tuple[tuple[int, ...], ...]
    """The shape of one example entering each stage, and (last) the logits' shape."""

    @classmethod
    def of(cls, spec: ModelSpec, bounds: Sequence[int]) -> SplitPlan:
        if not isinstance(spec, ModelSpec):
            raise InvalidArgument(
                f"a split plan needs a ModelSpec, got {type(spec).__name__}; validate it first."
            )
        n = len(spec.layers)
        try:
            cuts = tuple(int(b) for b in bounds)
        except (TypeError, ValueError):
            raise InvalidArgument(
                f"the plan's bounds must be whole layer numbers such as [0, 2, {n}], got {bounds!r}."
            ) from None
        if len(cuts) < 3:
            raise InvalidArgument(
                f"a split plan needs at least two stages (bounds like [0, 2, {n}]), got {list(cuts)}; "
                "one stage would hold the whole model."
            )
        if cuts[0] != 0 or cuts[-1] != n:
            raise InvalidArgument(
                f"the plan's bounds must start at 0 and end at {n} (the spec's layer count), "
                f"got {list(cuts)}."
            )
        if any(b >= c for b, c in itertools.pairwise(cuts)):
            raise InvalidArgument(
                f"the plan's bounds {list(cuts)} must increase strictly: every stage holds at "
                "least one layer."
            )
        meta = spec.build(device="meta")
        params = {name for name, _ in meta.named_parameters()}
        names: list[list[str]] = [[] for _ in range(len(cuts) - 1)]
        for name in meta.state_dict():
            layer = int(name.split(".", 1)[0])
            names[_stage_of(cuts, layer)].append(name)
        for k, stage_names in enumerate(names):
            if not params.intersection(stage_names):
                raise InvalidArgument(
                    f"stage {k} (layers {cuts[k]}..{cuts[k + 1] - 1}) holds no weights; merge it "
                    "with a neighbour, or another stage would hold every weight."
                )
        return cls(spec, cuts, tuple(tuple(s) for s in names), _stage_shapes(spec, cuts))

    @classmethod
    def balanced(cls, spec: ModelSpec, stages: int = 2) -> SplitPlan:
        """``stages`` stages with parameter counts as even as contiguous cuts allow; refused
        when the spec has fewer layers with weights than that."""
        if isinstance(stages, bool) or not isinstance(stages, int) or stages < 2:
            raise InvalidArgument(
                f"stages must be a whole number of at least 2, got {stages!r}; one stage "
                "would hold the whole model."
            )
        meta = spec.build(device="meta")
        counts = [sum(p.numel() for p in layer.parameters()) for layer in meta]
        weighted = [i for i, c in enumerate(counts) if c]
        if len(weighted) < stages:
            raise InvalidArgument(
                f"the spec has {len(weighted)} layers with weights, too few for {stages} "
                "stages that each hold some; ask for fewer stages."
            )
        # Cut after the weighted layer at which the running count passes each k/stages of the
        # total (each stage then starts at a weighted layer, so none is empty of weights).
        total = sum(counts)
        cuts = [0]
        running = 0
        remaining = stages - 1
        for pos, i in enumerate(weighted[:-1]):
            running += counts[i]
            left_after = len(weighted) - pos - 1
            target = total * len(cuts) / stages
            if remaining and (running >= target or left_after == remaining):
                cuts.append(weighted[pos + 1])
                remaining -= 1
        cuts.append(len(counts))
        return cls.of(spec, cuts)

    @property
    def stages(self) -> int:
        return len(self.bounds) - 1

    def layers(self, stage: int) -> range:
        return range(self.bounds[stage], self.bounds[stage + 1])

    def check_stage(self, stage: Any) -> int:
        if isinstance(stage, bool) or not isinstance(stage, int) or not 0 <= stage < self.stages:
            raise InvalidArgument(
                f"stage {stage!r} does not exist; this plan has stages 0..{self.stages - 1}."
            )
        return stage


def _stage_of(bounds: Sequence[int], layer: int) -> int:
    for k in range(len(bounds) - 1):
        if bounds[k] <= layer < bounds[k + 1]:
            return k
    raise AssertionError(f"layer {layer} outside {bounds}")


def _stage_shapes(spec: ModelSpec, bounds: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    import torch

    meta = spec.build(device="meta").eval()
    shape = spec.input_shape
    out = [shape]
    with torch.no_grad():
        for k in range(len(bounds) - 1):
            probe = torch.zeros((1, *shape), device="meta")
            for i in range(bounds[k], bounds[k + 1]):
                probe = meta[i](probe)
            shape = tuple(int(d) for d in probe.shape[1:])
            out.append(shape)
    return tuple(out)


def _stage_module(spec: ModelSpec, start: int, stop: int) -> torch.nn.Sequential:
    """Layers ``start..stop-1`` of the spec, keyed by their spec index (so tensor names are
    the whole model's names), with uninitialised storage that the stage's weights fill. Built
    on the meta device first: nothing of the other stages is ever materialised."""
    import torch

    whole = spec.build(device="meta")
    stage = torch.nn.Sequential(OrderedDict((str(i), whole[i]) for i in range(start, stop)))
    return stage.to_empty(device="cpu").train()


def encode_message(meta: Mapping[str, Any], tensors: Mapping[str, Any]) -> bytes:
    """One relay message: a safetensors file whose ``__metadata__`` holds ``meta`` (each value
    as text: numbers and words as themselves, anything else as JSON).

    Written here rather than with :func:`databright.compute.protocol.pack_parts` and
    ``pack_arrays`` because a split run sends four messages per batch and stage pair: their
    numpy wrapper measured ~19 us per tensor and the framing as much again, which alone made
    split training of the digits MLP over 2x slower than unsplit. This writer is a JSON header
    and raw bytes (the format ``ml.checkpoint`` writes, widest dtype first, then by name).
    """
    fields = {k: _text(v) for k, v in meta.items()}
    arrays = [(name, _numpy(tensors[name])) for name in tensors]
    if len(arrays) > 1:
        arrays.sort(key=lambda item: (-item[1].itemsize, item[0]))
    # The header is assembled as text: json.dumps of the nested header was a third of the
    # cost of a message. Names and metadata still go through json.dumps, so any text is safe.
    entries = ['"__metadata__":' + json.dumps(fields, separators=(",", ":"))]
    chunks: list[memoryview] = []
    offset = 0
    for name, a in arrays:
        code = _CODES.get(a.dtype)
        if code is None:
            raise InvalidArgument(
                f"tensor {name} has dtype {a.dtype}, which stage messages do not carry; "
                "send float32 activations and gradients."
            )
        # One copy, straight into the message (tobytes() and a join would be two).
        data = np.ascontiguousarray(a).data.cast("B")
        dims = ",".join(str(int(d)) for d in a.shape)
        entries.append(
            f'{_quoted(name)}:{{"data_offsets":[{offset},{offset + len(data)}],'
            f'"dtype":"{code}","shape":[{dims}]}}'
        )
        chunks.append(data)
        offset += len(data)
    text = ("{" + ",".join(entries) + "}").encode()
    text += b" " * (-len(text) % 8)
    return b"".join((struct.pack("<Q", len(text)), text, *chunks))


def decode_message(
    blob: bytes, *, copy: bool = True
) -> tuple[dict[str, str], dict[str, NDArray[Any]]]:
    """The meta (text values) and the arrays (writable copies) of an :func:`encode_message`
    body, or one sentence on why it is not one. A JSON header and raw bytes: reading it runs
    no code. With ``copy=False`` the arrays are read-only views of ``blob`` (the coordinator
    only checks and forwards activations, and a copy of each would be wasted)."""
    bad = "the body is not a stage message (a safetensors file); build it with encode_message()."
    blob = bytes(blob)
    if len(blob) < 8:
        raise InvalidArgument(bad)
    (size,) = struct.unpack_from("<Q", blob)
    if size > _MAX_HEADER or 8 + size > len(blob):
        raise InvalidArgument(bad)
    try:
        header = json.loads(blob[8 : 8 + size])
        meta = header.pop("__metadata__", {})
    except (UnicodeDecodeError, ValueError, AttributeError):
        raise InvalidArgument(bad) from None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise InvalidArgument(bad)
    base = 8 + size
    arrays: dict[str, NDArray[Any]] = {}
    expected = 0
    try:
        entries = sorted(header.items(), key=lambda item: int(item[1]["data_offsets"][0]))
        for name, info in entries:
            dtype: np.dtype[Any] = _DTYPES[info["dtype"]]
            shape = tuple(int(d) for d in info["shape"])
            lo, hi = (int(v) for v in info["data_offsets"])
            count = math.prod(shape)
            if lo != expected or min(shape, default=0) < 0 or hi - lo != count * dtype.itemsize:
                raise InvalidArgument(bad)
            flat = np.frombuffer(blob, dtype=dtype, count=count, offset=base + lo)
            arrays[name] = flat.reshape(shape).copy() if copy else flat.reshape(shape)
            expected = hi
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InvalidArgument(bad) from None
    if base + expected != len(blob):
        raise InvalidArgument(bad)
    return meta, arrays


_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "U8": np.dtype("u1"),
}
_CODES: Final[dict[np.dtype[Any], str]] = {v: k for k, v in _DTYPES.items()}
_MAX_HEADER: Final = 100_000_000


_PLAIN_NAME: Final = re.compile(r"[A-Za-z0-9_.\-]{1,200}")


def _text(value: Any) -> str:
    """A metadata value as text; plain numbers and flags without json.dumps, which was a
    fifth of a message's cost when called for each field."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _quoted(name: str) -> str:
    return f'"{name}"' if _PLAIN_NAME.fullmatch(name) else json.dumps(str(name))


def _numpy(value: Any) -> NDArray[Any]:
    if isinstance(value, np.ndarray):
        return value
    return value.detach().numpy()  # type: ignore[no-any-return]


def _torch(arrays: Mapping[str, NDArray[Any]]) -> dict[str, torch.Tensor]:
    import torch

    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def _fresh(value: Any) -> torch.Tensor:
    """A writable copy of a relayed array (often a read-only view of a message) as a tensor."""
    import torch

    return torch.from_numpy(np.array(_numpy(value)))


def _digest_head(entries: Sequence[tuple[str, str, Sequence[int]]]) -> bytes:
    """What a digest hashes before the bytes: the length of, then, a JSON list of ``[name,
    numpy dtype string, shape]`` per tensor, in name order (JSON, so no name can forge
    another layout)."""
    head = json.dumps([[n, d, [int(x) for x in s]] for n, d, s in entries]).encode()
    return struct.pack("<Q", len(head)) + head


def _digest(arrays: Mapping[str, Any]) -> str:
    """The one digest of named tensors (numpy arrays or torch tensors) used here: BLAKE3 (hex)
    of :func:`_digest_head` followed by every tensor's raw bytes (C order), in name order.
    Equal digests, equal names, dtypes, shapes and bytes. A stage worker computes the same
    digest of its state from one copy of it (:class:`_StateBook`); both must stay this."""
    names = sorted(arrays)
    parts = [_numpy(arrays[n]) for n in names]
    h = blake3(_digest_head([(n, a.dtype.str, a.shape) for n, a in zip(names, parts, strict=True)]))
    for a in parts:
        h.update(np.ascontiguousarray(a).reshape(-1).view(np.uint8).data)
    return h.hexdigest()


def _state_hash(commitment: Mapping[str, str]) -> str:
    """One hash for a state: BLAKE3 of its two committed digests (weights, then optimizer)."""
    return blake3((commitment["weights"] + commitment["optim"]).encode()).hexdigest()


def _stage_state(
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    copy: bool,
    weights: Sequence[tuple[str, torch.Tensor]] | None = None,
) -> dict[str, NDArray[Any]]:
    """A stage's whole state as named arrays: ``w.<tensor>`` for its weights and buffers, and
    its optimizer state named as a training checkpoint names it (``optimizer/<parameter>/<slot>``,
    :func:`databright.compute.units.optimizer_state`). ``weights``: the module's
    ``state_dict(keep_vars=True)`` items, if taken already."""
    named = module.state_dict(keep_vars=True).items() if weights is None else weights
    state = {f"w.{n}": _numpy(t) for n, t in named}
    state.update((n, _numpy(t)) for n, t in optimizer_state(module, optimizer).items())
    return {n: a.copy() for n, a in state.items()} if copy else state


def _commitment(state: Mapping[str, Any]) -> dict[str, str]:
    """The digests a worker commits to (:func:`_digest`): of its weights (named as in the
    checkpoint, so the final weights can be checked against it) and of its optimizer state
    (named ``optimizer/<parameter>/<slot>``), from a :func:`_stage_state`."""
    return {
        "weights": _digest({n[2:]: a for n, a in state.items() if n.startswith("w.")}),
        "optim": _digest({n: a for n, a in state.items() if n.startswith(OPTIMIZER_PREFIX)}),
    }


class _StateBook:
    """A stage worker's copies of its state, and their :func:`_commitment`, per batch.

    :meth:`take` copies the whole state (weights, then optimizer state, each part in name
    order, raw bytes back to back) into one preallocated byte buffer, with a single
    ``np.concatenate`` into byte views of the tensors taken once (optimizers update their
    state in place), and hashes each part in one call: the digests are :func:`_commitment`'s
    of the same state, and the copy is what the next batch starts from, kept for its audit.
    The views are taken again whenever the state's tensors change (an optimizer's first step
    creates its state; anything may replace a tensor): each take compares them first.
    Buffers are reused once neither the latest copy nor the one kept for an audit is in them."""

    def __init__(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self._weights = [(n, t) for n, t in module.state_dict(keep_vars=True).items()]
        self._module = module
        self._optimizer = optimizer
        self._key: list[tuple[str, int, int]] = []
        self._sources: list[NDArray[Any]] = []
        self._heads = (b"", b"")
        self._split = 0
        self._size = 0
        self._layout: list[tuple[str, np.dtype[Any], tuple[int, ...], int, int]] = []
        self._pool: list[tuple[NDArray[Any], dict[str, NDArray[Any]]]] = []

    def _tensors(self) -> list[tuple[str, torch.Tensor]]:
        optimizer = optimizer_state(self._module, self._optimizer)
        return [(f"w.{n}", t) for n, t in self._weights] + list(optimizer.items())

    def _relayout(self, tensors: list[tuple[str, torch.Tensor]]) -> None:
        import torch

        weights = sorted((n, t.detach()) for n, t in tensors if n.startswith("w."))
        optim = sorted((n, t.detach()) for n, t in tensors if n.startswith(OPTIMIZER_PREFIX))
        self._sources, self._layout, offset = [], [], 0
        for name, t in (*weights, *optim):
            typed = t.numpy()  # the dtype string a numpy digest uses (and float32 and int only)
            flat = t.reshape(-1).view(torch.uint8).numpy()
            self._sources.append(flat)
            self._layout.append((name, typed.dtype, tuple(t.shape), offset, offset + flat.size))
            offset += flat.size
        self._split = sum(t.numel() * t.element_size() for _, t in weights)
        self._size = offset
        self._heads = (
            _digest_head([(n[2:], t.numpy().dtype.str, tuple(t.shape)) for n, t in weights]),
            _digest_head([(n, t.numpy().dtype.str, tuple(t.shape)) for n, t in optim]),
        )
        self._pool = []
        self._key = [(n, id(t), t.data_ptr()) for n, t in tensors]
        if not all(t.is_contiguous() for _, t in tensors):
            self._key = []  # a copy (not a view) would not follow the updates: retake each time

    def take(
        self, *keep: dict[str, NDArray[Any]] | None
    ) -> tuple[dict[str, str], dict[str, NDArray[Any]]]:
        """The commitment to the current state, and a copy of it (named as in a snapshot),
        written into no buffer that holds one of ``keep``."""
        tensors = self._tensors()
        if not self._key or self._key != [(n, id(t), t.data_ptr()) for n, t in tensors]:
            self._relayout(tensors)
        free = [(flat, views) for flat, views in self._pool if all(views is not k for k in keep)]
        if free:
            flat, views = free[0]
        else:
            flat = np.empty(self._size, np.uint8)
            views = {
                name: flat[lo:hi].view(dtype).reshape(shape)
                for name, dtype, shape, lo, hi in self._layout
            }
            self._pool.append((flat, views))
        np.concatenate(self._sources, out=flat)
        weights, optim = blake3(self._heads[0]), blake3(self._heads[1])
        weights.update(flat[: self._split].data)
        optim.update(flat[self._split :].data)
        return {"weights": weights.hexdigest(), "optim": optim.hexdigest()}, views


# --- the worker's side -------------------------------------------------------------------


@dataclass
class _Held:
    stage: int
    spec: ModelSpec
    module: torch.nn.Sequential
    optimizer: torch.optim.Optimizer
    in_shape: tuple[int, ...]
    first: bool
    pending: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    book: _StateBook | None = None
    latest: dict[str, NDArray[Any]] | None = None
    """A copy of the state last committed to (at load, the state loaded): what the next batch
    starts from."""
    before: tuple[int, dict[str, NDArray[Any]]] | None = None
    """(step, the state that step started from): what an audit asks for after the batch."""


class StageWorker:
    """A worker holding one stage of a split job: its weights, optimizer state and the
    activations it must still back-propagate. Talks only through :meth:`handle`."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.received: list[TensorRecord] = []
        """Every tensor this worker was ever sent, in order."""
        self._jobs: dict[int, _Held] = {}

    def holds(self, job_id: int) -> int | None:
        """The stage of ``job_id`` this worker holds, if any."""
        held = self._jobs.get(job_id)
        return None if held is None else held.stage

    def handle(self, route: str, body: bytes) -> bytes:
        """Answer one message from the coordinator, computing under the pinned profile (one
        thread, deterministic algorithms), as work units do; a process that pinned it already
        (the in-process coordinator's training loop) skips the ~15 us of doing it again."""
        import torch

        if torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled():
            return self._answer(route, body)
        with pinned(1):
            return self._answer(route, body)

    def _answer(self, route: str, body: bytes) -> bytes:
        if route not in ROUTES:
            raise NotFound(
                f"a stage worker has no route {route!r}; use one of {', '.join(ROUTES)}."
            )
        meta, arrays = decode_message(body)
        tensors = _torch(arrays)
        for name, t in tensors.items():
            self.received.append(TensorRecord(route, name, tuple(int(d) for d in t.shape)))
        try:
            job_id = int(meta["job"])
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument("a stage message names its job; send {'job': id}.") from None
        if route == "load":
            return self._load(job_id, meta, tensors)
        held = self._jobs.get(job_id)
        if held is None:
            raise NotFound(f"worker {self.address} holds no stage of job {job_id}; load one first.")
        if route == "forward":
            return self._forward(held, meta, tensors)
        if route == "backward":
            return self._backward(held, meta, tensors)
        if route == "snapshot":
            return self._snapshot(held, meta)
        return encode_message({}, held.module.state_dict())

    def _snapshot(self, held: _Held, meta: Mapping[str, Any]) -> bytes:
        step = _step_key({"micro": 0, **meta})[0]
        if held.before is None or held.before[0] != step:
            raise NotFound(
                f"stage {held.stage} keeps the state of its last batch only, not of step {step}; "
                "ask for a snapshot right after the batch."
            )
        return encode_message({"step": step}, held.before[1])

    def _commit(self, held: _Held) -> dict[str, str]:
        """Commit to the current state (:func:`_commitment`'s digests), keeping a copy of it
        for the next batch's audit."""
        assert held.book is not None
        keep = None if held.before is None else held.before[1]
        commitment, held.latest = held.book.take(held.latest, keep)
        return commitment

    def _load(self, job_id: int, meta: Mapping[str, Any], tensors: dict[str, Any]) -> bytes:
        if job_id in self._jobs:
            raise NotPermitted(
                f"worker {self.address} holds stage {self._jobs[job_id].stage} of job {job_id} "
                "already; a worker holds one stage of a split job."
            )
        spec = ModelSpec.from_json(meta.get("spec", ""))  # its own sentence when malformed
        try:
            stage, start, stop = int(meta["stage"]), int(meta["start"]), int(meta["stop"])
            in_shape = tuple(int(d) for d in json.loads(meta["in_shape"]))
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument(
                "a load message holds spec, stage, start, stop and in_shape; send that."
            ) from None
        if not 0 <= start < stop <= len(spec.layers):
            raise InvalidArgument(
                f"layers {start}..{stop - 1} are not layers of the spec (it has {len(spec.layers)})."
            )
        module = _stage_module(spec, start, stop)
        expected = module.state_dict()
        if set(tensors) != set(expected) or any(
            tuple(tensors[k].shape) != tuple(v.shape) for k, v in expected.items()
        ):
            raise InvalidArgument(
                f"the weights sent for layers {start}..{stop - 1} are not those layers' tensors "
                f"({', '.join(sorted(expected))}); send exactly the stage's weights."
            )
        module.load_state_dict(tensors, strict=True)
        optimizer = spec.optimizer.build(module.parameters())
        held = _Held(stage, spec, module, optimizer, in_shape, start == 0)
        held.book = _StateBook(module, optimizer)
        held.latest = held.book.take()[1]
        self._jobs[job_id] = held
        return encode_message({"stage": stage}, {})

    def _forward(self, held: _Held, meta: Mapping[str, Any], tensors: dict[str, Any]) -> bytes:
        import torch

        x = tensors.get("x")
        if (
            x is None
            or x.dtype != torch.float32
            or x.dim() == 0
            or tuple(x.shape[1:]) != held.in_shape
        ):
            got = None if x is None else tuple(x.shape)
            raise InvalidArgument(
                f"stage {held.stage} takes activations of shape (batch, "
                f"{', '.join(map(str, held.in_shape))}) in float32, got {got}."
            )
        if meta.get("mode") == "eval":
            held.module.eval()
            with torch.inference_mode():
                out = held.module(x)
            held.module.train()
            return encode_message({}, {"x": out})
        key = _step_key(meta)
        if key[1] == 0:
            held.optimizer.zero_grad(set_to_none=True)
            # Kept until the next batch: an audit asks for it only after this batch, when
            # everything computed from it has been sent and committed to. The copy was made
            # when this state was committed to (or loaded), and nothing changed it since.
            held.before = (key[0], held.latest or {})
        if not held.first:
            x.requires_grad_(True)
        reply: dict[str, torch.Tensor] = {}
        rng = tensors.get("rng")
        if rng is not None:
            if rng.dtype != torch.uint8 or rng.shape != torch.get_rng_state().shape:
                raise InvalidArgument(
                    "the generator state sent is not torch's CPU generator state; send the "
                    "bytes torch.get_rng_state() gives."
                )
            # The coordinator's generator state: dropout here draws exactly the numbers it
            # would draw in the unsplit network, and the state after it goes on to the next stage.
            own = torch.get_rng_state()  # by hand: fork_rng() costs ~3x as much per call
            torch.set_rng_state(rng)
            try:
                out = held.module(x)
                reply["rng"] = torch.get_rng_state()
            finally:
                torch.set_rng_state(own)
        else:
            out = held.module(x)
        held.pending[key] = (x, out)
        reply["x"] = out
        return encode_message({}, reply)

    def _backward(self, held: _Held, meta: Mapping[str, Any], tensors: dict[str, Any]) -> bytes:
        key = _step_key(meta)
        pending = held.pending.pop(key, None)
        if pending is None:
            raise NotFound(
                f"stage {held.stage} has no forward pass for step {key[0]} micro-batch {key[1]} "
                "to back-propagate; send its forward pass first."
            )
        x, out = pending
        grad = tensors.get("grad")
        if grad is None or grad.dtype != out.dtype or tuple(grad.shape) != tuple(out.shape):
            held.pending[key] = pending  # a bad gradient does not lose the forward pass
            raise InvalidArgument(
                f"stage {held.stage} needs a float32 gradient of shape {tuple(out.shape)} for "
                "its output."
            )
        out.backward(grad)
        commitment: dict[str, str] = {}
        if meta.get("update") == "true":
            held.optimizer.step()
            commitment = self._commit(held)
        if held.first:
            return encode_message(commitment, {})
        return encode_message(commitment, {"grad": x.grad})


class ScaledActivationsWorker(StageWorker):
    """A cheating stage worker, for demos and the attack tests of real processes (issue 12
    §8; ``databright split worker --cheat scaled``): honest before batch ``start``, then it
    returns its activations times 1.001, finite and of the right shape but wrong. An audit of
    any batch from ``start`` on catches it. An honest worker never needs this."""

    def __init__(self, address: str, start: int = 2) -> None:
        super().__init__(address)
        self.start = start

    def _forward(self, held: _Held, meta: Mapping[str, Any], tensors: dict[str, Any]) -> bytes:
        reply = super()._forward(held, meta, tensors)
        if meta.get("mode") == "eval" or _step_key(meta)[0] < self.start:
            return reply
        answer, arrays = decode_message(reply)
        arrays["x"] *= np.float32(1.001)
        return encode_message(answer, arrays)


def _micro_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """``n`` rows cut into at most ``parts`` nearly equal, non-empty, consecutive slices."""
    parts = min(parts, n)
    size, extra = divmod(n, parts)
    bounds = []
    lo = 0
    for k in range(parts):
        hi = lo + size + (1 if k < extra else 0)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def _step_key(meta: Mapping[str, Any]) -> tuple[int, int]:
    try:
        return int(meta["step"]), int(meta["micro"])
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument(
            "a forward or backward message names its step and micro-batch; send them."
        ) from None


# --- the coordinator's side --------------------------------------------------------------


@dataclass(frozen=True)
class SplitResult:
    """What :func:`databright.ml.train.train` gives (trained network, checkpoint, metrics,
    history), for a split run; ``metrics`` adds ``stages`` and ``messages`` relayed."""

    module: torch.nn.Module
    checkpoint: bytes
    metrics: dict[str, float]
    history: tuple[EpochReport, ...] = ()


@dataclass(frozen=True)
class _Seat:
    worker: str
    owner: str
    link: StageLink


@dataclass(frozen=True)
class StageEvidence:
    """Enough to slash ``worker`` for stage ``stage`` of job ``job_id``: at ``step`` (micro-batch
    ``micro``) it was given inputs hashing to ``input_hash`` (the committed starting state's
    digests and what the coordinator relayed to it) and answered ``what`` hashing to
    ``worker_hash``, where recomputing gives ``recomputed_hash``. A state is hashed as
    :func:`_state_hash` of its commitment; for ``final weights`` the recomputed hash is the
    weights digest the worker itself committed to, and for ``an optimizer state`` (one no
    honest optimizer can hold) it is empty."""

    job_id: int
    step: int
    micro: int
    stage: int
    worker: str
    what: str
    input_hash: str
    worker_hash: str
    recomputed_hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _MicroTrace:
    """What one micro-batch relayed, kept until the batch's audit draw: ``acts[k]`` and
    ``rngs[k]`` went into stage ``k`` (``k + 1``: came out of it), ``grads[k + 1]`` was stage
    ``k``'s output gradient and ``grads[k]`` (``k > 0``) the input gradient it returned."""

    acts: list[Any] = field(default_factory=list)
    rngs: list[NDArray[Any] | None] = field(default_factory=list)
    grads: list[Any] = field(default_factory=list)


class StageHoldings:
    """Which weight tensors of which model every worker, and every owner over its workers, has
    ever been given, across split jobs: one worker holding stage 0 of one job and stage 1 of
    another job on the same model would hold the whole model, though each job alone gave it
    one stage. Shared by the coordinator's :class:`SplitTraining` jobs (``holdings=``).

    A model is named by its spec's architecture digest, so two jobs of one architecture count
    as one model even when they train other weights: the stricter reading, since a worker
    that held every layer of an architecture at different times, each trained a little more,
    would still hold most of what the weights are. Once given, a tensor stays counted (a
    worker keeps what it was sent). In memory, like the split jobs themselves."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()

    def held(self, spec: ModelSpec, holder: str) -> frozenset[str]:
        """The weight tensors of ``spec``'s model ``holder`` was given (an owner: ``owner:``
        and its address)."""
        with self._lock:
            return frozenset(self._held.get((spec.architecture_digest(), holder), ()))

    def grant(self, plan: SplitPlan, stage: int, worker: str, owner: str, job_id: int) -> None:
        """Record that ``worker`` (of ``owner``) is given ``stage`` of ``plan``, or refuse with
        ``NotPermitted`` when it or its owner would then have been given every weight."""
        model = plan.spec.architecture_digest()
        given = set(plan.tensor_names[stage])
        weights = {n for n, _ in plan.spec.build(device="meta").named_parameters()}
        with self._lock:
            for holder, who in ((worker, f"worker {worker}"), (f"owner:{owner}", f"owner {owner}")):
                if weights <= self._held.get((model, holder), set()) | given:
                    raise NotPermitted(
                        f"{who} was given the other weights of this model in earlier split jobs; "
                        f"with stage {stage} of split job {job_id} it would hold the whole model, "
                        "so it gets no stage of it that completes the set."
                    )
            for holder in (worker, f"owner:{owner}"):
                self._held.setdefault((model, holder), set()).update(given)


class SplitTraining:
    """One split training job, run by the trusted coordinator; see the module docstring."""

    def __init__(
        self,
        plan: SplitPlan,
        *,
        job_id: int = 0,
        micro_batches: int = 1,
        threads: int = 1,
        audit_probability: float = 0.05,
        audit_seed: int | None = None,
        holdings: StageHoldings | None = None,
    ) -> None:
        """``holdings``: what workers were given in the coordinator's other split jobs (see
        :class:`StageHoldings`); None checks this job alone."""
        if not isinstance(plan, SplitPlan):
            raise InvalidArgument(
                f"a split job needs a SplitPlan, got {type(plan).__name__}; build one with "
                "SplitPlan.of() or SplitPlan.balanced()."
            )
        if isinstance(micro_batches, bool) or not isinstance(micro_batches, int):
            raise InvalidArgument(f"micro_batches must be a whole number, got {micro_batches!r}.")
        if not 1 <= micro_batches <= plan.spec.batch_size:
            raise InvalidArgument(
                f"micro_batches must be 1..{plan.spec.batch_size} (the batch size), "
                f"got {micro_batches}."
            )
        norms = [
            i for i, layer in enumerate(plan.spec.layers) if layer.type.startswith("BatchNorm")
        ]
        if micro_batches > 1 and norms:
            raise InvalidArgument(
                f"layer {norms[0]} is batch normalisation, which would normalise each "
                "micro-batch on its own and so train another model; use micro_batches=1."
            )
        if (
            isinstance(audit_probability, bool)
            or not isinstance(audit_probability, int | float)
            or not 0.0 <= audit_probability <= 1.0
        ):
            raise InvalidArgument(
                f"audit_probability must be a number from 0 to 1, got {audit_probability!r}."
            )
        # Checked again: the dataclass's constructor checks nothing, and a hand-made plan
        # with a stage of no weights would let another stage hold the whole model.
        self.plan = SplitPlan.of(plan.spec, plan.bounds)
        self.holdings = holdings
        self.job_id = job_id
        self.micro_batches = micro_batches
        self.threads = threads
        self.seats: dict[int, _Seat] = {}
        self.sent: dict[str, list[TensorRecord]] = {}
        """Every weight tensor sent to each worker (activations and gradients are not
        weights and are not listed)."""
        self.messages = 0
        self.audit_probability = float(audit_probability)
        # The coordinator's own generator, seeded from the OS unless a test fixes it: workers
        # must not predict which batch is audited, and torch's generators are not touched.
        self._audit_rng = random.Random(secrets.randbits(64) if audit_seed is None else audit_seed)
        self.audits = 0
        """Batches audited so far."""
        self.audit_messages = 0
        self.audited: dict[str, list[TensorRecord]] = {}
        """Every state tensor each worker handed over in an audit snapshot (to the attested
        coordinator: no worker is ever sent them)."""
        self.evidence: list[StageEvidence] = []
        """What each caught worker did; a caller slashes with it."""
        self._commits: dict[int, dict[str, str]] = {}
        self._replicas: dict[int, torch.nn.Sequential] = {}  # the coordinator's own stages
        self._rng_shape: tuple[int, ...] = ()
        self._trained = False

    @property
    def cheaters(self) -> tuple[str, ...]:
        """The workers caught so far, in the order they were caught."""
        return tuple(dict.fromkeys(e.worker for e in self.evidence))

    # --- who holds what ------------------------------------------------------------------

    def holder(self, worker: str) -> int | None:
        for stage, seat in self.seats.items():
            if seat.worker == worker:
                return stage
        return None

    def join(
        self,
        worker: str,
        link: StageLink,
        *,
        owner: str | None = None,
        stage: int | None = None,
    ) -> int:
        """Give ``worker`` (of ``owner``, default itself) a stage: ``stage``, or the first free
        one. ``NotPermitted`` names the rule when the worker holds a stage of this job already
        or its owner's workers would then hold every stage."""
        owner = owner or worker
        held = self.holder(worker)
        if held is not None:
            raise NotPermitted(
                f"worker {worker} holds stage {held} of split job {self.job_id} already; under "
                "model splitting a worker holds one stage, so that no worker assembles the model."
            )
        if stage is None:
            free = [k for k in range(self.plan.stages) if k not in self.seats]
            if not free:
                raise NotPermitted(
                    f"every stage of split job {self.job_id} has a worker; there is none to give."
                )
            stage = free[0]
        stage = self.plan.check_stage(stage)
        if stage in self.seats:
            raise NotPermitted(
                f"stage {stage} of split job {self.job_id} is held by {self.seats[stage].worker}; "
                "a stage has one worker."
            )
        owned = {k for k, seat in self.seats.items() if seat.owner == owner} | {stage}
        if len(owned) == self.plan.stages:
            raise NotPermitted(
                f"owner {owner}'s workers would hold every stage of split job {self.job_id}, "
                "that is the whole model; one owner's workers never hold all stages."
            )
        if self.holdings is not None:
            self.holdings.grant(self.plan, stage, worker, owner, self.job_id)
        self.seats[stage] = _Seat(worker, owner, link)
        return stage

    # --- relaying ------------------------------------------------------------------------

    def _exchange(
        self,
        stage: int,
        route: str,
        meta: Mapping[str, Any],
        tensors: Mapping[str, Any],
        *,
        copy: bool = False,
    ) -> tuple[dict[str, str], dict[str, NDArray[Any]]]:
        """Send one message to a stage and return its reply's meta and arrays (read-only views
        unless ``copy``); audit messages are counted apart, so that ``messages`` stays what the
        relaying itself costs."""
        reply = self.seats[stage].link(route, encode_message({"job": self.job_id, **meta}, tensors))
        if route == "snapshot":
            self.audit_messages += 1
        else:
            self.messages += 1
        return decode_message(reply, copy=copy)

    def _checked(
        self, stage: int, array: NDArray[Any] | None, what: str, shape: tuple[int, ...]
    ) -> NDArray[Any]:
        """A worker's reply array, refused unless it has the shape the plan says and only
        finite numbers: an untrusted worker's garbage stops here, not in the next stage."""
        if (
            array is None
            or array.dtype != np.float32
            or tuple(array.shape) != shape
            or not bool(np.isfinite(array).all())
        ):
            got = None if array is None else tuple(array.shape)
            raise InvalidArgument(
                f"stage {stage}'s worker {self.seats[stage].worker} returned {what} of shape "
                f"{got} (or not finite float32 values), expected {shape}; its reply is refused."
            )
        return array

    def _forward(
        self,
        x: Any,
        step: int,
        micro: int,
        rng: NDArray[Any] | None,
        mode: str,
        trace: _MicroTrace | None = None,
    ) -> tuple[torch.Tensor, NDArray[Any] | None]:
        import torch

        n = int(x.shape[0])
        act = x
        meta = {"step": step, "micro": micro, "mode": mode}
        for k in range(self.plan.stages):
            if trace is not None:
                trace.acts.append(act)
                trace.rngs.append(rng)
            send = {"x": act} if rng is None else {"x": act, "rng": rng}
            reply = self._exchange(k, "forward", meta, send)[1]
            act = self._checked(k, reply.get("x"), "activations", (n, *self.plan.shapes[k + 1]))
            if rng is not None:
                rng = reply.get("rng")
                if rng is None or rng.dtype != np.uint8 or tuple(rng.shape) != self._rng_shape:
                    raise InvalidArgument(
                        f"stage {k}'s worker {self.seats[k].worker} did not return the "
                        "generator state; its reply is refused."
                    )
        if trace is not None:
            trace.acts.append(act)
            trace.rngs.append(rng)
        return torch.tensor(act), rng  # the only copy of the logits the coordinator makes

    def _backward(
        self, grad: Any, step: int, micro: int, update: bool, trace: _MicroTrace | None = None
    ) -> None:
        n = int(grad.shape[0])
        meta = {"step": step, "micro": micro, "update": update}
        grads: list[Any] = [None] * (self.plan.stages + 1)
        grads[-1] = grad
        for k in reversed(range(self.plan.stages)):
            answer, reply = self._exchange(k, "backward", meta, {"grad": grad})
            if update:
                self._commits[k] = self._committed(k, answer)
            if k:
                grad = self._checked(k, reply.get("grad"), "gradients", (n, *self.plan.shapes[k]))
                grads[k] = grad
        if trace is not None:
            trace.grads = grads

    def _committed(self, stage: int, answer: Mapping[str, str]) -> dict[str, str]:
        commitment = {key: answer.get(key, "") for key in ("weights", "optim")}
        if not all(re.fullmatch(r"[0-9a-f]{64}", v) for v in commitment.values()):
            raise InvalidArgument(
                f"stage {stage}'s worker {self.seats[stage].worker} did not commit to its updated "
                "state (BLAKE3 digests 'weights' and 'optim' in its reply); its reply is refused."
            )
        return commitment

    # --- auditing ------------------------------------------------------------------------

    def _audit(self, step: int, traces: Sequence[_MicroTrace], start: Mapping[int, Any]) -> None:
        """Recompute every stage's part of batch ``step`` from the state it committed to at
        ``start`` of the batch; record and stop on any difference."""
        self.audits += 1
        caught = []
        for k, seat in sorted(self.seats.items()):
            _, state = self._exchange(k, "snapshot", {"step": step}, {}, copy=True)
            self.audited.setdefault(seat.worker, []).extend(
                TensorRecord("snapshot", n, tuple(int(d) for d in a.shape))
                for n, a in state.items()
            )
            found = self._recompute(k, step, state, traces, start[k])
            if found is not None:
                self.evidence.append(found)
                caught.append(found)
        if caught:
            first = caught[0]
            raise NotPermitted(
                f"stage {first.stage}'s worker {first.worker} returned {first.what} at step "
                f"{first.step} (micro-batch {first.micro}) that differ from the coordinator's "
                "recomputation; the job stops and the evidence is in SplitTraining.evidence "
                "for slashing its stake."
            )

    def _recompute(
        self,
        k: int,
        step: int,
        state: Mapping[str, NDArray[Any]],
        traces: Sequence[_MicroTrace],
        start: Mapping[str, str],
    ) -> StageEvidence | None:
        import torch

        def evidence(
            micro: int, what: str, given: Mapping[str, Any], theirs: str, ours: str
        ) -> StageEvidence:
            # The inputs: the state the worker committed to and what it was sent for the check.
            starting = {
                f"start.{n}": np.frombuffer(bytes.fromhex(v), np.uint8) for n, v in start.items()
            }
            inputs = _digest({**given, **starting})
            return StageEvidence(
                self.job_id, step, micro, k, self.seats[k].worker, what, inputs, theirs, ours
            )

        held = _commitment(state)
        if held != dict(start):
            return evidence(0, "a starting state", {}, _state_hash(held), _state_hash(start))
        spec = self.plan.spec
        module = self._replicas.get(k)
        if module is None:  # built once: building a stage from the spec was most of an audit
            module = _stage_module(spec, self.plan.bounds[k], self.plan.bounds[k + 1])
            self._replicas[k] = module
        module.load_state_dict(
            {n: torch.from_numpy(state[f"w.{n}"]) for n in self.plan.tensor_names[k]}, strict=True
        )
        saved = {n: torch.from_numpy(a) for n, a in state.items() if n.startswith(OPTIMIZER_PREFIX)}
        try:  # checked as a work unit's input is: a state the spec's optimizer could reach
            optimizer = restore_optimizer(
                spec, module, saved, spec.optimizer.type if saved else None
            )
        except InvalidArgument:
            return evidence(0, "an optimizer state", {}, _state_hash(held), "")
        # One thread and deterministic kernels as the worker computes; pinned() also restores
        # torch's global generator, which the replayed dropout draws from.
        with pinned(1):
            for micro, trace in enumerate(traces):
                if micro == 0:
                    optimizer.zero_grad(set_to_none=True)
                x = _fresh(trace.acts[k])
                if k:
                    x.requires_grad_(True)
                given: dict[str, Any] = {"x": trace.acts[k]}
                rng = trace.rngs[k]
                theirs: dict[str, Any] = {"x": trace.acts[k + 1]}
                if rng is not None:
                    given["rng"] = rng
                    theirs["rng"] = trace.rngs[k + 1]
                    torch.set_rng_state(_fresh(rng))
                out = module(x)
                ours: dict[str, Any] = {"x": out}
                if rng is not None:
                    ours["rng"] = torch.get_rng_state()
                if _digest(ours) != _digest(theirs):
                    return evidence(micro, "activations", given, _digest(theirs), _digest(ours))
                given["grad"] = trace.grads[k + 1]
                out.backward(_fresh(trace.grads[k + 1]))
                if k:
                    returned, recomputed = (
                        _digest({"grad": trace.grads[k]}),
                        _digest({"grad": x.grad}),
                    )
                    if returned != recomputed:
                        return evidence(micro, "input gradients", given, returned, recomputed)
            optimizer.step()
        ours_end = _commitment(_stage_state(module, optimizer, copy=False))
        if ours_end != self._commits[k]:
            theirs_end = _state_hash(self._commits[k])
            return evidence(
                len(traces) - 1, "an updated state", {}, theirs_end, _state_hash(ours_end)
            )
        return None

    def _load(self, module: torch.nn.Module) -> None:
        state = module.state_dict()
        for k, seat in sorted(self.seats.items()):
            tensors = {name: state[name] for name in self.plan.tensor_names[k]}
            # What the worker starts from: these weights and a fresh optimizer.
            self._commits[k] = {"weights": _digest(tensors), "optim": _digest({})}
            meta = {
                "spec": self.plan.spec.to_json().decode(),
                "stage": k,
                "start": self.plan.bounds[k],
                "stop": self.plan.bounds[k + 1],
                "in_shape": list(self.plan.shapes[k]),
            }
            self._exchange(k, "load", meta, tensors)
            self.sent.setdefault(seat.worker, []).extend(
                TensorRecord("load", n, tuple(int(d) for d in t.shape)) for n, t in tensors.items()
            )

    def _collect(self) -> dict[str, torch.Tensor]:
        state: dict[str, torch.Tensor] = {}
        for k in range(self.plan.stages):
            got = _torch(self._exchange(k, "weights", {}, {}, copy=True)[1])
            if set(got) != set(self.plan.tensor_names[k]):
                raise InvalidArgument(
                    f"stage {k}'s worker {self.seats[k].worker} returned other tensors than its "
                    "stage's; its weights are refused."
                )
            returned, committed = _digest(got), self._commits[k]["weights"]
            if returned != committed:
                self.evidence.append(
                    StageEvidence(
                        self.job_id, -1, 0, k, self.seats[k].worker, "final weights",
                        committed, returned, committed,
                    )
                )  # fmt: skip
                raise NotPermitted(
                    f"stage {k}'s worker {self.seats[k].worker} returned final weights other "
                    "than those it committed to after its last step; they are refused and the "
                    "evidence is in SplitTraining.evidence for slashing its stake."
                )
            state.update(got)
        return state

    def score_module(self, x: Any, y: Any) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) of the split network in evaluation mode."""
        import torch
        from torch.nn import functional

        loss_sum = 0.0
        correct = 0
        for start in range(0, len(x), _SCORE_CHUNK):
            logits, _ = self._forward(x[start : start + _SCORE_CHUNK], 0, 0, None, "eval")
            yb = y[start : start + _SCORE_CHUNK]
            with torch.inference_mode():
                loss_sum += float(functional.cross_entropy(logits, yb, reduction="sum"))
                correct += int((logits.argmax(1) == yb).sum())
        return correct / len(x), loss_sum / len(x)

    # --- training ------------------------------------------------------------------------

    def train(
        self,
        x: ArrayLike,
        y: ArrayLike,
        *,
        init: bytes | None = None,
        on_epoch: Callable[[EpochReport], None] | None = None,
        ledger: ExposureLedger | None = None,
        dataset: str = "",
        example_ids: Sequence[int] | None = None,
        dataset_size: int | None = None,
    ) -> SplitResult:
        """Train the plan's spec on ``(x, y)`` as :func:`databright.ml.train.train` would, with
        every stage on its worker. With ``ledger``, the input stage's worker (which sees every
        example's features) and its owner are charged for ``example_ids`` of ``dataset`` first,
        and the job is refused if that breaks the exposure limit."""
        import torch
        from torch.nn import functional

        spec = self.plan.spec
        missing = [k for k in range(self.plan.stages) if k not in self.seats]
        if missing:
            raise InvalidArgument(
                f"stage {missing[0]} of split job {self.job_id} has no worker; let workers join "
                "every stage first."
            )
        if self._trained:
            raise InvalidArgument(
                f"split job {self.job_id} has been trained already (its workers hold its "
                "stages); start a SplitTraining with another job id to train again."
            )
        started = time.perf_counter()
        xt, yt = as_tensors(spec, x, y, "training")
        if ledger is not None:
            self._charge(ledger, dataset, example_ids, dataset_size, len(xt))
        self._trained = True
        stochastic = any(layer.type == "Dropout" for layer in spec.layers)
        self.messages = 0
        with pinned(self.threads, seed=spec.seed):
            generator = torch.Generator().manual_seed(spec.seed)
            train_idx, hold_idx = holdout_split(yt.numpy(), spec.holdout, generator)
            if len(train_idx) == 0 or len(hold_idx) == 0:
                raise InvalidArgument(
                    f"{len(xt)} examples cannot be split into training and a hold-out of "
                    f"{spec.holdout:g}; hand in more examples."
                )
            x_train, y_train = xt[train_idx], yt[train_idx]
            x_hold, y_hold = xt[hold_idx], yt[hold_idx]
            self._rng_shape = tuple(torch.get_rng_state().shape)
            # pinned() seeded the global generator as train() has it; from here on its state
            # lives in the messages (the coordinator's own generator is left alone).
            rng = torch.get_rng_state().numpy() if stochastic else None
            self._load(spec.build() if init is None else load_checkpoint(init, spec))
            history = []
            step = 0
            for epoch in range(1, spec.epochs + 1):
                perm = torch.randperm(len(x_train), generator=generator)
                loss_sum = 0.0
                correct = 0
                for start, stop in batch_bounds(len(x_train), spec.batch_size):
                    idx = perm[start:stop]
                    xb, yb = x_train[idx], y_train[idx]
                    pieces = _micro_bounds(stop - start, self.micro_batches)
                    traces = [_MicroTrace() for _ in pieces]
                    start_commits = dict(self._commits)
                    for micro, (lo, hi) in enumerate(pieces):
                        trace = traces[micro]
                        logits, rng = self._forward(xb[lo:hi], step, micro, rng, "train", trace)
                        logits.requires_grad_(True)
                        if len(pieces) == 1:
                            loss = functional.cross_entropy(logits, yb)
                        else:
                            loss = functional.cross_entropy(logits, yb[lo:hi], reduction="sum") / (
                                stop - start
                            )
                        loss.backward()
                        update = micro == len(pieces) - 1
                        self._backward(logits.grad, step, micro, update, trace)
                        loss_sum += loss.item() * (stop - start)
                        correct += int((logits.detach().argmax(1) == yb[lo:hi]).sum())
                    # Drawn after the batch: every worker has committed to what it computed.
                    if self._audit_rng.random() < self.audit_probability:
                        self._audit(step, traces, start_commits)
                    step += 1
                hold_accuracy, hold_loss = self.score_module(x_hold, y_hold)
                report = EpochReport(
                    epoch,
                    spec.epochs,
                    loss_sum / len(x_train),
                    correct / len(x_train),
                    hold_loss,
                    hold_accuracy,
                )
                history.append(report)
                if on_epoch is not None:
                    on_epoch(report)
            module = spec.build(device="meta")
            module.load_state_dict(self._collect(), strict=True, assign=True)
            module.eval()
            train_accuracy, _ = score_module(module, x_train, y_train)
            checkpoint = save_checkpoint(module, {"format": "pt"}, spec=spec)
        metrics = {
            "holdout_accuracy": history[-1].holdout_accuracy,
            "holdout_loss": history[-1].holdout_loss,
            "train_accuracy": train_accuracy,
            "examples": float(len(xt)),
            "train_examples": float(len(train_idx)),
            "holdout_examples": float(len(hold_idx)),
            "epochs": float(spec.epochs),
            "stages": float(self.plan.stages),
            "messages": float(self.messages),
            "audits": float(self.audits),
            "audit_messages": float(self.audit_messages),
            "seconds": time.perf_counter() - started,
        }
        return SplitResult(module, checkpoint, metrics, tuple(history))

    def _charge(
        self,
        ledger: ExposureLedger,
        dataset: str,
        example_ids: Sequence[int] | None,
        dataset_size: int | None,
        count: int,
    ) -> None:
        ids = list(example_ids) if example_ids is not None else []
        if not dataset or len(ids) != count or len(set(ids)) != count:
            raise InvalidArgument(
                f"with an exposure ledger, give the dataset's name and one distinct example id "
                f"per example ({count}), got {len(ids)} ids."
            )
        size = dataset_size or count
        seat = self.seats[0]
        if not ledger.fits(dataset, size, seat.worker, seat.owner, ids):
            share = count / size
            raise NotPermitted(
                f"the input stage's worker {seat.worker} would see the features of {count} of the "
                f"{size} examples of dataset {dataset} ({share:.0%}), over the "
                f"{ledger.limit:.0%} exposure limit; split training sends every example to the "
                "input stage, so train on a smaller share per job."
            )
        ledger.grant(dataset, size, seat.worker, seat.owner, ids)
