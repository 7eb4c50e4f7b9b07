"""The model market: which model an event is about, the model market an index follows, and the
model registry as its events leave it (sorted and paged in SQL).

An index made before has no model-market events (its indexer never read that contract), so
there is nothing to fill: the indexer replays the chain once when it is first given a model
market (see :class:`databright.server.index.Indexer`).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from databright.server.index.schema import Uint256

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("indexed_events") as batch:
        batch.add_column(sa.Column("model_id", Uint256(), nullable=True))
    op.create_index("ix_indexed_events_model_name", "indexed_events", ["model_id", "name"])
    with op.batch_alter_table("index_state") as batch:
        batch.add_column(sa.Column("model_market", sa.String(42), nullable=True))
    op.create_table(
        "indexed_models",
        sa.Column("model_id", Uint256(), autoincrement=False, nullable=False),
        sa.Column("dataset_id", Uint256(), nullable=False),
        sa.Column("owner", sa.String(42), nullable=False),
        sa.Column("spec_digest", sa.String(66), nullable=False),
        sa.Column("price", Uint256(), nullable=False),
        sa.Column("owner_bps", sa.Integer(), nullable=False),
        sa.Column("data_bps", sa.Integer(), nullable=False),
        sa.Column("node_bps", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(42), nullable=False),
        sa.Column("current_version", sa.BigInteger(), nullable=False),
        sa.Column("versions", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_digest", sa.String(66), nullable=False),
        sa.Column("card_digest", sa.String(66), nullable=False),
        sa.Column("weights_root", sa.String(66), nullable=False),
        sa.Column("score_bps", sa.Integer(), nullable=False),
        sa.Column("benchmarked", sa.Boolean(), nullable=False),
        sa.Column("registered_block", sa.BigInteger(), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.Column("settlements", sa.BigInteger(), nullable=False),
        sa.Column("settled_wei", Uint256(), nullable=False),
        sa.Column("to_dataset_wei", Uint256(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name="pk_indexed_models"),
    )
    op.create_index(
        "ix_indexed_models_dataset_score",
        "indexed_models",
        ["dataset_id", "score_bps", "price", "model_id"],
    )
    op.create_index("ix_indexed_models_score", "indexed_models", ["score_bps", "price", "model_id"])
    op.create_index("ix_indexed_models_price", "indexed_models", ["price", "score_bps", "model_id"])


def downgrade() -> None:
    op.drop_table("indexed_models")
    with op.batch_alter_table("index_state") as batch:
        batch.drop_column("model_market")
    op.drop_index("ix_indexed_events_model_name", table_name="indexed_events")
    with op.batch_alter_table("indexed_events") as batch:
        batch.drop_column("model_id")
