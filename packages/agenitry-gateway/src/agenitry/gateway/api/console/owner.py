"""The console's pages for what the owner sets: spend against the limits, the policies
(edited through a diff and a dry run before anything is saved), and the webhooks.

As in :mod:`.pages`, routes parse, check the session and its form, call the service and
render; a refused change renders the gateway's sentence and changes nothing.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Optional
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from starlette.datastructures import FormData

from agenitry.gateway._money import display
from agenitry.gateway.api.console import charts
from agenitry.gateway.api.console.auth import ConsoleSession, Posted, field
from agenitry.gateway.api.console.render import gateway_of, page, problem, see_other
from agenitry.gateway.errors import GatewayError, Unprocessable
from agenitry.gateway.service import inputs
from agenitry.gateway.service.dryrun import LABELS, dry_run
from agenitry.gateway.service.inputs import POLICY_LIMITS
from agenitry.gateway.service.sessions import Session
from agenitry.gateway.service.spend import spend_summary
from agenitry.gateway.service.webhooks import EVENT_TYPES, FORMATS

router = APIRouter(include_in_schema=False)
#: An amount typed into a policy form: digits, an optional decimal part (the currency's
#: precision is checked by the gateway, as for the API).
_AMOUNT = re.compile(r"[0-9]{1,13}(\.[0-9]{1,4})?")
_ACTION_SEPARATORS = re.compile(r"[\s,]+")
_DAYS = re.compile(r"[0-9]{1,4}")
#: The spend summary's rolling windows, each drawn as a gauge whose text ends with these words.
_GAUGES = {"daily": "in 24 hours", "monthly": "in 30 days"}


# -- spend ---------------------------------------------------------------------------------


@router.get("/console/spend", response_class=HTMLResponse)
def spend(request: Request, session: ConsoleSession, days: Optional[str] = None) -> Response:
    try:
        # A few ASCII digits are a number; anything else goes on as text, which spend_summary
        # refuses with its sentence (on a page, not as the API's JSON error).
        period: Any = int(days) if days is not None and _DAYS.fullmatch(days) else days
        summary = spend_summary(gateway_of(request), session.principal, days=30 if period is None else period)
    except GatewayError as exc:
        return problem(request, exc, session, back="/console/spend")
    currency = summary["currency"]
    scopes = [("The whole venue", summary["venue"]), *((f"Agent {s['agent_id']}", s) for s in summary["agents"])]
    panels = [
        {
            "title": title,
            "scope": scope,
            **{name: _gauge(scope[name], label, currency) for name, label in _GAUGES.items()},
            "history": charts.daily_bars(scope["days"], currency=currency, limit=scope["limits"]["max_daily_spend"]),
        }
        for title, scope in scopes
    ]
    shown = {name: summary[name] for name in ("as_of", "currency", "period_days")}
    return page(request, "spend.html", {**shown, "panels": panels}, session=session, section="spend")


def _gauge(window: dict[str, Any], label: str, currency: str) -> Markup:
    return charts.gauge(window["spent"], window["held"], window["limit"], label=label, currency=currency)


# -- policies ------------------------------------------------------------------------------


@router.get("/console/policies", response_class=HTMLResponse)
def policies(request: Request, session: ConsoleSession, saved: Optional[str] = None) -> Response:
    listing = gateway_of(request).list_policies(session.principal)
    notice = None
    for policy in listing["policies"]:
        for name in POLICY_LIMITS:
            value = policy[name]
            minor = inputs.amount(value, policy["currency"], field=name) if value is not None else None
            policy[f"{name}_display"] = display(minor, policy["currency"]) if minor is not None else "no limit"
        if policy["id"] == saved:
            # Named by the store, never by the address: a link cannot put its own words here.
            scope = f"The policy of agent {policy['agent_id']}" if policy["agent_id"] else "The venue's policy"
            notice = f"{scope} is saved."
    return page(
        request,
        "policies.html",
        {**listing, "labels": LABELS, "notice": notice},
        session=session,
        section="policies",
    )


@router.get("/console/policies/edit", response_class=HTMLResponse)
def edit_policy(request: Request, session: ConsoleSession, agent_id: Optional[str] = None) -> Response:
    gateway = gateway_of(request)
    try:
        if agent_id:
            inputs.agent_id(agent_id)
    except GatewayError as exc:
        return problem(request, exc, session, back="/console/policies")
    listing = gateway.list_policies(session.principal)
    current = next((p for p in listing["policies"] if p["agent_id"] == (agent_id or None)), None)
    values = _form_values(current)
    return _editor(request, session, agent_id, values)


@router.post("/console/policies/preview", response_class=HTMLResponse)
def preview_policy(request: Request, session: ConsoleSession, form: Posted) -> Response:
    """The diff and the dry run of the edited policy; nothing is saved here."""
    values = _typed(form)
    try:
        changes = _changes(values)
        outcome = dry_run(gateway_of(request), session.principal, changes)
    except GatewayError as exc:
        return _editor(request, session, values["agent_id"], values, error=exc.message, status_code=exc.status)
    return _editor(request, session, values["agent_id"], values, preview=outcome)


@router.post("/console/policies/save", response_class=HTMLResponse)
def save_policy(request: Request, session: ConsoleSession, form: Posted) -> Response:
    values = _typed(form)
    try:
        saved = gateway_of(request).put_policy(session.principal, _changes(values))
    except GatewayError as exc:
        return _editor(request, session, values["agent_id"], values, error=exc.message, status_code=exc.status)
    return see_other("/console/policies?" + urlencode({"saved": saved.body["id"]}))


@router.post("/console/policies/{policy_id}/delete", response_class=HTMLResponse)
def delete_policy(policy_id: str, request: Request, session: ConsoleSession, _form: Posted) -> Response:
    try:
        gateway_of(request).delete_policy(session.principal, policy_id)
    except GatewayError as exc:
        return problem(request, exc, session, back="/console/policies")
    return see_other("/console/policies")


def _editor(
    request: Request,
    session: Session,
    agent_id: Optional[str],
    values: dict[str, Any],
    *,
    preview: Optional[dict[str, Any]] = None,
    error: Optional[str] = None,
    status_code: int = 200,
) -> Response:
    context = {"agent_id": agent_id, "values": values, "labels": LABELS, "preview": preview, "error": error}
    return page(request, "policy_edit.html", context, session=session, section="policies", status_code=status_code)


def _form_values(policy: Optional[dict[str, Any]]) -> dict[str, Any]:
    """A stored policy as its form shows it: amounts as decimal text, actions one per line."""
    values: dict[str, Any] = {"agent_id": policy["agent_id"] if policy else None}
    for name in POLICY_LIMITS:
        amount = policy.get(name) if policy else None
        values[name] = _plain(amount) if amount is not None else ""
    allowed = policy.get("allowed_actions") if policy else None
    values["allowed_actions"] = "\n".join(allowed) if allowed is not None else ""
    values["any_action"] = allowed is None
    return values


def _plain(amount: float) -> str:
    """An amount of the wire protocol as the form's text, without float noise: 500, 12.5."""
    return format(Decimal(repr(amount)).normalize(), "f")


