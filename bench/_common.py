"""What every benchmark shares: timing, the printed verdict beside a target, a fresh
PostgreSQL database, a venue to decide in, and ``agenitry serve`` processes.

The scripts are run as ``python bench/<script>.py``, which puts this folder on
``sys.path``: they import this module as ``_common``.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from agenitry.gateway import Gateway, Principal
from agenitry.gateway._ids import new_id

ROOT = Path(__file__).resolve().parents[1]
AGENT = "voice-agent"
#: Limits no benchmark request reaches: every decision takes the approving path (expiry
#: check, policies, three windows, the insert, the hold and the audit event).
POLICIES = (
    {"max_daily_spend": 10**9, "max_monthly_spend": 10**10},
    {"agent_id": AGENT, "max_single_amount": 10_000, "max_daily_spend": 10**9},
)
REQUEST = {"agent_id": AGENT, "action": "purchase_order", "amount": 12.34}
#: What every answer to :data:`REQUEST` holds, checked by the load generator.
APPROVED = '"approved":true'


def keyed_request(secret: str) -> dict[str, Any]:
    """:data:`REQUEST` with the key that sends it, as the load generator takes one."""
    return {"body": REQUEST, "headers": {"Authorization": f"Bearer {secret}"}}


# -- timing -----------------------------------------------------------------------------


@dataclass
class Timing:
    """Latencies (seconds) of ``n`` calls and the wall time they took together."""

    latencies: list[float]
    wall: float

    @property
    def n(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.n / self.wall

    def ms(self, q: float) -> float:
        """The ``q`` quantile in milliseconds."""
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


def interleaved(calls: Sequence[Callable[[], Any]], n: int, *, rounds: int = 5, threads: int = 1) -> list[Timing]:
    """Time each of ``calls`` ``n`` times, in ``rounds`` alternating slices, so a burst of
    noise on a shared machine falls on all of them rather than on one; each slice is spread
    over ``threads`` threads, as :func:`measure` does."""
    samples: list[list[float]] = [[] for _ in calls]
    walls = [0.0 for _ in calls]
    for _ in range(rounds):
        for index, call in enumerate(calls):
            timing = measure(call, max(threads, n // rounds), threads=threads, warmup=5)
            samples[index].extend(timing.latencies)
            walls[index] += timing.wall
    return [Timing(latencies, wall) for latencies, wall in zip(samples, walls)]


def in_turns(runs: Sequence[Callable[[], Timing]], rounds: int) -> list[Timing]:
    """Each of ``runs`` ``rounds`` times, taking turns, with each one's timings pooled:
    :func:`interleaved` for runs that time themselves (a load generator's, say)."""
    pooled = [Timing([], 0.0) for _ in runs]
    for _ in range(rounds):
        for run, sums in zip(runs, pooled):
            timing = run()
            sums.latencies.extend(timing.latencies)
            sums.wall += timing.wall
    return pooled


# -- printing ---------------------------------------------------------------------------


def arguments(description: str, quick: str) -> argparse.Namespace:
    """The options every benchmark takes: ``--quick`` (which does what ``quick`` says) and
    ``--no-postgres``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    return parser.parse_args()


def machine() -> str:
    """One line saying what the figures were measured on."""
    return (
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {platform.machine()},"
        f" {len(os.sched_getaffinity(0))} CPUs (load average {os.getloadavg()[0]:.1f})"
    )


def verdict(ratio: float, target: float) -> str:
    """``ratio`` beside the target it must stay within: the word says whether it did."""
    return f"{ratio:.2f}x (target <= {target:g}x: {'met' if ratio <= target else 'MISSED'})"


def at_least(ratio: float, target: float) -> str:
    """``ratio`` beside the least it must reach: the word says whether it did."""
    return f"{ratio:.2f}x (target >= {target:g}x: {'met' if ratio >= target else 'MISSED'})"


def below(value: float, limit: float, unit: str) -> str:
    """An absolute figure beside the bound it must stay under: the word says whether it did."""
    return f"{value:.1f} {unit} (target < {limit:g} {unit}: {'met' if value < limit else 'MISSED'})"


# -- databases and venues ----------------------------------------------------------------


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped at the end (the test suite's helpers)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support.databases import create_postgres_database, drop_postgres_database

    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@contextmanager
def stores(with_postgres: bool) -> Iterator[tuple[Path, list[tuple[str, str]]]]:
    """A temporary folder and the stores to measure, as ``(name, database URL)``: SQLite
    (a file in that folder) and, when ``with_postgres``, a fresh PostgreSQL database."""
    with tempfile.TemporaryDirectory(prefix="agenitry-bench-") as folder:
        found = [("sqlite", f"sqlite:///{Path(folder) / 'bench.db'}")]
        if not with_postgres:
            yield Path(folder), found
            return
        with postgres_database() as url:
            yield Path(folder), [*found, ("postgresql", url)]


def venue_with_agent(gateway: Gateway, agent_id: str = AGENT) -> tuple[str, Principal, str]:
    """A fresh venue with :data:`POLICIES`; returns its id, the agent's principal and key."""
    venue_id = f"bench-{new_id('v')[2:14].lower()}"
    gateway.create_venue(venue_id)
    admin = Principal.operator(venue_id)
    for policy in POLICIES:
        gateway.put_policy(admin, dict(policy))
    _, secret = gateway.create_key(admin, role="agent", agent_id=agent_id)
    return venue_id, gateway.authenticate(secret), secret


def deciding(gateway: Gateway, agent: Principal) -> Callable[[], None]:
    """One in-process decision of ``agent``, which must be approved (:data:`POLICIES`):
    a denial would be a figure of another, shorter path."""

    def decide() -> None:
        if not gateway.authorize(agent, dict(REQUEST)).body["approved"]:
            raise RuntimeError("a benchmark request was not approved: the figures would be of another path")

    return decide


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Return once something accepts connections on ``port``; raise if ``process`` died first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{process.args!r} did not start:\n{log.read_text()}") from None
            time.sleep(0.05)


@contextmanager
def running(command: list[str], port: int, log: Path, env: Optional[dict[str, str]] = None) -> Iterator[None]:
    """Run ``command`` (a server that listens on ``port``) until the block ends."""
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def serve(database_url: str, log: Path, *extra: str) -> Iterator[str]:
    """``agenitry serve`` on a free port (no sweep, no rate limit or event quota); yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "agenitry.gateway.cli", "serve", "--db", database_url, "--port", str(port)]
    command += ["--log-level", "warning", "--sweep-interval", "0", *extra]
    # A benchmark measures the decision, not the limits that protect a shared gateway from one caller.
    limits_off = {"AGENITRY_KEY_RATE_LIMIT": "0", "AGENITRY_AGENT_EVENT_QUOTA": "0", "AGENITRY_AGENT_BYTE_QUOTA": "0"}
    env = {**os.environ, **limits_off}
    with running(command, port, log, env):
        yield f"http://127.0.0.1:{port}"
