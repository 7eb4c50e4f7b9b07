"""The compute market and the weight sales as the index has them: devices, jobs, their
verified units, slashings with their evidence, coordinators, and weight sales.

:class:`ComputeReader` answers in the API's schemas, so the web UI can call it in process and
get what the REST API serves. Pages are keyed by a cursor that is the last row's position (a
job or sale id, an event or payment row id, a device's registration event), so a page never
repeats or skips a row when new events arrive between two requests. The one live read is a
job's escrow (:meth:`ComputeReader.job`), from the chain when a client is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from multiformats import CID
from sqlalchemy import Engine, and_, select
from sqlalchemy.orm import Session

from databright.chain.clients import ComputeMarketClient, SaleStatus
from databright.errors import ChainError, NotFound
from databright.server.api.compute_schemas import (
    CoordinatorOut,
    DeviceOut,
    DeviceUnitOut,
    FederationOut,
    FederationPayoutOut,
    JobLive,
    JobOut,
    JobStatus,
    ListingOut,
    SaleEventOut,
    SaleOut,
    SaleStatusName,
    SlashingOut,
    UnitOut,
)
from databright.server.api.reads import checksum
from databright.server.index.registry import SALE_EVENTS
from databright.server.index.schema import (
    IndexedBlock,
    IndexedDevice,
    IndexedEvent,
    IndexedJob,
    IndexedSale,
    IndexedUnitPayment,
    IndexState,
)
from databright.storage import digest_to_cid

__all__ = ["ComputeReader", "evidence_path", "raw_cid"]

_SALE_STATUS: Final[dict[int, SaleStatusName]] = {
    int(SaleStatus.PAID): "paid",
    int(SaleStatus.DELIVERED): "delivered",
    int(SaleStatus.ACCEPTED): "accepted",
    int(SaleStatus.REVEALED): "revealed",
    int(SaleStatus.SETTLED): "settled",
    int(SaleStatus.REFUNDED): "refunded",
}
_SALE_CODE: Final = {name: code for code, name in _SALE_STATUS.items()}
# WeightSale's REFUND_* reasons.
_REFUND_REASON: Final = {1: "cancelled", 2: "not_revealed", 3: "complaint"}
_DEVICE_SLASHES: Final = 100
_FEDERATION_EVENTS: Final = (
    "FederationCreated",
    "FederationJoined",
    "FederationStarted",
    "FederationPayout",
    "FederationSettled",
    "FederationClosed",
)


def raw_cid(digest: bytes) -> str:
    """The raw CID of a digest the chain keeps (what a blob up to 256 KiB is stored under)."""
    return str(digest_to_cid(digest))


def evidence_path(cid: str) -> str:
    """Where this server's blob gateway serves a blob. The gateway is trustless: a raw CID
    (a blob up to 256 KiB, as evidence bundles are) comes back as its bytes, a larger blob's
    DAG as a CAR, each checked against the CID by whoever fetches it."""
    kind = "raw" if CID.decode(cid).codec.name == "raw" else "car"
    return f"/ipfs/{cid}?format={kind}"


def _digest(value: str) -> bytes:
    return bytes.fromhex(str(value).removeprefix("0x"))


def _unit_number(key: str) -> str:
    return str(int(str(key), 16))


def _page(
    rows: list[Any], limit: int, position: Callable[[Any], int]
) -> tuple[list[Any], str | None]:
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(position(rows[-1])) if more and rows else None)


class ComputeReader:
    """The compute market and the weight sales from the index behind ``engine``.

    ``chain``: the compute market's client, for what must be exact now (a job's escrow; None:
    the index alone). ``cid_of`` turns a digest the chain keeps into the CID of its blob (raw
    or dag-pb, as the store knows it; default: the raw CID)."""

    def __init__(
        self,
        engine: Engine,
        chain: ComputeMarketClient | None = None,
        cid_of: Callable[[bytes], str] = raw_cid,
    ) -> None:
        self.engine = engine
        self.chain = chain
        self.cid_of = cid_of

    def _contracts(self, s: Session) -> tuple[str | None, str | None]:
        state = s.scalar(select(IndexState).limit(1))
        return (state.compute_market, state.weight_sale) if state is not None else (None, None)

    def _compute_events(self, names: tuple[str, ...]) -> list[IndexedEvent]:
        """The compute market's events of ``names``, in chain order."""
        E = IndexedEvent
        with Session(self.engine) as s:
            compute, _ = self._contracts(s)
            return list(
                s.scalars(
                    select(E)
                    .where(E.contract == compute, E.name.in_(names))
                    .order_by(E.block_number, E.log_index)
                )
            )

    def chain_time(self) -> int:
        """The newest indexed block's timestamp: the clock a job's expiry is read against."""
        with Session(self.engine) as s:
            newest = s.scalar(
                select(IndexedBlock.timestamp).order_by(IndexedBlock.number.desc()).limit(1)
            )
        return int(newest or 0)

    # --- devices ---------------------------------------------------------------------

    @staticmethod
    def _device_out(d: IndexedDevice) -> DeviceOut:
        return DeviceOut(
            owner=d.owner,
            numeric_class=d.numeric_class,
            capabilities=str(d.capabilities),
            min_fee_wei=str(d.min_fee),
            stake_wei=str(d.stake),
            status=d.status,  # type: ignore[arg-type]  # written from DeviceStatus only
            unstake_at=int(d.unstake_at) or None,
            registered_block=d.registered_block,
            registered_at=d.registered_at,
            units_paid=d.units_paid,
            earned_wei=str(d.earned_wei),
            slashings=d.slashings,
            slashed_wei=str(d.slashed_wei),
        )

    def devices(
        self, after: int, limit: int, owner: str | None = None
    ) -> tuple[list[DeviceOut], str | None]:
        """Devices in the order they registered (``owner``: that account's, if any)."""
        D = IndexedDevice
        query = select(D).where(D.registered_event > after).order_by(D.registered_event)
        if owner is not None:
            query = query.where(D.owner == checksum(owner))
        with Session(self.engine) as s:
            rows, nxt = _page(
                list(s.scalars(query.limit(limit + 1))), limit, lambda d: d.registered_event
            )
        return [self._device_out(d) for d in rows], nxt

    def device(self, owner: str) -> tuple[DeviceOut, list[SlashingOut]]:
        """One device and the slashes of its account (the first hundred: each burns the whole
        stake, so a device has few; /compute/slashings?worker= pages through them all)."""
        who = checksum(owner)
        with Session(self.engine) as s:
            row = s.get(IndexedDevice, who)
            if row is None:
                raise NotFound(
                    f"{who} has no device in the index; see /api/v1/compute/devices (a device "
                    "registered moments ago appears once the index catches up)"
                )
            out = self._device_out(row)
        slashings, _ = self.slashings(0, _DEVICE_SLASHES, worker=who)
        return out, slashings

    def device_units(
        self, owner: str, after: int, limit: int
    ) -> tuple[list[DeviceUnitOut], str | None]:
        """The verified units a device's account was paid for, oldest first."""
        P = IndexedUnitPayment
        who = checksum(owner)
        with Session(self.engine) as s:
            if s.get(IndexedDevice, who) is None:
                raise NotFound(f"{who} has no device in the index; see /api/v1/compute/devices")
            rows, nxt = _page(
                list(
                    s.scalars(
                        select(P)
                        .where(P.worker == who, P.id > after)
                        .order_by(P.id)
                        .limit(limit + 1)
                    )
                ),
                limit,
                lambda p: p.id,
            )
            items = [
                DeviceUnitOut(
                    job_id=str(p.job_id),
                    unit_id=_unit_number(p.unit_id),
                    unit_key=p.unit_id,
                    fee_wei=str(p.fee),
                    block_number=p.block_number,
                    tx_hash=p.tx_hash,
                )
                for p in rows
            ]
        return items, nxt

    # --- jobs ------------------------------------------------------------------------

    def _job_out(self, j: IndexedJob, now: int) -> JobOut:
        status: JobStatus = "closed" if j.closed else "expired" if j.expiry <= now else "open"
        return JobOut(
            id=str(j.job_id),
            payer=j.payer,
            coordinator=j.coordinator,
            status=status,
            max_wei=str(j.max_amount),
            paid_wei=str(j.paid_wei),
            remaining_wei=str(j.remaining),
            units_paid=j.units_paid,
            slashings=j.slashings,
            expiry=str(j.expiry),
            spec_cid=self.cid_of(_digest(j.spec_digest)),
            created_block=j.created_block,
            created_at=j.created_at,
            closed_by=j.closed_by,
            closed_block=j.closed_block,
            refund_wei=None if j.refund is None else str(j.refund),
        )

    def jobs(
        self,
        after: int,
        limit: int,
        payer: str | None = None,
        status: JobStatus | None = None,
    ) -> tuple[list[JobOut], str | None]:
        """Jobs by id (``payer``: that account's; ``status``: only those, against the newest
        indexed block's time)."""
        J = IndexedJob
        now = self.chain_time()
        query = select(J).where(J.job_id > after).order_by(J.job_id).limit(limit + 1)
        if payer is not None:
            query = query.where(J.payer == checksum(payer))
        if status == "closed":
            query = query.where(J.closed.is_(True))
        elif status == "open":
            query = query.where(J.closed.is_(False), J.expiry > now)
        elif status == "expired":
            query = query.where(J.closed.is_(False), J.expiry <= now)
        with Session(self.engine) as s:
            rows, nxt = _page(list(s.scalars(query)), limit, lambda j: j.job_id)
        return [self._job_out(j, now) for j in rows], nxt

    def job(self, job_id: int) -> tuple[JobOut, JobLive | None, str | None]:
        """One job from the index, with its escrow read from the chain now (None and the
        reason when the node does not answer, or no chain client was given)."""
        with Session(self.engine) as s:
            row = s.get(IndexedJob, job_id)
            if row is None:
                raise NotFound(
                    f"compute job {job_id} is not in the index; see /api/v1/compute/jobs (a job "
                    "created moments ago appears once the index catches up)"
                )
            out = self._job_out(row, self.chain_time())
        if self.chain is None:
            return out, None, "this reader has no chain client; the escrow is the index's"
        try:
            on_chain = self.chain.job(job_id)
            live = JobLive(
                remaining_wei=str(int(self.chain.remaining(job_id))),
                escrow_wei=str(int(on_chain.remaining)),
                closed=bool(on_chain.closed),
            )
        except ChainError as exc:
            return out, None, str(exc)
        return out, live, None

    def units(self, job_id: int, after: int, limit: int) -> tuple[list[UnitOut], str | None]:
        """A job's verified units in the order they were paid."""
        E = IndexedEvent
        with Session(self.engine) as s:
            if s.get(IndexedJob, job_id) is None:
                raise NotFound(
                    f"compute job {job_id} is not in the index; see /api/v1/compute/jobs"
                )
            compute, _ = self._contracts(s)
            rows, nxt = _page(
                list(
                    s.scalars(
                        select(E)
                        .where(
                            E.job_id == job_id,
                            E.name == "UnitPaid",
                            E.contract == compute,
                            E.id > after,
                        )
                        .order_by(E.id)
                        .limit(limit + 1)
                    )
                ),
                limit,
                lambda e: e.id,
            )
        items = [
            UnitOut(
                job_id=str(job_id),
                unit_id=_unit_number(e.args["unit_id"]),
                unit_key=str(e.args["unit_id"]),
                workers=[str(w) for w in e.args["workers"]],
                fee_each_wei=str(e.args["fee_each"]),
                paid_wei=str(int(e.args["fee_each"]) * len(e.args["workers"])),
                remaining_wei=str(e.args["remaining"]),
                block_number=e.block_number,
                tx_hash=e.tx_hash,
            )
            for e in rows
        ]
        return items, nxt

    # --- slashings and coordinators ---------------------------------------------------

    def slashings(
        self,
        after: int,
        limit: int,
        worker: str | None = None,
        job_id: int | None = None,
    ) -> tuple[list[SlashingOut], str | None]:
        """Slashes in chain order, each with its evidence and where to fetch the bundle."""
        E = IndexedEvent
        with Session(self.engine) as s:
            compute, _ = self._contracts(s)
            query = (
                select(E, IndexedBlock.timestamp)
                .join(IndexedBlock, IndexedBlock.number == E.block_number)
                .where(E.name == "Slashed", E.contract == compute, E.id > after)
                .order_by(E.id)
                .limit(limit + 1)
            )
            if worker is not None:
                query = query.where(E.account == checksum(worker))
            if job_id is not None:
                query = query.where(E.job_id == job_id)
            rows, nxt = _page(list(s.execute(query).all()), limit, lambda r: r[0].id)
        items = []
        for e, slashed_at in rows:
            a = e.args
            cid = self.cid_of(_digest(a["evidence_cid"]))
            items.append(
                SlashingOut(
                    worker=str(a["worker"]),
                    job_id=str(a["job_id"]),
                    unit_id=_unit_number(a["unit_id"]),
                    unit_key=str(a["unit_id"]),
                    input_hash=str(a["input_hash"]),
                    honest_output=str(a["honest_output"]),
                    bad_output=str(a["bad_output"]),
                    evidence_cid=cid,
                    evidence_path=evidence_path(cid),
                    amount_wei=str(a["amount"]),
                    block_number=e.block_number,
                    slashed_at=int(slashed_at),
                    tx_hash=e.tx_hash,
                )
            )
        return items, nxt

    def coordinators(self) -> list[CoordinatorOut]:
        """Every coordinator ever allowed, as its latest allow or revoke left it."""
        out: dict[str, CoordinatorOut] = {}
        events = self._compute_events(("CoordinatorAllowed", "CoordinatorRevoked"))
        for e in events:
            who = str(e.args["coordinator"])
            if e.name == "CoordinatorAllowed":
                out[who] = CoordinatorOut(
                    address=who,
                    measurement=str(e.args["measurement"]),
                    allowed=True,
                    allowed_block=e.block_number,
                )
            elif who in out:
                out[who].allowed, out[who].revoked_block = False, e.block_number
        return list(out.values())

    # --- federations ------------------------------------------------------------------

    def _federation_events(self, federation_id: int | None = None) -> dict[int, list[IndexedEvent]]:
        """Every federation's events in chain order, by federation id. Federations are not
        folded into rows of their own (yet): they are few next to units and payments."""
        events = self._compute_events(_FEDERATION_EVENTS)
        by_id: dict[int, list[IndexedEvent]] = {}
        for e in events:
            fid = int(e.args["federation_id"])
            if federation_id is None or fid == federation_id:
                by_id.setdefault(fid, []).append(e)
        return by_id

    def _federation_out(
        self, fid: int, events: list[IndexedEvent]
    ) -> tuple[FederationOut, list[FederationPayoutOut]]:
        created = events[0].args
        out = FederationOut(
            id=str(fid),
            payer=str(created["payer"]),
            coordinator=str(created["coordinator"]),
            status="open",
            amount_wei=str(created["amount"]),
            deadline=str(created["deadline"]),
            open_joining=bool(created["open_joining"]),
            spec_cid=self.cid_of(_digest(created["spec_digest"])),
            clients=[],
            created_block=events[0].block_number,
        )
        payouts: list[FederationPayoutOut] = []
        for e in events[1:]:
            a = e.args
            if e.name == "FederationJoined":
                out.clients.append(str(a["client"]))
            elif e.name == "FederationStarted":
                out.status, out.started_block = "running", e.block_number
            elif e.name == "FederationPayout":
                payouts.append(
                    FederationPayoutOut(client=str(a["client"]), amount_wei=str(a["amount"]))
                )
            elif e.name == "FederationSettled":
                out.status, out.paid_wei, out.refund_wei = (
                    "settled",
                    str(a["paid"]),
                    str(a["refund"]),
                )
                out.scores_cid = self.cid_of(_digest(a["scores_cid"]))
                out.scores_path = evidence_path(out.scores_cid)
            elif e.name == "FederationClosed":
                out.status, out.refund_wei = "closed", str(a["refund"])
        return out, payouts

    def federations(
        self, after: int, limit: int, payer: str | None = None
    ) -> tuple[list[FederationOut], str | None]:
        """Federations by id (after the cursor's id), optionally one payer's."""
        outs = [
            self._federation_out(fid, events)[0]
            for fid, events in sorted(self._federation_events().items())
            if fid > after and events[0].name == "FederationCreated"
        ]
        if payer is not None:
            outs = [f for f in outs if f.payer == checksum(payer)]
        return _page(outs, limit, lambda f: int(f.id))

    def federation(self, federation_id: int) -> tuple[FederationOut, list[FederationPayoutOut]]:
        events = self._federation_events(federation_id).get(federation_id)
        if not events or events[0].name != "FederationCreated":
            raise NotFound(
                f"federation {federation_id} is not in the index; list federations at "
                "/api/v1/compute/federations."
            )
        return self._federation_out(federation_id, events)

    # --- weight sales ----------------------------------------------------------------

    @staticmethod
    def _sale_out(r: IndexedSale) -> SaleOut:
        return SaleOut(
            id=str(r.sale_id),
            buyer=r.buyer,
            seller=r.seller,
            model_id=str(r.model_id),
            version=str(r.version),
            price_wei=str(r.price),
            status=_SALE_STATUS[r.status],
            deadline=str(r.deadline),
            cipher_root=r.cipher_root,
            key_commitment=r.key_commitment,
            key=r.key,
            complaint_index=None if r.complaint_index is None else str(r.complaint_index),
            refund_reason=None if r.refund_reason is None else _REFUND_REASON.get(r.refund_reason),  # type: ignore[arg-type]
            bought_block=r.bought_block,
            bought_at=r.bought_at,
            closed_block=r.closed_block,
        )

    def sales(
        self,
        after: int,
        limit: int,
        buyer: str | None = None,
        seller: str | None = None,
        model_id: int | None = None,
        status: SaleStatusName | None = None,
    ) -> tuple[list[SaleOut], str | None]:
        """Weight sales by id, filtered by buyer, seller, model and status."""
        S = IndexedSale
        where = [S.sale_id > after]
        if buyer is not None:
            where.append(S.buyer == checksum(buyer))
        if seller is not None:
            where.append(S.seller == checksum(seller))
        if model_id is not None:
            where.append(S.model_id == model_id)
        if status is not None:
            where.append(S.status == _SALE_CODE[status])
        query = select(S).where(and_(*where)).order_by(S.sale_id).limit(limit + 1)
        with Session(self.engine) as s:
            rows, nxt = _page(list(s.scalars(query)), limit, lambda r: r.sale_id)
        return [self._sale_out(r) for r in rows], nxt

    def sale(self, sale_id: int) -> tuple[SaleOut, ListingOut | None, list[SaleEventOut]]:
        """One sale, the listing it bought under and its events in chain order."""
        E = IndexedEvent
        with Session(self.engine) as s:
            row = s.get(IndexedSale, sale_id)
            if row is None:
                raise NotFound(
                    f"weight sale {sale_id} is not in the index; see /api/v1/sales (a sale "
                    "made moments ago appears once the index catches up)"
                )
            out = self._sale_out(row)
            _, weight_sale = self._contracts(s)
            order = (E.block_number, E.log_index)
            events = list(
                s.scalars(
                    select(E)
                    .where(E.sale_id == sale_id, E.contract == weight_sale, E.name.in_(SALE_EVENTS))
                    .order_by(*order)
                )
            )
            bought = next(e for e in events if e.name == "Bought")
            # The listing in force at the purchase: the model version's last Listed before it.
            listings = [
                e
                for e in s.scalars(
                    select(E)
                    .where(
                        E.model_id == row.model_id, E.name == "Listed", E.contract == weight_sale
                    )
                    .order_by(*order)
                )
                if int(e.args["version"]) == row.version
                and (e.block_number, e.log_index) < (bought.block_number, bought.log_index)
            ]
        listing = None
        if listings:
            a, at = listings[-1].args, listings[-1].block_number
            listing = ListingOut(
                seller=str(a["seller"]),
                price_wei=str(a["price"]),
                tree_root=str(a["tree_root"]),
                n_chunks=str(a["n_chunks"]),
                byte_length=str(a["byte_length"]),
                listed_block=at,
            )
        timeline = [
            SaleEventOut(
                name=e.name,
                block_number=e.block_number,
                tx_hash=e.tx_hash,
                log_index=e.log_index,
                args=e.args,
            )
            for e in events
        ]
        return out, listing, timeline
