"""The REST API, one router per resource. Lists read the index (``source: index``, with how
fresh it is); single items that must be exact now read the chain (``source: chain``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from databright.errors import NotFound
from databright.server.api.forum import (
    CLOCK_SKEW_S,
    MAX_BODY_CHARS,
    RATE_LIMIT,
    RATE_WINDOW_S,
    typed_comment,
)
from databright.server.api.page_cache import cached_response, page_response
from databright.server.api.problems import PROBLEM_TYPE
from databright.server.api.reads import (
    MAX_LIMIT,
    IndexReader,
    checksum,
    parse_cursor,
    proposal_id_of,
    ref_of,
)
from databright.server.api.schemas import (
    AccountEvent,
    Claimable,
    CommentIn,
    CommentOut,
    DatasetOut,
    ForumInfo,
    Page,
    Problem,
    ProposalLive,
    ProposalOut,
    Shareholder,
    Status,
)
from databright.server.index.schema import Comment

if TYPE_CHECKING:
    from databright.server.platform import Platform

__all__ = ["ALL", "INDEX_READERS"]

#: Index list pages read at once (each on a worker thread); see :func:`_page`.
INDEX_READERS = 1

# A uint256 id fits 78 digits; FastAPI checks the bounds before a handler runs.
DatasetId = Annotated[int, Path(ge=1, le=2**64 - 1, description="The dataset's id.")]
Cursor = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page."),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
StatusFilter = Annotated[
    Literal["pending", "accepted", "rejected"] | None, Query(description="Only these.")
]
Number = Annotated[int, Path(ge=0, le=2**64 - 1, description="N in DATASET/N.")]
AddressParam = Annotated[str, Path(min_length=42, max_length=42, pattern=r"^0x[0-9a-fA-F]{40}$")]
ContributorFilter = Annotated[
    str | None, Query(min_length=42, max_length=42, pattern=r"^0x[0-9a-fA-F]{40}$")
]


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def _reader(request: Request) -> IndexReader:
    # async: it only looks the reader up, and FastAPI runs a sync dependency in the threadpool
    # (a thread handoff per request for nothing).
    reader: IndexReader = request.app.state.platform.reader
    return reader


Reader = Annotated[IndexReader, Depends(_reader)]


async def _page(
    request: Request,
    reader: IndexReader,
    key: tuple[Any, ...],
    model: type[BaseModel],
    read: Callable[[IndexReader], tuple[Sequence[BaseModel], str | None]],
) -> Response:
    """A list page, read (and serialised) once per state of the index: ``key`` names the
    request (route and parameters), the index's version the content (see page_cache).

    Index reads run one at a time on a thread of their own (``INDEX_READERS``), not in the
    pool that chain reads share: they are short and hold the interpreter lock throughout, so
    running four at once only made each wait for the others' turns (the API benchmark's p99
    halved), while a slow node answering a chain read holds up none of them."""
    platform = _platform(request)
    # A page kept under the version this process's indexer last wrote is answered here, on
    # the event loop: no query, no thread. A version the index has moved past since is at
    # worst one indexer step old, and the freshness written with it says so.
    known = platform.known_status()
    if known is not None:
        version, status = known
        kept = cached_response(platform.page_cache, (*key, *version), status)
        if kept is not None:
            return kept

    def made() -> Response:
        with reader.snapshot() as view:
            state, version = view.version(platform.indexer.chain_id)
            return page_response(
                platform.page_cache, (*key, *version), model, lambda: read(view),
                platform.status(state),
            )  # fmt: skip

    limiter = getattr(request.app.state, "index_readers", None)
    if limiter is None:
        limiter = request.app.state.index_readers = anyio.CapacityLimiter(INDEX_READERS)
    return await anyio.to_thread.run_sync(made, limiter=limiter)


# Every error is a problem document (application/problem+json); these are the ones a read
# can meet.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": why, "content": {PROBLEM_TYPE: {}}}
    for code, why in (
        (400, "A value the API cannot use (a cursor it never handed out, a bad signature)."),
        (409, "The same signed submission again."),
        (411, "A body sent without a Content-Length."),
        (413, "The request body is too large."),
        (429, "Too many requests from one author; wait."),
        (404, "No such dataset, proposal or path."),
        (422, "A parameter breaks the documented rules."),
        (502, "The node answered with an error."),
        (503, "The node or the index is unavailable."),
    )
}

status_router = APIRouter(tags=["status"], responses=PROBLEMS)
datasets_router = APIRouter(prefix="/datasets", tags=["datasets"], responses=PROBLEMS)
proposals_router = APIRouter(prefix="/proposals", tags=["proposals"], responses=PROBLEMS)
accounts_router = APIRouter(prefix="/accounts", tags=["accounts"], responses=PROBLEMS)
forum_router = APIRouter(tags=["forum"], responses=PROBLEMS)


@status_router.get("/status")
def status(request: Request) -> Status:
    """The server's version and how far its index has caught up with the chain."""
    from databright import __version__

    return Status(
        service="databright platform",
        version=__version__,
        index=_platform(request).status(),
    )


