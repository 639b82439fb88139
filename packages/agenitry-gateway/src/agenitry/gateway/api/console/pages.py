"""The console's sign-in, its pending queue with the owner's decisions, the authorizations,
the audit trail and the keys.

Routes only parse, check the session and its form, call the gateway and render, as the API's
routes do. A refused action renders the gateway's sentence with its status; a done one sends
the browser on (303), so a reload never takes it twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any, Optional
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from agenitry import AUTHORIZATION_STATUSES
from agenitry.gateway._clock import DAY, SECOND
from agenitry.gateway.api.console import auth
from agenitry.gateway.api.console.auth import ConsoleSession, Posted, field
from agenitry.gateway.api.console.render import apage, gateway_of, page, problem, see_other
from agenitry.gateway.errors import GatewayError, Unprocessable
from agenitry.gateway.service import console
from agenitry.gateway.service.gateway import Gateway
from agenitry.gateway.service.sessions import Session

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
Text = Annotated[Optional[str], Query(max_length=200)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


@router.get("/")
def root() -> Response:
    """The gateway's own address leads its owner to the console."""
    return RedirectResponse("/console", status_code=307)


# -- signing in and out ---------------------------------------------------------------------


@router.get("/console/login", response_class=HTMLResponse)
async def sign_in_page(request: Request, then: Optional[str] = None) -> Response:
    # No length limit on ``then``: a lapsed session's long deep link must still reach a sign-in
    # page (safe_then sends one past MAX_THEN to /console instead).
    if await run_in_threadpool(auth.sessions(request).find, request.cookies.get(auth.SESSION_COOKIE)):
        return see_other(auth.safe_then(then))
    return _sign_in_form(request, then)


def _sign_in_form(
    request: Request, then: Optional[str], *, message: Optional[str] = None, status: int = 200
) -> Response:
    token = auth.new_sign_in_token()
    context = {"then": auth.safe_then(then), "message": message, "token": token}
    response = page(request, "login.html", context, status_code=status)
    auth.set_sign_in_cookie(response, request, token)
    return response


