"""Rolling windows and holds, through the real gateway on both stores, with a manual clock.

Pins down DESIGN §4: the daily (24 h) and monthly (30 days) windows are rolling and exact
to the millisecond (a request at ``now`` counts what was created in ``[now - window,
now]``, so a hold made at ``t`` still counts at ``t + window`` and no longer at
``t + window + 1``), whichever second, minute, hour or day bucket the edge falls in, and
reading the authorizations of one second at most at the edge, whatever the rate; what each
status holds (pending and approved the amount, executed the actual amount, denied,
expired and reversed nothing); the venue-wide limit counted over every agent and an
agent's limit over that agent; that the ledger's bucket decomposition equals a plain
sum over the authorizations table for arbitrary histories; and that migration 0007 fills
the second buckets of a database made before them.
"""

from __future__ import annotations

import importlib.util
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from agenitry.gateway import Gateway, GatewayError, ManualClock
from agenitry.gateway._clock import DAY, HOUR, MINUTE, SECOND
from agenitry.gateway.service import ledger
from agenitry.gateway.store.database import _MIGRATIONS
from agenitry.gateway.store.schema import authorizations, spend_buckets
from support.isolated import own_databases
from support.venues import Venue, make_venue

AGENT = "voice-agent"
MONTH = 30 * DAY
EXECUTE_WINDOW = 300 * SECOND
WINDOWS = {"daily": ("max_daily_spend", DAY), "monthly": ("max_monthly_spend", MONTH)}


def usd(minor: int) -> Decimal:
    return Decimal(minor).scaleb(-2)


def authorize(venue: Venue, minor: int, agent: str = AGENT, **fields: Any) -> dict[str, Any]:
    body = {"agent_id": agent, "action": "purchase_order", "amount": usd(minor), **fields}
    return venue.gateway.authorize(venue.admin, body).body


def spend(venue: Venue, minor: int, agent: str = AGENT, actual: Optional[int] = None) -> str:
    """Authorize and execute at once: an executed authorization holds until its window passes."""
    decision = authorize(venue, minor, agent)
    assert decision["status"] == "approved", decision
    venue.gateway.execute(
        venue.admin, decision["authorization_id"], actual_amount=None if actual is None else usd(actual)
    )
    return str(decision["authorization_id"])


def held(venue: Venue, scope: str, window: int) -> int:
    gateway = venue.gateway
    with gateway.db.read() as conn:
        return ledger.held_since(conn, venue.id, scope, gateway.clock() - window)


def assert_room(venue: Venue, room: int, code: str = "max_daily_spend", agent: str = AGENT) -> None:
    """Exactly ``room`` minor units can still be authorized now: one more is denied."""
    over = authorize(venue, room + 1, agent)
    assert (over["status"], over.get("denial_code")) == ("denied", code), over
    fits = authorize(venue, room, agent)
    assert fits["status"] in ("approved", "pending"), fits
    # Release it again, so the next look at the window sees only the history under test.
    if fits["status"] == "approved":
        venue.gateway.reverse(venue.admin, fits["authorization_id"])
    else:
        venue.gateway.deny(venue.admin, fits["authorization_id"])


@pytest.mark.parametrize("window", WINDOWS)
def test_a_hold_counts_until_the_window_has_fully_passed(venue: Venue, clock: ManualClock, window: str) -> None:
    field, length = WINDOWS[window]
    code = field
    venue.policy(agent_id=AGENT, **{field: 100})
    created = clock()
    spend(venue, 100_00)

    clock.set(created + length - 1)
    assert_room(venue, 0, code)
    clock.set(created + length)
    assert held(venue, AGENT, length) == 100_00
    assert_room(venue, 0, code)
    clock.set(created + length + 1)
    assert held(venue, AGENT, length) == 0
    assert_room(venue, 100_00, code)


