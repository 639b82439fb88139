"""Tampering with a real database as its owner would: drop the append-only triggers, change
rows, put the triggers back, all in one transaction (so no other test sees them missing)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, bindparam, text

from agenitry.gateway import Database

APPEND_ONLY = ("events", "log_nodes", "checkpoints")
_TABLES = bindparam("tables", value=list(APPEND_ONLY), expanding=True)


def _triggers(conn: Connection) -> list[tuple[str, str, str]]:
    """(table, name, the SQL that creates it) of every append-only trigger."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text(
                "SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t"
                " JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal AND c.relname IN :tables"
            ).bindparams(_TABLES),
        )
    else:
        rows = conn.execute(
            text(
                "SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN :tables"
            ).bindparams(_TABLES),
        )
    return [(str(table), str(name), str(sql)) for table, name, sql in rows]


@contextmanager
def as_owner(database: Database) -> Iterator[Connection]:
    """A transaction in which the append-only triggers are gone."""
    with database.write() as conn:
        triggers = _triggers(conn)
        assert len(triggers) >= 6, "the append-only triggers are missing"
        for table, name, _ in triggers:
            on = f" ON {table}" if conn.dialect.name == "postgresql" else ""
            conn.execute(text(f"DROP TRIGGER {name}{on}"))
        yield conn
        for _, _, sql in triggers:
            conn.execute(text(sql))
