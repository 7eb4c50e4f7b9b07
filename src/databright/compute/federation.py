"""The networked federated coordinator (issue 12, section 7), without any transport.

Data stays with its owners: each listed client (an Ethereum address, as on the chain's
federation) asks for the current round and the global weights, trains on its own examples and
sends back a signed update; the coordinator never sees a single example. Every message is sealed
as in the compute protocol (:mod:`databright.compute.protocol`: the sender's secp256k1 signature
over purpose, body hash, nonce and expiry; a nonce is accepted once), with purposes of its own
(``federation/attestation``, ``federation/round``, ``federation/update``) so a signed compute
message is never a signed federated one. Tensors travel as safetensors; nothing is unpickled.

Attestation: the coordinator is handed a
:class:`~databright.compute.coordinator.CoordinatorAttestation` (its signing key and the evidence
that binds it). Before it asks for a round, a client asks for it on the ``attestation`` route
with a fresh challenge (JSON ``{"challenge": 64 hex digits}``) and checks the answer as a compute
worker checks its coordinator (:func:`databright.compute.worker.check_coordinator`): a software
attestation passes only when the client was told to allow an insecure coordinator. A
coordinator without one answers ``NotFound``, and clients refuse it. Any signed sender may ask
(the answer is public).

A round closes when every listed client has sent its update, or once ``round_deadline_s`` has
passed since it opened with enough finite updates for the rule to aggregate and to leave one
out (a client that vanished must not stall the others; one that comes back later gets the next
round). Closing is :func:`databright.compute.federated.aggregate_round`, the step the simulation
(:func:`~databright.compute.federated.run_federated`) runs too: non-finite updates are dropped as
Byzantine, the rest aggregated with the robust rule (trimmed mean by default; no client reports
a weight), and every kept client scored by leave-one-out on the coordinator's validation set. A
client that sent nothing, or NaN, scores 0 that round. When all listed clients sent but too few
updates are finite, the round closes without moving the model and scores nobody.

Refused, in one sentence each: an unlisted sender (``NotPermitted``), a forged signature
(``NotPermitted``), a replayed envelope (``DuplicateSubmission``), an update for a round that is
not the current one (``NotPermitted``), a second, different update in one round
(``NotPermitted``: an update cannot be changed) and an update of the wrong shape
(``InvalidArgument``). The same update again is accepted again and changes nothing.

Everything a restart must not lose (the round, the global weights, the updates received this
round, the scores so far, the used nonces) is kept in SQL (:class:`FederationStore`, through
:func:`databright.sqlengine.sql_engine`: SQLite by default, PostgreSQL by URL) in tables of its
own, keyed by a run name; a coordinator started again on the same store with the same settings
resumes where it stopped. After the last round :meth:`FederationCoordinator.result` is a
:class:`~databright.compute.federated.FederatedResult` that
:func:`~databright.compute.federated.settle_contributions` pays on chain, with the clients in the
coordinator's order.

One process at a time: calls are serialised by a lock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import sqlalchemy as sa
from eth_utils import keccak
from numpy.typing import ArrayLike, NDArray
from sqlalchemy.exc import IntegrityError

from databright.compute.aggregation import Aggregator, Layout, flatten, unflatten
from databright.compute.attestation import read_challenge
from databright.compute.federated import (
    FederatedResult,
    RoundReport,
    aggregate_round,
    aggregation_shortfall,
    client_addresses,
    payout_shares,
    validation_score,
)
from databright.compute.protocol import (
    Envelope,
    body_hash,
    open_envelope,
    pack_arrays,
    pack_parts,
    unpack_arrays,
    unpack_parts,
)
from databright.compute.state import SqlNonces, nonce_table
from databright.errors import InvalidArgument, NotFound, NotPermitted
from databright.ml.spec import ModelSpec
from databright.ml.train import as_tensors, pinned
from databright.sqlengine import sql_engine

if TYPE_CHECKING:
    import torch

    from databright.compute.coordinator import CoordinatorAttestation
    from databright.compute.market import ComputeMarket

__all__ = [
    "FEDERATION_ROUTES",
    "FederationCoordinator",
    "FederationStore",
    "RoundOffer",
    "UpdateReceipt",
    "federation_clients",
    "purpose_of",
    "state_arrays",
    "update_body",
]

FEDERATION_ROUTES: Final = ("attestation", "round", "update")
"""What a client may ask; ``purpose_of(route)`` is what its envelope is signed for."""


def purpose_of(route: str) -> str:
    """The signing purpose of a federation route (distinct from every compute purpose)."""
    return f"federation/{route}"


def state_arrays(vector: NDArray[np.float32], layout: Layout) -> dict[str, NDArray[Any]]:
    """The named tensors a flat vector stands for, as numpy arrays (for safetensors)."""
    return {name: tensor.numpy() for name, tensor in unflatten(vector, layout).items()}


def update_body(round_number: int, delta: NDArray[np.float32]) -> bytes:
    """A client's update for ``round_number``: its flat delta (local minus global weights)."""
    return pack_parts(
        {"round": int(round_number)},
        {"update": pack_arrays({"delta": np.asarray(delta, dtype=np.float32)})},
    )


