"""Decision cost against the storage's limit: ``Gateway.authorize`` in-process beside the
cheapest write transaction the same database can do.

On SQLite (a file in a temporary directory) and on PostgreSQL (a fresh database, dropped
at the end), in the same run and in alternating slices (so noise on a shared machine hits
every side alike):

- ``Gateway.authorize`` in-process, every request approved (the policies' limits are far
  away), so each one takes the full hot path: expiry check, policies, three windows, the
  insert, the hold and the audit event;
- the bare commit: ``BEGIN IMMEDIATE; INSERT one row; COMMIT`` on SQLite, ``BEGIN; INSERT;
  COMMIT`` on PostgreSQL, through the gateway's own ``Database`` (its engine, pool and
  pragmas). The target is **authorize in-process within 3x the bare commit** (p50 ratio);
- the same commit on the bare driver connection (stdlib ``sqlite3``, ``psycopg``) with the
  same settings: the storage's own limit, SQLAlchemy and its pool left out. The target
  there is within 10x on SQLite (a bare ``sqlite3`` commit is a few microseconds) and 3x on
  PostgreSQL: both floors are judged, since the engine's alone would hide what SQLAlchemy costs;
- 8 threads deciding at once (in one venue, whose writes serialize on its lock by design,
  and in a venue each) beside 8 threads of the bare commit.

- a whole request's service calls, ``Gateway.authenticate`` of the presented key and then
  ``Gateway.authorize``, with the key cache on (the default TTL) and off (TTL 0: the key is
  read in a transaction of its own on every request), in the same slices; then the key's
  look-up alone, both ways.

It also lists the SQL statements one authorize sends, the statements and transactions of a
request with and without the key cache, and on PostgreSQL the round trips of one decision
with an Idempotency-Key, counted on the wire (target: at most 3). Run
``.venv/bin/python bench/bench_decision.py`` (``--quick`` for a short run,
``--no-postgres`` without a PostgreSQL server); a full run takes about a minute.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, Callable, Optional

from sqlalchemy import Column, Integer, MetaData, String, Table, event, insert

from _common import REQUEST, Timing, deciding, interleaved, machine, stores, venue_with_agent, verdict
from agenitry.gateway import Database, Gateway, Principal
from agenitry.gateway.service.transactions import Idempotency
from agenitry.gateway.store import driver

#: The targets: an in-process decision within this many bare commits of the engine (p50)...
TARGET = 3.0
#: ...and within this many of the bare driver's.
DRIVER_TARGET = {"sqlite": 10.0, "postgresql": 3.0}
#: On PostgreSQL, at most this many round trips per decision.
ROUND_TRIP_TARGET = 3
THREADS = 8
#: How :func:`statements` lists a transaction's start (SQLite's own BEGIN is also a statement).
TRANSACTION = "BEGIN (a transaction)"
DRIVERS = {"sqlite": "sqlite3", "postgresql": "psycopg"}

baseline_rows = Table(
    "bench_baseline",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("note", String(40), nullable=False),
)


# -- the calls measured --------------------------------------------------------------------


def deciding_in_own_venue(gateway: Gateway, agents: list[Principal]) -> Callable[[], None]:
    """One approved decision, each thread in a venue of its own (drawn in turn from ``agents``,
    so the threads of one slice, started together, never share one)."""
    turn = itertools.cycle(agents)
    draw = threading.Lock()
    local = threading.local()

    def decide() -> None:
        if not hasattr(local, "decide"):
            with draw:
                local.decide = deciding(gateway, next(turn))
        local.decide()

    return decide


def engine_commit(database: Database) -> Callable[[], None]:
    """The bare write transaction of one row, through the gateway's own engine."""
    baseline_rows.create(database.engine, checkfirst=True)
    statement = insert(baseline_rows)  # built once, as the gateway builds its own

    def commit() -> None:
        with database.write() as conn:
            conn.execute(statement, {"note": "floor"})

    return commit


@contextmanager
def driver_commit(database: Database) -> Iterator[Callable[[], None]]:
    """The same transaction on the driver's own connection, SQLAlchemy left out.

    The connection comes from the gateway's pool, so it has the same settings (on SQLite
    WAL, ``synchronous=NORMAL`` and autocommit mode; on PostgreSQL no prepared statements),
    but it is checked out once: no pool, no pre-ping, no statement compilation."""
    proxied = database.engine.raw_connection()
    driver: Any = proxied.driver_connection
    cursor = driver.cursor()
    if database.dialect == "sqlite":

        def commit() -> None:
            cursor.execute("BEGIN IMMEDIATE")
            cursor.execute("INSERT INTO bench_baseline (note) VALUES (?)", ("raw",))
            cursor.execute("COMMIT")

    else:

        def commit() -> None:
            # psycopg begins the transaction itself before the first statement.
            cursor.execute("INSERT INTO bench_baseline (note) VALUES (%s)", ("raw",))
            driver.commit()

    try:
        yield commit
    finally:
        cursor.close()
        proxied.close()


def requesting(gateway: Gateway, secret: str) -> Callable[[], None]:
    """What a request asks of the service: its key (cached as the HTTP routes ask), then an approved decision."""

    def request() -> None:
        agent = gateway.authenticate(secret, cached=True)
        if not gateway.authorize(agent, dict(REQUEST)).body["approved"]:
            raise RuntimeError("a benchmark request was not approved: the figures would be of another path")

    return request


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements sent while the block runs; a transaction begun is listed as ``BEGIN``."""
    seen: list[str] = []

    def keep(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    def begin(conn: Any) -> None:
        seen.append(TRANSACTION)

    event.listen(database.engine, "before_cursor_execute", keep)
    event.listen(database.engine, "begin", begin)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", keep)
        event.remove(database.engine, "begin", begin)


def request_cost(database: Database, request: Callable[[], None]) -> str:
    """The statements and transactions of one request, the transactions' own BEGINs left out."""
    request()
    with statements(database) as sent:
        request()
    transactions = sent.count(TRANSACTION)
    work = [statement for statement in sent if not statement.startswith("BEGIN")]
    return f"{len(work)} statements in {transactions} transaction{'s' if transactions > 1 else ''}"


