"""The HTTP application: routes only parse, authenticate, call the service and render."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from agenitry import __version__
from agenitry.gateway.api import deps, errors
from agenitry.gateway.api.limits import BodyLimit
from agenitry.gateway.api.routes import authorizations, events, keys, policies, public
from agenitry.gateway.service.gateway import Gateway
from agenitry.gateway.settings import Settings
from agenitry.gateway.store.database import Database

logger = logging.getLogger("agenitry.gateway")


def create_app(gateway: Gateway, *, max_body_bytes: int = 1_048_576, sweep_interval: float = 0) -> FastAPI:
    """The gateway's ASGI application.

    With ``sweep_interval`` > 0 a background thread expires lapsed authorizations and
    drops stale records every that many seconds while the application runs.

    >>> app = create_app(Gateway(Database("sqlite:///agenitry.db")))  # doctest: +SKIP
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if sweep_interval > 0:
            threading.Thread(target=_sweep, args=(gateway, sweep_interval, stop), daemon=True).start()
        try:
            yield
        finally:
            stop.set()

    app = FastAPI(
        title="Agenitry gateway",
        version=__version__,
        summary="Spend authority and a verifiable audit trail for AI agents (wire protocol v1).",
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(deps.storable_parameters)],
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    errors.install(app)
    for module in (events, authorizations, policies, keys, public):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app


def _sweep(gateway: Gateway, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            gateway.sweep()
        except Exception:  # a failed sweep is retried next time; lazy expiry still holds
            logger.exception("Expiry sweep failed")


def app_from_env() -> FastAPI:
    """An application configured from AGENITRY_* variables, for ``uvicorn --factory``
    (several workers on one PostgreSQL, for instance). Migrates the database first."""
    settings = Settings.from_env()
    gateway = Gateway(
        Database(settings.database_url),
        execute_window=settings.execute_window,
        approval_window=settings.approval_window,
        public_url=settings.verify_base_url,
    )
    gateway.migrate()
    return create_app(gateway, max_body_bytes=settings.max_body_bytes, sweep_interval=settings.sweep_interval)
