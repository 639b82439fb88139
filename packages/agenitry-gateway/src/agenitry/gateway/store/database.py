"""Engines, transactions and migrations for SQLite and PostgreSQL.

Every write transaction serializes on its venue: on SQLite with ``BEGIN IMMEDIATE`` (one
writer at a time, waiting up to the busy timeout), on PostgreSQL by locking the venue's
row ``FOR UPDATE`` (:meth:`Database.lock_venue`). A decision and its hold therefore happen as one atomic step however
many threads, processes or gateway instances race, and since one venue's writes only
ever take that one lock, they cannot deadlock.
"""

from __future__ import annotations

import os
import selectors
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Row, bindparam, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from agenitry.gateway.errors import NotFound, StorageBusy
from agenitry.gateway.store.schema import venues

_MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE = "agenitry_write"
_MIGRATION_LOCK = 0x4147_4E54  # any constant shared by every instance
# Built once: every write starts with it, and building it cost more than running it.
_VENUE = select(venues).where(venues.c.id == bindparam("venue_id"))
_LOCKED_VENUE = {"postgresql": _VENUE.with_for_update(), "sqlite": _VENUE}


_SQLITE_WRITERS: dict[str, threading.Lock] = {}
_SQLITE_WRITERS_LOCK = threading.Lock()


def _sqlite_writer(url: str) -> threading.Lock:
    """The lock of this process's writers to one SQLite database (one per file)."""
    with _SQLITE_WRITERS_LOCK:
        return _SQLITE_WRITERS.setdefault(url, threading.Lock())


def normalize_url(url: str) -> str:
    """Accept the URLs people write and pick our drivers: ``postgresql://`` → psycopg 3."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """A database the gateway keeps its state in."""

    def __init__(self, url: str, *, busy_timeout_s: float = 30.0, pool_size: int = 10) -> None:
        self.url = normalize_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self.busy_timeout_s = busy_timeout_s
        self._writer: Optional[threading.Lock] = None
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
        path = make_url(self.url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
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
            # No server-side prepared statements: their generic plans, made once per
            # connection (often on a young, empty table), ignore the venue and the
            # times; one scanned a venue's 100,000 authorizations on every write.
            connect_args={"connect_timeout": 5, "prepare_threshold": None},
        )

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

        return engine

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
                    transaction.commit()
                except (OperationalError, PoolTimeout) as exc:
                    # The COMMIT may have reached the database before the connection
                    # broke: whether the write happened cannot be known from here.
                    raise StorageBusy(
                        "The gateway lost its database while committing: the request may or may not have"
                        " been applied. Retry it with the same Idempotency-Key to get its one answer.",
                        outcome="unknown",
                    ) from exc

    def lock_venue(self, conn: Connection, venue_id: str) -> Row[Any]:
        """Read the venue's row and hold its lock until the transaction ends.

        Raises :class:`NotFound` when there is no such venue.
        """
        row = conn.execute(_LOCKED_VENUE[self.dialect], {"venue_id": venue_id}).first()
        if row is None:
            raise NotFound(f"Venue '{venue_id}' not found", code="venue_not_found")
        return row

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
            raise StorageBusy(
                "The gateway's database is unavailable or busy; nothing was changed. Retry shortly."
            ) from exc

    def migrate(self) -> None:
        """Bring the schema to the newest migration (safe to run at every start)."""
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self._storage_errors(), self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Instances starting together on an empty database take turns.
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def dispose(self) -> None:
        self.engine.dispose()


def default_sqlite_url() -> str:
    """The embedded default: ``agenitry.db`` in the working directory."""
    return "sqlite:///" + os.path.abspath("agenitry.db")
