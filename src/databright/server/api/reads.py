"""Lists read from the index: datasets, proposals, an account's history, shareholders; and the
model market's models, a dataset's impact and an account's income by source.

Pages are keyed by a cursor that is the last row's position (an event id or a dataset id), so
a page never repeats or skips a row when new events arrive between two requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, Literal

from eth_utils import is_address, to_checksum_address
from pydantic import TypeAdapter
from sqlalchemy import Engine, and_, event, or_, select
from sqlalchemy.orm import Session

from databright.chain.clients import DataMarketConstants, ProposalStatus, ShareTokenConstants
from databright.errors import ChainIndexError, InvalidArgument, NotFound
from databright.market.market import STATUS_NAMES
from databright.server.api.schemas import (
    AccountEvent,
    BenchmarkCommitOut,
    BenchmarkOut,
    BenchmarkRevealOut,
    BestCheckpointOut,
    DatasetOut,
    ImpactModel,
    IncomeOut,
    ModelOut,
    ModelTermsOut,
    ProposalOut,
    SettlementSummary,
    Shareholder,
    SplitOut,
    VersionOut,
)
from databright.server.index.registry import MODEL_EVENTS, fold_versions
from databright.server.index.schema import (
    IndexedBlock,
    IndexedDataset,
    IndexedEvent,
    IndexedHolding,
    IndexedModel,
    IndexState,
)
from databright.sqlengine import sql_engine

__all__ = [
    "MAX_LIMIT",
    "IndexReader",
    "ModelReader",
    "ModelSort",
    "parse_cursor",
    "parse_model_cursor",
]

MAX_LIMIT: Final = 200
_SEQ_MASK: Final = (1 << DataMarketConstants.SEQ_BITS) - 1
_STATUS_CODES: Final = {name: code for code, name in STATUS_NAMES.items()}
_HOLDERS: Final = TypeAdapter(list[Shareholder])


def parse_cursor(cursor: str | None) -> int:
    """The position after which a page starts (0: the beginning)."""
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit() or len(cursor) > 18:  # positions are 64-bit row ids
        raise InvalidArgument(
            f"cursor {cursor[:80]!r} is not one this API handed out; pass the next_cursor of "
            "the previous page, or none for the first"
        )
    return int(cursor)


def checksum(address: str) -> str:
    if not is_address(address):
        raise InvalidArgument(
            f"{address[:80]!r} is not an Ethereum address; give 0x and 40 hex digits"
        )
    return str(to_checksum_address(address))


def ref_of(proposal_id: int) -> str:
    return f"{proposal_id >> DataMarketConstants.SEQ_BITS}/{proposal_id & _SEQ_MASK}"


def proposal_id_of(dataset_id: int, number: int) -> int:
    """The packed id of DATASET/N (the inverse of :func:`ref_of`), as the contract numbers
    proposals."""
    return (int(dataset_id) << DataMarketConstants.SEQ_BITS) | int(number)


_SNAPSHOT_ENGINE_LOCK = threading.Lock()


class IndexReader:
    """The data market's lists. Each read opens a session of its own, unless the reader is a
    :meth:`snapshot`: then one session serves all its reads (what a request asks in one go)."""

    def __init__(self, engine: Engine, session: Session | None = None) -> None:
        self.engine = engine
        self._bound = session
        self._snapshots: Engine | None = None

    def _snapshot_engine(self) -> Engine:
        """Where :meth:`snapshot` reads: on PostgreSQL an engine of its own whose connections
        are REPEATABLE READ from the start (one snapshot for all of a request's reads: READ
        COMMITTED, the default, lets each statement see a batch the indexer committed
        meanwhile, and a cached page must hold what the index held at the state it is kept
        under). Asking the level per transaction instead cost a BEGIN and a COMMIT to reset
        it on each checkout: two of a page's eight round trips. Disposed with ``engine``."""
        with _SNAPSHOT_ENGINE_LOCK:  # requests' threads ask at once on the first pages
            if self._snapshots is None:
                if self.engine.dialect.name != "postgresql":
                    self._snapshots = self.engine
                else:
                    snapshots = sql_engine(self.engine.url, isolation_level="REPEATABLE READ")
                    event.listen(self.engine, "engine_disposed", lambda _: snapshots.dispose())
                    self._snapshots = snapshots
            return self._snapshots

    @contextmanager
    def snapshot(self) -> Iterator[IndexReader]:
        """A reader whose reads share one session: one connection and, on PostgreSQL, one
        transaction for a request's existence check, page and index state (each read in a
        session of its own cost a connection check and a BEGIN/ROLLBACK round trip apiece)."""
        with Session(self._snapshot_engine(), expire_on_commit=False) as session:
            yield IndexReader(self.engine, session)

    @contextmanager
    def _session(self) -> Iterator[Session]:
        if self._bound is not None:
            yield self._bound
        else:
            with Session(self.engine) as session:
                yield session

    def state(self, chain_id: int) -> IndexState:
        """Where indexing of ``chain_id`` stands."""
        with self._session() as s:
            state = s.get(IndexState, chain_id)
        if state is None:
            raise ChainIndexError(f"this index holds no chain {chain_id}")
        return state

    def version(self, chain_id: int) -> tuple[IndexState, tuple[int, str | None]]:
        """Where indexing stands, and what identifies the index's content: the last indexed
        block and its hash (after a reorg the same number has another hash)."""
        with self._session() as s:  # one query: a request asks this first, every time
            found = s.execute(
                select(IndexState, IndexedBlock.hash)
                .outerjoin(IndexedBlock, IndexedBlock.number == IndexState.indexed_block)
                .where(IndexState.chain_id == chain_id)
            ).first()
        if found is None:
            raise ChainIndexError(f"this index holds no chain {chain_id}")
        state, block_hash = found
        return state, (state.indexed_block, block_hash)

    def datasets(self, after: int, limit: int) -> tuple[list[DatasetOut], str | None]:
        E = IndexedEvent
        with self._session() as s:
            rows = list(
                s.scalars(
                    select(E)
                    .where(E.name == "DatasetCreated", E.dataset_id > after)
                    .order_by(E.dataset_id)
                    .limit(limit + 1)
                )
            )
            more = len(rows) > limit
            rows = rows[:limit]
            # Counted by the indexer as it goes (IndexedDataset), not over every proposal here.
            counts = {
                c.dataset_id: c
                for c in s.scalars(
                    select(IndexedDataset).where(
                        IndexedDataset.dataset_id.in_([r.dataset_id for r in rows])
                    )
                )
            }
        out = [
            DatasetOut(
                id=str(r.dataset_id),
                name=str(r.args["name"]),
                initiator=str(r.args["initiator"]),
                token=str(r.args["token"]),
                created_block=r.block_number,
                evaluators=[str(e) for e in r.args.get("evaluators", [])],
                proposals=counts[r.dataset_id].proposals if r.dataset_id in counts else 0,
                accepted=counts[r.dataset_id].accepted if r.dataset_id in counts else 0,
                voting_period_s=str(r.args["voting_period"]),
                commit_period_s=str(r.args["commit_period"]),
                reveal_period_s=str(r.args["reveal_period"]),
                evaluation_fee_wei=str(r.args["evaluation_fee"]),
                deposit_wei=str(r.args["deposit"]),
            )
            for r in rows
        ]
        return out, (out[-1].id if more and out else None)

    def dataset_exists(self, dataset_id: int) -> bool:
        E = IndexedEvent
        with self._session() as s:
            found = s.scalar(
                select(E.id).where(E.name == "DatasetCreated", E.dataset_id == dataset_id)
            )
        return found is not None

    def proposals(
        self,
        dataset_id: int | None,
        after: int,
        limit: int,
        status: str | None = None,
        contributor: str | None = None,
    ) -> tuple[list[ProposalOut], str | None]:
        E = IndexedEvent
        # Columns, not ORM objects: a page is read once (then cached), and loading 50 entities
        # into a session's identity map cost more than the query did.
        query = (
            select(E.id, E.proposal_id, E.dataset_id, E.block_number, E.status, E.args, E.outcome)
            .where(E.name == "ProposalCreated", E.id > after)
            .order_by(E.id)
            .limit(limit + 1)
        )
        if dataset_id is not None:
            query = query.where(E.dataset_id == dataset_id)
        if contributor is not None:
            query = query.where(E.account == checksum(contributor))
        # The indexer keeps a proposal's status on its ProposalCreated row too (PENDING until
        # settled), so a status filter is a range of the (name, dataset, status, id) index:
        # never a scan of every earlier proposal asking whether it was settled.
        if status is not None:
            query = query.where(E.status == _STATUS_CODES[status])
        # A settled proposal's status and outcome are on its ProposalCreated row (the indexer
        # keeps them there): one query a page, no second read of the settlements.
        with self._session() as s:
            rows = list(s.execute(query))
        more = len(rows) > limit
        rows = rows[:limit]
        items = [_proposal(c) for c in rows]
        return items, (str(rows[-1].id) if more else None)

    def history(
        self, account: str, after: int, limit: int
    ) -> tuple[list[AccountEvent], str | None]:
        E = IndexedEvent
        who = checksum(account)
        with self._session() as s:
            rows = list(
                s.scalars(
                    select(E).where(E.account == who, E.id > after).order_by(E.id).limit(limit + 1)
                )
            )
        more = len(rows) > limit
        rows = rows[:limit]
        items = [
            AccountEvent(
                name=r.name,
                dataset_id=None if r.dataset_id is None else str(r.dataset_id),
                proposal_id=None if r.proposal_id is None else str(r.proposal_id),
                amount=None if r.amount is None else str(r.amount),
                block_number=r.block_number,
                tx_hash=r.tx_hash,
                log_index=r.log_index,
                contract=r.contract,
                args=r.args,
            )
            for r in rows
        ]
        return items, (str(rows[-1].id) if more and rows else None)

    def shareholders(self, dataset_id: int) -> list[Shareholder]:
        H = IndexedHolding
        # A row per holder, kept by the indexer: not every transfer the dataset ever had.
        with self._session() as s:
            held = s.execute(
                select(H.holder, H.received, H.sent).where(H.dataset_id == dataset_id)
            ).all()
        ranked = sorted(
            (
                (holder, received - sent)
                for holder, received, sent in held
                if received > sent and int(holder, 16) != 0
            ),
            key=lambda h: (-h[1], h[0]),
        )
        # One call into pydantic-core for the whole list (a thousand holders is usual).
        return _HOLDERS.validate_python([{"address": a, "shares": str(b)} for a, b in ranked])


