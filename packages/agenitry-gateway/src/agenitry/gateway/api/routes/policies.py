"""Spend policies: one venue-wide, one per agent; admin keys change them."""

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
    dump,
    idempotency,
    no_fields,
)

router = APIRouter(prefix="/v1/policies", tags=["policies"], responses=schemas.KEYED_ERRORS, route_class=KeyedRoute)


@router.put("", response_model=schemas.PolicyOut)
def put_policy(
    body: schemas.PolicyIn, key: CurrentKey, gateway: GatewayDep, request: Request, idem: IdempotencyHeader = None
) -> JSONResponse:
    """Create the policy of one scope (the venue's without ``agent_id``) or update it: a
    field sent replaces, a field not sent keeps its value (no limit on create), and ``null``
    removes that limit."""
    return answer(gateway.put_policy(key, dump(body), idempotency=idempotency(idem, key, request, body)))


@router.get("", response_model=schemas.PolicyList)
def list_policies(key: CurrentKey, gateway: GatewayDep) -> dict[str, Any]:
    return gateway.list_policies(key)


@router.delete("/{policy_id}", response_model=schemas.DeletedOut, dependencies=[Depends(no_fields)])
def delete_policy(
    policy_id: str, key: CurrentKey, gateway: GatewayDep, request: Request, idem: IdempotencyHeader = None
) -> JSONResponse:
    return answer(gateway.delete_policy(key, policy_id, idempotency=idempotency(idem, key, request, None)))
