"""uvicorn as ``agenitry serve`` runs it: a deadline for each request head, idle
connections closed, and a cap on connections.

uvicorn closes a kept-alive connection that stays idle, but it has no deadline for a
request head: a client that opens a connection and sends nothing, or a few bytes now and
then, holds it (and a file descriptor) for ever, and a few thousand such clients starve
everyone. :class:`HeadTimeoutProtocol` closes a connection whose request head is not whole
``header_timeout`` seconds after the connection opened or the head's first byte arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, Optional

import h11
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol

from agenitry.gateway.settings import Settings

#: A request head (request line and headers) larger than this is answered 400.
MAX_HEAD_BYTES = 16 * 1024
#: On shutdown, requests in progress get this many seconds to finish (the database's
#: busy timeout bounds each one already).
GRACEFUL_SHUTDOWN = 30


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for each request head.

    ``uvicorn --http agenitry.gateway.server:HeadTimeoutProtocol`` uses it with the default
    deadline; :func:`protocol` makes one with another.
    """

    header_timeout: float = Settings.header_timeout
    _head_deadline: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_deadline()

    def data_received(self, data: bytes) -> None:
        # A new head starts with the first byte after an answer (the keep-alive timeout
        # covers the silence before it).
        if self.conn.their_state is h11.IDLE and self._head_deadline is None:
            self._start_head_deadline()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._stop_head_deadline()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._stop_head_deadline()
        super().connection_lost(exc)

    def _start_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.logger.debug("Closed a connection whose request head took over %s s", self.header_timeout)
            self.transport.close()


def protocol(header_timeout: float) -> type[HeadTimeoutProtocol]:
    """:class:`HeadTimeoutProtocol` with a deadline of ``header_timeout`` seconds."""
    return type("HeadTimeoutProtocol", (HeadTimeoutProtocol,), {"header_timeout": header_timeout})


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` as uvicorn binds one (its ``Config.bind_socket``).

    Raises the OSError of an address that cannot be used (``EADDRINUSE`` for a port in use)
    before anything has started; :func:`run` serves on this very socket, so no other
    process can take the port in between.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Named TCP, as the socket uvicorn binds is: asyncio turns Nagle's algorithm off
    # (TCP_NODELAY) only on connections accepted from such a socket. Without it an answer
    # written in two parts waited for the client's delayed ACK: 40 ms a request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def run(app: Any, settings: Settings, listener: socket.socket, *, log_level: str = "info") -> None:
    """Serve ``app`` on ``listener`` (from :func:`listen`) with the settings' timeouts and connection cap."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        http=protocol(settings.header_timeout),
        timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]
        # uvicorn counts the connection that asks among those open, hence the one more.
        limit_concurrency=settings.max_connections + 1,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    server = uvicorn.Server(config)
    # What uvicorn.run adds around Server.run: Ctrl-C ends it quietly, and a failed startup
    # (already logged) exits with uvicorn's code.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listener])
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
