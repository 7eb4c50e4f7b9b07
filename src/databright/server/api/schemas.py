"""What the API answers. Amounts, ids and block numbers that can exceed 2**53 are decimal
strings, so that JavaScript clients never round them."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

__all__ = [
    "AccountEvent",
    "Claimable",
    "CommentIn",
    "CommentOut",
    "DatasetOut",
    "ForumInfo",
    "IndexStatus",
    "Page",
    "Problem",
    "ProposalLive",
    "ProposalOut",
    "Shareholder",
    "Status",
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
