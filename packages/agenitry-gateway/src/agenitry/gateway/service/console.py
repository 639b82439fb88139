"""What the console's pages show that the wire protocol does not: the pending queue in the
order an owner works it, one authorization with its timeline, and money as a person reads it.

Reads only; every decision the console takes goes through :class:`Gateway` like any other
call, so it is checked, audited and notified the same way.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from agenitry.gateway._money import display
from agenitry.gateway.errors import NotFound
from agenitry.gateway.service import lifecycle, records
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.audit import redact, redacted_keys
from agenitry.gateway.service.gateway import Gateway
from agenitry.gateway.store.schema import authorizations, events, venues

#: The most pending requests one page lists (the oldest deadlines first).
PENDING_SHOWN = 200


def venue(gateway: Gateway, principal: Principal) -> dict[str, Any]:
    """The signed-in venue: its record and the context keys its pages hide."""
    with gateway.db.read() as conn:
        row = conn.execute(select(venues).where(venues.c.id == principal.venue_id)).first()
    if row is None:
        raise NotFound(f"Venue '{principal.venue_id}' not found", code="venue_not_found")
    return {**records.venue(row), "redacted_keys": redacted_keys(row)}


def shown(row: Any, hidden: list[str], now: int) -> dict[str, Any]:
    """An authorization as a page shows it: its record, money as text, context without the
    venue's redacted keys, and the milliseconds left before it expires (if it can)."""
    record = records.authorization(row)
    record["context"] = redact(row.context, hidden) if row.context is not None else None
    record["amount_display"] = display(row.amount, row.currency)
    record["actual_display"] = display(row.actual_amount, row.currency) if row.actual_amount is not None else None
    record["held_display"] = display(row.hold, row.currency)
    record["left_ms"] = max(0, row.expires_at - now) if row.expires_at is not None else None
    return record


def pending(gateway: Gateway, principal: Principal) -> dict[str, Any]:
    """The venue's pending requests, the nearest deadline first, and how many there are."""
    hidden = venue(gateway, principal)["redacted_keys"]
    a = authorizations.c
    where = (a.venue_id == principal.venue_id, a.status == "pending")
    with gateway._read(principal.venue_id) as conn:
        rows = conn.execute(
            select(authorizations).where(*where).order_by(a.expires_at, a.id).limit(PENDING_SHOWN)
        ).all()
    now = gateway.clock()
    return {"pending": [shown(row, hidden, now) for row in rows], "now": now}


def entry_shown(gateway: Gateway, row: Any, hidden: list[str]) -> dict[str, Any]:
    """A log entry as a page shows it: its record with its verify link, money as text and
    context without the venue's redacted keys."""
    record = records.event(row, gateway.public_url)
    record["context"] = redact(row.context, hidden) if row.context is not None else None
    record["amount_display"] = display(row.amount, row.currency) if row.amount is not None else None
    return record


def authorization(gateway: Gateway, principal: Principal, authorization_id: str) -> dict[str, Any]:
    """One authorization with its timeline: every log entry that names it, oldest first,
    each with its verify link."""
    hidden = venue(gateway, principal)["redacted_keys"]
    with gateway._read(principal.venue_id) as conn:
        row = lifecycle.find(conn, principal.venue_id, authorization_id)
        entries = conn.execute(
            select(events)
            .where(events.c.venue_id == principal.venue_id, events.c.authorization_id == authorization_id)
            .order_by(events.c.sequence)
        ).all()
    return {
        "authorization": shown(row, hidden, gateway.clock()),
        "timeline": [entry_shown(gateway, entry, hidden) for entry in entries],
    }


def authorizations_page(gateway: Gateway, principal: Principal, **filters: Any) -> dict[str, Any]:
    """A page of the venue's authorizations (the filters of :meth:`Gateway.list_authorizations`)."""
    hidden = venue(gateway, principal)["redacted_keys"]
    now = gateway.clock()
    return gateway.list_authorizations(principal, render=lambda row: shown(row, hidden, now), **filters)


def events_page(gateway: Gateway, principal: Principal, **filters: Any) -> dict[str, Any]:
    """A page of the venue's audit trail (the filters of :meth:`Gateway.list_events`)."""
    hidden = venue(gateway, principal)["redacted_keys"]
    return gateway.list_events(
        principal, principal.venue_id, render=lambda row: entry_shown(gateway, row, hidden), **filters
    )
