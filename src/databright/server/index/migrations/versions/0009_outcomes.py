"""A settled proposal's outcome (shares minted, yes and no votes) kept on its ProposalCreated
row beside its status, so a page of proposals is one query: reading each page's settlements
back by proposal id was a third of a page read on PostgreSQL. NULL until the settlement is
indexed (and again if a reorg takes it away). The upgrade fills it from the ProposalFinalized
rows; the downgrade drops it.

Revision ID: 0009_outcomes
Revises: 0008_access
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from databright.server.index.schema import Uint256

revision = "0009_outcomes"
down_revision = "0008_access"
branch_labels = None
depends_on = None

# What the outcome holds, written out: a migration does not follow later code.
_FIELDS = ("shares", "yes_votes", "no_votes")


def upgrade() -> None:
    with op.batch_alter_table("indexed_events") as batch:
        batch.add_column(sa.Column("outcome", sa.JSON(), nullable=True))
    events = sa.table(
        "indexed_events",
        sa.column("id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("proposal_id", Uint256()),
        sa.column("args", sa.JSON()),
        sa.column("outcome", sa.JSON()),
    )
    connection = op.get_bind()
    settled = connection.execute(
        sa.select(events.c.proposal_id, events.c.args)
        .where(events.c.name == "ProposalFinalized")
        .order_by(events.c.id)
    ).all()
    for proposal_id, args in settled:
        connection.execute(
            events.update()
            .where(events.c.name == "ProposalCreated", events.c.proposal_id == proposal_id)
            .values(outcome={k: (args or {}).get(k) for k in _FIELDS})
        )


def downgrade() -> None:
    with op.batch_alter_table("indexed_events") as batch:
        batch.drop_column("outcome")
