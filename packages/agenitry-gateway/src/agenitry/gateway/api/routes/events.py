"""The audit trail: log events, list them, sum them up."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from agenitry.gateway.api import schemas
from agenitry.gateway.api.deps import CurrentKey, GatewayDep, IdempotencyHeader, KeyedRoute, answer, dump, idempotency
from agenitry.gateway.api.quota import admit_events
from agenitry.gateway.errors import Unprocessable
from agenitry.gateway.service import inputs

router = APIRouter(prefix="/v1/events", tags=["events"], responses=schemas.KEYED_ERRORS, route_class=KeyedRoute)

Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]


@router.post("", status_code=201, response_model=schemas.LoggedOut)
def log_event(
    body: schemas.EventIn, key: CurrentKey, gateway: GatewayDep, request: Request, idem: IdempotencyHeader = None
) -> JSONResponse:
    event = dump(body)
    admit_events(request, key, [event])
    outcome = gateway.log_event(key, event, idempotency=idempotency(idem, key, request, body))
    return answer(outcome, 201)


@router.post("/batch", response_model=schemas.BatchOut)
def log_events(
    body: schemas.EventBatchIn,
    key: CurrentKey,
    gateway: GatewayDep,
    request: Request,
    idem: IdempotencyHeader = None,
) -> JSONResponse:
    batch = [dump(event) for event in body.events]
    admit_events(request, key, batch)
    return answer(gateway.log_events(key, batch, idempotency=idempotency(idem, key, request, body)))


@router.get("/{venue_id}", response_model=schemas.EventPage)
def list_events(
    venue_id: str,
    key: CurrentKey,
    gateway: GatewayDep,
    agent_id: Optional[str] = None,
    action: Optional[str] = None,
    context: Annotated[Optional[str], Query(description="A JSON object the events' context must contain")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    return gateway.list_events(
        key, venue_id, agent_id=agent_id, action=action, context=_json_object(context), limit=limit, offset=offset
    )


@router.get("/{venue_id}/stats", response_model=schemas.StatsOut)
def stats(
    venue_id: str,
    key: CurrentKey,
    gateway: GatewayDep,
    period: Annotated[str, Query(description="today, 7d, 30d or all")] = "today",
) -> dict[str, Any]:
    return gateway.stats(key, venue_id, period=period)


def _json_object(text: Optional[str]) -> Optional[dict[str, Any]]:
    if text is None:
        return None
    try:
        value = json.loads(text) if len(text) <= 4096 else None
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise Unprocessable("context must be a JSON object of at most 4096 characters", code="invalid_context_filter")
    try:
        return inputs.context(value)
    except Unprocessable as exc:
        raise Unprocessable(f"The context filter is not usable: {exc.message}", code="invalid_context_filter") from None
