"""Rendering console pages: the shared layout's context, the console's headers, and the
filters its templates use (Jinja2 escapes every value)."""

from __future__ import annotations

import json
from typing import Any, Optional

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from agenitry.gateway._clock import DAY, HOUR, MINUTE, parse_iso
from agenitry.gateway.api.headers import CONSOLE_CONTENT_SECURITY_POLICY
from agenitry.gateway.api.templating import templates
from agenitry.gateway.errors import GatewayError
from agenitry.gateway.service import console
from agenitry.gateway.service.gateway import Gateway
from agenitry.gateway.service.sessions import Session

#: Every console answer: its own content policy (forms and the one script); never cached, so
#: that a shared computer's back button shows no owner's page after sign-out; and a referrer
#: policy that lets the browser name the console as a form's origin (under the gateway's
#: ``no-referrer`` a form's post says ``Origin: null``, which the forgery check refuses).
HEADERS = {
    "Content-Security-Policy": CONSOLE_CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
}
#: The console's sections, in the order of its navigation.
SECTIONS = (
    ("pending", "/console", "Pending"),
    ("spend", "/console/spend", "Spend"),
    ("authorizations", "/console/authorizations", "Authorizations"),
    ("audit", "/console/audit", "Audit trail"),
    ("policies", "/console/policies", "Policies"),
    ("keys", "/console/keys", "Keys"),
    ("webhooks", "/console/webhooks", "Webhooks"),
)


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    session: Optional[Session] = None,
    section: Optional[str] = None,
    status_code: int = 200,
    headers: Optional[dict[str, str]] = None,
) -> HTMLResponse:
    """A console page in the layout: its venue, navigation and sign-out when signed in."""
    shared: dict[str, Any] = {"sections": SECTIONS, "section": section, "session": session}
    if session is not None:
        shared["csrf_token"] = session.csrf_token
        shared["venue"] = context.get("venue") or console.venue(gateway_of(request), session.principal)
    return templates.TemplateResponse(
        request,
        f"console/{template}",
        {**shared, **context},
        status_code=status_code,
        headers={**HEADERS, **(headers or {})},
    )


async def apage(request: Request, template: str, context: dict[str, Any], **options: Any) -> HTMLResponse:
    """:func:`page` off the event loop (it may read the venue)."""
    return await run_in_threadpool(lambda: page(request, template, context, **options))


def problem(request: Request, exc: GatewayError, session: Optional[Session], *, back: str = "/console") -> HTMLResponse:
    """A refused console action: the gateway's sentence, its status, a way back; nothing changed."""
    return page(
        request,
        "problem.html",
        {"message": exc.message, "code": exc.code, "back": back},
        session=session,
        status_code=exc.status,
    )


def see_other(url: str) -> Response:
    """After a form: the browser loads ``url`` (so a reload never posts the form twice)."""
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def left(milliseconds: Optional[int]) -> str:
    """Time left as a person says it: "2 d 3 h", "3 h 12 min", "4 min", "under a minute"."""
    if milliseconds is None:
        return ""
    if milliseconds <= 0:
        return "expired"
    days, rest = divmod(milliseconds, DAY)
    hours, rest = divmod(rest, HOUR)
    minutes = rest // MINUTE
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "under a minute"


def when(stamp: Optional[str]) -> str:
    """An ISO time of the wire protocol as a page shows it: ``2026-12-02 11:30:05 UTC``."""
    if not stamp:
        return ""
    return stamp.replace("T", " ").split(".")[0].removesuffix("Z") + " UTC"


def epoch_ms(stamp: Optional[str]) -> Optional[int]:
    return parse_iso(stamp) if stamp else None


def json_text(value: Any) -> str:
    """A context as the agent wrote it: indented JSON in its own characters, not ``\\u`` escapes
    (Jinja's ``tojson`` writes "Café <7>" as "Caf\\u00e9 \\u003c7\\u003e"); plain text, so the
    template escapes it like any other."""
    return json.dumps(value, indent=2, ensure_ascii=False)


templates.env.filters["left"] = left
templates.env.filters["when"] = when
templates.env.filters["epoch_ms"] = epoch_ms
templates.env.filters["json_text"] = json_text
