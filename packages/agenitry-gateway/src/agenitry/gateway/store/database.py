"""Engines, transactions and migrations for SQLite and PostgreSQL.

Every write transaction serializes on its venue: on SQLite with ``BEGIN IMMEDIATE`` (one
writer at a time, waiting up to the busy timeout), on PostgreSQL by locking the venue's
row ``FOR UPDATE`` (:meth:`Database.locking`). A decision and its hold therefore happen as one atomic step however
many threads, processes or gateway instances race, and since one venue's writes only
ever take that one lock, they cannot deadlock.

No PostgreSQL round trip outlasts the busy timeout by much: a server that answers cancels
its own statements then (``statement_timeout``), and a silent one has its connection cut
(:class:`_RoundTrips`). Either way the request is answered 503.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from agenitry.gateway.errors import NotFound, StorageBusy
from agenitry.gateway.store import driver
from agenitry.gateway.store.driver import Sql
from agenitry.gateway.store.schema import venues

logger = logging.getLogger("agenitry.gateway")

_MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE = "agenitry_write"
_WITH_COMMIT = "agenitry_with_commit"
#: A server that answers cancels a statement at the busy timeout; one whose answer is still
#: missing this much later is taken for silent.
_SILENCE_MARGIN_S = 1.0
_MIGRATION_LOCK = 0x4147_4E54  # any constant shared by every instance
# Every write starts with it: plain SQL on the driver (:mod:`~agenitry.gateway.store.driver`),
# prepared on PostgreSQL (a primary-key look-up). SQLite's lock is the write transaction itself.
_VENUE_ROWS = driver.Rows(venues)
_VENUE = f"SELECT {_VENUE_ROWS.columns} FROM venues WHERE id = :venue_id"  # noqa: S608 - no value in it
_LOCKED_VENUE = {"postgresql": Sql(f"{_VENUE} FOR UPDATE", prepared=True), "sqlite": Sql(_VENUE)}


_T = TypeVar("_T")
#: psycopg's prepare threshold: runs of one statement before it prepares it unasked.
_NEVER_PREPARED = 1 << 62

_SQLITE_WRITERS: dict[str, threading.Lock] = {}
_SQLITE_WRITERS_LOCK = threading.Lock()


def _sqlite_writer(url: str) -> threading.Lock:
    """The lock of this process's writers to one SQLite database (one per file)."""
    with _SQLITE_WRITERS_LOCK:
        return _SQLITE_WRITERS.setdefault(url, threading.Lock())


