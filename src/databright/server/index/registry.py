"""What the indexed events leave: each dataset's proposal counts and holdings
(:class:`IndexedDataset`, :class:`IndexedHolding`), the model registry (one
:class:`IndexedModel` row per model), and the compute market's devices and jobs and the weight
sales (:class:`IndexedDevice`, :class:`IndexedJob`, :class:`IndexedSale`).

A row is rebuilt from all of its events, in chain order, whenever a batch brings new
ones or a reorg rolls some back. Rebuilding (rather than adding the batch's events to the row)
is what keeps the row right when a range is replayed, since a replayed event is not inserted
twice but would be counted twice. The price of that is reading a touched row's events again:
settlements are batched by the serving node, so a model has few; a job's units are counted in
SQL, not read; a device's paid units are read, one fee each. Holdings are the exception: a
holder's transfers are found by sender too, which only their JSON says, so a batch's new
transfers are added (the indexer leaves out those a replay finds indexed already) and only a
reorg recomputes a dataset's holdings from all its transfers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from databright.chain.clients import ComputeMarketConstants, ProposalStatus, SaleStatus
from databright.server.index.schema import (
    IndexedBlock,
    IndexedDataset,
    IndexedDevice,
    IndexedEvent,
    IndexedHolding,
    IndexedJob,
    IndexedModel,
    IndexedSale,
    IndexedUnitPayment,
)

__all__ = [
    "DATASET_EVENTS",
    "DEVICE_EVENTS",
    "JOB_EVENTS",
    "MIN_STAKE",
    "MODEL_EVENTS",
    "SALE_EVENTS",
    "ShareTransfer",
    "VersionState",
    "add_transfers",
    "fold_versions",
    "rebuild_datasets",
    "rebuild_devices",
    "rebuild_holdings",
    "rebuild_jobs",
    "rebuild_models",
    "rebuild_sales",
]

#: The data market's events that change a dataset's counts.
DATASET_EVENTS: Final = frozenset({"ProposalCreated", "ProposalFinalized"})


def rebuild_datasets(session: Session, dataset_ids: Iterable[int]) -> None:
    """Recount the proposals of these datasets from their indexed events, inside the caller's
    transaction (a dataset with none left gets zeros: the list shows every created one)."""
    E, D = IndexedEvent, IndexedDataset
    ids = sorted(set(dataset_ids))
    for i in range(0, len(ids), 500):  # well under any backend's bound on parameters
        chunk = ids[i : i + 500]
        made = dict(
            session.execute(
                select(E.dataset_id, func.count())
                .where(E.name == "ProposalCreated", E.dataset_id.in_(chunk))
                .group_by(E.dataset_id)
            ).all()
        )
        accepted = dict(
            session.execute(
                select(E.dataset_id, func.count())
                .where(
                    E.name == "ProposalFinalized",
                    E.dataset_id.in_(chunk),
                    E.status == int(ProposalStatus.ACCEPTED),
                )
                .group_by(E.dataset_id)
            ).all()
        )
        session.execute(delete(D).where(D.dataset_id.in_(chunk)))
        session.add_all(
            D(dataset_id=d, proposals=made.get(d, 0), accepted=accepted.get(d, 0)) for d in chunk
        )
    session.flush()


#: A share transfer: (dataset, sender, receiver, value).
ShareTransfer = tuple[int, str, str, int]


def add_transfers(session: Session, transfers: Iterable[ShareTransfer]) -> None:
    """Add newly indexed share transfers to the holdings they move, inside the caller's
    transaction. Added, not rebuilt (a dataset's holders are found by sender too, which only
    the JSON arguments say): the caller passes each transfer once, replays excluded."""
    H = IndexedHolding
    received: dict[tuple[int, str], int] = {}
    sent: dict[tuple[int, str], int] = {}
    for dataset, sender, receiver, value in transfers:
        sent[dataset, sender] = sent.get((dataset, sender), 0) + value
        received[dataset, receiver] = received.get((dataset, receiver), 0) + value
    keys = sorted(received.keys() | sent.keys())
    for dataset in sorted({d for d, _ in keys}):
        holders = [h for d, h in keys if d == dataset]
        for i in range(0, len(holders), 500):
            chunk = holders[i : i + 500]
            rows = {
                r.holder: r
                for r in session.scalars(
                    select(H).where(H.dataset_id == dataset, H.holder.in_(chunk))
                )
            }
            for holder in chunk:
                row = rows.get(holder)
                if row is None:
                    row = H(dataset_id=dataset, holder=holder, received=0, sent=0)
                    session.add(row)
                row.received += received.get((dataset, holder), 0)
                row.sent += sent.get((dataset, holder), 0)
    session.flush()


def rebuild_holdings(session: Session, dataset_ids: Iterable[int]) -> None:
    """Recompute these datasets' holdings from all their indexed transfers (after a reorg took
    some away), inside the caller's transaction."""
    E = IndexedEvent
    for dataset in sorted(set(dataset_ids)):
        session.execute(delete(IndexedHolding).where(IndexedHolding.dataset_id == dataset))
        moves = session.execute(
            select(
                E.args["sender"].as_string(),
                E.args["receiver"].as_string(),
                E.args["value"].as_string(),
            ).where(E.name == "Transfer", E.dataset_id == dataset)
        )
        add_transfers(session, ((dataset, s, r, int(v)) for s, r, v in moves))


