"""What needs no key: the verify links and the health check."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from sqlalchemy import text

from agenitry.gateway.api import schemas
from agenitry.gateway.api.deps import GatewayDep
from agenitry.gateway.api.ratelimit import limit_public
from agenitry.gateway.api.templating import templates
from agenitry.gateway.errors import GatewayError

router = APIRouter(tags=["public"])
#: Where the other routes' error model lands in /openapi.json.
ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorOut"}
limited = APIRouter(tags=["public"], dependencies=[Depends(limit_public)], responses=schemas.PUBLIC_ERRORS)


@limited.get("/v1/verify/{venue_id}/{event_id}", response_model=schemas.VerifyOut)
def verify_json(venue_id: str, event_id: str, gateway: GatewayDep) -> dict[str, Any]:
    """An event with everything needed to check it offline: its canonical entry and leaf
    hash, the inclusion proof against a signed checkpoint, and the same as a .tlog-proof.

    If no checkpoint covers the event yet, one is signed first."""
    return gateway.audit.document(gateway.public_event(venue_id, event_id))


@limited.get(
    "/v1/verify/{venue_id}/{event_id}/tlog-proof",
    response_class=PlainTextResponse,
    # The proof is text; its errors are JSON like every other route's.
    responses={
        200: {"content": {"text/plain": {}}},
        **{
            status: {"description": error["description"], "content": {"application/json": {"schema": ERROR_SCHEMA}}}
            for status, error in schemas.PUBLIC_ERRORS.items()
        },
    },
)
def verify_tlog_proof(venue_id: str, event_id: str, gateway: GatewayDep) -> PlainTextResponse:
    """The event's proof as a C2SP ``.tlog-proof`` file (its entry in the ``extra`` line)."""
    document = gateway.audit.document(gateway.public_event(venue_id, event_id))
    return PlainTextResponse(
        document["tlog_proof"],
        headers={"Content-Disposition": f'attachment; filename="{event_id}.tlog-proof"'},
    )


@limited.get(
    "/verify/{venue_id}/{event_id}",
    response_class=HTMLResponse,
    responses={404: {"description": "No such venue or event: a page that says so", "content": {"text/html": {}}}},
)
def verify_page(venue_id: str, event_id: str, request: Request, gateway: GatewayDep) -> HTMLResponse:
    """The public page of one event: what happened, whether its proof holds, and how to check it yourself."""
    try:
        document = gateway.audit.document(gateway.public_event(venue_id, event_id))
    except GatewayError as exc:
        return templates.TemplateResponse(request, "not_found.html", {"message": exc.message}, status_code=exc.status)
    return templates.TemplateResponse(
        request, "verify.html", {"event": document["event"], "document": document, "gateway_url": gateway.public_url}
    )


@router.get("/healthz", response_model=schemas.HealthOut)
def health(gateway: GatewayDep) -> dict[str, Any]:
    with gateway.db.read() as conn:
        conn.execute(text("SELECT 1"))
    return {"status": "ok", "database": gateway.db.dialect}


router.include_router(limited)
