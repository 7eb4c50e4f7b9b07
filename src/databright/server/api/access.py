"""The gatekeeper: a priced dataset's data is served only to signed-in accounts that have access
on chain at the moment of the request (the role of Ocean's provider).

- ``GET /api/v1/datasets/{id}/access``: the dataset's access price and whether the signed-in
  account (if any) has access, and why; read from the chain now (``source: chain``).
- ``GET /api/v1/datasets/{id}/data``: the dataset's curated data, as its registry entries with,
  for each, the URL of its data blob through the gatekeeper.
- ``GET /api/v1/datasets/{id}/data/{cid}``: one data blob of the dataset (any data proposed to
  it: the registry's, and pending proposals' for its voters and evaluators), streamed from the
  store as it was checked against its CID; verify it against the CID on arrival.

A free dataset (price 0, the default) is public: both data routes answer anyone, signed in or
not, as the issue asks ("nothing else needs sign-in to read"). A priced one answers 401 without
a session and 402 to an account without access; access is asked of the chain on every request,
so a sale of the last share ends access at once. The public blob gateway (``/ipfs/{cid}``)
refuses a priced dataset's data blobs through :meth:`Gatekeeper.withheld`, given to
:func:`databright.server.gateway.blob_router` as its ``withheld`` hook.

Which blobs are withheld is cached for :data:`WITHHELD_TTL_S` (the priced datasets and their
data digests, read from the chain's events): a dataset priced moments ago may still be served
by the gateway for that long. When the chain cannot be read and nothing was read before, the
gateway is told so (:class:`ChainError`) and answers 503 rather than guess.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Final, Literal

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from databright.chain.clients import DataMarketConstants
from databright.errors import (
    BlobCorrupt,
    BlobNotFound,
    ContractNotDeployed,
    DataBrightError,
    InvalidCID,
    NotFound,
)
from databright.market.access import AccessReason, DataAccess, proposed_data_digests
from databright.market.market import Market
from databright.server.api.auth import current_account
from databright.server.api.problems import PROBLEM_TYPE
from databright.server.api.routers import PROBLEMS
from databright.server.api.schemas import Problem
from databright.storage import digest_to_cid
from databright.storage.cid import cid_to_digest, normalize_cid

if TYPE_CHECKING:
    from databright.server.platform import Platform

__all__ = [
    "ALL",
    "WITHHELD_TTL_S",
    "AccessOut",
    "DataEntryOut",
    "DataOut",
    "Gatekeeper",
    "gatekeeper",
]

log = logging.getLogger("databright.server")

#: How long the set of withheld blobs (priced datasets' data) is reused before it is read again.
WITHHELD_TTL_S: Final = 5.0
_CHUNK: Final = 1 << 20
_MAX_ID: Final = 2**64 - 1

DatasetId = Annotated[int, Path(ge=1, le=_MAX_ID, description="The dataset's id.")]
CidParam = Annotated[
    str, Path(min_length=1, max_length=128, description="A data blob's CID (CIDv1, base32).")
]


class Gatekeeper:
    """What the gatekeeper asks the chain, for one market: live access checks, and a cached
    answer to "does this blob belong to a priced dataset?" for the public gateway."""

    def __init__(
        self,
        market: Market,
        ttl_s: float = WITHHELD_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.market = market
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._access: DataAccess | None = None
        self._absent_until = float("-inf")
        self._withheld: dict[bytes, int] | None = None
        self._withheld_at = float("-inf")
        self._digests: dict[int, tuple[float, set[bytes]]] = {}

    def access(self) -> DataAccess | None:
        """The access register, or None on a deployment that has none (every dataset is then
        free); its absence is checked again after ``ttl_s``."""
        if self._access is None and self._clock() >= self._absent_until:
            try:
                self._access = DataAccess.over(self.market)
            except ContractNotDeployed:
                self._absent_until = self._clock() + self.ttl_s
        return self._access

    def price(self, dataset_id: int) -> int:
        """The dataset's access price now (404 for an unknown dataset)."""
        access = self.access()
        if access is None:
            self.market._check_dataset(dataset_id)
            return 0
        return int(access.price(dataset_id))

    def has_access(self, dataset_id: int, account: str) -> bool:
        access = self.access()
        return True if access is None else access.has_access(dataset_id, account)

    def data_digests(self, dataset_id: int) -> set[bytes]:
        """The data digests proposed to a dataset (new proposals appear within ``ttl_s``)."""
        now = self._clock()
        cached = self._digests.get(dataset_id)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        digests = proposed_data_digests(self.market, dataset_id)
        self._digests[dataset_id] = (now, digests)
        return digests

    def withheld(self, cid: str) -> int | None:
        """The priced dataset a blob belongs to (None when it belongs to none): the public
        gateway's ``withheld`` hook. Raises :class:`ChainError` only when the chain cannot be
        read and no earlier answer is at hand."""
        try:
            digest = cid_to_digest(cid)
        except InvalidCID:
            return None  # not a DataBright address: no dataset's data
        return self._withheld_map().get(digest)

    def _withheld_map(self) -> dict[bytes, int]:
        with self._lock:
            now = self._clock()
            if self._withheld is not None and now - self._withheld_at < self.ttl_s:
                return self._withheld
            try:
                access = self.access()
                found: dict[bytes, int] = {}
                if access is not None:
                    for dataset_id in access.priced_datasets():
                        for digest in proposed_data_digests(self.market, dataset_id):
                            found[digest] = dataset_id
            except DataBrightError as exc:
                if self._withheld is None:
                    raise
                # Fail closed on what was priced a moment ago rather than open on everything,
                # and ask again only after ttl_s: a node that hangs must not hold every request.
                log.warning("cannot refresh the priced datasets (%s); using the last answer", exc)
                self._withheld_at = now
                return self._withheld
            self._withheld, self._withheld_at = found, now
            return found


