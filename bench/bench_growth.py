"""Decision latency with 0, 10^4, 10^5 and 10^6 authorizations of history in the window.

The ledger promises a decision whose cost history cannot grow: each window is read from a
bounded number of spend buckets, never by summing its authorizations. This measures
``Gateway.authorize`` in-process in venues holding that much history, spread over the last
30 days (the monthly window, which holds the daily one), half of it the deciding agent's,
beside the venue without history. The target is **10^6 within 1.5x of the empty venue**
(p50 ratio); every other size is held to the same bound.

How, and why so: every size has its own venue in one database, all of them loaded before
anything is measured, and then the venues are measured in alternating slices. Each
decision therefore runs against tables holding all the history (1.11 million
authorizations and their buckets, as a venue on a shared gateway does), and what differs
between the rows is only the history in the venue's own windows: what the promise is
about. Loading the sizes one after another and measuring each in turn would have mixed
that with the tables' growth and with drift of the machine. What the tables' size costs
by itself is shown apart: the empty venue measured once more before any history existed
(at another moment, so with more noise).

History is written in bulk on the write transaction's own driver connection (one
``executemany`` on SQLite, ``COPY`` on PostgreSQL), with the spend buckets its holds add up
to, and cross-checked: the ledger must read exactly what the rows hold. On PostgreSQL the
tables are then vacuumed and analyzed, as autovacuum would soon after such a load (left
to it, it would do so while decisions are measured). Every measured
request is approved, so each takes the full hot path.

Run ``.venv/bin/python bench/bench_growth.py`` (``--quick`` for sizes up to 10^4,
``--no-postgres`` without a PostgreSQL server). A full run writes 1.11 million
authorizations into each store and takes a few minutes.
"""

from __future__ import annotations

import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Table, func, select

from _common import (
    AGENT,
    Timing,
    arguments,
    deciding,
    interleaved,
    machine,
    measure,
    stores,
    venue_with_agent,
    verdict,
)
from agenitry.gateway import Database, Gateway
from agenitry.gateway._clock import DAY, MINUTE
from agenitry.gateway.service import ledger
from agenitry.gateway.store.schema import authorizations, spend_buckets

#: The target: the largest history within this many empty venues (p50).
TARGET = 1.5
#: History is spread over the monthly window.
HISTORY_SPAN = 30 * DAY
OTHER_AGENTS = tuple(f"agent-{number}" for number in range(20))
#: The statuses history ends in, weighted 70/10/15/5: one draw of an index picks one.
STATUS_DRAW = ("settled",) * 70 + ("executed",) * 10 + ("denied",) * 15 + ("reversed",) * 5
HISTORY_COLUMNS = (
    "id",
    "venue_id",
    "agent_id",
    "action",
    "currency",
    "amount",
    "actual_amount",
    "hold",
    "status",
    "denial_code",
    "created_at",
    "requested_by",
    "decided_by",
)
BUCKET_COLUMNS = ("venue_id", "scope", "width", "start", "amount")

Buckets = defaultdict[tuple[str, int, int], int]


# -- history -----------------------------------------------------------------------------------


def history_rows(
    venue_id: str, count: int, rng: random.Random, now: int, buckets: Buckets
) -> Iterator[tuple[Any, ...]]:
    """``count`` finished authorizations (``HISTORY_COLUMNS``), yielded one at a time so a
    million never sit in memory; each one's hold is added to ``buckets`` (by scope, width
    and start) as it goes, as the gateway's ledger would have.

    Drawn with ``rng.random`` alone, and with ids of the gateway's length in hex rather
    than its base32: ``randint``, ``choices`` and ``new_id`` made up most of a million
    rows' load time."""
    draw = rng.random
    for _ in range(count):
        created = now - MINUTE - int(draw() * (HISTORY_SPAN - 2 * MINUTE))
        agent = AGENT if draw() < 0.5 else OTHER_AGENTS[int(draw() * len(OTHER_AGENTS))]
        amount = 100 + int(draw() * 49_900)
        status = STATUS_DRAW[int(draw() * len(STATUS_DRAW))]
        actual = None if status == "denied" else int(draw() * amount) if status == "executed" else amount
        hold = actual if actual is not None and status in ("settled", "executed") else 0
        denial = "max_daily_spend" if status == "denied" else None
        yield (
            f"auth_{rng.getrandbits(104):026x}",
            *(venue_id, agent, "purchase_order", "USD", amount, actual, hold, status, denial, created),
            *("bench", "policy"),
        )
        if hold:
            for scope in (ledger.VENUE_SCOPE, agent):
                for width in ledger.WIDTHS:
                    buckets[(scope, width, created - created % width)] += hold


