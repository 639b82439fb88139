"""What routes declare they need: the gateway, the caller's key, an idempotency key."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Optional

from fastapi import Body, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from agenitry.gateway.api import schemas
from agenitry.gateway.api.ratelimit import limit_key
from agenitry.gateway.errors import Unauthenticated, Unprocessable
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.gateway import Gateway, Idempotency, Outcome


async def get_gateway(request: Request) -> Gateway:
    # async: no I/O here, and a sync dependency would cost a hop to the thread pool.
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def _bearer(authorization: Optional[str]) -> str:
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated()
    return secret.strip()


def _authenticate(request: Request, authorization: Optional[str]) -> Principal:
    """The key presented as ``Bearer ag_...``, once it has a token left in its rate limit."""
    gateway: Gateway = request.app.state.gateway
    principal = gateway.authenticate(_bearer(authorization), cached=True)
    limit_key(request, principal.key_id)
    return principal


async def _key(request: Request, authorization: Optional[str]) -> Principal:
    """:func:`_authenticate`, on the event loop when the key cache holds the key (memory
    only), else in the thread pool (a read of the database)."""
    gateway: Gateway = request.app.state.gateway
    known = gateway.keys.lookup(_bearer(authorization), gateway.clock())
    if known is None:
        return await run_in_threadpool(_authenticate, request, authorization)
    limit_key(request, known.key_id)
    return known


async def current_key(
    request: Request, authorization: Annotated[Optional[str], Header(description="Bearer ag_...")] = None
) -> Principal:
    """The caller's key: checked by :class:`KeyedRoute` before the body was read, else here."""
    checked = getattr(request.state, "principal", None)
    if isinstance(checked, Principal):
        return checked
    return await _key(request, authorization)


CurrentKey = Annotated[Principal, Depends(current_key)]


class KeyedRoute(APIRoute):
    """A route that needs a key, checked before the body is read: a caller without a valid
    key (or out of its rate limit) cannot make the gateway receive and parse a body.

    FastAPI reads and parses the body before it resolves any dependency, so the check runs
    here, ahead of FastAPI's own handler. An override of :func:`current_key` (the embedded
    client's operator) replaces the check, as it replaces the dependency.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def keyed(request: Request) -> Response:
            if current_key not in request.app.dependency_overrides:
                authorization = request.headers.get("authorization")
                request.state.principal = await _key(request, authorization)
            return await handle(request)

        return keyed


async def storable_parameters(request: Request) -> None:
    """Refuse a NUL in the path or the query: PostgreSQL text cannot hold one (a 500 otherwise)."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        if "\x00" in value:
            raise Unprocessable(f"{name} must not contain NUL characters", code="invalid_field")


def no_fields(
    _body: Annotated[Optional[schemas.NoFieldsIn], Body(description="No fields: any field sent is refused")] = None,
) -> None:
    """Dependency of a write that takes no body fields (a DELETE): any field sent is unknown."""


IdempotencyHeader = Annotated[
    Optional[str],
    Header(alias="Idempotency-Key", max_length=255, description="Repeats with this key have one effect"),
]


def idempotency(
    key: Optional[str], principal: Principal, request: Request, body: Optional[BaseModel]
) -> Optional[Idempotency]:
    if key is None:
        return None
    content = body.model_dump(mode="json", exclude_unset=True) if body is not None else None
    return Idempotency.of(key, principal, request.method, request.url.path, content)


def answer(outcome: Outcome, status_code: int = 200) -> JSONResponse:
    """Render a write's outcome; a replayed answer says so in a header."""
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return JSONResponse(outcome.body, status_code=status_code, headers=headers)


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(exclude_unset=True)
