"""What one decision sends to the database, counted on the engine: the issue's measure
of a decision on PostgreSQL is its round trips (every statement is one there).

After the venue's lock, a decision reads what it decides on (the expiry probe, the
policies, the windows' sums, the Merkle siblings of its event), writes its hold (whose
count guards the ledger's ceiling), then writes the authorization, its event, the tree's
nodes and the event count: on PostgreSQL as one statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, select

from agenitry.gateway import Database, Gateway
from agenitry.gateway.store.schema import authorizations, events, venues
from support.venues import Venue


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    sent: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement.split(None, 1)[0].upper())

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(database.engine, "before_cursor_execute", count)


def test_a_decision_writes_once_on_postgresql_and_reads_what_it_decides_on(
    store: str, gateway: Gateway, venue: Venue
) -> None:
    venue.policy(agent_id="voice-agent", max_single_amount=500, max_daily_spend=5000)
    agent = venue.agent()
    gateway.authorize(agent, {"action": "order_captured", "amount": 5})  # warm: the first may read more
    with statements(gateway.db) as sent:
        decision = gateway.authorize(agent, {"action": "order_captured", "amount": 7, "context": {"table": 4}}).body
    assert decision["status"] == "approved"
    # SQLite's BEGIN IMMEDIATE is a statement of its own (PostgreSQL's BEGIN is psycopg's, unseen here).
    sent = [statement for statement in sent if statement != "BEGIN"]
    # The lock, the expiry probe, the policies, the windows, the hold; then the tree's
    # siblings, if the event's index is odd (an even one completes no parent)...
    assert sent[:5] == ["SELECT", "SELECT", "SELECT", "SELECT", "INSERT"]
    writes = sent[5 + (sent[5] == "SELECT") :]
    if store == "postgresql":
        assert writes == ["WITH"]  # ...and everything else in one statement
    else:
        assert writes == ["INSERT", "INSERT", "INSERT", "UPDATE"]
    with gateway.db.read() as conn:
        row = conn.execute(select(authorizations).where(authorizations.c.id == decision["authorization_id"])).one()
        logged = conn.execute(select(events).where(events.c.authorization_id == row.id)).one()
        count = conn.execute(select(venues.c.event_count).where(venues.c.id == venue.id)).scalar_one()
    assert row.context == {"table": 4} and logged.context is not None
    assert logged.sequence == count - 1, "the count moved past the event just written"


def test_no_context_is_stored_as_every_earlier_row_has_it(store: str, gateway: Gateway, venue: Venue) -> None:
    venue.policy(max_single_amount=500)
    authorization_id = gateway.authorize(venue.agent(), {"action": "order_captured", "amount": 5}).body[
        "authorization_id"
    ]
    assert gateway.get_authorization(venue.admin, authorization_id)["context"] is None
    if store == "postgresql":
        with gateway.db.read() as conn:
            kind = conn.exec_driver_sql(
                "SELECT jsonb_typeof(context) FROM authorizations WHERE id = %(id)s", {"id": authorization_id}
            ).scalar()
        assert kind == "null", "a JSON null, as SQLAlchemy has always bound None into this column"
