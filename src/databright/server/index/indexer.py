"""The chain indexer: every event of the market, its share tokens, its model market, its
compute market and its weight sale, into SQL, never a lie.

Each :meth:`Indexer.sync` step reads one batch of blocks and writes it in ONE database
transaction (its blocks, its events, the new ``indexed_block``), so a kill at any moment leaves
the index at the end of some batch, and the next run resumes there. Events are unique on
``(tx_hash, log_index)``: replaying a range inserts nothing twice. An indexer keeps where the
index ends (and its newest kept block, share tokens and models) in memory as it last wrote it,
so a step reads nothing back; each write moves ``indexed_block`` only from where the batch
starts, so a write after another indexer's (or a rewind by hand) is refused, writes nothing,
and the refused indexer reads the index again.

Reorgs: the index keeps the hash of every block it holds events of, and of each batch's last
block. Before each batch the newest kept block is compared with the chain; on a mismatch the
indexer walks down its kept blocks to the newest one the chain still has (the fork point),
deletes everything above it and indexes forward again. Within a batch, every log must carry
the hash of the block header fetched for its number, or the batch is dropped and retried.

What the API's lists read is kept in the same transaction: a proposal's status on its
ProposalCreated row too (PENDING until its settlement is indexed), each dataset's proposal
counts (:class:`IndexedDataset`) and each holder's shares (:class:`IndexedHolding`); a reorg
puts them back as the remaining events say. Following a fast chain, a step is one round trip
to the node and one transaction: the head, the reorg check, the next blocks' headers and their
logs in one batch. The batch's calls may each see another chain (the node mines between them),
so such logs count only where the headers vouch for them: the headers descend from the index's
end, every log carries its block's hash, and a block without logs has a bloom that names none
of the contracts (see ``Indexer._early_logs``); else the logs are read again, after the head.

The model market. When the deployment has one, its events are indexed too: each carries the
model it is about (``model_id``) and that model's dataset (from the model's registration), and
the model registry (:class:`IndexedModel`) is rebuilt, in the batch's transaction, for every
model a batch or a reorg touched. An index made before a model market was given to it has
none of the model market's past events: the first indexer given one records it and replays the
chain from the index's start (the data market's events are not inserted twice).

The compute market and the weight sale are indexed the same way, when the deployment has them:
their events carry the job (``job_id``) or the sale (``sale_id``) they are about, and the
devices, jobs and sales (:class:`IndexedDevice`, :class:`IndexedJob`, :class:`IndexedSale`)
are rebuilt in the batch's transaction for every one a batch or a reorg touched. Each worker a
``UnitPaid`` pays gets a row of its own (:class:`IndexedUnitPayment`, unique per transaction,
log and worker), so a device's units are found by worker. Several contracts name an event
alike (``Withdrawn``, ``Settled``), so what is rebuilt from events is read by contract too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, cast

from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from sqlalchemy import Engine, Insert, Table, Update, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from databright.chain.artifacts import load_artifact
from databright.chain.clients import ProposalStatus
from databright.chain.events import Event, EventDecoder
from databright.chain.gateway import Call, Gateway
from databright.errors import ChainError, ChainIndexError
from databright.server.index.registry import (
    DATASET_EVENTS,
    DEVICE_EVENTS,
    MODEL_EVENTS,
    add_transfers,
    rebuild_datasets,
    rebuild_devices,
    rebuild_holdings,
    rebuild_jobs,
    rebuild_models,
    rebuild_sales,
)
from databright.server.index.schema import (
    IndexedBlock,
    IndexedEvent,
    IndexedUnitPayment,
    IndexState,
)

__all__ = [
    "ACCESS_FIELDS",
    "COMPUTE_FIELDS",
    "DEFAULT_BATCH",
    "OUTCOME_FIELDS",
    "SALE_FIELDS",
    "Indexer",
    "SyncStep",
    "event_row",
    "unit_payments",
]

#: Blocks read per step: one eth_getLogs and one transaction each.
DEFAULT_BATCH: Final = 2000
#: The most block headers a step fetches ahead, with the head (see ``Indexer._head_and_reorg``).
_AHEAD: Final = 16
#: The longest range whose logs are read with every header of it, in one batch, once the head
#: is known (longer ones: the logs, then the headers of the blocks that have events).
_WHOLE: Final = 64
#: Seconds after a step last found new blocks that the chain counts as moving: headers (and
#: logs) are fetched ahead only then, so a quiet chain's polls ask for the head and one block.
_MOVING_S: Final = 1.0

# Which argument names the account an event is about, and its amount, in order of preference.
_ACCOUNT_ARGS: Final = (
    "contributor",
    "voter",
    "evaluator",
    "account",
    "receiver",
    "payer",
    "new_initiator",
    "initiator",
    "owner",
    "user",
    "node",
)
_AMOUNT_ARGS: Final = ("amount", "value", "weight", "shares")

#: What a settlement's outcome on its proposal's ProposalCreated row holds (its args' names).
OUTCOME_FIELDS: Final = ("shares", "yes_votes", "no_votes")

#: The compute market's events: the argument naming the account each is about and its amount
#: (None: none). Spelled out, since its names (``owner``, ``stake``) mean other things in the
#: data market's events, and an account's history should show a worker its slashes.
COMPUTE_FIELDS: Final[dict[str, tuple[str | None, str | None]]] = {
    "CoordinatorAllowed": ("coordinator", None),
    "CoordinatorRevoked": ("coordinator", None),
    "DeviceRegistered": ("owner", "stake"),
    "StakeAdded": ("owner", "amount"),
    "UnstakeRequested": ("owner", None),
    "StakeWithdrawn": ("owner", "amount"),
    "JobCreated": ("payer", "max_amount"),
    "UnitPaid": (None, "fee_each"),  # up to eight workers: see IndexedUnitPayment
    "Slashed": ("worker", "amount"),
    "JobClosed": ("closed_by", "refund"),
    "Withdrawn": ("account", "amount"),
    "OwnershipTransferStarted": ("new_owner", None),
    "OwnershipTransferred": ("new_owner", None),
    # Federations (federated training; indexed as events, not folded into rows yet).
    "FederationCreated": ("payer", "amount"),
    "FederationJoined": ("client", None),
    "FederationStarted": (None, None),
    "FederationPayout": ("client", "amount"),
    "FederationSettled": (None, "paid"),
    "FederationClosed": ("closed_by", "refund"),
}
#: The weight sale's events, alike.
SALE_FIELDS: Final[dict[str, tuple[str | None, str | None]]] = {
    "Listed": ("seller", "price"),
    "Unlisted": (None, None),
    "Bought": ("buyer", "price"),
    "Delivered": (None, None),
    "Accepted": (None, None),
    "KeyRevealed": (None, None),
    "Complained": (None, None),
    "Refunded": ("buyer", "amount"),
    "Settled": ("seller", "amount"),
    "Withdrawn": ("account", "amount"),
}
#: The paid-access register's events, alike (a purchase is the buyer's; the initiator sets
#: the price).
ACCESS_FIELDS: Final[dict[str, tuple[str | None, str | None]]] = {
    "AccessPriceSet": ("initiator", "price"),
    "AccessBought": ("buyer", "amount"),
}
# What index_state records beside the data market, and how a refusal names it.
_OPTIONAL: Final = (
    ("model_market", "model market"),
    ("compute_market", "compute market"),
    ("weight_sale", "weight sale"),
    ("data_access", "access register"),
)


@dataclass(frozen=True)
class SyncStep:
    """What one step did: the range indexed (empty when caught up), events added, and the
    fork point when a reorg was rolled back (None when there was none)."""

    from_block: int
    to_block: int
    head: int
    events_added: int
    rolled_back_to: int | None = None

    @property
    def lag(self) -> int:
        return max(0, self.head - self.to_block)


@dataclass
class _Position:
    """Where the index ends, as one indexer last wrote or read it: what a step needs to know
    before it asks the node anything, kept in memory so a step following the chain spends no
    query on it. Every write checks ``indexed_block`` against the index itself (another
    indexer may have written since), and a reorg check or a refused write forgets it."""

    indexed_block: int
    newest: tuple[int, str] | None  # the newest kept block's number and hash (None: none)
    head_block: int
    tokens: dict[str, int]  # share token -> dataset, as of ``indexed_block``
    models: dict[int, int]  # model -> dataset, alike


@dataclass(frozen=True)
class _Ahead:
    """What a step's first batch read of the blocks after the index's end: their headers
    (block -> header; blocks not mined yet are absent) and, following a fast chain, their
    logs (None: not read)."""

    headers: dict[int, dict[str, Any]]
    logs: list[dict[str, Any]] | None
    contracts: tuple[str, ...] = ()  # whose logs ``logs`` are


@dataclass(frozen=True)
class _BatchStatements:
    """The statements every batch's write runs, built once: building them (an upsert's
    ``excluded``, their cache keys' parts) cost more than SQLite took to run them."""

    advance: Update  # the index's end moved from ``end`` to ``last``, if it is still at ``end``
    keep_blocks: Insert  # upsert, never delete: deleting a kept block would cascade to events
    add_events: Insert  # returns the events a replay did not hold already

    @classmethod
    def of(cls, dialect: str) -> _BatchStatements:
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        S, E = cast(Table, IndexState.__table__), cast(Table, IndexedEvent.__table__)
        blocks = insert(cast(Table, IndexedBlock.__table__))
        return cls(
            advance=update(S)
            .where(S.c.chain_id == bindparam("chain"), S.c.indexed_block == bindparam("end"))
            .values(indexed_block=bindparam("last"), head_block=bindparam("head")),
            keep_blocks=blocks.on_conflict_do_update(
                index_elements=["number"],
                set_={k: blocks.excluded[k] for k in ("hash", "parent_hash", "timestamp")},
            ),
            add_events=insert(E)
            .on_conflict_do_nothing(index_elements=["tx_hash", "log_index"])
            .returning(E.c.tx_hash, E.c.log_index),
        )


