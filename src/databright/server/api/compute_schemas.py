"""What the compute market's and the weight sale's API answers. Amounts, ids and anything a
payer or a contract may set to any uint256 are decimal strings, so that JavaScript clients
never round them; block numbers and block timestamps are integers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from databright.server.api.schemas import IndexStatus

__all__ = [
    "CoordinatorOut",
    "DeviceDetail",
    "DeviceOut",
    "DeviceStatus",
    "DeviceUnitOut",
    "FederationDetail",
    "FederationOut",
    "FederationPayoutOut",
    "FederationStatus",
    "JobDetail",
    "JobLive",
    "JobOut",
    "JobStatus",
    "ListingOut",
    "SaleDetail",
    "SaleEventOut",
    "SaleOut",
    "SaleStatusName",
    "SlashingOut",
    "UnitOut",
]

#: active: staked and taking work; unstaking: leaving (its stake is locked until
#: ``unstake_at``); slashed: its stake was burned (not paid until it stakes again); withdrawn:
#: it took its stake back and the chain deleted it.
DeviceStatus = Literal["active", "unstaking", "slashed", "withdrawn"]
#: open: may still pay units; expired: past its expiry, not closed (its payer may reclaim);
#: closed: closed or reclaimed, the rest refunded.
JobStatus = Literal["open", "expired", "closed"]
#: open: escrowed, clients may be named or join, the payer may cancel; running: the coordinator
#: started training, the escrow leaves only by its payouts (or to the payer after the deadline);
#: settled: payouts posted; closed: cancelled before the start or reclaimed after the deadline.
FederationStatus = Literal["open", "running", "settled", "closed"]
#: WeightSale's sale statuses, by name.
SaleStatusName = Literal["paid", "delivered", "accepted", "revealed", "settled", "refunded"]


class DeviceOut(BaseModel):
    """A worker's device as the index has it (one per account)."""

    owner: str
    numeric_class: str = Field(description="keccak-256 of the numeric class name (0x hex).")
    capabilities: str
    min_fee_wei: str
    stake_wei: str
    status: DeviceStatus
    unstake_at: int | None = Field(description="When its stake may be withdrawn (None: staying).")
    registered_block: int
    registered_at: int
    units_paid: int = Field(description="Verified units it was paid for, over the account's life.")
    earned_wei: str
    slashings: int
    slashed_wei: str = Field(description="Stake burned by its slashes.")


class SlashingOut(BaseModel):
    """A slash with the evidence the chain records: the unit, the hash of its input, the
    agreed and the worker's output hashes, and the CID of the evidence bundle (both signed
    results and the recomputation), fetched at ``evidence_path`` and checked against them."""

    worker: str
    job_id: str
    unit_id: str = Field(description="The coordinator's unit number (decimal).")
    unit_key: str = Field(description="The unit id as the chain has it (bytes32, 0x hex).")
    input_hash: str
    honest_output: str
    bad_output: str
    evidence_cid: str
    evidence_path: str = Field(description="Where this server serves the evidence bundle.")
    amount_wei: str = Field(description="The stake burned.")
    block_number: int
    slashed_at: int
    tx_hash: str


class DeviceUnitOut(BaseModel):
    """One verified unit a device was paid for."""

    job_id: str
    unit_id: str
    unit_key: str
    fee_wei: str
    block_number: int
    tx_hash: str


class DeviceDetail(BaseModel):
    source: Literal["index"] = "index"
    device: DeviceOut
    slashings: list[SlashingOut]
    index: IndexStatus


class JobOut(BaseModel):
    """A compute job and its escrow as the index has it."""

    id: str
    payer: str
    coordinator: str
    status: JobStatus
    max_wei: str = Field(description="The escrow the payer funded.")
    paid_wei: str = Field(description="Paid to workers for verified units.")
    remaining_wei: str = Field(
        description="The escrow after the last paid unit (closed: what the payer got back)."
    )
    units_paid: int
    slashings: int
    expiry: str
    spec_cid: str
    created_block: int
    created_at: int
    closed_by: str | None = None
    closed_block: int | None = None
    refund_wei: str | None = None