_GATEKEEPERS: weakref.WeakKeyDictionary[Platform, Gatekeeper] = weakref.WeakKeyDictionary()
_GATEKEEPERS_LOCK = threading.Lock()


def gatekeeper(platform: Platform) -> Gatekeeper:
    """The platform's gatekeeper (one per platform, made on first use): ``create_app`` gives
    ``gatekeeper(platform).withheld`` to the blob gateway."""
    with _GATEKEEPERS_LOCK:
        found = _GATEKEEPERS.get(platform)
        if found is None:
            found = _GATEKEEPERS[platform] = Gatekeeper(platform.market)
        return found


# --- schemas -------------------------------------------------------------------------------


class AccessOut(BaseModel):
    """A dataset's access price and one account's access, as the chain says it is now."""

    source: Literal["chain"] = "chain"
    dataset_id: str
    price_wei: str = Field(description="0: the data is public.")
    account: str | None = Field(description="The signed-in account (null when none).")
    has_access: bool = Field(description="Whether this request may download the data now.")
    reason: AccessReason = Field(
        description="free, bought, initiator, evaluator, shareholder, or none."
    )
    buyers: str
    revenue_wei: str = Field(description="Everything paid for access, all to the shareholders.")
    data_url: str


class DataEntryOut(BaseModel):
    index: int
    proposal_id: str
    contributor: str
    data_cid: str
    manifest_root: str
    examples: str
    url: str = Field(description="This entry's data through the gatekeeper.")


class DataOut(BaseModel):
    """A dataset's curated data: its registry entries, each blob behind the gatekeeper."""

    source: Literal["chain"] = "chain"
    dataset_id: str
    price_wei: str
    account: str | None
    entries: list[DataEntryOut]


# --- the routes ----------------------------------------------------------------------------


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


_WHY: Final = {
    401: "Not signed in: the dataset's data is priced (sign in with POST /api/v1/auth/siwe).",
    402: "The signed-in account has no access: buy it on chain (databright access buy).",
}
_GATED: dict[int | str, dict[str, Any]] = {
    **PROBLEMS,
    **{
        code: {"model": Problem, "description": why, "content": {PROBLEM_TYPE: {}}}
        for code, why in _WHY.items()
    },
}

router = APIRouter(prefix="/datasets", tags=["access"], responses=PROBLEMS)


def _admit(request: Request, keeper: Gatekeeper, dataset_id: int) -> tuple[int, str | None]:
    """The price and the account of a request the gatekeeper lets through; 401 or 402 else."""
    price = keeper.price(dataset_id)  # 404 for an unknown dataset
    account = current_account(request)
    if price == 0:
        return price, account
    if account is None:
        raise HTTPException(
            status_code=401,
            detail=f"dataset {dataset_id}'s data is priced: sign in with Ethereum (POST "
            "/api/v1/auth/siwe) with an account that has access",
        )
    # Asked now, never cached: shares sold or roles handed over a block ago count.
    if not keeper.has_access(dataset_id, account):
        raise HTTPException(
            status_code=402,
            detail=f"{account} has no access to dataset {dataset_id}'s data; buy it for "
            f"{price} wei on chain (`databright access buy {dataset_id}`), then ask again",
        )
    return price, account


