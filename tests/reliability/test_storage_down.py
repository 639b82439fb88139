"""When its database is unreachable or locked, the gateway fails closed and then recovers by itself.

PostgreSQL: an ``agenitry serve`` process reaches PostgreSQL through a TCP proxy run by
the test (the machine's server keeps running for everyone else). The proxy is cut in two
ways: every connection closed and new ones refused; then every connection closed and new
ones accepted but never answered (a black hole, where only the connect timeout ends the
wait). SQLite: another process holds a write transaction on the database file longer
than the gateway's busy timeout (AGENITRY_BUSY_TIMEOUT).

While cut, every authorization is answered 503 ``storage_unavailable`` (or a denial),
within the client's timeout and never with an approval; reads of a locked SQLite file
still answer. Once the database is back, the same gateway process approves again with
no restart, and the 503 answers left nothing behind: the venue holds exactly the
approvals that were answered, and :func:`support.invariants.check_ledger` passes.

The proxy can also let the COMMIT of an authorization through and lose PostgreSQL's
answer: the write happened, the gateway cannot know it. Its 503 then says the outcome is
unknown (not that nothing changed), and a retry under the same Idempotency-Key gets the
one decision that was made. The proxy can also stall: keep every connection open and
forward nothing, as a frozen server or a hung proxy would. The gateway then cuts the
round trip that outlived its busy timeout and answers 503 well within the client's
timeout; a COMMIT cut this way is answered as one whose outcome is unknown.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import httpx
import pytest
from sqlalchemy.engine import make_url

from agenitry.gateway import Database, Gateway
from support.invariants import check_ledger
from support.processes import GatewayProcess
from support.venues import Venue, make_venue

#: Longer than any wait the gateway should make (a 5 s connect timeout, a 2 s busy timeout).
CLIENT_TIMEOUT_S = 20.0
RECOVERY_DEADLINE_S = 30.0
REQUEST = {"agent_id": "voice-agent", "action": "comp_issued", "amount": 12.5}


@dataclass
class Connection:
    """One proxied connection: the gateway's side and PostgreSQL's."""

    client: socket.socket
    upstream: socket.socket
    armed: bool = False
    dropping: bool = False


class Proxy:
    """A TCP proxy from a port of its own to ``target``, which the test can cut and restore."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = "forward"
        #: Set: the next commit of an authorization goes through and its answer is lost.
        self.trap = threading.Event()
        #: After the lost answer: close the connection (True), or keep it open and silent.
        self.trap_closes = True
        self.sprung = threading.Event()
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.listener: Optional[socket.socket] = None
        self.port = 0
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        # A blocked accept() is not woken by close(): poll instead.
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while self.listener is listener:
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self.lock:
                self.sockets.add(client)
                mode = self.mode
            if mode == "blackhole":
                continue  # held open, never read, never answered
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                self._close(client)
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets.add(upstream)
            pair = Connection(client, upstream)
            for upward in (True, False):
                threading.Thread(target=self._pump, args=(pair, upward), daemon=True).start()

    def _pump(self, pair: Connection, upward: bool) -> None:
        source, sink = (pair.client, pair.upstream) if upward else (pair.upstream, pair.client)
        try:
            while data := source.recv(65536):
                while self.mode == "stall":
                    time.sleep(0.05)
                if upward and self.trap.is_set() and self._spring(pair, data):
                    continue
                if pair.dropping and not upward:
                    continue  # the database's answer is lost on the way
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source)
            self._close(sink)

    def _spring(self, pair: Connection, data: bytes) -> bool:
        """Let the COMMIT of a transaction that wrote an authorization reach PostgreSQL,
        drop what it answers, then close the connection: the write happened, its answer never arrives."""
        if b"INSERT INTO authorizations" in data:
            pair.armed = True
        if not (pair.armed and b"COMMIT" in data):
            return False
        pair.dropping = True
        pair.upstream.sendall(data)
        self.trap.clear()
        self.sprung.set()
        if self.trap_closes:
            # Time for PostgreSQL to read and apply the COMMIT before the connection goes.
            threading.Timer(0.3, lambda: (self._close(pair.client), self._close(pair.upstream))).start()
        return True

    def _close(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _close_all(self) -> None:
        with self.lock:
            live = list(self.sockets)
        for sock in live:
            self._close(sock)

    def cut(self, mode: str) -> None:
        """``refuse``: close every connection, refuse new ones. ``blackhole``: close every
        connection, accept new ones and never answer them. ``stall``: keep every connection
        open and forward nothing more."""
        with self.lock:
            self.mode = mode
        if mode == "stall":
            return
        if mode == "refuse" and self.listener is not None:
            listener, self.listener = self.listener, None
            listener.close()
        self._close_all()

    def restore(self) -> None:
        with self.lock:
            self.mode = "forward"
        self._close_all()
        if self.listener is None:
            self._listen()

    def close(self) -> None:
        if self.listener is not None:
            listener, self.listener = self.listener, None
            listener.close()
        self._close_all()


def authorize(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/authorize", json=REQUEST)


def fails_closed(response: httpx.Response) -> bool:
    """A 503 storage_unavailable, or a denial; an approval or any other answer is not."""
    body = response.json()
    if response.status_code == 503:
        return bool(body["code"] == "storage_unavailable" and body["error"])
    return response.status_code == 200 and body["approved"] is False and body["status"] == "denied"


def while_down(client: httpx.Client, attempts: int = 4) -> list[httpx.Response]:
    """Authorize ``attempts`` times at once; each must fail closed (a timeout fails the test)."""
    with ThreadPoolExecutor(attempts) as pool:
        answers = list(pool.map(lambda _: authorize(client), range(attempts)))
    for answer in answers:
        assert fails_closed(answer), f"{answer.status_code} {answer.text}"
    return answers


def recovers(client: httpx.Client) -> int:
    """Authorize until approved, as a client retrying a 503 would; returns the attempts."""
    deadline = time.monotonic() + RECOVERY_DEADLINE_S
    attempts = 0
    while True:
        attempts += 1
        answer = authorize(client)
        if answer.status_code == 200 and answer.json()["approved"]:
            return attempts
        assert fails_closed(answer), f"{answer.status_code} {answer.text}"
        assert time.monotonic() < deadline, f"no approval {RECOVERY_DEADLINE_S} s after the database came back"
        time.sleep(0.1)


def stored_authorizations(venue: Venue) -> int:
    return int(venue.gateway.list_authorizations(venue.admin, limit=1)["total"])


@dataclass
class ProxiedGateway:
    """A gateway process that reaches PostgreSQL through a :class:`Proxy`."""

    proxy: Proxy
    server: GatewayProcess
    venue: Venue
    database: Database

    def client(self, timeout: float = CLIENT_TIMEOUT_S) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.venue.agent_key()}"}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=timeout)


@pytest.fixture
def proxied(postgresql_url: str, tmp_path: Path) -> Iterator[ProxiedGateway]:
    url = make_url(postgresql_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    database = Database(postgresql_url)
    server: Optional[GatewayProcess] = None
    try:
        database.migrate()
        venue = make_venue(Gateway(database))
        venue.policy(max_single_amount=100)
        through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        server = GatewayProcess(through_proxy, tmp_path / "serve.log", env={"AGENITRY_BUSY_TIMEOUT": "2"}).start()
        yield ProxiedGateway(proxy, server, venue, database)
    finally:
        # Connections cut first, so that requests stuck on them end and the server stops at once.
        proxy.close()
        if server is not None:
            server.stop()
        database.dispose()


@pytest.mark.postgres
def test_postgresql_unreachable_fails_closed_and_recovers(proxied: ProxiedGateway) -> None:
    proxy, venue = proxied.proxy, proxied.venue
    approved = 0
    with proxied.client() as client:
        for _ in range(4):  # connections in the pool, to be cut under it
            assert authorize(client).json()["approved"] is True
            approved += 1
        for mode in ("refuse", "blackhole"):
            proxy.cut(mode)
            answers = while_down(client)
            assert {answer.status_code for answer in answers} == {503}, mode
            if mode == "refuse":  # in the black hole it would wait out another connect timeout
                health = client.get("/healthz")
                assert (health.status_code, health.json()["code"]) == (503, "storage_unavailable")
            proxy.restore()
            recovers(client)
            approved += 1
            assert client.get("/healthz").status_code == 200
    assert stored_authorizations(venue) == approved
    check_ledger(proxied.database, venue.id)


@pytest.mark.postgres
@pytest.mark.parametrize("then", ["closed", "silent"])
def test_a_commit_whose_answer_is_lost_is_resolved_by_the_idempotency_key(proxied: ProxiedGateway, then: str) -> None:
    """The database applied the COMMIT, the gateway never heard back (the connection then
    closed, or stayed open and silent): its 503 must not say that nothing changed, and a
    retry with the same Idempotency-Key gets the one decision."""
    key = {"Idempotency-Key": "comp-after-a-lost-commit"}
    with proxied.client() as client:
        assert authorize(client).json()["approved"] is True
        proxied.proxy.trap_closes = then == "closed"
        proxied.proxy.trap.set()
        lost = client.post("/v1/authorize", json=REQUEST, headers=key)
        assert proxied.proxy.sprung.is_set()
        assert lost.status_code == 503, lost.text
        body = lost.json()
        assert (body["code"], body["outcome"]) == ("storage_unavailable", "unknown")
        assert "nothing was changed" not in body["error"]
        retried = client.post("/v1/authorize", json=REQUEST, headers=key)
        assert retried.status_code == 200, retried.text
        assert retried.headers.get("Idempotent-Replayed") == "true"
        assert retried.json()["approved"] is True
    # The warm-up and the one whose answer was lost: no second authorization.
    assert stored_authorizations(proxied.venue) == 2
    check_ledger(proxied.database, proxied.venue.id)


@pytest.mark.postgres
def test_postgresql_silent_on_open_connections_fails_closed_within_the_timeouts(proxied: ProxiedGateway) -> None:
    # The gateway's own waits are a 5 s connect timeout and a 2 s busy timeout.
    with proxied.client(timeout=10) as client:
        assert authorize(client).json()["approved"] is True
        proxied.proxy.cut("stall")
        answer = authorize(client)
        assert answer.status_code == 503 and fails_closed(answer), answer.text
        assert "outcome" not in answer.json()  # cut before the COMMIT: nothing was changed
        proxied.proxy.restore()
        recovers(client)
    assert stored_authorizations(proxied.venue) == 2
    check_ledger(proxied.database, proxied.venue.id)


def test_sqlite_locked_past_the_busy_timeout_fails_closed_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    database = Database(f"sqlite:///{path}")
    server: Optional[GatewayProcess] = None
    holder: Optional[subprocess.Popen[str]] = None
    try:
        database.migrate()
        venue = make_venue(Gateway(database))
        venue.policy(max_single_amount=100)
        server = GatewayProcess(f"sqlite:///{path}", tmp_path / "serve.log", env={"AGENITRY_BUSY_TIMEOUT": "1"})
        server.start()
        headers = {"Authorization": f"Bearer {venue.agent_key()}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=CLIENT_TIMEOUT_S) as client:
            assert authorize(client).json()["approved"] is True
            holder = hold_write_lock(path)
            answers = while_down(client)
            assert {answer.status_code for answer in answers} == {503}
            # Readers never wait for the writer (WAL): the venue's state can still be read.
            listed = client.get("/v1/authorize")
            assert (listed.status_code, listed.json()["total"]) == (200, 1)
            release(holder)
            recovers(client)
        assert stored_authorizations(venue) == 2
        check_ledger(database, venue.id)
    finally:
        if holder is not None:
            release(holder)
        if server is not None:
            server.stop()
        database.dispose()


def hold_write_lock(path: Path) -> subprocess.Popen[str]:
    """Another process takes SQLite's write lock and keeps it until its stdin closes."""
    script = (
        "import sqlite3, sys\n"
        f"connection = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
        "connection.execute('BEGIN IMMEDIATE')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


def release(holder: subprocess.Popen[Any]) -> None:
    if holder.poll() is None:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    for stream in (holder.stdin, holder.stdout):
        if stream is not None and not stream.closed:
            stream.close()
