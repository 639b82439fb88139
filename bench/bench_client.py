"""What the core client costs the agent: log() on the caller's thread, delivery, authorize.

Against a real ``agenitry serve`` (SQLite in a temporary directory), each figure stands
beside its baseline measured in the same run, with the ratio:

- ``log()`` on the caller's thread, p50/p99 in µs, with the gateway up, slow (a real
  local proxy adding 50 ms to every answer) and down (nothing listening), beside a no-op
  function called the same way (timed by the same loop, in alternating slices, so the
  timer's own cost is in both), and beside a direct blocking POST of the same event (one
  request on a new connection, as the 0.2.0 SDK's log() did). The target is **log() p99
  under 50 µs on the caller's thread**, whatever state the gateway is in;
- sustained delivery: events per second from the first log() to the last event stored
  (the background worker's batches), beside the same events POSTed one by one;
- authorize round trips per second over keep-alive, beside a new connection per request
  (and a read, and the transport alone against a server that answers at once, since on
  loopback the gateway's own work dominates a round trip).

The gateway runs without its sweep and with the per-key rate limit off (``_common.serve``),
so the one-by-one figures are the transport's, not the limiter's. Run
``.venv/bin/python bench/bench_client.py`` (``--quick`` for a short run); a full run takes
about a minute. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable

from _common import Timing, below, free_port, interleaved, machine, measure, serve
from agenitry import Agenitry
from agenitry._config import Origin
from agenitry._http import ConnectionPool, Request
from agenitry.gateway import Database, Gateway, Principal

VENUE = "bench-venue"
SLOW_SECONDS = 0.050
#: The target: log()'s p99 on the caller's thread under this many µs.
LOG_P99_TARGET_US = 50


@contextmanager
def gateway(folder: Path) -> Iterator[tuple[str, str]]:
    """``agenitry serve`` on a fresh SQLite database with one venue; yields (base_url, admin key)."""
    url = f"sqlite:///{folder / 'bench.db'}"
    database = Database(url)
    service = Gateway(database)
    service.migrate()
    service.create_venue(VENUE)
    _, key = service.create_key(Principal.operator(VENUE), role="admin")
    service.put_policy(Principal.operator(VENUE), {"max_single_amount": 1_000_000})
    database.dispose()
    with serve(url, folder / "serve.log") as base:
        yield base, key


class SlowProxy:
    """A real HTTP/1.1 proxy on loopback that holds every answer ``delay`` seconds."""

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        reader = conn.makefile("rb")
        try:
            while True:
                line = reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers = {}
                while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip()] = value.strip()
                body = reader.read(int(headers.get("Content-Length", "0")))
                upstream.request(method, target, body=body or None, headers=headers)
                answer = upstream.getresponse()
                content = answer.read()
                time.sleep(self.delay)
                head = f"HTTP/1.1 {answer.status} {answer.reason}\r\nContent-Type: application/json\r\n"
                conn.sendall(f"{head}Content-Length: {len(content)}\r\n\r\n".encode() + content)
        except OSError:
            return
        finally:
            reader.close()
            conn.close()
            upstream.close()

    def close(self) -> None:
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


def us(timing: Timing, q: float) -> float:
    """The ``q`` quantile in µs."""
    return timing.ms(q) * 1000


def no_op(action: str, *, amount: float, direction: str) -> None:
    """What log() is weighed against: a Python call of the same shape that does nothing."""


def blocking_post(base: str, key: str) -> Callable[[], Any]:
    """The 0.2.0 way: one POST /v1/events on a new connection, waiting for the answer."""
    origin = Origin.parse(base)

    def post() -> Any:
        body = json.dumps({"venue_id": VENUE, "agent_id": "default", "action": "order_captured", "amount": 42.5})
        conn = http.client.HTTPConnection(origin.host, origin.port, timeout=10)
        try:
            conn.request(
                "POST", "/v1/events", body, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            )
            return conn.getresponse().read()
        except OSError:
            return None  # the gateway is down: the seed swallowed this
        finally:
            conn.close()

    return post


def log_cost(base: str, key: str, n: int, drain: float) -> tuple[Timing, Timing]:
    """log() and the no-op, ``n`` calls each in alternating slices."""
    client = Agenitry(key, VENUE, base_url=base, max_queue=max(10_000, 2 * n))
    try:
        for i in range(200):
            client.log("order_captured", amount=42.5, context={"warmup": i})
        log, nothing = interleaved(
            [
                lambda: client.log("order_captured", amount=42.5, direction="inbound"),
                lambda: no_op("order_captured", amount=42.5, direction="inbound"),
            ],
            n,
        )
    finally:
        # Slow or down, what is still queued goes to the run's throwaway spool: it is not what we measure.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.close(timeout=drain)
    return log, nothing


def sustained_delivery(base: str, key: str, n: int) -> float:
    with Agenitry(key, VENUE, base_url=base, max_queue=n) as client:
        start = time.perf_counter()
        for i in range(n):
            client.log("order_captured", amount=1.0, context={"n": i})
        if not client.flush(300):
            raise RuntimeError("delivery did not finish")
        return n / (time.perf_counter() - start)


def one_by_one(base: str, key: str, n: int) -> float:
    with Agenitry(key, VENUE, base_url=base) as client:
        start = time.perf_counter()
        for i in range(n):
            client.log("order_captured", amount=1.0, context={"n": i}, await_confirmation=True)
        return n / (time.perf_counter() - start)


def round_trips(base: str, key: str, n: int, *, keep_alive: bool, read: bool) -> float:
    """authorize() (a write: the gateway's decision dominates) or get_authorization() (a read) per second."""
    origin = Origin.parse(base)
    transport = ConnectionPool(origin, timeout=10, max_idle=10 if keep_alive else 0)
    with Agenitry(key, VENUE, base_url=base, transport=transport) as client:
        authorization_id = client.authorize("purchase_order", 1.0)["authorization_id"]

        def call() -> Any:
            return client.get_authorization(authorization_id) if read else client.authorize("purchase_order", 1.0)

        for _ in range(20):
            call()
        start = time.perf_counter()
        for _ in range(n):
            call()
        return n / (time.perf_counter() - start)


class TrivialServer:
    """An HTTP/1.1 server that answers every request at once with a fixed JSON body: what is
    left of a round trip is the client's and the kernel's share."""

    ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"status":"ok"}'

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = conn.makefile("rb")
        try:
            while reader.readline():
                while reader.readline() not in (b"\r\n", b"\n", b""):
                    pass
                conn.sendall(self.ANSWER)
        except OSError:
            pass
        finally:
            reader.close()
            conn.close()

    def close(self) -> None:
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


