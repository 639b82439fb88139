"""Venues: the tenants of a gateway, each with its own currency, keys, policies and log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from agenitry.gateway._clock import Clock
from agenitry.gateway.errors import Conflict, NotFound
from agenitry.gateway.service import inputs, records
from agenitry.gateway.service.records import Values
from agenitry.gateway.store.database import Database
from agenitry.gateway.store.schema import venues


class Venues:
    """Create and read venues (the operator's acts: no key stands behind them)."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self.db = database
        self.clock = clock

    def create_venue(
        self,
        venue_id: str,
        *,
        name: Optional[str] = None,
        currency: str = "USD",
        public_context: bool = False,
        redacted_keys: Optional[Sequence[str]] = None,
    ) -> dict[str, Any]:
        """Create a venue. With ``public_context`` its verify pages show event context,
        without the keys in ``redacted_keys`` and the default ones (passwords, tokens, cards...)."""
        row = {
            "id": inputs.venue_id(venue_id),
            "name": inputs.text(name, "name", limit=inputs.MAX_NAME) or venue_id,
            "currency": inputs.currency(currency),
            "public_context": public_context,
            "event_count": 0,
            "created_at": self.clock(),
            "redacted_keys": [inputs.text(key, "redacted key", limit=64) for key in redacted_keys or []] or None,
        }
        try:
            with self.db.write() as conn:
                conn.execute(venues.insert().values(row))
        except IntegrityError:
            raise Conflict(f"Venue '{venue_id}' already exists", code="venue_exists") from None
        return records.venue(Values(row))

    def get_venue(self, venue_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            row = conn.execute(select(venues).where(venues.c.id == venue_id)).first()
        if row is None:
            raise NotFound(f"Venue '{venue_id}' not found", code="venue_not_found")
        return records.venue(row)

    def list_venues(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return [records.venue(row) for row in conn.execute(select(venues).order_by(venues.c.id))]


def venue_currency(conn: Connection, venue_id: str) -> str:
    currency = conn.execute(select(venues.c.currency).where(venues.c.id == venue_id)).scalar()
    if currency is None:
        raise NotFound(f"Venue '{venue_id}' not found", code="venue_not_found")
    return str(currency)
