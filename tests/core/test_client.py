"""Every method of the client against the real gateway, over HTTP and embedded, sync and async.

One body per behaviour, run four ways (``mode``): a uvicorn gateway on loopback or the
gateway embedded in-process, with ``Agenitry`` or ``AsyncAgenitry``. The answers are
the wire protocol's shapes; agent_id falls back to the client's default in every method
(and to "default" when neither names one); errors arrive as the error tree's classes.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import pytest

from agenitry import (
    NO_LIMIT,
    AgenitryError,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)
from support.venues import Venue

pytestmark = pytest.mark.anyio


@pytest.fixture
def store() -> str:
    """SQLite only: the answers are the gateway's, the same on every store (its own suite runs both);
    PostgreSQL is covered here by test_embedded, test_faults and test_delivery."""
    return "sqlite"


EVENT_ID = re.compile(r"^evt_[a-z2-7]{26}$")


async def test_log_returns_at_once_with_the_id_the_gateway_stores(
    connect: Any, venue: Venue, stored_ids: Callable[..., list[str]]
) -> None:
    async with connect() as agent:
        queued = await agent.log("order_captured", amount=42.50, direction="inbound", context={"table": 7})
        assert set(queued) == {"id", "status", "verify_url"}
        assert EVENT_ID.match(queued["id"]) and queued["status"] == "queued"
        assert queued["verify_url"] == agent.verify_url(queued["id"])
        assert queued["verify_url"].endswith(f"/verify/{venue.id}/{queued['id']}")
        assert await agent.flush(30) is True
        [event] = (await agent.events(agent_id=None, action="order_captured"))["events"]
        assert event["id"] == queued["id"]
        assert (event["amount"], event["direction"], event["context"], event["agent_id"]) == (
            42.5,
            "inbound",
            {"table": 7},
            "default",
        )
        assert agent.delivery_stats().delivered == 1 and agent.dropped_events == 0
    assert stored_ids(venue.id, "order_captured") == [queued["id"]]


async def test_await_confirmation_answers_like_the_gateway(connect: Any, venue: Venue) -> None:
    async with connect() as agent:
        event = await agent.log("reservation_booked", amount=0, await_confirmation=True)
        assert EVENT_ID.match(event["id"])
        assert event["status"] == "logged" and isinstance(event["sequence"], int)
        assert event["verify_url"].endswith(f"/verify/{venue.id}/{event['id']}")
        # Finer than the venue's currency: only the gateway, which knows the currency, refuses it.
        with pytest.raises(UnprocessableEntityError) as refused:
            await agent.log("order_captured", amount=0.001, await_confirmation=True)
        assert refused.value.status == 422 and refused.value.error_code == "invalid_amount"


async def test_an_event_the_gateway_would_refuse_fails_on_the_callers_thread(connect: Any) -> None:
    async with connect() as agent:
        for bad in (
            {"action": "Order Captured"},
            {"action": "order_captured", "amount": -1},
            {"action": "order_captured", "amount": float("nan")},
            {"action": "order_captured", "amount": "12"},
            {"action": "order_captured", "direction": "sideways"},
            {"action": "order_captured", "context": {"when": object()}},
            {"action": "reversal"},
            {"action": "authorization.forged"},
        ):
            with pytest.raises(ValueError):
                await agent.log(**bad)
        assert agent.delivery_stats().queued == 0


async def test_events_filters_and_pages(connect: Any) -> None:
    async with connect(agent_id="voice-agent") as agent:
        for table in (1, 2, 3):
            await agent.log("order_captured", amount=10.0 * table, context={"table": table})
        await agent.log("item_86d", agent_id="kitchen-agent", context={"item": "tuna"})
        assert await agent.flush(30)
        mine = await agent.events()
        assert mine["total"] == 3 and {e["agent_id"] for e in mine["events"]} == {"voice-agent"}
        everyone = await agent.events(agent_id=None)
        # Every agent's events, and the gateway's own record of the venue's admin key.
        assert [e["agent_id"] for e in everyone["events"]][:4] == ["kitchen-agent", *["voice-agent"] * 3]
        page = await agent.events(agent_id=None, limit=2, offset=1)
        assert (page["limit"], page["offset"], page["has_more"], len(page["events"])) == (2, 1, True, 2)
        assert [e["context"] for e in (await agent.events(context={"table": 2}))["events"]] == [{"table": 2}]
        kitchen = await agent.events(agent_id="kitchen-agent", action="item_86d")
        assert [e["direction"] for e in kitchen["events"]] == ["internal"]


async def test_stats_sum_what_was_logged(connect: Any, venue: Venue) -> None:
    async with connect() as agent:
        await agent.log("order_captured", amount=42.5, await_confirmation=True)
        await agent.log("comp_issued", amount=8, agent_id="voice-agent", await_confirmation=True)
        stats = await agent.stats(period="all")
        assert stats["venue_id"] == venue.id and stats["period"] == "all"
        assert (stats["total_inbound"], stats["total_outbound"], stats["event_count"]) == (42.5, 8.0, 2)
        assert stats["by_agent"]["voice-agent"] == {"events": 1, "inbound": 0.0, "outbound": 8.0}
        with pytest.raises(UnprocessableEntityError):
            await agent.stats(period="forever")


async def test_the_seed_lifecycle_approve_execute_settle(connect: Any) -> None:
    async with connect() as agent:
        policy = await agent.set_policy(
            agent_id="voice-agent", max_single_amount=500, max_daily_spend=5000, require_approval_above=200
        )
        assert policy["id"].startswith("pol_") and policy["agent_id"] == "voice-agent"
        auth = await agent.authorize(action="order_captured", amount=127.00, agent_id="voice-agent")
        assert auth["approved"] is True and auth["status"] == "approved" and auth["expires_at"]
        executed = await agent.execute(auth["authorization_id"], actual_amount=120, context={"ticket": 9})
        assert executed["status"] == "executed" and executed["event_id"].startswith("evt_")
        settled = await agent.settle(auth["authorization_id"])
        assert settled == {
            "authorization_id": auth["authorization_id"],
            "status": "settled",
            "settled_at": settled["settled_at"],
        }
        record = await agent.get_authorization(auth["authorization_id"])
        assert (record["status"], record["amount"], record["actual_amount"]) == ("settled", 127.0, 120.0)
        with pytest.raises(ConflictError) as twice:
            await agent.settle(auth["authorization_id"])
        assert twice.value.status == 409 and twice.value.error_code == "invalid_transition"


async def test_denied_and_pending_are_answers_not_errors(connect: Any) -> None:
    async with connect(agent_id="voice-agent") as agent:
        await agent.set_policy(max_single_amount=500, require_approval_above=200)
        denied = await agent.authorize("order_captured", 36_000)
        assert denied["approved"] is False and denied["status"] == "denied"
        assert denied["denial_code"] == "max_single_amount"
        assert "exceeds the single-transaction limit of $500.00" in denied["denial_reason"]
        pending = await agent.authorize("order_captured", 340)
        assert (pending["approved"], pending["status"]) == (False, "pending")
        approved = await agent.approve(pending["authorization_id"], note="regular guest")
        assert approved["status"] == "approved" and approved["note"] == "regular guest"
        other = await agent.authorize("order_captured", 350)
        refused = await agent.deny(other["authorization_id"], reason="too late")
        assert refused["status"] == "denied"
        reversed_ = await agent.reverse(pending["authorization_id"])
        assert reversed_["status"] == "reversed"
        listing = await agent.authorizations(status="denied")
        assert {a["id"] for a in listing["authorizations"]} == {denied["authorization_id"], other["authorization_id"]}
        assert (await agent.authorizations(agent_id=None, status="reversed"))["total"] == 1


async def test_agent_id_falls_back_to_the_clients_default_everywhere(connect: Any) -> None:
    async with connect(agent_id="voice-agent") as agent:
        policy = await agent.set_policy(max_single_amount=100)
        assert policy["agent_id"] == "voice-agent"
        venue_wide = await agent.set_policy(agent_id=None, max_single_amount=1000)
        assert venue_wide["agent_id"] is None
        auth = await agent.authorize("order_captured", 50)
        assert (await agent.get_authorization(auth["authorization_id"]))["agent_id"] == "voice-agent"
        assert (await agent.authorize("order_captured", 150))["denial_code"] == "max_single_amount"
        logged = await agent.log("order_captured", amount=1, await_confirmation=True)
        [event] = [e for e in (await agent.events())["events"] if e["id"] == logged["id"]]
        assert event["agent_id"] == "voice-agent"
        assert (await agent.authorizations())["total"] == 2
        assert (await agent.authorizations(agent_id="someone-else"))["total"] == 0
    async with connect() as anonymous:
        auth = await anonymous.authorize("order_captured", 5)
        assert (await anonymous.get_authorization(auth["authorization_id"]))["agent_id"] == "default"


async def test_policies_list_and_delete(connect: Any) -> None:
    async with connect() as agent:
        first = await agent.set_policy(agent_id="voice-agent", max_daily_spend=5000, allowed_actions=["order_captured"])
        updated = await agent.set_policy(agent_id="voice-agent", max_daily_spend=6000)
        assert updated["id"] == first["id"] and updated["allowed_actions"] == ["order_captured"]
        removed = await agent.set_policy(agent_id="voice-agent", allowed_actions=NO_LIMIT)
        assert (removed["max_daily_spend"], removed["allowed_actions"]) == (6000, None)
        listed = await agent.get_policies()
        assert [p["id"] for p in listed["policies"]] == [first["id"]]
        assert await agent.delete_policy(first["id"]) == {"status": "deleted", "id": first["id"]}
        assert (await agent.get_policies())["policies"] == []
        with pytest.raises(NotFoundError) as missing:
            await agent.delete_policy(first["id"])
        assert missing.value.status == 404 and "not found" in missing.value.message


async def test_a_venue_with_no_policy_denies(connect: Any) -> None:
    async with connect() as agent:
        decision = await agent.authorize("purchase_order", 10)
        assert decision["status"] == "denied" and decision["denial_code"] == "no_policy"


async def test_unknown_authorization_is_not_found(connect: Any) -> None:
    async with connect() as agent:
        with pytest.raises(NotFoundError) as missing:
            await agent.get_authorization("auth_doesnotexist")
        assert isinstance(missing.value, AgenitryError) and missing.value.code == "API"
        assert missing.value.body is not None and missing.value.body["code"] == "authorization_not_found"


async def test_a_closed_client_refuses_to_log(connect: Any) -> None:
    async with connect() as agent:
        pass
    with pytest.raises(AgenitryError, match="closed"):
        await agent.log("order_captured")
