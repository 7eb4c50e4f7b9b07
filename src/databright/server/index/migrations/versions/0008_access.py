"""The paid-access register: the DataAccess contract an index follows beside the markets.

Its events (a dataset's access price set, access bought) are rows of ``indexed_events`` like
any other's, so only where it is recorded is new. An index made before has none of them (its
indexer never read that contract): the indexer replays the chain once when it is first given
one (see :class:`databright.server.index.Indexer`).

Revision ID: 0008_access
Revises: 0007_read_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_access"
down_revision = "0007_read_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("index_state") as batch:
        batch.add_column(sa.Column("data_access", sa.String(42), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("index_state") as batch:
        batch.drop_column("data_access")