class JobLive(BaseModel):
    """A job's escrow as the chain says it is at this moment."""

    source: Literal["chain"] = "chain"
    remaining_wei: str = Field(
        description="What the job may still pay now: 0 once closed or expired."
    )
    escrow_wei: str = Field(description="What its escrow holds (at close: the refund).")
    closed: bool


class JobDetail(BaseModel):
    """A job from the index, with its escrow read live from the chain (``chain`` None when
    the node did not answer: ``chain_error`` says why)."""

    source: Literal["index"] = "index"
    job: JobOut
    chain: JobLive | None
    chain_error: str | None = None
    index: IndexStatus


class UnitOut(BaseModel):
    """One verified unit of a job, paid once to each worker that produced its agreed result."""

    job_id: str
    unit_id: str
    unit_key: str
    workers: list[str]
    fee_each_wei: str
    paid_wei: str
    remaining_wei: str = Field(description="The escrow left after this unit.")
    block_number: int
    tx_hash: str


class CoordinatorOut(BaseModel):
    """A coordinator the admin allowed (on a verified attestation), or revoked since."""

    address: str
    measurement: str = Field(
        description="The digest of the attested measurement it was allowed on."
    )
    allowed: bool
    allowed_block: int
    revoked_block: int | None = None


class ListingOut(BaseModel):
    """The listing a sale bought under: the weights' layout, which hashes to the model
    version's registered weights root."""

    seller: str
    price_wei: str
    tree_root: str
    n_chunks: str
    byte_length: str
    listed_block: int


class SaleOut(BaseModel):
    """A weight sale (one purchase of a model version's weights) as the index has it."""

    id: str
    buyer: str
    seller: str
    model_id: str
    version: str
    price_wei: str
    status: SaleStatusName
    deadline: str = Field(description="The end of the current phase (0 once settled or refunded).")
    cipher_root: str | None = None
    key_commitment: str | None = None
    key: str | None = None
    complaint_index: str | None = Field(
        default=None, description="The chunk a buyer's upheld complaint proved wrong."
    )
    refund_reason: Literal["cancelled", "not_revealed", "complaint"] | None = None
    bought_block: int
    bought_at: int
    closed_block: int | None = None


class SaleEventOut(BaseModel):
    name: str
    block_number: int
    tx_hash: str
    log_index: int
    args: dict[str, Any]


class SaleDetail(BaseModel):
    source: Literal["index"] = "index"
    sale: SaleOut
    listing: ListingOut | None
    events: list[SaleEventOut]
    index: IndexStatus


class FederationPayoutOut(BaseModel):
    """What the coordinator posted for one client (0 too: the client was scored)."""

    client: str
    amount_wei: str


class FederationOut(BaseModel):
    """A federation (federated training paid by contribution) as its events tell it."""

    id: str
    payer: str
    coordinator: str
    status: FederationStatus
    amount_wei: str = Field(description="The escrow the payer funded.")
    deadline: str = Field(description="Unix time by which the payouts must be posted.")
    open_joining: bool
    spec_cid: str = Field(description="The CID of the training spec the payer named.")
    clients: list[str] = Field(description="Named at creation or joined, in that order.")
    created_block: int
    started_block: int | None = None
    paid_wei: str | None = Field(default=None, description="Paid to clients (once settled).")
    refund_wei: str | None = Field(default=None, description="Credited back to the payer.")
    scores_cid: str | None = Field(
        default=None, description="The CID of the per-round scores the payouts follow from."
    )
    scores_path: str | None = Field(default=None, description="Where this server serves them.")


class FederationDetail(BaseModel):
    """One federation with every payout its coordinator posted."""

    source: Literal["index"] = "index"
    federation: FederationOut
    payouts: list[FederationPayoutOut]
    index: IndexStatus
