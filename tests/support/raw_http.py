"""HTTP/1.1 over a bare socket, for tests that need what a client library hides: half a
request, a slow one, or a connection held open."""

from __future__ import annotations

import socket


def read_answer(conn: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one answer from ``conn``: its status, its headers (names in lower case) and body."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = conn.recv(65_536)
        assert chunk, f"the server closed the connection without an answer: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += conn.recv(65_536)
    return int(lines[0].split(" ")[1]), headers, body
