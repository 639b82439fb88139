"""A closed-loop HTTP/1.1 load generator, run as its own process so that the load it
makes does not share a Python interpreter (and its GIL) with the server it measures.

Each of ``--clients`` clients holds one keep-alive connection and keeps it busy: send a
request, read the whole answer, send the next. A warm-up comes first, uncounted; then
every answer that arrives within ``--duration`` seconds counts, with its latency. An
answer counts as an error when its status is not 2xx or, with ``--expect``, its body
lacks that text. It prints one JSON line: requests, errors, seconds, per_second, p50_ms,
p99_ms, and client_cpu (the share of one core this process used while measuring: near
1.0 means the load generator itself was the bottleneck).

Requests are prebuilt bytes and answers are parsed by hand (status line and
Content-Length) on asyncio streams: a few tens of microseconds of client work a request,
far below what any server here takes.

    python bench/_loadgen.py --url http://127.0.0.1:8700 --clients 32 --duration 3 \\
        --path /v1/authorize --body '{"amount": 1}' --header 'Authorization: Bearer ag_...' \\
        --expect '"approved":true'

Several ``--url`` spread the clients round-robin over several servers; ``--bodies-file``
(a JSON list of ``{"body": <JSON>, "headers": {...}}``) gives each client its own body
and headers, e.g. its own agent key, round-robin as well. :func:`run` starts this script
from a benchmark and reads its answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

HEAD_END = b"\r\n\r\n"
#: A load generator busier than this (a share of its one core) may be what limits the figures.
BUSY_CLIENT = 0.8
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Target:
    """One client's server and the request it sends again and again."""

    host: str
    port: int
    request: bytes


@dataclass
class Tally:
    """What the clients saw while measuring."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: Optional[str] = None
    #: This process's CPU seconds when the measuring began, and those it took since.
    cpu_began: float = 0.0
    cpu: float = 0.0

    def begin(self) -> None:
        self.cpu_began = time.process_time()

    def error(self, what: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = what


def build_request(method: str, url: str, path: str, body: bytes, headers: dict[str, str]) -> Target:
    """The request's bytes, built once: a client only writes them."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return Target(host, port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


async def exchange(connection: Connection, request: bytes) -> tuple[int, bytes, bool]:
    """Send ``request`` and read its whole answer: status, body, and whether the server
    keeps the connection open."""
    reader, writer = connection
    writer.write(request)
    head = (await reader.readuntil(HEAD_END)).lower()
    status = int(head[9:12])
    start = head.find(b"\r\ncontent-length:")
    if start < 0:
        raise ConnectionError("an answer without Content-Length (chunked answers are not read)")
    end = head.index(b"\r\n", start + 2)
    body = await reader.readexactly(int(head[start + 17 : end]))
    return status, body, b"\r\nconnection: close" not in head


async def client(target: Target, expect: Optional[bytes], begin: float, end: float, tally: Tally) -> None:
    """Keep one connection busy until ``end``; count the answers that arrive after ``begin``."""
    connection: Optional[Connection] = None
    clock = time.perf_counter
    while clock() < end:
        if connection is None:
            connection = await asyncio.open_connection(target.host, target.port)
        sent = clock()
        try:
            status, body, keep = await exchange(connection, target.request)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            tally.error(f"connection: {exc!r}")
            connection[1].close()
            connection = None
            continue
        done = clock()
        if not 200 <= status < 300:
            tally.error(f"{status}: {body[:300]!r}")
        elif expect is not None and expect not in body:
            tally.error(f"{status} without {expect!r}: {body[:300]!r}")
        elif begin <= done <= end:
            tally.latencies.append(done - sent)
        if not keep:
            connection[1].close()
            connection = None
    if connection is not None:
        connection[1].close()


async def drive(targets: Sequence[Target], expect: Optional[bytes], warmup: float, duration: float) -> Tally:
    tally = Tally()
    begin = time.perf_counter() + warmup
    asyncio.get_running_loop().call_later(warmup, tally.begin)
    await asyncio.gather(*(client(target, expect, begin, begin + duration, tally) for target in targets))
    # Past the end too, while the last answers came in: client_cpu errs high, never low.
    tally.cpu = time.process_time() - tally.cpu_began
    return tally


