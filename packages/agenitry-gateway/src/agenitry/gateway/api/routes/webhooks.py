"""Webhook endpoints of a venue and their deliveries: admin keys add, list, remove and retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
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

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=schemas.KEYED_ERRORS, route_class=KeyedRoute)


@router.post("", status_code=201, response_model=schemas.NewWebhookOut)
def add_webhook(
    body: schemas.WebhookIn, key: CurrentKey, gateway: GatewayDep, request: Request, idem: IdempotencyHeader = None
) -> JSONResponse:
    """Add an endpoint; its signing secret is in this answer and nowhere else.

    A repeat under the same Idempotency-Key adds nothing and answers the endpoint's record
    with ``secret: null``.
    """
    record, secret = gateway.webhooks.add(
        key,
        body.url,
        events=body.events,
        format=body.format,
        description=body.description,
        idempotency=idempotency(idem, key, request, body),
    )
    return answer(Outcome({**record, "secret": secret}, replayed=secret is None), 201)


@router.get("", response_model=schemas.WebhookList)
def list_webhooks(key: CurrentKey, gateway: GatewayDep) -> dict[str, Any]:
    """The venue's endpoints, removed ones too (never their secrets)."""
    return gateway.webhooks.list(key)


@router.delete("/{webhook_id}", response_model=schemas.WebhookOut, dependencies=[Depends(no_fields)])
def remove_webhook(
    webhook_id: str, key: CurrentKey, gateway: GatewayDep, request: Request, idem: IdempotencyHeader = None
) -> JSONResponse:
    """Remove an endpoint: nothing more is sent to it, and its pending messages are failed."""
    return answer(gateway.webhooks.remove(key, webhook_id, idempotency=idempotency(idem, key, request, None)))


@router.get("/{webhook_id}/deliveries", response_model=schemas.WebhookDeliveries)
def webhook_deliveries(
    webhook_id: str, key: CurrentKey, gateway: GatewayDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> dict[str, Any]:
    """The endpoint's newest messages, each with every attempt and the receiver's answer."""
    return gateway.webhooks.deliveries(key, webhook_id, limit=limit)


@router.post(
    "/messages/{message_id}/retry", response_model=schemas.WebhookMessageOut, dependencies=[Depends(no_fields)]
)
def retry_message(
    message_id: str, key: CurrentKey, gateway: GatewayDep, request: Request, idem: IdempotencyHeader = None
) -> JSONResponse:
    """Send a pending or failed message again now, with the same webhook-id and body."""
    return answer(gateway.webhooks.retry(key, message_id, idempotency=idempotency(idem, key, request, None)))
