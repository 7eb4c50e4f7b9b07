"""The index's tables: blocks (with their hashes, for reorgs), events, where indexing stands,
each dataset's proposal counts and holdings (:class:`IndexedDataset`,
:class:`IndexedHolding`), the model registry as the model market's events leave it (:class:`IndexedModel`), and the
compute market's devices, jobs and paid units and the weight sales as theirs leave them
(:class:`IndexedDevice`, :class:`IndexedJob`, :class:`IndexedUnitPayment`,
:class:`IndexedSale`).

Every uint256 the chain emits is kept exactly: the typed columns are ``NUMERIC(78, 0)`` (SQLite
stores them as text through :class:`Uint256`, since its NUMERIC is a float past 2**63), and the
full arguments are JSON with every integer written as a decimal string.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "Comment",
    "IndexState",
    "IndexedBlock",
    "IndexedDataset",
    "IndexedDevice",
    "IndexedEvent",
    "IndexedHolding",
    "IndexedJob",
    "IndexedModel",
    "IndexedSale",
    "IndexedUnitPayment",
    "Uint256",
]

# Constraint names fixed by convention, so migrations name them alike on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Uint256(TypeDecorator[int]):
    """An exact unsigned 256-bit integer: NUMERIC(78, 0) where the database has it; on SQLite a
    zero-padded decimal string, which sorts and compares like the number."""

    impl = Numeric(78, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(78))
        return dialect.type_descriptor(Numeric(78, 0))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return f"{int(value):078d}"
        return Decimal(int(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class IndexedBlock(Base):
    """A block the index holds events of (or the last block of a batch): its hash is how a
    reorg is noticed."""

    __tablename__ = "indexed_blocks"

    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(66))
    parent_hash: Mapped[str] = mapped_column(String(66))
    timestamp: Mapped[int] = mapped_column(BigInteger)


class IndexedEvent(Base):
    """One decoded log. ``(tx_hash, log_index)`` is unique: replaying a range inserts nothing."""

    __tablename__ = "indexed_events"
    __table_args__ = (
        UniqueConstraint("tx_hash", "log_index", name="uq_indexed_events_tx_log"),
        # Ending in the id: pages in cursor order are index ranges (PostgreSQL does not append
        # the row id to an index as SQLite does).
        Index("ix_indexed_events_name_dataset_id", "name", "dataset_id", "id"),
        Index("ix_indexed_events_proposal_name", "proposal_id", "name"),
        Index("ix_indexed_events_account_id", "account", "id"),
        Index("ix_indexed_events_name_dataset_status_id", "name", "dataset_id", "status", "id"),
        Index("ix_indexed_events_model_name", "model_id", "name"),
        Index("ix_indexed_events_job_name", "job_id", "name"),
        Index("ix_indexed_events_sale_name", "sale_id", "name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    block_number: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("indexed_blocks.number", ondelete="CASCADE"), index=True
    )
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    contract: Mapped[str] = mapped_column(String(42))  # checksummed
    name: Mapped[str] = mapped_column(String(64))
    dataset_id: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    proposal_id: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    account: Mapped[str | None] = mapped_column(String(42), nullable=True)
    amount: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    # A proposal's ProposalStatus, for lists and counts in SQL: on its ProposalFinalized row,
    # and on its ProposalCreated row, kept by the indexer (PENDING until the settlement is
    # indexed, and again if a reorg takes it away), so a list of pending proposals is an index
    # range (an equality, which PostgreSQL can read in id order; IS NULL it cannot). NULL on
    # every other event.
    status: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    # The model a model-market event is about (its versions, benchmarks, settlements).
    model_id: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    # The compute job (ComputeMarket) or the weight sale (WeightSale) an event is about.
    job_id: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    sale_id: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    # A settled proposal's outcome (shares, yes_votes, no_votes, from its ProposalFinalized
    # row) on its ProposalCreated row, kept with ``status``: a page of proposals in one query.
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Comment(Base):
    """A comment on a proposal, signed by its author (EIP-712), so the server can neither forge
    nor alter one; ``weight`` is the author's shares at the proposal's snapshot."""

    __tablename__ = "comments"
    __table_args__ = (
        UniqueConstraint("signature", name="uq_comments_signature"),
        Index("ix_comments_proposal", "proposal_id", "id"),
        Index("ix_comments_author_created", "author", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    proposal_id: Mapped[int] = mapped_column(Uint256)
    parent_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("comments.id", name="fk_comments_parent_id_comments"), nullable=True
    )
    author: Mapped[str] = mapped_column(String(42))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str] = mapped_column(String(132))
    weight: Mapped[int] = mapped_column(Uint256)


class IndexState(Base):
    """Where indexing stands, one row per chain: the last block fully indexed."""

    __tablename__ = "index_state"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    market: Mapped[str] = mapped_column(String(42))
    start_block: Mapped[int] = mapped_column(BigInteger)
    indexed_block: Mapped[int] = mapped_column(BigInteger)
    head_block: Mapped[int] = mapped_column(BigInteger)
    # The model market indexed beside the data market (None: none recorded yet).
    model_market: Mapped[str | None] = mapped_column(String(42), nullable=True)
    # The compute market and the weight sale indexed beside them (None: none recorded yet).
    compute_market: Mapped[str | None] = mapped_column(String(42), nullable=True)
    weight_sale: Mapped[str | None] = mapped_column(String(42), nullable=True)
    # The paid-access register (DataAccess) indexed beside them (None: none recorded yet).
    data_access: Mapped[str | None] = mapped_column(String(42), nullable=True)


class IndexedDataset(Base):
    """A dataset's proposal counts as its indexed events leave them: rebuilt, like the model
    registry, for every dataset a batch or a reorg touched, so the datasets list reads a row
    per dataset instead of counting every proposal of every dataset on each request."""

    __tablename__ = "indexed_datasets"

    dataset_id: Mapped[int] = mapped_column(Uint256, primary_key=True, autoincrement=False)
    # ProposalCreated events (the initial data included).
    proposals: Mapped[int] = mapped_column(BigInteger)
    # ProposalFinalized events that accepted (the registry's entries).
    accepted: Mapped[int] = mapped_column(BigInteger)


class IndexedHolding(Base):
    """What a holder received and sent of a dataset's shares, as the share token's Transfer
    events leave it: added to as batches bring transfers, recomputed for a dataset when a reorg
    takes some away, so the shareholders list reads a row per holder instead of every transfer
    the dataset ever had. Two sums, not a balance: each is a uint256 (an index that starts
    after a holder received shares can see it send more than it got)."""

    __tablename__ = "indexed_holdings"

    dataset_id: Mapped[int] = mapped_column(Uint256, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(42), primary_key=True)
    received: Mapped[int] = mapped_column(Uint256)
    sent: Mapped[int] = mapped_column(Uint256)


class IndexedModel(Base):
    """A registered model as its indexed events leave it: rebuilt from those events whenever a
    batch brings new ones or a reorg takes some away, so lists sort and page in SQL."""

    __tablename__ = "indexed_models"
    __table_args__ = (
        Index("ix_indexed_models_dataset_score", "dataset_id", "score_bps", "price", "model_id"),
        Index("ix_indexed_models_score", "score_bps", "price", "model_id"),
        Index("ix_indexed_models_price", "price", "score_bps", "model_id"),
    )

    model_id: Mapped[int] = mapped_column(Uint256, primary_key=True, autoincrement=False)
    dataset_id: Mapped[int] = mapped_column(Uint256)
    owner: Mapped[str] = mapped_column(String(42))
    spec_digest: Mapped[str] = mapped_column(String(66))
    price: Mapped[int] = mapped_column(Uint256)
    owner_bps: Mapped[int] = mapped_column(Integer)
    data_bps: Mapped[int] = mapped_column(Integer)
    node_bps: Mapped[int] = mapped_column(Integer)
    node: Mapped[str] = mapped_column(String(42))
    current_version: Mapped[int] = mapped_column(BigInteger)
    versions: Mapped[int] = mapped_column(BigInteger)
    checkpoint_digest: Mapped[str] = mapped_column(String(66))
    card_digest: Mapped[str] = mapped_column(String(66))
    weights_root: Mapped[str] = mapped_column(String(66))
    # The current version's benchmark (0 and False until it is finalized).
    score_bps: Mapped[int] = mapped_column(Integer)
    benchmarked: Mapped[bool] = mapped_column(Boolean)
    registered_block: Mapped[int] = mapped_column(BigInteger)
    registered_at: Mapped[int] = mapped_column(BigInteger)
    settlements: Mapped[int] = mapped_column(BigInteger)
    settled_wei: Mapped[int] = mapped_column(Uint256)
    to_dataset_wei: Mapped[int] = mapped_column(Uint256)


class IndexedDevice(Base):
    """A worker's device as the compute market's events leave it, one per account: rebuilt
    from the account's device events and paid units whenever a batch or a reorg touches them.
    A device that withdrew its stake stays (``status`` "withdrawn") with its history; a new
    registration of the account starts the device again (``registered_event`` moves)."""

    __tablename__ = "compute_devices"
    __table_args__ = (Index("ix_compute_devices_registered", "registered_event"),)

    owner: Mapped[str] = mapped_column(String(42), primary_key=True)
    numeric_class: Mapped[str] = mapped_column(String(66))
    capabilities: Mapped[int] = mapped_column(Uint256)
    min_fee: Mapped[int] = mapped_column(Uint256)
    stake: Mapped[int] = mapped_column(Uint256)
    unstake_at: Mapped[int] = mapped_column(Uint256)  # 0: no unstake pending
    # active, unstaking, slashed (stake below the minimum) or withdrawn.
    status: Mapped[str] = mapped_column(String(16))
    # The id of its (latest) DeviceRegistered event: the stable order of device lists.
    registered_event: Mapped[int] = mapped_column(BigInteger)
    registered_block: Mapped[int] = mapped_column(BigInteger)
    registered_at: Mapped[int] = mapped_column(BigInteger)
    # Over the account's whole life in the market, every registration included.
    units_paid: Mapped[int] = mapped_column(BigInteger)
    earned_wei: Mapped[int] = mapped_column(Uint256)
    slashings: Mapped[int] = mapped_column(BigInteger)
    slashed_wei: Mapped[int] = mapped_column(Uint256)


class IndexedJob(Base):
    """A compute job and its escrow as its events leave it (rebuilt whenever a batch or a
    reorg touches it). ``remaining`` is the escrow after the last paid unit (at close: what
    the payer got back); whether the job has expired depends on the clock, so reads decide."""

    __tablename__ = "compute_jobs"
    __table_args__ = (
        Index("ix_compute_jobs_payer", "payer", "job_id"),
        Index("ix_compute_jobs_closed", "closed", "expiry", "job_id"),
    )

    job_id: Mapped[int] = mapped_column(Uint256, primary_key=True, autoincrement=False)
    payer: Mapped[str] = mapped_column(String(42))
    coordinator: Mapped[str] = mapped_column(String(42))
    max_amount: Mapped[int] = mapped_column(Uint256)
    # Set by the payer: any uint256, so not a BigInteger.
    expiry: Mapped[int] = mapped_column(Uint256)
    spec_digest: Mapped[str] = mapped_column(String(66))
    created_block: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    units_paid: Mapped[int] = mapped_column(BigInteger)
    paid_wei: Mapped[int] = mapped_column(Uint256)
    remaining: Mapped[int] = mapped_column(Uint256)
    slashings: Mapped[int] = mapped_column(BigInteger)
    closed: Mapped[bool] = mapped_column(Boolean)
    closed_by: Mapped[str | None] = mapped_column(String(42), nullable=True)
    closed_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    refund: Mapped[int | None] = mapped_column(Uint256, nullable=True)


class IndexedUnitPayment(Base):
    """One worker paid for one verified unit (a ``UnitPaid`` event pays up to eight), so a
    device's units and earnings are found by worker. Unique per (tx, log, worker): replaying a
    range inserts nothing twice; a reorg deletes the rows above the fork with their blocks."""

    __tablename__ = "compute_unit_payments"
    __table_args__ = (
        UniqueConstraint("tx_hash", "log_index", "worker", name="uq_compute_unit_payments_key"),
        Index("ix_compute_unit_payments_worker", "worker", "id"),
        Index("ix_compute_unit_payments_job", "job_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    block_number: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("indexed_blocks.number", ondelete="CASCADE"), index=True
    )
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[int] = mapped_column(Uint256)
    unit_id: Mapped[str] = mapped_column(String(66))
    worker: Mapped[str] = mapped_column(String(42))
    fee: Mapped[int] = mapped_column(Uint256)


class IndexedSale(Base):
    """A weight sale (one purchase of a listed model version) as its events leave it, rebuilt
    whenever a batch or a reorg touches it."""

    __tablename__ = "weight_sales"
    __table_args__ = (
        Index("ix_weight_sales_buyer", "buyer", "sale_id"),
        Index("ix_weight_sales_seller", "seller", "sale_id"),
        Index("ix_weight_sales_model", "model_id", "sale_id"),
        Index("ix_weight_sales_status", "status", "sale_id"),
    )

    sale_id: Mapped[int] = mapped_column(Uint256, primary_key=True, autoincrement=False)
    buyer: Mapped[str] = mapped_column(String(42))
    seller: Mapped[str] = mapped_column(String(42))
    model_id: Mapped[int] = mapped_column(Uint256)
    version: Mapped[int] = mapped_column(Uint256)
    price: Mapped[int] = mapped_column(Uint256)
    # WeightSale's STATUS_* (1 paid .. 6 refunded).
    status: Mapped[int] = mapped_column(SmallInteger)
    deadline: Mapped[int] = mapped_column(Uint256)  # the current phase's end (0 once closed)
    cipher_root: Mapped[str | None] = mapped_column(String(66), nullable=True)
    key_commitment: Mapped[str | None] = mapped_column(String(66), nullable=True)
    key: Mapped[str | None] = mapped_column(String(66), nullable=True)
    complaint_index: Mapped[int | None] = mapped_column(Uint256, nullable=True)
    refund_reason: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    bought_block: Mapped[int] = mapped_column(BigInteger)
    bought_at: Mapped[int] = mapped_column(BigInteger)
    closed_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
