"""Lists read from the index: datasets, proposals, an account's history, shareholders.

Pages are keyed by a cursor that is the last row's position (an event id or a dataset id), so
a page never repeats or skips a row when new events arrive between two requests.
"""

from __future__ import annotations

from typing import Any, Final

from eth_utils import is_address, to_checksum_address
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, aliased

from databright.chain.clients import DataMarketConstants, ProposalStatus
from databright.errors import InvalidArgument
from databright.market.market import STATUS_NAMES
from databright.server.api.schemas import AccountEvent, DatasetOut, ProposalOut, Shareholder
from databright.server.index.schema import IndexedEvent

__all__ = ["MAX_LIMIT", "IndexReader", "parse_cursor"]

MAX_LIMIT: Final = 200
_SEQ_MASK: Final = (1 << DataMarketConstants.SEQ_BITS) - 1
_STATUS_CODES: Final = {name: code for code, name in STATUS_NAMES.items()}


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


class IndexReader:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def datasets(self, after: int, limit: int) -> tuple[list[DatasetOut], str | None]:
        E = IndexedEvent
        with Session(self.engine) as s:
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
            ids = [r.dataset_id for r in rows]
            made = dict(
                s.execute(
                    select(E.dataset_id, func.count())
                    .where(E.name == "ProposalCreated", E.dataset_id.in_(ids))
                    .group_by(E.dataset_id)
                ).all()
            )
            accepted = dict(
                s.execute(
                    select(E.dataset_id, func.count())
                    .where(
                        E.name == "ProposalFinalized",
                        E.dataset_id.in_(ids),
                        E.status == int(ProposalStatus.ACCEPTED),
                    )
                    .group_by(E.dataset_id)
                ).all()
            )
        out = [
            DatasetOut(
                id=str(r.dataset_id),
                name=str(r.args["name"]),
                initiator=str(r.args["initiator"]),
                token=str(r.args["token"]),
                created_block=r.block_number,
                evaluators=[str(e) for e in r.args.get("evaluators", [])],
                proposals=made.get(r.dataset_id, 0),
                accepted=accepted.get(r.dataset_id, 0),
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
        with Session(self.engine) as s:
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
        settled = aliased(IndexedEvent)
        # Correlated on the proposal id (indexed): the planner never scans all settlements.
        is_settled = (
            select(settled.id)
            .where(settled.proposal_id == E.proposal_id, settled.name == "ProposalFinalized")
            .correlate(E)
        )
        query = (
            select(E)
            .where(E.name == "ProposalCreated", E.id > after)
            .order_by(E.id)
            .limit(limit + 1)
        )
        if dataset_id is not None:
            query = query.where(E.dataset_id == dataset_id)
        if contributor is not None:
            query = query.where(E.account == checksum(contributor))
        if status == "pending":
            query = query.where(~is_settled.exists())
        elif status is not None:
            query = query.where(is_settled.where(settled.status == _STATUS_CODES[status]).exists())
        with Session(self.engine) as s:
            rows = list(s.scalars(query))
            more = len(rows) > limit
            rows = rows[:limit]
            ids = [r.proposal_id for r in rows]
            outcomes = {
                f.proposal_id: f
                for f in s.scalars(
                    select(E).where(E.name == "ProposalFinalized", E.proposal_id.in_(ids))
                )
            } if ids else {}  # fmt: skip
        items = [_proposal(c, outcomes.get(c.proposal_id)) for c in rows]
        return items, (str(rows[-1].id) if more else None)

    def history(
        self, account: str, after: int, limit: int
    ) -> tuple[list[AccountEvent], str | None]:
        E = IndexedEvent
        who = checksum(account)
        with Session(self.engine) as s:
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
        E = IndexedEvent
        balances: dict[str, int] = {}
        with Session(self.engine) as s:
            for (args,) in s.execute(
                select(E.args).where(E.name == "Transfer", E.dataset_id == dataset_id)
            ):
                value = int(args["value"])
                balances[args["sender"]] = balances.get(args["sender"], 0) - value
                balances[args["receiver"]] = balances.get(args["receiver"], 0) + value
        zero = "0x" + "0" * 40
        holders = [
            Shareholder(address=a, shares=str(b))
            for a, b in balances.items()
            if b > 0 and int(a, 16) != int(zero, 16)
        ]
        return sorted(holders, key=lambda h: (-int(h.shares), h.address))


def _proposal(created: IndexedEvent, settled: IndexedEvent | None) -> ProposalOut:
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
    if settled is not None:
        s = settled.args
        out.status = STATUS_NAMES.get(int(s["status"]), str(s["status"]))
        out.shares, out.yes_votes, out.no_votes = s["shares"], s["yes_votes"], s["no_votes"]
    return out
