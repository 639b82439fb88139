"""Embedded mode: the gateway's own ASGI application, run inside this process.

Requests go through the same routes, validation, service and error rendering as over
HTTP, so the answers are the same; only the socket is missing. The embedded client is
the owner's own process, so it acts as the venue's operator (an admin principal,
recorded as actor ``embedded``): it may set policies and approve, as ``agenitry`` on the
command line may. The venue is created on first use.

The sync client drives the app on a private event-loop thread; the async client awaits
it on the caller's loop. The ASGI driver is a few lines of scope, receive and send.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import unquote

from agenitry._config import ClientConfig, resolve
from agenitry._exceptions import AgenitryError, APITimeoutError
from agenitry._http import Request, Response

if TYPE_CHECKING:
    from agenitry.gateway.store.database import Database

logger = logging.getLogger("agenitry")
GATEWAY_MISSING = (
    "Embedded mode needs the agenitry-gateway package:"
    " from a checkout of the Agenitry repository, pip install ./packages/agenitry-gateway"
)
EMBEDDED_ACTOR = "embedded"

ASGIApp = Any


def open_embedded(
    database_url: str,
    *,
    venue_id: Optional[str],
    agent_id: Optional[str],
    currency: str,
    public_url: Optional[str],
    options: dict[str, Any],
) -> tuple[ClientConfig, EmbeddedGateway]:
    """An embedded client's settings (no API key needed) and its gateway, opened."""
    config = resolve(None, venue_id, agent_id=agent_id, verify_base_url=public_url, require_api_key=False, **options)
    gateway = EmbeddedGateway.open(database_url, config.venue_id, currency=currency, public_url=config.verify_base_url)
    return config, gateway


class EmbeddedGateway:
    """The gateway's app on one database, with every request acting as the venue's operator."""

    def __init__(self, app: ASGIApp, database: Database) -> None:
        self.app = app
        self.database = database

    @classmethod
    def open(cls, database_url: str, venue_id: str, *, currency: str, public_url: str) -> EmbeddedGateway:
        try:
            from agenitry.gateway import GatewayError, Principal, Settings, create_app
            from agenitry.gateway.api.deps import current_key
            from agenitry.gateway.errors import Conflict, NotFound
        except ImportError as exc:
            raise AgenitryError(GATEWAY_MISSING) from exc
        try:
            # The same settings as `agenitry serve`, so checkpoints are signed with the same
            # lasting key (agenitry-signing.key beside a SQLite file, or AGENITRY_SIGNING_KEY).
            gateway = Settings.from_env(database_url=database_url, public_url=public_url).gateway()
        except ValueError as exc:
            raise AgenitryError(str(exc)) from None
        database = gateway.db
        try:
            gateway.migrate()
            try:
                gateway.get_venue(venue_id)
            except NotFound:
                with contextlib.suppress(Conflict):  # another process created it meanwhile
                    gateway.create_venue(venue_id, currency=currency)
        except GatewayError as exc:
            database.dispose()
            raise AgenitryError(f"Embedded gateway: {exc.message}", status=exc.status, body=exc.body()) from None
        except BaseException:
            database.dispose()
            raise
        app = create_app(gateway)
        operator = Principal(key_id=EMBEDDED_ACTOR, venue_id=venue_id, role="admin")
        app.dependency_overrides[current_key] = lambda: operator
        return cls(app, database)

    def close(self) -> None:
        self.database.dispose()


async def call_app(app: ASGIApp, request: Request) -> Response:
    """Run one request through an ASGI app and collect its answer."""
    path, _, query = request.target.partition("?")
    body = request.body or b""
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers.items()]
    headers.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 0),
        "server": ("embedded", 80),
        "state": {},
    }
    delivered = False
    finished = asyncio.Event()
    status = 0
    answer_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for name, value in message.get("headers", []):
                answer_headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    try:
        await app(scope, receive, send)
    except Exception:
        # Starlette re-raises an unexpected error after sending its 500 answer, for servers to log.
        logger.debug("The embedded gateway raised after answering %s", status, exc_info=True)
        if not status:
            raise
    finally:
        finished.set()
    return Response(status, answer_headers, b"".join(chunks))


class EmbeddedTransport:
    """Sync requests to the embedded app, run on a private event-loop thread."""

    def __init__(self, gateway: EmbeddedGateway, *, timeout: float) -> None:
        self._app = gateway.app
        self._timeout = timeout
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._stopped: Optional[asyncio.Event] = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(target=self._serve, args=(loop, ready), name="agenitry-embedded", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            # A long-lived root task: the app's thread pool (anyio) keeps its workers for it.
            self._stopped = asyncio.Event()
            ready.set()
            await self._stopped.wait()

        try:
            loop.run_until_complete(main())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def send(self, request: Request) -> Response:
        loop = self._running_loop()
        future = asyncio.run_coroutine_threadsafe(call_app(self._app, request), loop)
        try:
            return future.result(self._timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise APITimeoutError(
                f"The embedded gateway did not answer within {self._timeout:g} s ({request.method} {request.target})"
            ) from None

    def close(self) -> None:
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        stopped = self._stopped
        if stopped is not None:
            loop.call_soon_threadsafe(stopped.set)
        thread.join(10)


class AsyncEmbeddedTransport:
    """Async requests to the embedded app, awaited on the caller's loop."""

    def __init__(self, gateway: EmbeddedGateway, *, timeout: float) -> None:
        self._app = gateway.app
        self._timeout = timeout

    async def send(self, request: Request) -> Response:
        try:
            return await asyncio.wait_for(call_app(self._app, request), self._timeout)
        except asyncio.TimeoutError:
            raise APITimeoutError(
                f"The embedded gateway did not answer within {self._timeout:g} s ({request.method} {request.target})"
            ) from None

    async def close(self) -> None:
        return None
