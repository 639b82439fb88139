"""What needs no key: the verify links and the health check."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from agenitry.gateway.api import schemas
from agenitry.gateway.api.deps import GatewayDep
from agenitry.gateway.api.templating import templates
from agenitry.gateway.errors import GatewayError

router = APIRouter(tags=["public"])


@router.get("/v1/verify/{venue_id}/{event_id}", response_model=schemas.VerifyOut)
def verify_json(venue_id: str, event_id: str, gateway: GatewayDep) -> dict[str, Any]:
    """An event as its verify link shows it, with the entry its leaf hash commits to."""
    event = gateway.public_event(venue_id, event_id)
    return {
        "event": {k: v for k, v in event.items() if k != "entry"},
        "entry": event["entry"],
        "leaf_hash": event["leaf_hash"],
        "proof": None,
        "checkpoint": None,
    }


@router.get("/verify/{venue_id}/{event_id}", response_class=HTMLResponse, include_in_schema=True)
def verify_page(venue_id: str, event_id: str, request: Request, gateway: GatewayDep) -> HTMLResponse:
    """The public page of one event: what happened, when, by which agent."""
    try:
        event = gateway.public_event(venue_id, event_id)
    except GatewayError as exc:
        return templates.TemplateResponse(request, "not_found.html", {"message": exc.message}, status_code=exc.status)
    return templates.TemplateResponse(request, "verify.html", {"event": event})


@router.get("/healthz", response_model=schemas.HealthOut)
def health(gateway: GatewayDep) -> dict[str, Any]:
    with gateway.db.read() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok", "database": gateway.db.dialect}
