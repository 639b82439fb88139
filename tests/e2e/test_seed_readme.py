"""Every example of the seed's SDK page, run with our client against a served gateway and embedded.

The seed page (shared/reference/seed-sdk-page.md) is the compatibility target: its quick
start, its method and policy snippets, the five checks of its table with their examples,
the lifecycle statuses, the verify URL, AgenitryError's attributes, create_agenitry and
the type aliases. Each runs as the page writes it, with only the key, the venue and the
address filled in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, get_args

import httpx
import pytest

from agenitry import (
    NO_LIMIT,
    Agenitry,
    AgenitryError,
    AuthorizationStatus,
    EventAction,
    EventDirection,
    StatsPeriod,
    create_agenitry,
)
from agenitry.gateway import Database, ManualClock
from support.live import LiveServer
from support.venues import Venue


@pytest.fixture(params=["http", "embedded"])
def agent(request: pytest.FixtureRequest, venue: Venue, database: Database) -> Iterator[Agenitry]:
    """``Agenitry(api_key="ag_...", venue_id="nobo-downtown")`` pointed at the served or the embedded gateway."""
    if request.param == "http":
        live: LiveServer = request.getfixturevalue("live")
        client = Agenitry(api_key=venue.admin_key, venue_id=venue.id, base_url=live.url)
    else:
        client = Agenitry.embedded(database.url, venue_id=venue.id)
    with client:
        yield client


def test_quick_start(agent: Agenitry, capsys: pytest.CaptureFixture[str]) -> None:
    # ── Audit trail ──
    agent.log(action="order_captured", amount=42.50, direction="inbound")
    event = agent.log(action="reservation_booked", amount=0, await_confirmation=True)
    print(event["id"])
    assert agent.flush(30)
    result = agent.events(action="order_captured", limit=10)
    stats = agent.stats(period="7d")
    print(stats["total_inbound"], stats["event_count"])
    assert capsys.readouterr().out == f"{event['id']}\n42.5 2\n"
    assert [e["amount"] for e in result["events"]] == [42.5]

    # ── Spend authority ──
    agent.set_policy(
        agent_id="voice-agent",
        max_single_amount=500,
        max_daily_spend=5000,
        require_approval_above=200,
        allowed_actions=["order_captured", "reservation_booked", "comp_issued"],
    )
    auth = agent.authorize(action="order_captured", amount=127.00, agent_id="voice-agent")
    if auth["approved"]:
        agent.execute(auth["authorization_id"])
        agent.settle(auth["authorization_id"])
    else:
        print(f"Denied: {auth.get('denial_reason')}")
    assert capsys.readouterr().out == ""
    assert agent.get_authorization(auth["authorization_id"])["status"] == "settled"


def test_methods(agent: Agenitry) -> None:
    agent.set_policy(agent_id=None, max_single_amount=500)
    auth = agent.authorize(action="order_captured", amount=127.00)
    assert agent.execute(auth["authorization_id"])["event_id"].startswith("evt_")
    assert agent.settle(auth["authorization_id"])["status"] == "settled"
    second = agent.authorize(action="order_captured", amount=127.00)
    assert agent.reverse(second["authorization_id"])["status"] == "reversed"
    agent.set_policy(agent_id="voice-agent", require_approval_above=200)
    waiting = agent.authorize(action="order_captured", amount=340, agent_id="voice-agent")
    listed = agent.authorizations(status="pending", agent_id="voice-agent")
    assert [a["id"] for a in listed["authorizations"]] == [waiting["authorization_id"]]
    assert agent.get_authorization(auth["authorization_id"])["amount"] == 127.0


def test_policies(agent: Agenitry) -> None:
    agent.set_policy(
        agent_id="voice-agent",  # None = venue-wide default
        max_single_amount=500,  # Max per transaction
        max_daily_spend=5000,  # Rolling 24-hour limit
        max_monthly_spend=50000,  # Rolling 30-day limit
        require_approval_above=200,  # Amount that triggers human approval
        allowed_actions=["order_captured", "reservation_booked", "comp_issued"],
    )
    policies = agent.get_policies()
    [policy] = policies["policies"]
    assert (policy["max_monthly_spend"], policy["allowed_actions"][-1]) == (50000.0, "comp_issued")
    policy_id = policy["id"]
    agent.delete_policy(policy_id)
    assert agent.get_policies()["policies"] == []


def test_the_five_checks_in_order(agent: Agenitry) -> None:
    agent.set_policy(
        agent_id="voice-agent",
        max_single_amount=500,
        max_daily_spend=5000,
        require_approval_above=200,
        allowed_actions=["order_captured", "reservation_booked", "comp_issued"],
    )
    agent.set_policy(agent_id="buyer", max_monthly_spend=50000)

    def code(action: str, amount: float, agent_id: str = "voice-agent") -> Any:
        answer = agent.authorize(action=action, amount=amount, agent_id=agent_id)
        return answer.get("denial_code") or answer["status"]

    assert code("order_captured", 36_000) == "max_single_amount"  # $36K order blocked by $500 limit
    assert code("refund_issued", 20) == "action_not_allowed"  # refund_issued not in whitelist
    for _ in range(10):
        assert code("order_captured", 200) == "approved"
    for _ in range(15):
        assert code("comp_issued", 200) == "approved"
    assert code("order_captured", 150) == "max_daily_spend"  # would exceed $5K/day
    assert code("purchase_order", 49_000, "buyer") == "approved"
    assert code("purchase_order", 1_001, "buyer") == "max_monthly_spend"  # would exceed $50K/month
    # An update keeps the limits it leaves out: the spent daily limit goes only when removed.
    agent.set_policy(agent_id="voice-agent", max_daily_spend=NO_LIMIT)
    assert code("order_captured", 340) == "pending"  # $340 order needs owner approval (threshold: $200)


def test_every_lifecycle_status(agent: Agenitry) -> None:
    agent.set_policy(agent_id=None, max_single_amount=500, require_approval_above=200)
    seen = set()
    pending = agent.authorize(action="order_captured", amount=340)
    seen.add(pending["status"])
    seen.add(agent.approve(pending["authorization_id"])["status"])
    seen.add(agent.execute(pending["authorization_id"])["status"])
    seen.add(agent.settle(pending["authorization_id"])["status"])
    seen.add(agent.authorize(action="order_captured", amount=900)["status"])
    other = agent.authorize(action="order_captured", amount=50)
    seen.add(agent.reverse(other["authorization_id"])["status"])
    assert seen == set(get_args(AuthorizationStatus)) - {"expired"}


def test_an_approval_not_executed_within_five_minutes_expires(
    live: LiveServer, venue: Venue, clock: ManualClock
) -> None:
    # Over HTTP only: the served gateway's clock is the test's to move.
    agent = Agenitry(api_key=venue.admin_key, venue_id=venue.id, base_url=live.url)
    with agent:
        agent.set_policy(agent_id=None, max_single_amount=500)
        auth = agent.authorize(action="order_captured", amount=127.00)
        clock.advance(5 * 60 * 1000 + 1)
        assert agent.get_authorization(auth["authorization_id"])["status"] == "expired"


def test_verify_url(agent: Agenitry, venue: Venue, request: pytest.FixtureRequest) -> None:
    event = agent.log(action="order_captured", amount=42.50, await_confirmation=True)
    url = agent.verify_url(event["id"])
    assert url.endswith(f"/verify/{venue.id}/{event['id']}")
    if "http" in request.node.callspec.id:
        page = httpx.get(url)
        assert page.status_code == 200 and "order_captured" in page.text and "$42.50" in page.text


def test_agenitry_error(agent: Agenitry) -> None:
    with pytest.raises(AgenitryError) as failed:
        agent.execute("auth_unknown")
    assert (failed.value.status, failed.value.code) == (404, "API")
    assert failed.value.body is not None and failed.value.body["code"] == "authorization_not_found"
    nowhere = Agenitry(api_key="ag_your_key", venue_id="nobo-downtown", base_url="http://127.0.0.1:9", max_retries=0)
    with nowhere, pytest.raises(AgenitryError) as unreachable:
        nowhere.stats()
    assert (unreachable.value.status, unreachable.value.body, unreachable.value.code) == (0, None, "NETWORK")


def test_create_agenitry_and_the_type_aliases(live: LiveServer, venue: Venue) -> None:
    with create_agenitry(venue.admin_key, venue.id, base_url=live.url, agent_id="voice-agent") as agent:
        assert isinstance(agent, Agenitry) and agent.agent_id == "voice-agent"
        assert agent.stats()["period"] == "today"
    assert get_args(EventAction) == (
        "order_captured",
        "reservation_booked",
        "price_changed",
        "item_86d",
        "comp_issued",
        "purchase_order",
    )
    assert get_args(EventDirection) == ("inbound", "outbound", "internal")
    assert get_args(StatsPeriod) == ("today", "7d", "30d", "all")
    assert set(get_args(AuthorizationStatus)) == {
        "pending",
        "approved",
        "denied",
        "expired",
        "reversed",
        "executed",
        "settled",
    }