def _plain(value: Any) -> Any:
    """JSON that keeps every uint256 exact: integers as decimal strings, bytes as 0x hex."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def event_row(
    e: Event,
    tx_hash: str,
    dataset_of_token: dict[str, int],
    dataset_of_model: dict[int, int] | None = None,
    fields: dict[str, tuple[str | None, str | None]] | None = None,
) -> dict[str, Any]:
    """The row of one decoded event (a model-market event's dataset is its model's).

    ``fields``: which arguments name the account and the amount of each event of the
    contract (:data:`COMPUTE_FIELDS`, :data:`SALE_FIELDS`); None: the data market's rule."""
    args = e.args
    model = int(args["model_id"]) if "model_id" in args else None
    dataset = args.get("dataset_id", dataset_of_token.get(e.address))
    if dataset is None and model is not None and dataset_of_model:
        dataset = dataset_of_model.get(model)
    if fields is not None:
        account_arg, amount_arg = fields.get(e.name, (None, None))
        account = args.get(account_arg) if account_arg else None
        amount = args.get(amount_arg) if amount_arg else None
    else:
        account = next((args[k] for k in _ACCOUNT_ARGS if isinstance(args.get(k), str)), None)
        amount = next((args[k] for k in _AMOUNT_ARGS if type(args.get(k)) is int), None)
    return {
        "block_number": e.block_number,
        "tx_hash": tx_hash,
        "log_index": e.log_index,
        "contract": e.address,
        "name": e.name,
        "dataset_id": int(dataset) if dataset is not None else None,
        "proposal_id": int(args["proposal_id"]) if "proposal_id" in args else None,
        "account": account,
        "amount": amount,
        "status": _status(e.name, args),
        "model_id": model,
        "job_id": int(args["job_id"]) if "job_id" in args else None,
        "sale_id": int(args["sale_id"]) if "sale_id" in args else None,
        "args": {k: _plain(v) for k, v in args.items()},
    }