def test_the_monthly_window_survives_the_sweep_that_prunes_old_buckets(venue: Venue, clock: ManualClock) -> None:
    venue.policy(max_monthly_spend=100)
    created = clock()
    spend(venue, 40_00)
    clock.advance(DAY + 1)
    spend(venue, 60_00)

    clock.set(created + MONTH)
    venue.gateway.sweep()
    assert_room(venue, 0, "max_monthly_spend")
    clock.set(created + MONTH + 1)
    venue.gateway.sweep()
    assert_room(venue, 40_00, "max_monthly_spend")


# Bucket edges, relative to the clock's start (midnight UTC): the holds sit at edge-1, edge, edge+1.
EDGES = {
    "minute": 7 * MINUTE,
    "hour": 5 * HOUR,
    "day": DAY,
    "inside-a-minute": 7 * MINUTE + 12_345,
}


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("window", WINDOWS)
def test_holds_straddling_a_bucket_edge_leave_the_window_one_millisecond_apart(
    venue: Venue, clock: ManualClock, window: str, edge: str
) -> None:
    field, length = WINDOWS[window]
    venue.policy(**{field: 10})
    boundary = clock() + EDGES[edge]
    for offset, minor in ((-1, 1_00), (0, 2_00), (1, 4_00)):
        clock.set(boundary + offset)
        spend(venue, minor)

    for offset, still_held in ((-1, 7_00), (0, 6_00), (1, 4_00), (2, 0)):
        clock.set(boundary + offset + length)
        assert held(venue, "", length) == still_held, offset
        assert_room(venue, 10_00 - still_held, field)


def test_an_owner_denial_releases_the_pending_hold(venue: Venue) -> None:
    venue.policy(agent_id=AGENT, max_daily_spend=100, require_approval_above=10)
    pending = authorize(venue, 100_00)
    assert pending["status"] == "pending"
    assert held(venue, AGENT, DAY) == 100_00
    assert_room(venue, 0)

    venue.gateway.deny(venue.admin, pending["authorization_id"], reason="not today")

    assert held(venue, AGENT, DAY) == 0
    assert_room(venue, 100_00)


def test_pending_holds_count_against_the_window(venue: Venue) -> None:
    venue.policy(max_daily_spend=100, require_approval_above=50)
    assert authorize(venue, 60_00)["status"] == "pending"
    assert authorize(venue, 30_00)["status"] == "approved"

    assert held(venue, "", DAY) == 90_00
    assert_room(venue, 10_00)


def test_an_approved_authorization_holds_until_it_expires(venue: Venue, clock: ManualClock) -> None:
    venue.policy(max_daily_spend=100)
    created = clock()
    approved = authorize(venue, 100_00)
    assert approved["status"] == "approved"

    clock.set(created + EXECUTE_WINDOW)
    assert_room(venue, 0)
    clock.set(created + EXECUTE_WINDOW + 1)
    assert_room(venue, 100_00)
    record = venue.gateway.get_authorization(venue.admin, approved["authorization_id"])
    assert (record["status"], record["held_amount"]) == ("expired", 0)


def test_a_pending_authorization_holds_until_its_approval_window_ends(venue: Venue, clock: ManualClock) -> None:
    # The monthly limit shows the release: the daily window has moved past it by then anyway.
    venue.policy(max_monthly_spend=100, require_approval_above=10)
    created = clock()
    assert authorize(venue, 100_00)["status"] == "pending"

    clock.set(created + DAY)
    assert_room(venue, 0, "max_monthly_spend")
    clock.set(created + DAY + 1)
    assert_room(venue, 100_00, "max_monthly_spend")
    assert held(venue, "", MONTH) == 0


@pytest.mark.parametrize("executed", [False, True], ids=["approved", "executed"])
def test_a_reversal_releases_the_hold(venue: Venue, executed: bool) -> None:
    venue.policy(max_daily_spend=100, max_monthly_spend=100)
    decision = authorize(venue, 80_00)
    if executed:
        venue.gateway.execute(venue.admin, decision["authorization_id"], actual_amount=usd(70_00))
    assert_room(venue, 30_00 if executed else 20_00)

    venue.gateway.reverse(venue.admin, decision["authorization_id"])

    assert held(venue, "", DAY) == held(venue, "", MONTH) == 0
    assert_room(venue, 100_00)