def _create_private(path: str) -> None:
    """Create the SQLite file readable by its owner only (0600), if it is missing.

    It holds every event's context. SQLite gives the -wal, -shm and -journal files the
    mode of the database file; an existing file keeps the mode its operator gave it.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def normalize_url(url: str) -> str:
    """Accept the URLs people write and pick our drivers: ``postgresql://`` → psycopg 3."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class _RoundTrips:
    """The PostgreSQL round trips in flight, and a watcher that cuts those past their deadline.

    libpq waits for an answer as long as the socket stays open, so a frozen server, or a
    proxy that hangs without closing, would hold a request until its client gives up. The
    watcher shuts such a connection's socket down: the blocked call fails as a lost
    connection, which SQLAlchemy discards and the gateway answers 503. It costs a round trip
    a dict entry under a lock; the thread runs only while round trips are in flight.
    """

    def __init__(self, limit_s: float, driver_error: type[Exception]) -> None:
        self.limit_s = limit_s
        self._driver_error = driver_error
        self._lock = threading.Lock()
        # Every deadline is its start plus limit_s, so insertion order is deadline order.
        self._deadlines: dict[Any, float] = {}
        self._unbounded: set[Any] = set()
        self._watching = False

    def run(self, dbapi_connection: Any, round_trip: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """``round_trip(*args, **kwargs)``, cut if the database leaves it unanswered past the limit."""
        self.start(dbapi_connection)
        try:
            return round_trip(*args, **kwargs)
        finally:
            self.end(dbapi_connection)

    @contextmanager
    def unbounded(self, dbapi_connection: Any) -> Iterator[None]:
        """No deadline on this connection's round trips meanwhile."""
        with self._lock:
            self._unbounded.add(dbapi_connection)
        try:
            yield
        finally:
            with self._lock:
                self._unbounded.discard(dbapi_connection)

    def start(self, dbapi_connection: Any) -> None:
        with self._lock:
            if dbapi_connection in self._unbounded:
                return
            self._deadlines.pop(dbapi_connection, None)
            self._deadlines[dbapi_connection] = time.monotonic() + self.limit_s
            if not self._watching:
                self._watching = True
                threading.Thread(target=self._watch, name="agenitry-round-trips", daemon=True).start()

    def end(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._deadlines.pop(dbapi_connection, None)

    def _watch(self) -> None:
        while True:
            with self._lock:
                pause = self._cut_overdue()
                if pause is None:
                    self._watching = False
                    return
            # A round trip that starts meanwhile ends later than the first deadline.
            time.sleep(pause)

    def _cut_overdue(self) -> Optional[float]:
        """Cut the overdue connections; return the seconds to the next deadline, None if none is left."""
        now = time.monotonic()
        while self._deadlines:
            dbapi_connection, deadline = next(iter(self._deadlines.items()))
            if deadline > now:
                return deadline - now
            del self._deadlines[dbapi_connection]
            self._cut(dbapi_connection)
        return None

    def _cut(self, dbapi_connection: Any) -> None:
        # On a duplicate of the descriptor: libpq's own stays open until libpq closes it.
        try:
            with socket.socket(fileno=os.dup(dbapi_connection.fileno())) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, self._driver_error):
            return  # the connection closed by itself meanwhile
        logger.warning("PostgreSQL left a round trip unanswered for %.1f s: its connection was cut", self.limit_s)


def _bounded_psycopg_connect(round_trips: _RoundTrips) -> Callable[..., Any]:
    """psycopg's ``connect``, making connections whose every round trip ``round_trips`` bounds.

    Hooked into psycopg's cursor and connection: SQLAlchemy's cursor events cost some 20 µs
    a statement, this about 1 µs. psycopg is imported here: SQLite alone never needs it.
    """
    import psycopg

    class BoundedCursor(psycopg.Cursor[Any]):
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            if self.connection.pgconn.pipeline_status:  # sent now, answered when the pipeline syncs
                return super().execute(*args, **kwargs)
            return round_trips.run(self.connection, super().execute, *args, **kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> None:
            round_trips.run(self.connection, super().executemany, *args, **kwargs)

    class BoundedConnection(psycopg.Connection[Any]):
        explicit = False

        def begin_explicitly(self) -> None:
            """Leave ``BEGIN`` to the caller, who sends it with the transaction's first
            statements (psycopg would send it alone, and wait): until the transaction
            ends, psycopg starts none itself."""
            self.autocommit = True
            self.explicit = True

        def _ended(self) -> None:
            if self.explicit and self.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                self.autocommit = False
                self.explicit = False

        @contextmanager
        def pipeline(self) -> Iterator[psycopg.Pipeline]:
            # Its statements wait for their answers together, when it ends: one deadline for all.
            round_trips.start(self)
            try:
                with super().pipeline() as pipeline:
                    yield pipeline
            finally:
                round_trips.end(self)

        def commit(self) -> None:
            try:
                round_trips.run(self, super().commit)
            finally:
                self._ended()

        def rollback(self) -> None:
            try:
                round_trips.run(self, super().rollback)
            finally:
                self._ended()

    def connect(*cargs: Any, **cparams: Any) -> BoundedConnection:
        return BoundedConnection.connect(*cargs, cursor_factory=BoundedCursor, **cparams)

    return connect


class Database:
    """A database the gateway keeps its state in."""

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self.busy_timeout_s = busy_timeout_s
        self._writer: Optional[threading.Lock] = None
        self._round_trips: Optional[_RoundTrips] = None
        if self.dialect == "sqlite":
            self.engine = self._sqlite_engine(busy_timeout_s, pool_size)
            # SQLite takes one writer at a time, and the others poll for its lock with
            # growing sleeps, so a newcomer can overtake a writer that waited long (a p99
            # of half a second with 8 threads). The threads of this process wait on one
            # lock instead, woken as it is released; other processes still meet SQLite's.
            self._writer = _sqlite_writer(self.url)
        elif self.dialect == "postgresql":
            self.engine = self._postgresql_engine(busy_timeout_s, pool_size)
        else:
            raise ValueError(f"Unsupported database {self.url!r}: use sqlite:/// or postgresql://")

    def _sqlite_engine(self, busy_timeout_s: float, pool_size: int) -> Engine:
        url = make_url(self.url)
        path = url.database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if "uri" not in url.query:
                _create_private(path)
        engine = create_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=4 * pool_size,
            pool_timeout=busy_timeout_s,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_s},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # We issue BEGIN ourselves, so that a write can say IMMEDIATE.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL survives a crash of the process (not of the machine).
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Connection) -> None:
            immediate = connection.get_execution_options().get(_WRITE)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def _postgresql_engine(self, busy_timeout_s: float, pool_size: int) -> Engine:
        engine = create_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=2 * pool_size,
            pool_timeout=busy_timeout_s,
            # No statement prepared on the server for having run often: its generic plan,
            # made once per connection (often on a young, empty table), ignores the venue
            # and the times; one scanned a venue's 100,000 authorizations on every write.
            # Only the decision path's key look-ups and inserts are, by name
            # (:class:`~agenitry.gateway.store.driver.Sql`); psycopg prepares none while
            # its threshold is None, hence a threshold never reached.
            connect_args={"connect_timeout": 5, "prepare_threshold": _NEVER_PREPARED},
        )
        self._round_trips = _RoundTrips(busy_timeout_s + _SILENCE_MARGIN_S, engine.dialect.loaded_dbapi.Error)
        connect = _bounded_psycopg_connect(self._round_trips)

        @event.listens_for(engine, "do_connect")
        def _connect(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
            return connect(*cargs, **cparams)

        @event.listens_for(engine, "checkout")
        def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            # Instead of pool_pre_ping's round trip on every checkout: a server that closed
            # a pooled connection (a restart, a terminated backend, a proxy) left its end of
            # file, or its last message, waiting on the socket. An idle connection has
            # nothing to read; SQLAlchemy replaces one that does before it is used.
            with selectors.DefaultSelector() as selector:
                selector.register(dbapi_connection.fileno(), selectors.EVENT_READ)
                if selector.select(timeout=0):
                    raise DisconnectionError("PostgreSQL closed this pooled connection")

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Set here rather than as a startup option, which PgBouncer refuses by default.
            # A server that answers then cancels a statement (a lock wait too) after the
            # busy timeout, and the connection stays usable.
            dbapi_connection.autocommit = True
            dbapi_connection.execute(f"SET statement_timeout = {int(busy_timeout_s * 1000)}")
            dbapi_connection.autocommit = False

        return engine

    @contextmanager
    def _unbounded(self, conn: Connection) -> Iterator[None]:
        """No deadline on the round trips of ``conn``'s transaction (a migration, or the wait for another's)."""
        if self._round_trips is None:
            yield
            return
        with self._round_trips.unbounded(conn.connection.dbapi_connection):
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            yield

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads."""
        with self._storage_errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (on SQLite, the one writer until it ends)."""
        with self._one_writer(), self._storage_errors(), self.engine.connect() as conn:
            conn = conn.execution_options(**{_WRITE: True})
            with conn.begin() as transaction:
                yield conn
                try:
                    # Statements left to send with the COMMIT (:meth:`send_with_commit`).
                    with_commit = conn.info.pop(_WITH_COMMIT, None)
                    if with_commit:
                        driver.together(conn, with_commit, commit=True)
                    transaction.commit()
                except (OperationalError, PoolTimeout) as exc:
                    if not unavailable(exc):
                        raise
                    # The COMMIT may have reached the database before the connection
                    # broke: whether the write happened cannot be known from here.
                    raise StorageBusy(
                        "The gateway lost its database while committing: the request may or may not have"
                        " been applied. Retry it with the same Idempotency-Key to get its one answer.",
                        outcome="unknown",
                    ) from exc

    def send_with_commit(self, conn: Connection, statements: list[tuple[Sql, dict[str, Any]]]) -> None:
        """Send ``statements`` when the write transaction of :meth:`write` commits, with its
        ``COMMIT`` (one round trip on PostgreSQL): none may be needed before, nor fail but
        as a broken write does (the transaction then rolls back)."""
        conn.info.setdefault(_WITH_COMMIT, []).extend(statements)

    def locking(self, venue_id: str) -> tuple[Sql, dict[str, Any]]:
        """The statement that reads the venue's row and holds its lock until the transaction
        ends, to send with others (:func:`driver.together`); its row goes to :meth:`locked`."""
        return _LOCKED_VENUE[self.dialect], {"venue_id": venue_id}

    def locked(self, conn: Connection, venue_id: str, row: Optional[tuple[Any, ...]]) -> Any:
        """The venue's row from what :meth:`locking` read; :class:`NotFound` if none."""
        venue = _VENUE_ROWS.one(conn, row)
        if venue is None:
            raise NotFound(f"Venue '{venue_id}' not found", code="venue_not_found")
        return venue

    @contextmanager
    def _one_writer(self) -> Iterator[None]:
        if self._writer is None:
            yield
            return
        if not self._writer.acquire(timeout=self.busy_timeout_s):
            raise StorageBusy(
                "The gateway's database stayed busy with other writes; nothing was changed. Retry shortly."
            )
        try:
            yield
        finally:
            self._writer.release()

    @contextmanager
    def _storage_errors(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, PoolTimeout) as exc:
            # Anything else (a constraint, an overflow, a missing table) is the gateway's
            # own failure: it goes on to the 500 handler, which logs it.
            if not unavailable(exc):
                raise
            raise StorageBusy(
                "The gateway's database is unavailable or busy; nothing was changed. Retry shortly."
            ) from exc

    def migrate(self) -> None:
        """Bring the schema to the newest migration (safe to run at every start)."""
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self._storage_errors(), self.engine.connect() as conn, conn.begin(), self._unbounded(conn):
            if self.dialect == "postgresql":
                # Instances starting together on an empty database take turns.
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def dispose(self) -> None:
        self.engine.dispose()


#: SQLite result codes (primary, the low byte) of a database that is busy or out of reach.
_SQLITE_UNAVAILABLE = frozenset(
    {
        5,  # SQLITE_BUSY
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        10,  # SQLITE_IOERR
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
    }
)
#: PostgreSQL SQLSTATE classes of the same: connection (08), a transaction rolled back by a
#: serialization failure or deadlock (40), resources (53), a lock not available (55),
#: a cancelled statement or a shutdown (57), system errors (58).
_POSTGRESQL_UNAVAILABLE = frozenset({"08", "40", "53", "55", "57", "58"})


def unavailable(exc: Exception) -> bool:
    """Whether ``exc`` says the database is out of reach or busy (retry: 503), rather
    than that the statement itself failed (the gateway's bug: 500).

    SQLAlchemy's OperationalError covers both: SQLite reports a locked database and an
    integer overflow alike as ``sqlite3.OperationalError``.
    """
    if not isinstance(exc, OperationalError) or exc.connection_invalidated:
        return True  # a pool timeout, or a lost connection
    sqlite_code = getattr(exc.orig, "sqlite_errorcode", None)
    if sqlite_code is not None:
        return sqlite_code & 0xFF in _SQLITE_UNAVAILABLE
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return str(sqlstate)[:2] in _POSTGRESQL_UNAVAILABLE
    # No code: a connection that failed or broke (or Python 3.10's sqlite3, which gives none).
    return True


def data_directory() -> Path:
    """Where the default database lives: ``$XDG_DATA_HOME/agenitry``, else ``~/.local/share/agenitry``.

    Not the working directory, so every command finds the same database wherever it runs.
    A relative XDG_DATA_HOME is ignored, as the XDG Base Directory specification asks.
    """
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return root / "agenitry"


def default_sqlite_url() -> str:
    """The default database: ``agenitry.db`` in :func:`data_directory`."""
    return "sqlite:///" + str(data_directory() / "agenitry.db")
