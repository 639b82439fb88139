"""HTTP cost against the web stack's limit: ``POST /v1/authorize`` through a real
``agenitry serve`` beside a no-op FastAPI route served the same way.

The no-op route takes a small pydantic body and answers a small JSON: nothing but
uvicorn, FastAPI and pydantic, a plain ``def`` like the gateway's routes (so both pay the
hop to the thread pool), run by ``uvicorn.run(app, host, port, log_level)`` exactly as
``agenitry serve`` runs the gateway. The ratio of the two medians is what the gateway
adds over the cheapest route its web stack can serve. The targets: with one client, the
gateway's median within 2x the no-op's; at 32 clients, its throughput at least 0.5x the
no-op's on SQLite and 0.3x on PostgreSQL. Last, it measures the hop to the thread pool that
both routes pay: the no-op route as a plain ``def`` against the same route as ``async def``.

The gateway runs on SQLite (a file in a temporary directory) and, unless
``--no-postgres``, on PostgreSQL (a fresh database, dropped at the end); every client
acts for one agent in one venue, so the decisions queue on that venue's lock as one
busy agent's would. Every decision is approved (the limits are far away): the full hot
path. The load comes from a separate process (``_loadgen.py``): 1, 8, 32 and 128
keep-alive clients, each sending its next request as soon as the answer is in. The
servers take turns, a short run each, for a few rounds, so noise on a shared machine
falls on all of them.

Run ``.venv/bin/python bench/bench_http.py`` (``--quick`` for a short run,
``--no-postgres`` without a PostgreSQL server).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import _loadgen
from _common import (
    APPROVED,
    REQUEST,
    Timing,
    at_least,
    free_port,
    in_turns,
    keyed_request,
    machine,
    running,
    serve,
    stores,
    venue_with_agent,
    verdict,
)
from agenitry.gateway import Database, Gateway

CLIENTS = (1, 8, 32, 128)
#: The targets: with one client, the gateway's median within this many times the no-op's...
TARGET_LATENCY = 2.0
#: ...and at this many clients its throughput at least this share of the no-op's, per store.
TARGET_CLIENTS, TARGET_THROUGHPUT = 32, {"sqlite": 0.5, "postgresql": 0.3}

noop = FastAPI()


class Spend(BaseModel):
    agent_id: str
    action: str
    amount: float


@noop.post("/noop")
def accept(body: Spend) -> JSONResponse:
    """Validate the body, answer a decision-shaped JSON, touch nothing."""
    return JSONResponse({"approved": True, "status": "approved", "agent_id": body.agent_id})


@noop.post("/noop-async")
async def accept_on_the_loop(body: Spend) -> JSONResponse:
    """The same as a coroutine: run on the event loop, without the hop to the thread pool."""
    return JSONResponse({"approved": True, "status": "approved", "agent_id": body.agent_id})


@dataclass
class Server:
    """A server under load, the request its clients send, and what they measured."""

    name: str
    url: str
    path: str
    bodies: list[dict[str, Any]]

    def measure(self, clients: int, seconds: float, warmup: float) -> Timing:
        """One run of ``clients`` clients for ``seconds`` (after ``warmup``)."""
        load = _loadgen.run(
            [self.url], clients, duration=seconds, warmup=warmup, path=self.path, bodies=self.bodies, expect=APPROVED
        )
        return Timing(load.latencies, load.seconds)


@contextmanager
def gateway_server(store: str, url: str, folder: Path) -> Iterator[Server]:
    """``agenitry serve`` on ``url``'s database, with a venue and its agent's key."""
    database = Database(url)
    database.migrate()
    _, _, secret = venue_with_agent(Gateway(database))
    database.dispose()
    with serve(url, folder / f"serve-{store}.log") as base:
        yield Server(store, base, "/v1/authorize", [keyed_request(secret)])


@contextmanager
def noop_server(folder: Path) -> Iterator[Server]:
    port = free_port()
    with running([sys.executable, __file__, "--serve-noop", str(port)], port, folder / "noop.log"):
        yield Server("no-op", f"http://127.0.0.1:{port}", "/noop", [{"body": REQUEST}])


def serve_noop(port: int) -> None:
    """The no-op app, run as ``agenitry serve`` runs the gateway (its other options unset)."""
    uvicorn.run(noop, host="127.0.0.1", port=port, log_level="warning")


def stack() -> str:
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11 (httptools is not installed)"
    return f"uvicorn {uvicorn.__version__}, HTTP parser {parser}, one worker process per server"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer rounds")
    parser.add_argument("--no-postgres", action="store_true", help="the gateway on SQLite only")
    parser.add_argument("--serve-noop", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_noop is not None:
        serve_noop(args.serve_noop)
        return 0
    rounds, seconds, warmup = (2, 0.5, 0.25) if args.quick else (3, 2.0, 0.5)

    print(f"Agenitry HTTP benchmark: {machine()}, {'quick' if args.quick else 'full'} run")
    print(f"{stack()}; load from a separate process, {rounds} turns of {seconds:g} s a point")
    print("every client acts for one agent in one venue; p50 ratio = gateway p50 / no-op p50;")
    print("req/s ratio = gateway requests a second / no-op requests a second\n")
    print(
        f"{'clients':>7}  {'store':<10} {'gateway req/s':>13} {'p50 ms':>7} {'p99 ms':>7}"
        f"   {'no-op req/s':>11} {'p50 ms':>7} {'p99 ms':>7}   {'p50 ratio':>9} {'req/s ratio':>11}"
    )
    print("-" * 103)
    one_client: dict[str, float] = {}
    at_target: dict[str, float] = {}
    with stores(not args.no_postgres) as (folder, measured), ExitStack() as servers:
        gateways = [servers.enter_context(gateway_server(store, url, folder)) for store, url in measured]
        noop_route = servers.enter_context(noop_server(folder))
        for clients in CLIENTS:
            runs = [partial(server.measure, clients, seconds, warmup) for server in [*gateways, noop_route]]
            *timings, floor = in_turns(runs, rounds)
            for gateway, timing in zip(gateways, timings):
                ratio = timing.ms(0.5) / floor.ms(0.5)
                share = timing.per_second / floor.per_second
                if clients == 1:
                    one_client[gateway.name] = ratio
                if clients == TARGET_CLIENTS:
                    at_target[gateway.name] = share
                print(
                    f"{clients:>7}  {gateway.name:<10} {timing.per_second:>13,.0f} {timing.ms(0.5):>7.2f}"
                    f" {timing.ms(0.99):>7.2f}   {floor.per_second:>11,.0f} {floor.ms(0.5):>7.2f}"
                    f" {floor.ms(0.99):>7.2f}   {ratio:>8.2f}x {share:>10.2f}x",
                    flush=True,
                )
        # What the hop to the thread pool costs, which a decision's route pays as the no-op's does.
        on_the_loop = Server("no-op", noop_route.url, "/noop-async", noop_route.bodies)
        print("\nthe hop to the thread pool, on the no-op route: a def route against an async def one")
        for clients in (1, TARGET_CLIENTS):
            runs = [partial(server.measure, clients, seconds, warmup) for server in (noop_route, on_the_loop)]
            hop, no_hop = in_turns(runs, rounds)
            print(
                f"{clients:>7} clients: def {hop.per_second:,.0f} req/s, p50 {hop.ms(0.5):.3f} ms;"
                f" async def {no_hop.per_second:,.0f} req/s, p50 {no_hop.ms(0.5):.3f} ms;"
                f" the hop {hop.ms(0.5) - no_hop.ms(0.5):+.3f} ms at p50",
                flush=True,
            )
    print()
    for store, ratio in one_client.items():
        print(
            f"over HTTP, 1 client, p50 within {TARGET_LATENCY:g}x the no-op route's, {store}:"
            f" {verdict(ratio, TARGET_LATENCY)}"
        )
    for store, share in at_target.items():
        print(
            f"over HTTP, {TARGET_CLIENTS} clients on one agent, throughput at least {TARGET_THROUGHPUT[store]:g}x"
            f" the no-op route's, {store}: {at_least(share, TARGET_THROUGHPUT[store])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
