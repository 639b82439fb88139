"""How fast the gateway decides: authorize decisions per second and p50/p99 latency.

Each figure stands beside a floor measured the same way in the same process, with the
ratio between them:

- ``Gateway.authorize`` in-process on SQLite (a file in a temporary directory) beside a
  bare ``BEGIN IMMEDIATE; INSERT one row; COMMIT`` on the same database, and on
  PostgreSQL (a fresh database, dropped at the end) beside ``BEGIN; INSERT; COMMIT``;
- ``POST /v1/authorize`` through a real ``agenitry serve`` process with keep-alive httpx
  clients (one, then 8 from threads) beside a ``GET /healthz`` round trip on that server;
- one decision with 0, 10^4 and 10^5 authorizations of history in its windows, beside
  the empty venue: the ledger promises a cost that history cannot grow.

Every measured request is approved (the policies' limits are far away), so each one
does the full hot path: expiry check, policies, three windows, the insert, the hold
and the audit event. Run ``.venv/bin/python bench/bench_authorize.py`` (``--quick``
for a short run, ``--no-postgres`` without a PostgreSQL server).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import httpx
from sqlalchemy import Column, Integer, MetaData, String, Table, event, func, insert, select

from agenitry.gateway import Database, Gateway, Principal
from agenitry.gateway._clock import DAY, MINUTE
from agenitry.gateway._ids import new_id
from agenitry.gateway.service import ledger
from agenitry.gateway.store.schema import authorizations, spend_buckets

ROOT = Path(__file__).resolve().parents[1]
AGENT = "voice-agent"
#: Limits no benchmark request reaches: every decision takes the approving path.
POLICIES = (
    {"max_daily_spend": 10**9, "max_monthly_spend": 10**10},
    {"agent_id": AGENT, "max_single_amount": 10_000, "max_daily_spend": 10**9},
)
#: History is spread over the monthly window.
HISTORY_SPAN = 30 * DAY
REQUEST = {"agent_id": AGENT, "action": "purchase_order", "amount": 12.34}

baseline_rows = Table(
    "bench_baseline",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("note", String(40), nullable=False),
)


@dataclass
class Timing:
    """Latencies of ``n`` calls and the wall time they took together."""

    latencies: list[float]
    wall: float

    @property
    def n(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.n / self.wall

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure(call: Callable[[], Any], n: int, *, threads: int = 1, warmup: int = 20) -> Timing:
    """Run ``call`` ``n`` times, spread over ``threads`` threads started together."""
    for _ in range(warmup):
        call()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads + 1)

    def run(index: int) -> None:
        mine = latencies[index]
        start.wait()
        for _ in range(n // threads):
            began = time.perf_counter()
            call()
            mine.append(time.perf_counter() - began)

    workers = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    return Timing([value for values in latencies for value in values], time.perf_counter() - began)


class Report:
    """The printed table: one row per figure, with its floor and the ratio between them."""

    def __init__(self) -> None:
        #: The statements one in-process authorize sent, per store.
        self.statements: list[tuple[str, list[str]]] = []
        print(
            f"{'scenario':<44} {'n':>6} {'decisions/s':>11} {'p50 ms':>8} {'p99 ms':>8}"
            f"   {'floor':<30} {'ops/s':>8} {'p50 ms':>8}  {'p50 ratio':>9}"
        )
        print("-" * 145)

    def row(self, name: str, timing: Timing, floor_name: str = "", floor: Optional[Timing] = None) -> None:
        line = f"{name:<44} {timing.n:>6} {timing.per_second:>11,.0f} {timing.percentile(0.5):>8.2f}"
        line += f" {timing.percentile(0.99):>8.2f}"
        if floor is not None:
            ratio = timing.percentile(0.5) / floor.percentile(0.5)
            line += f"   {floor_name:<30} {floor.per_second:>8,.0f} {floor.percentile(0.5):>8.2f}  {ratio:>8.1f}x"
        print(line, flush=True)


# -- setup -----------------------------------------------------------------------------


def venue_with_agent(gateway: Gateway) -> tuple[str, Principal, str]:
    """A fresh venue with its policies; returns its id, the agent's principal and key."""
    venue_id = f"bench-{new_id('v')[2:14].lower()}"
    gateway.create_venue(venue_id)
    admin = Principal.operator(venue_id)
    for policy in POLICIES:
        gateway.put_policy(admin, dict(policy))
    _, secret = gateway.create_key(admin, role="agent", agent_id=AGENT)
    return venue_id, gateway.authenticate(secret), secret


