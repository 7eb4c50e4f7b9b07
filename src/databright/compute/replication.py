"""Redundancy that catches cheats: triple modular redundancy with a referee.

Replicas of a unit go to distinct workers of one numeric class (BOINC's homogeneous
redundancy), so honest replicas agree bit for bit and the first test is exact hash agreement.
A calibrated ``tolerance`` (relative L2 to the reference) can accept near-misses second. When
the replicas disagree, the coordinator recomputes the unit itself (refereed delegation, as in
Gensyn's Verde) and every replica that differs from the referee's output is a cheat, named
with evidence: the unit, its input hash, the honest and the bad output hashes and the signed
envelopes. Because the referee decides, one honest replica in a group is enough for every
cheat in it to be caught; a group in which *all* replicas agree on one wrong output is what
redundancy alone cannot see, hence distinct workers and distinct owners per group.

Bisection to the first disputed stretch (Gensyn Verde's refereed delegation): with its result
a worker commits to a *trace*, the hash of the training state (the weights and the optimizer's
state, what a unit's output checkpoint holds) after every ``TRACE_EVERY``-th step
of the unit and after its last (:func:`trace_steps`, :func:`run_unit_traced`; the last entry
must be its output's). When replicas disagree, :func:`bisect_group` compares two replicas'
traces by binary search (hashes only, no compute) and finds an entry where they agree before
and differ after: a stretch of at most ``TRACE_EVERY`` steps ending at step j. The coordinator
then computes the unit itself only up to step j (:class:`RefereeRun`) and convicts whichever
replica's entry there (or the one before) differs from its own. The evidence records the
stretch, the agreed state hash before it and both hashes at its end, so a checker reruns one
prefix of j + 1 steps, not the unit. An honest replica is never convicted (it matches the
referee at every entry), and every replica that differs from it is convicted at its first wrong
entry, so one honest replica per group still catches every cheat; the referee computes the
whole unit only when every replica is convicted. Results without a trace fall back to the
whole-unit recomputation.

Why a stretch and not every step: a state hash costs a step about twice its own time (the
caches it displaces): ~12 us after each of the digits MLP's 0.4 ms steps is 3% of every honest
unit, paid to make disputes (rare, and the referee's cost) end on one step rather than eight.
``TRACE_EVERY = 1`` gives the step.

Adaptive replication (BOINC): a worker with at least ``trusted_after`` valid results and none
invalid gets a unit alone with probability ``1 - adaptive_probability``; otherwise the unit is
spot-checked by ``spot_check_replicas`` replicas (2, BOINC's usual quorum: one honest replica
beside a cheat is a disagreement, and the referee settles it as in a full group).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from blake3 import blake3
from numpy.typing import ArrayLike, NDArray

from databright.compute.state import ResultRecord, WorkerRecord
from databright.compute.units import (
    optimizer_state,
    output_hash,
    relative_l2,
    run_steps,
    unit_state,
)
from databright.errors import InvalidArgument
from databright.ml.spec import ModelSpec

if TYPE_CHECKING:
    import torch

__all__ = [
    "HASH_SIZE",
    "TRACE_EVERY",
    "Evidence",
    "RefereeRun",
    "ReplicaResult",
    "ReplicationPolicy",
    "Verdict",
    "bisect_group",
    "decide",
    "first_divergence",
    "run_unit_traced",
    "state_hash",
    "tensors_hash",
    "trace_of",
    "trace_steps",
]

HASH_SIZE = 32
"""Bytes per entry of a trace (BLAKE3)."""
TRACE_EVERY = 8
"""A trace's stride: a state hash after every TRACE_EVERY-th step of a unit and its last."""


def trace_steps(steps: int, every: int = TRACE_EVERY) -> list[int]:
    """The (0-based) steps of a unit of ``steps`` after which its trace takes a state hash."""
    if every < 1:
        raise InvalidArgument(f"a trace's stride is at least 1 step, got {every!r}.")
    return [i for i in range(steps) if (i + 1) % every == 0 or i == steps - 1]