#: The model market's events that change a model's row (a user's escrow events do not).
MODEL_EVENTS: Final = frozenset(
    {
        "ModelRegistered",
        "VersionPublished",
        "PriceSet",
        "NodeSet",
        "BenchmarkCommitted",
        "BenchmarkRevealed",
        "BenchmarkRequested",
        "BenchmarkFinalized",
        "BestCheckpoint",
        "Settled",
    }
)
ZERO32: Final = "0x" + "00" * 32


@dataclass
class VersionState:
    """One version of a model and its benchmark, as its events tell it."""

    version: int
    checkpoint_digest: str
    weights_root: str
    card_digest: str
    published_block: int
    commit_deadline: int
    reveal_deadline: int
    commits: list[dict[str, Any]] = field(default_factory=list)
    reveals: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    score_bps: int | None = None  # the finalized median
    best: bool = False  # became its dataset's best checkpoint


def fold_versions(events: Iterable[IndexedEvent]) -> dict[int, VersionState]:
    """A model's versions and benchmarks from its events (in chain order)."""
    versions: dict[int, VersionState] = {}
    for e in events:
        a = e.args
        if e.name == "VersionPublished":
            n = int(a["version"])
            versions[n] = VersionState(
                n,
                str(a["checkpoint_digest"]),
                str(a["weights_root"]),
                str(a["card_digest"]),
                e.block_number,
                int(a["commit_deadline"]),
                int(a["reveal_deadline"]),
            )
            continue
        v = versions.get(int(a.get("version", 0)))
        if v is None:
            continue
        if e.name == "BenchmarkCommitted":
            v.commits.append({"evaluator": str(a["evaluator"]), "block": e.block_number})
        elif e.name == "BenchmarkRevealed":
            v.reveals.append(
                {
                    "evaluator": str(a["evaluator"]),
                    "score_bps": int(a["score_bps"]),
                    "report_digest": str(a["report_digest"]),
                    "block": e.block_number,
                }
            )
        elif e.name == "BenchmarkRequested":
            v.requests += 1
            v.commit_deadline = int(a["commit_deadline"])
            v.reveal_deadline = int(a["reveal_deadline"])
        elif e.name == "BenchmarkFinalized":
            v.score_bps = int(a["score_bps"])
        elif e.name == "BestCheckpoint":
            v.best = True
    return versions


def _model_row(events: list[IndexedEvent], registered_at: int) -> IndexedModel | None:
    registered = next((e for e in events if e.name == "ModelRegistered"), None)
    if registered is None:  # rolled back with its registration
        return None
    r = registered.args
    row = IndexedModel(
        model_id=int(r["model_id"]),
        dataset_id=int(r["dataset_id"]),
        owner=str(r["owner"]),
        spec_digest=str(r["spec_digest"]),
        price=int(r["price"]),
        owner_bps=int(r["owner_bps"]),
        data_bps=int(r["data_bps"]),
        node_bps=int(r["node_bps"]),
        node=str(r["node"]),
        registered_block=registered.block_number,
        registered_at=registered_at,
        settlements=0,
        settled_wei=0,
        to_dataset_wei=0,
    )
    for e in events:
        if e.name == "PriceSet":
            row.price = int(e.args["price"])
        elif e.name == "NodeSet":
            row.node = str(e.args["node"])
        elif e.name == "Settled":
            row.settlements += 1
            row.settled_wei += int(e.args["amount"])
            row.to_dataset_wei += int(e.args["data_amount"])
    versions = fold_versions(events)
    # Publishing makes the new version the served one; versions are numbered in order.
    current = versions[max(versions)] if versions else None
    row.versions = current.version if current else 0
    row.current_version = row.versions
    row.checkpoint_digest = current.checkpoint_digest if current else ZERO32
    row.card_digest = current.card_digest if current else ZERO32
    row.weights_root = current.weights_root if current else ZERO32
    row.benchmarked = current is not None and current.score_bps is not None
    row.score_bps = (current.score_bps or 0) if current else 0
    return row