def transport_rate(base: str, n: int, *, keep_alive: bool) -> float:
    """The client's transport alone: GET round trips through its pool."""
    origin = Origin.parse(base)
    pool = ConnectionPool(origin, timeout=10, max_idle=10 if keep_alive else 0)
    request = Request("GET", "/", {"Host": f"{origin.host}:{origin.port}"})
    try:
        for _ in range(50):
            pool.send(request)
        start = time.perf_counter()
        for _ in range(n):
            pool.send(request)
        return n / (time.perf_counter() - start)
    finally:
        pool.close()


def caller_cost(base: str, key: str, n_log: int, n_post: int) -> None:
    """The table of log()'s cost on the caller's thread, the gateway up, slow and down."""
    slow = SlowProxy(Origin.parse(base).port, SLOW_SECONDS)
    down = f"http://127.0.0.1:{free_port()}"
    print("log() on the caller's thread vs a no-op call and a blocking POST of the same event (µs)")
    print(
        f"  {'gateway':<8} {'log p50':>8} {'log p99':>8} {'no-op p50':>10} {'no-op p99':>10} {'log/no-op':>10}"
        f" {'POST p50':>10} {'POST p99':>10} {'POST/log':>9}   log p99 against the target"
    )
    try:
        for name, url, drain in (("up", base, 60.0), ("slow", slow.url, 0.1), ("down", down, 0.1)):
            log, nothing = log_cost(url, key, n_log, drain)
            post = measure(blocking_post(url, key), n_post if name != "slow" else 40, warmup=2)
            line = f"  {name:<8} {us(log, 0.5):>8.1f} {us(log, 0.99):>8.1f} {us(nothing, 0.5):>10.2f}"
            line += f" {us(nothing, 0.99):>10.2f} {us(log, 0.5) / us(nothing, 0.5):>9.0f}x"
            line += f" {us(post, 0.5):>10.1f} {us(post, 0.99):>10.1f} {us(post, 0.5) / us(log, 0.5):>8.0f}x"
            print(f"{line}   {below(us(log, 0.99), LOG_P99_TARGET_US, 'µs')}", flush=True)
    finally:
        slow.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args()
    logging.getLogger("agenitry").setLevel(logging.ERROR)
    n_log, n_post, n_deliver, n_auth = (2_000, 100, 5_000, 200) if args.quick else (10_000, 300, 50_000, 1_000)
    print(f"Agenitry core client, {'quick' if args.quick else 'full'} run: {machine()}; SQLite gateway\n")
    with tempfile.TemporaryDirectory() as tmp, gateway(Path(tmp)) as (base, key):
        # The spool stays on (the default), in the run's folder rather than the user's home.
        os.environ["AGENITRY_SPOOL_DIR"] = str(Path(tmp) / "spool")
        caller_cost(base, key, n_log, n_post)

        print("\nSustained delivery (events/s, first log() to last event stored)")
        batched = sustained_delivery(base, key, n_deliver)
        single = one_by_one(base, key, n_post)
        print(f"  background batches: {batched:>9,.0f}/s   one POST per event: {single:>7,.0f}/s", end="")
        print(f"   ratio {batched / single:.0f}x")

        print("\nRound trips per second, keep-alive vs a new connection per request")
        for name, read in (("authorize()", False), ("get_authorization()", True)):
            kept = round_trips(base, key, n_auth, keep_alive=True, read=read)
            fresh = round_trips(base, key, n_auth, keep_alive=False, read=read)
            print(f"  {name:<20} keep-alive: {kept:>7,.0f}/s   new connection each: {fresh:>7,.0f}/s", end="")
            print(f"   ratio {kept / fresh:.2f}x")
        trivial = TrivialServer()
        kept = transport_rate(trivial.url, 10 * n_auth, keep_alive=True)
        fresh = transport_rate(trivial.url, 10 * n_auth, keep_alive=False)
        trivial.close()
        print(f"  {'transport alone*':<20} keep-alive: {kept:>7,.0f}/s   new connection each: {fresh:>7,.0f}/s", end="")
        print(f"   ratio {kept / fresh:.2f}x")
        print("  * GET against a local server that answers at once: the gateway's own time left out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
