"""The policy dry run (service/dryrun.py), through the real gateway on both stores.

Pins down "How the dry run counts" (docs/console.md) against a case computed by hand; that
a change is checked exactly as PUT /v1/policies checks it; that a dry run writes nothing;
that a request from before the period is not replayed while its hold still counts; and
that another venue is never seen.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from agenitry.gateway import ManualClock
from agenitry.gateway._clock import DAY, HOUR, MINUTE
from agenitry.gateway.errors import GatewayError
from agenitry.gateway.service.dryrun import MAX_CHANGED, dry_run
from agenitry.gateway.store.schema import authorizations, events, policies
from support.venues import Venue, make_venue

AGENT = "buyer"


def ask(venue: Venue, dollars: int, agent: str = AGENT) -> dict[str, Any]:
    body = {"agent_id": agent, "action": "purchase_order", "amount": dollars}
    return venue.gateway.authorize(venue.admin, body).body


# The hand-computed case. Policy now (venue-wide): daily limit $100, approval above $50.
# Proposed: daily limit $80, no approval threshold. Every request is the agent's, and the
# daily window at t counts what was created in [t - 24 h, t].
#
# req  when        $   really (= current)   then, really             held at the request
#                                                                     current | proposed    proposed
# R1   d0 00:00   30   approved             executed at $30         0        | 0           approved
# R2   d0 01:00   60   pending (60 > 50)    owner denies at 03:00   30       | 30          denied (30+60 > 80)
# R3   d0 02:00   20   denied (30+60+20)    -                       90       | 30          approved
# R4   d0 04:00   40   approved             executed at $35         30       | 30+20=50    denied (50+40 > 80)
# R5   d1 00:30   25   approved             reversed at 00:33       35 (R4)  | 20 (R3)     approved
# R6   d1 05:00   55   pending (55 > 50)    expires at d2 05:00     0        | 0           approved
# R7   d1 06:00   50   denied (55+50)       -                       55       | 55          denied (55+50 > 80)
# R8   d1 07:00   30   approved             executed at $30         55       | 55          denied (55+30 > 80)
# R9   d3 00:00   45   approved             executed at $45         0        | 0           approved
#
# In the proposed replay R3 was really denied at once, so once let through it holds its $20
# for the whole window (as if spent in full); R6 follows its real expiry.
# Current:  approved 5 (R1 R4 R5 R8 R9), pending 2 (R2 R6), denied 2 (R3 R7).
# Proposed: approved 5 (R1 R3 R5 R6 R9), pending 0,         denied 4 (R2 R4 R7 R8).
# Changed:  R2 pending->denied, R3 denied->approved, R4 approved->denied,
#           R6 pending->approved, R8 approved->denied.
CURRENT = {"approved": 5, "pending": 2, "denied": 2}
PROPOSED = {"approved": 5, "pending": 0, "denied": 4}


def test_the_hand_computed_case(venue: Venue, clock: ManualClock) -> None:
    venue.policy(max_daily_spend=100, require_approval_above=50)
    gateway, admin, d0 = venue.gateway, venue.admin, clock()
    ids: dict[str, str] = {}

    def request(name: str, at: int, dollars: int, really: str) -> str:
        clock.set(d0 + at)
        decision = ask(venue, dollars)
        assert decision["status"] == really, (name, decision)
        ids[name] = decision["authorization_id"]
        return ids[name]

    def execute(name: str, dollars: int) -> None:
        gateway.execute(admin, ids[name], actual_amount=Decimal(dollars))

    request("R1", 0, 30, "approved")
    execute("R1", 30)
    request("R2", HOUR, 60, "pending")
    request("R3", 2 * HOUR, 20, "denied")
    clock.set(d0 + 3 * HOUR)
    gateway.deny(admin, ids["R2"])
    request("R4", 4 * HOUR, 40, "approved")
    execute("R4", 35)
    request("R5", DAY + 30 * MINUTE, 25, "approved")
    clock.set(d0 + DAY + 33 * MINUTE)
    gateway.reverse(admin, ids["R5"])
    request("R6", DAY + 5 * HOUR, 55, "pending")
    request("R7", DAY + 6 * HOUR, 50, "denied")
    request("R8", DAY + 7 * HOUR, 30, "approved")
    execute("R8", 30)
    request("R9", 3 * DAY, 45, "approved")
    execute("R9", 45)
    clock.set(d0 + 3 * DAY + HOUR)

    answer = dry_run(gateway, admin, {"max_daily_spend": 80, "require_approval_above": None})

    assert answer["requests"] == 9
    assert (answer["current"], answer["proposed"]) == (CURRENT, PROPOSED)
    assert answer["changed_total"] == 5
    changed = [(entry["id"], entry["current"], entry["proposed"], entry["denial_code"]) for entry in answer["changed"]]
    assert changed == [
        (ids["R2"], "pending", "denied", "max_daily_spend"),
        (ids["R3"], "denied", "approved", "max_daily_spend"),
        (ids["R4"], "approved", "denied", "max_daily_spend"),
        (ids["R6"], "pending", "approved", None),
        (ids["R8"], "approved", "denied", "max_daily_spend"),
    ]
    r4 = answer["changed"][2]
    assert (r4["agent_id"], r4["action"], r4["amount"], r4["amount_display"]) == (
        AGENT,
        "purchase_order",
        40_00,
        "$40.00",
    )
    assert r4["created_at"] == gateway.get_authorization(admin, ids["R4"])["created_at"]
    assert "above the daily limit of $80.00" in r4["reason"]
    assert [(entry["label"], entry["old"], entry["new"]) for entry in answer["diff"]] == [
        ("Daily limit (24 hours)", "$100.00", "$80.00"),
        ("Approval above", "$50.00", "no limit"),
    ]
    assert (answer["diff"][0]["old_value"], answer["diff"][0]["new_value"]) == (100_00, 80_00)
    assert (answer["agent_id"], answer["creates_policy"], answer["days"]) == (None, False, 30)

    # The same policy replayed under itself changes nothing.
    same = dry_run(gateway, admin, {"max_daily_spend": 100})
    assert (same["current"], same["proposed"], same["changed_total"], same["diff"]) == (CURRENT, CURRENT, 0, [])


def test_an_agent_policy_is_tried_beside_the_venue_policy(venue: Venue) -> None:
    venue.policy(max_daily_spend=100)
    for dollars in (30, 30, 30):
        assert ask(venue, dollars)["status"] == "approved"
    assert ask(venue, 30, agent="other")["status"] == "denied"  # the venue's $100 a day

    answer = dry_run(venue.gateway, venue.admin, {"agent_id": AGENT, "max_daily_spend": 50, "allowed_actions": []})

    assert (answer["agent_id"], answer["policy_id"], answer["creates_policy"]) == (AGENT, None, True)
    assert [(entry["field"], entry["old"], entry["new"]) for entry in answer["diff"]] == [
        ("max_daily_spend", "no limit", "$50.00"),
        ("allowed_actions", "any action", "none"),
    ]
    # Nothing is allowed for the agent any more, so the other agent, whom the venue's daily
    # limit denies now, gets through: the agent's requests hold nothing in that replay.
    assert answer["current"] == {"approved": 3, "pending": 0, "denied": 1}
    assert answer["proposed"] == {"approved": 1, "pending": 0, "denied": 3}
    assert {entry["denial_code"] for entry in answer["changed"]} == {"action_not_allowed", "max_daily_spend"}


def test_requests_of_one_millisecond_are_replayed_in_the_order_they_were_decided(venue: Venue) -> None:
    venue.policy(max_daily_spend=100)
    # Without moving the clock: in this order $90 fits and neither $20 does; in another the $20s would.
    really = [ask(venue, dollars, agent=f"agent-{n}")["status"] for n, dollars in enumerate((90, 20, 20, 90, 20))]
    assert really == ["approved", "denied", "denied", "denied", "denied"]

    answer = dry_run(venue.gateway, venue.admin, {"max_single_amount": 1000})

    assert answer["current"] == answer["proposed"] == {"approved": 1, "pending": 0, "denied": 4}


def test_at_most_fifty_changes_are_listed(venue: Venue) -> None:
    venue.policy(max_single_amount=10)
    for _ in range(MAX_CHANGED + 3):
        ask(venue, 5)
    answer = dry_run(venue.gateway, venue.admin, {"max_single_amount": 1})
    assert (answer["changed_total"], len(answer["changed"])) == (MAX_CHANGED + 3, MAX_CHANGED)


def test_a_request_before_the_period_is_not_replayed_but_still_holds(venue: Venue, clock: ManualClock) -> None:
    venue.policy(max_daily_spend=100)
    start = clock()
    spent = ask(venue, 70)  # before the one-day period below
    venue.gateway.execute(venue.admin, spent["authorization_id"])
    clock.set(start + 23 * HOUR)
    assert ask(venue, 20)["status"] == "approved"  # its window still sees the $70
    clock.set(start + 25 * HOUR)

    answer = dry_run(venue.gateway, venue.admin, {"max_daily_spend": 80}, days=1)

    assert answer["requests"] == 1
    assert (answer["current"]["approved"], answer["proposed"]["denied"]) == (1, 1)
    assert answer["changed"][0]["reason"].endswith("($70.00 already held)")


def test_a_lapsed_approval_or_a_denial_before_the_period_holds_nothing(venue: Venue, clock: ManualClock) -> None:
    venue.policy(max_daily_spend=100)
    start = clock()
    assert ask(venue, 70)["status"] == "approved"  # never executed: its hold ends with the execute window
    clock.set(start + 30 * MINUTE)
    assert ask(venue, 170)["status"] == "denied"
    clock.set(start + 23 * HOUR)
    ask(venue, 20)
    clock.set(start + 25 * HOUR)

    answer = dry_run(venue.gateway, venue.admin, {"max_daily_spend": 30}, days=1)

    assert (answer["requests"], answer["proposed"]) == (1, {"approved": 1, "pending": 0, "denied": 0})


def test_another_venues_requests_are_never_seen(venue: Venue) -> None:
    other = make_venue(venue.gateway)
    other.policy(max_daily_spend=1000)
    for _ in range(4):
        assert ask(other, 200)["status"] == "approved"
    venue.policy(max_daily_spend=100)
    assert ask(venue, 10)["status"] == "approved"

    answer = dry_run(venue.gateway, venue.admin, {"max_daily_spend": 10})

    assert answer["requests"] == 1
    assert answer["proposed"] == {"approved": 1, "pending": 0, "denied": 0}
    with pytest.raises(GatewayError) as refused:
        dry_run(venue.gateway, venue.admin, {"venue_id": other.id, "max_daily_spend": 10})
    assert (refused.value.status, refused.value.code) == (404, "venue_not_found")


def counted(venue: Venue) -> tuple[int, ...]:
    with venue.gateway.db.read() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(table).where(table.c.venue_id == venue.id)).scalar_one()
            for table in (events, policies, authorizations)
        )


def test_a_dry_run_writes_nothing(venue: Venue, clock: ManualClock) -> None:
    venue.policy(max_daily_spend=100, require_approval_above=10)
    pending = ask(venue, 50)["authorization_id"]
    clock.advance(2 * DAY)  # its approval window has passed; nothing has written that down
    before = counted(venue)
    policy = venue.gateway.list_policies(venue.admin)

    dry_run(venue.gateway, venue.admin, {"max_daily_spend": 10, "require_approval_above": None})
    dry_run(venue.gateway, venue.admin, {"agent_id": AGENT, "max_single_amount": 1})

    assert counted(venue) == before
    assert venue.gateway.list_policies(venue.admin) == policy
    with venue.gateway.db.read() as conn:
        assert conn.execute(select(authorizations.c.status).where(authorizations.c.id == pending)).scalar() == "pending"


INVALID = [
    {"max_daily_spend": -5},
    {"max_single_amount": 0.001},
    {"max_monthly_spend": 10**13},
    {"agent_id": "not an agent"},
    {"allowed_actions": ["Not An Action"]},
    {"allowed_actions": ["purchase_order"] * 101},
    {"venue_id": "somebody-else", "max_daily_spend": 1},
]


@pytest.mark.parametrize("changes", INVALID, ids=lambda changes: ",".join(changes))
def test_an_invalid_change_gets_the_answer_a_put_gets(
    venue: Venue, http: httpx.Client, changes: dict[str, Any]
) -> None:
    venue.policy(max_daily_spend=100)
    put = http.put("/v1/policies", json=changes, headers={"Authorization": f"Bearer {venue.admin_key}"})
    assert put.status_code in (404, 422), put.text

    with pytest.raises(GatewayError) as refused:
        dry_run(venue.gateway, venue.admin, changes)

    assert (refused.value.status, refused.value.body()) == (put.status_code, put.json())


def test_an_agent_key_may_not_try_a_policy(venue: Venue, http: httpx.Client) -> None:
    put = http.put(
        "/v1/policies", json={"max_daily_spend": 1}, headers={"Authorization": f"Bearer {venue.agent_key()}"}
    )
    with pytest.raises(GatewayError) as refused:
        dry_run(venue.gateway, venue.agent(), {"max_daily_spend": 1})
    assert (put.status_code, refused.value.status, refused.value.body()) == (403, 403, put.json())


@pytest.mark.parametrize("days", [0, 91])
def test_days_out_of_range_is_refused(venue: Venue, days: int) -> None:
    with pytest.raises(GatewayError) as refused:
        dry_run(venue.gateway, venue.admin, {}, days=days)
    assert (refused.value.status, refused.value.code) == (422, "invalid_days")