def write_floor(database: Database) -> Callable[[], None]:
    """One bare write transaction with one row, through the gateway's own engine."""
    baseline_rows.create(database.engine, checkfirst=True)

    def one() -> None:
        with database.write() as conn:
            conn.execute(insert(baseline_rows).values(note="floor"))

    return one


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements sent while the block runs."""
    seen: list[str] = []

    def keep(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", keep)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this run (the test suite's own helpers)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support.databases import create_postgres_database, drop_postgres_database

    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@contextmanager
def serve(database_url: str, log: Path) -> Iterator[str]:
    """``agenitry serve`` on a free port, until the block ends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "agenitry.gateway.cli", "serve", "--db", database_url, "--port", str(port)]
    command += ["--log-level", "warning", "--sweep-interval", "0"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agenitry serve did not start:\n{log.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- history -----------------------------------------------------------------------------


def add_history(database: Database, venue_id: str, count: int, rng: random.Random) -> None:
    """``count`` finished authorizations spread over the last 30 days (the monthly window,
    which holds the daily one), half of them the benchmark agent's, written in bulk with
    the spend buckets their holds add up to."""
    now = int(time.time() * 1000)
    rows: list[dict[str, Any]] = []
    buckets: dict[tuple[str, int, int], int] = {}
    for _ in range(count):
        created = now - rng.randint(MINUTE, HISTORY_SPAN - MINUTE)
        agent = AGENT if rng.random() < 0.5 else f"agent-{rng.randrange(20)}"
        amount = rng.randint(100, 50_000)
        status = rng.choices(["settled", "executed", "denied", "reversed"], [70, 10, 15, 5])[0]
        actual = None if status == "denied" else amount if status != "executed" else rng.randint(0, amount)
        hold = actual if status in ("settled", "executed") else 0
        rows.append(
            {
                "id": new_id("auth"),
                "venue_id": venue_id,
                "agent_id": agent,
                "action": "purchase_order",
                "currency": "USD",
                "amount": amount,
                "actual_amount": actual,
                "hold": hold,
                "status": status,
                "denial_code": "max_daily_spend" if status == "denied" else None,
                "created_at": created,
                "requested_by": "bench",
                "decided_by": "policy",
            }
        )
        for scope in (ledger.VENUE_SCOPE, agent):
            for width in ledger.WIDTHS:
                key = (scope, width, created - created % width)
                buckets[key] = buckets.get(key, 0) + hold
    if not rows:
        return
    with database.write() as conn:
        for first in range(0, len(rows), 5_000):
            conn.execute(insert(authorizations), rows[first : first + 5_000])
        conn.execute(
            insert(spend_buckets),
            [
                {"venue_id": venue_id, "scope": scope, "width": width, "start": start, "amount": amount}
                for (scope, width, start), amount in buckets.items()
            ],
        )
    if database.dialect == "postgresql":
        # What autovacuum does within a minute of such a load: figures without it would
        # be of plans made on an empty table.
        with database.write() as conn:
            conn.exec_driver_sql("ANALYZE authorizations, spend_buckets")
    # The ledger must read exactly what the rows hold, or the figures would be of a lie.
    with database.read() as conn:
        for scope, since in ((ledger.VENUE_SCOPE, now - DAY), (AGENT, now - HISTORY_SPAN)):
            direct = select(func.coalesce(func.sum(authorizations.c.hold), 0)).where(
                authorizations.c.venue_id == venue_id, authorizations.c.created_at >= since
            )
            if scope:
                direct = direct.where(authorizations.c.agent_id == scope)
            if ledger.held_since(conn, venue_id, scope, since) != conn.execute(direct).scalar_one():
                raise RuntimeError("the history's spend buckets disagree with its authorizations")


# -- scenarios ---------------------------------------------------------------------------


def in_process(report: Report, store: str, url: str, n: int) -> None:
    database = Database(url)
    database.migrate()
    gateway = Gateway(database)
    _, agent, _ = venue_with_agent(gateway)

    def decide() -> None:
        gateway.authorize(agent, dict(REQUEST))

    floor_name = "BEGIN IMMEDIATE;INSERT;COMMIT" if store == "sqlite" else "BEGIN;INSERT;COMMIT"
    floor = write_floor(database)
    decide()
    with statements(database) as sent:
        decide()
    report.row(f"{store:<10} in-process Gateway.authorize", measure(decide, n), floor_name, measure(floor, n))
    report.statements.append((store, [statement.split()[0] for statement in sent]))
    database.dispose()


def over_http(report: Report, store: str, url: str, n: int, folder: Path) -> None:
    database = Database(url)
    database.migrate()
    _, _, secret = venue_with_agent(Gateway(database))
    database.dispose()
    with serve(url, folder / f"serve-{store}.log") as base:
        local = threading.local()

        def client() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
            return local.client  # type: ignore[no-any-return]

        def decide() -> None:
            answer = client().post("/v1/authorize", json=REQUEST)
            if answer.status_code != 200 or not answer.json()["approved"]:
                raise RuntimeError(f"unexpected answer {answer.status_code}: {answer.text}")

        def health() -> None:
            client().get("/healthz").raise_for_status()

        for threads in (1, 8):
            name = f"{store:<10} HTTP POST /v1/authorize, {threads} client{'s' if threads > 1 else ''}"
            report.row(name, measure(decide, n, threads=threads), "GET /healthz", measure(health, n, threads=threads))


def with_history(report: Report, store: str, url: str, n: int, sizes: list[int]) -> None:
    database = Database(url)
    database.migrate()
    gateway = Gateway(database)
    rng = random.Random(7)
    empty: Optional[Timing] = None
    for size in sizes:
        venue_id, agent, _ = venue_with_agent(gateway)
        began = time.perf_counter()
        add_history(database, venue_id, size, rng)
        loaded = time.perf_counter() - began
        timing = measure(lambda agent=agent: gateway.authorize(agent, dict(REQUEST)), n)
        empty = empty or timing
        name = f"{store:<10} authorize, {size:>7,} in 30 days"
        report.row(name, timing, "the empty venue" if size else "", empty if size else None)
        if size:
            print(f"{'':<44} (history written and checked in {loaded:.1f} s)")
    database.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and at most 10^4 of history")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    n = 300 if args.quick else 2_000
    sizes = [0, 10_000] if args.quick else [0, 10_000, 100_000]

    print(
        f"Agenitry authorize benchmark: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version},"
        f" {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs (load average {os.getloadavg()[0]:.1f}),"
        f" {'quick' if args.quick else 'full'} run"
    )
    print("p50 ratio = the scenario's median latency / its floor's median latency\n")
    report = Report()
    with (
        tempfile.TemporaryDirectory(prefix="agenitry-bench-") as folder,
        optional_postgres(not args.no_postgres) as postgres_url,
    ):
        stores = [("sqlite", f"sqlite:///{Path(folder) / 'bench.db'}")]
        if postgres_url is not None:
            stores.append(("postgresql", postgres_url))
        for store, url in stores:
            in_process(report, store, url, n)
        for store, url in stores:
            over_http(report, store, url, n // 2, Path(folder))
        for store, url in stores:
            with_history(report, store, url, n // 4, sizes)
    print()
    for store, kinds in report.statements:
        print(f"SQL statements per in-process authorize on {store}: {len(kinds)} ({', '.join(kinds)}) + COMMIT")
    print("over HTTP each request also authenticates its key: one more read transaction")
    return 0


@contextmanager
def optional_postgres(wanted: bool) -> Iterator[Optional[str]]:
    if not wanted:
        yield None
        return
    with postgres_database() as url:
        yield url


if __name__ == "__main__":
    sys.exit(main())
