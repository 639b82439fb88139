"""A sync call never outlives its timeout, even against a server that trickles its answer.

``http.client`` bounds each read of the socket; a server that sends one byte at a time,
each well within that bound, would otherwise hold the caller for as long as it liked.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from agenitry import Agenitry, APITimeoutError
from agenitry._config import Origin
from agenitry._http import ConnectionPool, Request


@pytest.fixture
def trickling_server() -> Iterator[str]:
    """Answers headers at once, then a 200-byte body one byte every 50 ms (10 s in all)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n")
                for _ in range(200):
                    if stop.wait(0.05):
                        break
                    try:
                        conn.sendall(b" ")
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    thread.join(timeout=5)


@pytest.mark.parametrize("attempt", [1, 2])  # the second finds the watchdog already running
def test_the_pool_cuts_off_a_trickling_answer(trickling_server: str, attempt: int) -> None:
    pool = ConnectionPool(Origin.parse(trickling_server), timeout=0.5)
    try:
        with pytest.raises(APITimeoutError):
            pool.send(Request("GET", "/healthz", {"Host": "127.0.0.1"}))
    finally:
        pool.close()


def test_the_client_reports_a_timeout_not_a_late_answer(trickling_server: str) -> None:
    client = Agenitry("ag_test", "nobo", base_url=trickling_server, timeout=0.5, max_retries=0)
    with client, pytest.raises(APITimeoutError) as raised:
        client.get_policies()
    assert raised.value.code == "TIMEOUT"
