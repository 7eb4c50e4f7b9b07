"""The coordinator's state behind an interface, with one SQL implementation.

Everything the coordinator must not forget lives here rather than in its memory, so a restart
loses nothing and several coordinators can share one PostgreSQL database: workers (address,
owner, numeric class, record of valid and invalid results), jobs, units, who was assigned what
until when, the results with their signed envelopes, content-addressed checkpoints and shards,
the exposure ledger (which example ids each worker and each owner has been sent) and the used
nonces of the protocol. :class:`SqlComputeState` runs on SQLite (the embedded default; the
in-memory ``sqlite://`` is the "in-memory implementation") and PostgreSQL, and the same tests
run on both.

Uniqueness is the database's job: one assignment per (unit, worker), one result per (unit,
worker), one use per (sender, nonce); the inserts report a clash instead of raising, which is
what makes uploads idempotent.
"""

from __future__ import annotations

import abc
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from databright.compute.units import output_hash
from databright.errors import InvalidArgument, NotFound
from databright.sqlengine import sql_engine

__all__ = [
    "AssignmentRecord",
    "ComputeState",
    "JobRecord",
    "ResultRecord",
    "SqlComputeState",
    "SqlNonces",
    "UnitRecord",
    "WorkerRecord",
    "nonce_table",
]


@dataclass(frozen=True)
class WorkerRecord:
    address: str
    owner: str
    numeric_class: str
    registered_at: float
    valid_results: int = 0
    invalid_results: int = 0


@dataclass(frozen=True)
class JobRecord:
    job_id: int
    dataset: str
    spec_json: str
    data_hash: str
    dataset_size: int
    steps_per_unit: int
    total_units: int
    units_done: int
    checkpoint_hash: str
    state: str  # "running" or "done"
    seed: int
    shard_size: int


@dataclass(frozen=True)
class UnitRecord:
    unit_id: int
    job_id: int
    seq: int
    step_start: int
    steps: int
    input_hash: str
    example_ids: tuple[int, ...]
    seed: int
    state: str  # "open" or "done"
    replicas: int  # 0 until the first assignment decides it
    numeric_class: str | None
    agreed_hash: str | None


@dataclass(frozen=True)
class AssignmentRecord:
    unit_id: int
    worker: str
    assigned_at: float
    deadline: float
    state: str  # "assigned", "submitted" or "expired"


@dataclass(frozen=True)
class ResultRecord:
    unit_id: int
    worker: str
    output_hash: str
    envelope: dict[str, Any]
    body_hash: str
    received_at: float


