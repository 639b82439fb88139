"""A webhook receiver on loopback that verifies every message as a receiver in the field would.

Each path is an endpoint with its own secret (:meth:`Receiver.trust`). Every request is
verified with the ``standardwebhooks`` library, recorded, and answered: 400 when its
signature does not verify, else the next status of the path's script (then 200).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it, and what it answered."""

    path: str
    headers: dict[str, str]
    body: str
    verified: bool
    answered: int

    @property
    def id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def timestamp(self) -> int:
        return int(self.headers.get("webhook-timestamp", "0"))

    def payload(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 (a free port, or ``port``) until :meth:`stop`.

    ``check_time=False`` verifies the signature at the message's own timestamp, for a
    gateway on a test clock that the library's five-minute tolerance would refuse.
    """

    def __init__(self, *, port: int = 0, check_time: bool = True) -> None:
        self.check_time = check_time
        self.received: list[Received] = []
        self._secrets: dict[str, str] = {}
        self._scripts: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread: Optional[threading.Thread] = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def trust(self, path: str, secret: str, *, answers: Optional[list[int]] = None) -> None:
        """Verify ``path``'s messages with ``secret``; answer its first ones with ``answers``."""
        with self._lock:
            self._secrets[path] = secret
            self._scripts[path] = list(answers or [])

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [item for item in self.received if item.path == path]

    def wait_for(self, done: Callable[[list[Received]], bool], timeout: float = 30.0) -> list[Received]:
        """Poll until ``done(received)`` holds; the requests so far. Fails at the deadline, naming them."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = list(self.received)
            if done(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"The receiver did not get what was expected in {timeout} s; it got {seen}")
            time.sleep(0.02)

    def _verify(self, path: str, body: str, headers: dict[str, str]) -> bool:
        secret = self._secrets.get(path)
        if secret is None:
            return False
        webhook = Webhook(secret)
        try:
            if self.check_time:
                webhook.verify(body, headers)
                return True
            moment = datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=timezone.utc)
            expected = webhook.sign(headers["webhook-id"], moment, body)
        except (WebhookVerificationError, KeyError, ValueError):
            return False
        return expected in headers.get("webhook-signature", "").split(" ")

    def _answer(self, path: str, body: str, headers: dict[str, str]) -> int:
        with self._lock:
            verified = self._verify(path, body, headers)
            script = self._scripts.get(path, [])
            status = (script.pop(0) if script else 200) if verified else 400
            self.received.append(Received(path, headers, body, verified, status))
        return status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                headers = {name.lower(): value for name, value in self.headers.items()}
                status = receiver._answer(self.path, body, headers)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test reads ``received``

        return Handler


@pytest.fixture(name="receiver")
def receiver_for_a_test_clock() -> Iterator[Receiver]:
    """A receiver for a gateway on a test clock: each signature checked at its message's timestamp."""
    server = Receiver(check_time=False).start()
    yield server
    server.stop()
