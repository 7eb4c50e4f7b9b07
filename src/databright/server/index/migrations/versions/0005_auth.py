"""Sign-In with Ethereum: the nonces the server hands out, each accepted once.

Revision ID: 0005_auth
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_auth"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_nonces",
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("nonce", name="pk_auth_nonces"),
    )
    op.create_index("ix_auth_nonces_issued_at", "auth_nonces", ["issued_at"])


def downgrade() -> None:
    op.drop_table("auth_nonces")