@dataclass(frozen=True)
class ReplicationPolicy:
    """How many replicas, how close counts as agreeing, and whether trust lowers the cost."""

    replicas: int = 3
    tolerance: float = 0.0
    adaptive: bool = False
    trusted_after: int = 10
    adaptive_probability: float = 0.1
    spot_check_replicas: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 16:
            raise InvalidArgument(f"replicas must be 1..16, got {self.replicas!r}.")
        if not 0.0 <= self.tolerance < 1.0:
            raise InvalidArgument(
                f"tolerance is a relative L2 distance in [0, 1), got {self.tolerance!r}."
            )
        if not 2 <= self.spot_check_replicas <= 16:
            raise InvalidArgument(
                f"spot_check_replicas must be 2..16 (a check needs a second replica), got "
                f"{self.spot_check_replicas!r}."
            )
        if not 0.0 <= self.adaptive_probability <= 1.0:
            raise InvalidArgument(
                f"adaptive_probability must be in [0, 1], got {self.adaptive_probability!r}."
            )

    def replicas_for(self, first: WorkerRecord, rng: random.Random) -> int:
        """The group size of a unit whose first replica goes to ``first``."""
        trusted = first.valid_results >= self.trusted_after and first.invalid_results == 0
        if self.adaptive and trusted:
            if rng.random() >= self.adaptive_probability:
                return 1
            return min(self.spot_check_replicas, self.replicas)
        return self.replicas


@dataclass(frozen=True)
class ReplicaResult:
    """One worker's upload for a unit: its record, the checkpoint bytes and, when it sent one,
    its trace (one :data:`HASH_SIZE`-byte state hash per step)."""

    record: ResultRecord
    checkpoint: bytes
    trace: bytes | None = None


# --- traces --------------------------------------------------------------------------------


def _pieces(items: Sequence[tuple[str, torch.Tensor]]) -> list[NDArray[np.uint8]]:
    """What a state hash hashes, in order: per tensor its header (name, dtype, shape) and its
    raw bytes (views, not copies: they follow in-place updates)."""
    import torch

    out: list[NDArray[np.uint8]] = []
    for name, t in items:
        out.append(np.frombuffer(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode(), np.uint8))
        # as bytes whatever the dtype (bfloat16 has no numpy type) or rank (0-d buffers)
        out.append(t.reshape(-1).view(torch.uint8).numpy())
    return out


