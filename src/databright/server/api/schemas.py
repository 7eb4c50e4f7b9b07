"""What the API answers. Amounts, ids and block numbers that can exceed 2**53 are decimal
strings, so that JavaScript clients never round them."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

__all__ = [
    "AccountEvent",
    "BenchmarkCommitOut",
    "BenchmarkOut",
    "BenchmarkRevealOut",
    "BestCheckpointOut",
    "Claimable",
    "CommentIn",
    "CommentOut",
    "DatasetImpactOut",
    "DatasetOut",
    "ForumInfo",
    "ImpactModel",
    "IncomeOut",
    "IndexStatus",
    "ModelDetail",
    "ModelOut",
    "ModelTermsOut",
    "Page",
    "Problem",
    "ProposalLive",
    "ProposalOut",
    "SettlementSummary",
    "Shareholder",
    "SplitOut",
    "Status",
    "VersionOut",
]

T = TypeVar("T")


class Problem(BaseModel):
    """An error (RFC 9457): ``detail`` is one sentence saying what was wrong and what to do."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class IndexStatus(BaseModel):
    """How fresh an answer read from the index is."""

    chain_id: int
    market: str
    indexed_block: int
    head_block: int
    lag: int = Field(description="Blocks the chain is ahead of the index.")
    stale: bool = Field(
        description="True while the node does not answer: reads come from the index alone."
    )
    node_error: str | None = None


class Page(BaseModel, Generic[T]):
    """One page of a list read from the index; ``next_cursor`` fetches the next (None: last)."""

    source: Literal["index"] = "index"
    items: list[T]
    next_cursor: str | None
    index: IndexStatus


class Status(BaseModel):
    service: str
    version: str
    index: IndexStatus


class DatasetOut(BaseModel):
    id: str
    name: str
    initiator: str
    token: str
    created_block: int
    evaluators: list[str]
    proposals: int = Field(description="Proposals made, the initial data included.")
    accepted: int = Field(description="Registry entries: accepted proposals and the initial data.")
    voting_period_s: str
    commit_period_s: str
    reveal_period_s: str
    evaluation_fee_wei: str
    deposit_wei: str


class ProposalOut(BaseModel):
    id: str
    ref: str = Field(description="DATASET/N: the dataset and the proposal's number in it.")
    dataset_id: str
    contributor: str
    examples: str
    created_block: int
    status: str = Field(description="pending until finalized, then accepted or rejected.")
    shares: str | None = None
    yes_votes: str | None = None
    no_votes: str | None = None


class ProposalLive(BaseModel):
    """A proposal as the chain says it is at this moment."""

    source: Literal["chain"] = "chain"
    id: str
    ref: str
    dataset_id: str
    contributor: str
    data_cid: str
    manifest_cid: str | None
    examples: str
    status: str
    outcome: str
    deadline: int
    commit_end: int
    voting_opens: int
    yes_votes: str
    no_votes: str
    quality_weight_bps: int
    prospective_shares: str
    evaluation: dict[str, int] | None


class AccountEvent(BaseModel):
    name: str
    dataset_id: str | None
    proposal_id: str | None
    amount: str | None
    block_number: int
    tx_hash: str
    log_index: int
    contract: str
    args: dict[str, object]


class Shareholder(BaseModel):
    address: str
    shares: str


class Claimable(BaseModel):
    source: Literal["chain"] = "chain"
    account: str
    dataset_id: str
    claimable_wei: str


class CommentIn(BaseModel):
    """A comment as its author signed it (the EIP-712 document of ``GET /api/v1/forum``)."""

    author: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    body: str = Field(min_length=1, max_length=4000)
    parent: int | None = Field(default=None, ge=1, le=2**62, description="Comment replied to.")
    created_at: int = Field(ge=0, le=2**62, description="Unix time the author signed at.")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class CommentOut(BaseModel):
    id: int
    proposal_ref: str
    parent: int | None
    author: str
    body: str = Field(description="Text, not HTML: show it escaped.")
    created_at: int
    signature: str
    author_shares_at_snapshot: str


class ForumInfo(BaseModel):
    """What an author signs: the EIP-712 domain and types (message: proposal_id, parent (0 for
    a top-level comment), body, created_at)."""

    domain: dict[str, object]
    types: dict[str, list[dict[str, str]]]
    primary_type: str
    max_body_chars: int
    clock_skew_s: int
    rate_limit: str