class ComputeState(abc.ABC):
    """What the coordinator stores; see the module docstring."""

    # protocol
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The calls made inside the block (by this thread) as one transaction, committed when
        it ends and rolled back if it raises; a block inside another joins the outer one. A
        store without transactions runs the calls one by one."""
        yield

    @abc.abstractmethod
    def use_nonce(self, sender: str, nonce: str, expires_at: int, now: float) -> bool: ...

    # blobs (checkpoints, shards): content-addressed by output_hash
    @abc.abstractmethod
    def put_blob(self, data: bytes) -> str: ...
    @abc.abstractmethod
    def get_blob(self, digest: str) -> bytes: ...

    # workers
    @abc.abstractmethod
    def add_worker(
        self, address: str, owner: str, numeric_class: str, now: float
    ) -> WorkerRecord: ...
    @abc.abstractmethod
    def get_worker(self, address: str) -> WorkerRecord | None: ...
    @abc.abstractmethod
    def workers(self) -> list[WorkerRecord]: ...
    @abc.abstractmethod
    def record_outcome(self, address: str, valid: bool) -> None: ...

    # jobs and units
    @abc.abstractmethod
    def add_job(self, job: JobRecord) -> int: ...
    @abc.abstractmethod
    def get_job(self, job_id: int) -> JobRecord: ...
    @abc.abstractmethod
    def advance_job(self, job_id: int, checkpoint_hash: str, done: bool) -> None: ...
    @abc.abstractmethod
    def add_unit(self, unit: UnitRecord) -> int: ...
    @abc.abstractmethod
    def get_unit(self, unit_id: int) -> UnitRecord: ...
    @abc.abstractmethod
    def open_units(self) -> list[UnitRecord]: ...
    @abc.abstractmethod
    def job_units(self, job_id: int) -> list[UnitRecord]: ...
    @abc.abstractmethod
    def shard_uses(self, job_id: int) -> dict[tuple[int, ...], int]:
        """How many of the job's units were given each shard (its example ids), read without
        reading the units: what reallocating the next unit's shard weighs."""

    @abc.abstractmethod
    def fix_unit_group(self, unit_id: int, numeric_class: str, replicas: int) -> None: ...
    @abc.abstractmethod
    def add_replicas(self, unit_id: int, extra: int) -> None: ...
    @abc.abstractmethod
    def finish_unit(self, unit_id: int, agreed_hash: str) -> None: ...

    # assignments and results
    @abc.abstractmethod
    def add_assignment(self, unit_id: int, worker: str, now: float, deadline: float) -> bool: ...
    @abc.abstractmethod
    def assignments(
        self, *, unit_id: int | None = None, worker: str | None = None, state: str | None = None
    ) -> list[AssignmentRecord]: ...
    @abc.abstractmethod
    def expire_assignments(self, now: float) -> int: ...
    @abc.abstractmethod
    def add_result(self, result: ResultRecord) -> bool: ...
    @abc.abstractmethod
    def results(self, unit_id: int) -> list[ResultRecord]: ...
    @abc.abstractmethod
    def add_trace(self, unit_id: int, worker: str, digest: str) -> None: ...
    @abc.abstractmethod
    def trace(self, unit_id: int, worker: str) -> str | None: ...

    # exposure ledger: holder is a worker's address or "owner:" + an owner's address
    @abc.abstractmethod
    def exposure(self, dataset: str, holder: str) -> set[int]: ...
    @abc.abstractmethod
    def exposure_count(self, dataset: str, holder: str) -> int: ...
    @abc.abstractmethod
    def exposed_among(self, dataset: str, holder: str, example_ids: Iterable[int]) -> set[int]:
        """Which of ``example_ids`` the holder has been sent (a shard's worth, not the ledger)."""

    @abc.abstractmethod
    def add_exposure(self, dataset: str, holder: str, example_ids: Iterable[int]) -> None: ...
    @abc.abstractmethod
    def exposure_counts(self, dataset: str) -> dict[str, int]: ...

    # evidence of cheating
    @abc.abstractmethod
    def add_evidence(
        self, job_id: int, unit_id: int, worker: str, record: Mapping[str, Any]
    ) -> None: ...
    @abc.abstractmethod
    def evidence(self, job_id: int | None = None) -> list[dict[str, Any]]: ...


_meta = sa.MetaData()