@datasets_router.get("", response_model=Page[DatasetOut])
async def list_datasets(
    request: Request, reader: Reader, cursor: Cursor = None, limit: Limit = 50
) -> Response:
    """Every dataset of the market, oldest first."""
    after = parse_cursor(cursor)
    return await _page(
        request, reader, ("datasets", after, limit), DatasetOut,
        lambda view: view.datasets(after, limit),
    )  # fmt: skip


def _known(reader: IndexReader, dataset_id: int) -> None:
    if not reader.dataset_exists(dataset_id):
        raise NotFound(
            f"dataset {dataset_id} is not in the index; see /api/v1/datasets (a dataset "
            "created moments ago appears once the index catches up)"
        )


@datasets_router.get("/{dataset_id}/proposals", response_model=Page[ProposalOut])
async def dataset_proposals(
    request: Request,
    reader: Reader,
    dataset_id: DatasetId,
    status: StatusFilter = None,
    contributor: ContributorFilter = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """A dataset's proposals in arrival order (the initial data is proposal 0)."""
    after = parse_cursor(cursor)
    who = None if contributor is None else checksum(contributor)

    def read(view: IndexReader) -> tuple[list[ProposalOut], str | None]:
        page = view.proposals(dataset_id, after, limit, status, who)
        if not page[0]:  # a proposal is proof enough that its dataset exists
            _known(view, dataset_id)
        return page

    key = ("dataset proposals", dataset_id, status, who, after, limit)
    return await _page(request, reader, key, ProposalOut, read)


@datasets_router.get("/{dataset_id}/shareholders", response_model=Page[Shareholder])
async def shareholders(request: Request, reader: Reader, dataset_id: DatasetId) -> Response:
    """Who holds the dataset's shares, largest holding first."""

    def read(view: IndexReader) -> tuple[list[Shareholder], None]:
        holders = view.shareholders(dataset_id)
        if not holders:  # as for proposals: a holder is proof enough
            _known(view, dataset_id)
        return holders, None

    return await _page(request, reader, ("shareholders", dataset_id), Shareholder, read)


@proposals_router.get("", response_model=Page[ProposalOut])
async def list_proposals(
    request: Request,
    reader: Reader,
    contributor: ContributorFilter = None,
    status: StatusFilter = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """Proposals across every dataset (``contributor``: one account's proposals)."""
    after = parse_cursor(cursor)
    who = None if contributor is None else checksum(contributor)
    return await _page(
        request, reader, ("proposals", status, who, after, limit), ProposalOut,
        lambda view: view.proposals(None, after, limit, status, who),
    )  # fmt: skip


@proposals_router.get("/{dataset_id}/{number}")
def proposal(
    request: Request,
    dataset_id: DatasetId,
    number: Number,
) -> ProposalLive:
    """One proposal as the chain says it is now: tallies, phases, evaluation."""
    market = _platform(request).market
    market.dataset(dataset_id)  # NotFound for an unknown dataset
    p = market.proposal(proposal_id_of(dataset_id, number))
    ev = p.evaluation
    return ProposalLive(
        id=str(int(p.id)),
        ref=ref_of(int(p.id)),
        dataset_id=str(int(p.dataset_id)),
        contributor=p.contributor,
        data_cid=p.data_cid,
        manifest_cid=p.manifest_cid,
        examples=str(p.examples),
        status=p.status,
        outcome=p.outcome,
        deadline=p.deadline,
        commit_end=p.commit_end,
        voting_opens=p.voting_opens,
        yes_votes=str(p.yes_votes),
        no_votes=str(p.no_votes),
        quality_weight_bps=p.quality_weight_bps,
        prospective_shares=str(p.prospective_shares),
        evaluation=None
        if ev is None
        else {
            "commits": ev.commits,
            "reveals": ev.reveals,
            "score_bps": ev.score_bps,
            "quality_weight_bps": ev.quality_weight_bps,
        },
    )


@accounts_router.get("/{address}/history", response_model=Page[AccountEvent])
async def history(
    request: Request,
    reader: Reader,
    address: AddressParam,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """What happened to an account, oldest first: its proposals, votes, evaluations, dividends
    paid and claimed, share transfers received, deposits and fees."""
    after = parse_cursor(cursor)
    who = checksum(address)
    return await _page(
        request, reader, ("history", who, after, limit), AccountEvent,
        lambda view: view.history(who, after, limit),
    )  # fmt: skip


@accounts_router.get("/{address}/claimable/{dataset_id}")
def claimable(request: Request, address: AddressParam, dataset_id: DatasetId) -> Claimable:
    """Dividends the account can claim from the dataset now (read from the chain)."""
    who = checksum(address)
    amount = _platform(request).market.claimable(dataset_id, who)
    return Claimable(account=who, dataset_id=str(dataset_id), claimable_wei=str(int(amount)))


def _comment_out(c: Comment) -> CommentOut:
    return CommentOut(
        id=c.id,
        proposal_ref=ref_of(c.proposal_id),
        parent=c.parent_id,
        author=c.author,
        body=c.body,
        created_at=c.created_at,
        signature=c.signature,
        author_shares_at_snapshot=str(c.weight),
    )


@forum_router.get("/forum")
def forum_info(request: Request) -> ForumInfo:
    """The EIP-712 domain and types a comment is signed with."""
    market = _platform(request).market
    doc = typed_comment(market.gateway.chain_id, market.contract.address, 0, 0, "", 0)
    return ForumInfo(
        domain=doc["domain"],
        types=doc["types"],
        primary_type=doc["primaryType"],
        max_body_chars=MAX_BODY_CHARS,
        clock_skew_s=CLOCK_SKEW_S,
        rate_limit=f"{RATE_LIMIT} comments per {RATE_WINDOW_S} s per author",
    )


@proposals_router.get("/{dataset_id}/{number}/comments")
def comments(
    request: Request,
    dataset_id: DatasetId,
    number: Number,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[CommentOut]:
    """A proposal's forum, oldest first (``parent`` links replies to their comment)."""
    platform = _platform(request)
    rows, nxt = platform.forum.comments(
        proposal_id_of(dataset_id, number), parse_cursor(cursor), limit
    )
    return Page[CommentOut](
        items=[_comment_out(c) for c in rows],
        next_cursor=None if nxt is None else str(nxt),
        index=platform.status(),
    )


@proposals_router.post("/{dataset_id}/{number}/comments", status_code=201)
def post_comment(
    request: Request, dataset_id: DatasetId, number: Number, comment: CommentIn
) -> CommentOut:
    """Post a comment its author signed; the server checks the signature and stores it."""
    stored = _platform(request).forum.post(
        proposal_id_of(dataset_id, number),
        comment.author,
        comment.body,
        comment.created_at,
        comment.signature,
        comment.parent,
    )
    return _comment_out(stored)


ALL = (status_router, datasets_router, proposals_router, accounts_router, forum_router)
