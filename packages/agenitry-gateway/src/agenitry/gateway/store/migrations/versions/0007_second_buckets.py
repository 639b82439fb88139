"""spend buckets of one second, so that a window's exact edge reads one second of rows

Revision ID: 0007
Revises: 0006

From this revision the ledger adds every hold to the second in which its authorization was
created as well (width 1000 ms), and a window reads the authorizations of one second, not
of one minute, at its edge. This fills those buckets from the holds of the authorizations
created in the last 31 days (the widest window, 30 days, and the sweep's margin), so that a
gateway upgraded while windows are open still reads them exactly. One ``INSERT ... SELECT
... GROUP BY`` per scope (the venue, then each agent), written alike for SQLite and
PostgreSQL. A second's sum cannot overflow: its day bucket, which holds it, is kept under
2^62 by the ledger.

A busy venue keeps millions of second buckets, and the sweep drops the oldest every few
seconds: ``ix_spend_buckets_start`` finds them without reading the others.
"""

import time

from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SECOND = 1000
#: How far back the fill reaches: the widest window and the sweep's margin.
REACH = 31 * 24 * 3600 * SECOND

_FILL = """
INSERT INTO spend_buckets (venue_id, scope, width, start, amount)
SELECT venue_id, {scope}, {width}, created_at - created_at % {width}, SUM(hold)
FROM authorizations
WHERE hold > 0 AND created_at >= :since
GROUP BY venue_id, {group}created_at - created_at % {width}
"""


def fill_second_buckets(conn: sa.Connection, since: int) -> None:
    """Add the second buckets of every hold of an authorization created at or after ``since``."""
    for scope, group in (("''", ""), ("agent_id", "agent_id, ")):
        statement = _FILL.format(scope=scope, group=group, width=SECOND)
        conn.execute(sa.text(statement), {"since": since})


def upgrade() -> None:
    fill_second_buckets(op.get_bind(), time.time_ns() // 1_000_000 - REACH)
    op.create_index("ix_spend_buckets_start", "spend_buckets", ["start"])


def downgrade() -> None:
    op.drop_index("ix_spend_buckets_start", table_name="spend_buckets")
    op.get_bind().execute(sa.text("DELETE FROM spend_buckets WHERE width = :width"), {"width": SECOND})
