"""The computation market's and the weight sales' REST API, read from the index: devices,
jobs with their verified units, slashings with their evidence, coordinators, federations and
weight sales.

Lists come from the index (``source: index``, with how fresh it is); a job's escrow is read
from the chain as well (``chain.source: chain``). Digests the chain keeps are answered as the
CIDs of their blobs, and a slash's evidence bundle as the path this server serves it at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from databright.chain.clients import ComputeMarketClient
from databright.errors import BlobNotFound
from databright.server.api.compute_reads import ComputeReader, raw_cid
from databright.server.api.compute_schemas import (
    CoordinatorOut,
    DeviceDetail,
    DeviceOut,
    DeviceUnitOut,
    FederationDetail,
    FederationOut,
    JobDetail,
    JobOut,
    JobStatus,
    SaleDetail,
    SaleOut,
    SaleStatusName,
    SlashingOut,
    UnitOut,
)
from databright.server.api.reads import MAX_LIMIT, parse_cursor
from databright.server.api.routers import PROBLEMS
from databright.server.api.schemas import Page

if TYPE_CHECKING:
    from databright.server.platform import Platform

__all__ = ["ALL", "compute_reader", "compute_router", "sales_router"]

_MAX_ID = 2**64 - 1
_ADDRESS = r"^0x[0-9a-fA-F]{40}$"
JobId = Annotated[int, Path(ge=1, le=_MAX_ID, description="The job's id.")]
SaleId = Annotated[int, Path(ge=1, le=_MAX_ID, description="The sale's id.")]
FederationId = Annotated[int, Path(ge=1, le=_MAX_ID, description="The federation's id.")]
AddressParam = Annotated[str, Path(min_length=42, max_length=42, pattern=_ADDRESS)]
Cursor = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the previous page."),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]


def _account(what: str) -> Any:
    return Query(min_length=42, max_length=42, pattern=_ADDRESS, description=what)


OwnerFilter = Annotated[str | None, _account("Only this account's device.")]
PayerFilter = Annotated[str | None, _account("Only the jobs this account pays for.")]
FederationPayerFilter = Annotated[str | None, _account("Only the federations it pays for.")]
WorkerFilter = Annotated[str | None, _account("Only this worker's slashes.")]
BuyerFilter = Annotated[str | None, _account("Only this account's purchases.")]
SellerFilter = Annotated[str | None, _account("Only this account's sales.")]
JobFilter = Annotated[int | None, Query(ge=1, le=_MAX_ID, description="Only this job's.")]
ModelFilter = Annotated[int | None, Query(ge=1, le=_MAX_ID, description="Only this model's.")]
JobStatusFilter = Annotated[
    JobStatus | None,
    Query(description="open: may pay units; expired: past its expiry, not closed; closed."),
]
SaleStatusFilter = Annotated[SaleStatusName | None, Query(description="Only sales in it.")]


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def compute_reader(request: Request) -> ComputeReader:
    """The compute market's reads for this app (the web UI's pages use them too)."""
    platform = _platform(request)
    reader: ComputeReader | None = getattr(request.app.state, "compute_reader", None)
    if reader is not None and reader.engine is platform.engine:
        return reader
    market = platform.market

    def cid_of(digest: bytes) -> str:
        try:
            return market.cid_of(digest)
        except BlobNotFound:  # nobody holds it: the raw CID, the usual address
            return raw_cid(digest)

    address = platform.indexer.compute_market
    # The indexed contract's address: the live read is of the very contract the index follows.
    chain = market.gateway.bind(ComputeMarketClient, address) if address else None
    reader = ComputeReader(platform.engine, chain, cid_of)
    request.app.state.compute_reader = reader  # one per app: binding reads the artifact
    return reader


Reader = Annotated[ComputeReader, Depends(compute_reader)]

compute_router = APIRouter(prefix="/compute", tags=["compute"], responses=PROBLEMS)
sales_router = APIRouter(prefix="/sales", tags=["sales"], responses=PROBLEMS)


@compute_router.get("/devices")
def list_devices(
    request: Request,
    reader: Reader,
    owner: OwnerFilter = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[DeviceOut]:
    """Worker devices in the order they registered, with their stake, status, paid units and
    slashes (one device per account)."""
    items, nxt = reader.devices(parse_cursor(cursor), limit, owner)
    return Page[DeviceOut](items=items, next_cursor=nxt, index=_platform(request).status())


@compute_router.get("/devices/{address}")
def device(request: Request, reader: Reader, address: AddressParam) -> DeviceDetail:
    """One device and every slash of its account, each with its evidence."""
    out, slashings = reader.device(address)
    return DeviceDetail(device=out, slashings=slashings, index=_platform(request).status())


@compute_router.get("/devices/{address}/units")
def device_units(
    request: Request,
    reader: Reader,
    address: AddressParam,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[DeviceUnitOut]:
    """The verified units a device's account was paid for, oldest first."""
    items, nxt = reader.device_units(address, parse_cursor(cursor), limit)
    return Page[DeviceUnitOut](items=items, next_cursor=nxt, index=_platform(request).status())


