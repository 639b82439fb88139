"""OpenAI's answers replayed on a local port, for a doc page whose code calls ``OpenAI()``.

The answers are those of the vcrpy cassettes in tests/openai/cassettes (OpenAI's documented
format). They are served over HTTP rather than through vcrpy because vcrpy patches
``http.client`` too, and the page's Agenitry client must reach its real gateway meanwhile.
A page points the ``openai`` client here with ``OPENAI_BASE_URL``.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

CASSETTES = Path(__file__).resolve().parents[1] / "openai" / "cassettes"


class OpenAIReplay:
    """Serve each cassette's first answers in order, per path; :meth:`close` stops serving."""

    def __init__(self, base_url: str, cassettes: dict[str, int]) -> None:
        """``cassettes``: how many answers to take from each cassette, from its first."""
        self.answers: dict[str, deque[bytes]] = defaultdict(deque)
        for name, count in cassettes.items():
            for interaction in yaml.safe_load((CASSETTES / name).read_text())["interactions"][:count]:
                path = urlsplit(interaction["request"]["uri"]).path
                self.answers[path].append(interaction["response"]["body"]["string"].encode())
        address = urlsplit(base_url)
        self.server = ThreadingHTTPServer((str(address.hostname), int(address.port or 80)), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving; an answer left unused means the page asked OpenAI less than it shows."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
        unused = {path: len(answers) for path, answers in self.answers.items() if answers}
        if unused:
            raise AssertionError(f"answers never asked for: {unused}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        answers = self.answers

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                queue = answers.get(urlsplit(self.path).path)
                if not queue:
                    self.send_error(404, f"no recorded answer left for {self.path}")
                    return
                body = queue.popleft()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the page's output is what it prints."""

        return Handler