_workers = sa.Table(
    "compute_workers",
    _meta,
    sa.Column("address", sa.String(42), primary_key=True),
    sa.Column("owner", sa.String(42), nullable=False),
    sa.Column("numeric_class", sa.String(200), nullable=False),
    sa.Column("registered_at", sa.Float, nullable=False),
    sa.Column("valid_results", sa.Integer, nullable=False, default=0),
    sa.Column("invalid_results", sa.Integer, nullable=False, default=0),
)
_jobs = sa.Table(
    "compute_jobs",
    _meta,
    sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(200), nullable=False),
    sa.Column("spec_json", sa.Text, nullable=False),
    sa.Column("data_hash", sa.String(66), nullable=False),
    sa.Column("dataset_size", sa.Integer, nullable=False),
    sa.Column("steps_per_unit", sa.Integer, nullable=False),
    sa.Column("total_units", sa.Integer, nullable=False),
    sa.Column("units_done", sa.Integer, nullable=False),
    sa.Column("checkpoint_hash", sa.String(66), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("shard_size", sa.Integer, nullable=False),
)
_units = sa.Table(
    "compute_units",
    _meta,
    sa.Column("unit_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.Integer, sa.ForeignKey("compute_jobs.job_id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("step_start", sa.Integer, nullable=False),
    sa.Column("steps", sa.Integer, nullable=False),
    sa.Column("input_hash", sa.String(66), nullable=False),
    sa.Column("example_ids", sa.Text, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("replicas", sa.Integer, nullable=False),
    sa.Column("numeric_class", sa.String(200)),
    sa.Column("agreed_hash", sa.String(66)),
    sa.UniqueConstraint("job_id", "seq"),
)
_assignments = sa.Table(
    "compute_assignments",
    _meta,
    sa.Column("unit_id", sa.Integer, sa.ForeignKey("compute_units.unit_id"), primary_key=True),
    sa.Column("worker", sa.String(42), primary_key=True),
    sa.Column("assigned_at", sa.Float, nullable=False),
    sa.Column("deadline", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
)
_results = sa.Table(
    "compute_results",
    _meta,
    sa.Column("unit_id", sa.Integer, sa.ForeignKey("compute_units.unit_id"), primary_key=True),
    sa.Column("worker", sa.String(42), primary_key=True),
    sa.Column("output_hash", sa.String(66), nullable=False),
    sa.Column("envelope", sa.Text, nullable=False),
    sa.Column("body_hash", sa.String(66), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
)
# A table of its own (not a column of compute_results), so databases made before traces existed
# gain it from create_all without a migration.
_traces = sa.Table(
    "compute_traces",
    _meta,
    sa.Column("unit_id", sa.Integer, sa.ForeignKey("compute_units.unit_id"), primary_key=True),
    sa.Column("worker", sa.String(42), primary_key=True),
    sa.Column("trace_hash", sa.String(66), nullable=False),
)
_blobs = sa.Table(
    "compute_blobs",
    _meta,
    sa.Column("digest", sa.String(66), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
_exposure = sa.Table(
    "compute_exposure",
    _meta,
    sa.Column("dataset", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(64), primary_key=True),
    sa.Column("example_id", sa.BigInteger, primary_key=True),
)
_NONCE_SWEEP_S = 30.0
_IN_CHUNK = 900  # ids per IN (...): under SQLite's oldest limit of 999 bound parameters


def nonce_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """A table of used protocol nonces (see :class:`SqlNonces`), named ``name``."""
    return sa.Table(
        name,
        metadata,
        sa.Column("sender", sa.String(42), primary_key=True),
        sa.Column("nonce", sa.String(32), primary_key=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
    )


class SqlNonces:
    """The nonces of signed messages used so far, in a :func:`nonce_table`: the replay guard
    of :func:`databright.compute.protocol.open_envelope` for any SQL state (the coordinator's,
    the federation's). A nonce is spent once the signature holds, whatever the message then
    does: in a transaction of its own, or in the message's when the caller spends it again on
    its own should that transaction roll back (``Coordinator._message``)."""

    def __init__(self, engine: sa.Engine, table: sa.Table) -> None:
        self.engine = engine
        self.table = table
        insert = sqlite_insert if engine.dialect.name == "sqlite" else postgresql_insert
        key = table.c.nonce
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT.
        self._insert = insert(table).on_conflict_do_nothing().returning(key)
        self._swept = float("-inf")

    def use(
        self,
        sender: str,
        nonce: str,
        expires_at: int,
        now: float,
        *,
        connection: sa.Connection | None = None,
    ) -> bool:
        """Record a nonce; False when this sender used it before (a replay). Expired nonces
        are swept at most every _NONCE_SWEEP_S: an envelope past its expiry is refused before
        its nonce is looked at, so a stale row only takes space meanwhile. ``connection``: in
        that connection's transaction (the message's own), else in a transaction of its own."""
        if now - self._swept >= _NONCE_SWEEP_S:
            # a short transaction of its own: inside a message's, its locks would last as long
            # as the message, and a rolled-back message would undo it
            with self.engine.begin() as c:
                c.execute(self.table.delete().where(self.table.c.expires_at < int(now) - 1))
            self._swept = now
        values = {"sender": sender, "nonce": nonce, "expires_at": expires_at}
        if connection is None:
            with self.engine.begin() as c:
                return c.execute(self._insert, values).first() is not None
        return connection.execute(self._insert, values).first() is not None


_nonces = nonce_table("compute_nonces", _meta)
_evidence = sa.Table(
    "compute_evidence",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.Integer, nullable=False),
    sa.Column("unit_id", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(42), nullable=False),
    sa.Column("record", sa.Text, nullable=False),
)


def _worker(row: Any) -> WorkerRecord:
    return WorkerRecord(
        row.address,
        row.owner,
        row.numeric_class,
        row.registered_at,
        row.valid_results,
        row.invalid_results,
    )


def _job(row: Any) -> JobRecord:
    return JobRecord(
        row.job_id,
        row.dataset,
        row.spec_json,
        row.data_hash,
        row.dataset_size,
        row.steps_per_unit,
        row.total_units,
        row.units_done,
        row.checkpoint_hash,
        row.state,
        row.seed,
        row.shard_size,
    )


def _unit(row: Any) -> UnitRecord:
    return UnitRecord(
        row.unit_id,
        row.job_id,
        row.seq,
        row.step_start,
        row.steps,
        row.input_hash,
        tuple(json.loads(row.example_ids)),
        row.seed,
        row.state,
        row.replicas,
        row.numeric_class,
        row.agreed_hash,
    )


# The statements of the hot path, built once with bound parameters: building a statement and
# its cache key anew costs more than SQLite takes to run it, and a unit costs some thirty.
_b = sa.bindparam
_GET_WORKER = sa.select(_workers).where(_workers.c.address == _b("address"))
_ALL_WORKERS = sa.select(_workers).order_by(_workers.c.registered_at)
_VALID = (
    _workers.update()
    .where(_workers.c.address == _b("b_address"))
    .values(valid_results=_workers.c.valid_results + 1)
)
_INVALID = (
    _workers.update()
    .where(_workers.c.address == _b("b_address"))
    .values(invalid_results=_workers.c.invalid_results + 1)
)
_GET_JOB = sa.select(_jobs).where(_jobs.c.job_id == _b("job_id"))
_ADVANCE_JOB = (
    _jobs.update()
    .where(_jobs.c.job_id == _b("b_job_id"))
    .values(
        checkpoint_hash=_b("b_checkpoint_hash"),
        units_done=_jobs.c.units_done + 1,
        state=_b("b_state"),
    )
)
_ADD_UNIT = _units.insert()
_GET_UNIT = sa.select(_units).where(_units.c.unit_id == _b("unit_id"))
_OPEN_UNITS = sa.select(_units).where(_units.c.state == "open").order_by(_units.c.unit_id)
_JOB_UNITS = sa.select(_units).where(_units.c.job_id == _b("job_id")).order_by(_units.c.seq)
_SHARD_USES = (
    sa.select(_units.c.example_ids, sa.func.count())
    .where(_units.c.job_id == _b("job_id"))
    .group_by(_units.c.example_ids)
)
_FIX_GROUP = (
    _units.update()
    .where(_units.c.unit_id == _b("b_unit_id"), _units.c.replicas == 0)
    .values(numeric_class=_b("b_numeric_class"), replicas=_b("b_replicas"))
)
_ADD_REPLICAS = (
    _units.update()
    .where(_units.c.unit_id == _b("b_unit_id"))
    .values(replicas=_units.c.replicas + _b("b_extra"))
)
_FINISH_UNIT = (
    _units.update()
    .where(_units.c.unit_id == _b("b_unit_id"))
    .values(state="done", agreed_hash=_b("b_agreed_hash"))
)
_ASSIGNMENTS = sa.select(_assignments).order_by(_assignments.c.assigned_at)
_UNIT_ASSIGNMENTS = _ASSIGNMENTS.where(_assignments.c.unit_id == _b("unit_id"))
_WORKER_ASSIGNMENTS = _ASSIGNMENTS.where(_assignments.c.worker == _b("worker"))
_BOTH_ASSIGNMENTS = _UNIT_ASSIGNMENTS.where(_assignments.c.worker == _b("worker"))
_EXPIRE = (
    _assignments.update()
    .where(_assignments.c.state == "assigned", _assignments.c.deadline < _b("b_now"))
    .values(state="expired")
)
_SUBMITTED = (
    _assignments.update()
    .where(_assignments.c.unit_id == _b("b_unit_id"), _assignments.c.worker == _b("b_worker"))
    .values(state="submitted")
)
_RESULTS = (
    sa.select(_results)
    .where(_results.c.unit_id == _b("unit_id"))
    .order_by(_results.c.received_at, _results.c.worker)
)
_TRACE = sa.select(_traces.c.trace_hash).where(
    _traces.c.unit_id == _b("unit_id"), _traces.c.worker == _b("worker")
)
_GET_BLOB = sa.select(_blobs.c.data).where(_blobs.c.digest == _b("digest"))
_EXPOSURE = sa.select(_exposure.c.example_id).where(
    _exposure.c.dataset == _b("dataset"), _exposure.c.holder == _b("holder")
)
_EXPOSURE_COUNT = sa.select(sa.func.count()).where(
    _exposure.c.dataset == _b("dataset"), _exposure.c.holder == _b("holder")
)
_EXPOSURE_COUNTS = (
    sa.select(_exposure.c.holder, sa.func.count())
    .where(_exposure.c.dataset == _b("dataset"))
    .group_by(_exposure.c.holder)
)


class SqlComputeState(ComputeState):
    """:class:`ComputeState` in SQL through SQLAlchemy 2 (SQLite or PostgreSQL URLs)."""

    def __init__(self, url: str) -> None:
        try:
            self.engine = sql_engine(url)
        except (sa.exc.ArgumentError, ImportError) as e:
            raise InvalidArgument(
                f"cannot open compute state at {url!r} ({e}); give an sqlite:/// or "
                "postgresql+psycopg:// URL."
            ) from None
        _meta.create_all(self.engine)
        self._nonces = SqlNonces(self.engine, _nonces)
        self._bound = threading.local()
        # INSERT ... ON CONFLICT DO NOTHING is the dialect's own statement: built here, once
        self._skip = {t.name: self._insert_or_skip(t) for t in _meta.sorted_tables}
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT here.
        self._skip_returning = {
            name: insert.returning(next(iter(_meta.tables[name].primary_key.columns)))
            for name, insert in self._skip.items()
        }

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # One connection for the thread until the block ends: the calls inside share its
        # transaction instead of checking a connection out and committing ~40 times a message.
        if getattr(self._bound, "connection", None) is not None:
            yield
            return
        with self.engine.begin() as c:
            self._bound.connection = c
            try:
                yield
            finally:
                self._bound.connection = None

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        bound = getattr(self._bound, "connection", None)
        if bound is not None:
            yield bound
            return
        with self.engine.begin() as c:
            yield c

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        bound = getattr(self._bound, "connection", None)
        if bound is not None:
            yield bound
            return
        with self.engine.connect() as c:
            yield c

    def _insert(self, table: sa.Table, values: Mapping[str, Any]) -> bool:
        """Insert one row unless its key is there already (then False). ON CONFLICT DO NOTHING
        rather than catching the IntegrityError: inside :meth:`transaction`, an error would
        abort the whole transaction on PostgreSQL."""
        with self._write() as c:
            return c.execute(self._skip_returning[table.name], dict(values)).first() is not None

    def _insert_or_skip(self, table: sa.Table) -> Any:
        insert = sqlite_insert if self.engine.dialect.name == "sqlite" else postgresql_insert
        return insert(table).on_conflict_do_nothing()

    def _insert_new(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Insert the rows whose keys are not there yet, in one statement."""
        with self._write() as c:
            c.execute(self._skip[table.name], rows)

    # --- protocol --------------------------------------------------------------------------

    def use_nonce(self, sender: str, nonce: str, expires_at: int, now: float) -> bool:
        # inside transaction(): spent with everything the message writes (one commit)
        bound = getattr(self._bound, "connection", None)
        return self._nonces.use(sender, nonce, expires_at, now, connection=bound)

    # --- blobs -----------------------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        digest = output_hash(data)
        self._insert_new(_blobs, [{"digest": digest, "data": bytes(data)}])
        return digest

    def get_blob(self, digest: str) -> bytes:
        with self._read() as c:
            row = c.execute(_GET_BLOB, {"digest": digest}).first()
        if row is None:
            raise NotFound(f"no blob {digest} in the compute state; store it with put_blob().")
        return bytes(row.data)

    # --- workers ---------------------------------------------------------------------------

    def add_worker(self, address: str, owner: str, numeric_class: str, now: float) -> WorkerRecord:
        self._insert(
            _workers,
            {
                "address": address,
                "owner": owner,
                "numeric_class": numeric_class,
                "registered_at": now,
                "valid_results": 0,
                "invalid_results": 0,
            },
        )
        record = self.get_worker(address)
        assert record is not None
        if record.numeric_class != numeric_class or record.owner != owner:
            raise InvalidArgument(
                f"worker {address} is registered already with class {record.numeric_class} and "
                f"owner {record.owner}; a worker keeps its class and owner, register a new key."
            )
        return record

    def get_worker(self, address: str) -> WorkerRecord | None:
        with self._read() as c:
            row = c.execute(_GET_WORKER, {"address": address}).first()
        return None if row is None else _worker(row)

    def workers(self) -> list[WorkerRecord]:
        with self._read() as c:
            rows = c.execute(_ALL_WORKERS).all()
        return [_worker(r) for r in rows]

    def record_outcome(self, address: str, valid: bool) -> None:
        with self._write() as c:
            c.execute(_VALID if valid else _INVALID, {"b_address": address})

    # --- jobs and units --------------------------------------------------------------------

    def add_job(self, job: JobRecord) -> int:
        values = {k: v for k, v in job.__dict__.items() if k != "job_id"}
        with self._write() as c:
            result = c.execute(_jobs.insert().values(**values))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def get_job(self, job_id: int) -> JobRecord:
        with self._read() as c:
            row = c.execute(_GET_JOB, {"job_id": job_id}).first()
        if row is None:
            raise NotFound(f"there is no compute job {job_id}; submit it first.")
        return _job(row)

    def advance_job(self, job_id: int, checkpoint_hash: str, done: bool) -> None:
        with self._write() as c:
            c.execute(
                _ADVANCE_JOB,
                {
                    "b_job_id": job_id,
                    "b_checkpoint_hash": checkpoint_hash,
                    "b_state": "done" if done else "running",
                },
            )

    def add_unit(self, unit: UnitRecord) -> int:
        values = {k: v for k, v in unit.__dict__.items() if k != "unit_id"}
        values["example_ids"] = json.dumps(list(unit.example_ids))
        with self._write() as c:
            result = c.execute(_ADD_UNIT, values)
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def get_unit(self, unit_id: int) -> UnitRecord:
        with self._read() as c:
            row = c.execute(_GET_UNIT, {"unit_id": unit_id}).first()
        if row is None:
            raise NotFound(f"there is no work unit {unit_id}; ask for work with next_unit().")
        return _unit(row)

    def open_units(self) -> list[UnitRecord]:
        with self._read() as c:
            rows = c.execute(_OPEN_UNITS).all()
        return [_unit(r) for r in rows]

    def job_units(self, job_id: int) -> list[UnitRecord]:
        """The job's units in order (the per-job report reads who settled what)."""
        with self._read() as c:
            rows = c.execute(_JOB_UNITS, {"job_id": job_id}).all()
        return [_unit(r) for r in rows]

    def shard_uses(self, job_id: int) -> dict[tuple[int, ...], int]:
        with self._read() as c:
            rows = c.execute(_SHARD_USES, {"job_id": job_id}).all()
        return {tuple(json.loads(text)): int(count) for text, count in rows}

    def fix_unit_group(self, unit_id: int, numeric_class: str, replicas: int) -> None:
        with self._write() as c:
            c.execute(
                _FIX_GROUP,
                {"b_unit_id": unit_id, "b_numeric_class": numeric_class, "b_replicas": replicas},
            )

    def add_replicas(self, unit_id: int, extra: int) -> None:
        with self._write() as c:
            c.execute(_ADD_REPLICAS, {"b_unit_id": unit_id, "b_extra": extra})

    def finish_unit(self, unit_id: int, agreed_hash: str) -> None:
        with self._write() as c:
            c.execute(_FINISH_UNIT, {"b_unit_id": unit_id, "b_agreed_hash": agreed_hash})

    # --- assignments and results -----------------------------------------------------------

    def add_assignment(self, unit_id: int, worker: str, now: float, deadline: float) -> bool:
        return self._insert(
            _assignments,
            {
                "unit_id": unit_id,
                "worker": worker,
                "assigned_at": now,
                "deadline": deadline,
                "state": "assigned",
            },
        )

    def assignments(
        self, *, unit_id: int | None = None, worker: str | None = None, state: str | None = None
    ) -> list[AssignmentRecord]:
        if unit_id is not None:
            query = _UNIT_ASSIGNMENTS if worker is None else _BOTH_ASSIGNMENTS
        else:
            query = _ASSIGNMENTS if worker is None else _WORKER_ASSIGNMENTS
        if state is not None:
            # a worker's held unit is found among its few live assignments, not its history
            query = query.where(_assignments.c.state == _b("state"))
        params = {"unit_id": unit_id, "worker": worker, "state": state}
        with self._read() as c:
            rows = c.execute(query, {k: v for k, v in params.items() if v is not None}).all()
        return [
            AssignmentRecord(r.unit_id, r.worker, r.assigned_at, r.deadline, r.state) for r in rows
        ]

    def expire_assignments(self, now: float) -> int:
        with self._write() as c:
            result = c.execute(_EXPIRE, {"b_now": now})
            return int(result.rowcount)

    def add_result(self, result: ResultRecord) -> bool:
        with self.transaction(), self._write() as c:
            added = self._insert(
                _results,
                {
                    "unit_id": result.unit_id,
                    "worker": result.worker,
                    "output_hash": result.output_hash,
                    "envelope": json.dumps(result.envelope, sort_keys=True),
                    "body_hash": result.body_hash,
                    "received_at": result.received_at,
                },
            )
            if not added:
                return False
            c.execute(_SUBMITTED, {"b_unit_id": result.unit_id, "b_worker": result.worker})
        return True

    def results(self, unit_id: int) -> list[ResultRecord]:
        with self._read() as c:
            rows = c.execute(_RESULTS, {"unit_id": unit_id}).all()
        return [
            ResultRecord(
                r.unit_id,
                r.worker,
                r.output_hash,
                json.loads(r.envelope),
                r.body_hash,
                r.received_at,
            )
            for r in rows
        ]

    # --- exposure --------------------------------------------------------------------------

    def exposure(self, dataset: str, holder: str) -> set[int]:
        with self._read() as c:
            rows = c.execute(_EXPOSURE, {"dataset": dataset, "holder": holder}).all()
        return {int(r.example_id) for r in rows}

    def exposure_count(self, dataset: str, holder: str) -> int:
        with self._read() as c:
            return int(
                c.execute(_EXPOSURE_COUNT, {"dataset": dataset, "holder": holder}).scalar_one()
            )

    def exposed_among(self, dataset: str, holder: str, example_ids: Iterable[int]) -> set[int]:
        ids = sorted({int(i) for i in example_ids})
        seen: set[int] = set()
        with self._read() as c:
            for i in range(0, len(ids), _IN_CHUNK):
                seen.update(
                    int(r[0])
                    for r in c.execute(
                        sa.select(_exposure.c.example_id).where(
                            _exposure.c.dataset == dataset,
                            _exposure.c.holder == holder,
                            _exposure.c.example_id.in_(ids[i : i + _IN_CHUNK]),
                        )
                    )
                )
        return seen

    def add_exposure(self, dataset: str, holder: str, example_ids: Iterable[int]) -> None:
        rows = [
            {"dataset": dataset, "holder": holder, "example_id": i}
            for i in sorted({int(i) for i in example_ids})
        ]
        if rows:
            self._insert_new(_exposure, rows)

    def exposure_counts(self, dataset: str) -> dict[str, int]:
        with self._read() as c:
            rows = c.execute(_EXPOSURE_COUNTS, {"dataset": dataset}).all()
        return {str(holder): int(count) for holder, count in rows}

    # --- traces (the per-step state hashes a result commits to) ------------------------

    def add_trace(self, unit_id: int, worker: str, digest: str) -> None:
        self._insert(_traces, {"unit_id": unit_id, "worker": worker, "trace_hash": digest})

    def trace(self, unit_id: int, worker: str) -> str | None:
        with self._read() as c:
            row = c.execute(_TRACE, {"unit_id": unit_id, "worker": worker}).first()
        return None if row is None else str(row[0])

    # --- evidence --------------------------------------------------------------------------

    def add_evidence(
        self, job_id: int, unit_id: int, worker: str, record: Mapping[str, Any]
    ) -> None:
        self._insert(
            _evidence,
            {
                "job_id": job_id,
                "unit_id": unit_id,
                "worker": worker,
                "record": json.dumps(dict(record), sort_keys=True),
            },
        )

    def evidence(self, job_id: int | None = None) -> list[dict[str, Any]]:
        query = sa.select(_evidence).order_by(_evidence.c.id)
        if job_id is not None:
            query = query.where(_evidence.c.job_id == job_id)
        with self._read() as c:
            rows = c.execute(query).all()
        return [json.loads(r.record) for r in rows]
