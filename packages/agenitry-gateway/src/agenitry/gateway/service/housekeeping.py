"""What keeps no key: the public view of an event, and the periodic sweep."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from agenitry.gateway._clock import DAY
from agenitry.gateway._money import display
from agenitry.gateway.errors import NotFound
from agenitry.gateway.service import events, ledger, lifecycle, records
from agenitry.gateway.service.audit import redact, redacted_keys
from agenitry.gateway.service.transactions import IDEMPOTENCY_TTL, Transactions
from agenitry.gateway.store.schema import authorizations, idempotency_keys, venues
from agenitry.gateway.store.schema import events as events_table


class Housekeeping:
    """The public event pages read, and the sweep ``agenitry serve`` runs."""

    def __init__(self, transactions: Transactions, *, public_url: str) -> None:
        self.transactions = transactions
        self.db = transactions.db
        self.clock = transactions.clock
        self.checkpointer = transactions.checkpointer
        self.public_url = public_url

    def public_event(self, venue_id: str, event_id: str) -> dict[str, Any]:
        """An event as anyone holding its verify link may see it (no key needed)."""
        with self.transactions.read(venue_id) as conn:
            venue = conn.execute(select(venues).where(venues.c.id == venue_id)).first()
            row = conn.execute(
                select(events_table).where(events_table.c.venue_id == venue_id, events_table.c.id == event_id)
            ).first()
            if venue is None or row is None:
                raise NotFound("No such event", code="event_not_found")
            status = None
            if row.authorization_id is not None:
                status = conn.execute(
                    select(authorizations.c.status).where(authorizations.c.id == row.authorization_id)
                ).scalar()
        event = records.event(row, self.public_url)
        if not venue.public_context:
            event["context"] = None
        elif event["context"] is not None:
            event["context"] = redact(event["context"], redacted_keys(venue))
        event["authorization_status"] = status
        event["venue_name"] = venue.name
        event["amount_display"] = display(row.amount, row.currency) if row.amount is not None else None
        event["entry"] = events.entry(row)
        return event

    def sweep(self) -> int:
        """Expire what is due in every venue and drop records no one can need; returns
        how many authorizations expired. ``agenitry serve`` runs it periodically."""
        now = self.clock()
        with self.db.read() as conn:
            due = (
                conn.execute(
                    select(authorizations.c.venue_id)
                    .where(authorizations.c.status.in_(lifecycle.EXPIRING), authorizations.c.expires_at < now)
                    .distinct()
                )
                .scalars()
                .all()
            )
        expired = 0
        for venue_id in due:
            with self.transactions.venue_tx(venue_id) as tx:
                expired += len([row for row in tx.appended if row["action"] == "authorization.expired"])
        with self.db.write() as conn:
            conn.execute(idempotency_keys.delete().where(idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL))
            ledger.prune_buckets(conn, now - 30 * DAY)
        with self.db.read() as conn:
            due_checkpoints = self.checkpointer.due(conn, now)
        for venue_id in due_checkpoints:
            # Re-checked under the lock: another instance may have signed meanwhile.
            with self.transactions.venue_tx(venue_id) as tx:
                if self.checkpointer.due(tx.conn, tx.now, venue_id=venue_id):
                    self.checkpointer.sign(tx.conn, venue_id, tx.now)
        return expired
