"""The HTTP application: routes only parse, authenticate, call the service and render."""

from __future__ import annotations

from fastapi import FastAPI

from agenitry import __version__
from agenitry.gateway.api import errors
from agenitry.gateway.api.limits import BodyLimit
from agenitry.gateway.api.routes import authorizations, events, keys, policies, public
from agenitry.gateway.service.gateway import Gateway
from agenitry.gateway.settings import Settings


def create_app(gateway: Gateway, *, max_body_bytes: int = 1_048_576) -> FastAPI:
    """The gateway's ASGI application.

    >>> app = create_app(Gateway(Database("sqlite:///agenitry.db")))  # doctest: +SKIP
    """
    app = FastAPI(
        title="Agenitry gateway",
        version=__version__,
        summary="Spend authority and a verifiable audit trail for AI agents (wire protocol v1).",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.gateway = gateway
    errors.install(app)
    for module in (events, authorizations, policies, keys, public):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """An application configured from AGENITRY_* variables (``uvicorn --factory``)."""
    from agenitry.gateway.store.database import Database

    settings = Settings.from_env()
    gateway = Gateway(
        Database(settings.database_url),
        execute_window=settings.execute_window,
        approval_window=settings.approval_window,
        public_url=settings.verify_base_url,
    )
    return create_app(gateway, max_body_bytes=settings.max_body_bytes)