@router.post("/console/login", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    form = await request.form()
    then = field(form, "then")
    wait = auth.limit_sign_in(request)
    if wait > 0:
        seconds = max(1, round(wait))
        return _sign_in_form(
            request,
            then,
            message=f"Too many sign-in attempts from this address: try again in {seconds} s.",
            status=429,
        )
    if not auth.sign_in_token_matches(request, field(form, "token")):
        return _sign_in_form(
            request, then, message="This sign-in form has expired or came from elsewhere: sign in again.", status=403
        )
    secret = field(form, "key")
    if secret is None:
        return _sign_in_form(request, then, message="Enter the venue's admin key (it starts with ag_).", status=422)
    try:
        token, session = await run_in_threadpool(auth.sessions(request).sign_in, secret)
    except GatewayError as exc:
        message = "That key is not valid, or it was revoked." if exc.status == 401 else exc.message
        return _sign_in_form(request, then, message=message, status=exc.status)
    response = see_other(auth.safe_then(then))
    auth.set_session_cookie(response, request, token, session, gateway_of(request).clock())
    return response


@router.post("/console/logout")
async def sign_out(request: Request, _form: Posted) -> Response:
    await run_in_threadpool(auth.sessions(request).sign_out, request.cookies.get(auth.SESSION_COOKIE))
    response = see_other("/console/login?then=/console")
    auth.end_session_cookie(response)
    return response


# -- the pending queue and decisions ------------------------------------------------------------


@router.get("/console", response_class=HTMLResponse)
def pending(request: Request, session: ConsoleSession, decided: Text = None) -> Response:
    gateway = gateway_of(request)
    queue = console.pending(gateway, session.principal)
    notice = _decided(gateway, session, decided) if decided else None
    return page(request, "pending.html", {**queue, "notice": notice}, session=session, section="pending")


def _decided(gateway: Gateway, session: Session, authorization_id: str) -> Optional[str]:
    """The notice after a decision, as the gateway has it: an address anyone can write to an
    owner never puts its own words (or a false status) on the page."""
    try:
        record = gateway.get_authorization(session.principal, authorization_id)
    except GatewayError:
        return None
    return f"{record['id']} is {record['status']}."


@router.get("/console/pending", response_class=HTMLResponse)
def pending_list(request: Request, session: ConsoleSession) -> Response:
    """The pending list alone, for the page's script to show new requests without a reload."""
    queue = console.pending(gateway_of(request), session.principal)
    response = page(request, "pending_list.html", queue, session=session)
    response.headers["X-Pending-Count"] = str(len(queue["pending"]))
    return response


@router.post("/console/authorizations/{authorization_id}/approve", response_class=HTMLResponse)
def approve(authorization_id: str, request: Request, session: ConsoleSession, form: Posted) -> Response:
    return _decide(
        request,
        session,
        authorization_id,
        lambda gateway: gateway.approve(session.principal, authorization_id, note=field(form, "note")),
        field(form, "back"),
    )


@router.post("/console/authorizations/{authorization_id}/deny", response_class=HTMLResponse)
def deny(authorization_id: str, request: Request, session: ConsoleSession, form: Posted) -> Response:
    return _decide(
        request,
        session,
        authorization_id,
        lambda gateway: gateway.deny(session.principal, authorization_id, reason=field(form, "reason")),
        field(form, "back"),
    )


def _decide(request: Request, session: Session, authorization_id: str, act: Any, back: Optional[str]) -> Response:
    try:
        act(gateway_of(request))
    except GatewayError as exc:
        return problem(request, exc, session, back=auth.safe_then(back))
    if back and back.startswith("/console/authorizations/"):
        return see_other(auth.safe_then(back))
    return see_other(f"/console?decided={authorization_id}")


# -- authorizations and the audit trail ----------------------------------------------------------


class Filters:
    """The filters of a listing page, from its query: agent, action, UTC dates, and the page."""

    def __init__(
        self,
        agent_id: Text = None,
        action: Text = None,
        since: Text = None,
        until: Text = None,
        offset: Offset = 0,
    ) -> None:
        self.shown = {"agent_id": agent_id, "action": action, "since": since, "until": until}
        self.offset = offset

    def query(self) -> dict[str, Any]:
        """The gateway's listing arguments (a bad date raises the gateway's 422)."""
        shown = self.shown
        created = _days(shown["since"], shown["until"])
        return {"agent_id": shown["agent_id"], "action": shown["action"], "created": created, "offset": self.offset}


ListFilters = Annotated[Filters, Depends()]


@router.get("/console/authorizations", response_class=HTMLResponse)
def authorizations(request: Request, session: ConsoleSession, filters: ListFilters, status: Text = None) -> Response:
    filters.shown["status"] = status
    return _listing(
        request,
        session,
        "authorizations",
        lambda query: console.authorizations_page(gateway_of(request), session.principal, status=status, **query),
        filters,
        statuses=AUTHORIZATION_STATUSES,
    )


@router.get("/console/authorizations/{authorization_id}", response_class=HTMLResponse)
def authorization(authorization_id: str, request: Request, session: ConsoleSession) -> Response:
    try:
        shown = console.authorization(gateway_of(request), session.principal, authorization_id)
    except GatewayError as exc:
        return problem(request, exc, session, back="/console/authorizations")
    return page(request, "authorization.html", shown, session=session, section="authorizations")


@router.get("/console/audit", response_class=HTMLResponse)
def audit(request: Request, session: ConsoleSession, filters: ListFilters) -> Response:
    return _listing(
        request,
        session,
        "audit",
        lambda query: console.events_page(gateway_of(request), session.principal, **query),
        filters,
    )


def _listing(
    request: Request,
    session: Session,
    section: str,
    listed: Callable[[dict[str, Any]], dict[str, Any]],
    filters: Filters,
    **context: Any,
) -> Response:
    """A listing page: a page of what ``listed`` finds under ``filters``, with links to the next ones."""
    try:
        listing = listed({**filters.query(), "limit": PAGE_SIZE})
    except GatewayError as exc:
        return problem(request, exc, session, back=f"/console/{section}")
    context = {**listing, **context, "filters": filters.shown, "pages": _pages(listing, filters.shown)}
    return page(request, f"{section}.html", context, session=session, section=section)


def _days(since: Optional[str], until: Optional[str]) -> tuple[Optional[int], Optional[int]]:
    """The times from the start of day ``since`` to the end of day ``until`` (UTC dates)."""
    start = _day(since, "From") if since else None
    end = _day(until, "To") + DAY if until else None
    return start, end


def _day(text: str, name: str) -> int:
    try:
        moment = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise Unprocessable(f"{name} must be a date such as 2026-12-01, not '{text}'", code="invalid_date") from None
    return int(moment.timestamp()) * SECOND


def _pages(listing: dict[str, Any], filters: dict[str, Optional[str]]) -> dict[str, Optional[str]]:
    """Links to the previous and next page of a listing, keeping its filters."""
    kept = {name: value for name, value in filters.items() if value}
    offset, limit, total = listing["offset"], listing["limit"], listing["total"]
    previous = urlencode({**kept, "offset": max(0, offset - limit)}) if offset > 0 else None
    following = urlencode({**kept, "offset": offset + limit}) if offset + limit < total else None
    return {"previous": previous, "next": following}


# -- keys ------------------------------------------------------------------------------------------


@router.get("/console/keys", response_class=HTMLResponse)
def keys(request: Request, session: ConsoleSession) -> Response:
    listing = gateway_of(request).list_keys(session.principal)
    return page(request, "keys.html", {**listing, "created": None}, session=session, section="keys")


@router.post("/console/keys", response_class=HTMLResponse)
def create_key(request: Request, session: ConsoleSession, form: Posted) -> Response:
    gateway = gateway_of(request)
    role = field(form, "role") or "agent"
    try:
        record, secret = gateway.create_key(
            session.principal,
            role=role,
            agent_id=field(form, "agent_id") if role == "agent" else None,
            name=field(form, "name"),
        )
    except GatewayError as exc:
        return problem(request, exc, session, back="/console/keys")
    listing = gateway.list_keys(session.principal)
    # The secret is in this answer only: it is never stored, and this page is never cached.
    return page(
        request,
        "keys.html",
        {**listing, "created": {**record, "key": secret}},
        session=session,
        section="keys",
        status_code=201,
    )


@router.post("/console/keys/{key_id}/revoke", response_class=HTMLResponse)
def revoke_key(key_id: str, request: Request, session: ConsoleSession, _form: Posted) -> Response:
    try:
        gateway_of(request).revoke_key(session.principal, key_id)
    except GatewayError as exc:
        return problem(request, exc, session, back="/console/keys")
    return see_other("/console/keys")


def install_refusals(app: Any) -> None:
    """A form from elsewhere (or without its session's token) is answered 403 and does nothing."""

    async def refused(request: Request, _exc: Exception) -> Response:
        return await apage(
            request,
            "problem.html",
            {
                "message": "This form did not come from a console page of your session, so nothing was done."
                " Reload the page and try again.",
                "code": "csrf_failed",
                "back": "/console",
            },
            status_code=403,
        )

    app.add_exception_handler(auth.FormRefused, refused)

    # A malformed address under /console (a filter too long, a page that does not exist) is
    # answered with a page a person reads, saying what the API would say; elsewhere, JSON.
    for kind in (RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, _as_a_page(app.exception_handlers[kind]))


def _as_a_page(answer_json: Callable[[Request, Exception], Any]) -> Callable[[Request, Exception], Any]:
    async def answer(request: Request, exc: Exception) -> Response:
        response: Response = await answer_json(request, exc)
        if not request.url.path.startswith("/console") or request.method != "GET":
            return response
        refused = json.loads(bytes(response.body))
        return await apage(
            request,
            "problem.html",
            {"message": refused["error"], "code": refused["code"], "back": "/console"},
            status_code=response.status_code,
            headers={key: value for key, value in response.headers.items() if key.lower() == "retry-after"},
        )

    return answer
