"""Spend against limits (service/spend.py), through the real gateway on both stores.

Pins down: spent (executed and settled, at their actual amounts) and held (pending and
approved) in the rolling 24 hours and 30 days, per agent and venue-wide; the limits of
each scope and the fraction used; a "used" that is exactly what the policy engine counts
(``ledger.held_in``); a day-by-day history, oldest first and zero-filled; and a read that
writes nothing, not even an expiry that is due.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Optional

import pytest
from sqlalchemy import select

from agenitry.gateway import Gateway, ManualClock
from agenitry.gateway._clock import DAY, HOUR, MINUTE, SECOND, iso
from agenitry.gateway.errors import Unprocessable
from agenitry.gateway.service import ledger
from agenitry.gateway.service.spend import spend_summary
from agenitry.gateway.store.schema import authorizations, venues
from support.venues import Venue, make_venue

MONTH = 30 * DAY


def ask(venue: Venue, agent: str, minor: int, *, actual: Optional[int] = None, execute: bool = False) -> str:
    """Authorize ``minor`` for ``agent``; execute it (at ``actual`` if given) when asked to."""
    body = {"agent_id": agent, "action": "purchase_order", "amount": Decimal(minor).scaleb(-2)}
    decision = venue.gateway.authorize(venue.admin, body).body
    if execute or actual is not None:
        assert decision["status"] == "approved", decision
        amount = None if actual is None else Decimal(actual).scaleb(-2)
        venue.gateway.execute(venue.admin, decision["authorization_id"], actual_amount=amount)
    return str(decision["authorization_id"])


def date_of(ms: int) -> str:
    return str(iso(ms))[:10]


def agent_entry(summary: dict[str, Any], agent: str) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [entry for entry in summary["agents"] if entry["agent_id"] == agent]
    [entry] = entries
    return entry


def window(entry: dict[str, Any], name: str) -> tuple[Any, ...]:
    counted = entry[name]
    return counted["spent"], counted["held"], counted["used"], counted["limit"], counted["fraction"]


def test_spent_and_held_in_both_windows_per_agent_and_venue_wide(venue: Venue, clock: ManualClock) -> None:
    venue.policy(max_daily_spend=500, max_monthly_spend=2000)
    venue.policy(agent_id="a1", max_daily_spend=100, require_approval_above=60)
    venue.policy(agent_id="a3", max_single_amount=5)
    start = clock()
    ask(venue, "a1", 40_00, actual=30_00)  # spent 30 (its actual amount), day 0
    clock.set(start + HOUR)
    ask(venue, "a2", 250_00, execute=True)  # spent 250, day 0
    clock.set(start + 2 * DAY)
    ask(venue, "a1", 70_00)  # pending: held 70
    clock.set(start + 2 * DAY + HOUR)
    ask(venue, "a2", 100_00, execute=True)  # spent 100
    clock.set(start + 2 * DAY + 2 * HOUR)
    ask(venue, "a2", 50_00)  # approved, not executed: held 50
    ask(venue, "a1", 40_00)  # denied (70 + 40 > 100): holds nothing
    clock.advance(MINUTE)

    summary = spend_summary(venue.gateway, venue.admin, days=3)

    assert (summary["venue_id"], summary["currency"], summary["as_of"]) == (venue.id, "USD", iso(clock()))
    whole = summary["venue"]
    assert (whole["agent_id"], whole["policy_id"]) == (
        None,
        venue.gateway.list_policies(venue.admin)["policies"][0]["id"],
    )
    assert window(whole, "daily") == (100_00, 120_00, 220_00, 500_00, 0.44)
    assert window(whole, "monthly") == (380_00, 120_00, 500_00, 2000_00, 0.25)
    assert whole["daily"]["used_display"] == "$220.00"
    assert (whole["daily"]["remaining"], whole["daily"]["remaining_display"]) == (280_00, "$280.00")
    assert whole["limits"]["max_daily_spend_display"] == "$500.00"
    assert whole["limits"]["max_single_amount"] is None

    assert [entry["agent_id"] for entry in summary["agents"]] == ["a1", "a2", "a3"]
    a1 = agent_entry(summary, "a1")
    assert window(a1, "daily") == (0, 70_00, 70_00, 100_00, 0.7)
    assert window(a1, "monthly") == (30_00, 70_00, 100_00, None, None)
    assert a1["limits"]["require_approval_above"] == 60_00
    a2 = agent_entry(summary, "a2")
    assert a2["policy_id"] is None
    assert window(a2, "daily") == (100_00, 50_00, 150_00, None, None)
    assert window(a2, "monthly") == (350_00, 50_00, 400_00, None, None)
    # An agent with a policy and no request yet is listed, at zero.
    a3 = agent_entry(summary, "a3")
    assert window(a3, "daily") == (0, 0, 0, None, None)
    assert a3["limits"]["max_single_amount_display"] == "$5.00"

    per_day = [(day["date"], day["spent"], day["held"]) for day in whole["days"]]
    dates = [date_of(start + n * DAY) for n in range(3)]
    assert per_day == [(dates[0], 280_00, 0), (dates[1], 0, 0), (dates[2], 100_00, 120_00)]
    assert [(day["spent"], day["held"]) for day in a1["days"]] == [(30_00, 0), (0, 0), (0, 70_00)]
    assert a1["days"][0]["spent_display"] == "$30.00"


def test_a_rolling_window_drops_a_hold_one_millisecond_after_it_ends(venue: Venue, clock: ManualClock) -> None:
    created = clock()
    venue.policy(max_daily_spend=100)
    ask(venue, "a1", 60_00, execute=True)

    clock.set(created + DAY)
    assert window(spend_summary(venue.gateway, venue.admin)["venue"], "daily")[:3] == (60_00, 0, 60_00)
    clock.set(created + DAY + 1)
    summary = spend_summary(venue.gateway, venue.admin)
    assert window(summary["venue"], "daily")[:3] == (0, 0, 0)
    assert window(summary["venue"], "monthly")[:3] == (60_00, 0, 60_00)
    assert window(agent_entry(summary, "a1"), "monthly")[:3] == (60_00, 0, 60_00)


def held_by_engine(gateway: Gateway, venue_id: str, scope: str, length: int) -> int:
    with gateway.db.read() as conn:
        return ledger.held_since(conn, venue_id, scope, gateway.clock() - length)


def test_used_is_what_the_policy_engine_counts(venue: Venue, clock: ManualClock) -> None:
    venue.policy(max_daily_spend=10_000, require_approval_above=300)
    gateway = venue.gateway
    start = clock()
    history = [
        ("a1", 120_00, "execute"),
        ("a2", 80_00, "execute-less"),
        ("a1", 400_00, "pending"),
        ("a2", 90_00, "reverse"),
        ("a1", 500_00, "owner-deny"),
        ("a2", 30_00, "approved"),
        ("a1", 20_00, "settle"),
    ]
    for n, (agent, minor, fate) in enumerate(history):
        clock.set(start + n * 7 * HOUR + n * 1234)
        authorization_id = ask(venue, agent, minor)
        if fate in ("execute", "settle"):
            gateway.execute(venue.admin, authorization_id)
        if fate == "execute-less":
            gateway.execute(venue.admin, authorization_id, actual_amount=Decimal("12.34"))
        if fate == "settle":
            gateway.settle(venue.admin, authorization_id)
        if fate == "reverse":
            gateway.reverse(venue.admin, authorization_id)
        if fate == "owner-deny":
            gateway.deny(venue.admin, authorization_id)

    checked = 0
    for moment in (clock(), clock() + 2 * MINUTE, start + DAY + 5 * HOUR, start + 31 * DAY):
        clock.set(moment)
        gateway.sweep()  # the ledger counts an expired hold until the expiry is written down
        summary = spend_summary(gateway, venue.admin)
        for entry in (summary["venue"], *summary["agents"]):
            for name, length in (("daily", DAY), ("monthly", MONTH)):
                assert entry[name]["used"] == held_by_engine(gateway, venue.id, entry["agent_id"] or "", length)
                checked += entry[name]["used"] > 0
    assert checked >= 6  # the comparison saw real amounts, not only zeros


def test_a_hold_past_its_window_counts_nothing_and_the_read_writes_nothing(venue: Venue, clock: ManualClock) -> None:
    venue.policy(max_daily_spend=100, require_approval_above=10)
    approved = ask(venue, "a1", 10_00)
    pending = ask(venue, "a1", 50_00)
    with venue.gateway.db.read() as conn:
        log_size = conn.execute(select(venues.c.event_count).where(venues.c.id == venue.id)).scalar_one()

    clock.advance(300 * SECOND + 1)  # the approval's execute window has passed, not yet written down
    assert window(spend_summary(venue.gateway, venue.admin)["venue"], "daily")[:3] == (0, 50_00, 50_00)
    clock.advance(DAY)  # the pending request's approval window too
    assert window(spend_summary(venue.gateway, venue.admin)["venue"], "daily")[:3] == (0, 0, 0)

    with venue.gateway.db.read() as conn:
        assert conn.execute(select(venues.c.event_count).where(venues.c.id == venue.id)).scalar_one() == log_size
        statuses = conn.execute(
            select(authorizations.c.status).where(authorizations.c.id.in_([approved, pending]))
        ).scalars()
        assert sorted(statuses) == ["approved", "pending"]


def test_the_history_is_zero_filled_oldest_first_and_ends_today(venue: Venue, clock: ManualClock) -> None:
    venue.policy(max_daily_spend=100)
    start = clock()
    ask(venue, "a1", 10_00, execute=True)
    clock.set(start + 3 * DAY + 5 * HOUR)
    ask(venue, "a1", 20_00, execute=True)
    clock.set(start + 6 * DAY + 23 * HOUR)

    days = spend_summary(venue.gateway, venue.admin, days=7)["venue"]["days"]

    assert [day["date"] for day in days] == [date_of(start + n * DAY) for n in range(7)]
    assert [day["start"] for day in days] == [iso(start + n * DAY) for n in range(7)]
    assert [day["spent"] for day in days] == [10_00, 0, 0, 20_00, 0, 0, 0]
    assert {day["held_display"] for day in days} == {"$0.00"}

    today = spend_summary(venue.gateway, venue.admin, days=1)["venue"]["days"]
    assert [(day["date"], day["spent"]) for day in today] == [(date_of(clock()), 0)]
    assert len(spend_summary(venue.gateway, venue.admin, days=90)["venue"]["days"]) == 90


def test_a_venue_without_a_policy(venue: Venue) -> None:
    summary = spend_summary(venue.gateway, venue.admin)
    assert summary["agents"] == []
    whole = summary["venue"]
    assert whole["policy_id"] is None
    assert set(whole["limits"].values()) == {None}
    assert window(whole, "daily") == (0, 0, 0, None, None)
    assert whole["daily"]["remaining"] is None
    assert len(whole["days"]) == 30
    assert {(day["spent"], day["held"]) for day in whole["days"]} == {(0, 0)}

    # Denied for want of a policy: the agent is listed, holding nothing.
    ask(venue, "a1", 10_00)
    [entry] = spend_summary(venue.gateway, venue.admin)["agents"]
    assert (entry["agent_id"], window(entry, "daily")) == ("a1", (0, 0, 0, None, None))


def test_a_zero_limit_is_full_only_once_something_counts(venue: Venue) -> None:
    venue.policy(max_daily_spend=0)
    assert spend_summary(venue.gateway, venue.admin)["venue"]["daily"]["fraction"] == 0.0
    venue.policy(max_daily_spend=100)
    ask(venue, "a1", 10_00, execute=True)
    venue.policy(max_daily_spend=0)
    daily = spend_summary(venue.gateway, venue.admin)["venue"]["daily"]
    assert (daily["fraction"], daily["remaining"]) == (1.0, 0)


def test_a_limit_lowered_below_what_is_held_reads_above_one(venue: Venue) -> None:
    venue.policy(max_daily_spend=100)
    ask(venue, "a1", 80_00, execute=True)
    venue.policy(max_daily_spend=40)
    daily = spend_summary(venue.gateway, venue.admin)["venue"]["daily"]
    assert (daily["used"], daily["limit"], daily["fraction"], daily["remaining"]) == (80_00, 40_00, 2.0, 0)


def test_another_venue_is_never_counted_and_any_key_of_the_venue_reads(venue: Venue) -> None:
    other = make_venue(venue.gateway)
    other.policy(max_daily_spend=1000)
    ask(other, "a1", 500_00, execute=True)
    venue.policy(max_daily_spend=100)
    ask(venue, "a1", 10_00, execute=True)

    mine = spend_summary(venue.gateway, venue.admin)
    assert window(mine["venue"], "monthly")[:3] == (10_00, 0, 10_00)
    assert [day["spent"] for day in mine["venue"]["days"]][-1] == 10_00
    assert spend_summary(venue.gateway, venue.agent("a1")) == mine


@pytest.mark.parametrize("days", [0, 91, -1, True, 7.0, "7"])
def test_days_out_of_range_is_refused(venue: Venue, days: Any) -> None:
    with pytest.raises(Unprocessable) as refused:
        spend_summary(venue.gateway, venue.admin, days=days)
    assert refused.value.code == "invalid_days"
    assert "1 to 90" in refused.value.message