# -- the report ------------------------------------------------------------------------------


def header() -> None:
    print(f"{'store':<11}{'measured':<46}{'n':>6}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}   p50 ratio")
    print("-" * 130)


def row(store: str, name: str, timing: Timing, ratio: str = "") -> None:
    line = f"{store:<11}{name:<46}{timing.n:>6}{timing.per_second:>9,.0f}{timing.ms(0.5):>9.3f}{timing.ms(0.99):>9.3f}"
    print(f"{line}   {ratio}".rstrip(), flush=True)


def p50_ratio(timing: Timing, floor: Timing) -> float:
    return timing.ms(0.5) / floor.ms(0.5)


# -- one store -------------------------------------------------------------------------------


def bench_store(store: str, url: str, n: int) -> tuple[list[str], str]:
    """Print the store's rows; return the kinds of the statements one authorize sent, and
    what a request costs with and without the key cache."""
    database = Database(url)
    try:
        database.migrate()
        gateway = Gateway(database)
        uncached = Gateway(database, key_cache_ttl=0)
        _, agent, secret = venue_with_agent(gateway)
        own_venues = [venue_with_agent(gateway)[1] for _ in range(THREADS)]
        decide = deciding(gateway, agent)
        bare = "BEGIN IMMEDIATE; INSERT; COMMIT" if store == "sqlite" else "BEGIN; INSERT; COMMIT"
        commit = engine_commit(database)
        decide()
        with statements(database) as sent:
            decide()
        with driver_commit(database) as raw:
            authorize, floor, driver = interleaved([decide, commit, raw], n)
        row(store, "Gateway.authorize", authorize, verdict(p50_ratio(authorize, floor), TARGET))
        row(store, f"{bare} (engine)", floor, "1.00x (the bare commit)")
        share = (
            f"{p50_ratio(driver, floor):.2f}x; authorize {verdict(p50_ratio(authorize, driver), DRIVER_TARGET[store])}"
        )
        row(store, f"  the same, bare {DRIVERS[store]} connection", driver, share)
        one, each, floor = interleaved([decide, deciding_in_own_venue(gateway, own_venues), commit], n, threads=THREADS)
        row(store, f"Gateway.authorize, {THREADS} threads, one venue", one, f"{p50_ratio(one, floor):.2f}x")
        row(store, f"Gateway.authorize, {THREADS} threads, a venue each", each, f"{p50_ratio(each, floor):.2f}x")
        row(store, f"{bare}, {THREADS} threads", floor, "1.00x")
        with_cache, without = requesting(gateway, secret), requesting(uncached, secret)
        on, off = interleaved([with_cache, without], n)
        row(store, "key + authorize, key cache on", on, f"{p50_ratio(on, off):.2f}x the cache off")
        row(store, "key + authorize, key cache off (TTL 0)", off, "1.00x")
        on, off = interleaved(
            [partial(gateway.authenticate, secret, cached=True), partial(uncached.authenticate, secret, cached=True)], n
        )
        row(store, "  the key alone, key cache on", on, f"{p50_ratio(on, off):.3f}x the cache off")
        row(store, "  the key alone, key cache off (TTL 0)", off, "1.00x")
        cost = f"cache on {request_cost(database, with_cache)}; off {request_cost(database, without)}"
    finally:
        database.dispose()
    return [statement.split()[0] for statement in sent if statement != TRANSACTION], cost


def round_trips(url: str) -> int:
    """The round trips, on the wire, of one decision with an Idempotency-Key (as the client
    sends every one), on a gateway of one pooled connection, once warm."""
    database = Database(url, pool_size=1)
    try:
        gateway = Gateway(database)
        _, agent, _ = venue_with_agent(gateway)
        counted = []
        for n in range(4):  # an even and an odd index, after the first two
            key = Idempotency.of(f"bench-{n}", agent, "POST", "/v1/authorize", REQUEST)
            with driver.round_trips(database.engine) as trips:
                gateway.authorize(agent, dict(REQUEST), idempotency=key)
            counted += trips
        return max(counted[2:])
    finally:
        database.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    n = 500 if args.quick else 3_000

    print(f"Agenitry decision cost, {'quick' if args.quick else 'full'} run: {machine()}")
    print("p50 ratio = the row's median latency / the bare commit's, measured in alternating slices\n")
    header()
    sent: list[tuple[str, tuple[list[str], str]]] = []
    trips: Optional[int] = None
    with stores(not args.no_postgres) as (_, measured):
        for store, url in measured:
            sent.append((store, bench_store(store, url, n)))
            if store == "postgresql":
                trips = round_trips(url)
    print()
    for store, (kinds, cost) in sent:
        # A COMMIT sent by SQLAlchemy is no cursor statement, and is not in the list.
        commit = "" if kinds and kinds[-1] == "COMMIT" else " + COMMIT"
        print(f"SQL statements per authorize on {store}: {len(kinds)} ({', '.join(kinds)}){commit}")
        print(f"per request (key + authorize) on {store}: {cost}")
    if trips is not None:
        print(
            f"round trips per authorize on postgresql, with an Idempotency-Key, counted on the wire: {trips}"
            f" (target <= {ROUND_TRIP_TARGET}: {'met' if trips <= ROUND_TRIP_TARGET else 'MISSED'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
