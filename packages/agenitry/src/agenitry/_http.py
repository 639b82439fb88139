"""HTTP/1.1 with keep-alive, standard library only: a thread-safe pool over ``http.client``
for sync code, and a small client over asyncio streams for async code.

Both only move bytes: they raise :class:`APIConnectionError` (or :class:`APITimeoutError`)
when no answer came back and otherwise hand back the answer whatever its status. Every
decision about statuses, retries and bodies is the client's (see ``_base``).

A connection that sat idle in the pool may have been closed by the server in the
meantime; a request that fails on such a reused connection before any answer arrived is
sent once more on a fresh one. That is safe because every write carries an
Idempotency-Key, and the gateway gives a repeat the first answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import encodings.idna  # noqa: F401 - loaded now: getaddrinfo loads it lazily, which fails in a forked child
import http.client
import os
import select
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Optional, Protocol, TypeVar

from agenitry._config import Origin
from agenitry._exceptions import APIConnectionError, APITimeoutError

#: Idle connections kept per pool; more may be open at once, the rest are closed after use.
DEFAULT_MAX_IDLE = 10
#: Answers larger than this are refused (the gateway's biggest page is far smaller).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
C = TypeVar("C")
_STALE_ERRORS = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


@dataclass(frozen=True)
class Request:
    """One HTTP request; ``target`` is the path and query, ``headers`` already complete."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: Optional[bytes] = None


@dataclass(frozen=True)
class Response:
    """An answer, whatever its status; header names are lower case."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    reason: str = ""


class Transport(Protocol):
    """Where a sync client's requests go: the HTTP pool, or the embedded gateway."""

    def send(self, request: Request) -> Response: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    def send(self, request: Request) -> Awaitable[Response]: ...

    def close(self) -> Awaitable[None]: ...


def _ssl_context(origin: Origin) -> Optional[ssl.SSLContext]:
    return ssl.create_default_context() if origin.scheme == "https" else None


def _readable(sock: Optional[socket.socket]) -> bool:
    """An idle keep-alive socket with something to read has been closed (or garbled) by the server."""
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):  # unlike select(), poll() takes descriptors above 1024
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        ready, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