@pytest.mark.parametrize(("actual", "room"), [(30_00, 70_00), (0, 100_00), (100_00, 0), (None, 0)])
def test_on_execute_the_actual_amount_replaces_the_hold(venue: Venue, actual: Optional[int], room: int) -> None:
    venue.policy(agent_id=AGENT, max_daily_spend=100, max_monthly_spend=1_000)
    spend(venue, 100_00, actual=actual)

    assert held(venue, AGENT, DAY) == held(venue, AGENT, MONTH) == 100_00 - room
    assert_room(venue, room)


def test_a_settled_authorization_keeps_holding_its_actual_amount(venue: Venue) -> None:
    venue.policy(max_daily_spend=100)
    authorization_id = spend(venue, 100_00, actual=45_50)
    venue.gateway.settle(venue.admin, authorization_id)

    assert held(venue, "", DAY) == 45_50
    assert_room(venue, 54_50)


def test_denied_requests_hold_nothing(venue: Venue) -> None:
    venue.policy(max_single_amount=60, max_daily_spend=100, allowed_actions=["purchase_order"])
    spend(venue, 50_00)
    denials = [
        authorize(venue, 60_01),
        authorize(venue, 1_00, action="comp_issued"),
        authorize(venue, 50_01),
        authorize(venue, 1_00, currency="EUR"),
    ]

    assert [d["denial_code"] for d in denials] == [
        "max_single_amount",
        "action_not_allowed",
        "max_daily_spend",
        "currency_mismatch",
    ]
    assert held(venue, "", DAY) == held(venue, AGENT, DAY) == 50_00
    with venue.gateway.db.read() as conn:
        holds = conn.execute(
            select(authorizations.c.hold).where(
                authorizations.c.venue_id == venue.id, authorizations.c.status == "denied"
            )
        ).scalars()
        assert list(holds) == [0, 0, 0, 0]
    assert_room(venue, 50_00)


def test_the_venue_limit_counts_every_agent_and_an_agent_limit_only_that_agent(venue: Venue) -> None:
    venue.policy(max_daily_spend=100)
    venue.policy(agent_id="host", max_daily_spend=30)
    spend(venue, 30_00, agent="host")

    denied = authorize(venue, 1, agent="host")
    assert denied["denial_code"] == "max_daily_spend"
    assert "for agent 'host'" in denied["denial_reason"]
    spend(venue, 70_00, agent="chef")

    for agent in ("host", "chef", "sommelier"):
        over = authorize(venue, 1, agent=agent)
        assert over["denial_code"] == "max_daily_spend"
        assert "for the venue" in over["denial_reason"]
    assert (held(venue, "", DAY), held(venue, "host", DAY), held(venue, "chef", DAY)) == (100_00, 30_00, 70_00)
    assert held(venue, "sommelier", DAY) == 0


def test_an_agent_limit_leaves_other_agents_their_venue_room(venue: Venue) -> None:
    venue.policy(max_daily_spend=100)
    venue.policy(agent_id="host", max_daily_spend=30)
    spend(venue, 30_00, agent="host")

    assert_room(venue, 70_00, agent="chef")
    assert_room(venue, 0, agent="host")


# A step of a random history: the gap since the previous one (edges and arbitrary), the
# amount in cents, the agent, and what then happens to the authorization.
GAPS = st.one_of(
    st.sampled_from([0, 1, 2, MINUTE - 1, MINUTE, MINUTE + 1, HOUR - 1, HOUR, DAY - 1, DAY]),
    st.integers(0, 2 * DAY),
)
STEPS = st.tuples(GAPS, st.integers(0, 100_00), st.sampled_from(["a", "b"]), st.integers(0, 3))


