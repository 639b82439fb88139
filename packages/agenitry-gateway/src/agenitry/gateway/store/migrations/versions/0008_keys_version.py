"""a version of each venue's keys, raised by every revocation

Revision ID: 0008
Revises: 0007

A gateway keeps the keys it has recently seen in memory; a write compares the version its
key was read at with ``venues.keys_version``, read under the venue's lock anyway, so a key
revoked on any instance is refused by the next write. A plain ADD COLUMN (no rebuild of the
table on SQLite).
"""

from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("venues", sa.Column("keys_version", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("venues", "keys_version")
