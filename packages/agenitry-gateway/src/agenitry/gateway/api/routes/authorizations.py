"""Spend authority: request, decide, and move authorizations through their lifecycle."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse

from agenitry.gateway.api import schemas
from agenitry.gateway.api.deps import CurrentKey, GatewayDep, IdempotencyHeader, KeyedRoute, answer, dump, idempotency

router = APIRouter(
    prefix="/v1/authorize", tags=["authorizations"], responses=schemas.KEYED_ERRORS, route_class=KeyedRoute
)

Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]


@router.post("", response_model=schemas.DecisionOut)
def authorize(
    body: schemas.AuthorizeIn, key: CurrentKey, gateway: GatewayDep, request: Request, idem: IdempotencyHeader = None
) -> JSONResponse:
    """Decide a spend request. A denial or a pending decision is a 200 answer."""
    return answer(gateway.authorize(key, dump(body), idempotency=idempotency(idem, key, request, body)))


@router.post("/{authorization_id}/claim", response_model=schemas.ClaimedOut)
def claim(
    authorization_id: str,
    key: CurrentKey,
    gateway: GatewayDep,
    request: Request,
    body: Annotated[Optional[schemas.ClaimIn], Body()] = None,
    idem: IdempotencyHeader = None,
) -> JSONResponse:
    """Become the one caller that may execute an approved authorization, for a lease.

    A second claim while the lease runs is 409 ``already_claimed``; an executed one is 409
    ``already_executed``. The token is in this answer only.
    """
    lease_seconds = body.lease_seconds if body else None
    outcome = gateway.claim(
        key, authorization_id, lease_seconds=lease_seconds, idempotency=idempotency(idem, key, request, body)
    )
    return answer(outcome)


@router.post("/{authorization_id}/execute", response_model=schemas.ExecutedOut)
def execute(
    authorization_id: str,
    key: CurrentKey,
    gateway: GatewayDep,
    request: Request,
    body: Annotated[Optional[schemas.ExecuteIn], Body()] = None,
    idem: IdempotencyHeader = None,
) -> JSONResponse:
    fields = body or schemas.ExecuteIn()
    outcome = gateway.execute(
        key,
        authorization_id,
        actual_amount=fields.actual_amount,
        context=fields.context,
        claim_token=fields.claim_token,
        idempotency=idempotency(idem, key, request, body),
    )
    return answer(outcome)


@router.post("/{authorization_id}/settle", response_model=schemas.SettledOut)
def settle(
    authorization_id: str,
    key: CurrentKey,
    gateway: GatewayDep,
    request: Request,
    body: Annotated[Optional[schemas.SettleIn], Body()] = None,
    idem: IdempotencyHeader = None,
) -> JSONResponse:
    context = body.context if body else None
    outcome = gateway.settle(key, authorization_id, context=context, idempotency=idempotency(idem, key, request, body))
    return answer(outcome)


@router.post("/{authorization_id}/reverse", response_model=schemas.ReversedOut)
def reverse(
    authorization_id: str,
    key: CurrentKey,
    gateway: GatewayDep,
    request: Request,
    body: Annotated[Optional[schemas.ReverseIn], Body()] = None,
    idem: IdempotencyHeader = None,
) -> JSONResponse:
    """Cancel an approved authorization (its agent or an admin) or an executed one (an admin only)."""
    claim_token = body.claim_token if body else None
    outcome = gateway.reverse(
        key, authorization_id, claim_token=claim_token, idempotency=idempotency(idem, key, request, body)
    )
    return answer(outcome)


@router.post("/{authorization_id}/approve", response_model=schemas.AuthorizationOut)
def approve(
    authorization_id: str,
    key: CurrentKey,
    gateway: GatewayDep,
    request: Request,
    body: Annotated[Optional[schemas.ApproveIn], Body()] = None,
    idem: IdempotencyHeader = None,
) -> JSONResponse:
    """An owner approves a pending authorization (admin keys only)."""
    note = body.note if body else None
    outcome = gateway.approve(key, authorization_id, note=note, idempotency=idempotency(idem, key, request, body))
    return answer(outcome)


@router.post("/{authorization_id}/deny", response_model=schemas.AuthorizationOut)
def deny(
    authorization_id: str,
    key: CurrentKey,
    gateway: GatewayDep,
    request: Request,
    body: Annotated[Optional[schemas.DenyIn], Body()] = None,
    idem: IdempotencyHeader = None,
) -> JSONResponse:
    """An owner denies a pending authorization (admin keys only)."""
    reason = body.reason if body else None
    outcome = gateway.deny(key, authorization_id, reason=reason, idempotency=idempotency(idem, key, request, body))
    return answer(outcome)


@router.get("", response_model=schemas.AuthorizationPage)
def list_authorizations(
    key: CurrentKey,
    gateway: GatewayDep,
    agent_id: Optional[str] = None,
    action: Optional[str] = None,
    status: Optional[str] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    return gateway.list_authorizations(key, agent_id=agent_id, action=action, status=status, limit=limit, offset=offset)


@router.get("/{authorization_id}", response_model=schemas.AuthorizationOut)
def get_authorization(authorization_id: str, key: CurrentKey, gateway: GatewayDep) -> dict[str, Any]:
    return gateway.get_authorization(key, authorization_id)