def _play(venue: Venue, clock: ManualClock, gap: int, minor: int, agent: str, fate: int) -> None:
    clock.advance(gap)
    decision = authorize(venue, minor, agent)
    authorization_id = decision["authorization_id"]
    gateway = venue.gateway
    if decision["status"] == "approved":
        if fate in (1, 2):
            gateway.execute(venue.admin, authorization_id, actual_amount=usd(minor * fate // 3))
        if fate in (2, 3):
            gateway.reverse(venue.admin, authorization_id)
    elif decision["status"] == "pending":
        if fate == 1:
            gateway.approve(venue.admin, authorization_id)
        elif fate == 2:
            gateway.deny(venue.admin, authorization_id)


def _brute_held(venue: Venue, conn: Any, scope: str, start: int) -> int:
    a = authorizations.c
    query = select(func.coalesce(func.sum(a.hold), 0)).where(a.venue_id == venue.id, a.created_at >= start)
    if scope:
        query = query.where(a.agent_id == scope)
    return int(conn.execute(query).scalar_one())


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=st.integers(0, DAY - 1),
    history=st.lists(STEPS, min_size=1, max_size=12),
    extra_starts=st.lists(st.integers(-MONTH, 0), max_size=5),
)
def test_the_bucket_decomposition_equals_a_plain_sum_over_the_authorizations(
    gateway: Gateway, clock: ManualClock, first: int, history: list[Any], extra_starts: list[int]
) -> None:
    venue = make_venue(gateway)
    # Requests above the threshold wait, so pending holds (approved or denied later) mix in.
    venue.policy(require_approval_above=50)
    clock.set(1_767_225_600_000 + first)
    for step in history:
        _play(venue, clock, *step)
    now = clock()

    with gateway.db.read() as conn:
        rows = conn.execute(select(authorizations).where(authorizations.c.venue_id == venue.id)).all()
        starts = {now - DAY, now - MONTH, now + 1, *(now + extra for extra in extra_starts)}
        for row in rows:
            c = row.created_at
            starts.update({c - 1, c, c + 1, c - c % MINUTE, c - c % HOUR, c - c % DAY, c - c % DAY + DAY})
        for scope in ("", "a", "b"):
            for start in sorted(starts):
                assert ledger.held_since(conn, venue.id, scope, start) == _brute_held(venue, conn, scope, start), (
                    scope,
                    start - now,
                )
    expected_hold = {"approved": "amount", "pending": "amount", "executed": "actual_amount"}
    for row in rows:
        field = expected_hold.get(row.status)
        assert row.hold == (getattr(row, field) if field else 0), row


def test_a_request_of_another_venue_does_not_touch_this_venue_s_window(gateway: Gateway) -> None:
    first, second = make_venue(gateway), make_venue(gateway)
    for venue in (first, second):
        venue.policy(max_daily_spend=100)
    spend(first, 100_00)

    assert held(second, "", DAY) == 0
    assert_room(second, 100_00)
    with pytest.raises(GatewayError) as refused:
        gateway.execute(second.admin, authorize(first, 0)["authorization_id"])
    assert refused.value.status == 404


# Boundaries of each width, relative to the clock's start (midnight UTC), and the offsets
# from one at which holds are made: around it, and at the edges of its second and minute.
BOUNDARIES = {"second": 7 * MINUTE + 12 * SECOND, "minute": 7 * MINUTE, "hour": 5 * HOUR, "day": DAY}
HOLD_OFFSETS = (-MINUTE - 1, -SECOND - 1, -SECOND, -1, 0, 1, 999, SECOND, SECOND + 1, MINUTE - 1, MINUTE, MINUTE + 1)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_every_window_start_around_a_boundary_counts_exactly_the_holds_from_it(
    venue: Venue, clock: ManualClock, boundary: str
) -> None:
    venue.policy(max_daily_spend=100)
    at = clock() + BOUNDARIES[boundary]
    made = {}
    for n, offset in enumerate(HOLD_OFFSETS):
        clock.set(at + offset)
        spend(venue, 1 << n)
        made[at + offset] = 1 << n

    starts = {at + offset + shift for offset in HOLD_OFFSETS for shift in (-1, 0, 1)}
    with venue.gateway.db.read() as conn:
        for scope in ("", AGENT):
            for start in sorted(starts):
                expected = sum(hold for created, hold in made.items() if created >= start)
                assert ledger.held_since(conn, venue.id, scope, start) == expected, (scope, start - at)


def test_a_window_reads_the_authorizations_of_one_second_at_its_edge(venue: Venue, clock: ManualClock) -> None:
    """Every authorization of the venue is made to hold one unit more in its row alone, its
    buckets left as they were: the window then counts one more for each row it read."""
    venue.policy(max_daily_spend=100)
    second = clock() + 7 * MINUTE + 12 * SECOND
    start = second + 250
    inside = (start, start + 100, second + 999)
    outside = (start - 1, second + SECOND, second + SECOND + 1, second + 30 * SECOND, second + MINUTE + 1)
    for created in sorted(inside + outside):
        clock.set(created)
        spend(venue, 1_00)
    clock.set(second + 2 * MINUTE)
    with venue.gateway.db.read() as conn:
        truth = ledger.held_in(conn, venue.id, [("", start), (AGENT, start)])
    with venue.gateway.db.write() as conn:
        conn.execute(
            authorizations.update().where(authorizations.c.venue_id == venue.id).values(hold=authorizations.c.hold + 1)
        )

    with venue.gateway.db.read() as conn:
        read = ledger.held_in(conn, venue.id, [("", start), (AGENT, start)])
    assert [now - then for now, then in zip(read, truth)] == [len(inside), len(inside)]


def _migration(name: str) -> Any:
    """A migration's module, to run one of its steps on a database that is already current."""
    [path] = (_MIGRATIONS / "versions").glob(f"{name}_*.py")
    spec = importlib.util.spec_from_file_location(f"migration_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Histories for the fill (steps of _play): one made 34 days before it, out of its reach, and
# one in the last day.
OLD_STEPS = [(0, 10_00, "a", 0), (1, 20_00, "b", 1), (999, 70_00, "a", 0), (1, 5_00, "b", 3)]
RECENT_STEPS = [(DAY - 7, 30_00, "a", 1), (SECOND + 1, 4_00, "a", 0), (0, 60_00, "b", 2)]


def test_migration_0007_fills_the_second_buckets_of_holds_made_before_it(
    store: str, clock: ManualClock, tmp_path: Path
) -> None:
    # A database of its own: the fill adds buckets for every venue of the database.
    with own_databases(tmp_path) as databases:
        gateway = Gateway(databases.of(store), clock=clock)
        venue = make_venue(gateway)
        venue.policy(require_approval_above=50)
        created = []
        for step in OLD_STEPS:
            _play(venue, clock, *step)
            created.append(clock())
        clock.advance(33 * DAY)
        for step in RECENT_STEPS:
            _play(venue, clock, *step)
            created.append(clock())
        clock.advance(HOUR)
        now = clock()
        # No window reaches further back than the fill: 30 days, and the sweep's margin.
        reach = now - 31 * DAY
        around = {c + shift for c in created for shift in (-1, 0, 1)}
        starts = sorted(start for start in {now - MONTH, now - DAY, *around} if start >= reach)

        def ledger_against_the_rows(conn: Any) -> list[tuple[int, int]]:
            return [
                (ledger.held_since(conn, venue.id, scope, start), _brute_held(venue, conn, scope, start))
                for scope in ("", "a", "b")
                for start in starts
            ]

        with gateway.db.write() as conn:
            conn.execute(spend_buckets.delete().where(spend_buckets.c.width == SECOND))
            assert any(read != exact for read, exact in ledger_against_the_rows(conn))
            _migration("0007").fill_second_buckets(conn, reach)
            assert all(read == exact for read, exact in ledger_against_the_rows(conn))
            seconds = spend_buckets.c.width == SECOND
            earliest = conn.execute(select(func.min(spend_buckets.c.start)).where(seconds)).scalar_one()
            assert earliest >= reach