def _status(name: str, args: dict[str, Any]) -> int | None:
    """A settlement's status; a new proposal's is PENDING until its settlement is indexed
    (see :meth:`Indexer._mark_settled`); None for every other event."""
    if name == "ProposalFinalized":
        return int(args["status"])
    return int(ProposalStatus.PENDING) if name == "ProposalCreated" else None


def unit_payments(row: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per worker a ``UnitPaid`` event row pays (its args are already plain)."""
    a = row["args"]
    return [
        {
            "block_number": row["block_number"],
            "tx_hash": row["tx_hash"],
            "log_index": row["log_index"],
            "job_id": row["job_id"],
            "unit_id": str(a["unit_id"]),
            "worker": str(worker),
            "fee": int(a["fee_each"]),
        }
        for worker in a["workers"]
    ]


class Indexer:
    """Indexes the events of the market at ``market`` (and of every share token it creates,
    and of its model market, compute market, weight sale and access register if given) from
    the chain behind ``gateway`` into the database behind ``engine``.

    ``model_market``, ``compute_market``, ``weight_sale``, ``data_access`` None: the one the
    index recorded, if
    any (so an older caller that knows none keeps indexing it); one differing from the
    recorded one is refused."""

    def __init__(
        self,
        gateway: Gateway,
        market: str,
        engine: Engine,
        start_block: int = 0,
        batch: int = DEFAULT_BATCH,
        model_market: str | None = None,
        compute_market: str | None = None,
        weight_sale: str | None = None,
        data_access: str | None = None,
    ) -> None:
        if batch < 1:
            raise ChainIndexError(f"a batch is at least one block, not {batch}")
        self.gateway = gateway
        self.market = to_checksum_address(market)
        self.engine = engine
        self.batch = batch
        self._market_abi = load_artifact("DataMarket").abi
        self._token_abi = load_artifact("ShareToken").abi
        self._model_abi = load_artifact("ModelMarket").abi
        self._compute_abi = load_artifact("ComputeMarket").abi
        self._sale_abi = load_artifact("WeightSale").abi
        self._access_abi = load_artifact("DataAccess").abi
        self.chain_id = gateway.chain_id
        self._decoders: dict[str, EventDecoder] = {}
        self._span = 0  # blocks the last step indexed: how many headers to fetch ahead
        self._moved_at = float("-inf")  # when a step last indexed new blocks (monotonic)
        self._blooms_hold = True  # the node's logs blooms name every log's address, so far
        self._masks: dict[str, int] = {}  # address (lower case) -> its bits in a logs bloom
        self._known: _Position | None = None  # the index as the last step left it
        self._statements = _BatchStatements.of(engine.dialect.name)
        given = {
            "model_market": model_market,
            "compute_market": compute_market,
            "weight_sale": weight_sale,
            "data_access": data_access,
        }
        wanted: dict[str, str | None] = {
            key: str(to_checksum_address(address)) if address else None
            for key, address in given.items()
        }
        with Session(engine) as session, session.begin():
            state = session.get(IndexState, self.chain_id)
            if state is None:
                session.add(
                    IndexState(
                        chain_id=self.chain_id,
                        market=self.market,
                        start_block=start_block,
                        indexed_block=start_block - 1,
                        head_block=start_block - 1,
                        **wanted,
                    )
                )
            elif state.market != self.market:
                raise ChainIndexError(
                    f"this index holds market {state.market} of chain {self.chain_id}, not "
                    f"{self.market}; give the server a database of its own for each market"
                )
            else:
                for key, what in _OPTIONAL:
                    recorded, address = getattr(state, key), wanted[key]
                    if address is None:
                        wanted[key] = recorded
                    elif recorded is None:
                        # Its past events were never read: replay from the start (idempotent).
                        setattr(state, key, address)
                        state.indexed_block = min(state.indexed_block, state.start_block - 1)
                    elif recorded != address:
                        raise ChainIndexError(
                            f"this index holds {what} {recorded} of market {self.market}, not "
                            f"{address}; give the server a database of its own for each "
                            "deployment"
                        )
        self.model_market: str | None = wanted["model_market"]
        self.compute_market: str | None = wanted["compute_market"]
        self.weight_sale: str | None = wanted["weight_sale"]
        self.data_access: str | None = wanted["data_access"]

    # --- what the index says ---------------------------------------------------------

    def state(self) -> IndexState:
        with Session(self.engine, expire_on_commit=False) as session:
            state = session.get(IndexState, self.chain_id)
            assert state is not None  # created in __init__
            return state

    def read_position(self) -> tuple[int, str | None, int]:
        """:meth:`known_version`, read from the index if this indexer does not know it yet
        (what its first step does before anything else)."""
        self._position()
        known = self.known_version()
        assert known is not None  # just read
        return known

    def known_version(self) -> tuple[int, str | None, int] | None:
        """Where this indexer last left the index, without a query: the last indexed block,
        that block's hash (what pages of the index are kept under; see the API's page cache)
        and the head it last saw. None while it does not know (before its first step, while
        it writes a batch, after a reorg or another indexer's write, until it reads again).
        Another process writing the same index is seen at this one's next step."""
        at = self._known
        if at is None:
            return None
        block_hash = at.newest[1] if at.newest and at.newest[0] == at.indexed_block else None
        return at.indexed_block, block_hash, at.head_block

    def lag(self) -> int:
        """Blocks the chain is ahead of the index (as of the last step's view of the head)."""
        state = self.state()
        return max(0, state.head_block - state.indexed_block)

    def tokens(self, session: Session) -> dict[str, int]:
        """Share token address -> dataset id, from the indexed DatasetCreated events."""
        rows = session.execute(
            select(IndexedEvent.args, IndexedEvent.dataset_id).where(
                IndexedEvent.name == "DatasetCreated"
            )
        )
        return {to_checksum_address(args["token"]): int(ds) for args, ds in rows if ds is not None}

    def models(self, session: Session) -> dict[int, int]:
        """Model id -> dataset id, from the indexed ModelRegistered events."""
        rows = session.execute(
            select(IndexedEvent.model_id, IndexedEvent.dataset_id).where(
                IndexedEvent.name == "ModelRegistered"
            )
        )
        return {int(m): int(d) for m, d in rows if m is not None and d is not None}

    # --- indexing --------------------------------------------------------------------

    def sync(self, max_steps: int | None = None) -> list[SyncStep]:
        """Index until caught up with the head (or ``max_steps`` steps)."""
        steps: list[SyncStep] = []
        while max_steps is None or len(steps) < max_steps:
            step = self.step()
            steps.append(step)
            if step.from_block > step.to_block or step.lag == 0:
                break
        return steps

    def step(self) -> SyncStep:
        """Roll back a reorg if there was one, then index one batch."""
        at = self._position()
        head, rolled_back, ahead = self._head_and_reorg(at)
        at = self._position()  # read again if the reorg check dropped what was known
        first = at.indexed_block + 1
        # Blocks mined while the first request was answered count too: their headers came
        # with it (and are checked as any other's).
        seen = first - 1
        while seen + 1 in ahead.headers:
            seen += 1
        last = min(max(head, seen), first + self.batch - 1)
        if first > last:
            if head != at.head_block:  # an idle poll writes nothing
                self._record_head(head)
                at.head_block = head
            return SyncStep(first, at.indexed_block, head, 0, rolled_back)
        self._known = None  # until this batch is written
        parent = at.newest[1] if at.newest and at.newest[0] == first - 1 else None
        rows, blocks, tokens, models = self._read(first, last, at.tokens, at.models, ahead, parent)
        head = max(head, last)
        if rows is None:  # the chain changed under this batch: try again next step
            return SyncStep(first, at.indexed_block, head, 0, rolled_back)
        added = self._write(first, last, head, rows, blocks)
        if added is None:  # another indexer wrote this range: read where it left the index
            return SyncStep(first, at.indexed_block, head, 0, rolled_back)
        kept = next(b for b in blocks if b["number"] == last)  # ``_read`` keeps the last block
        # The index as this write left it, so the next step reads nothing back (a rollback or
        # a range another indexer wrote first reads it from the index again).
        self._known = _Position(last, (last, kept["hash"]), head, tokens, models)
        self._span = last - first + 1
        self._moved_at = time.monotonic()
        return SyncStep(first, last, head, added, rolled_back)

    def _position(self) -> _Position:
        """Where the index ends, as the last write left it; read from the index when there was
        none (the first step, after a rollback, after another indexer wrote first)."""
        if self._known is not None:
            return self._known
        with Session(self.engine) as session:
            state = session.get(IndexState, self.chain_id)
            assert state is not None  # created in __init__
            newest = session.execute(
                select(IndexedBlock.number, IndexedBlock.hash)
                .order_by(IndexedBlock.number.desc())
                .limit(1)
            ).first()
            self._known = _Position(
                state.indexed_block,
                None if newest is None else (newest.number, newest.hash),
                state.head_block,
                self.tokens(session),
                self.models(session) if self.model_market else {},
            )
        return self._known

    def _header(self, number: int) -> dict[str, Any] | None:
        block = self.gateway.request(
            "eth_getBlockByNumber", [hex(number), False], f"block {number}"
        )
        return dict(block) if block else None

    def _head_and_reorg(self, at: _Position) -> tuple[int, int | None, _Ahead]:
        """The chain's head, the fork point when a reorg was rolled back (None: none), and
        what was read of the blocks after the index's end.

        One batch request: the head, the newest kept block's header (a reorg check) and,
        while the chain moves, the headers of the next blocks (twice as many as the last step
        indexed, at most ``_AHEAD``) and their logs, so a step following a fast chain is one
        round trip and a write. The logs are read only while the index is at the head the
        last step saw and where the headers can vouch for them (see :meth:`_early_logs`): the
        newest kept block is the index's end, so the headers must descend from it, and the
        node's blooms have held so far. On a quiet chain nothing is fetched ahead (a node
        that bills each request of a batch is asked for two)."""
        newest, end = at.newest, at.indexed_block
        if newest is None:
            return self.gateway.block_number(), None, _Ahead({}, None)
        moving = time.monotonic() - self._moved_at < _MOVING_S
        ahead = list(range(end + 1, end + 1 + min(_AHEAD, 2 * self._span))) if moving else []
        # Logs are read early only while following: the last step reached the head it saw
        # (so "latest", below, is a few blocks on, not a backlog read for nothing).
        following = at.head_block <= end
        early = bool(ahead) and following and newest[0] == end and self._blooms_hold
        calls = [
            Call("eth_blockNumber", [], "the chain's head", _quantity),
            *(_header_call(n) for n in (newest[0], *ahead)),
        ]
        contracts = self._contracts(at.tokens) if early else []
        if early:
            # Up to "latest", not the last block fetched ahead: nodes refuse a range that
            # ends past their head (the embedded node) or cut it there (anvil). Logs of
            # blocks past the headers fetched are dropped (see _read).
            window = {"fromBlock": hex(ahead[0]), "toBlock": "latest", "address": contracts}
            calls.append(Call("eth_getLogs", [window], "events", _log_list))
        # Errors in place: a range that starts past the head is an error on some nodes (no
        # block was mined since the last step), which only means that no log was read early.
        # Direct: this is asked in a loop, and requests and web3 cost more CPU than the node.
        head, kept, *fetched = self.gateway.ask_batch(calls, errors_in_place=True, direct=True)
        logs = fetched.pop() if early else None
        for answer in (head, kept, *fetched):
            if isinstance(answer, ChainError):
                raise answer
        if kept is not None and _hex(kept["hash"]) == newest[1]:
            headers = {n: h for n, h in zip(ahead, fetched, strict=True) if h}
            read = None if isinstance(logs, ChainError) else logs
            return head, None, _Ahead(headers, read, tuple(contracts))
        self._span = 0
        self._known = None
        return head, self._roll_back_reorg(), _Ahead({}, None)

    def _roll_back_reorg(self) -> int | None:
        """Compare kept blocks with the chain, newest first; drop what the chain no longer has."""
        newest_first = select(IndexedBlock.number, IndexedBlock.hash).order_by(
            IndexedBlock.number.desc()
        )
        with Session(self.engine) as session:
            # Each step asks about the newest kept block only; the walk down is for a reorg.
            newest = session.execute(newest_first.limit(1)).first()
            if newest is None or self._on_chain(*newest):
                return None
            fork = next(
                (
                    number
                    for number, block_hash in session.execute(
                        newest_first.execution_options(yield_per=256)
                    )
                    if self._on_chain(number, block_hash)
                ),
                None,
            )
        state = self.state()
        fork = state.start_block - 1 if fork is None else fork
        E, P = IndexedEvent, IndexedUnitPayment
        with Session(self.engine) as session, session.begin():
            above = E.block_number > fork
            touched = session.scalars(
                select(E.model_id).where(above, E.name.in_(MODEL_EVENTS)).distinct()
            ).all()
            owners = set(
                session.scalars(
                    select(E.account)
                    .where(above, E.contract == self.compute_market, E.name.in_(DEVICE_EVENTS))
                    .distinct()
                )
            )
            owners |= set(session.scalars(select(P.worker).where(P.block_number > fork)))
            jobs = session.scalars(
                select(E.job_id).where(above, E.contract == self.compute_market).distinct()
            ).all()
            sales = session.scalars(
                select(E.sale_id).where(above, E.contract == self.weight_sale).distinct()
            ).all()
            recount = session.scalars(
                select(E.dataset_id).where(above, E.name.in_(DATASET_EVENTS)).distinct()
            ).all()
            moved = session.scalars(
                select(E.dataset_id).where(above, E.name == "Transfer").distinct()
            ).all()
            unsettled = session.scalars(
                select(E.proposal_id)
                .where(above, E.name == "ProposalFinalized", E.contract == self.market)
                .distinct()
            ).all()
            session.execute(delete(P).where(P.block_number > fork))
            session.execute(delete(E).where(above))
            session.execute(delete(IndexedBlock).where(IndexedBlock.number > fork))
            self._mark_settled(
                session,
                [
                    {"pid": p, "settled": int(ProposalStatus.PENDING), "outcome": None}
                    for p in unsettled
                ],
            )
            rebuild_datasets(session, [int(d) for d in recount if d is not None])
            rebuild_holdings(session, [int(d) for d in moved if d is not None])
            rebuild_models(session, [int(m) for m in touched if m is not None])
            self._rebuild(session, owners, jobs, sales)
            row = session.get(IndexState, self.chain_id)
            assert row is not None
            row.indexed_block = min(row.indexed_block, fork)
        return fork

    def _on_chain(self, number: int, block_hash: str) -> bool:
        header = self._header(number)
        return header is not None and _hex(header["hash"]) == block_hash

    def _logs(self, first: int, last: int, addresses: Iterable[str]) -> list[dict[str, Any]]:
        return self.gateway.ask(
            "eth_getLogs", [_window(first, last, addresses)], "events", _log_list
        )

    def _contracts(self, tokens: Iterable[str]) -> list[str]:
        """The contracts whose logs are indexed: the market's, the others given, the tokens."""
        given = (self.model_market, self.compute_market, self.weight_sale, self.data_access)
        return [self.market, *(a for a in given if a), *tokens]

    def _read(
        self,
        first: int,
        last: int,
        tokens: dict[str, int],
        models: dict[int, int],
        ahead: _Ahead | None = None,
        parent: str | None = None,
    ) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]], dict[str, int], dict[int, int]]:
        """The rows and kept blocks of ``first``..``last`` (None rows: the chain changed under
        the batch), and the share tokens and models known once they are indexed. ``ahead``:
        headers (and logs) read already; ``parent``: the hash of block ``first - 1`` as the
        index keeps it (None: not kept), which the range's headers must descend from."""
        ahead = ahead or _Ahead({}, None)
        decoders: dict[str, EventDecoder] = {
            self.market: self._decoder(self.market, self._market_abi)
        }
        for address, abi in (
            (self.model_market, self._model_abi),
            (self.compute_market, self._compute_abi),
            (self.weight_sale, self._sale_abi),
            (self.data_access, self._access_abi),
        ):
            if address:
                decoders[address] = self._decoder(address, abi)
        addresses = [*decoders, *tokens]
        known = dict(ahead.headers)  # block -> header, as fetched so far
        logs = self._early_logs(first, last, addresses, ahead, parent)
        if logs is None and last - first < _WHOLE:
            # The logs and every header not fetched yet, in one batch: the blocks exist (the
            # head was read first), so the logs cover them all.
            missing = [n for n in range(first, last + 1) if n not in known]
            logs, *fetched = self.gateway.ask_batch(
                [
                    Call("eth_getLogs", [_window(first, last, addresses)], "events", _log_list),
                    *(_header_call(n) for n in missing),
                ],
                direct=True,
            )
            known |= {n: h for n, h in zip(missing, fetched, strict=True) if h is not None}
        elif logs is None:
            logs = self._logs(first, last, addresses)
        decoders.update({t: self._decoder(t, self._token_abi) for t in tokens})
        decoded = self._decode(logs, decoders)
        # Tokens created in this batch: their own events of this batch are read now too.
        new: dict[str, int] = {
            str(to_checksum_address(e.args["token"])): int(e.args["dataset_id"])
            for e, _ in decoded
            if e.name == "DatasetCreated" and e.address == self.market
        }
        new = {t: d for t, d in new.items() if t not in tokens}
        if new:
            more = self._logs(first, last, new)
            logs += more
            decoders.update({t: self._decoder(t, self._token_abi) for t in new})
            decoded += self._decode(more, {t: decoders[t] for t in new})
            tokens = {**tokens, **new}
        numbers = sorted({e.block_number for e, _ in decoded} | {last})
        headers = {n: known[n] for n in numbers if n in known}
        missing = [n for n in numbers if n not in headers]
        # One batch request for every header of the batch not fetched ahead, not one each.
        fetched = self.gateway.ask_many(
            "eth_getBlockByNumber",
            [[hex(n), False] for n in missing],
            "block headers",
            _optional_header,
        ) if missing else []  # fmt: skip
        headers |= {n: h for n, h in zip(missing, fetched, strict=True) if h is not None}
        if len(headers) < len(numbers):  # a block vanished under us: a reorg in flight
            return None, [], tokens, models
        for log in logs:
            number = int(log["blockNumber"], 16)
            if _hex(log["blockHash"]) != _hex(headers[number]["hash"]):
                return None, [], tokens, models
        if parent is not None and not _descends(known, first, last, parent):
            return None, [], tokens, models  # the headers are not one chain from the index's end
        # Models registered in this batch: their later events of this batch name their dataset.
        models = {
            **models,
            **{
                int(e.args["model_id"]): int(e.args["dataset_id"])
                for e, _ in decoded
                if e.name == "ModelRegistered" and e.address == self.model_market
            },
        }
        fields = {
            self.compute_market: COMPUTE_FIELDS,
            self.weight_sale: SALE_FIELDS,
            self.data_access: ACCESS_FIELDS,
        }
        rows = [event_row(e, tx, tokens, models, fields.get(e.address)) for e, tx in decoded]
        blocks = [
            {
                "number": n,
                "hash": _hex(h["hash"]),
                "parent_hash": _hex(h["parentHash"]),
                "timestamp": int(h["timestamp"], 16),
            }
            for n, h in headers.items()
        ]
        return rows, blocks, tokens, models

    def _early_logs(
        self,
        first: int,
        last: int,
        addresses: list[str],
        ahead: _Ahead,
        parent: str | None,
    ) -> list[dict[str, Any]] | None:
        """The logs of ``first``..``last`` read in the step's first batch, when they surely
        are every log of the range; None: read them now.

        The batch's calls may each see another chain: the node may mine (or reorg) between
        them, and may answer them in any order. So the logs read early count only when all
        of these hold: they were read for these contracts (no token is new since), every
        header of the range was fetched with them and descends from the index's end
        (``parent``; checked by the caller, with every log's block hash), and each block of
        the range either has logs among them or has a logs bloom that names none of the
        contracts. A block mined after the logs were read, that logged for one of ours,
        names it in its bloom (a bloom never leaves out an address its block logged), so its
        logs are read again, now that its header is known. A node whose blooms do leave one
        out (a log of ours whose block's bloom lacks its address) is not trusted with them
        again: its logs are read after the head from then on, as they were before."""
        early = ahead.logs
        if early is None or parent is None or ahead.contracts != tuple(addresses):
            return None
        if any(n not in ahead.headers for n in range(first, last + 1)):
            return None
        masks = [self._bloom_mask(a) for a in addresses]
        logs = [log for log in early if first <= int(log["blockNumber"], 16) <= last]
        logged: set[int] = set()
        for log in logs:
            number = int(log["blockNumber"], 16)
            logged.add(number)
            header = ahead.headers[number]
            if _hex(log["blockHash"]) != _hex(header["hash"]):
                return logs  # another chain's: the caller drops the batch
            bloom = _bloom(header)
            mask = self._bloom_mask(str(log["address"]))
            if bloom is None or bloom & mask != mask:
                self._blooms_hold = False
                return None
        for number in range(first, last + 1):
            if number in logged:
                continue
            bloom = _bloom(ahead.headers[number])
            if bloom is None or any(bloom & m == m for m in masks):
                return None  # maybe mined after the logs were read: read them now
        return logs

    def _bloom_mask(self, address: str) -> int:
        """The three bits an address sets in a logs bloom (the yellow paper's M3:2048), as
        bits of the bloom read as one big-endian number."""
        key = address.lower()
        mask = self._masks.get(key)
        if mask is None:
            digest = keccak(hexstr=key)
            mask = 0
            for i in (0, 2, 4):
                mask |= 1 << (((digest[i] << 8) | digest[i + 1]) & 2047)
            self._masks[key] = mask
        return mask

    def _decoder(self, address: str, abi: list[dict[str, Any]]) -> EventDecoder:
        """The decoder of a contract, built once: not again each step, hashing every event
        signature of every share token."""
        decoder = self._decoders.get(address)
        if decoder is None:
            decoder = self._decoders[address] = EventDecoder(address, abi)
        return decoder

    @staticmethod
    def _decode(
        logs: list[dict[str, Any]], decoders: dict[str, EventDecoder]
    ) -> list[tuple[Event, str]]:
        out = []
        # by the address as the node writes it: no checksum (a keccak) per log
        by_lower = {address.lower(): decoder for address, decoder in decoders.items()}
        for log in logs:
            if log.get("removed"):
                continue
            decoder = by_lower.get(str(log["address"]).lower())
            if decoder is None:
                continue
            try:
                events = decoder.decode([log])
            except (ValueError, TypeError) as exc:
                raise ChainError(f"a log of {log['address']} does not decode ({exc})") from exc
            out += [(e, _hex(log["transactionHash"])) for e in events]
        return out

    def _write(
        self,
        first: int,
        last: int,
        head: int,
        rows: list[dict[str, Any]],
        blocks: list[dict[str, Any]],
    ) -> int | None:
        """Write one batch in one transaction; the events it added (None: the index does not
        end at ``first - 1``, another indexer wrote there first, and nothing is written)."""
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        statements = self._statements
        with Session(self.engine) as session, session.begin():
            # Moved first, only from where this batch starts: the row's lock (PostgreSQL) or
            # the write lock (SQLite) keeps a second indexer out until this one commits, and
            # no SELECT of the state is needed.
            moved = session.execute(
                statements.advance,
                {"chain": self.chain_id, "end": first - 1, "last": last, "head": max(head, last)},
            )
            if cast(Any, moved).rowcount != 1:
                return None  # another indexer got here first; nothing is written twice
            session.execute(statements.keep_blocks, blocks)
            # The events a replay did not hold already, as the insert returns them: no count
            # of the batch's range before and after, and no query of the transfers held.
            new: set[tuple[str, int]] = set()
            if rows:
                new = {(tx, log) for tx, log in session.execute(statements.add_events, rows)}
            add_transfers(
                session,
                (
                    (
                        r["dataset_id"],
                        r["args"]["sender"],
                        r["args"]["receiver"],
                        int(r["args"]["value"]),
                    )
                    for r in rows
                    if r["name"] == "Transfer"
                    and r["dataset_id"] is not None
                    and (r["tx_hash"], r["log_index"]) in new
                ),
            )
            self._mark_settled(
                session,
                [
                    {
                        "pid": r["proposal_id"],
                        "settled": r["status"],
                        "outcome": {k: r["args"].get(k) for k in OUTCOME_FIELDS},
                    }
                    for r in rows
                    if r["name"] == "ProposalFinalized" and r["contract"] == self.market
                ],
            )
            rebuild_datasets(
                session,
                {
                    r["dataset_id"]
                    for r in rows
                    if r["name"] in DATASET_EVENTS and r["dataset_id"] is not None
                },
            )
            rebuild_models(
                session,
                {r["model_id"] for r in rows if r["name"] in MODEL_EVENTS and r["model_id"]},
            )
            compute = [r for r in rows if r["contract"] == self.compute_market]
            paid = [p for r in compute if r["name"] == "UnitPaid" for p in unit_payments(r)]
            if paid:
                session.execute(
                    insert(IndexedUnitPayment).on_conflict_do_nothing(
                        index_elements=["tx_hash", "log_index", "worker"]
                    ),
                    paid,
                )
            self._rebuild(
                session,
                {r["account"] for r in compute if r["name"] in DEVICE_EVENTS and r["account"]}
                | {p["worker"] for p in paid},
                [r["job_id"] for r in compute],
                [r["sale_id"] for r in rows if r["contract"] == self.weight_sale],
            )
        return len(new)

    @staticmethod
    def _mark_settled(session: Session, settled: list[dict[str, Any]]) -> None:
        """Copy each settlement's status and outcome onto its proposal's ProposalCreated row
        (PENDING and None: the settlement was rolled back), so pending and settled lists are
        index ranges and a page of proposals is one query."""
        if not settled:
            return
        # The table, not the entity: many rows by proposal id (the ORM's bulk update is by
        # primary key).
        E = cast(Table, IndexedEvent.__table__)
        session.execute(
            update(E)
            .where(E.c.name == "ProposalCreated", E.c.proposal_id == bindparam("pid"))
            .values(status=bindparam("settled"), outcome=bindparam("outcome")),
            settled,
        )

    def _rebuild(
        self,
        session: Session,
        owners: Iterable[str | None],
        jobs: Iterable[int | None],
        sales: Iterable[int | None],
    ) -> None:
        """Rebuild the devices, jobs and sales touched (inside the caller's transaction)."""
        if self.compute_market:
            rebuild_devices(session, self.compute_market, [o for o in owners if o])
            rebuild_jobs(session, self.compute_market, [int(j) for j in jobs if j is not None])
        if self.weight_sale:
            rebuild_sales(session, self.weight_sale, [int(s) for s in sales if s is not None])

    def _record_head(self, head: int) -> None:
        with Session(self.engine) as session, session.begin():
            state = session.get(IndexState, self.chain_id)
            assert state is not None
            state.head_block = head