class _Watch:
    __slots__ = ("deadline", "fired", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.fired = False


class _Watchdog:
    """Cuts off sync exchanges that run past their deadline.

    ``http.client`` bounds each read of a socket, not a whole answer: a server that
    trickles a byte a second could hold the caller's thread indefinitely. One thread per
    process shuts such a socket down at the deadline, so the blocked read returns at once
    and the call fails with a timeout.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watches: list[_Watch] = []
        self._thread: Optional[threading.Thread] = None

    def watch(self, sock: socket.socket, deadline: float) -> _Watch:
        entry = _Watch(sock, deadline)
        with self._cond:
            self._watches.append(entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="agenitry-http-watchdog", daemon=True)
                self._thread.start()
            else:
                self._cond.notify()  # it may be sleeping towards a later deadline
        return entry

    def done(self, entry: _Watch) -> bool:
        """Stop watching; True when the deadline had already cut the socket off."""
        with self._cond:
            with contextlib.suppress(ValueError):
                self._watches.remove(entry)
            return entry.fired

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._watches:
                    # Idle for a while: let the thread go; the next watch starts another.
                    if not self._cond.wait(timeout=30) and not self._watches:
                        self._thread = None
                        return
                    continue
                now = time.monotonic()
                due = [w for w in self._watches if w.deadline <= now]
                for entry in due:
                    self._watches.remove(entry)
                    entry.fired = True
                    with contextlib.suppress(OSError):
                        entry.sock.shutdown(socket.SHUT_RDWR)
                if not due:
                    self._cond.wait(timeout=min(w.deadline for w in self._watches) - now)

    def _after_fork(self) -> None:
        self._cond = threading.Condition()
        self._watches = []
        self._thread = None


_WATCHDOG = _Watchdog()


class _Pool(Generic[C]):
    """What both pools share: their settings and a locked stack of idle connections."""

    def __init__(
        self,
        origin: Origin,
        *,
        timeout: float,
        connect_timeout: Optional[float] = None,
        max_idle: int = DEFAULT_MAX_IDLE,
    ) -> None:
        self.origin = origin
        self.timeout = timeout
        self.connect_timeout = connect_timeout if connect_timeout is not None else timeout
        self.max_idle = max_idle
        self._context = _ssl_context(origin)
        self._lock = threading.Lock()
        self._idle: list[C] = []
        self._closed = False

    def _take(self) -> Optional[C]:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _keep(self, conn: C) -> bool:
        """Put a connection back for reuse; False when the pool is closed or full (close it then)."""
        with self._lock:
            if not self._closed and len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return True
        return False

    def _drain(self, closing: bool = True) -> list[C]:
        with self._lock:
            self._closed = self._closed or closing
            idle, self._idle = self._idle, []
        return idle


class ConnectionPool(_Pool[http.client.HTTPConnection]):
    """Keep-alive connections to one origin, shared safely by every thread of a client.

    >>> pool = ConnectionPool(Origin.parse("http://127.0.0.1:8700"), timeout=10)  # doctest: +SKIP
    >>> pool.send(Request("GET", "/healthz", {"Host": "127.0.0.1"})).status  # doctest: +SKIP
    200

    ``timeout`` bounds connecting (``connect_timeout``) and, as a whole, sending the request
    and reading its answer. ``max_idle=0`` opens a new connection for every request (the
    0.2.0 behaviour).
    """

    def __init__(
        self,
        origin: Origin,
        *,
        timeout: float,
        connect_timeout: Optional[float] = None,
        max_idle: int = DEFAULT_MAX_IDLE,
    ) -> None:
        super().__init__(origin, timeout=timeout, connect_timeout=connect_timeout, max_idle=max_idle)
        _pools.add(self)

    def send(self, request: Request) -> Response:
        deadline = time.monotonic() + self.timeout
        conn, reused = self._acquire()
        try:
            try:
                return self._bounded(conn, request, deadline)
            except _STALE_ERRORS:
                if not reused:
                    raise
                conn.close()
                conn = self._connect()
                return self._bounded(conn, request, deadline)
        except socket.timeout:
            conn.close()
            raise APITimeoutError(
                f"No answer from {self.origin.url} within {self.timeout:g} s ({request.method} {request.target})"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _connection_error(self.origin, exc) from exc

    def _bounded(self, conn: http.client.HTTPConnection, request: Request, deadline: float) -> Response:
        """One exchange, cut off by the watchdog when it outlasts ``deadline``."""
        if conn.sock is None:
            raise ConnectionResetError("the connection has no socket")
        watch = _WATCHDOG.watch(conn.sock, deadline)
        try:
            response, keep = self._exchange(conn, request)
        except (OSError, http.client.HTTPException):
            if _WATCHDOG.done(watch):
                raise socket.timeout("the answer took longer than the timeout") from None
            raise
        if _WATCHDOG.done(watch) or not keep:
            conn.close()
        else:
            self._release(conn)
        return response

    def _exchange(self, conn: http.client.HTTPConnection, request: Request) -> tuple[Response, bool]:
        conn.request(request.method, request.target, body=request.body, headers=dict(request.headers))
        answer = conn.getresponse()
        if answer.length is not None and answer.length > MAX_ANSWER_BYTES:
            raise http.client.HTTPException(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
        body = answer.read()
        response = Response(
            answer.status, {name.lower(): value for name, value in answer.getheaders()}, body, answer.reason
        )
        return response, not answer.will_close

    def _connect(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._context is not None:
            conn = http.client.HTTPSConnection(
                self.origin.host, self.origin.port, timeout=self.connect_timeout, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(self.origin.host, self.origin.port, timeout=self.connect_timeout)
        try:
            conn.connect()
        except socket.timeout:
            conn.close()
            raise APITimeoutError(f"Could not connect to {self.origin.url} within {self.connect_timeout:g} s") from None
        except OSError as exc:
            conn.close()
            raise _connection_error(self.origin, exc) from exc
        if conn.sock is not None:
            conn.sock.settimeout(self.timeout)
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _acquire(self) -> tuple[http.client.HTTPConnection, bool]:
        while True:
            conn = self._take()
            if conn is None:
                return self._connect(), False
            if _readable(conn.sock):
                conn.close()
                continue
            return conn, True

    def _release(self, conn: http.client.HTTPConnection) -> None:
        if not self._keep(conn):
            conn.close()

    def close(self) -> None:
        for conn in self._drain():
            conn.close()

    def _after_fork(self) -> None:
        # The parent owns these sockets; the child starts with none and a lock no thread holds.
        self._lock = threading.Lock()
        for conn in self._drain(closing=False):
            conn.close()


@dataclass
class _Stream:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    loop: asyncio.AbstractEventLoop


class AsyncConnectionPool(_Pool[_Stream]):
    """Keep-alive HTTP/1.1 over asyncio streams; connections belong to the loop that opened them.

    ``timeout`` bounds connecting (``connect_timeout``) and, as a whole, reading one answer.
    """

    async def send(self, request: Request) -> Response:
        stream, reused = await self._acquire()
        try:
            try:
                return await self._exchange(stream, request)
            except _Unanswered:
                if not reused:
                    raise
                _abort(stream)
                stream = await self._connect()
                return await self._exchange(stream, request)
        except asyncio.TimeoutError:
            _abort(stream)
            raise APITimeoutError(
                f"No answer from {self.origin.url} within {self.timeout:g} s ({request.method} {request.target})"
            ) from None
        except (OSError, _Unanswered, _BadAnswer, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            _abort(stream)
            cause = exc.__cause__ if isinstance(exc, _Unanswered) and exc.__cause__ else exc
            raise _connection_error(self.origin, cause) from exc
        except BaseException:
            # Cancelled mid-exchange: the connection's state is unknown, so it is not reused.
            _abort(stream)
            raise

    async def _exchange(self, stream: _Stream, request: Request) -> Response:
        head = [f"{request.method} {request.target} HTTP/1.1"]
        head.extend(f"{name}: {value}" for name, value in request.headers.items())
        body = request.body or b""
        if request.body is not None or request.method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            stream.writer.write(data)
            await asyncio.wait_for(stream.writer.drain(), self.timeout)
            status_line = await asyncio.wait_for(stream.reader.readline(), self.timeout)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise _Unanswered() from exc
        if not status_line:
            raise _Unanswered() from ConnectionResetError("the connection was closed before an answer")
        response, keep = await asyncio.wait_for(self._read_rest(stream.reader, status_line, request), self.timeout)
        if keep:
            self._release(stream)
        else:
            await _close(stream)
        return response

    async def _read_rest(
        self, reader: asyncio.StreamReader, status_line: bytes, request: Request
    ) -> tuple[Response, bool]:
        version, status, reason = _status_line(status_line)
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise _BadAnswer("the connection closed inside the headers")
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise _BadAnswer(f"malformed header line {line[:80]!r}")
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        connection = headers.get("connection", "").lower()
        keep = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        elif "content-length" in headers:
            length = _content_length(headers["content-length"])
            body = await reader.readexactly(length)
        else:
            body = await reader.read(MAX_ANSWER_BYTES + 1)
            keep = False
        if len(body) > MAX_ANSWER_BYTES:
            raise _BadAnswer(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
        return Response(status, headers, body, reason), keep

    async def _connect(self) -> _Stream:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.origin.host,
                    self.origin.port,
                    ssl=self._context,
                    server_hostname=self.origin.host if self._context else None,
                    limit=1024 * 1024,
                ),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise APITimeoutError(f"Could not connect to {self.origin.url} within {self.connect_timeout:g} s") from None
        except OSError as exc:
            raise _connection_error(self.origin, exc) from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Stream(reader, writer, asyncio.get_running_loop())

    async def _acquire(self) -> tuple[_Stream, bool]:
        loop = asyncio.get_running_loop()
        while True:
            stream = self._take()
            if stream is None:
                return await self._connect(), False
            if stream.loop is not loop or stream.loop.is_closed():
                _abort(stream)
                continue
            if stream.reader.at_eof() or stream.writer.is_closing():
                await _close(stream)
                continue
            return stream, True

    def _release(self, stream: _Stream) -> None:
        if not self._keep(stream):
            _abort(stream)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for stream in self._drain():
            if stream.loop is loop:
                await _close(stream)
            else:
                _abort(stream)


class _Unanswered(Exception):
    """The request got no answer at all (the connection was closed before one)."""


class _BadAnswer(Exception):
    """What came back is not an HTTP/1.1 answer we can read."""


def _status_line(line: bytes) -> tuple[str, int, str]:
    parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise _BadAnswer(f"its answer began {line[:80]!r}")
    return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ""


def _content_length(value: str) -> int:
    text = value.split(",")[0].strip()
    if not text.isdigit() or int(text) > MAX_ANSWER_BYTES:
        raise _BadAnswer(f"unusable Content-Length {value!r}")
    return int(text)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readline()
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise _BadAnswer(f"malformed chunk size {size_line[:40]!r}") from None
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        total += size
        if total > MAX_ANSWER_BYTES:
            raise _BadAnswer(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _close(stream: _Stream) -> None:
    stream.writer.close()
    with contextlib.suppress(OSError, RuntimeError):
        await stream.writer.wait_closed()


def _abort(stream: _Stream) -> None:
    """Close without waiting; the stream may belong to another loop (a closed one cannot be helped)."""
    try:
        if stream.loop is asyncio.get_running_loop():
            stream.writer.transport.abort()
        else:
            stream.loop.call_soon_threadsafe(stream.writer.transport.abort)
    except RuntimeError:
        pass


def _connection_error(origin: Origin, exc: BaseException) -> APIConnectionError:
    """What went wrong, in words: unreachable, cut off, or not speaking HTTP at all."""
    if isinstance(exc, _BadAnswer) or (
        isinstance(exc, http.client.HTTPException) and not isinstance(exc, http.client.RemoteDisconnected)
    ):
        detail = str(exc) if isinstance(exc, _BadAnswer) else f"{type(exc).__name__}: {str(exc)[:80]!r}"
        return APIConnectionError(f"The server at {origin.url} did not answer in HTTP ({detail})")
    if isinstance(exc, ConnectionRefusedError):
        detail = "connection refused (is the gateway running?)"
    elif isinstance(exc, (http.client.RemoteDisconnected, ConnectionError, asyncio.IncompleteReadError)):
        detail = f"the connection was closed before a full answer ({exc or type(exc).__name__})"
    else:
        detail = str(exc) or type(exc).__name__
    return APIConnectionError(f"Could not reach the Agenitry gateway at {origin.url}: {detail}")


_pools: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()


def _reset_pools_in_child() -> None:
    _WATCHDOG._after_fork()
    for pool in list(_pools):
        pool._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pools_in_child)