def rebuild_models(session: Session, model_ids: Iterable[int]) -> None:
    """Rebuild the rows of these models from their indexed events (dropping a model whose
    registration is no longer indexed), inside the caller's transaction."""
    E = IndexedEvent
    for model_id in sorted(set(model_ids)):
        events = list(
            session.scalars(
                select(E)
                .where(E.model_id == model_id, E.name.in_(MODEL_EVENTS))
                .order_by(E.block_number, E.log_index)
            )
        )
        session.execute(delete(IndexedModel).where(IndexedModel.model_id == model_id))
        first = next((e for e in events if e.name == "ModelRegistered"), None)
        block = session.get(IndexedBlock, first.block_number) if first is not None else None
        row = _model_row(events, block.timestamp if block is not None else 0)
        if row is not None:
            session.add(row)
    session.flush()


# --- the compute market and the weight sale ---------------------------------------------------

#: ComputeMarket events about a device; the account of each is the device's owner (the
#: slashed worker for ``Slashed``).
DEVICE_EVENTS: Final = frozenset(
    {"DeviceRegistered", "StakeAdded", "UnstakeRequested", "StakeWithdrawn", "Slashed"}
)
#: ComputeMarket events about a job (each carries ``job_id``).
JOB_EVENTS: Final = frozenset({"JobCreated", "UnitPaid", "Slashed", "JobClosed"})
#: WeightSale events about one sale (each carries ``sale_id``).
SALE_EVENTS: Final = frozenset(
    {"Bought", "Delivered", "Accepted", "KeyRevealed", "Complained", "Refunded", "Settled"}
)
#: ComputeMarket's MIN_STAKE: a device staking less (slashed) is not paid.
MIN_STAKE: Final = ComputeMarketConstants.MIN_STAKE


def _ordered(session: Session, *where: Any) -> list[IndexedEvent]:
    E = IndexedEvent
    return list(session.scalars(select(E).where(*where).order_by(E.block_number, E.log_index)))


def _timestamp(session: Session, block_number: int) -> int:
    block = session.get(IndexedBlock, block_number)
    return block.timestamp if block is not None else 0


def _hash_or_none(value: Any) -> str | None:
    text = str(value)
    return None if text == ZERO32 else text


def rebuild_devices(session: Session, compute_market: str, owners: Iterable[str]) -> None:
    """Rebuild the device rows of these accounts from the compute market's indexed events and
    unit payments (dropping a device whose registration is no longer indexed), inside the
    caller's transaction."""
    E, P = IndexedEvent, IndexedUnitPayment
    for owner in sorted(set(owners)):
        events = _ordered(
            session, E.account == owner, E.contract == compute_market, E.name.in_(DEVICE_EVENTS)
        )
        session.execute(delete(IndexedDevice).where(IndexedDevice.owner == owner))
        at = max((i for i, e in enumerate(events) if e.name == "DeviceRegistered"), default=None)
        if at is None:
            continue
        registered = events[at]
        r = registered.args
        stake, unstake_at, withdrawn = int(r["stake"]), 0, False
        # Only the latest registration's events tell the device's state now; a withdrawal
        # deleted the earlier one on-chain.
        for e in events[at + 1 :]:
            if e.name == "StakeAdded":
                stake, unstake_at = int(e.args["stake"]), 0
            elif e.name == "UnstakeRequested":
                unstake_at = int(e.args["unstake_at"])
            elif e.name == "Slashed":
                stake = 0  # a slash burns the whole stake
            elif e.name == "StakeWithdrawn":
                stake, withdrawn = 0, True
        slashes = [int(e.args["amount"]) for e in events if e.name == "Slashed"]
        # Python sums the fees: SQLite's SUM of the padded decimal strings is not exact.
        fees = [int(f) for f in session.scalars(select(P.fee).where(P.worker == owner))]
        status = (
            "withdrawn"
            if withdrawn
            else "slashed"
            if stake < MIN_STAKE
            else "unstaking"
            if unstake_at
            else "active"
        )
        session.add(
            IndexedDevice(
                owner=owner,
                numeric_class=str(r["numeric_class"]),
                capabilities=int(r["capabilities"]),
                min_fee=int(r["min_fee"]),
                stake=stake,
                unstake_at=unstake_at,
                status=status,
                registered_event=registered.id,
                registered_block=registered.block_number,
                registered_at=_timestamp(session, registered.block_number),
                units_paid=len(fees),
                earned_wei=sum(fees),
                slashings=len(slashes),
                slashed_wei=sum(slashes),
            )
        )
    session.flush()