def tensors_hash(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """BLAKE3 over named tensors in name order (name, dtype, shape and raw bytes): the state
    hash of a training state given as its checkpoint's tensors."""
    items = [(name, t.detach().contiguous()) for name, t in sorted(tensors.items())]
    pieces = _pieces(items)
    data: Any = np.concatenate(pieces) if pieces else b""  # a buffer, as blake3 takes it
    return blake3(data).digest()


def _training_state(
    module: torch.nn.Module, optimizer: torch.optim.Optimizer | None
) -> dict[str, torch.Tensor]:
    """The live tensors a unit's output checkpoint would hold now, by their names there."""
    tensors = dict(module.state_dict())
    if optimizer is not None:
        tensors.update(optimizer_state(module, optimizer))
    return tensors


def state_hash(module: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> bytes:
    """BLAKE3 over a training state, tensor by tensor in name order (name, dtype, shape and
    raw bytes): the module's state and, with ``optimizer``, the optimizer's state under its
    training-checkpoint names, so it equals :func:`trace_of` of the checkpoint a unit would
    write now. Taken after every ``TRACE_EVERY``-th step, so it must cost little next to the
    steps. For the digits MLP's 19 KB: BLAKE3 5.6 us, SHA-256 (on the CPU's SHA extensions) 11,
    BLAKE2b 21, keccak about 40; and a step pays about twice the hash's own time, the rest
    being the caches it displaces (Adam's two moments triple the bytes). See
    :class:`StateHasher` for the steps."""
    return tensors_hash(_training_state(module, optimizer))


class StateHasher:
    """:func:`state_hash` of one module and its optimizer, again and again: the names, shapes
    and byte views of their tensors are taken once (optimizers and running statistics update
    the same storage in place), and each hash copies the views into one buffer and hashes it
    in one call: BLAKE3 runs many times faster on one buffer than on a dozen small updates.
    For the digits MLP's 4,810 parameters with Adam's two moments (58 KB) that is ~0.013 ms,
    what its weights alone cost with an update per tensor. An optimizer makes its state at
    its first step (Adam's moments), and a cheat could swap a state tensor for another: each
    hash first checks, by identity, that the optimizer still holds the tensors viewed, and
    takes the views again when it does not."""

    def __init__(
        self, module: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
    ) -> None:
        self._module = module
        self._optimizer = optimizer
        self._pieces: list[NDArray[np.uint8]] = []
        self._buffer: Any = np.empty(0, np.uint8)  # a buffer, as blake3 takes it
        self._walk = False  # a tensor that is not contiguous: walk the state every time
        self._held: list[tuple[dict[str, Any], tuple[tuple[str, Any], ...]]] = []
        self._take()

    def _take(self) -> None:
        if self._optimizer is not None:
            states = self._optimizer.state
            self._held = [(states[p], tuple(states[p].items())) for p in list(states)]
        items = sorted(_training_state(self._module, self._optimizer).items())
        # a copy of a tensor that is not contiguous would not follow the updates
        self._walk = not all(t.detach().is_contiguous() for _, t in items)
        self._pieces = [] if self._walk else _pieces([(n, t.detach()) for n, t in items])
        self._buffer = np.empty(sum(p.nbytes for p in self._pieces), np.uint8)

    def _stale(self) -> bool:
        optimizer = self._optimizer
        if optimizer is None:
            return False
        if len(optimizer.state) != len(self._held):
            return True
        return any(
            len(state) != len(items) or any(state.get(k) is not v for k, v in items)
            for state, items in self._held
        )

    def __call__(self) -> bytes:
        if self._stale():
            self._take()
        if self._walk or not self._pieces:
            return state_hash(self._module, self._optimizer)
        np.concatenate(self._pieces, out=self._buffer)
        return blake3(self._buffer).digest()


def trace_of(checkpoint: bytes, spec: ModelSpec) -> bytes:
    """The state hash of a (training) checkpoint, checked against the spec: what a trace's
    last entry must be for that output, and the state before a unit that starts from it."""
    return tensors_hash(unit_state(checkpoint, spec))


def run_unit_traced(
    spec: ModelSpec,
    checkpoint: bytes,
    x: ArrayLike,
    y: ArrayLike,
    steps: int,
    seed: int,
    *,
    stop_after: int | None = None,
    after_step: Callable[[int, torch.nn.Module, torch.optim.Optimizer], None] | None = None,
    every: int = 1,
) -> tuple[bytes | None, list[bytes]]:
    """:func:`databright.compute.units.run_unit` step for step (the same batches, the same
    bytes out), also returning the state hashes (weights and optimizer state) after the steps
    of :func:`trace_steps` (every step by default; workers trace every ``TRACE_EVERY``-th).
    ``stop_after`` stops after that many steps (the referee of a dispute needs only a prefix;
    no checkpoint is made then); ``after_step(i, module, optimizer)`` runs after step i (the
    attack tests' cheaters use it)."""
    trace: list[bytes] = []
    hasher: StateHasher | None = None
    marks = frozenset(trace_steps(steps, every))

    def traced(step: int, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        nonlocal hasher
        if after_step is not None:
            after_step(step, module, optimizer)
            if step not in marks:
                return
        if hasher is None:  # the tensors are the same ones from step to step
            hasher = StateHasher(module, optimizer)
        trace.append(hasher())

    # Without a hook of the caller's, the loop calls back only at the marks.
    out = run_steps(
        spec, checkpoint, x, y, steps, seed, stop_after=stop_after, after_step=traced,
        hook_at=marks if after_step is None else None,
    )  # fmt: skip
    return out, trace


def _entries(trace: bytes) -> list[bytes]:
    return [trace[i : i + HASH_SIZE] for i in range(0, len(trace), HASH_SIZE)]


def first_divergence(a: Sequence[bytes], b: Sequence[bytes]) -> tuple[int, int]:
    """Binary search over two traces of one unit that end differently: an entry j where they
    agree before (or j is 0: both start from the unit's input) and differ at j. Returns j and
    the number of hash comparisons it took (O(log k))."""
    if len(a) != len(b) or not a or a[-1] == b[-1]:
        raise InvalidArgument("bisection needs two traces of one length that end differently.")
    lo, hi, probes = -1, len(a) - 1, 0  # invariant: agree at lo (or lo = -1), differ at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        probes += 1
        if a[mid] == b[mid]:
            lo = mid
        else:
            hi = mid
    return hi, probes


class RefereeRun:
    """The coordinator's own run of a unit, computed only as far as disputes need."""

    def __init__(
        self, spec: ModelSpec, checkpoint: bytes, x: ArrayLike, y: ArrayLike, steps: int, seed: int
    ) -> None:
        self._args = (spec, checkpoint, x, y, steps, seed)
        self.steps = steps
        self.trace: list[bytes] = []
        self.steps_run = 0
        """Steps the referee computed in all (its cost, to compare with ``steps``)."""
        self.output: bytes | None = None

    def hash_after(self, step: int) -> bytes:
        """The true state hash after step ``step`` (0-based), computing up to it if needed."""
        if step >= len(self.trace):
            spec, checkpoint, x, y, steps, seed = self._args
            self.output, self.trace = run_unit_traced(
                spec, checkpoint, x, y, steps, seed, stop_after=step + 1
            )
            self.steps_run += step + 1
        return self.trace[step]

    def full_output(self) -> bytes:
        """The unit's true output (the whole unit; only when no replica survives)."""
        output = self.output
        while output is None:  # run_unit_traced always gives the output of a whole run
            spec, checkpoint, x, y, steps, seed = self._args
            output, self.trace = run_unit_traced(spec, checkpoint, x, y, steps, seed)
            self.steps_run += steps
        self.output = output
        return output


@dataclass(frozen=True)
class Evidence:
    """Enough for anyone to check that ``worker`` cheated on a unit: rerun the unit from
    ``input_hash`` and compare with ``honest_hash`` and ``bad_hash``; ``bad_envelope`` is the
    cheater's own signature over its result, ``honest_envelope`` an agreeing worker's (None
    when only the coordinator's recomputation got the honest output)."""

    job_id: int
    unit_id: int
    worker: str
    input_hash: str
    honest_hash: str
    bad_hash: str
    bad_envelope: dict[str, Any]
    bad_body_hash: str
    honest_envelope: dict[str, Any] | None
    distance: float
    disputed_step: int | None = None
    """The step (0-based) ending the first stretch of the cheater's trace that left the
    referee's; None when the whole unit was recomputed instead."""
    disputed_from: int | None = None
    """The stretch's first step: the agreed state hash is the state before it."""
    agreed_state_hash: str | None = None
    honest_step_hash: str | None = None
    bad_step_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "unit_id": self.unit_id,
            "worker": self.worker,
            "input_hash": self.input_hash,
            "honest_hash": self.honest_hash,
            "bad_hash": self.bad_hash,
            "bad_envelope": self.bad_envelope,
            "bad_body_hash": self.bad_body_hash,
            "honest_envelope": self.honest_envelope,
            "distance": self.distance if self.distance != float("inf") else "inf",
            "disputed_step": self.disputed_step,
            "disputed_from": self.disputed_from,
            "agreed_state_hash": self.agreed_state_hash,
            "honest_step_hash": self.honest_step_hash,
            "bad_step_hash": self.bad_step_hash,
        }


@dataclass(frozen=True)
class Verdict:
    """The outcome of a unit's group: the agreed checkpoint, who was right, who cheated."""

    unit_id: int
    agreed_hash: str
    agreed_checkpoint: bytes = field(repr=False)
    honest: tuple[str, ...]
    cheaters: tuple[Evidence, ...]
    refereed: bool
    referee_steps: int = 0
    """Steps the coordinator computed itself to reach this verdict."""


def decide(
    job_id: int,
    unit_id: int,
    input_hash: str,
    results: Sequence[ReplicaResult],
    recompute: Callable[[], bytes],
    tolerance: float = 0.0,
) -> Verdict:
    """Judge a complete group: unanimous hashes are accepted as they are; within
    ``tolerance`` of the majority output, accepted too; otherwise ``recompute()`` (the
    coordinator's own run of the unit) is the reference and every replica further than
    ``tolerance`` from it is a cheat."""
    if not results:
        raise InvalidArgument("a verdict needs at least one result; wait for the replicas.")
    hashes = Counter(r.record.output_hash for r in results)
    top_hash, top_count = min(hashes.items(), key=lambda kv: (-kv[1], kv[0]))
    by_hash = {r.record.output_hash: r for r in results}
    if len(hashes) == 1:
        return Verdict(
            unit_id,
            top_hash,
            by_hash[top_hash].checkpoint,
            tuple(r.record.worker for r in results),
            (),
            False,
        )
    if tolerance > 0 and top_count > len(results) // 2:
        reference = by_hash[top_hash].checkpoint
        if all(relative_l2(r.checkpoint, reference) <= tolerance for r in results):
            return Verdict(
                unit_id, top_hash, reference, tuple(r.record.worker for r in results), (), False
            )
    reference = recompute()
    ref_hash = output_hash(reference)
    honest: list[ReplicaResult] = []
    bad: list[tuple[ReplicaResult, float]] = []
    for r in results:
        if r.record.output_hash == ref_hash:
            honest.append(r)
            continue
        distance = relative_l2(r.checkpoint, reference)
        if tolerance > 0 and distance <= tolerance:
            honest.append(r)
        else:
            bad.append((r, distance))
    witness = next((h for h in honest if h.record.output_hash == ref_hash), None)
    witness = witness or (honest[0] if honest else None)
    evidence = tuple(
        Evidence(
            job_id=job_id,
            unit_id=unit_id,
            worker=r.record.worker,
            input_hash=input_hash,
            honest_hash=ref_hash,
            bad_hash=r.record.output_hash,
            bad_envelope=r.record.envelope,
            bad_body_hash=r.record.body_hash,
            honest_envelope=None if witness is None else witness.record.envelope,
            distance=distance,
        )
        for r, distance in bad
    )
    return Verdict(
        unit_id, ref_hash, reference, tuple(h.record.worker for h in honest), evidence, True
    )


def _hex(digest: bytes) -> str:
    return "0x" + digest.hex()


def bisect_group(
    job_id: int,
    unit_id: int,
    input_hash: str,
    input_state: bytes,
    results: Sequence[ReplicaResult],
    referee: RefereeRun,
    every: int = TRACE_EVERY,
) -> Verdict:
    """Judge a disputed group whose replicas all sent traces of stride ``every``, by bisection
    (module docstring). ``input_state`` is the state hash of the unit's input checkpoint."""
    groups: dict[bytes, list[ReplicaResult]] = {}
    for r in results:
        if r.trace is None:
            raise InvalidArgument("bisection needs every replica's trace; recompute the unit.")
        groups.setdefault(r.trace, []).append(r)
    marks = trace_steps(referee.steps, every)
    if any(len(trace) != len(marks) * HASH_SIZE for trace in groups):
        raise InvalidArgument(
            f"a trace of unit {unit_id} is not {len(marks)} state hashes (a stride of {every}); "
            "the coordinator checks traces on upload."
        )
    survivors = sorted(groups.values(), key=lambda g: (-len(g), g[0].record.worker))
    convicted: dict[str, tuple[ReplicaResult, int, int, bytes, bytes, bytes]] = {}
    while len(survivors) > 1:
        leader = survivors[0]
        lead = _entries(leader[0].trace or b"")
        for other in survivors[1:]:
            theirs = _entries(other[0].trace or b"")
            entry, _ = first_divergence(lead, theirs)
            step = marks[entry]
            start = 0 if entry == 0 else marks[entry - 1] + 1
            truth = referee.hash_after(step)
            before = input_state if entry == 0 else referee.hash_after(start - 1)
            for group, entries in ((leader, lead), (other, theirs)):
                claimed_before = input_state if entry == 0 else entries[entry - 1]
                if entries[entry] != truth or claimed_before != before:
                    for r in group:
                        convicted.setdefault(
                            r.record.worker, (r, start, step, before, truth, entries[entry])
                        )
        remaining = [g for g in survivors if g[0].record.worker not in convicted]
        if len(remaining) == len(survivors):  # cannot happen with exact hashes: never loop
            break
        survivors = remaining
    if survivors:
        winner = survivors[0][0]
        agreed_checkpoint, agreed = winner.checkpoint, winner.record.output_hash
        witness: dict[str, Any] | None = winner.record.envelope
        honest = tuple(r.record.worker for g in survivors for r in g)
    else:
        agreed_checkpoint = referee.full_output()
        agreed, witness, honest = output_hash(agreed_checkpoint), None, ()
    evidence = tuple(
        Evidence(
            job_id=job_id,
            unit_id=unit_id,
            worker=r.record.worker,
            input_hash=input_hash,
            honest_hash=agreed,
            bad_hash=r.record.output_hash,
            bad_envelope=r.record.envelope,
            bad_body_hash=r.record.body_hash,
            honest_envelope=witness,
            distance=relative_l2(r.checkpoint, agreed_checkpoint),
            disputed_step=step,
            disputed_from=start,
            agreed_state_hash=_hex(before),
            honest_step_hash=_hex(truth),
            bad_step_hash=_hex(bad),
        )
        for r, start, step, before, truth, bad in convicted.values()
    )
    return Verdict(unit_id, agreed, agreed_checkpoint, honest, evidence, True, referee.steps_run)