def _window(first: int, last: int, addresses: Iterable[str]) -> dict[str, Any]:
    """The eth_getLogs filter of ``first``..``last`` and ``addresses``."""
    return {"fromBlock": hex(first), "toBlock": hex(last), "address": list(addresses)}


def _header_call(number: int) -> Call:
    return Call("eth_getBlockByNumber", [hex(number), False], "block headers", _optional_header)


def _optional_header(result: Any) -> dict[str, Any] | None:
    if result is not None and not isinstance(result, dict):
        raise TypeError("not a block header")
    return dict(result) if result else None


def _log_list(result: Any) -> list[dict[str, Any]]:
    if not isinstance(result, list):
        raise TypeError("not a list of logs")
    return [dict(log) for log in result]


def _bloom(header: dict[str, Any]) -> int | None:
    """A header's logs bloom as one big-endian number (None: the node sent none)."""
    value = header.get("logsBloom")
    try:
        return int(value, 16) if isinstance(value, str) else None
    except ValueError:
        return None


def _descends(headers: dict[int, dict[str, Any]], first: int, last: int, parent: str) -> bool:
    """Whether the headers of ``first``..``last``, where all were fetched, are one chain whose
    first block's parent is ``parent`` (True where some were not fetched: the logs of such a
    range are read after its headers, and its last block is checked at the next step)."""
    if any(n not in headers for n in range(first, last + 1)):
        return True
    for n in range(first, last + 1):
        if _hex(headers[n]["parentHash"]) != parent:
            return False
        parent = _hex(headers[n]["hash"])
    return True


def _quantity(value: Any) -> int:
    try:
        return int(str(value), 16)
    except ValueError:
        raise ChainError(f"a block number {str(value)[:40]!r} is not a hex quantity") from None


def _hex(value: Any) -> str:
    return HexBytes(value).to_0x_hex()
