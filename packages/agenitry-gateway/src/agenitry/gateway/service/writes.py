"""Rows a decision writes, sent to the database together.

A decision's writes need no answer from the database: the authorization, its event, the
Merkle nodes the event completes and the venue's event count are all known once the
decision is made (the count from the venue's row, read under its lock). On PostgreSQL,
where every statement is a round trip, they go as one statement: each insert a
data-modifying CTE of the count's update, one round trip for all. Its text is made once
per shape (tables and numbers of rows) and sent as is: through SQLAlchemy's compiler, a
statement with rows in it is compiled anew on every call, which cost more than the round
trips saved. Such sub-statements run on one snapshot and cannot see each other's rows;
none of these reads another's, and the constraints between them (an event's
authorization) are checked at the end of the statement, when all are written. On SQLite,
where a statement costs no round trip, each insert is run on its own, built once. Both
run on the driver's cursor (:mod:`agenitry.gateway.store.driver`).
"""

from __future__ import annotations

import functools
from typing import Any, Optional

from sqlalchemy import JSON, Connection, Table

from agenitry.gateway.store import driver
from agenitry.gateway.store.driver import Sql

_ADD_EVENTS = Sql("UPDATE venues SET event_count = event_count + :count WHERE id = :venue_id")


class Writes:
    """Inserts (and events counted) waiting to be sent by :meth:`flush`."""

    __slots__ = ("_first", "_inserts", "events")

    def __init__(self) -> None:
        self._first: list[tuple[Sql, dict[str, Any]]] = []
        self._inserts: list[tuple[Table, list[dict[str, Any]]]] = []
        #: Events among the inserts: the venue's event count grows by as many.
        self.events = 0

    def __bool__(self) -> bool:
        return bool(self._first or self._inserts or self.events)

    def first(self, statement: tuple[Sql, dict[str, Any]]) -> None:
        """Queue ``statement``, sent before the inserts (on PostgreSQL in the same round
        trip). Nothing looks at its answer: one that must refuse has to fail."""
        self._first.append(statement)

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Queue ``rows`` (every one with the same columns) for ``table``."""
        if rows:
            self._inserts.append((table, rows))

    def flush(self, conn: Connection, venue_id: str, *after: tuple[Sql, dict[str, Any]]) -> None:
        """Send what waits, in the order it was added, then ``after`` (on PostgreSQL, all in
        one round trip), and forget it."""
        waiting = self.taken(conn, venue_id)
        if waiting is not None:
            driver.together(conn, [*waiting, *after])
            return
        first, inserts, count = self._first, self._inserts, self.events
        self._first, self._inserts, self.events = [], [], 0
        for sql, parameters in first:
            driver.run(conn, sql, parameters)
        for table, rows in inserts:
            columns = tuple(rows[0])
            encoded = [_encoded(conn, table, row) for row in rows]
            driver.run_many(conn, _insert(table, columns), encoded)
        if count:
            driver.run(conn, _ADD_EVENTS, {"venue_id": venue_id, "count": count})
        for sql, parameters in after:
            driver.run(conn, sql, parameters)

    def taken(self, conn: Connection, venue_id: str) -> Optional[list[tuple[Sql, dict[str, Any]]]]:
        """On PostgreSQL, what :meth:`flush` would send, to send it another way (with the
        ``COMMIT``), and forgotten here; None on SQLite, where each insert runs on its own."""
        if conn.dialect.name != "postgresql":
            return None
        first, inserts, count = self._first, self._inserts, self.events
        self._first, self._inserts, self.events = [], [], 0
        return [*first, *_postgresql(conn, venue_id, inserts, count)]


def _postgresql(
    conn: Connection, venue_id: str, inserts: list[tuple[Table, list[dict[str, Any]]]], count: int
) -> list[tuple[Sql, dict[str, Any]]]:
    """The one statement of ``inserts`` and the event count's update, if any."""
    if not inserts and not count:
        return []
    sql = _combined(tuple((table, len(rows), tuple(rows[0])) for table, rows in inserts), bool(count))
    params: dict[str, Any] = {"venue_id": venue_id, "count": count}
    for k, (table, rows) in enumerate(inserts):
        for r, row in enumerate(_encoded(conn, table, row) for row in rows):
            params.update((f"w{k}_{r}_{column}", value) for column, value in row.items())
    return [(sql, params)]


def _encoded(conn: Connection, table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its JSON columns' values as SQLAlchemy would bind them (None too is JSON's null)."""
    json = _json_columns(table)
    if not json:
        return row
    return {
        column: driver.json_encoder(conn, table.c[column])(value) if column in json else value
        for column, value in row.items()
    }


@functools.lru_cache(maxsize=64)
def _insert(table: Table, columns: tuple[str, ...]) -> Sql:
    # Names from the schema and the gateway's own rows; every value is a parameter.
    names = ", ".join(columns)
    return Sql(f"INSERT INTO {table.name} ({names}) VALUES ({', '.join(f':{c}' for c in columns)})")  # noqa: S608


@functools.lru_cache(maxsize=64)
def _combined(shape: tuple[tuple[Table, int, tuple[str, ...]], ...], count: bool) -> Sql:
    """The one PostgreSQL statement of inserts of this shape (table, rows, columns) and the
    count's update: built once per shape, sent as is (no SQL compiler per call)."""
    statements = []
    for k, (table, size, columns) in enumerate(shape):
        rows = ", ".join("(" + ", ".join(f":w{k}_{r}_{column}" for column in columns) + ")" for r in range(size))
        # Names from the schema and the gateway's own rows; every value is a parameter.
        statements.append(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {rows}")  # noqa: S608
    if count:
        statements.append(_ADD_EVENTS.text)
    *ctes, main = statements
    if not ctes:
        return Sql(main, prepared=True)
    combined = "WITH " + ", ".join(f"write_{k} AS ({statement})" for k, statement in enumerate(ctes)) + " " + main
    return Sql(combined, prepared=True)


@functools.lru_cache(maxsize=32)
def _json_columns(table: Table) -> frozenset[str]:
    return frozenset(column.name for column in table.columns if isinstance(column.type, JSON))
