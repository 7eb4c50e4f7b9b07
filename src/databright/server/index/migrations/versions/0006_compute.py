"""The computation market and the weight sale: which job or sale an event is about, the
compute market and weight sale an index follows, and what their events leave (devices, jobs,
the workers paid per unit, sales), sorted and paged in SQL.

An index made before has none of their events (its indexer never read those contracts), so
there is nothing to fill: the indexer replays the chain once when it is first given either (see
:class:`databright.server.index.Indexer`).

Revision ID: 0006_compute
Revises: 0005_auth
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from databright.server.index.schema import Uint256

revision = "0006_compute"
down_revision = "0005_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("indexed_events") as batch:
        batch.add_column(sa.Column("job_id", Uint256(), nullable=True))
        batch.add_column(sa.Column("sale_id", Uint256(), nullable=True))
    op.create_index("ix_indexed_events_job_name", "indexed_events", ["job_id", "name"])
    op.create_index("ix_indexed_events_sale_name", "indexed_events", ["sale_id", "name"])
    with op.batch_alter_table("index_state") as batch:
        batch.add_column(sa.Column("compute_market", sa.String(42), nullable=True))
        batch.add_column(sa.Column("weight_sale", sa.String(42), nullable=True))
    op.create_table(
        "compute_devices",
        sa.Column("owner", sa.String(42), nullable=False),
        sa.Column("numeric_class", sa.String(66), nullable=False),
        sa.Column("capabilities", Uint256(), nullable=False),
        sa.Column("min_fee", Uint256(), nullable=False),
        sa.Column("stake", Uint256(), nullable=False),
        sa.Column("unstake_at", Uint256(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("registered_event", sa.BigInteger(), nullable=False),
        sa.Column("registered_block", sa.BigInteger(), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.Column("units_paid", sa.BigInteger(), nullable=False),
        sa.Column("earned_wei", Uint256(), nullable=False),
        sa.Column("slashings", sa.BigInteger(), nullable=False),
        sa.Column("slashed_wei", Uint256(), nullable=False),
        sa.PrimaryKeyConstraint("owner", name="pk_compute_devices"),
    )
    op.create_index("ix_compute_devices_registered", "compute_devices", ["registered_event"])
    op.create_table(
        "compute_jobs",
        sa.Column("job_id", Uint256(), autoincrement=False, nullable=False),
        sa.Column("payer", sa.String(42), nullable=False),
        sa.Column("coordinator", sa.String(42), nullable=False),
        sa.Column("max_amount", Uint256(), nullable=False),
        sa.Column("expiry", Uint256(), nullable=False),
        sa.Column("spec_digest", sa.String(66), nullable=False),
        sa.Column("created_block", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("units_paid", sa.BigInteger(), nullable=False),
        sa.Column("paid_wei", Uint256(), nullable=False),
        sa.Column("remaining", Uint256(), nullable=False),
        sa.Column("slashings", sa.BigInteger(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("closed_by", sa.String(42), nullable=True),
        sa.Column("closed_block", sa.BigInteger(), nullable=True),
        sa.Column("refund", Uint256(), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name="pk_compute_jobs"),
    )
    op.create_index("ix_compute_jobs_payer", "compute_jobs", ["payer", "job_id"])
    op.create_index("ix_compute_jobs_closed", "compute_jobs", ["closed", "expiry", "job_id"])
    op.create_table(
        "compute_unit_payments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("job_id", Uint256(), nullable=False),
        sa.Column("unit_id", sa.String(66), nullable=False),
        sa.Column("worker", sa.String(42), nullable=False),
        sa.Column("fee", Uint256(), nullable=False),
        sa.ForeignKeyConstraint(
            ["block_number"],
            ["indexed_blocks.number"],
            name="fk_compute_unit_payments_block_number_indexed_blocks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_compute_unit_payments"),
        sa.UniqueConstraint("tx_hash", "log_index", "worker", name="uq_compute_unit_payments_key"),
    )
    op.create_index(
        "ix_compute_unit_payments_block_number", "compute_unit_payments", ["block_number"]
    )
    op.create_index("ix_compute_unit_payments_worker", "compute_unit_payments", ["worker", "id"])
    op.create_index("ix_compute_unit_payments_job", "compute_unit_payments", ["job_id", "id"])
    op.create_table(
        "weight_sales",
        sa.Column("sale_id", Uint256(), autoincrement=False, nullable=False),
        sa.Column("buyer", sa.String(42), nullable=False),
        sa.Column("seller", sa.String(42), nullable=False),
        sa.Column("model_id", Uint256(), nullable=False),
        sa.Column("version", Uint256(), nullable=False),
        sa.Column("price", Uint256(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("deadline", Uint256(), nullable=False),
        sa.Column("cipher_root", sa.String(66), nullable=True),
        sa.Column("key_commitment", sa.String(66), nullable=True),
        sa.Column("key", sa.String(66), nullable=True),
        sa.Column("complaint_index", Uint256(), nullable=True),
        sa.Column("refund_reason", sa.SmallInteger(), nullable=True),
        sa.Column("bought_block", sa.BigInteger(), nullable=False),
        sa.Column("bought_at", sa.BigInteger(), nullable=False),
        sa.Column("closed_block", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("sale_id", name="pk_weight_sales"),
    )
    op.create_index("ix_weight_sales_buyer", "weight_sales", ["buyer", "sale_id"])
    op.create_index("ix_weight_sales_seller", "weight_sales", ["seller", "sale_id"])
    op.create_index("ix_weight_sales_model", "weight_sales", ["model_id", "sale_id"])
    op.create_index("ix_weight_sales_status", "weight_sales", ["status", "sale_id"])


def downgrade() -> None:
    op.drop_table("weight_sales")
    op.drop_table("compute_unit_payments")
    op.drop_table("compute_jobs")
    op.drop_table("compute_devices")
    with op.batch_alter_table("index_state") as batch:
        batch.drop_column("weight_sale")
        batch.drop_column("compute_market")
    op.drop_index("ix_indexed_events_sale_name", table_name="indexed_events")
    op.drop_index("ix_indexed_events_job_name", table_name="indexed_events")
    with op.batch_alter_table("indexed_events") as batch:
        batch.drop_column("sale_id")
        batch.drop_column("job_id")
