"""Fixtures of the core client's suite: one suite, run over HTTP and embedded, sync and async.

``connect`` opens a client on the test's venue in one of four ways (a real uvicorn
gateway on loopback, or the gateway embedded in-process; the sync or the async client)
and wraps it in a :class:`Mirror`, so one test body awaits the same calls on either
client. ``FaultProxy`` is a real TCP server in front of the gateway that answers 502
after the gateway did the work, drops the connection, stalls, or answers garbage.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Callable, Optional

import pytest
import uvicorn
from sqlalchemy import select

from agenitry import Agenitry, AsyncAgenitry
from agenitry.gateway import Database, Gateway, create_app
from agenitry.gateway.store.schema import events as events_table
from support.venues import Venue

MODES = ["http-sync", "http-async", "embedded-sync", "embedded-async"]
#: Methods that are plain (not awaited) on both clients.
_PLAIN = {"verify_url", "spend", "guard", "logged", "delivery_stats"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Mirror:
    """One face for both clients: every call is awaited, whichever client makes it."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.is_async = isinstance(client, AsyncAgenitry)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if self.is_async or name in _PLAIN or not callable(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            return attribute(*args, **kwargs)

        return call

    async def aclose(self) -> None:
        if self.is_async:
            await self.client.close()
        else:
            self.client.close()


Connect = Callable[..., "contextlib.AbstractAsyncContextManager[Mirror]"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def connect(mode: str, venue: Venue, database: Database, request: pytest.FixtureRequest) -> Connect:
    """Open a client of this test's mode on the venue (an admin key over HTTP; the operator embedded)."""
    transport, flavour = mode.split("-")
    base_url = request.getfixturevalue("live").url if transport == "http" else None

    @contextlib.asynccontextmanager
    async def open_client(**options: Any) -> AsyncIterator[Mirror]:
        kind = AsyncAgenitry if flavour == "async" else Agenitry
        if transport == "http":
            client: Any = kind(venue.admin_key, venue.id, base_url=base_url, **options)
        else:
            client = kind.embedded(database.url, venue_id=venue.id, **options)
        mirror = Mirror(client)
        try:
            yield mirror
        finally:
            await mirror.aclose()

    return open_client


@pytest.fixture
def stored_ids(database: Database) -> Callable[..., list[str]]:
    """The ids of a venue's events in sequence order, as the store holds them."""

    def read(venue_id: str, action: Optional[str] = None) -> list[str]:
        e = events_table.c
        query = select(e.id).where(e.venue_id == venue_id).order_by(e.sequence)
        if action is not None:
            query = query.where(e.action == action)
        with database.read() as conn:
            return [row.id for row in conn.execute(query)]

    return read


@pytest.fixture
def gateway_on_port(gateway: Gateway) -> Iterator[Callable[[int], GatewayOnPort]]:
    """Start the test's gateway on a given port, late; stopped after the test."""
    started: list[GatewayOnPort] = []

    def start(port: int) -> GatewayOnPort:
        server = GatewayOnPort(gateway, port).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class GatewayOnPort:
    """The gateway served by uvicorn on a port chosen in advance (so it can come up late)."""

    def __init__(self, gateway: Gateway, port: int) -> None:
        config = uvicorn.Config(create_app(gateway), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> GatewayOnPort:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class FaultProxy:
    """A real HTTP/1.1 proxy on loopback that misbehaves on the first ``times`` requests.

    fault:
      ``502_after``  forward, let the gateway do the work, then answer 502 (an HTML page)
      ``drop_after`` forward, then close the connection without answering
      ``stall``      forward, then say nothing until ``stall`` seconds have passed
      ``html``       answer ``status`` with an HTML page, without forwarding
      ``garbage``    answer bytes that are not HTTP at all
      ``retry_after`` answer 429 with ``Retry-After: <retry_after>``, without forwarding
      ``close_after`` answer, then close the kept-alive connection without saying so
    """

    def __init__(
        self,
        upstream: str,
        fault: Optional[str] = None,
        *,
        times: int = 1,
        status: int = 502,
        stall: float = 2.0,
        retry_after: str = "0",
    ) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.fault = fault
        self.times = times
        self.status = status
        self.stall = stall
        self.retry_after = retry_after
        self.skip = 0
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._sockets.append(conn)
                thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while not self._stopping.is_set():
                request_line = reader.readline()
                if not request_line:
                    return
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = reader.read(int(headers.get("content-length", "0") or 0))
                with self._lock:
                    self.seen.append((method, target, headers))
                    fault = self.fault if self.times > 0 and self.skip == 0 else None
                    if fault is not None:
                        self.times -= 1
                    self.skip = max(0, self.skip - 1)
                if fault == "garbage":
                    conn.sendall(b"\x00\x01 this is not HTTP\r\n\r\n")
                    return
                if fault == "html":
                    self._answer(conn, self.status, {"Content-Type": "text/html"}, _PAGE)
                    continue
                if fault == "retry_after":
                    self._answer(
                        conn, 429, {"Retry-After": self.retry_after, "Content-Type": "text/plain"}, b"slow down"
                    )
                    continue
                status, answer_headers, answer = self._forward(method, target, headers, body)
                if fault == "502_after":
                    self._answer(conn, 502, {"Content-Type": "text/html"}, _PAGE)
                elif fault == "drop_after":
                    return
                elif fault == "stall":
                    self._stopping.wait(self.stall)
                    return
                elif fault == "close_after":
                    self._answer(conn, status, answer_headers, answer)
                    return
                else:
                    self._answer(conn, status, answer_headers, answer)
        except (OSError, ValueError):
            return
        finally:
            reader.close()
            conn.close()

    def _forward(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        upstream = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            upstream.request(method, target, body=body or None, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
            keep = {k: v for k, v in answer.getheaders() if k.lower() in ("content-type", "idempotent-replayed")}
            return answer.status, keep, content
        finally:
            upstream.close()

    @staticmethod
    def _answer(conn: socket.socket, status: int, headers: dict[str, str], body: bytes) -> None:
        head = [f"HTTP/1.1 {status} {http.client.responses.get(status, 'Status')}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def arm(self, fault: str, *, times: int = 1, skip: int = 0) -> None:
        """From now on, let ``skip`` requests through, then misbehave on the next ``times``."""
        with self._lock:
            self.fault, self.times, self.skip = fault, times, skip

    def requests_to(self, path: str) -> list[tuple[str, str, dict[str, str]]]:
        with self._lock:
            return [seen for seen in self.seen if seen[1].split("?")[0] == path]

    def stop(self) -> None:
        self._stopping.set()
        # Closing a listening socket does not wake a thread blocked in accept(); shutting it down does.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=10)


_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


@pytest.fixture
def faults() -> Iterator[Callable[..., FaultProxy]]:
    """Start fault proxies in front of an upstream; all are stopped after the test."""
    started: list[FaultProxy] = []

    def start(upstream: str, fault: Optional[str] = None, **options: Any) -> FaultProxy:
        proxy = FaultProxy(upstream, fault, **options)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
