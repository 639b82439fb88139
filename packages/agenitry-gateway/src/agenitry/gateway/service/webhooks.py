"""Signed webhooks (Standard Webhooks): an outbox written with the decision, and a worker that sends it.

What holds, and why:

- A message exists exactly when its cause committed. :meth:`WebhookService.enqueue` writes
  it in the transaction of the decision that causes it (``Gateway._venue_tx``): a decision
  that rolls back leaves none, and a gateway killed after the commit loses none, since the
  outbox is in the database and any instance that starts later sends it.
- A message's id is the ``webhook-id`` of every attempt, and its body is fixed when it is
  written: a retry sends the same bytes under the same id, so a receiver drops a repeat.
- One instance at a time sends a message, and at least once (:mod:`.webhook_delivery`).

A venue without endpoints pays nothing: ``venues.webhooks`` counts its live endpoints, and
at zero a decision reads no endpoint and writes no message.
"""

from __future__ import annotations

import difflib
import json
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlsplit

from sqlalchemy import Connection, select, update

from agenitry.gateway._clock import Clock, iso
from agenitry.gateway._ids import new_id
from agenitry.gateway.errors import Conflict, NotFound, Unprocessable
from agenitry.gateway.service import inputs
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.events import admin_event
from agenitry.gateway.service.lifecycle import Tx
from agenitry.gateway.service.records import Values
from agenitry.gateway.service.webhook_delivery import (
    RETRY_SCHEDULE,
    Attempt,
    Deliverer,
    new_secret,
    retry_delay,
    sign,
)
from agenitry.gateway.service.webhook_payloads import Cause
from agenitry.gateway.store.database import Database
from agenitry.gateway.store.schema import (
    authorizations,
    venues,
    webhook_attempts,
    webhook_endpoints,
    webhook_messages,
)

if TYPE_CHECKING:
    from agenitry.gateway.service.transactions import Idempotency, Outcome

__all__ = [
    "EVENT_TYPES",
    "FORMATS",
    "RETRY_SCHEDULE",
    "Attempt",
    "Deliverer",
    "WebhookService",
    "new_secret",
    "retry_delay",
    "sign",
]

#: What an endpoint may receive. ``policy.deleted`` is a type of its own: deleting an
#: agent's policy changes what that agent may spend as much as an update does.
EVENT_TYPES: tuple[str, ...] = (
    "authorization.pending",
    "authorization.approved",
    "authorization.denied",
    "authorization.expired",
    "authorization.executed",
    "authorization.settled",
    "authorization.reversed",
    "policy.updated",
    "policy.deleted",
)
#: "json": the Standard Webhooks payload; "slack": ``{"text": ...}`` for a Slack-compatible incoming webhook.
FORMATS: tuple[str, ...] = ("json", "slack")
MAX_URL = 2_000
#: Live endpoints a venue may have: each one multiplies the messages of every decision.
MAX_ENDPOINTS = 20
REMOVED = "The webhook was removed before this message was delivered"
_SCHEMES = ("http", "https")

# -- what an owner may configure -----------------------------------------------------------


def checked_url(value: Any) -> str:
    """An http(s) URL with a host, of at most 2,000 characters; 422 ``invalid_url`` otherwise."""
    if not isinstance(value, str) or not value:
        raise Unprocessable(
            "url is required: the address the gateway sends to, such as https://example.com/hooks/agenitry",
            code="invalid_url",
        )
    if len(value) > MAX_URL:
        raise Unprocessable(f"The webhook URL is {len(value):,} characters; at most {MAX_URL:,}", code="invalid_url")
    if not inputs.storable(value) or any(char.isspace() or not char.isprintable() for char in value):
        raise Unprocessable("The webhook URL must not contain spaces or control characters", code="invalid_url")
    parts = urlsplit(value)
    if parts.scheme.lower() not in _SCHEMES:
        seen = f"this one's scheme is '{parts.scheme[:32]}'" if parts.scheme else "this one has no scheme"
        raise Unprocessable(f"A webhook URL must start with http:// or https://; {seen}", code="invalid_url")
    try:
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise Unprocessable("The webhook URL's port is not a number from 0 to 65535", code="invalid_url") from None
    if not host:
        raise Unprocessable("The webhook URL names no host, as in https://example.com/hooks", code="invalid_url")
    return value


