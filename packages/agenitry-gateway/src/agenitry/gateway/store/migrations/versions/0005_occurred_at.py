"""occurred_at: when the client logged an event, kept through a late delivery

Revision ID: 0005
Revises: 0004

A nullable column: events stored before it, and those the gateway writes itself, have
none. A plain ADD COLUMN on both databases, never a rebuild of the table: on SQLite a
rebuild (batch mode) would drop the append-only triggers of 0002 and 0003 with the old
table. Adding a column updates no row, so those triggers do not fire.
"""

from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("occurred_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("events", "occurred_at")
