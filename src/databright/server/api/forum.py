"""The forum of a proposal: comments signed by their authors with EIP-712.

The author signs ``Comment(proposal_id, parent, body, created_at)`` under the domain
``DataBright forum`` of this chain and market; the server recovers the signer and stores the
comment only if it is the claimed author. So the server cannot forge a comment or change one
(anyone can check a stored comment against its signature), and a signature is accepted once
(replays are refused). ``created_at`` must be within :data:`CLOCK_SKEW_S` of the server's clock,
and an author may post :data:`RATE_LIMIT` comments per :data:`RATE_WINDOW_S`. Each comment
carries its author's shares at the proposal's snapshot block: the badge voters weigh it by.
A body is text, returned as a JSON string; a page shows it escaped, never as HTML.
"""

from __future__ import annotations

import time
from typing import Any, Final

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from databright.errors import DuplicateSubmission, InvalidArgument, NotFound, RateLimited
from databright.market.market import Market
from databright.server.index.schema import Comment

__all__ = [
    "CLOCK_SKEW_S",
    "MAX_BODY_CHARS",
    "RATE_LIMIT",
    "RATE_WINDOW_S",
    "Forum",
    "typed_comment",
]

MAX_BODY_CHARS: Final = 4000
CLOCK_SKEW_S: Final = 300
RATE_LIMIT: Final = 5
RATE_WINDOW_S: Final = 60
COMMENT_TYPES: Final = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Comment": [
        {"name": "proposal_id", "type": "uint256"},
        {"name": "parent", "type": "uint256"},
        {"name": "body", "type": "string"},
        {"name": "created_at", "type": "uint256"},
    ],
}


def typed_comment(
    chain_id: int, market: str, proposal_id: int, parent: int, body: str, created_at: int
) -> dict[str, Any]:
    """The EIP-712 document an author signs (``parent`` 0: a top-level comment)."""
    return {
        "types": COMMENT_TYPES,
        "primaryType": "Comment",
        "domain": {
            "name": "DataBright forum",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(market),
        },
        "message": {
            "proposal_id": proposal_id,
            "parent": parent,
            "body": body,
            "created_at": created_at,
        },
    }


class Forum:
    def __init__(self, engine: Engine, market: Market) -> None:
        self.engine = engine
        self.market = market

    def comments(
        self, proposal_id: int, after: int, limit: int
    ) -> tuple[list[Comment], int | None]:
        with Session(self.engine, expire_on_commit=False) as s:
            rows = list(
                s.scalars(
                    select(Comment)
                    .where(Comment.proposal_id == proposal_id, Comment.id > after)
                    .order_by(Comment.id)
                    .limit(limit + 1)
                )
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].id if more and rows else None)

    def post(
        self,
        proposal_id: int,
        author: str,
        body: str,
        created_at: int,
        signature: str,
        parent: int | None = None,
        now: float | None = None,
    ) -> Comment:
        """Check and store a signed comment; every refusal changes nothing."""
        if not body.strip() or len(body) > MAX_BODY_CHARS:
            raise InvalidArgument(f"a comment has 1 to {MAX_BODY_CHARS} characters of text")
        clock = int(time.time() if now is None else now)
        if abs(created_at - clock) > CLOCK_SKEW_S:
            raise InvalidArgument(
                f"created_at {created_at} is more than {CLOCK_SKEW_S} s from the server's clock "
                f"({clock}); sign the comment again with the current time"
            )
        who = to_checksum_address(author)
        proposal = self.market.proposal(proposal_id)  # NotFound for an unknown proposal
        document = typed_comment(
            self.market.gateway.chain_id,
            self.market.contract.address,
            proposal_id,
            parent or 0,
            body,
            created_at,
        )
        try:
            signer = Account.recover_message(
                encode_typed_data(full_message=document), signature=HexBytes(signature)
            )
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(
                "the signature is not a valid EIP-712 signature of this comment; sign the "
                "typed data of /api/v1/forum again"
            ) from exc
        if to_checksum_address(signer) != who:
            raise InvalidArgument(
                f"the signature is {signer}'s, not {who}'s; sign with the author's key"
            )
        weight = self.market.token(int(proposal.dataset_id)).balance_at(
            who, proposal.snapshot_block
        )
        with Session(self.engine, expire_on_commit=False) as s, s.begin():
            if parent is not None:
                above = s.get(Comment, parent)
                if above is None or above.proposal_id != proposal_id:
                    raise NotFound(
                        f"comment {parent} is not on proposal {proposal_id}; reply to one of its "
                        "comments"
                    )
            recent = s.scalar(
                select(func.count())
                .select_from(Comment)
                .where(Comment.author == who, Comment.created_at > clock - RATE_WINDOW_S)
            )
            if (recent or 0) >= RATE_LIMIT:
                raise RateLimited(
                    f"{who} posted {recent} comments in the last {RATE_WINDOW_S} s; wait a "
                    "minute before the next"
                )
            comment = Comment(
                proposal_id=proposal_id,
                parent_id=parent,
                author=who,
                body=body,
                created_at=created_at,
                signature=HexBytes(signature).to_0x_hex(),
                weight=weight,
            )
            s.add(comment)
            try:
                s.flush()
            except IntegrityError as exc:
                raise DuplicateSubmission(
                    "this signed comment is already posted; a signature is accepted once"
                ) from exc
        return comment
