"""The decision path's statements, run on the driver's own cursor.

SQLAlchemy's execution of a statement (its compiled cache, parameter and result
processing, result wrapping, events) costs some 60 µs here, and the driver's cursor 4 µs
for the same indexed ``SELECT`` on SQLite: for the ten statements of a decision, SQLAlchemy
cost more than the database. So the statements every decision runs are plain SQL with
``:name`` parameters (psycopg's ``%(name)s`` made from it once), run by :func:`run` on the
connection SQLAlchemy holds, in its transaction.

What SQLAlchemy gave is kept: a driver error comes out as SQLAlchemy's (``OperationalError``
and the rest, the connection invalidated when the driver says it is lost), so storage
failures are handled as everywhere else; and the engine's ``before_cursor_execute``
listeners see every statement. Values go to the driver as they are: the statements take
numbers, text and bytes, and JSON already encoded (:func:`json_encoder`).
"""

from __future__ import annotations

import collections
import functools
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Optional

from sqlalchemy import Column, Connection, Dialect, Engine, Table
from sqlalchemy.exc import DBAPIError

#: A ``:name`` parameter; not the second colon of a ``::`` cast, nor a colon inside a word.
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


_IDLE = 0  # libpq's PQTRANS_IDLE: no transaction begun


class Sql:
    """A statement with ``:name`` parameters, spelled for each driver once.

    ``prepared``: on PostgreSQL, prepared on each connection at its first run, so that later
    runs skip the server's parsing and, once it settles on a generic plan, its planning
    (half a millisecond a statement on a busy two-core machine). Only for statements whose
    best plan cannot depend on the data: primary-key look-ups and inserts. A generic plan
    ignores the values, and one made on a young table can scan what has since grown.
    """

    __slots__ = ("prepared", "pyformat", "text")

    def __init__(self, text: str, *, prepared: bool = False) -> None:
        self.text = text
        self.prepared = prepared
        #: psycopg's spelling: a literal ``%`` doubled, each parameter ``%(name)s``.
        self.pyformat = _PARAMETER.sub(r"%(\1)s", text.replace("%", "%%"))

    def __repr__(self) -> str:
        return f"Sql({self.text!r}, prepared={self.prepared})"


_BEGIN = Sql("BEGIN")
_COMMIT = Sql("COMMIT")


def run(conn: Connection, sql: Sql, parameters: Mapping[str, Any]) -> Any:
    """Run ``sql`` on ``conn``'s driver connection; returns the driver's cursor, to fetch
    from or read ``rowcount`` of."""
    return _execute(conn, sql, parameters, many=False)


def run_many(conn: Connection, sql: Sql, rows: Sequence[Mapping[str, Any]]) -> None:
    """Run ``sql`` once for each of ``rows``, on ``conn``'s driver connection."""
    _execute(conn, sql, rows, many=True)


def together(
    conn: Connection, statements: Sequence[tuple[Sql, Mapping[str, Any]]], *, commit: bool = False
) -> list[Any]:
    """Run ``statements`` in order and return their cursors: on PostgreSQL in one round
    trip (psycopg's pipeline mode), as none needs the answer of another; on SQLite, where
    a statement costs no round trip, one after the other.

    The server runs them in order, each seeing what the ones before it did, and stops at
    the first that fails: its error is raised, the ones after it are not run. On
    PostgreSQL, the transaction's ``BEGIN`` goes with them if it has not begun, and with
    ``commit`` its ``COMMIT`` goes last (SQLAlchemy's commit then has nothing left to
    send); on SQLite the caller commits.
    """
    if conn.dialect.name != "postgresql":
        return [run(conn, sql, parameters) for sql, parameters in statements]
    dbapi_connection: Any = conn.connection.dbapi_connection
    sent = list(statements)
    begins = not dbapi_connection.autocommit and dbapi_connection.pgconn.transaction_status == _IDLE
    if begins:
        dbapi_connection.begin_explicitly()
        sent.insert(0, (_BEGIN, {}))
    if commit:
        sent.append((_COMMIT, {}))
    if len(sent) < 2:
        return [run(conn, sql, parameters) for sql, parameters in sent]
    with _driver_errors(conn, sent[0][0].pyformat, sent[0][1]), dbapi_connection.pipeline():
        cursors = [_send(conn, sql, parameters, many=False) for sql, parameters in sent]
    return cursors[1 if begins else 0 : len(cursors) - 1 if commit else None]