def checked_event_types(value: Any) -> Optional[list[str]]:
    """The event types an endpoint receives (None: every type), each one known."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value:
        raise Unprocessable(
            "events must be a list of event types, such as ['authorization.pending'];"
            " leave it out to receive every type",
            code="invalid_event_type",
        )
    for name in value:
        if name not in EVENT_TYPES:
            shown = str(name)[:100]
            close = difflib.get_close_matches(shown, EVENT_TYPES, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (known: {', '.join(EVENT_TYPES)})"
            raise Unprocessable(f"Unknown event type '{shown}'{hint}", code="invalid_event_type")
    return list(dict.fromkeys(value))


def checked_format(value: Any) -> str:
    if value not in FORMATS:
        raise Unprocessable(
            f"format must be json (the signed Standard Webhooks payload) or slack (a message for a channel),"
            f" not '{str(value)[:32]}'",
            code="invalid_format",
        )
    return str(value)


# -- records -------------------------------------------------------------------------------


def endpoint_record(row: Any) -> dict[str, Any]:
    """An endpoint as the API and the console show it: never its secret."""
    return {
        "id": row.id,
        "venue_id": row.venue_id,
        "url": row.url,
        "format": row.format,
        "events": row.events,
        "description": row.description,
        "created_at": iso(row.created_at),
        "created_by": row.created_by,
        "removed_at": iso(row.removed_at),
    }


def attempt_record(row: Any) -> dict[str, Any]:
    return {
        "number": row.number,
        "attempted_at": iso(row.attempted_at),
        "status_code": row.status_code,
        "error": row.error,
        "duration_ms": row.duration_ms,
    }


def message_record(row: Any, attempts: Sequence[Any]) -> dict[str, Any]:
    """A message with every attempt at it, oldest first; ``payload`` is its body, parsed."""
    return {
        "id": row.id,
        "webhook_id": row.endpoint_id,
        "venue_id": row.venue_id,
        "event_type": row.event_type,
        "status": row.status,
        "attempt_count": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at) if row.status == "pending" else None,
        "created_at": iso(row.created_at),
        "delivered_at": iso(row.delivered_at),
        "last_status": row.last_status,
        "last_error": row.last_error,
        "payload": json.loads(row.body),
        "attempts": [attempt_record(attempt) for attempt in attempts],
    }


# -- the service ---------------------------------------------------------------------------

Transact = Callable[..., "Outcome"]


class WebhookService:
    """A venue's webhook endpoints and their messages: admin keys only, every change audited.

    The console and the HTTP API call these methods; each write runs through the gateway's
    venue transaction, once per Idempotency-Key, and logs an owner's event
    (``webhook.added``, ``webhook.removed``, ``webhook.retried``).
    """

    def __init__(self, db: Database, transact: Transact, *, clock: Clock, public_url: str) -> None:
        self.db = db
        self._transact = transact
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self._doorbells: set[threading.Event] = set()
        self._doorbells_lock = threading.Lock()

    # -- endpoints -------------------------------------------------------------------------

    def add(
        self,
        principal: Principal,
        url: str,
        events: Optional[Sequence[str]] = None,
        format: str = "json",
        description: Optional[str] = None,
        idempotency: Optional[Idempotency] = None,
    ) -> tuple[dict[str, Any], Optional[str]]:
        """Add an endpoint; returns its record and its signing secret, shown only here.

        A repeat under the same Idempotency-Key adds nothing and gets the record without
        the secret (``None``), as a repeated key creation does.
        """
        principal.require_admin("add webhooks")
        url = checked_url(url)
        types = checked_event_types(events)
        format = checked_format(format)
        description = inputs.text(description, "description", limit=inputs.MAX_NAME)
        secret = new_secret()

        def work(tx: Tx) -> dict[str, Any]:
            if tx.venue.webhooks >= MAX_ENDPOINTS:
                raise Unprocessable(
                    f"Venue '{tx.venue_id}' has {MAX_ENDPOINTS} webhooks, the most it may have; remove one first",
                    code="too_many_webhooks",
                )
            row = {
                "id": new_id("wh"),
                "venue_id": tx.venue_id,
                "url": url,
                "format": format,
                "events": types,
                "description": description,
                "secret": secret,
                "created_at": tx.now,
                "created_by": principal.key_id,
                "removed_at": None,
            }
            tx.conn.execute(webhook_endpoints.insert().values(row))
            _count_endpoints(tx, +1)
            # The log names the receiving site only: a URL's path may be its credential (Slack's are).
            parts = urlsplit(url)
            details = {"webhook_id": row["id"], "site": f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"}
            tx.log(admin_event("webhook.added", principal, None, {**details, "format": format, "events": types}))
            return endpoint_record(Values(row))

        outcome = self._transact(principal, idempotency, work)
        return outcome.body, None if outcome.replayed else secret

    def remove(self, principal: Principal, endpoint_id: str, idempotency: Optional[Idempotency] = None) -> Outcome:
        """Remove an endpoint (kept, with its deliveries, for the record); its pending messages
        are failed at once, never sent."""
        principal.require_admin("remove webhooks")

        def work(tx: Tx) -> dict[str, Any]:
            row = _endpoint(tx.conn, tx.venue_id, endpoint_id)
            if row.removed_at is None:
                tx.conn.execute(
                    update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(removed_at=tx.now)
                )
                _count_endpoints(tx, -1)
                stopped = tx.conn.execute(
                    update(webhook_messages)
                    .where(webhook_messages.c.endpoint_id == endpoint_id, webhook_messages.c.status == "pending")
                    .values(status="failed", last_error=REMOVED)
                ).rowcount
                tx.log(admin_event("webhook.removed", principal, None, {"webhook_id": endpoint_id, "unsent": stopped}))
            return endpoint_record(_endpoint(tx.conn, tx.venue_id, endpoint_id))

        return self._transact(principal, idempotency, work)

    def deliveries(self, principal: Principal, endpoint_id: str, limit: int = 50) -> dict[str, Any]:
        """An endpoint's newest messages (at most ``limit``, 1-200), each with its attempts."""
        principal.require_admin("see webhook deliveries")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 200:
            raise Unprocessable("limit must be a whole number from 1 to 200", code="invalid_limit")
        m = webhook_messages.c
        with self.db.read() as conn:
            endpoint = _endpoint(conn, principal.venue_id, endpoint_id)
            rows = conn.execute(
                select(webhook_messages)
                .where(m.endpoint_id == endpoint_id)
                .order_by(m.created_at.desc(), m.id.desc())
                .limit(limit)
            ).all()
            attempts = _attempts(conn, [row.id for row in rows])
        return {
            "webhook": endpoint_record(endpoint),
            "deliveries": [message_record(row, attempts.get(row.id, [])) for row in rows],
        }

    def retry(self, principal: Principal, message_id: str, idempotency: Optional[Idempotency] = None) -> Outcome:
        """Send a message again now, with the same id and body; its answer is the message.

        If that attempt fails too, the message goes on with its schedule where it was: a
        pending one waits for its next retry, a failed one stays failed.
        """
        principal.require_admin("retry webhook deliveries")

        def work(tx: Tx) -> dict[str, Any]:
            row = tx.conn.execute(
                select(webhook_messages).where(
                    webhook_messages.c.id == message_id, webhook_messages.c.venue_id == tx.venue_id
                )
            ).first()
            if row is None:
                raise NotFound(f"Webhook message '{message_id}' not found", code="message_not_found")
            if _endpoint(tx.conn, tx.venue_id, row.endpoint_id).removed_at is not None:
                raise Conflict(
                    f"The webhook {row.endpoint_id} was removed; its messages are not sent",
                    code="webhook_removed",
                    current_status=row.status,
                )
            if row.status == "delivered":
                raise Conflict(
                    f"Message {message_id} was delivered at {iso(row.delivered_at)}; a receiver drops a repeat"
                    " of its webhook-id",
                    code="already_delivered",
                    current_status=row.status,
                )
            tx.conn.execute(
                update(webhook_messages)
                .where(webhook_messages.c.id == message_id)
                .values(status="pending", next_attempt_at=tx.now)
            )
            details = {"webhook_id": row.endpoint_id, "message_id": message_id}
            tx.log(admin_event("webhook.retried", principal, None, details))
            retried = tx.conn.execute(select(webhook_messages).where(webhook_messages.c.id == message_id)).one()
            return message_record(retried, _attempts(tx.conn, [message_id]).get(message_id, []))

        outcome = self._transact(principal, idempotency, work)
        self.wake()
        return outcome

    # -- the outbox ------------------------------------------------------------------------

    def enqueue(self, tx: Tx) -> int:
        """Write the messages of the events ``tx`` appended, before it commits; how many.

        One message per live endpoint whose filter takes the event, each endpoint of a
        format getting the same body.
        """
        if not tx.venue.webhooks:
            return 0
        wanted = [event for event in tx.appended if event["action"] in EVENT_TYPES]
        if not wanted:
            return 0
        e = webhook_endpoints.c
        endpoints = tx.conn.execute(
            select(e.id, e.format, e.events).where(e.venue_id == tx.venue_id, e.removed_at.is_(None))
        ).all()
        ids = {event["authorization_id"] for event in wanted if event["authorization_id"] is not None}
        rows = tx.conn.execute(select(authorizations).where(authorizations.c.id.in_(list(ids)))).all() if ids else []
        current = {row.id: row for row in rows}
        messages = []
        for event in wanted:
            cause = Cause(event, tx.venue, self.public_url, current.get(event["authorization_id"]))
            bodies: dict[str, str] = {}
            for endpoint in endpoints:
                if endpoint.events is not None and cause.type not in endpoint.events:
                    continue
                if endpoint.format not in bodies:
                    bodies[endpoint.format] = cause.body(endpoint.format)
                messages.append(
                    {
                        "id": new_id("msg"),
                        "venue_id": tx.venue_id,
                        "endpoint_id": endpoint.id,
                        "event_type": cause.type,
                        "body": bodies[endpoint.format],
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": tx.now,
                        "created_at": tx.now,
                    }
                )
        if messages:
            tx.conn.execute(webhook_messages.insert(), messages)
        return len(messages)

    def wake(self) -> None:
        """Tell this process's deliverers that messages are due now (after a commit)."""
        with self._doorbells_lock:
            for doorbell in self._doorbells:
                doorbell.set()

    def _listen(self, doorbell: threading.Event, listening: bool) -> None:
        with self._doorbells_lock:
            if listening:
                self._doorbells.add(doorbell)
            else:
                self._doorbells.discard(doorbell)

    def list(self, principal: Principal) -> dict[str, Any]:
        """The venue's endpoints, removed ones too, oldest first (never their secrets)."""
        principal.require_admin("list webhooks")
        e = webhook_endpoints.c
        with self.db.read() as conn:
            rows = conn.execute(
                select(webhook_endpoints).where(e.venue_id == principal.venue_id).order_by(e.created_at, e.id)
            ).all()
        return {"venue_id": principal.venue_id, "webhooks": [endpoint_record(row) for row in rows]}


def _endpoint(conn: Connection, venue_id: str, endpoint_id: str) -> Any:
    row = conn.execute(
        select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.venue_id == venue_id)
    ).first()
    if row is None:
        raise NotFound(f"Webhook '{endpoint_id}' not found", code="webhook_not_found")
    return row


def _count_endpoints(tx: Tx, change: int) -> None:
    tx.conn.execute(update(venues).where(venues.c.id == tx.venue_id).values(webhooks=venues.c.webhooks + change))
    tx.venue_changed()


def _attempts(conn: Connection, message_ids: Sequence[str]) -> dict[str, list[Any]]:
    if not message_ids:
        return {}
    a = webhook_attempts.c
    found: dict[str, list[Any]] = {}
    for row in conn.execute(
        select(webhook_attempts).where(a.message_id.in_(list(message_ids))).order_by(a.message_id, a.number)
    ):
        found.setdefault(row.message_id, []).append(row)
    return found
