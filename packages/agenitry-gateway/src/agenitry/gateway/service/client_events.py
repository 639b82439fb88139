"""The events callers log (one, or a batch of up to 1,000), their listing and their totals.

A re-sent client id (``evt_...``) is stored once: the same event again answers as the first
did; another event under that id is a 409.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

from sqlalchemy import func, select

from agenitry import DEFAULT_DIRECTIONS, RESERVED_ACTION_PREFIXES
from agenitry.gateway._clock import DAY, start_of_utc_day
from agenitry.gateway._ids import CLIENT_EVENT_ID, new_id
from agenitry.gateway._money import to_number
from agenitry.gateway.errors import Conflict, Unprocessable
from agenitry.gateway.service import events, inputs, records
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.bodies import given, require_named_venue
from agenitry.gateway.service.events import NewEvent
from agenitry.gateway.service.lifecycle import Tx
from agenitry.gateway.service.listings import created_between, page
from agenitry.gateway.service.records import Values
from agenitry.gateway.service.transactions import Idempotency, Outcome, Transactions
from agenitry.gateway.service.venues import venue_currency
from agenitry.gateway.store.schema import events as events_table
from agenitry.gateway.store.sums import joined, split_sum

_PERIOD_SPANS = {"today": None, "7d": 7 * DAY, "30d": 30 * DAY, "all": None}
MAX_BATCH = 1_000
#: Gateway-written actions, left out of the business totals of stats.
_SYSTEM_ACTIONS = tuple(f"{prefix}%" for prefix in RESERVED_ACTION_PREFIXES)


class ClientEvents:
    """Log, list and total a venue's events."""

    def __init__(self, transactions: Transactions, *, public_url: str) -> None:
        self.transactions = transactions
        self.clock = transactions.clock
        self.public_url = public_url

    def log_event(
        self, principal: Principal, fields: dict[str, Any], *, idempotency: Optional[Idempotency] = None
    ) -> Outcome:
        """POST /v1/events: append one event (a re-sent client id is stored once)."""
        require_named_venue(principal, fields)

        def work(tx: Tx) -> dict[str, Any]:
            [row] = _append_client_events(tx, principal, [fields])
            return records.logged(Values(row), self.public_url)

        return self.transactions.transact(principal, idempotency, work)

    def log_events(
        self, principal: Principal, batch: Sequence[dict[str, Any]], *, idempotency: Optional[Idempotency] = None
    ) -> Outcome:
        """POST /v1/events/batch: append up to 1,000 events, all or none."""
        if not 1 <= len(batch) <= MAX_BATCH:
            raise Unprocessable(f"A batch holds 1 to {MAX_BATCH} events", code="invalid_batch")
        for fields in batch:
            require_named_venue(principal, fields)

        def work(tx: Tx) -> dict[str, Any]:
            rows = _append_client_events(tx, principal, batch)
            return {"accepted": len(rows), "ids": [row["id"] for row in rows]}

        return self.transactions.transact(principal, idempotency, work)

    def list_events(
        self,
        principal: Principal,
        venue_id: str,
        *,
        agent_id: Optional[str] = None,
        action: Optional[str] = None,
        context: Optional[dict[str, Any]] = None,
        limit: int = 50,
        offset: int = 0,
        created: tuple[Optional[int], Optional[int]] = (None, None),
        render: Optional[Callable[[Any], dict[str, Any]]] = None,
    ) -> dict[str, Any]:
        """GET /v1/events/{venue_id}, newest first; ``created`` bounds the events' times
        (ms, from inclusive, to exclusive; None leaves that side open). ``render`` turns a
        stored row into what the page lists (by default the wire protocol's event)."""
        principal.require_venue(venue_id)
        e = events_table.c
        with self.transactions.read(venue_id) as conn:
            where = [e.venue_id == venue_id, *created_between(e.created_at, created)]
            if agent_id is not None:
                where.append(e.agent_id == agent_id)
            if action is not None:
                where.append(e.action == action)
            if context:
                where.append(events.context_filter(conn, context))
            total = conn.execute(select(func.count()).select_from(events_table).where(*where)).scalar_one()
            rows = conn.execute(
                select(events_table).where(*where).order_by(e.sequence.desc()).limit(limit).offset(offset)
            ).all()
        render = render or (lambda row: records.event(row, self.public_url))
        return page(venue_id, total, limit, offset, "events", [render(row) for row in rows])

    def stats(self, principal: Principal, venue_id: str, *, period: str = "today") -> dict[str, Any]:
        """Business totals: the gateway's own authorization, policy and key events are left out."""
        principal.require_venue(venue_id)
        if period not in _PERIOD_SPANS:
            raise Unprocessable("period must be today, 7d, 30d or all", code="invalid_period")
        now = self.clock()
        span = _PERIOD_SPANS[period]
        since = start_of_utc_day(now) if period == "today" else (now - span if span else None)
        e = events_table.c
        with self.transactions.read(venue_id) as conn:
            currency = venue_currency(conn, venue_id)
            query = (
                select(e.agent_id, e.direction, e.currency, func.count(), *split_sum(e.amount))
                .where(e.venue_id == venue_id, *[e.action.not_like(p) for p in _SYSTEM_ACTIONS])
                .group_by(e.agent_id, e.direction, e.currency)
            )
            if since is not None:
                query = query.where(e.created_at >= since)
            groups = conn.execute(query).all()
        by_agent: dict[str, dict[str, Any]] = {}
        totals = {"inbound": 0, "outbound": 0}
        count = 0
        for agent, direction, event_currency, n, high, low in groups:
            entry = by_agent.setdefault(agent, {"events": 0, "inbound": 0, "outbound": 0})
            entry["events"] += n
            count += n
            if direction in totals and event_currency == currency:
                amount = joined(high, low)
                entry[direction] += amount
                totals[direction] += amount
        for entry in by_agent.values():
            entry["inbound"] = to_number(entry["inbound"], currency)
            entry["outbound"] = to_number(entry["outbound"], currency)
        return {
            "venue_id": venue_id,
            "period": period,
            "currency": currency,
            "total_inbound": to_number(totals["inbound"], currency),
            "total_outbound": to_number(totals["outbound"], currency),
            "event_count": count,
            "by_agent": by_agent,
        }


