"""A settled proposal's status as a column, so lists filter and count in SQL; a proposal's
events found by id and kind.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("indexed_events") as batch:
        batch.add_column(sa.Column("status", sa.SmallInteger(), nullable=True))
    events = sa.table(
        "indexed_events",
        sa.column("id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("args", sa.JSON()),
        sa.column("status", sa.SmallInteger()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(events.c.id, events.c.args).where(events.c.name == "ProposalFinalized")
    ).all()
    for row_id, args in rows:
        connection.execute(
            events.update().where(events.c.id == row_id).values(status=int(args["status"]))
        )
    op.create_index(
        "ix_indexed_events_name_dataset_status", "indexed_events", ["name", "dataset_id", "status"]
    )
    # A proposal's events by kind: what "is it settled" asks for each proposal of a page.
    op.drop_index("ix_indexed_events_proposal", table_name="indexed_events")
    op.create_index("ix_indexed_events_proposal_name", "indexed_events", ["proposal_id", "name"])


def downgrade() -> None:
    op.drop_index("ix_indexed_events_proposal_name", table_name="indexed_events")
    op.create_index("ix_indexed_events_proposal", "indexed_events", ["proposal_id"])
    op.drop_index("ix_indexed_events_name_dataset_status", table_name="indexed_events")
    with op.batch_alter_table("indexed_events") as batch:
        batch.drop_column("status")
