"""The coordinator, without any transport: jobs in, verified checkpoints out.

A job is a spec, an initial checkpoint and a dataset's examples, cut into ``units`` work units
of ``steps_per_unit`` steps each. Units run in sequence (unit n+1 starts from unit n's agreed
output), and each unit runs on a group of replicas: distinct workers of one numeric class and
of distinct owners, each sent only as many examples as the exposure ledger allows. When a group
is complete, :func:`databright.compute.replication.decide` judges it; the agreed checkpoint
becomes the next unit's input and cheaters are recorded with evidence. The checkpoints units
pass on are training checkpoints (the weights and the optimizer's state, see
:mod:`databright.compute.units`); what a job gives out as its model (:meth:`Coordinator.
checkpoint`, the ``/checkpoint`` route) is the weights alone, a checkpoint every loader of
models reads.

Every message is checked (signature, expiry, nonce, quota) by ``Coordinator._message``; the
HTTP server (``databright.server.coordinator``) and in-process tests both go through
:meth:`Coordinator.handle`, so the protocol is the same with and without a network. A unit
whose worker vanishes is given to another worker once the assignment's deadline passes. Each
unit's shard is chosen when it opens (:meth:`Coordinator._reallocate`), so that a long job keeps
finding groups within the 5% limit instead of stalling once workers have seen their share.

Quotas: a worker holds at most one unit at a time (``next`` hands a worker the unit it already
holds until it uploads a result or the deadline passes), and each sender's signed requests are
metered by a token bucket (:class:`Quota`): past it, ``RateLimited`` (HTTP 429) in one sentence.
A result whose header says ``"next": true`` also asks for the worker's next unit, as BOINC's
scheduler request reports and asks at once: the reply is then framed (the answer as its header,
the unit, when there is one, as its ``unit`` part), and a unit costs one signed round trip.

Attestation: a coordinator is handed a :class:`CoordinatorAttestation` (its signing key and the
evidence that binds that key in its report data). A worker asks for it on the ``attestation``
route with a fresh challenge; the answer carries the evidence and the coordinator's signature
over the challenge, which :func:`databright.compute.worker.verify_coordinator` checks before the
worker does any work. A coordinator without one answers ``NotFound``, and workers refuse it.

One process at a time: calls are serialised by a lock. Several coordinators on one PostgreSQL
database would race when deciding a group (no row locks yet).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from numpy.typing import ArrayLike

import databright
from databright.compute.attestation import SoftwareProvider, read_challenge, report_data_for
from databright.compute.exposure import (
    EXPOSURE_LIMIT,
    ExposureLedger,
    count_after,
    cut_shards,
    exposure_cap,
    owner_holder,
)
from databright.compute.protocol import (
    Envelope,
    attestation_digest,
    body_hash,
    pack_arrays,
    pack_parts,
    spend_nonce,
    unpack_arrays,
    unpack_parts,
    verify_envelope,
)
from databright.compute.replication import (
    HASH_SIZE,
    TRACE_EVERY,
    RefereeRun,
    ReplicaResult,
    ReplicationPolicy,
    Verdict,
    bisect_group,
    decide,
    tensors_hash,
    trace_of,
    trace_steps,
)
from databright.compute.state import ComputeState, JobRecord, ResultRecord, UnitRecord, WorkerRecord
from databright.compute.units import UnitPayload, WorkUnit, output_hash, run_unit, unit_state
from databright.errors import (
    CheckpointMismatch,
    InvalidArgument,
    NotFound,
    NotPermitted,
    RateLimited,
)
from databright.ml.checkpoint import model_checkpoint
from databright.ml.spec import ModelSpec

__all__ = [
    "ROUTES",
    "Coordinator",
    "CoordinatorAttestation",
    "JobStatus",
    "Quota",
    "software_measurement",
]


@lru_cache(maxsize=64)
def _spec(text: str) -> ModelSpec:
    """A job's spec, parsed (and dry-run) once: every unit of a job has the same text, and a
    ModelSpec is frozen."""
    return ModelSpec.from_json(text)


ROUTES = ("attestation", "register", "next", "result")
"""What a worker may ask; each is also the purpose its envelope is signed for."""
_BLOB_CACHE = 8  # checkpoints and traces kept in memory by content hash (see Coordinator._blob)


def software_measurement() -> str:
    """What a development coordinator's software attestation names as its code: this release
    (a hardware quote measures the enclave's code instead)."""
    return bytes(keccak(f"databright-coordinator {databright.__version__}".encode())).hex()


@dataclass(frozen=True)
class CoordinatorAttestation:
    """The coordinator's signing key and the evidence that binds it (its report data is
    ``report_data_for(account.address)``). ``provider`` names the provider that verifies
    the evidence (``"software"`` or ``"intel-dcap"``)."""

    account: LocalAccount
    provider: str
    evidence: bytes = field(repr=False)

    @property
    def address(self) -> str:
        return str(self.account.address)

    @classmethod
    def software(cls, account: LocalAccount, now: float) -> CoordinatorAttestation:
        """Development evidence signed by the coordinator's own key: never hardware-backed, so
        workers refuse it unless told to accept an insecure coordinator."""
        return cls(account, SoftwareProvider.name, cls._software_evidence(account, now))

    @staticmethod
    def _software_evidence(account: LocalAccount, now: float) -> bytes:
        return SoftwareProvider.attest(
            account.key,
            measurement=software_measurement(),
            report_data=report_data_for(account.address),
            issued_at=int(now),
        )

    def answer(self, challenge: bytes, now: float) -> dict[str, str]:
        """The reply to a worker's challenge: the evidence, and the coordinator's signature
        over the challenge (proof that it holds the key the evidence binds)."""
        evidence = self.evidence
        if self.provider == SoftwareProvider.name:
            # a software statement ages out (SoftwareProvider.max_age_s); the key re-signs it
            evidence = self._software_evidence(self.account, now)
        digest = attestation_digest(challenge, self.address)
        signed = self.account.sign_message(encode_defunct(primitive=digest))
        return {
            "coordinator": self.address,
            "provider": self.provider,
            "evidence": evidence.hex(),
            "signature": "0x" + bytes(signed.signature).hex(),
        }


@dataclass(frozen=True)
class Quota:
    """How fast one sender may send signed requests: a token bucket of ``burst`` requests
    refilled at ``requests_per_s`` (a long poll counts once, however long it waits)."""

    # Generous by default (a benchmark's burst of a few hundred messages passes); a public
    # coordinator sets its own (``databright coordinator --requests-per-s``).
    requests_per_s: float = 100.0
    burst: int = 1000

    def __post_init__(self) -> None:
        if not self.requests_per_s > 0 or self.burst < 1:
            raise InvalidArgument(
                f"a quota needs a positive rate and a burst of at least 1, got "
                f"{self.requests_per_s!r}/s and {self.burst!r}."
            )


@dataclass(frozen=True)
class JobStatus:
    """Where a job stands, who cheated in it, and how much of the dataset each holder saw."""

    job_id: int
    state: str
    units_done: int
    total_units: int
    checkpoint_hash: str
    cheaters: tuple[str, ...]
    exposure: dict[str, float]
    referee_runs: int = 0
    units: tuple[dict[str, Any], ...] = ()
    """Per unit: its id, sequence number, state, agreed hash, honest workers and cheaters."""


class Coordinator:
    """Schedules and verifies work units; see the module docstring."""

    def __init__(
        self,
        state: ComputeState,
        *,
        policy: ReplicationPolicy | None = None,
        unit_deadline_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
        exposure_limit: float = EXPOSURE_LIMIT,
        dispatch_guard: Callable[[str], bool] | None = None,
        on_verdict: Callable[[Verdict], object] | None = None,
        quota: Quota | None = None,
        attestation: CoordinatorAttestation | None = None,
    ) -> None:
        """``dispatch_guard(worker)`` is asked before a worker is given new work (False: none,
        e.g. the job's escrow could not pay another group, or the worker lost its stake);
        ``on_verdict`` receives every verdict as it is reached (to pay and slash on-chain:
        ``databright.compute.market.ChainSettlement`` is both); ``quota`` meters each sender's
        requests; ``attestation`` is what workers are shown before they work (None: workers
        that check, as ``databright worker`` does, refuse this coordinator)."""
        if unit_deadline_s <= 0:
            raise InvalidArgument(f"unit_deadline_s must be positive, got {unit_deadline_s!r}.")
        self.state = state
        self.policy = policy or ReplicationPolicy()
        self.unit_deadline_s = unit_deadline_s
        self.clock = clock
        self.ledger = ExposureLedger(state, exposure_limit)
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._arrays: dict[str, dict[str, Any]] = {}
        # The last few checkpoints and traces by content hash: a unit's input is the previous
        # unit's agreed output, just stored, and a group's outputs are judged right after
        # their upload. Content-addressed, so a cached blob can never be stale.
        self._blobs: OrderedDict[str, bytes] = OrderedDict()
        # a job's shards by (data, shard size), with each shard's place among them
        self._shards: dict[
            tuple[str, int], tuple[list[tuple[int, ...]], dict[tuple[int, ...], int]]
        ] = {}
        self.dispatch_guard = dispatch_guard
        self.on_verdict = on_verdict
        self.quota = quota or Quota()
        self.attestation = attestation
        self._buckets: dict[str, tuple[float, float]] = {}
        self.referee_runs = 0
        """Disputed units the coordinator computed itself, in whole or up to the disputed step."""
        self.referee_steps = 0
        """Steps it computed for them (bisection keeps this below ``referee_runs`` x k)."""
        self._referee_by_job: dict[int, int] = {}

    # --- protocol ------------------------------------------------------------------------

    @contextmanager
    def _message(self, envelope: Envelope, body: bytes, purpose: str) -> Iterator[str]:
        """Authenticate a message and handle it (the block) in one transaction of the state,
        under the lock: its nonce is spent with everything it writes, one commit a message.
        If the quota or the handling then fails, that rolls the nonce back too, so it is spent
        again on its own: a message is never accepted twice, whatever became of it the first
        time. The signature (hashing a body of up to the upload limit) is checked first,
        outside the lock and the transaction; the quota is charged only once it holds, so
        nobody can spend another worker's quota by writing its address on unsigned requests."""
        sender = verify_envelope(envelope, body, self.clock(), purpose=purpose)
        spent = False
        with self._lock:
            try:
                with self.state.transaction():
                    spend_nonce(envelope, self.clock(), self.state)
                    spent = True
                    self._charge(sender)
                    yield sender
            except BaseException:
                if spent:
                    self.state.use_nonce(
                        envelope.sender, envelope.nonce, envelope.expires_at, self.clock()
                    )
                raise

    def _charge(self, sender: str) -> None:
        now = self.clock()
        rate, burst = self.quota.requests_per_s, float(self.quota.burst)
        with self._lock:
            tokens, then = self._buckets.get(sender, (burst, now))
            tokens = min(burst, tokens + max(0.0, now - then) * rate)
            if tokens < 1.0:
                self._buckets[sender] = (tokens, now)
                raise RateLimited(
                    f"{sender} sent more than {self.quota.burst} requests at over "
                    f"{rate:g} per second; wait {(1.0 - tokens) / rate:.1f} s before asking again."
                )
            self._buckets[sender] = (tokens - 1.0, now)

    def handle(self, route: str, envelope: Envelope, body: bytes) -> bytes:
        """Answer one signed message: what the HTTP server and in-process tests both call."""
        if route not in ROUTES:
            raise NotFound(f"there is no route {route!r}; use one of {', '.join(ROUTES)}.")
        if route == "result":  # submit_result authenticates the envelope itself
            verdict, asks_next = self._submit(envelope.sender, envelope, body)
            answer = self._result_answer(verdict)
            if not asks_next:
                return json.dumps(answer).encode()
            # The worker reports and asks for its next unit in one message (BOINC's scheduler
            # RPC does both): one signature and one round trip a unit instead of two.
            try:
                payload = self.next_unit(envelope.sender)
            except NotPermitted:
                payload = None  # its next plain ``next`` hears why, in one sentence
            return pack_parts(answer, {} if payload is None else {"unit": payload.to_body()})
        if route == "next":
            payload = self.ask(envelope, body)[1]
            return b"" if payload is None else payload.to_body()
        with self._message(envelope, body, route) as sender:
            return self._answer(route, sender, body)

    def _answer(self, route: str, sender: str, body: bytes) -> bytes:
        if route == "attestation":
            return json.dumps(self.attest(body)).encode()
        if route == "register":
            try:
                request = json.loads(body)
                numeric_class = str(request["numeric_class"])
                owner = request.get("owner") or sender
            except (ValueError, KeyError, TypeError):
                raise InvalidArgument(
                    'a registration body is JSON {"numeric_class": ..., "owner": ...}; send that.'
                ) from None
            record = self.register_worker(sender, numeric_class, str(owner))
            return json.dumps({"address": record.address, "owner": record.owner}).encode()
        raise NotFound(f"there is no route {route!r}; use one of {', '.join(ROUTES)}.")

    def ask(self, envelope: Envelope, body: bytes) -> tuple[str, UnitPayload | None]:
        """A signed ``next``: its verified sender and the unit it should compute now (see
        :meth:`next_unit`), authenticated and scheduled in one transaction."""
        with self._message(envelope, body, "next") as sender:
            return sender, self.next_unit(sender)

    def attest(self, body: bytes) -> dict[str, str]:
        """Answer a worker's challenge (``{"challenge": 64 hex digits}``) with this
        coordinator's evidence and its signature over the challenge."""
        if self.attestation is None:
            raise NotFound(
                "this coordinator has no attestation evidence; workers do not work for an "
                "unattested coordinator."
            )
        return self.attestation.answer(read_challenge(body), self.clock())

    @staticmethod
    def _result_answer(verdict: Verdict | None) -> dict[str, Any]:
        reply: dict[str, Any] = {"accepted": True, "verdict": None}
        if verdict is not None:
            reply["verdict"] = {
                "unit_id": verdict.unit_id,
                "agreed_hash": verdict.agreed_hash,
                "cheaters": [e.worker for e in verdict.cheaters],
            }
        return reply

    # --- workers and jobs ----------------------------------------------------------------

    def register_worker(
        self, address: str, numeric_class: str, owner: str | None = None
    ) -> WorkerRecord:
        """Admit a worker (idempotent); ``owner`` defaults to the worker itself."""
        if not numeric_class or len(numeric_class) > 200:
            raise InvalidArgument(
                "numeric_class must be 1..200 characters; use local_numeric_class()."
            )
        with self._lock:
            return self.state.add_worker(address, owner or address, numeric_class, self.clock())

    def submit_job(
        self,
        spec: ModelSpec,
        checkpoint: bytes,
        x: ArrayLike,
        y: ArrayLike,
        example_ids: Sequence[int],
        *,
        dataset: str,
        steps_per_unit: int,
        units: int,
        dataset_size: int | None = None,
        shard_size: int | None = None,
        seed: int = 0,
    ) -> int:
        """A new job; ``dataset_size`` (default: the examples given) is what 5% is of, and
        shards default to the whole 5%. ``checkpoint`` is the weights to start from (the
        optimizer starts afresh) or a training checkpoint a job wrote
        (:meth:`training_checkpoint`: training resumes with its optimizer state)."""
        xa = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        ya = np.ascontiguousarray(np.asarray(y, dtype=np.int64))
        ids = np.asarray(list(example_ids), dtype=np.int64)
        if not len(xa) == len(ya) == len(ids) or len(ids) == 0:
            raise InvalidArgument(
                f"{len(xa)} examples, {len(ya)} labels and {len(ids)} example ids: give one "
                "label and one id per example, and at least one example."
            )
        if len(set(ids.tolist())) != len(ids):
            raise InvalidArgument("the example ids repeat; give each example its own id.")
        if units < 1 or steps_per_unit < 1:
            raise InvalidArgument(
                f"a job needs at least one unit of at least one step, got {units} of "
                f"{steps_per_unit}."
            )
        size = dataset_size or len(ids)
        if size < len(ids):
            raise InvalidArgument(
                f"dataset_size {size} is below the {len(ids)} examples given; give the "
                "dataset's full size."
            )
        cap = exposure_cap(size, self.ledger.limit)
        shard = shard_size or cap
        if not 1 <= shard <= cap:
            raise InvalidArgument(
                f"shards must hold 1..{cap} examples (5% of {size}), got {shard}; "
                "choose a smaller shard or a larger dataset."
            )
        unit_state(checkpoint, spec)  # refuse weights or optimizer state unfit for the spec now
        with self._lock:
            data_hash = self.state.put_blob(pack_arrays({"x": xa, "y": ya, "ids": ids}))
            # kept as handed in: reading them back would cost a copy and a parse per job
            # (copies: the caller's own arrays may be changed after this returns)
            arrays = {"x": xa.copy(), "y": ya.copy(), "ids": ids.copy()}
            self._arrays.setdefault(data_hash, self._indexed(arrays))
            start = self.state.put_blob(checkpoint)
            job_id = self.state.add_job(
                JobRecord(
                    0,
                    dataset,
                    spec.to_json().decode(),
                    data_hash,
                    size,
                    steps_per_unit,
                    units,
                    0,
                    start,
                    "running",
                    seed,
                    shard,
                )
            )
            self.state.add_unit(
                self._unit_record(job_id, shard, 0, start, steps_per_unit, ids, seed)
            )
        return job_id

    def _unit_record(
        self,
        job_id: int,
        shard_size: int,
        seq: int,
        input_hash: str,
        steps: int,
        ids: np.ndarray[Any, Any],
        seed: int,
        shard: tuple[int, ...] | None = None,
    ) -> UnitRecord:
        if shard is None:
            shards = cut_shards(ids.tolist(), shard_size)
            shard = shards[seq % len(shards)]
        return UnitRecord(
            0,
            job_id,
            seq,
            seq * steps,
            steps,
            input_hash,
            shard,
            (seed * 1_000_003 + seq) % 2**62,
            "open",
            0,
            None,
            None,
        )

    def _reallocate(self, job: JobRecord, seq: int) -> tuple[int, ...]:
        """The shard of the job's next unit, chosen when the unit opens so that a whole group
        can take it within the exposure limit: the least-used shard that enough registered
        workers (of one numeric class, distinct owners) can still be sent, preferring the
        plain rotation among equals. Over a long job the limit would otherwise leave every
        worker unable to take the next shard in turn and the job stuck; so shards are
        reallocated to the workers there are, and a worker at its 5% only ever gets shards it
        has seen. With no group able to take any shard, the rotation's shard opens (and waits
        for new workers)."""
        key = (job.data_hash, job.shard_size)
        if key not in self._shards:
            cut = cut_shards(self._data(job)["ids"].tolist(), job.shard_size)
            self._shards[key] = (cut, {shard: i for i, shard in enumerate(cut)})
        shards, index = self._shards[key]
        uses = [0] * len(shards)
        for shard, count in self.state.shard_uses(job.job_id).items():
            if (i := index.get(shard)) is not None:
                uses[i] += count

        def order() -> Iterator[int]:
            # by uses, then the rotation from seq: lazily, as the first shard usually fits
            for level in sorted(set(uses)):
                for k in range(len(shards)):
                    if uses[i := (seq + k) % len(shards)] == level:
                        yield i

        cap = exposure_cap(job.dataset_size, self.ledger.limit)
        # Every holder's count, read at once for all shards; the ids a holder has seen are read
        # (once) only for a holder that a shard could take past the cap.
        counts = self.state.exposure_counts(job.dataset)  # one query; absent holders: 0
        seen: dict[str, set[int]] = {}
        workers = self.state.workers()

        def seen_by(holder: str) -> set[int]:
            if holder not in seen:
                seen[holder] = self.state.exposure(job.dataset, holder)
            return seen[holder]

        def fits(holder: str, ids: tuple[int, ...]) -> bool:
            return count_after(counts.get(holder, 0), ids, cap, lambda: seen_by(holder)) <= cap

        for i in order():
            owners_by_class: dict[str, set[str]] = {}
            for w in workers:
                if fits(w.address, shards[i]) and fits(owner_holder(w.owner), shards[i]):
                    owners_by_class.setdefault(w.numeric_class, set()).add(w.owner)
            if any(len(o) >= self.policy.replicas for o in owners_by_class.values()):
                return shards[i]
        return shards[seq % len(shards)]

    def _blob(self, digest: str) -> bytes:
        data = self._blobs.get(digest)
        if data is None:
            data = self.state.get_blob(digest)
            self._remember(digest, data)
        return data

    def _put_blob(self, data: bytes) -> str:
        digest = self.state.put_blob(data)
        self._remember(digest, data)
        return digest

    def _remember(self, digest: str, data: bytes) -> None:
        self._blobs[digest] = data
        self._blobs.move_to_end(digest)
        while len(self._blobs) > _BLOB_CACHE:
            self._blobs.popitem(last=False)

    def _data(self, job: JobRecord) -> dict[str, Any]:
        if job.data_hash not in self._arrays:
            arrays = unpack_arrays(self.state.get_blob(job.data_hash))
            self._arrays[job.data_hash] = self._indexed(arrays)
        return self._arrays[job.data_hash]

    @staticmethod
    def _indexed(arrays: Mapping[str, Any]) -> dict[str, Any]:
        """A job's examples with the row of each example id (``index``)."""
        out = dict(arrays)
        out["index"] = {int(i): k for k, i in enumerate(out["ids"].tolist())}
        return out

    def _payload(self, unit: UnitRecord, job: JobRecord) -> UnitPayload:
        data = self._data(job)
        rows = [data["index"][i] for i in unit.example_ids]
        return UnitPayload(
            WorkUnit(
                unit.unit_id,
                unit.job_id,
                unit.seq,
                unit.step_start,
                unit.steps,
                unit.input_hash,
                unit.example_ids,
                unit.seed,
            ),
            _spec(job.spec_json),
            self._blob(unit.input_hash),
            data["x"][rows],
            data["y"][rows],
        )

    # --- scheduling ----------------------------------------------------------------------

    def _worker(self, address: str) -> WorkerRecord:
        record = self.state.get_worker(address)
        if record is None:
            raise NotPermitted(f"{address} is not a registered worker; register it first.")
        return record

    def next_unit(self, worker: str) -> UnitPayload | None:
        """The unit ``worker`` should compute now (the same one again while it is assigned),
        or None when there is no work for it. ``NotPermitted`` when work exists but every
        unit it could take would push it or its owner past the exposure limit."""
        with self._lock, self.state.transaction():
            now = self.clock()
            self.state.expire_assignments(now)
            me = self._worker(worker)
            for a in self.state.assignments(worker=worker, state="assigned"):
                if a.state == "assigned":
                    unit = self.state.get_unit(a.unit_id)
                    if unit.state == "open":
                        return self._payload(unit, self.state.get_job(unit.job_id))
            blocked: str | None = None
            fitting: list[tuple[UnitRecord, JobRecord, list[tuple[str, int]]]] = []
            for unit in self.state.open_units():
                if unit.numeric_class not in (None, me.numeric_class):
                    continue
                group = self.state.assignments(unit_id=unit.unit_id)
                if any(a.worker == worker for a in group):
                    continue
                live = [a for a in group if a.state != "expired"]
                if unit.replicas and len(live) >= unit.replicas:
                    continue
                if any(self._worker(a.worker).owner == me.owner for a in live):
                    continue  # one owner's workers never replicate each other
                job = self.state.get_job(unit.job_id)
                totals = self.ledger.totals(
                    job.dataset, job.dataset_size, worker, me.owner, unit.example_ids
                )
                if any(t > exposure_cap(job.dataset_size, self.ledger.limit) for _, t in totals):
                    blocked = job.dataset
                    continue
                fitting.append((unit, job, totals))
            if not fitting:
                if blocked is not None:
                    raise NotPermitted(
                        f"worker {worker} has seen all the examples of dataset {blocked} that "
                        "the 5% exposure limit allows; it gets no more of its units."
                    )
                return None
            # the unit costing the fewest new examples, the oldest among equals (asked only
            # when there is a choice: it is a query per unit)
            unit, job, totals = min(
                fitting,
                key=lambda f: (
                    0
                    if len(fitting) == 1
                    else self.ledger.new_cost(f[1].dataset, worker, f[0].example_ids),
                    f[0].unit_id,
                ),
            )
            # Asked only when there is a unit to give: the guard may ask the chain, and a long
            # poll with nothing to hand out must not cost a chain call per round.
            if self.dispatch_guard is not None and not self.dispatch_guard(worker):
                return None
            if unit.replicas == 0:
                self.state.fix_unit_group(
                    unit.unit_id, me.numeric_class, self.policy.replicas_for(me, self._rng)
                )
            self.ledger.grant(
                job.dataset, job.dataset_size, worker, me.owner, unit.example_ids, totals=totals
            )
            if not self.state.add_assignment(unit.unit_id, worker, now, now + self.unit_deadline_s):
                return None
            return self._payload(unit, job)

    # --- results -------------------------------------------------------------------------

    def submit_result(self, worker: str, envelope: Envelope, body: bytes) -> Verdict | None:
        """Accept ``worker``'s signed result (``envelope`` must be its signature over ``body``
        for the ``result`` route); the verdict once the unit's group is complete, else None.
        The same result again under a fresh envelope is accepted once and answers None."""
        return self._submit(worker, envelope, body)[0]

    def _submit(self, worker: str, envelope: Envelope, body: bytes) -> tuple[Verdict | None, bool]:
        """:meth:`submit_result`, and whether the result also asks for the next unit (its
        header's ``"next"``), read from the one parse of the body."""
        if envelope.sender != worker:
            raise NotPermitted(
                f"the result is signed by {envelope.sender}, not by {worker}; a worker uploads "
                "its own results."
            )
        with self._lock:
            # One transaction for the message: its nonce, the checks and everything the
            # verdict writes.
            with self._message(envelope, body, "result"):
                meta, parts = unpack_parts(body)
                try:
                    unit_id = int(meta["unit_id"])
                    claimed_input = str(meta["input_hash"])
                    checkpoint = parts["checkpoint"]
                except (KeyError, TypeError, ValueError):
                    raise InvalidArgument(
                        "a result body holds unit_id, input_hash and a checkpoint part; send that."
                    ) from None
                verdict = self._record_result(
                    worker, envelope, body, unit_id, claimed_input, checkpoint, parts.get("trace")
                )
            # After the commit (paying and slashing on-chain must find the verdict stored) and
            # under the lock (verdicts are settled one at a time, in order).
            if verdict is not None and self.on_verdict is not None:
                self.on_verdict(verdict)
            return verdict, meta.get("next") is True

    def _record_result(
        self,
        worker: str,
        envelope: Envelope,
        body: bytes,
        unit_id: int,
        claimed_input: str,
        checkpoint: bytes,
        trace: bytes | None,
    ) -> Verdict | None:
        unit = self.state.get_unit(unit_id)
        job = self.state.get_job(unit.job_id)
        mine = self.state.assignments(unit_id=unit_id, worker=worker)
        if not mine:
            raise NotPermitted(
                f"unit {unit_id} was not assigned to {worker}; ask for work with next_unit()."
            )
        results = self.state.results(unit_id)
        earlier = [r for r in results if r.worker == worker]
        if earlier:
            if earlier[0].output_hash == output_hash(checkpoint):
                return None
            raise NotPermitted(
                f"{worker} already uploaded another result for unit {unit_id}; a result "
                "cannot be changed."
            )
        if unit.state != "open" or mine[0].state == "expired":
            raise NotPermitted(
                f"unit {unit_id} is no longer open to {worker} (its deadline passed or its "
                "group is complete); ask for new work."
            )
        if claimed_input != unit.input_hash:
            raise CheckpointMismatch(
                f"the result is for checkpoint {claimed_input[:14]}..., but unit {unit_id} "
                f"starts from {unit.input_hash[:14]}...; compute from the unit's checkpoint."
            )
        spec = _spec(job.spec_json)
        # a result must at least be weights and an optimizer state for the spec
        state = unit_state(checkpoint, spec)
        if trace is not None:
            self._check_trace(trace, unit, tensors_hash(state))
        digest = self._put_blob(checkpoint)
        record = ResultRecord(
            unit_id, worker, digest, envelope.to_dict(), "0x" + body_hash(body).hex(), self.clock()
        )
        self.state.add_result(record)
        if trace is not None:
            self.state.add_trace(unit_id, worker, self._put_blob(trace))
        # in the order the state lists them (by arrival), without reading them back
        results = sorted([*results, record], key=lambda r: (r.received_at, r.worker))
        if len(results) < unit.replicas:
            return None
        return self._judge(unit, job, spec, results, {} if trace is None else {worker: trace})

    @staticmethod
    def _check_trace(trace: bytes, unit: UnitRecord, output_state: bytes) -> None:
        """A trace is one state hash per mark of :func:`trace_steps`, and its last is the
        uploaded output's: a worker cannot commit to one run and upload another."""
        entries = len(trace_steps(unit.steps))
        if len(trace) != entries * HASH_SIZE:
            raise InvalidArgument(
                f"the trace holds {len(trace)} bytes, not {entries} state hashes of {HASH_SIZE} "
                f"bytes (after every {TRACE_EVERY}th step of unit {unit.unit_id} and its last); "
                "send the run's trace."
            )
        if trace[-HASH_SIZE:] != output_state:
            raise InvalidArgument(
                f"the trace of unit {unit.unit_id} does not end at the uploaded checkpoint; "
                "send the trace of the run that made it."
            )

    def _referee_ran(self, job_id: int, steps: int) -> None:
        self.referee_runs += 1
        self.referee_steps += steps
        self._referee_by_job[job_id] = self._referee_by_job.get(job_id, 0) + 1

    def _judge(
        self,
        unit: UnitRecord,
        job: JobRecord,
        spec: ModelSpec,
        results: list[ResultRecord],
        traces: dict[str, bytes],
    ) -> Verdict:
        """The group's verdict; ``traces``: those already in hand by worker (the rest are
        read from the state)."""

        def recompute() -> bytes:
            self._referee_ran(job.job_id, unit.steps)
            payload = self._payload(unit, job)
            return run_unit(spec, payload.checkpoint, payload.x, payload.y, unit.steps, unit.seed)

        replicas = []
        for r in results:
            trace = traces.get(r.worker)
            if trace is None and (trace_hash := self.state.trace(unit.unit_id, r.worker)):
                trace = self._blob(trace_hash)
            replicas.append(ReplicaResult(r, self._blob(r.output_hash), trace))
        disputed = len({r.output_hash for r in results}) > 1
        if disputed and self.policy.tolerance == 0 and all(r.trace for r in replicas):
            # Bisection: the coordinator computes the unit only up to the disputed stretch.
            payload = self._payload(unit, job)
            referee = RefereeRun(
                spec, payload.checkpoint, payload.x, payload.y, unit.steps, unit.seed
            )
            start_state = trace_of(payload.checkpoint, spec)
            verdict = bisect_group(
                job.job_id, unit.unit_id, unit.input_hash, start_state, replicas, referee
            )
            self._referee_ran(job.job_id, verdict.referee_steps)
        else:
            verdict = decide(
                job.job_id,
                unit.unit_id,
                unit.input_hash,
                replicas,
                recompute,
                self.policy.tolerance,
            )
        for address in verdict.honest:
            self.state.record_outcome(address, True)
        for evidence in verdict.cheaters:
            self.state.record_outcome(evidence.worker, False)
            self.state.add_evidence(job.job_id, unit.unit_id, evidence.worker, evidence.to_dict())
        # decide() and bisect_group() name the agreed checkpoint by its output hash, from
        # hashes this coordinator computed: a training checkpoint is not hashed again here
        agreed = verdict.agreed_hash
        if agreed not in {r.output_hash for r in results}:  # the referee's own: not stored yet
            agreed = self._put_blob(verdict.agreed_checkpoint)
        self.state.finish_unit(unit.unit_id, agreed)
        done = unit.seq + 1 >= job.total_units
        self.state.advance_job(job.job_id, agreed, done)
        if not done:
            self.state.add_unit(
                self._unit_record(
                    job.job_id,
                    job.shard_size,
                    unit.seq + 1,
                    agreed,
                    job.steps_per_unit,
                    self._data(job)["ids"],
                    job.seed,
                    shard=self._reallocate(job, unit.seq + 1),
                )
            )
        return verdict

    # --- reading -------------------------------------------------------------------------

    def checkpoint(self, job_id: int) -> bytes:
        """The weights of the job's current agreed checkpoint (the trained model once the job
        is done): a plain checkpoint, what the model market registers and serving, evaluation
        and ONNX export load; the optimizer state the units passed on is left out. Its hash is
        the job's ``checkpoint_hash`` only when the optimizer keeps no state."""
        return model_checkpoint(self.training_checkpoint(job_id))

    def training_checkpoint(self, job_id: int) -> bytes:
        """The job's current agreed checkpoint as the units pass it on (the weights and the
        optimizer state; its hash is the job's ``checkpoint_hash``): a later job submitted
        from it resumes the training exactly."""
        return self.state.get_blob(self.state.get_job(job_id).checkpoint_hash)

    def job_status(self, job_id: int) -> JobStatus:
        job = self.state.get_job(job_id)
        evidence = self.state.evidence(job_id)
        cheaters = tuple(sorted({e["worker"] for e in evidence}))
        units = []
        for unit in self.state.job_units(job_id):
            bad = sorted({e["worker"] for e in evidence if e["unit_id"] == unit.unit_id})
            done = unit.state == "done"
            units.append(
                {
                    "unit_id": unit.unit_id,
                    "seq": unit.seq,
                    "state": unit.state,
                    "agreed_hash": unit.agreed_hash,
                    "honest": sorted(
                        r.worker for r in self.state.results(unit.unit_id) if r.worker not in bad
                    )
                    if done
                    else [],
                    "cheaters": bad,
                }
            )
        return JobStatus(
            job.job_id,
            job.state,
            job.units_done,
            job.total_units,
            job.checkpoint_hash,
            cheaters,
            self.ledger.report(job.dataset, job.dataset_size),
            self._referee_by_job.get(job_id, 0),
            tuple(units),
        )
