"""What routes declare they need: the gateway, the caller's key, an idempotency key."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from agenitry.gateway.api.ratelimit import limit_key
from agenitry.gateway.errors import Unauthenticated, Unprocessable
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.gateway import Gateway, Idempotency, Outcome


async def get_gateway(request: Request) -> Gateway:
    # async: no I/O here, and a sync dependency would cost a hop to the thread pool.
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def current_key(
    request: Request,
    gateway: GatewayDep,
    authorization: Annotated[Optional[str], Header(description="Bearer ag_...")] = None,
) -> Principal:
    """The caller's key, once it has a token left in its rate limit."""
    scheme, _, secret = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthenticated()
    principal = gateway.authenticate(secret.strip())
    limit_key(request, principal.key_id)
    return principal


CurrentKey = Annotated[Principal, Depends(current_key)]


async def storable_parameters(request: Request) -> None:
    """Refuse a NUL in the path or the query: PostgreSQL text cannot hold one (a 500 otherwise)."""
    for name, value in (*request.path_params.items(), *request.query_params.multi_items()):
        if "\x00" in value:
            raise Unprocessable(f"{name} must not contain NUL characters", code="invalid_field")


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
