"""The model market's REST API, read from the index: models ranked by benchmark score and
price (what a buyer compares), one model's versions with their sealed benchmarks and its
settlements, a dataset's impact (what its models paid back to it), and an account's income by
source (training fees, predictions, anything else).

Every answer comes from the index (``source: index``, with how fresh it is); digests the
chain keeps are answered as the CIDs of their blobs, as the data market's reads are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from databright.errors import BlobNotFound, NotFound
from databright.server.api.reads import (
    MAX_LIMIT,
    IndexReader,
    ModelReader,
    ModelSort,
    parse_cursor,
    parse_model_cursor,
)
from databright.server.api.routers import PROBLEMS
from databright.server.api.schemas import DatasetImpactOut, IncomeOut, ModelDetail, ModelOut, Page
from databright.storage import digest_to_cid

if TYPE_CHECKING:
    from databright.server.platform import Platform

__all__ = ["ALL", "accounts_router", "datasets_router", "model_reader", "models_router"]

_MAX_ID = 2**64 - 1
ModelId = Annotated[int, Path(ge=1, le=_MAX_ID, description="The model's id.")]
DatasetId = Annotated[int, Path(ge=1, le=_MAX_ID, description="The dataset's id.")]
DatasetFilter = Annotated[
    int | None, Query(ge=1, le=_MAX_ID, description="Only the models of this dataset.")
]
IncomeDataset = Annotated[
    int | None, Query(ge=1, le=_MAX_ID, description="Only the income from this dataset.")
]
Sort = Annotated[
    ModelSort,
    Query(description="score: best benchmark first, then cheapest; price: cheapest first."),
]
ModelCursor = Annotated[
    str | None,
    Query(
        pattern=r"^[0-9]{1,5}-[0-9]{1,78}-[0-9]{1,20}$",
        description="next_cursor of the previous page.",
    ),
]
Cursor = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page."),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
AddressParam = Annotated[str, Path(min_length=42, max_length=42, pattern=r"^0x[0-9a-fA-F]{40}$")]


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def model_reader(platform: Platform) -> ModelReader:
    """The model market's reads over the platform's index (the web UI uses them too)."""
    market = platform.market

    def cid_of(digest: bytes) -> str:
        try:
            return market.cid_of(digest)
        except BlobNotFound:  # nobody holds it: the raw CID, the usual address
            return str(digest_to_cid(digest))

    return ModelReader(platform.engine, cid_of)


def _reader(request: Request) -> ModelReader:
    return model_reader(_platform(request))


Reader = Annotated[ModelReader, Depends(_reader)]

models_router = APIRouter(prefix="/models", tags=["models"], responses=PROBLEMS)
datasets_router = APIRouter(prefix="/datasets", tags=["datasets"], responses=PROBLEMS)
accounts_router = APIRouter(prefix="/accounts", tags=["accounts"], responses=PROBLEMS)


def _known_dataset(request: Request, dataset_id: int) -> None:
    index: IndexReader = _platform(request).reader
    if not index.dataset_exists(dataset_id):
        raise NotFound(
            f"dataset {dataset_id} is not in the index; see /api/v1/datasets (a dataset "
            "created moments ago appears once the index catches up)"
        )


@models_router.get("")
def list_models(
    request: Request,
    reader: Reader,
    dataset_id: DatasetFilter = None,
    sort: Sort = "score",
    cursor: ModelCursor = None,
    limit: Limit = 50,
) -> Page[ModelOut]:
    """Registered models ranked by their current version's benchmark score, then price (or
    by price, then score): what a buyer compares."""
    if dataset_id is not None:
        _known_dataset(request, dataset_id)
    items, nxt = reader.models(dataset_id, parse_model_cursor(cursor), limit, sort)
    return Page[ModelOut](items=items, next_cursor=nxt, index=_platform(request).status())


@models_router.get("/{model_id}")
def model(request: Request, reader: Reader, model_id: ModelId) -> ModelDetail:
    """One model: every version with its benchmark (commits, reveals with their evaluators and
    scores, the final median) and a summary of its settlements."""
    out, versions, settlements = reader.model(model_id)
    return ModelDetail(
        model=out, versions=versions, settlements=settlements, index=_platform(request).status()
    )


@datasets_router.get("/{dataset_id}/impact")
def dataset_impact(request: Request, reader: Reader, dataset_id: DatasetId) -> DatasetImpactOut:
    """What the models trained on a dataset paid back to it: training fees, its part of every
    settled prediction, and its models with their scores and settled totals."""
    _known_dataset(request, dataset_id)
    return DatasetImpactOut(**reader.impact(dataset_id), index=_platform(request).status())


@accounts_router.get("/{address}/income")
def income(
    request: Request,
    reader: Reader,
    address: AddressParam,
    dataset_id: IncomeDataset = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[IncomeOut]:
    """An account's dividends per dataset by source: training fees, predictions and other
    payments, each shared pro rata to the account's shares when it was paid."""
    if dataset_id is not None:
        _known_dataset(request, dataset_id)
    items, nxt = reader.income(address, dataset_id, parse_cursor(cursor), limit)
    return Page[IncomeOut](items=items, next_cursor=nxt, index=_platform(request).status())


#: The routers to mount under /api/v1 beside ``routers.ALL``.
ALL = (models_router, datasets_router, accounts_router)
