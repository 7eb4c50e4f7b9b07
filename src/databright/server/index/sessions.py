"""Sign-In with Ethereum's nonces, kept in the index database so that every server process on
one database (SQLite file or PostgreSQL) agrees which nonce was handed out and which was used.

A nonce is random (:data:`NONCE_LENGTH` alphanumeric characters, about 131 bits), lives
:data:`NONCE_TTL_S` seconds and is consumed by one conditional ``UPDATE``: of two sign-ins racing
with the same nonce, exactly one changes the row. Rows are kept until they expire, so a reused
nonce is told apart from one never issued, and swept whenever a new nonce is issued.
"""

from __future__ import annotations

import secrets
import string
from typing import Final

from sqlalchemy import BigInteger, Engine, Index, String, delete, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from databright.errors import NotPermitted
from databright.server.index.schema import Base

__all__ = ["NONCE_LENGTH", "NONCE_TTL_S", "AuthNonce", "consume_nonce", "issue_nonce"]

NONCE_TTL_S: Final = 600
NONCE_LENGTH: Final = 22
_ALPHABET: Final = string.ascii_letters + string.digits


class AuthNonce(Base):
    """A nonce handed to a browser for its next SIWE message; ``used_at`` once it signed in."""

    __tablename__ = "auth_nonces"
    __table_args__ = (Index("ix_auth_nonces_issued_at", "issued_at"),)

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    issued_at: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


def issue_nonce(engine: Engine, now: int) -> str:
    """A fresh nonce, stored as issued at ``now`` (unix seconds); expired ones are swept."""
    nonce = "".join(secrets.choice(_ALPHABET) for _ in range(NONCE_LENGTH))
    with engine.begin() as c:
        c.execute(delete(AuthNonce).where(AuthNonce.issued_at < now - NONCE_TTL_S))
        c.execute(insert(AuthNonce).values(nonce=nonce, issued_at=now))
    return nonce


def consume_nonce(engine: Engine, nonce: str, now: int) -> None:
    """Mark ``nonce`` used at ``now``; raises :class:`NotPermitted` (one sentence) when it was
    never issued here, was used already or has expired, and then changes nothing."""
    with engine.begin() as c:
        taken = c.execute(
            update(AuthNonce)
            .where(
                AuthNonce.nonce == nonce,
                AuthNonce.used_at.is_(None),
                AuthNonce.issued_at >= now - NONCE_TTL_S,
            )
            .values(used_at=now)
        )
        if taken.rowcount == 1:
            return
        row = c.execute(
            select(AuthNonce.issued_at, AuthNonce.used_at).where(AuthNonce.nonce == nonce)
        ).one_or_none()
    if row is None:
        raise NotPermitted(
            f"nonce {nonce} was not issued by this server (or expired long ago); get one from "
            "/api/v1/auth/nonce and sign a new message"
        )
    if row.used_at is not None:
        raise NotPermitted(
            f"nonce {nonce} was used already; get a new one from /api/v1/auth/nonce and sign again"
        )
    raise NotPermitted(
        f"nonce {nonce} expired ({NONCE_TTL_S // 60} minutes after it was issued); get a new one "
        "from /api/v1/auth/nonce and sign again"
    )