def _proposal(created: Any) -> ProposalOut:
    """A proposal from the columns (proposal_id, dataset_id, block_number, status, args,
    outcome) of its ProposalCreated row."""
    pid = int(created.proposal_id or 0)
    args: dict[str, Any] = created.args
    out = ProposalOut(
        id=str(pid),
        ref=ref_of(pid),
        dataset_id=str(created.dataset_id),
        contributor=str(args["contributor"]),
        examples=str(args["examples"]),
        created_block=created.block_number,
        status="pending",
    )
    if created.status not in (None, ProposalStatus.PENDING):
        outcome = created.outcome or {}
        out.status = STATUS_NAMES.get(int(created.status), str(created.status))
        out.shares = outcome.get("shares")
        out.yes_votes, out.no_votes = outcome.get("yes_votes"), outcome.get("no_votes")
    return out


# --- the model market ------------------------------------------------------------------------

#: How a models list is ordered: by benchmark score (best first) then price (cheapest first),
#: or by price then score.
ModelSort = Literal["score", "price"]
_ZERO32: Final = "0x" + "00" * 32


def parse_model_cursor(cursor: str | None) -> tuple[int, int, int] | None:
    """The (score, price, model id) after which a models page starts (None: the beginning)."""
    if cursor is None or cursor == "":
        return None
    parts = cursor.split("-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or len(cursor) > 120:
        raise InvalidArgument(
            f"cursor {cursor[:80]!r} is not one this API handed out; pass the next_cursor of "
            "the previous page, or none for the first"
        )
    score, price, model_id = (int(p) for p in parts)
    return score, price, model_id


def _model_cursor(row: IndexedModel) -> str:
    return f"{row.score_bps}-{row.price}-{row.model_id}"


def _root(value: str) -> str | None:
    return None if value == _ZERO32 else value


def _digest(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


class ModelReader:
    """The model market as the index has it: models ranked by score and price, one model's
    versions and benchmarks, a dataset's impact and an account's income by source.

    ``cid_of`` turns a digest the chain keeps into the CID of the blob (raw or dag-pb, as the
    store knows it)."""

    def __init__(self, engine: Engine, cid_of: Callable[[bytes], str]) -> None:
        self.engine = engine
        self.cid_of = cid_of

    def _model_out(self, m: IndexedModel) -> ModelOut:
        return ModelOut(
            id=str(m.model_id),
            dataset_id=str(m.dataset_id),
            owner=m.owner,
            version=m.current_version,
            versions=m.versions,
            score_bps=m.score_bps,
            benchmarked=m.benchmarked,
            price_wei=str(m.price),
            split=SplitOut(owner_bps=m.owner_bps, data_bps=m.data_bps, node_bps=m.node_bps),
            node=m.node,
            spec_cid=self.cid_of(_digest(m.spec_digest)),
            checkpoint_cid=self.cid_of(_digest(m.checkpoint_digest)),
            card_cid=self.cid_of(_digest(m.card_digest)),
            weights_root=_root(m.weights_root),
            registered_block=m.registered_block,
            registered_at=m.registered_at,
            settlements=m.settlements,
            predictions_paid_wei=str(m.settled_wei),
            to_dataset_wei=str(m.to_dataset_wei),
        )

    def models(
        self,
        dataset_id: int | None,
        after: tuple[int, int, int] | None,
        limit: int,
        sort: ModelSort = "score",
    ) -> tuple[list[ModelOut], str | None]:
        """A page of models, ranked: the cursor is the last row's (score, price, id), so a
        page neither repeats nor skips a model whose rank did not change between requests."""
        M = IndexedModel
        order: tuple[Any, ...] = (
            (M.score_bps.desc(), M.price, M.model_id)
            if sort == "score"
            else (M.price, M.score_bps.desc(), M.model_id)
        )
        query = select(M).order_by(*order).limit(limit + 1)
        if dataset_id is not None:
            query = query.where(M.dataset_id == dataset_id)
        if after is not None:
            score, price, model_id = after
            tie = and_(M.score_bps == score, M.price == price, M.model_id > model_id)
            if sort == "score":
                query = query.where(
                    or_(
                        M.score_bps < score,
                        and_(M.score_bps == score, M.price > price),
                        tie,
                    )
                )
            else:
                query = query.where(
                    or_(M.price > price, and_(M.price == price, M.score_bps < score), tie)
                )
        with Session(self.engine) as s:
            rows = list(s.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        return [self._model_out(m) for m in rows], (
            _model_cursor(rows[-1]) if more and rows else None
        )

    def model(self, model_id: int) -> tuple[ModelOut, list[VersionOut], SettlementSummary]:
        E = IndexedEvent
        with Session(self.engine) as s:
            row = s.get(IndexedModel, model_id)
            if row is None:
                raise NotFound(
                    f"model {model_id} is not in the index; see /api/v1/models (a model "
                    "registered moments ago appears once the index catches up)"
                )
            events = list(
                s.scalars(
                    select(E)
                    .where(E.model_id == model_id, E.name.in_(MODEL_EVENTS))
                    .order_by(E.block_number, E.log_index)
                )
            )
        versions = [
            VersionOut(
                version=v.version,
                current=v.version == row.current_version,
                checkpoint_cid=self.cid_of(_digest(v.checkpoint_digest)),
                card_cid=self.cid_of(_digest(v.card_digest)),
                weights_root=_root(v.weights_root),
                published_block=v.published_block,
                benchmark=BenchmarkOut(
                    commit_deadline=v.commit_deadline,
                    reveal_deadline=v.reveal_deadline,
                    commits=[BenchmarkCommitOut(**c) for c in v.commits],
                    reveals=[
                        BenchmarkRevealOut(
                            evaluator=r["evaluator"],
                            score_bps=r["score_bps"],
                            report_cid=self.cid_of(_digest(r["report_digest"])),
                            block=r["block"],
                        )
                        for r in v.reveals
                    ],
                    reopened=v.requests,
                    finalized=v.score_bps is not None,
                    score_bps=v.score_bps,
                    best=v.best,
                ),
            )
            for v in sorted(fold_versions(events).values(), key=lambda v: v.version)
        ]
        settled = [e.args for e in events if e.name == "Settled"]
        summary = SettlementSummary(
            count=len(settled),
            users=len({a["user"] for a in settled}),
            total_wei=str(sum(int(a["amount"]) for a in settled)),
            owner_wei=str(sum(int(a["owner_amount"]) for a in settled)),
            dataset_wei=str(sum(int(a["data_amount"]) for a in settled)),
            node_wei=str(sum(int(a["node_amount"]) for a in settled)),
        )
        return self._model_out(row), versions, summary

    def impact(self, dataset_id: int) -> dict[str, Any]:
        """The fields of a dataset's impact (the caller checks the dataset exists)."""
        E, M = IndexedEvent, IndexedModel
        chain_order = (E.block_number.desc(), E.log_index.desc())
        with Session(self.engine) as s:
            models = list(
                s.scalars(
                    select(M)
                    .where(M.dataset_id == dataset_id)
                    .order_by(M.score_bps.desc(), M.price, M.model_id)
                )
            )
            fees = [
                int(a["amount"])
                for (a,) in s.execute(
                    select(E.args).where(E.name == "TrainingFeePaid", E.dataset_id == dataset_id)
                )
            ]
            dividends = sum(
                int(a["amount"])
                for (a,) in s.execute(
                    select(E.args).where(E.name == "DividendPaid", E.dataset_id == dataset_id)
                )
            )
            terms = s.scalars(
                select(E)
                .where(E.name == "TermsSet", E.dataset_id == dataset_id)
                .order_by(*chain_order)
                .limit(1)
            ).first()
            best = s.scalars(
                select(E)
                .where(E.name == "BestCheckpoint", E.dataset_id == dataset_id)
                .order_by(*chain_order)
                .limit(1)
            ).first()
        training = sum(fees)
        predictions = sum(m.to_dataset_wei for m in models)
        t = terms.args if terms is not None else None
        return {
            "dataset_id": str(dataset_id),
            "terms": None
            if t is None
            else ModelTermsOut(
                training_fee_wei=str(t["training_fee"]),
                margin_bps=int(t["margin_bps"]),
                base_price_wei=str(t["base_price"]),
                price_slope_wei=str(t["price_slope"]),
                commit_period_s=str(t["commit_period"]),
                reveal_period_s=str(t["reveal_period"]),
            ),
            "best": None
            if best is None
            else BestCheckpointOut(
                model_id=str(best.args["model_id"]),
                version=int(best.args["version"]),
                score_bps=int(best.args["score_bps"]),
            ),
            "training_fees": len(fees),
            "training_revenue_wei": str(training),
            "prediction_revenue_wei": str(predictions),
            # Zero-fee trainings and zero-data settlements pay no dividend: never negative.
            "other_dividends_wei": str(max(0, dividends - training - predictions)),
            "predictions_paid_wei": str(sum(m.settled_wei for m in models)),
            "models": [
                ImpactModel(
                    model_id=str(m.model_id),
                    owner=m.owner,
                    score_bps=m.score_bps,
                    benchmarked=m.benchmarked,
                    price_wei=str(m.price),
                    settlements=m.settlements,
                    predictions_paid_wei=str(m.settled_wei),
                    to_dataset_wei=str(m.to_dataset_wei),
                )
                for m in models
            ],
        }

    def income(
        self, account: str, dataset_id: int | None, after: int, limit: int
    ) -> tuple[list[IncomeOut], str | None]:
        """An account's dividends per dataset it ever held shares of (ordered by dataset id),
        split by source: training fees, predictions, and every other payment."""
        E = IndexedEvent
        who = checksum(account)
        with Session(self.engine) as s:
            # An account holds shares of a dataset only after receiving some.
            held = (
                select(E.dataset_id)
                .where(E.name == "Transfer", E.account == who, E.dataset_id > after)
                .distinct()
                .order_by(E.dataset_id)
                .limit(limit + 1)
            )
            if dataset_id is not None:
                held = held.where(E.dataset_id == dataset_id)
            datasets = [int(d) for d in s.scalars(held) if d is not None]
            more = len(datasets) > limit
            datasets = datasets[:limit]
            state = s.scalars(select(IndexState).limit(1)).first()
            model_market = state.model_market if state is not None else None
            items = [self._income(s, who, ds, model_market) for ds in datasets]
        return items, (str(datasets[-1]) if more and datasets else None)

    @staticmethod
    def _income(s: Session, who: str, dataset_id: int, model_market: str | None) -> IncomeOut:
        E = IndexedEvent
        moves = list(
            s.scalars(
                select(E).where(
                    E.name == "Transfer",
                    E.dataset_id == dataset_id,
                    or_(E.account == who, E.args["sender"].as_string() == who),
                )
            )
        )
        first = min((m.block_number for m in moves), default=0)
        paid = list(
            s.scalars(
                select(E).where(
                    E.name == "DividendPaid", E.dataset_id == dataset_id, E.block_number >= first
                )
            )
        )
        # Which model-market payment (if any) each dividend came from: the one before it in
        # its transaction (the model market calls the token's `pay` right after its event).
        sources: dict[str, list[tuple[int, str]]] = {}
        if model_market is not None:
            for e in s.scalars(
                select(E).where(
                    E.name.in_(("TrainingFeePaid", "Settled")),
                    E.dataset_id == dataset_id,
                    E.block_number >= first,
                )
            ):
                sources.setdefault(e.tx_hash, []).append((e.log_index, e.name))
        shares, payments = 0, 0
        magnified = {"training": 0, "predictions": 0, "other": 0}
        for e in sorted(moves + paid, key=lambda e: (e.block_number, e.log_index)):
            a = e.args
            if e.name == "Transfer":
                value = int(a["value"])
                shares += value if a["receiver"] == who else 0
                shares -= value if a["sender"] == who else 0
                continue
            if shares == 0:
                continue
            payments += 1
            kind = "other"
            if model_market is not None and a["payer"] == model_market:
                before = [n for i, n in sources.get(e.tx_hash, []) if i < e.log_index]
                if before:
                    kind = "training" if before[-1] == "TrainingFeePaid" else "predictions"
            # What the share token credits: the payment's magnified step per share.
            magnified[kind] += int(a["per_share_magnified"]) * shares
        wei = {k: v // ShareTokenConstants.MAGNITUDE for k, v in magnified.items()}
        return IncomeOut(
            dataset_id=str(dataset_id),
            shares=str(shares),
            payments=payments,
            training_wei=str(wei["training"]),
            predictions_wei=str(wei["predictions"]),
            other_wei=str(wei["other"]),
            total_wei=str(sum(magnified.values()) // ShareTokenConstants.MAGNITUDE),
        )
