"""API keys of a venue: admin keys create, list and revoke them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from agenitry.gateway.api import schemas
from agenitry.gateway.api.deps import (
    CurrentKey,
    GatewayDep,
    IdempotencyHeader,
    KeyedRoute,
    answer,
    idempotency,
    no_fields,
)
from agenitry.gateway.service.gateway import Outcome

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=schemas.KEYED_ERRORS, route_class=KeyedRoute)


@router.post("", status_code=201, response_model=schemas.NewKeyOut)
def create_key(
    body: schemas.KeyIn, key: CurrentKey, gateway: GatewayDep, request: Request, idem: IdempotencyHeader = None
) -> JSONResponse:
    """Create a key; its secret is in this answer and nowhere else.

    A repeat under the same Idempotency-Key creates nothing and answers the key's record
    with ``key: null``: the secret was never stored, so it cannot be shown twice.
    """
    record, secret = gateway.create_key(
        key, role=body.role, agent_id=body.agent_id, name=body.name, idempotency=idempotency(idem, key, request, body)
    )
    return answer(Outcome({**record, "key": secret}, replayed=secret is None), 201)


@router.get("", response_model=schemas.KeyList)
def list_keys(key: CurrentKey, gateway: GatewayDep) -> dict[str, Any]:
    return gateway.list_keys(key)


@router.delete("/{key_id}", response_model=schemas.KeyOut, dependencies=[Depends(no_fields)])
def revoke_key(
    key_id: str, key: CurrentKey, gateway: GatewayDep, request: Request, idem: IdempotencyHeader = None
) -> JSONResponse:
    return answer(gateway.revoke_key(key, key_id, idempotency=idempotency(idem, key, request, None)))