def bulk_insert(conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
    """``rows`` into ``table`` on the transaction's own driver connection: at a million rows,
    SQLAlchemy's handling of each row's parameters would take most of the load time."""
    driver: Any = conn.connection.driver_connection
    names = ", ".join(columns)
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in columns)
        driver.executemany(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", rows)  # noqa: S608 (our names)
        return
    # Millions of rows may outlast the gateway's statement timeout, which is meant for requests.
    conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
    with driver.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


@contextmanager
def roomy_cache(conn: Connection) -> Iterator[None]:
    """On SQLite, a page cache of 256 MB rather than 2 MB while the block runs: a million
    rows' inserts into the indexes, at random places, took twice as long with the default.
    The connection goes back to the pool with its own cache size."""
    if conn.dialect.name != "sqlite":
        yield
        return
    driver: Any = conn.connection.driver_connection
    (size,) = driver.execute("PRAGMA cache_size").fetchone()
    driver.execute("PRAGMA cache_size=-262144")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA cache_size={int(size)}")


def analyzed(database: Database) -> None:
    """On PostgreSQL, the loaded tables vacuumed and analyzed: what autovacuum does soon
    after such a load, and left to it, would do while the decisions are being measured."""
    if database.dialect == "postgresql":
        with database.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE authorizations, spend_buckets"
            )


def add_history(database: Database, venue_id: str, count: int, rng: random.Random) -> None:
    """``count`` authorizations of history in ``venue_id``, with their spend buckets, in one
    transaction; raises if the ledger then reads other sums than the rows hold."""
    now = int(time.time() * 1000)
    buckets: Buckets = defaultdict(int)
    with database.write() as conn, roomy_cache(conn):
        bulk_insert(conn, authorizations, HISTORY_COLUMNS, history_rows(venue_id, count, rng, now, buckets))
        bucket_rows = ((venue_id, scope, width, start, amount) for (scope, width, start), amount in buckets.items())
        bulk_insert(conn, spend_buckets, BUCKET_COLUMNS, bucket_rows)
    analyzed(database)
    with database.read() as conn:
        for scope, since in ((ledger.VENUE_SCOPE, now - DAY), (AGENT, now - HISTORY_SPAN)):
            direct = select(func.coalesce(func.sum(authorizations.c.hold), 0)).where(
                authorizations.c.venue_id == venue_id, authorizations.c.created_at >= since
            )
            if scope:
                direct = direct.where(authorizations.c.agent_id == scope)
            if ledger.held_since(conn, venue_id, scope, since) != conn.execute(direct).scalar_one():
                raise RuntimeError("the history's spend buckets disagree with its authorizations")


# -- measuring -----------------------------------------------------------------------------------


def header(what: str) -> None:
    """The heading of the table :func:`row` prints, its second column ``what`` each row measures."""
    print("p50 ratio = the row's median latency / the empty venue's\n")
    print(f"{'store':<11}{what:<38}{'loaded in':>18}{'n':>6}{'per s':>8}{'p50 ms':>9}{'p99 ms':>9}   p50 ratio")
    print("-" * 140)


def row(store: str, name: str, timing: Timing, ratio: str, loaded: str = "") -> None:
    line = f"{store:<11}{name:<38}{loaded:>18}{timing.n:>6}{timing.per_second:>8,.0f}"
    print(f"{line}{timing.ms(0.5):>9.3f}{timing.ms(0.99):>9.3f}   {ratio}", flush=True)


def bench_store(store: str, url: str, sizes: list[int], n: int) -> None:
    database = Database(url)
    try:
        database.migrate()
        gateway = Gateway(database)
        rng = random.Random(7)
        _, empty_agent, _ = venue_with_agent(gateway)
        before = measure(deciding(gateway, empty_agent), n)
        calls = [deciding(gateway, empty_agent)]
        loads = [""]
        for size in sizes[1:]:
            venue_id, agent, _ = venue_with_agent(gateway)
            began = time.perf_counter()
            add_history(database, venue_id, size, rng)
            seconds = time.perf_counter() - began
            loads.append(f"{seconds:.1f} s ({size / seconds / 1000:,.0f}k/s)")
            calls.append(deciding(gateway, agent))
        timings = interleaved(calls, n, rounds=10)
        empty = timings[0]
        ratio = before.ms(0.5) / empty.ms(0.5)
        row(store, f"{0:>9,} before any history existed", before, f"{ratio:.2f}x (the tables' size, measured apart)")
        for size, timing, loaded in zip(sizes, timings, loads):
            ratio_text = verdict(timing.ms(0.5) / empty.ms(0.5), TARGET) if size else "1.00x (the empty venue)"
            row(store, f"{size:>9,} in the venue's 30 days", timing, ratio_text, loaded)
    finally:
        database.dispose()


def main() -> int:
    args = arguments(__doc__.splitlines()[0], "history up to 10^4 and fewer requests")
    sizes = [0, 10_000] if args.quick else [0, 10_000, 100_000, 1_000_000]
    n = 200 if args.quick else 500

    print(f"Agenitry decision latency with history, {'quick' if args.quick else 'full'} run: {machine()}")
    print(f"{sum(sizes):,} authorizations of history per store, {n} decisions per venue in 10 alternating slices")
    header("history")
    with stores(not args.no_postgres) as (_, measured):
        for store, url in measured:
            bench_store(store, url, sizes, n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
