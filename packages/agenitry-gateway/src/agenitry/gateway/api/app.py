"""The HTTP application: routes only parse, authenticate, call the service and render."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from agenitry import __version__
from agenitry.gateway.api import deps, errors, quota, ratelimit
from agenitry.gateway.api.console import auth as console_auth
from agenitry.gateway.api.console import owner as console_owner
from agenitry.gateway.api.console import pages as console_pages
from agenitry.gateway.api.headers import SecurityHeaders
from agenitry.gateway.api.limits import BodyLimit
from agenitry.gateway.api.routes import authorizations, docs, events, keys, log, policies, public, verifier, webhooks
from agenitry.gateway.api.templating import STATIC_DIRECTORY
from agenitry.gateway.service.gateway import Gateway
from agenitry.gateway.service.webhooks import Deliverer
from agenitry.gateway.settings import Settings

logger = logging.getLogger("agenitry.gateway")


def create_app(
    gateway: Gateway,
    *,
    max_body_bytes: int = 1_048_576,
    sweep_interval: float = 0,
    public_rate_limit: float = 10.0,
    public_rate_burst: int = 60,
    key_rate_limit: float = 50.0,
    key_rate_burst: int = 200,
    agent_event_quota: int = 10_000,
    agent_byte_quota: int = 10_485_760,
    agent_quota_window: float = 3600.0,
    api_docs: bool = False,
    webhook_delivery: bool = True,
) -> FastAPI:
    """The gateway's ASGI application.

    With ``sweep_interval`` > 0 a background thread expires lapsed authorizations, drops
    stale records and signs due checkpoints every that many seconds while the application
    runs. The public verify and log routes take ``public_rate_limit`` requests a second
    per client address, ``public_rate_burst`` at once; every keyed route takes
    ``key_rate_limit`` requests a second per API key, ``key_rate_burst`` at once (a rate
    of 0 turns a limit off). A request that logs events costs its key more by its size, and
    each agent may log ``agent_event_quota`` events and ``agent_byte_quota`` bytes per
    ``agent_quota_window`` seconds (0 turns that part off); see :mod:`.quota`. With
    ``api_docs``, ``/docs`` lists the API's operations. With ``webhook_delivery`` a
    :class:`Deliverer` sends the webhook outbox while the application runs (instances on one
    database share the work; see :mod:`agenitry.gateway.service.webhooks`). Every answer
    carries the security headers of :mod:`.headers`.

    >>> app = create_app(Gateway(Database("sqlite:///agenitry.db")))  # doctest: +SKIP
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if sweep_interval > 0:
            threading.Thread(target=_sweep, args=(gateway, sweep_interval, stop), daemon=True).start()
        deliverer = Deliverer(gateway.webhooks).start() if webhook_delivery else None
        try:
            yield
        finally:
            stop.set()
            if deliverer is not None:
                deliverer.stop()

    app = FastAPI(
        title="Agenitry gateway",
        version=__version__,
        summary="Spend authority and a verifiable audit trail for AI agents (wire protocol v1).",
        # Swagger UI would load a CDN's script on our origin; routes/docs.py replaces it.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(deps.storable_parameters)],
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    errors.install(app)
    ratelimit.install(app, public=(public_rate_limit, public_rate_burst), keys=(key_rate_limit, key_rate_burst))
    quota.install(app, events=agent_event_quota, size=agent_byte_quota, window=agent_quota_window)
    for module in (events, authorizations, policies, keys, webhooks, public, log, verifier):
        app.include_router(module.router)
    if api_docs:
        app.include_router(docs.router)
    console_auth.install(app)
    console_pages.install_refusals(app)
    app.include_router(console_pages.router)
    app.include_router(console_owner.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIRECTORY), name="static")
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(SecurityHeaders)  # added last, so outermost: every answer gets the headers
    return app


def _sweep(gateway: Gateway, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            gateway.sweep()
        except Exception:  # a failed sweep is retried next time; lazy expiry still holds
            logger.exception("Sweep failed")


def app_from_env() -> FastAPI:
    """An application configured from AGENITRY_* variables, for ``uvicorn --factory``
    (several workers on one PostgreSQL, for instance). Migrates the database first."""
    settings = Settings.from_env()
    gateway = settings.gateway()
    gateway.migrate()
    return app_from_settings(gateway, settings)


def app_from_settings(gateway: Gateway, settings: Settings) -> FastAPI:
    """The application of ``gateway`` with the HTTP settings of ``settings``."""
    return create_app(
        gateway,
        max_body_bytes=settings.max_body_bytes,
        sweep_interval=settings.sweep_interval,
        public_rate_limit=settings.public_rate_limit,
        public_rate_burst=settings.public_rate_burst,
        key_rate_limit=settings.key_rate_limit,
        key_rate_burst=settings.key_rate_burst,
        agent_event_quota=settings.agent_event_quota,
        agent_byte_quota=settings.agent_byte_quota,
        agent_quota_window=settings.agent_quota_window,
        api_docs=settings.api_docs,
        webhook_delivery=settings.webhook_delivery,
    )