@dataclass(frozen=True)
class RoundOffer:
    """What a client is told when it asks: the current round (the last one once done), whether
    it has sent this round's update, the spec and local epochs to train with, and the global
    weights (safetensors of the named tensors; empty while the client waits for the round to
    close, since it has nothing to train)."""

    round: int
    rounds: int
    done: bool
    submitted: bool
    spec_json: str
    local_epochs: int
    weights: bytes

    def to_body(self) -> bytes:
        meta = {
            "round": self.round,
            "rounds": self.rounds,
            "done": self.done,
            "submitted": self.submitted,
            "spec": self.spec_json,
            "local_epochs": self.local_epochs,
        }
        return pack_parts(meta, {"weights": self.weights})

    @classmethod
    def from_body(cls, body: bytes) -> RoundOffer:
        meta, parts = unpack_parts(body)
        try:
            return cls(
                int(meta["round"]),
                int(meta["rounds"]),
                bool(meta["done"]),
                bool(meta["submitted"]),
                str(meta["spec"]),
                int(meta["local_epochs"]),
                parts["weights"],
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument(
                "the coordinator's round offer lacks round, rounds, done, submitted, spec, "
                "local_epochs or weights; is it a federation coordinator?"
            ) from None


@dataclass(frozen=True)
class UpdateReceipt:
    """The coordinator's answer to an update: the round it counted for, whether it was kept
    (False: non-finite, dropped as Byzantine) and whether that round has closed."""

    round: int
    kept: bool
    closed: bool

    def to_body(self) -> bytes:
        return json.dumps({"round": self.round, "kept": self.kept, "closed": self.closed}).encode()

    @classmethod
    def from_body(cls, body: bytes) -> UpdateReceipt:
        try:
            obj = json.loads(body)
            return cls(int(obj["round"]), bool(obj["kept"]), bool(obj["closed"]))
        except (ValueError, KeyError, TypeError):
            raise InvalidArgument(
                "the coordinator's receipt is not JSON with round, kept and closed; is it a "
                "federation coordinator?"
            ) from None


# --- the store ----------------------------------------------------------------------------

_meta = sa.MetaData()
_runs = sa.Table(
    "federation_runs",
    _meta,
    sa.Column("run", sa.String(200), primary_key=True),
    sa.Column("config", sa.String(66), nullable=False),
    sa.Column("round", sa.Integer, nullable=False),
    sa.Column("done", sa.Boolean, nullable=False),
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("weights", sa.LargeBinary, nullable=False),
)
_updates = sa.Table(
    "federation_updates",
    _meta,
    sa.Column("run", sa.String(200), primary_key=True),
    sa.Column("round", sa.Integer, primary_key=True),
    sa.Column("client", sa.String(42), primary_key=True),
    sa.Column("digest", sa.String(66), nullable=False),
    sa.Column("finite", sa.Boolean, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    # emptied when the round closes: only the digest is needed to recognise a resend
    sa.Column("delta", sa.LargeBinary),
)
_rounds = sa.Table(
    "federation_rounds",
    _meta,
    sa.Column("run", sa.String(200), primary_key=True),
    sa.Column("round", sa.Integer, primary_key=True),
    sa.Column("accuracy", sa.Float, nullable=False),
    sa.Column("rejected", sa.Text, nullable=False),
    sa.Column("missing", sa.Text, nullable=False),
    sa.Column("scores", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)
_nonces = nonce_table("federation_nonces", _meta)


@dataclass(frozen=True)
class _Run:
    round: int
    done: bool
    opened_at: float
    weights: NDArray[np.float32]


@dataclass(frozen=True)
class _Update:
    client: str
    digest: str
    finite: bool
    delta: NDArray[np.float32] | None


@dataclass(frozen=True)
class _ClosedRound:
    round: int
    accuracy: float
    rejected: tuple[str, ...]
    missing: tuple[str, ...]
    scores: dict[str, float]
    note: str


def _vector_bytes(vector: NDArray[np.float32]) -> bytes:
    return pack_arrays({"v": np.asarray(vector, dtype=np.float32)})


def _vector(blob: bytes) -> NDArray[np.float32]:
    return np.asarray(unpack_arrays(blob)["v"], dtype=np.float32)


class FederationStore:
    """The federated coordinator's state in SQL (SQLite or PostgreSQL URLs), in tables of its
    own (``federation_*``) beside any other state in the same database."""

    def __init__(self, url: str) -> None:
        try:
            self.engine = sql_engine(url)
        except (sa.exc.ArgumentError, ImportError) as e:
            raise InvalidArgument(
                f"cannot open the federation state at {url!r} ({e}); give an sqlite:/// or "
                "postgresql+psycopg:// URL."
            ) from None
        _meta.create_all(self.engine)
        self._nonces = SqlNonces(self.engine, _nonces)

    def close(self) -> None:
        self.engine.dispose()

    def use_nonce(self, sender: str, nonce: str, expires_at: int, now: float) -> bool:
        """Record a nonce; False when this sender used it before (a replay)."""
        return self._nonces.use(sender, nonce, expires_at, now)

    def open_run(self, run: str, config: str, weights: NDArray[np.float32], now: float) -> _Run:
        """The run named ``run``, begun at round 1 from ``weights`` if it is new; refused when
        the store holds a run of that name with other settings."""
        with self.engine.begin() as c:
            row = c.execute(sa.select(_runs).where(_runs.c.run == run)).first()
            if row is None:
                c.execute(
                    _runs.insert().values(
                        run=run,
                        config=config,
                        round=1,
                        done=False,
                        opened_at=now,
                        weights=_vector_bytes(weights),
                    )
                )
        if row is not None and row.config != config:
            raise InvalidArgument(
                f"the federation state already holds run {run!r} with other settings (spec, "
                "clients, rounds, rule, seed or validation set); resume it with the same "
                "settings or give another database or run name."
            )
        return self.run(run)

    def run(self, run: str) -> _Run:
        with self.engine.connect() as c:
            row = c.execute(sa.select(_runs).where(_runs.c.run == run)).first()
        if row is None:
            raise NotFound(f"the federation state holds no run {run!r}; open it first.")
        return _Run(int(row.round), bool(row.done), float(row.opened_at), _vector(row.weights))

    def add_update(self, run: str, round_number: int, update: _Update, now: float) -> bool:
        """Store a client's update; False when it sent one for that round already."""
        assert update.delta is not None
        try:
            with self.engine.begin() as c:
                c.execute(
                    _updates.insert().values(
                        run=run,
                        round=round_number,
                        client=update.client,
                        digest=update.digest,
                        finite=update.finite,
                        received_at=now,
                        delta=_vector_bytes(update.delta),
                    )
                )
        except IntegrityError:
            return False
        return True

    def update_of(self, run: str, round_number: int, client: str) -> _Update | None:
        """A client's update of a round (its delta only while the round is open)."""
        found = self._updates(run, round_number, client)
        return found[0] if found else None

    def updates(self, run: str, round_number: int) -> list[_Update]:
        return self._updates(run, round_number, None)

    def _updates(self, run: str, round_number: int, client: str | None) -> list[_Update]:
        query = sa.select(_updates).where(
            (_updates.c.run == run) & (_updates.c.round == round_number)
        )
        if client is not None:
            query = query.where(_updates.c.client == client)
        with self.engine.connect() as c:
            rows = c.execute(query).all()
        return [
            _Update(
                r.client,
                r.digest,
                bool(r.finite),
                None if r.delta is None else _vector(r.delta),
            )
            for r in rows
        ]

    def close_round(
        self,
        run: str,
        closed: _ClosedRound,
        weights: NDArray[np.float32],
        done: bool,
        now: float,
    ) -> None:
        """Record a closed round and open the next, in one transaction: a crash leaves either
        the round open with its updates or closed with its scores, never half of each."""
        with self.engine.begin() as c:
            c.execute(
                _rounds.insert().values(
                    run=run,
                    round=closed.round,
                    accuracy=closed.accuracy,
                    rejected=json.dumps(list(closed.rejected)),
                    missing=json.dumps(list(closed.missing)),
                    scores=json.dumps(closed.scores),
                    note=closed.note,
                )
            )
            c.execute(
                _runs.update()
                .where(_runs.c.run == run)
                .values(
                    round=closed.round if done else closed.round + 1,
                    done=done,
                    opened_at=now,
                    weights=_vector_bytes(weights),
                )
            )
            c.execute(
                _updates.update()
                .where((_updates.c.run == run) & (_updates.c.round == closed.round))
                .values(delta=None)
            )

    def rounds(self, run: str) -> list[_ClosedRound]:
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(_rounds).where(_rounds.c.run == run).order_by(_rounds.c.round)
            ).all()
        return [
            _ClosedRound(
                int(r.round),
                float(r.accuracy),
                tuple(json.loads(r.rejected)),
                tuple(json.loads(r.missing)),
                {str(k): float(v) for k, v in json.loads(r.scores).items()},
                str(r.note),
            )
            for r in rows
        ]


# --- the coordinator ----------------------------------------------------------------------


class FederationCoordinator:
    """Runs one federated training among listed clients; see the module docstring.

    ``clients`` are the clients' addresses (their order is the order of the scores and the
    payouts), ``x_val``/``y_val`` the coordinator's own validation set, ``store`` where the
    run is kept (under ``run``), ``utility`` what a contribution is measured in (as in
    :func:`~databright.compute.federated.run_federated`), and ``on_done`` is handed the
    result once the last round closes (to settle on chain); ``attestation`` is what clients are
    shown before they take part (None: clients refuse this coordinator)."""

    def __init__(
        self,
        spec: ModelSpec,
        clients: Sequence[str],
        x_val: ArrayLike,
        y_val: ArrayLike,
        *,
        store: FederationStore,
        rounds: int = 10,
        local_epochs: int = 1,
        aggregator: Aggregator | None = None,
        round_deadline_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        seed: int = 0,
        run: str = "federation",
        utility: Literal["accuracy", "loss"] = "loss",
        on_done: Callable[[FederatedResult], object] | None = None,
        attestation: CoordinatorAttestation | None = None,
    ) -> None:

        for name, value in (("rounds", rounds), ("local_epochs", local_epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgument(
                    f"{name} must be a whole number of at least 1, got {value!r}."
                )
        if not round_deadline_s > 0:
            raise InvalidArgument(f"round_deadline_s must be positive, got {round_deadline_s!r}.")
        if utility not in ("accuracy", "loss"):
            raise InvalidArgument(f"utility must be 'accuracy' or 'loss', got {utility!r}.")
        if isinstance(clients, str) or not clients:
            raise InvalidArgument("a federation needs its clients' addresses; list at least one.")
        self.clients = client_addresses(clients, len(clients))
        self.rule = Aggregator() if aggregator is None else aggregator
        short = aggregation_shortfall(self.rule, 1, len(self.clients), True)
        if short is not None:
            raise InvalidArgument(
                f"{len(self.clients)} clients are too few for the {self.rule.rule} rule with "
                "leave-one-out scores; add clients or choose a rule that needs fewer."
            )
        self.spec = spec
        self.rounds = rounds
        self.local_epochs = local_epochs
        self.round_deadline_s = float(round_deadline_s)
        self.clock = clock
        self.seed = seed
        self.run_name = run
        self.utility: Literal["accuracy", "loss"] = utility
        self.on_done = on_done
        self.attestation = attestation
        self.store = store
        self._xv, self._yv = as_tensors(spec, x_val, y_val, "validation")
        self._lock = threading.RLock()
        with pinned(1, seed=seed):
            # as run_federated builds it, so both start from the same weights
            self._module: torch.nn.Module = spec.build()
        initial, self._layout = flatten(self._module.state_dict())
        config = self._config(x_val, y_val)
        self.store.open_run(run, config, initial, clock())

    def _config(self, x_val: ArrayLike, y_val: ArrayLike) -> str:
        """A digest of everything a resumed run must share with the one it resumes."""
        text = json.dumps(
            {
                "spec": self.spec.to_json().decode(),
                "clients": self.clients,
                "rounds": self.rounds,
                "local_epochs": self.local_epochs,
                "rule": [self.rule.rule, self.rule.trim, self.rule.f, self.rule.m],
                "utility": self.utility,
                "seed": self.seed,
                "validation": body_hash(
                    np.ascontiguousarray(np.asarray(x_val, dtype=np.float32)).tobytes()
                    + np.ascontiguousarray(np.asarray(y_val, dtype=np.int64)).tobytes()
                ).hex(),
            },
            sort_keys=True,
        )
        return "0x" + bytes(keccak(text.encode())).hex()

    # --- protocol --------------------------------------------------------------------------

    def authenticate(self, envelope: Envelope, body: bytes, route: str) -> str:
        """The verified, listed sender of a message (signature, expiry, unused nonce)."""
        sender = open_envelope(envelope, body, self.clock(), self.store, purpose=purpose_of(route))
        return self._listed(sender)

    def _listed(self, client: str) -> str:
        if client not in self.clients:
            raise NotPermitted(
                f"{client} is not a client of this federation; only the {len(self.clients)} "
                "clients it lists take part."
            )
        return client

    def handle(self, route: str, envelope: Envelope, body: bytes) -> bytes:
        """Answer one signed message: what the HTTP server and in-process tests both call."""
        if route == "attestation":
            # signed like every message (a replayed request is refused), but not only by listed
            # clients: the answer is public, and anyone may check a coordinator before it joins
            open_envelope(envelope, body, self.clock(), self.store, purpose=purpose_of(route))
            return json.dumps(self.attest(body)).encode()
        if route == "round":
            return self.round_for(self.authenticate(envelope, body, route)).to_body()
        if route == "update":
            return self.submit_update(envelope, body).to_body()
        raise NotFound(f"there is no route {route!r}; use one of {', '.join(FEDERATION_ROUTES)}.")

    def attest(self, body: bytes) -> dict[str, str]:
        """Answer a client's challenge (``{"challenge": 64 hex digits}``) with this
        coordinator's evidence and its signature over the challenge."""
        if self.attestation is None:
            raise NotFound(
                "this federation coordinator has no attestation evidence; clients do not send "
                "updates to an unattested coordinator."
            )
        return self.attestation.answer(read_challenge(body), self.clock())

    def round_for(self, client: str) -> RoundOffer:
        """The current round and the global weights for a listed client (the final weights
        once the run is done; no weights while it waits for the others this round)."""
        self._listed(client)
        with self._lock:
            self.tick()
            run = self.store.run(self.run_name)
            submitted = not run.done and (
                self.store.update_of(self.run_name, run.round, client) is not None
            )
            weights = b"" if submitted else pack_arrays(state_arrays(run.weights, self._layout))
            return RoundOffer(
                run.round,
                self.rounds,
                run.done,
                submitted,
                self.spec.to_json().decode(),
                self.local_epochs,
                weights,
            )

    def submit_update(self, envelope: Envelope, body: bytes) -> UpdateReceipt:
        """Accept a listed client's signed update for the current round; see the module
        docstring for what is refused. Closes the round once every client has sent."""
        client = self.authenticate(envelope, body, "update")
        meta, parts = unpack_parts(body)
        try:
            claimed = int(meta["round"])
            blob = parts["update"]
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument(
                "an update body holds its round and an update part; build it with update_body()."
            ) from None
        digest = "0x" + body_hash(blob).hex()
        with self._lock:
            self.tick()
            run = self.store.run(self.run_name)
            earlier = self.store.update_of(self.run_name, claimed, client)
            if earlier is not None:
                return self._resent(earlier, digest, claimed)
            if run.done:
                raise NotPermitted(
                    f"the federation finished after round {run.round}; it takes no more updates."
                )
            if claimed != run.round:
                when = "has closed" if claimed < run.round else "has not begun"
                raise NotPermitted(
                    f"round {claimed} {when}; the current round is {run.round}, ask for it "
                    "and train from its weights."
                )
            delta = self._delta(unpack_arrays(blob), run.weights)
            update = _Update(client, digest, bool(np.isfinite(delta).all()), delta)
            if not self.store.add_update(self.run_name, run.round, update, self.clock()):
                # another coordinator on the same database stored one first: judge it a resend
                stored = self.store.update_of(self.run_name, claimed, client)
                assert stored is not None
                return self._resent(stored, digest, claimed)
            received = self.store.updates(self.run_name, run.round)
            closed = len(received) == len(self.clients)
            if closed:
                self._close(run, received)
            return UpdateReceipt(run.round, update.finite, closed)

    def _resent(self, earlier: _Update, digest: str, round_number: int) -> UpdateReceipt:
        """The receipt of an update sent before, again (refused when this one differs)."""
        if earlier.digest != digest:
            raise NotPermitted(
                f"{earlier.client} already sent another update for round {round_number}; an "
                "update cannot be changed."
            )
        run = self.store.run(self.run_name)
        return UpdateReceipt(round_number, earlier.finite, run.done or run.round != round_number)

    def _delta(
        self, arrays: Mapping[str, NDArray[Any]], weights: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        """The update as a flat delta: sent as one (``delta``) or as the client's whole
        state (the layout's named tensors), from which the global weights are subtracted."""
        size = self._layout.size
        if set(arrays) == {"delta"}:
            delta = np.asarray(arrays["delta"])
            if delta.shape != (size,) or delta.dtype.kind != "f":
                raise InvalidArgument(
                    f"the update's delta has shape {delta.shape} and dtype {delta.dtype}; the "
                    f"model needs {size} floating-point numbers."
                )
            return delta.astype(np.float32)
        if set(arrays) != set(self._layout.names):
            raise InvalidArgument(
                "an update holds one array 'delta' or the model's named tensors "
                f"({', '.join(self._layout.names)}); send one of those."
            )
        parts = []
        for name, shape in zip(self._layout.names, self._layout.shapes, strict=True):
            tensor = np.asarray(arrays[name])
            if tensor.shape != shape:
                raise InvalidArgument(
                    f"the update's tensor {name} has shape {tensor.shape}, not {shape}; train "
                    "the model of the federation's spec."
                )
            parts.append(tensor.reshape(-1).astype(np.float32))
        return (np.concatenate(parts) - weights).astype(np.float32)

    # --- rounds ----------------------------------------------------------------------------

    def tick(self) -> bool:
        """Close the current round if its deadline has passed and enough finite updates
        came to aggregate and leave one out; True when it closed."""
        with self._lock:
            run = self.store.run(self.run_name)
            if run.done or self.clock() < run.opened_at + self.round_deadline_s:
                return False
            received = self.store.updates(self.run_name, run.round)
            finite = sum(u.finite for u in received)
            if aggregation_shortfall(self.rule, run.round, finite, True) is not None:
                return False  # keep waiting: a round closes with enough updates or all of them
            self._close(run, received)
            return True

    def _close(self, run: _Run, received: list[_Update]) -> None:
        order = {c: i for i, c in enumerate(self.clients)}
        rows = sorted(received, key=lambda u: order[u.client])
        sent = np.stack([u.delta for u in rows if u.delta is not None]).astype(np.float32)
        finite = sum(u.finite for u in rows)
        short = aggregation_shortfall(self.rule, run.round, finite, True)
        scores = dict.fromkeys(self.clients, 0.0)
        with pinned(1, seed=self.seed):
            if short is None:
                step = aggregate_round(
                    self.rule,
                    self._module,
                    self._layout,
                    run.weights,
                    sent,
                    self._xv,
                    self._yv,
                    round_number=run.round,
                    contributions=True,
                    utility=self.utility,
                )
                weights, accuracy = step.weights, step.accuracy
                for row, u in enumerate(rows):
                    scores[u.client] = float(step.scores[row])
                note = ""
            else:
                # Every client answered but too few sensibly: the model stays, nobody scores.
                weights = run.weights
                self._module.load_state_dict(unflatten(weights, self._layout))
                accuracy, _ = validation_score(self._module, self._xv, self._yv)
                note = short
        closed = _ClosedRound(
            run.round,
            accuracy,
            tuple(u.client for u in rows if not u.finite),
            tuple(c for c in self.clients if c not in {u.client for u in rows}),
            scores,
            note,
        )
        done = run.round >= self.rounds
        self.store.close_round(self.run_name, closed, weights, done, self.clock())
        if done and self.on_done is not None:
            self.on_done(self.result())

    # --- reading ---------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.store.run(self.run_name).done

    def history(self) -> tuple[RoundReport, ...]:
        """The closed rounds as the simulation reports them (client indices in list order)."""
        index = {c: i for i, c in enumerate(self.clients)}
        return tuple(
            RoundReport(
                r.round,
                r.accuracy,
                tuple(index[c] for c in r.rejected),
                tuple(r.scores[c] for c in self.clients),
            )
            for r in self.store.rounds(self.run_name)
        )

    def contributions(self) -> NDArray[np.float64]:
        """Each client's contribution summed over the closed rounds, in list order."""
        total = np.zeros(len(self.clients), dtype=np.float64)
        for report in self.history():
            total += np.asarray(report.contributions, dtype=np.float64)
        return total

    def result(self) -> FederatedResult:
        """The finished run: final model and weights, rounds, contributions and shares, as
        :func:`~databright.compute.federated.settle_contributions` takes it."""
        with self._lock:
            run = self.store.run(self.run_name)
            if not run.done:
                raise NotFound(
                    f"the federation is at round {run.round} of {self.rounds}; its result "
                    "exists once the last round closes."
                )
            module = self.spec.build()
            state = unflatten(run.weights, self._layout)
            module.load_state_dict(state)
            module.eval()
            total = self.contributions()
            return FederatedResult(
                module=module,
                state=state,
                history=self.history(),
                contributions=total,
                shares=payout_shares(total),
            )

    def status(self) -> dict[str, Any]:
        """Where the run stands, JSON-ready: the round, who has sent this round, when it
        closes at the latest, and every closed round's accuracy, drops and scores."""
        with self._lock:
            self.tick()
            run = self.store.run(self.run_name)
            received = [] if run.done else self.store.updates(self.run_name, run.round)
            closed = self.store.rounds(self.run_name)
            return {
                "run": self.run_name,
                "state": "done" if run.done else "running",
                "round": run.round,
                "rounds": self.rounds,
                "clients": list(self.clients),
                "rule": self.rule.rule,
                "received": sorted(u.client for u in received),
                "deadline_at": None if run.done else run.opened_at + self.round_deadline_s,
                "history": [
                    {
                        "round": r.round,
                        "accuracy": r.accuracy,
                        "rejected": list(r.rejected),
                        "missing": list(r.missing),
                        "contributions": [r.scores[c] for c in self.clients],
                        "note": r.note,
                    }
                    for r in closed
                ],
                "contributions": self.contributions().tolist(),
            }


def federation_clients(compute_market: ComputeMarket, federation_id: int) -> list[str]:
    """A federation's clients as the chain lists them (named at creation or joined), in the
    order they became clients: the order a coordinator scores and pays them in."""
    compute_market.federation(federation_id)  # NotFound, in one sentence, for a wrong id
    seen: list[str] = []
    for event in compute_market.contract.events("FederationJoined", federation_id=federation_id):
        client = str(event.args["client"])
        if client not in seen and compute_market.participant(federation_id, client).joined:
            seen.append(client)
    return client_addresses(seen, len(seen)) if seen else []
