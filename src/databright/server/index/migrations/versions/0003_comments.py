"""The proposal forum: comments signed by their authors (EIP-712).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from databright.server.index.schema import Uint256

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("proposal_id", Uint256(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(42), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(132), nullable=False),
        sa.Column("weight", Uint256(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["comments.id"], name="fk_comments_parent_id_comments"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_comments"),
        sa.UniqueConstraint("signature", name="uq_comments_signature"),
    )
    op.create_index("ix_comments_proposal", "comments", ["proposal_id", "id"])
    op.create_index("ix_comments_author_created", "comments", ["author", "created_at"])


def downgrade() -> None:
    op.drop_table("comments")
