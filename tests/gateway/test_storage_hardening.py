"""Valid data never breaks the store, and nothing rewrites what the log holds.

- sums of money are exact past 2^63 (SQLite's SUM would fail with "integer overflow");
  a statement that fails for another reason than an unreachable database is no 503;
- REPLACE (SQLite) and ON CONFLICT DO UPDATE (PostgreSQL) cannot rewrite an event, a
  tree node or a checkpoint;
- a caller cannot log or authorize an action the gateway writes itself;
- execute and settle keep the merged context within its cap, and their entries commit to it;
- the SQLite file and its companions are readable by their owner only;
- a context filter matches keys with any character in them.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from agenitry import Agenitry, canonical_json
from agenitry.gateway import Database, Gateway
from agenitry.gateway._clock import DAY
from agenitry.gateway.errors import GatewayError, StorageBusy
from agenitry.gateway.service import ledger
from support.venues import Venue, make_venue

#: 10^12 CLF (4 decimal places) in minor units; 1,000 of them pass 2^63.
HUGE = 10**16


def test_stats_stay_exact_past_64_bits(gateway: Gateway) -> None:
    venue = make_venue(gateway, currency="CLF")
    order = {"agent_id": "till", "action": "order_captured", "currency": "CLF"}
    gateway.log_events(venue.admin, [{**order, "amount": 10**12}] * 1_000)
    gateway.log_events(venue.admin, [{**order, "amount": 0.0001}])
    assert 1_000 * HUGE + 1 > 2**63
    for period in ("today", "all"):
        stats = gateway.stats(venue.admin, venue.id, period=period)
        assert stats["event_count"] == 1_001
        assert stats["total_inbound"] == float(1_000 * 10**12 + 0.0001)
        assert stats["by_agent"]["till"]["inbound"] == stats["total_inbound"]


def test_windows_stay_exact_past_64_bits(venue: Venue) -> None:
    gateway = venue.gateway
    now = gateway.clock()
    near_max = 2**63 - 1
    with gateway.db.write() as conn:
        # Two day buckets each near the 64-bit limit, and one hold in the window's edge.
        ledger.add_hold(conn, venue.id, "till", now - 2 * DAY, near_max)
        ledger.add_hold(conn, venue.id, "till", now - DAY, near_max)
    with gateway.db.read() as conn:
        held = ledger.held_in(conn, venue.id, [("", now - 30 * DAY), ("till", now - 30 * DAY)])
    assert held == [2 * near_max, 2 * near_max]


def test_a_bucket_full_to_its_ceiling_refuses_the_next_hold_and_changes_nothing(venue: Venue) -> None:
    gateway = venue.gateway
    venue.policy(max_single_amount=10**12)
    agent = venue.agent("till")
    now = gateway.clock()
    with gateway.db.write() as conn:
        ledger.add_hold(conn, venue.id, "till", now, ledger.BUCKET_CEILING - 10)

    def held() -> list[int]:
        with gateway.db.read() as conn:
            return ledger.held_in(conn, venue.id, [("", now - DAY), ("till", now - DAY)])

    before = held()
    with pytest.raises(GatewayError) as refused:
        gateway.authorize(agent, {"action": "purchase_order", "amount": 1})
    assert (refused.value.status, refused.value.code) == (409, "ledger_capacity")
    assert held() == before
    assert gateway.list_authorizations(venue.admin)["total"] == 0
    # What fits still goes in, and a release is never refused.
    with gateway.db.write() as conn:
        ledger.add_hold(conn, venue.id, "till", now, 10)
        ledger.add_hold(conn, venue.id, "till", now, -(10**16))
    assert held() == [before[0] + 10 - 10**16] * 2


def test_a_failing_statement_is_not_taken_for_an_unavailable_database(database: Database) -> None:
    with pytest.raises(DBAPIError) as failed, database.read() as conn:
        conn.execute(text("SELECT no_such_column FROM venues"))
    assert not isinstance(failed.value, StorageBusy)


# -- the append-only tables cannot be rewritten ------------------------------------------------

#: A statement per table that would rewrite an existing row in place, per store.
REWRITES = {
    "sqlite": {
        "events": "REPLACE INTO events SELECT * FROM events WHERE venue_id = :venue AND sequence = 0",
        "log_nodes": "INSERT OR REPLACE INTO log_nodes SELECT venue_id, level, node_index, zeroblob(32)"
        " FROM log_nodes WHERE venue_id = :venue",
        "checkpoints": "REPLACE INTO checkpoints SELECT * FROM checkpoints WHERE venue_id = :venue",
    },
    "postgresql": {
        "events": "INSERT INTO events SELECT * FROM events WHERE venue_id = :venue AND sequence = 0"
        " ON CONFLICT (venue_id, sequence) DO UPDATE SET amount = 1",
        "log_nodes": "INSERT INTO log_nodes SELECT * FROM log_nodes WHERE venue_id = :venue"
        " ON CONFLICT (venue_id, level, node_index) DO UPDATE SET hash = excluded.hash",
        "checkpoints": "INSERT INTO checkpoints SELECT * FROM checkpoints WHERE venue_id = :venue"
        " ON CONFLICT (venue_id, number) DO UPDATE SET note = 'forged'",
    },
}


@pytest.mark.parametrize("table", ["events", "log_nodes", "checkpoints"])
def test_no_insert_rewrites_an_append_only_row(venue: Venue, store: str, table: str) -> None:
    gateway = venue.gateway
    gateway.log_events(venue.admin, [{"agent_id": "till", "action": "order_captured", "amount": 5}])
    gateway.audit.sign(venue.id)
    count = f"SELECT count(*) FROM {table} WHERE venue_id = :venue"  # noqa: S608 - a table name only
    with gateway.db.read() as conn:
        before = conn.execute(text(count), {"venue": venue.id}).scalar_one()
    with pytest.raises(DBAPIError, match="append-only"), gateway.db.write() as conn:
        conn.execute(text(REWRITES[store][table]), {"venue": venue.id})
    with gateway.db.read() as conn:
        assert conn.execute(text(count), {"venue": venue.id}).scalar_one() == before
    assert gateway.audit.audit(venue.id).ok


# -- actions the gateway writes ----------------------------------------------------------------


@pytest.mark.parametrize("action", ["reversal", "authorization.settled", "authorization.claimed", "policy.deleted"])
def test_a_caller_cannot_write_a_gateway_action(venue: Venue, action: str) -> None:
    gateway = venue.gateway
    venue.policy(max_single_amount=100)
    attempts = [
        lambda: gateway.log_event(venue.agent(), {"action": action, "amount": 5}),
        lambda: gateway.log_events(venue.admin, [{"agent_id": "till", "action": action}]),
        lambda: gateway.authorize(venue.agent(), {"action": action, "amount": 5}),
    ]
    for attempt in attempts:
        with pytest.raises(GatewayError) as refused:
            attempt()
        assert (refused.value.status, refused.value.code) == (422, "reserved_action")
        assert action in refused.value.message
    assert gateway.list_events(venue.admin, venue.id, action=action)["total"] == 0


def test_the_client_refuses_a_gateway_action_at_once() -> None:
    with Agenitry(api_key="ag_test", venue_id="v", base_url="http://127.0.0.1:9") as client:
        with pytest.raises(ValueError, match="written by the gateway"):
            client.log("reversal", amount=5)
        with pytest.raises(ValueError, match="written by the gateway"):
            client.log("authorization.executed")


# -- execute and settle: the merged context ----------------------------------------------------


def _approved(venue: Venue, context: dict[str, Any]) -> str:
    venue.policy(max_single_amount=100)
    answer = venue.gateway.authorize(venue.agent(), {"action": "purchase_order", "amount": 5, "context": context})
    assert answer.body["status"] == "approved"
    return str(answer.body["authorization_id"])


def _entry_of(venue: Venue, authorization_id: str, action: str) -> Any:
    with venue.gateway.db.read() as conn:
        return conn.execute(
            text("SELECT context, context_salt FROM events WHERE authorization_id = :id AND action = :action"),
            {"id": authorization_id, "action": action},
        ).one()


def _committed(row: Any) -> str:
    context = row.context if isinstance(row.context, dict) else json.loads(row.context)
    return str(context["context_digest"])


def _digest(context: dict[str, Any], salt: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + canonical_json(context)).hexdigest()


def test_a_merged_context_past_the_cap_changes_nothing(venue: Venue) -> None:
    gateway = venue.gateway
    authorization_id = _approved(venue, {"note": "a" * 9_000})
    with pytest.raises(GatewayError) as refused:
        gateway.execute(venue.agent(), authorization_id, context={"receipt": "b" * 9_000})
    assert (refused.value.status, refused.value.code) == (422, "context_too_large")
    assert gateway.get_authorization(venue.admin, authorization_id)["status"] == "approved"

    gateway.execute(venue.agent(), authorization_id, context={"receipt": "r-1"})
    with pytest.raises(GatewayError) as refused:
        gateway.settle(venue.agent(), authorization_id, context={"receipt": "b" * 9_000})
    assert (refused.value.status, refused.value.code) == (422, "context_too_large")
    record = gateway.get_authorization(venue.admin, authorization_id)
    assert record["status"] == "executed"
    assert record["context"] == {"note": "a" * 9_000}


def test_execute_and_settle_entries_commit_to_the_context(venue: Venue) -> None:
    gateway = venue.gateway
    authorization_id = _approved(venue, {"table": 7})
    gateway.execute(venue.agent(), authorization_id, context={"receipt": "r-1"})
    executed = _entry_of(venue, authorization_id, "authorization.executed")
    assert _committed(executed) == _digest({"table": 7, "receipt": "r-1"}, executed.context_salt)

    gateway.settle(venue.agent(), authorization_id, context={"table": 8})
    settled = _entry_of(venue, authorization_id, "authorization.settled")
    assert gateway.get_authorization(venue.admin, authorization_id)["context"] == {"table": 8}
    assert _committed(settled) == _digest({"table": 8}, settled.context_salt)
    gateway.audit.sign(venue.id)
    assert gateway.audit.audit(venue.id).ok


# -- the SQLite file ---------------------------------------------------------------------------


def test_the_sqlite_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "private" / "agenitry.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.migrate()
        gateway = Gateway(db)
        venue = make_venue(gateway)
        gateway.log_events(venue.admin, [{"agent_id": "till", "action": "order_captured", "context": {"a": 1}}])
        with db.read() as conn:  # the -shm file exists while a connection reads
            conn.execute(text("SELECT count(*) FROM events")).scalar_one()
            files = [path, path.with_name("agenitry.db-wal"), path.with_name("agenitry.db-shm")]
            modes = {file.name: stat.S_IMODE(file.stat().st_mode) for file in files}
    finally:
        db.dispose()
    assert modes == dict.fromkeys(modes, 0o600)


# -- context filters ---------------------------------------------------------------------------

ODD_KEYS = ['a"b', "a.b", "$", "a[0]", "it's", "two words", "é ☕", "back\\slash", ""]


def test_a_context_filter_matches_any_key(venue: Venue) -> None:
    gateway = venue.gateway
    for n, key in enumerate(ODD_KEYS):
        context = {key: n, "nested": {key: [f"v{n}", n]}}
        gateway.log_events(venue.admin, [{"agent_id": "till", "action": "order_captured", "context": context}])
    for n, key in enumerate(ODD_KEYS):
        for wanted in ({key: n}, {"nested": {key: [f"v{n}"]}}):
            found = gateway.list_events(venue.admin, venue.id, context=wanted)
            assert [event["context"][key] for event in found["events"]] == [n], (key, wanted)
    # A text where an object is wanted is no match (and no error).
    assert gateway.list_events(venue.admin, venue.id, context={"a.b": {"x": 1}})["total"] == 0
