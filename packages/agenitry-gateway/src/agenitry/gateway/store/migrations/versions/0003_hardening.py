"""hardening: REPLACE cannot rewrite an append-only row

Revision ID: 0003
Revises: 0002

On SQLite, ``INSERT OR REPLACE`` (and ``REPLACE``) deletes the row it collides with
without firing its DELETE trigger (unless recursive_triggers is on), so it could rewrite
an event, a tree node or a checkpoint. A BEFORE INSERT trigger on each append-only table
now refuses any insert whose key is taken, before SQLite resolves the conflict.

PostgreSQL has no REPLACE; its one rewriting insert, ``INSERT ... ON CONFLICT DO
UPDATE``, updates the row and meets the UPDATE trigger of migration 0002, so nothing is
added there.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: Each append-only table and its keys (the primary key, then any unique key).
KEYS = {
    "events": (("venue_id", "sequence"), ("venue_id", "id")),
    "log_nodes": (("venue_id", "level", "node_index"),),
    "checkpoints": (("venue_id", "number"),),
}


def upgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    for table, keys in KEYS.items():
        taken = " OR ".join("(" + " AND ".join(f"{column} = NEW.{column}" for column in key) + ")" for key in keys)
        refuse = f"SELECT RAISE(ABORT, 'agenitry: {table} is append-only (REPLACE refused)')"
        when = f"EXISTS (SELECT 1 FROM {table} WHERE {taken})"  # noqa: S608 - names only, no value
        op.execute(f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} WHEN {when} BEGIN {refuse}; END")


def downgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    for table in KEYS:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_replace")