@router.get("/{dataset_id}/access")
def dataset_access(request: Request, dataset_id: DatasetId) -> AccessOut:
    """The dataset's access price and whether the signed-in account (if any) may download its
    data now, and why (read from the chain now)."""
    keeper = gatekeeper(_platform(request))
    account = current_account(request)
    access = keeper.access()
    url = f"/api/v1/datasets/{dataset_id}/data"
    if access is None:  # a deployment without the access register: every dataset is free
        keeper.market._check_dataset(dataset_id)
        return AccessOut(
            dataset_id=str(dataset_id), price_wei="0", account=account, has_access=True,
            reason="free", buyers="0", revenue_wei="0", data_url=url,
        )  # fmt: skip
    if account is None:
        price = int(access.price(dataset_id))
        return AccessOut(
            dataset_id=str(dataset_id), price_wei=str(price), account=None,
            has_access=price == 0, reason="free" if price == 0 else "none",
            buyers=str(access.contract.buyers(dataset_id)),
            revenue_wei=str(access.contract.revenue(dataset_id)), data_url=url,
        )  # fmt: skip
    status = access.status(dataset_id, account)
    return AccessOut(
        dataset_id=str(dataset_id), price_wei=str(status.price_wei), account=account,
        has_access=status.has_access, reason=status.reason, buyers=str(status.buyers),
        revenue_wei=str(status.revenue_wei), data_url=url,
    )  # fmt: skip


@router.get("/{dataset_id}/data", responses=_GATED)
def dataset_data(request: Request, dataset_id: DatasetId) -> DataOut:
    """The dataset's curated data: every registry entry with the gatekeeper URL of its data
    blob. A priced dataset answers only a signed-in account with access on chain now."""
    keeper = gatekeeper(_platform(request))
    price, account = _admit(request, keeper, dataset_id)
    market = keeper.market
    length = market.contract.registry_length(dataset_id)
    page = DataMarketConstants.MAX_PAGE
    entries: list[DataEntryOut] = []
    for start in range(0, length, page):
        for e in market.contract.registry(dataset_id, start, min(page, length - start)):
            cid = _cid_of(market, bytes(e.data_cid_digest))
            entries.append(
                DataEntryOut(
                    index=int(e.index),
                    proposal_id=str(e.proposal_id),
                    contributor=e.contributor,
                    data_cid=cid,
                    manifest_root="0x" + bytes(e.manifest_root).hex(),
                    examples=str(e.examples),
                    url=f"/api/v1/datasets/{dataset_id}/data/{cid}",
                )
            )
    return DataOut(
        dataset_id=str(dataset_id), price_wei=str(price), account=account, entries=entries
    )


@router.get(
    "/{dataset_id}/data/{cid}",
    responses={
        **_GATED,
        200: {
            "description": "The blob's bytes; verify them against the CID.",
            "content": {"application/octet-stream": {}},
        },
    },
    response_class=StreamingResponse,
)
def dataset_blob(request: Request, dataset_id: DatasetId, cid: CidParam) -> StreamingResponse:
    """One data blob proposed to the dataset, streamed. A priced dataset answers only a
    signed-in account with access on chain now."""
    keeper = gatekeeper(_platform(request))
    _admit(request, keeper, dataset_id)
    # Membership is told only to those with access; a string that is no CID names no blob.
    try:
        text = normalize_cid(cid)
        known = cid_to_digest(text) in keeper.data_digests(dataset_id)
    except InvalidCID:
        known, text = False, cid
    if not known:
        raise NotFound(
            f"{text!r} is not a data blob of dataset {dataset_id}; see "
            f"/api/v1/datasets/{dataset_id}/data for its blobs"
        )
    store = keeper.market.store
    try:
        size = store.size(text)
        f = store.open(text)  # checked against the CID before a byte is sent
    except (BlobNotFound, BlobCorrupt):
        raise NotFound(
            f"this server does not hold {text} (dataset {dataset_id}); ask its contributor's store"
        ) from None
    headers = {
        "Content-Length": str(size),
        "Content-Disposition": f'attachment; filename="{text}.bin"',
        "X-Content-Type-Options": "nosniff",
        # Paid data: no shared cache may keep a copy for the next asker.
        "Cache-Control": "private, no-store",
        "X-Ipfs-Path": f"/ipfs/{text}",
    }
    return StreamingResponse(_chunks(f), headers=headers, media_type="application/octet-stream")


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := f.read(_CHUNK):
            yield chunk
    finally:
        f.close()


def _cid_of(market: Market, digest: bytes) -> str:
    try:
        return market.cid_of(digest)
    except BlobNotFound:  # nobody holds it: the raw CID, the usual address
        return str(digest_to_cid(digest))


ALL: list[APIRouter] = [router]