# --- the model market ------------------------------------------------------------------------


class SplitOut(BaseModel):
    """How a model's prediction revenue is shared, in basis points (summing to 10,000)."""

    owner_bps: int
    data_bps: int
    node_bps: int


class ModelOut(BaseModel):
    """A registered model as the index has it; CIDs are those of its current version."""

    id: str
    dataset_id: str
    owner: str
    version: int = Field(description="The current (served) version.")
    versions: int = Field(description="Versions published so far.")
    score_bps: int = Field(description="The current version's benchmark score (0 before it).")
    benchmarked: bool = Field(description="Whether the current version's benchmark is final.")
    price_wei: str = Field(description="Price per prediction.")
    split: SplitOut
    node: str = Field(description="The serving node, which settles the receipts.")
    spec_cid: str
    checkpoint_cid: str
    card_cid: str
    weights_root: str | None = Field(description="Merkle root of the weights; None: not for sale.")
    registered_block: int
    registered_at: int = Field(description="Unix time of the registration's block.")
    settlements: int
    predictions_paid_wei: str = Field(description="Settled for its predictions, in all.")
    to_dataset_wei: str = Field(description="The dataset's shareholders' part of that.")


class BenchmarkCommitOut(BaseModel):
    evaluator: str
    block: int


class BenchmarkRevealOut(BaseModel):
    evaluator: str
    score_bps: int
    report_cid: str
    block: int


class BenchmarkOut(BaseModel):
    """A version's sealed benchmark: who committed, who revealed what, the final median."""

    commit_deadline: int
    reveal_deadline: int
    commits: list[BenchmarkCommitOut]
    reveals: list[BenchmarkRevealOut]
    reopened: int = Field(description="Times its owner reopened the phases (no reveal came).")
    finalized: bool
    score_bps: int | None = Field(description="The median of the reveals, once finalized.")
    best: bool = Field(description="Whether it became its dataset's best checkpoint.")


class VersionOut(BaseModel):
    version: int
    current: bool
    checkpoint_cid: str
    card_cid: str
    weights_root: str | None
    published_block: int
    benchmark: BenchmarkOut


class SettlementSummary(BaseModel):
    """Settlements of a model's receipts: one transaction each, for any number of predictions."""

    count: int
    users: int
    total_wei: str
    owner_wei: str
    dataset_wei: str
    node_wei: str


class ModelDetail(BaseModel):
    source: Literal["index"] = "index"
    model: ModelOut
    versions: list[VersionOut]
    settlements: SettlementSummary
    index: IndexStatus


class ModelTermsOut(BaseModel):
    """What a dataset asks of the models trained on it (its latest terms)."""

    training_fee_wei: str
    margin_bps: int
    base_price_wei: str
    price_slope_wei: str
    commit_period_s: str
    reveal_period_s: str


class BestCheckpointOut(BaseModel):
    model_id: str
    version: int
    score_bps: int


class ImpactModel(BaseModel):
    model_id: str
    owner: str
    score_bps: int
    benchmarked: bool
    price_wei: str
    settlements: int
    predictions_paid_wei: str
    to_dataset_wei: str


class DatasetImpactOut(BaseModel):
    """What the models trained on a dataset gave back to it."""

    source: Literal["index"] = "index"
    dataset_id: str
    terms: ModelTermsOut | None
    best: BestCheckpointOut | None
    training_fees: int = Field(description="Training fees paid (one per payer and spec).")
    training_revenue_wei: str
    prediction_revenue_wei: str = Field(description="The dataset's part of every settlement.")
    other_dividends_wei: str = Field(description="Dividends paid to it by anyone else.")
    predictions_paid_wei: str = Field(description="Settled for its models' predictions, in all.")
    models: list[ImpactModel] = Field(description="Its models, best score first, then cheapest.")
    index: IndexStatus


class IncomeOut(BaseModel):
    """An account's dividends from one dataset by where they came from: each payment shared
    pro rata to the account's shares when it was paid (as the share token credits it)."""

    dataset_id: str
    shares: str = Field(description="The account's shares now.")
    payments: int = Field(description="Dividend payments made while it held shares.")
    training_wei: str
    predictions_wei: str
    other_wei: str
    total_wei: str