def summary(tally: Tally, duration: float, with_latencies: bool) -> dict[str, Any]:
    """The printed line; p50 and p99 are ``statistics.quantiles`` cut points (which need
    two latencies: with fewer, both are the one there is, or zero)."""
    latencies = tally.latencies
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [sum(latencies, 0.0)] * 99
    line: dict[str, Any] = {
        "requests": len(latencies),
        "errors": tally.errors,
        "seconds": duration,
        "per_second": round(len(latencies) / duration, 1),
        "p50_ms": round(cuts[49] * 1000, 3),
        "p99_ms": round(cuts[98] * 1000, 3),
        "client_cpu": round(tally.cpu / duration, 2),
    }
    if tally.first_error is not None:
        line["first_error"] = tally.first_error
    if with_latencies:
        line["latencies"] = [round(value, 7) for value in latencies]
    return line


def targets_from(args: argparse.Namespace) -> list[Target]:
    """One target a client: servers and bodies each taken round-robin."""
    common = dict(header.split(":", 1) for header in args.header)
    common = {name.strip(): value.strip() for name, value in common.items()}
    if args.bodies_file is not None:
        bodies = json.loads(Path(args.bodies_file).read_text())
        shapes = [(json.dumps(item["body"]).encode(), {**common, **item.get("headers", {})}) for item in bodies]
    else:
        shapes = [((args.body or "").encode(), common)]
    method = args.method or ("POST" if args.body is not None or args.bodies_file else "GET")
    return [
        build_request(method, args.url[index % len(args.url)], args.path, *shapes[index % len(shapes)])
        for index in range(args.clients)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", required=True, help="a server's base URL (repeatable)")
    parser.add_argument("--clients", type=int, default=1, help="concurrent keep-alive connections")
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=0.5, help="uncounted seconds first")
    parser.add_argument("--path", default="/", help="the request's path")
    parser.add_argument("--method", help="[POST with a body, else GET]")
    parser.add_argument("--body", help="the request's body (JSON text)")
    parser.add_argument("--bodies-file", help="a JSON list of {body, headers}, one a client, round-robin")
    parser.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("--expect", help="text every answer's body must hold, e.g. '\"approved\":true'")
    parser.add_argument("--latencies", action="store_true", help="also print every latency (seconds)")
    args = parser.parse_args()
    targets = targets_from(args)
    expect = args.expect.encode() if args.expect else None
    tally = asyncio.run(drive(targets, expect, args.warmup, args.duration))
    print(json.dumps(summary(tally, args.duration, args.latencies)))
    return 0


# -- from a benchmark ---------------------------------------------------------------------


@dataclass
class Load:
    """One load generator run, as :func:`run` reads it back."""

    requests: int
    errors: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    client_cpu: float
    latencies: list[float]


def run(
    urls: Sequence[str],
    clients: int,
    *,
    duration: float,
    warmup: float,
    path: str,
    bodies: Sequence[dict[str, Any]],
    expect: Optional[str] = None,
) -> Load:
    """Run this script against ``urls`` and return what it measured; raise if any answer
    was an error (a figure of failed requests would be a lie). ``bodies`` are
    ``{"body": ..., "headers": {...}}``, one a client, round-robin."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="agenitry-loadgen-", delete=False) as spec:
        json.dump(list(bodies), spec)
    command = [sys.executable, __file__, "--clients", str(clients), "--duration", str(duration)]
    command += ["--warmup", str(warmup), "--path", path, "--bodies-file", spec.name, "--latencies"]
    command += [item for url in urls for item in ("--url", url)]
    if expect is not None:
        command += ["--expect", expect]
    try:
        finished = subprocess.run(command, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"the load generator failed:\n{exc.stderr}") from None
    finally:
        os.unlink(spec.name)
    line = json.loads(finished.stdout)
    if line["errors"]:
        raise RuntimeError(f"{line['errors']} of the answers were errors; the first: {line['first_error']}")
    line.pop("first_error", None)
    if line["client_cpu"] > BUSY_CLIENT:
        busy = f"{line['client_cpu']:.0%}"
        print(f"warning: the load generator used {busy} of a core: it may be the limit", file=sys.stderr)
    return Load(**line)


if __name__ == "__main__":
    sys.exit(main())