@compute_router.get("/jobs")
def list_jobs(
    request: Request,
    reader: Reader,
    payer: PayerFilter = None,
    status: JobStatusFilter = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[JobOut]:
    """Compute jobs by id, with their escrow as the index has it."""
    items, nxt = reader.jobs(parse_cursor(cursor), limit, payer, status)
    return Page[JobOut](items=items, next_cursor=nxt, index=_platform(request).status())


@compute_router.get("/jobs/{job_id}")
def job(request: Request, reader: Reader, job_id: JobId) -> JobDetail:
    """One job: units paid and amount paid from the index, and what its escrow holds and may
    still pay read from the chain now (``chain``; None with ``chain_error`` when the node does
    not answer)."""
    out, live, error = reader.job(job_id)
    return JobDetail(job=out, chain=live, chain_error=error, index=_platform(request).status())


@compute_router.get("/jobs/{job_id}/units")
def job_units(
    request: Request,
    reader: Reader,
    job_id: JobId,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[UnitOut]:
    """A job's verified units in the order they were paid, with the workers paid for each."""
    items, nxt = reader.units(job_id, parse_cursor(cursor), limit)
    return Page[UnitOut](items=items, next_cursor=nxt, index=_platform(request).status())


@compute_router.get("/slashings")
def slashings(
    request: Request,
    reader: Reader,
    worker: WorkerFilter = None,
    job_id: JobFilter = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[SlashingOut]:
    """Slashes in chain order with the evidence the chain records: the unit, the hash of its
    input, the agreed and the bad output hashes, and the evidence bundle's CID and path."""
    items, nxt = reader.slashings(parse_cursor(cursor), limit, worker, job_id)
    return Page[SlashingOut](items=items, next_cursor=nxt, index=_platform(request).status())


@compute_router.get("/coordinators")
def coordinators(request: Request, reader: Reader) -> Page[CoordinatorOut]:
    """Coordinators the admin allowed on a verified attestation (and whether still allowed)."""
    items = reader.coordinators()
    return Page[CoordinatorOut](items=items, next_cursor=None, index=_platform(request).status())


@compute_router.get("/federations")
def list_federations(
    request: Request,
    reader: Reader,
    payer: FederationPayerFilter = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[FederationOut]:
    """Federations (federated training paid by contribution) by id: escrow, clients, whether
    training started, and once settled what was paid and the CID of the scores behind it."""
    items, nxt = reader.federations(parse_cursor(cursor), limit, payer)
    return Page[FederationOut](items=items, next_cursor=nxt, index=_platform(request).status())


@compute_router.get("/federations/{federation_id}")
def federation(request: Request, reader: Reader, federation_id: FederationId) -> FederationDetail:
    """One federation with each client's posted payout."""
    out, payouts = reader.federation(federation_id)
    return FederationDetail(federation=out, payouts=payouts, index=_platform(request).status())


@sales_router.get("")
def list_sales(
    request: Request,
    reader: Reader,
    buyer: BuyerFilter = None,
    seller: SellerFilter = None,
    model_id: ModelFilter = None,
    status: SaleStatusFilter = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[SaleOut]:
    """Weight sales (outright purchases of a model version's weights) by id."""
    items, nxt = reader.sales(parse_cursor(cursor), limit, buyer, seller, model_id, status)
    return Page[SaleOut](items=items, next_cursor=nxt, index=_platform(request).status())


@sales_router.get("/{sale_id}")
def sale(request: Request, reader: Reader, sale_id: SaleId) -> SaleDetail:
    """One weight sale, the listing it bought under and its events in chain order."""
    out, listing, events = reader.sale(sale_id)
    return SaleDetail(sale=out, listing=listing, events=events, index=_platform(request).status())


#: The routers to mount under /api/v1 (``create_app`` includes them).
ALL: list[APIRouter] = [compute_router, sales_router]
