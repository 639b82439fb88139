"""Decision latency in a venue left by sustained load at 300 decisions a second.

The ledger promises a decision whose cost neither history nor the request rate can grow.
A window ``[start, now]`` is read from spend buckets, plus the exact holds of the
authorizations created near ``start``; those are as many as the venue made there, so the
read at a window's edge is what the rate could grow. This measures ``Gateway.authorize``
in-process in a venue whose windows hold a steady 300 authorizations a second, all of them
the deciding agent's, beside the empty venue, measured in alternating slices in the same
run. The target is **within 1.5x of the empty venue** (p50 ratio).

How, and why so: 30 days at 300 a second are 778 million authorizations, and no decision
reads them: it reads buckets, and rows only at the edges of its windows (24 hours and 30
days back). So the venue gets the spend buckets of that whole steady history, of every
width the ledger keeps, and the authorization rows only where the windows' edges fall while
the benchmark runs: from a minute before ``now - 24 h`` to ten minutes after it, and the
same around ``now - 30 days``, 198,000 rows each. Each row holds one minor unit, so that the limits of the
benchmark's policies are never reached and the ledger's sums can be checked against a
count before anything is measured. Rows and buckets are written in bulk as the growth
benchmark writes them (:mod:`bench_growth`).

Run ``.venv/bin/python bench/bench_rate.py`` (``--quick`` for fewer requests,
``--no-postgres`` without a PostgreSQL server).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator

from sqlalchemy import func, select

from _common import AGENT, arguments, deciding, interleaved, machine, stores, venue_with_agent, verdict
from agenitry.gateway import Database, Gateway
from agenitry.gateway._clock import DAY, MINUTE, SECOND
from agenitry.gateway.service import ledger
from agenitry.gateway.store.schema import authorizations, spend_buckets
from bench_growth import BUCKET_COLUMNS, HISTORY_COLUMNS, analyzed, bulk_insert, header, roomy_cache, row

#: The target: the venue under sustained load within this many empty venues (p50).
TARGET = 1.5
#: The sustained load, in authorizations a second, each holding one minor unit.
RATE = 300
#: The windows whose edges the decisions read: the daily and the monthly.
WINDOWS = (DAY, 30 * DAY)
#: The rows around each edge: from a minute before it to this long after it, as the edge
#: moves with the clock while the decisions are measured.
EDGE_SPAN = 10 * MINUTE
#: The history ends this long before the benchmark's clock: nothing is created after ``now``.
QUIET = MINUTE


class SteadyHistory:
    """:data:`RATE` authorizations of :data:`~_common.AGENT` in every second of
    ``[first, end)``, the ``i``-th of a second at millisecond ``i * 1000 // RATE`` of it."""

    def __init__(self, first: int, end: int) -> None:
        self.first = first - first % SECOND
        self.end = end - end % SECOND

    def held_since(self, start: int) -> int:
        """What the history holds at or after ``start``: one minor unit an authorization."""
        start = max(start, self.first)
        if start >= self.end:
            return 0
        second = start - start % SECOND
        in_its_second = sum(1 for i in range(RATE) if second + i * SECOND // RATE >= start)
        return in_its_second + RATE * ((self.end - second) // SECOND - 1)

    def rows(self, venue_id: str, first: int, end: int, rng: random.Random) -> Iterator[tuple[object, ...]]:
        """The authorizations (``HISTORY_COLUMNS``) created in ``[first, end)``, all settled."""
        first, end = max(first - first % SECOND, self.first), min(end, self.end)
        for second in range(first, end, SECOND):
            for i in range(RATE):
                yield (
                    f"auth_{rng.getrandbits(104):026x}",
                    *(venue_id, AGENT, "purchase_order", "USD", 1, 1, 1, "settled", None),
                    *(second + i * SECOND // RATE, "bench", "policy"),
                )

    def buckets(self, venue_id: str) -> Iterator[tuple[object, ...]]:
        """Every spend bucket (``BUCKET_COLUMNS``) the history fills, for the venue and the agent."""
        for width in ledger.WIDTHS:
            for start in range(self.first - self.first % width, self.end, width):
                seconds = (min(start + width, self.end) - max(start, self.first)) // SECOND
                for scope in (ledger.VENUE_SCOPE, AGENT):
                    yield (venue_id, scope, width, start, seconds * RATE)


def add_load(database: Database, venue_id: str, rng: random.Random) -> int:
    """The steady history's buckets and its rows at the windows' edges in ``venue_id``;
    returns how many rows. Raises if the ledger then reads other sums than the history holds."""
    now = int(time.time() * 1000)
    history = SteadyHistory(now - WINDOWS[-1] - MINUTE, now - QUIET)
    edges = [(now - window - MINUTE, now - window + EDGE_SPAN) for window in WINDOWS]
    with database.write() as conn, roomy_cache(conn):
        for first, end in edges:
            bulk_insert(conn, authorizations, HISTORY_COLUMNS, history.rows(venue_id, first, end, rng))
        bulk_insert(conn, spend_buckets, BUCKET_COLUMNS, history.buckets(venue_id))
    analyzed(database)
    with database.read() as conn:
        for window in WINDOWS:
            start = now - window
            for scope in (ledger.VENUE_SCOPE, AGENT):
                if ledger.held_since(conn, venue_id, scope, start) != history.held_since(start):
                    raise RuntimeError("the ledger reads other sums than the steady history holds")
    return sum(RATE * (end - first) // SECOND for first, end in edges)


def pruned(database: Database) -> str:
    """One sweep's prune of the spend buckets (which finds none old enough here), timed."""
    with database.read() as conn:
        kept = conn.execute(select(func.count()).select_from(spend_buckets)).scalar_one()
    began = time.perf_counter()
    with database.write() as conn:
        ledger.prune_buckets(conn, int(time.time() * 1000) - WINDOWS[-1])
    return f"the sweep's prune of the spend buckets: {(time.perf_counter() - began) * 1000:.1f} ms ({kept:,} kept)"


def bench_store(store: str, url: str, n: int) -> None:
    database = Database(url)
    try:
        database.migrate()
        gateway = Gateway(database)
        _, empty_agent, _ = venue_with_agent(gateway)
        venue_id, agent, _ = venue_with_agent(gateway)
        began = time.perf_counter()
        count = add_load(database, venue_id, random.Random(7))
        loaded = f"{time.perf_counter() - began:.1f} s"
        measuring = time.perf_counter()
        empty, loaded_timing = interleaved([deciding(gateway, empty_agent), deciding(gateway, agent)], n, rounds=10)
        if time.perf_counter() - measuring > (EDGE_SPAN - 2 * MINUTE) / SECOND:
            raise RuntimeError("the decisions outlasted the rows loaded at the windows' edges: measure fewer")
        row(store, "empty venue", empty, "1.00x (the empty venue)")
        name = f"{RATE}/s sustained, {count:,} edge rows"
        row(store, name, loaded_timing, verdict(loaded_timing.ms(0.5) / empty.ms(0.5), TARGET), loaded)
        print(f"{store:<11}{pruned(database)}", flush=True)
    finally:
        database.dispose()


def main() -> int:
    args = arguments(__doc__.splitlines()[0], "fewer requests")
    n = 200 if args.quick else 1000

    print(f"Agenitry decision latency under a sustained rate, {'quick' if args.quick else 'full'} run: {machine()}")
    print(f"{RATE} authorizations a second for 30 days in buckets, rows at the edges of the daily and monthly")
    print(f"windows; {n} decisions per venue in 10 alternating slices")
    header("venue")
    with stores(not args.no_postgres) as (_, measured):
        for store, url in measured:
            bench_store(store, url, n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
