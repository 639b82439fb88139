"""Tampering with a real database is detected and located, on SQLite and PostgreSQL.

The application cannot change the log: triggers refuse UPDATE and DELETE of events, tree
nodes and checkpoints. An owner can drop them; these tests do, as an attacker would, then
change an amount, delete a row, swap two rows, cut the tail, or rewrite every hash to
match. ``agenitry verify --db`` fails and names the first entry concerned; an untouched
log passes.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from agenitry import canonical_json, leaf_hash
from agenitry._tlog import TrustedKey
from agenitry._verify import LogReport
from agenitry.gateway import Gateway
from agenitry.gateway._clock import MINUTE, iso
from agenitry.gateway.cli import app
from agenitry.gateway.service import events, log
from agenitry.gateway.store.schema import events as events_table
from support.tamper import as_owner
from support.venues import Venue

runner = CliRunner()


@pytest.fixture
def logged(venue: Venue) -> Venue:
    """A venue whose log holds 13 entries (#0 is its key's creation), signed at 8 and at 13;
    #8 to #12 say when their client logged them (occurred_at), the others do not."""
    gateway = venue.gateway
    order = {"agent_id": "voice-agent", "action": "order_captured"}
    gateway.log_events(venue.admin, [{**order, "amount": 10 + i} for i in range(1, 8)])
    gateway.audit.sign(venue.id)
    logged_at = [iso(gateway.clock() - (13 - i) * MINUTE) for i in range(8, 13)]
    gateway.log_events(
        venue.admin, [{**order, "amount": 10 + i, "occurred_at": logged_at[i - 8]} for i in range(8, 13)]
    )
    gateway.audit.sign(venue.id)
    return venue


def audit(venue: Venue) -> LogReport:
    return venue.gateway.audit.audit(venue.id, [TrustedKey(venue.gateway.checkpointer.key.public_key)])


def first(report: LogReport) -> tuple[str, int | None]:
    assert report.first is not None, "the tampering went unnoticed"
    return report.first.kind, report.first.sequence


def execute(venue: Venue, sql: str, **params: object) -> None:
    with as_owner(venue.gateway.db) as conn:
        conn.execute(text(sql), {"venue": venue.id, **params})


def test_an_untouched_log_verifies(logged: Venue) -> None:
    report = audit(logged)
    assert report.ok, report.findings
    assert (report.entries, report.checkpoints, report.signed_size) == (13, 2, 13)


def test_the_application_cannot_change_or_delete_the_log(logged: Venue) -> None:
    refused = [
        "UPDATE events SET amount = 1 WHERE venue_id = :venue",
        "DELETE FROM events WHERE venue_id = :venue",
        "UPDATE log_nodes SET level = level WHERE venue_id = :venue",
        "DELETE FROM log_nodes WHERE venue_id = :venue",
        "UPDATE checkpoints SET size = 0 WHERE venue_id = :venue",
        "DELETE FROM checkpoints WHERE venue_id = :venue",
    ]
    for sql in refused:
        with pytest.raises(DBAPIError, match="append-only"), logged.gateway.db.write() as conn:
            conn.execute(text(sql), {"venue": logged.id})
    assert audit(logged).ok


def test_a_changed_amount_is_named(logged: Venue) -> None:
    execute(logged, "UPDATE events SET amount = amount + 100 WHERE venue_id = :venue AND sequence = 5")
    report = audit(logged)
    assert first(report) == ("changed", 5)
    assert "Entry #5" in str(report.first)


@pytest.mark.parametrize(
    ("change", "sequence"),
    [
        ("UPDATE events SET occurred_at = occurred_at - 1 WHERE venue_id = :venue AND sequence = 9", 9),
        ("UPDATE events SET occurred_at = NULL WHERE venue_id = :venue AND sequence = 10", 10),
        # An entry that had none.
        ("UPDATE events SET occurred_at = created_at WHERE venue_id = :venue AND sequence = 5", 5),
    ],
)
def test_a_changed_occurred_at_is_named(logged: Venue, change: str, sequence: int) -> None:
    execute(logged, change)
    assert first(audit(logged)) == ("changed", sequence)


def test_a_deleted_row_is_named(logged: Venue) -> None:
    execute(logged, "DELETE FROM events WHERE venue_id = :venue AND sequence = 5")
    assert first(audit(logged)) == ("removed", 5)


def test_two_swapped_rows_are_named(logged: Venue) -> None:
    for old, new in ((4, -1), (6, 4), (-1, 6)):
        execute(
            logged, "UPDATE events SET sequence = :new WHERE venue_id = :venue AND sequence = :old", old=old, new=new
        )
    report = audit(logged)
    assert first(report) == ("reordered", 4)
    assert "logged as #6" in str(report.first)


def test_a_truncated_tail_is_named(logged: Venue) -> None:
    execute(logged, "DELETE FROM events WHERE venue_id = :venue AND sequence >= 10")
    assert first(audit(logged)) == ("removed", 10)


def test_a_truncated_tail_and_tree_are_caught_by_the_signed_checkpoint(logged: Venue) -> None:
    execute(logged, "DELETE FROM events WHERE venue_id = :venue AND sequence >= 10")
    execute(logged, "DELETE FROM log_nodes WHERE venue_id = :venue AND ((node_index + 1) << level) > 10")
    report = audit(logged)
    assert first(report) == ("removed", 10)
    assert "checkpoint 2 covers 13" in str(report.first)


def test_rewriting_every_hash_to_match_is_caught_between_two_checkpoints(logged: Venue) -> None:
    """An attacker who recomputes the leaf hashes and the whole tree leaves only the signed
    checkpoints to go by: the change is located between the last one that still holds and
    the first that does not."""
    gateway: Gateway = logged.gateway
    with as_owner(gateway.db) as conn:
        conn.execute(
            text("UPDATE events SET amount = amount + 100 WHERE venue_id = :venue AND sequence = 9"),
            {"venue": logged.id},
        )
        rows = conn.execute(
            events_table.select().where(events_table.c.venue_id == logged.id).order_by(events_table.c.sequence)
        ).all()
        leaves = [leaf_hash(canonical_json(events.entry(row))) for row in rows]
        conn.execute(
            text("UPDATE events SET leaf_hash = :leaf WHERE venue_id = :venue AND sequence = 9"),
            {"leaf": leaves[9].hex(), "venue": logged.id},
        )
        conn.execute(text("DELETE FROM log_nodes WHERE venue_id = :venue"), {"venue": logged.id})
        log.append_leaves(conn, logged.id, 0, leaves)
    report = audit(logged)
    assert first(report) == ("changed", 8)
    assert "from #8 to #12" in str(report.first)
    assert {finding.kind for finding in report.findings} == {"changed", "consistency"}


def test_verify_db_exits_nonzero_and_names_the_entry(logged: Venue) -> None:
    key = logged.gateway.checkpointer.key.public_key_b64
    url = logged.gateway.db.url
    arguments = ["verify", "--db", url, "--venue", logged.id, "--public-key", key]
    untouched = runner.invoke(app, arguments)
    assert untouched.exit_code == 0, untouched.output
    assert "verified: venue" in untouched.stdout
    execute(logged, "UPDATE events SET amount = amount + 100 WHERE venue_id = :venue AND sequence = 3")
    tampered = runner.invoke(app, [*arguments, "--json"])
    assert tampered.exit_code == 1
    findings = json.loads(tampered.stdout)["findings"]
    assert (findings[0]["kind"], findings[0]["sequence"]) == ("changed", 3)
    said = runner.invoke(app, arguments)
    assert said.exit_code == 1 and "first problem: Entry #3" in said.stdout
