"""The first index: blocks, events, index state.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from databright.server.index.schema import Uint256

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "indexed_blocks",
        sa.Column("number", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(66), nullable=False),
        sa.Column("parent_hash", sa.String(66), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_indexed_blocks"),
    )
    op.create_table(
        "indexed_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("contract", sa.String(42), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("dataset_id", Uint256(), nullable=True),
        sa.Column("proposal_id", Uint256(), nullable=True),
        sa.Column("account", sa.String(42), nullable=True),
        sa.Column("amount", Uint256(), nullable=True),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["block_number"],
            ["indexed_blocks.number"],
            name="fk_indexed_events_block_number_indexed_blocks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_indexed_events"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_indexed_events_tx_log"),
    )
    op.create_index("ix_indexed_events_block_number", "indexed_events", ["block_number"])
    op.create_index("ix_indexed_events_name_dataset", "indexed_events", ["name", "dataset_id"])
    op.create_index("ix_indexed_events_proposal", "indexed_events", ["proposal_id"])
    op.create_index("ix_indexed_events_account", "indexed_events", ["account"])
    op.create_table(
        "index_state",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("market", sa.String(42), nullable=False),
        sa.Column("start_block", sa.BigInteger(), nullable=False),
        sa.Column("indexed_block", sa.BigInteger(), nullable=False),
        sa.Column("head_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name="pk_index_state"),
    )


def downgrade() -> None:
    op.drop_table("index_state")
    op.drop_table("indexed_events")
    op.drop_table("indexed_blocks")
