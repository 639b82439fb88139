"""Slow and idle clients against a real ``agenitry serve`` over loopback sockets: a request
head that does not arrive whole in time is cut off (even one byte at a time), an idle
kept-alive connection is closed, and connections past the cap are answered 503.

Each test waits for the server to close a connection; the bounds are generous and say
only that it happens, not how fast.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agenitry.gateway import Settings
from support.processes import GatewayProcess
from support.raw_http import read_answer

#: However slow the machine, a connection the server means to close is closed by then.
BOUND = 30.0
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A gateway that gives a request head 1 s and an idle connection 1 s."""
    options = ("--header-timeout", "1", "--keep-alive-timeout", "1")
    server = GatewayProcess(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "serve.log", options).start()
    yield server
    server.stop()


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[GatewayProcess]:
    """A gateway that serves 3 connections at once and keeps them for a minute."""
    options = ("--max-connections", "3", "--header-timeout", "60", "--keep-alive-timeout", "60")
    server = GatewayProcess(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "serve.log", options).start()
    yield server
    server.stop()


def connect(server: GatewayProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)


def exchange(conn: socket.socket, request: bytes = REQUEST) -> tuple[int, dict[str, str]]:
    """Send ``request`` and read one answer: its status and its headers."""
    conn.sendall(request)
    status, headers, _ = read_answer(conn)
    return status, headers


def closed_by_server(conn: socket.socket) -> bool:
    """Whether the server closes ``conn`` (within the bound) without answering."""
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_connection_that_sends_nothing_or_half_a_head_is_closed(quick: GatewayProcess) -> None:
    with connect(quick) as silent, connect(quick) as halfway:
        halfway.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")
        assert closed_by_server(silent)
        assert closed_by_server(halfway)
    with connect(quick) as fresh:
        assert exchange(fresh)[0] == 200


def test_a_head_sent_one_byte_at_a_time_is_cut_off(quick: GatewayProcess) -> None:
    with connect(quick) as dribbling:
        dribbling.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        deadline = time.monotonic() + BOUND
        cut_off = False
        while not cut_off and time.monotonic() < deadline:
            try:
                dribbling.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                cut_off = True
            time.sleep(0.2)  # never idle for as long as the head deadline
        assert cut_off or closed_by_server(dribbling)


def test_an_idle_kept_alive_connection_is_closed(quick: GatewayProcess) -> None:
    with connect(quick) as conn:
        status, headers = exchange(conn)
        assert status == 200
        assert "connection" not in headers  # kept alive after the answer...
        assert exchange(conn)[0] == 200
        assert closed_by_server(conn)  # ...and closed once idle


def test_connections_past_the_cap_are_answered_503(capped: GatewayProcess) -> None:
    held = [connect(capped) for _ in range(3)]
    try:
        assert [exchange(conn)[0] for conn in held] == [200, 200, 200]
        with connect(capped) as extra:
            assert exchange(extra)[0] == 503
        # One of the three leaves: a new connection is served again.
        held.pop().close()
        statuses = []
        for _ in range(100):
            with connect(capped) as conn:
                statuses.append(exchange(conn)[0])
            if statuses[-1] == 200:
                break
            time.sleep(0.1)
        assert statuses[-1] == 200
    finally:
        for conn in held:
            conn.close()


def test_the_timeouts_and_the_cap_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert (settings.header_timeout, settings.keep_alive_timeout, settings.max_connections) == (10.0, 5.0, 1000)
    monkeypatch.setenv("AGENITRY_HEADER_TIMEOUT", "2.5")
    monkeypatch.setenv("AGENITRY_MAX_CONNECTIONS", "7")
    assert (Settings.from_env().header_timeout, Settings.from_env().max_connections) == (2.5, 7)
    with pytest.raises(ValueError, match="header_timeout must be more than 0"):
        Settings(header_timeout=0)
    with pytest.raises(ValueError, match="max_connections must be at least 1"):
        Settings(max_connections=0)