def _typed(form: FormData) -> dict[str, Any]:
    """What the owner typed, kept as text so that a refused form shows it again unchanged."""
    values: dict[str, Any] = {"agent_id": field(form, "agent_id")}
    for name in POLICY_LIMITS:
        values[name] = field(form, name) or ""
    values["allowed_actions"] = field(form, "allowed_actions") or ""
    values["any_action"] = field(form, "any_action") == "yes"
    return values


def _changes(values: dict[str, Any]) -> dict[str, Any]:
    """The PUT /v1/policies body of a policy form: every field is sent, so the policy saved is
    the one the form shows (a blank amount: no limit; "any action": no list)."""
    changes: dict[str, Any] = {"agent_id": values["agent_id"]} if values["agent_id"] else {}
    for name in POLICY_LIMITS:
        text = values[name].replace(" ", "")
        if not text:
            changes[name] = None
        elif _AMOUNT.fullmatch(text):
            changes[name] = Decimal(text)
        else:
            raise Unprocessable(
                f"{LABELS[name]} must be an amount such as 500 or 12.50 (or blank for no limit), not '{text[:40]}'",
                code="invalid_amount",
            )
    if values["any_action"]:
        changes["allowed_actions"] = None
    else:
        changes["allowed_actions"] = [name for name in _ACTION_SEPARATORS.split(values["allowed_actions"]) if name]
    return changes