def _execute(conn: Connection, sql: Sql, parameters: Any, *, many: bool) -> Any:
    statement = sql.pyformat if conn.dialect.name == "postgresql" else sql.text
    with _driver_errors(conn, statement, parameters):
        return _send(conn, sql, parameters, many=many)


def _send(conn: Connection, sql: Sql, parameters: Any, *, many: bool) -> Any:
    postgresql = conn.dialect.name == "postgresql"
    statement = sql.pyformat if postgresql else sql.text
    cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    listeners = conn.dispatch.before_cursor_execute
    if listeners:
        for listener in listeners:
            listener(conn, cursor, statement, parameters, None, many)
    if many:
        cursor.executemany(statement, parameters)
    elif sql.prepared and postgresql:
        cursor.execute(statement, parameters, prepare=True)
    else:
        cursor.execute(statement, parameters)
    return cursor


@contextmanager
def _driver_errors(conn: Connection, statement: str, parameters: Any) -> Iterator[None]:
    """A driver error as SQLAlchemy raises it, the connection invalidated if it is lost."""
    dialect = conn.dialect
    try:
        yield
    except dialect.loaded_dbapi.Error as exc:
        dbapi_connection = conn.connection.dbapi_connection
        lost = dialect.is_disconnect(exc, dbapi_connection, None)
        error = DBAPIError.instance(
            statement, parameters, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
        )
        if lost:
            conn.invalidate(error)
        raise error from exc


def first(conn: Connection, sql: Sql, parameters: Mapping[str, Any]) -> Optional[tuple[Any, ...]]:
    """The first row ``sql`` returns, or None."""
    row: Optional[tuple[Any, ...]] = run(conn, sql, parameters).fetchone()
    return row


def json_encoder(conn: Connection, column: Column[Any]) -> Callable[[Any], Any]:
    """What SQLAlchemy sends for a value of the JSON ``column`` (its text on SQLite,
    psycopg's JSONB wrapper on PostgreSQL; None too is JSON's null)."""
    processor = _bind_processor(conn.dialect, column)
    if processor is None:  # pragma: no cover - SQLAlchemy's JSON always has one
        raise TypeError(f"{column} is not a JSON column")
    return processor


@functools.lru_cache(maxsize=64)
def _bind_processor(dialect: Dialect, column: Column[Any]) -> Optional[Callable[[Any], Any]]:
    processor: Optional[Callable[[Any], Any]] = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor


class Rows:
    """Every column of ``table``, read on the driver and given as SQLAlchemy gives its rows:
    by attribute, each value through the column type's own conversion (JSON decoded, a
    SQLite boolean a ``bool``)."""

    __slots__ = ("columns", "table")

    def __init__(self, table: Table) -> None:
        self.table = table
        #: The columns, in order, for a ``SELECT``.
        self.columns = ", ".join(table.columns.keys())

    def one(self, conn: Connection, row: Optional[Sequence[Any]]) -> Any:
        """``row`` (the table's columns in order) as a named row; None stays None."""
        if row is None:
            return None
        kind, processors = _row_kind(conn.dialect, self.table)
        return kind(*(value if process is None else process(value) for process, value in zip(processors, row)))

    def all(self, conn: Connection, rows: Iterable[Sequence[Any]]) -> list[Any]:
        return [self.one(conn, row) for row in rows]


@functools.lru_cache(maxsize=64)
def _row_kind(dialect: Dialect, table: Table) -> tuple[Any, list[Any]]:
    kind = collections.namedtuple(f"{table.name}_row", table.columns.keys())  # type: ignore[misc]
    processors: list[Any] = [
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in table.columns
    ]
    return kind, processors


@contextmanager
def round_trips(engine: Engine) -> Iterator[list[int]]:
    """Count the PostgreSQL round trips of the block, on the wire: libpq's trace of the
    protocol, read for each time the client, having sent, reads the server's answer.

    It traces the connection the pool hands out first, so it counts a block's round trips
    on an engine of one connection (``Database(url, pool_size=1)``) used by one thread.
    The count is in the list once the block has ended. For tests and benchmarks.
    """
    held = engine.raw_connection()
    pgconn = held.dbapi_connection.pgconn  # type: ignore[union-attr]
    held.close()  # back to the pool, where the block takes it
    counted: list[int] = []
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        try:
            yield counted
        finally:
            pgconn.untrace()
        trace.seek(0)
        directions = [line.split("\t")[1] for line in trace.read().splitlines() if line.count("\t") >= 2]
    counted.append(sum(1 for sent, answered in zip(directions, directions[1:]) if (sent, answered) == ("F", "B")))