def _append_client_events(tx: Tx, principal: Principal, batch: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    wanted = [_client_event(tx, principal, index, fields, len(batch)) for index, fields in enumerate(batch)]
    existing = events.find(tx.conn, tx.venue_id, [new.id for new in wanted])
    fresh: dict[str, NewEvent] = {}
    answers: list[Any] = []
    for new in wanted:
        earlier = existing.get(new.id) or fresh.get(new.id)
        if earlier is None:
            fresh[new.id] = new
            answers.append(new.id)
        elif (isinstance(earlier, NewEvent) and earlier == new) or (
            not isinstance(earlier, NewEvent) and new.same_as(earlier)
        ):
            answers.append(new.id)
        else:
            raise Conflict(f"Event id '{new.id}' was already used for a different event", code="event_id_conflict")
    stored = {row["id"]: row for row in tx.log(*fresh.values())}
    stored.update({key: row._asdict() for key, row in existing.items()})
    return [stored[event_id] for event_id in answers]


def _client_event(tx: Tx, principal: Principal, index: int, fields: dict[str, Any], size: int) -> NewEvent:
    try:
        action = inputs.caller_action(fields.get("action"))
        currency = inputs.currency(given(fields, "currency", tx.venue.currency))
        amount = fields.get("amount")
        event_id = fields.get("id")
        if event_id is not None and (not isinstance(event_id, str) or not CLIENT_EVENT_ID.fullmatch(event_id)):
            raise Unprocessable("An event id is 'evt_' and 16-64 letters, digits, _ or -", code="invalid_event_id")
        return NewEvent(
            id=event_id or new_id("evt"),
            agent_id=inputs.agent_id(principal.acting_for(fields.get("agent_id"))),
            action=action,
            actor=principal.key_id,
            amount=inputs.amount(amount, currency) if amount is not None else None,
            currency=currency if amount is not None else None,
            direction=inputs.direction(fields.get("direction")) or DEFAULT_DIRECTIONS.get(action, "internal"),
            context=inputs.context(fields.get("context")),
            reason=inputs.text(fields.get("reason"), "reason"),
            occurred_at=inputs.occurred_at(fields.get("occurred_at"), tx.now),
        )
    except Unprocessable as exc:
        if size > 1:
            exc.message = f"events[{index}]: {exc.message}"
            exc.extra["index"] = index
        raise