# -- webhooks ------------------------------------------------------------------------------


@router.get("/console/webhooks", response_class=HTMLResponse)
def webhooks(request: Request, session: ConsoleSession) -> Response:
    return _webhooks_page(request, session)


@router.post("/console/webhooks", response_class=HTMLResponse)
def add_webhook(request: Request, session: ConsoleSession, form: Posted) -> Response:
    chosen = [value for value in form.getlist("events") if isinstance(value, str)]
    try:
        record, secret = gateway_of(request).webhooks.add(
            session.principal,
            field(form, "url") or "",
            events=chosen or None,
            format=field(form, "format") or "json",
            description=field(form, "description"),
        )
    except GatewayError as exc:
        return problem(request, exc, session, back="/console/webhooks")
    # The secret is in this answer only; the page is never cached.
    return _webhooks_page(request, session, created={**record, "secret": secret}, status_code=201)


@router.get("/console/webhooks/{endpoint_id}", response_class=HTMLResponse)
def webhook(endpoint_id: str, request: Request, session: ConsoleSession, retried: Optional[str] = None) -> Response:
    try:
        shown = gateway_of(request).webhooks.deliveries(session.principal, endpoint_id)
    except GatewayError as exc:
        return problem(request, exc, session, back="/console/webhooks")
    notice = next((_retried(m) for m in shown["deliveries"] if m["id"] == retried), None)
    return page(request, "webhook.html", {**shown, "notice": notice}, session=session, section="webhooks")


@router.post("/console/webhooks/{endpoint_id}/remove", response_class=HTMLResponse)
def remove_webhook(endpoint_id: str, request: Request, session: ConsoleSession, _form: Posted) -> Response:
    try:
        gateway_of(request).webhooks.remove(session.principal, endpoint_id)
    except GatewayError as exc:
        return problem(request, exc, session, back="/console/webhooks")
    return see_other("/console/webhooks")


@router.post("/console/webhooks/{endpoint_id}/messages/{message_id}/retry", response_class=HTMLResponse)
def retry_message(
    endpoint_id: str, message_id: str, request: Request, session: ConsoleSession, _form: Posted
) -> Response:
    back = f"/console/webhooks/{endpoint_id}"
    try:
        gateway_of(request).webhooks.retry(session.principal, message_id)
    except GatewayError as exc:
        return problem(request, exc, session, back=back)
    return see_other(back + "?" + urlencode({"retried": message_id}))


def _retried(message: dict[str, Any]) -> str:
    """The notice after "Send again", as the store has the message (the address only names it)."""
    if message["status"] == "pending":
        return f"{message['id']} will be sent again within a few seconds."
    return f"{message['id']} is {message['status']}."


def _webhooks_page(
    request: Request, session: Session, *, created: Optional[dict[str, Any]] = None, status_code: int = 200
) -> Response:
    listing = gateway_of(request).webhooks.list(session.principal)
    context = {**listing, "created": created, "event_types": EVENT_TYPES, "formats": FORMATS}
    return page(request, "webhooks.html", context, session=session, section="webhooks", status_code=status_code)
