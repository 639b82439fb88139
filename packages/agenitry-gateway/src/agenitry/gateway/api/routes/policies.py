"""Spend policies: one venue-wide, one per agent; admin keys change them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from agenitry.gateway.api import schemas
from agenitry.gateway.api.deps import CurrentKey, GatewayDep, IdempotencyHeader, answer, dump, idempotency

router = APIRouter(prefix="/v1/policies", tags=["policies"], responses=schemas.KEYED_ERRORS)


@router.put("", response_model=schemas.PolicyOut)
def put_policy(
    body: schemas.PolicyIn, key: CurrentKey, gateway: GatewayDep, request: Request, idem: IdempotencyHeader = None
) -> JSONResponse:
    """Replace the policy of one scope; limits not sent become unlimited."""
    return answer(gateway.put_policy(key, dump(body), idempotency=idempotency(idem, key, request, body)))


@router.get("", response_model=schemas.PolicyList)
def list_policies(key: CurrentKey, gateway: GatewayDep) -> dict[str, Any]:
    return gateway.list_policies(key)


@router.delete("/{policy_id}", response_model=schemas.DeletedOut)
def delete_policy(
    policy_id: str, key: CurrentKey, gateway: GatewayDep, request: Request, idem: IdempotencyHeader = None
) -> JSONResponse:
    return answer(gateway.delete_policy(key, policy_id, idempotency=idempotency(idem, key, request, None)))
