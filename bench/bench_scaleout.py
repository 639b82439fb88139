"""Scale-out: 1, 2 and 4 ``agenitry serve`` processes on one PostgreSQL database, with
many agents (throughput should grow with the processes) and with one hot agent (bound by
its venue's lock, whatever the number of processes).

A decision locks its venue's row (``SELECT ... FOR UPDATE``) for its whole transaction,
so decisions in one venue take turns in every process alike, and decisions in different
venues do not wait for each other. Hence the two scenarios, each with the same number of
keep-alive clients (32 by default) spread round-robin over the processes:

- many agents: one agent a client, each in a venue of its own, with its own key;
- one hot agent: every client acts for the same agent in the same venue.

The four processes run throughout; a run with fewer sends to the first ones only, and
the others stand idle.

The load comes from a separate process (``_loadgen.py``); every decision is approved
(the limits are far away), the full hot path. The runs take turns, a short one each, for
a few rounds, so noise on a shared machine falls on all of them. On a machine with few
cores the processes, PostgreSQL and the load generator share them: throughput then
cannot grow with the processes as it would with a core for each. The CPU count is
printed, and beside each figure how busy the machine's CPUs were while it was measured
(near 100%: the machine, not the gateway's design, is the limit).

Run ``.venv/bin/python bench/bench_scaleout.py`` (``--quick`` for a short run,
``--clients N`` for another number of clients). It needs the PostgreSQL server.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import _loadgen
from _common import APPROVED, Timing, in_turns, keyed_request, machine, postgres_database, serve, venue_with_agent
from agenitry.gateway import Database, Gateway

PROCESSES = (1, 2, 4)


@dataclass
class Scenario:
    """Who the clients act for: one ``{body, headers}`` a client, round-robin."""

    name: str
    bodies: list[dict[str, Any]]


def scenarios(url: str, clients: int) -> list[Scenario]:
    """The venues, agents and keys of both scenarios, made in-process before any server starts."""
    database = Database(url)
    database.migrate()
    gateway = Gateway(database)
    many = [keyed_request(venue_with_agent(gateway)[2]) for _ in range(clients)]
    hot = [keyed_request(venue_with_agent(gateway)[2])]
    database.dispose()
    return [
        Scenario(f"many agents ({clients}, one venue each)", many),
        Scenario(f"one hot agent ({clients} clients, one venue)", hot),
    ]


@dataclass
class Figure:
    """A scenario on the first ``processes`` servers, and how busy the machine's CPUs were
    while it ran (every process on the machine, the load generator's start included)."""

    scenario: Scenario
    processes: int
    busy_ticks: int = 0
    all_ticks: int = 0

    @property
    def busy(self) -> float:
        return self.busy_ticks / self.all_ticks

    def measure(self, bases: list[str], clients: int, seconds: float, warmup: float) -> Timing:
        """One run of ``clients`` clients spread over this figure's servers."""
        busy, total = cpu_ticks()
        load = _loadgen.run(
            bases[: self.processes],
            clients,
            duration=seconds,
            warmup=warmup,
            path="/v1/authorize",
            bodies=self.scenario.bodies,
            expect=APPROVED,
        )
        busy_after, total_after = cpu_ticks()
        self.busy_ticks += busy_after - busy
        self.all_ticks += total_after - total
        return Timing(load.latencies, load.seconds)


def cpu_ticks() -> tuple[int, int]:
    """The machine's busy and all CPU time so far, in ticks (Linux's /proc/stat)."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer rounds")
    parser.add_argument("--clients", type=int, default=32, help="keep-alive clients in every run [32]")
    args = parser.parse_args()
    rounds, seconds, warmup = (2, 0.75, 0.25) if args.quick else (3, 3.0, 0.5)

    print(f"Agenitry scale-out benchmark: {machine()}, {'quick' if args.quick else 'full'} run")
    print(
        f"gateway processes on one PostgreSQL database, {args.clients} clients spread over them from a separate"
        f" process; {rounds} turns of {seconds:g} s a figure"
    )
    print("scaling = req/s / the same scenario's req/s with 1 process\n")
    print(f"{'scenario':<40} {'processes':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'scaling':>8} {'CPU busy':>9}")
    print("-" * 96)
    with (
        tempfile.TemporaryDirectory(prefix="agenitry-bench-") as folder,
        postgres_database() as url,
        ExitStack() as servers,
    ):
        cases = scenarios(url, args.clients)
        logs = [Path(folder) / f"serve-{index}.log" for index in range(max(PROCESSES))]
        bases = [servers.enter_context(serve(url, log)) for log in logs]
        figures = [Figure(scenario, processes) for scenario in cases for processes in PROCESSES]
        runs = [partial(figure.measure, bases, args.clients, seconds, warmup) for figure in figures]
        timings = in_turns(runs, rounds)
    one: dict[str, float] = {}
    for figure, timing in zip(figures, timings):
        name = figure.scenario.name
        one.setdefault(name, timing.per_second)
        print(
            f"{name:<40} {figure.processes:>9} {timing.per_second:>8,.0f} {timing.ms(0.5):>8.2f}"
            f" {timing.ms(0.99):>8.2f} {timing.per_second / one[name]:>7.2f}x {figure.busy:>9.0%}"
        )
    print(f"\nCPU busy: the share of the machine's {len(os.sched_getaffinity(0))} CPUs in use during the figure's runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
