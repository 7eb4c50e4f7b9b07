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

Bisection to the first disputed step is not done: the referee recomputes the whole unit (k
steps), which costs the coordinator one unit per dispute.

Adaptive replication (BOINC): a worker with at least ``trusted_after`` valid results and none
invalid gets a unit alone with probability ``1 - adaptive_probability``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from databright.compute.state import ResultRecord, WorkerRecord
from databright.compute.units import output_hash, relative_l2
from databright.errors import InvalidArgument

__all__ = ["Evidence", "ReplicaResult", "ReplicationPolicy", "Verdict", "decide"]


@dataclass(frozen=True)
class ReplicationPolicy:
    """How many replicas, how close counts as agreeing, and whether trust lowers the cost."""

    replicas: int = 3
    tolerance: float = 0.0
    adaptive: bool = False
    trusted_after: int = 10
    adaptive_probability: float = 0.1

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 16:
            raise InvalidArgument(f"replicas must be 1..16, got {self.replicas!r}.")
        if not 0.0 <= self.tolerance < 1.0:
            raise InvalidArgument(
                f"tolerance is a relative L2 distance in [0, 1), got {self.tolerance!r}."
            )
        if not 0.0 <= self.adaptive_probability <= 1.0:
            raise InvalidArgument(
                f"adaptive_probability must be in [0, 1], got {self.adaptive_probability!r}."
            )

    def replicas_for(self, first: WorkerRecord, rng: random.Random) -> int:
        """The group size of a unit whose first replica goes to ``first``."""
        trusted = first.valid_results >= self.trusted_after and first.invalid_results == 0
        if self.adaptive and trusted and rng.random() >= self.adaptive_probability:
            return 1
        return self.replicas


@dataclass(frozen=True)
class ReplicaResult:
    """One worker's upload for a unit: its record and the checkpoint bytes."""

    record: ResultRecord
    checkpoint: bytes


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
