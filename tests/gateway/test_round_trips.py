"""What one decision sends to the database: its statements, counted on the engine, and on
PostgreSQL its round trips, counted on the wire (statements sent together in psycopg's
pipeline mode share one).

With the venue's lock, a decision reads the soonest expiry, its policies and its stored
answer; then the windows' sums and the Merkle siblings of its event; then writes its hold
(whose guard fails the statement past the ledger's ceiling), the authorization, its event,
the tree's nodes, the event count and its idempotency record: on PostgreSQL the writes as
one statement, sent with the COMMIT.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, select

from agenitry.gateway import Database, Gateway, ManualClock
from agenitry.gateway.service.transactions import Idempotency
from agenitry.gateway.store import driver
from agenitry.gateway.store.schema import authorizations, events, venues
from support.venues import Venue, make_venue


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
        assert writes == ["WITH", "COMMIT"]  # ...and everything else in one statement, sent with the COMMIT
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


def test_a_decision_is_three_round_trips_on_postgresql(postgresql_url: str, clock: ManualClock) -> None:
    database = Database(postgresql_url, pool_size=1)
    database.migrate()
    try:
        gateway = Gateway(database, clock=clock)
        venue = make_venue(gateway)
        venue.policy(max_daily_spend=10_000, max_monthly_spend=100_000)
        venue.policy(agent_id="voice-agent", max_single_amount=500, max_daily_spend=5_000)
        agent = venue.agent()
        request = {"action": "order_captured", "amount": 7}
        for n in range(3):  # the first ones may read more (the key, the tree's first nodes)
            gateway.authorize(agent, request, idempotency=Idempotency.of(f"warm-{n}", agent, "POST", "/", request))
        for n in range(2):  # an even index and an odd one: the latter merges with a stored sibling
            key = Idempotency.of(f"k-{n}", agent, "POST", "/v1/authorize", request)
            # The lock with what is read first (BEGIN included); the windows and the tree's
            # siblings; the hold, the rows written and the idempotency record with the COMMIT.
            with driver.round_trips(database.engine) as keyed:
                assert gateway.authorize(agent, request, idempotency=key).body["status"] == "approved"
            assert keyed == [3]
            with driver.round_trips(database.engine) as repeated:  # the stored answer, read with the lock
                assert gateway.authorize(agent, request, idempotency=key).replayed
            assert repeated == [2]
            with driver.round_trips(database.engine) as unkeyed:
                assert gateway.authorize(agent, request).body["status"] == "approved"
            assert unkeyed == [3]
    finally:
        database.dispose()