def rebuild_jobs(session: Session, compute_market: str, job_ids: Iterable[int]) -> None:
    """Rebuild the rows of these jobs from their indexed events, inside the caller's
    transaction. A job's units are counted in SQL and what it paid is read from its last
    ``UnitPaid`` (which carries the escrow left), so a job with many units costs a few indexed
    lookups, not a read of every unit."""
    E = IndexedEvent
    for job_id in sorted(set(job_ids)):
        session.execute(delete(IndexedJob).where(IndexedJob.job_id == job_id))
        of_job = (E.job_id == job_id, E.contract == compute_market)
        created = session.scalar(select(E).where(*of_job, E.name == "JobCreated"))
        if created is None:  # rolled back with its creation
            continue
        a = created.args
        last_unit = session.scalar(
            select(E)
            .where(*of_job, E.name == "UnitPaid")
            .order_by(E.block_number.desc(), E.log_index.desc())
            .limit(1)
        )

        def count(name: str, of_job: tuple[Any, ...] = of_job) -> int:
            return int(session.scalar(select(func.count()).where(*of_job, E.name == name)) or 0)

        closed = session.scalar(select(E).where(*of_job, E.name == "JobClosed"))
        max_amount = int(a["max_amount"])
        remaining = int(last_unit.args["remaining"]) if last_unit is not None else max_amount
        session.add(
            IndexedJob(
                job_id=job_id,
                payer=str(a["payer"]),
                coordinator=str(a["coordinator"]),
                max_amount=max_amount,
                expiry=int(a["expiry"]),
                spec_digest=str(a["spec_digest"]),
                created_block=created.block_number,
                created_at=_timestamp(session, created.block_number),
                units_paid=count("UnitPaid"),
                paid_wei=max_amount - remaining,
                remaining=remaining,
                slashings=count("Slashed"),
                closed=closed is not None,
                closed_by=None if closed is None else str(closed.args["closed_by"]),
                closed_block=None if closed is None else closed.block_number,
                refund=None if closed is None else int(closed.args["refund"]),
            )
        )
    session.flush()


def rebuild_sales(session: Session, weight_sale: str, sale_ids: Iterable[int]) -> None:
    """Rebuild the rows of these weight sales from their indexed events (dropping a sale whose
    purchase is no longer indexed), inside the caller's transaction."""
    E = IndexedEvent
    for sale_id in sorted(set(sale_ids)):
        events = _ordered(
            session, E.sale_id == sale_id, E.contract == weight_sale, E.name.in_(SALE_EVENTS)
        )
        session.execute(delete(IndexedSale).where(IndexedSale.sale_id == sale_id))
        bought = next((e for e in events if e.name == "Bought"), None)
        if bought is None:
            continue
        b = bought.args
        row = IndexedSale(
            sale_id=sale_id,
            buyer=str(b["buyer"]),
            seller=str(b["seller"]),
            model_id=int(b["model_id"]),
            version=int(b["version"]),
            price=int(b["price"]),
            status=int(SaleStatus.PAID),
            deadline=int(b["deadline"]),
            bought_block=bought.block_number,
            bought_at=_timestamp(session, bought.block_number),
        )
        for e in events:
            a = e.args
            if e.name == "Delivered":
                row.status, row.deadline = int(SaleStatus.DELIVERED), 0
                row.cipher_root = _hash_or_none(a["cipher_root"])
                row.key_commitment = _hash_or_none(a["key_commitment"])
            elif e.name == "Accepted":
                row.status, row.deadline = int(SaleStatus.ACCEPTED), int(a["deadline"])
            elif e.name == "KeyRevealed":
                row.status, row.deadline = int(SaleStatus.REVEALED), int(a["deadline"])
                row.key = str(a["key"])
            elif e.name == "Complained":
                row.complaint_index = int(a["index"])
            elif e.name in ("Refunded", "Settled"):
                row.status = int(
                    SaleStatus.REFUNDED if e.name == "Refunded" else SaleStatus.SETTLED
                )
                row.deadline, row.closed_block = 0, e.block_number
                if e.name == "Refunded":
                    row.refund_reason = int(a["reason"])
        session.add(row)
    session.flush()
