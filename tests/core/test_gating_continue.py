"""Continuing a spend after a pause: what the framework adapters build their resume on.

``spend(idempotency_key=...)`` repeated (a node re-run after a resume, a new process)
gets the first authorization back and decides on its status *now*: still pending →
ApprovalRequired again, approved since → the block runs, already executed → SpendDenied
carrying the executed record (the block never runs twice). ``spend(authorization_id=...)``
continues a known authorization without authorizing again. ``authorize(idempotency_key=)``
replays the first decision. ``record_tool_call(extra=...)`` adds adapter context without
overriding the standard keys. Over HTTP and embedded, sync and async.
"""

from __future__ import annotations

from typing import Any

import pytest

from agenitry import ApprovalRequired, SpendDenied, _gating

pytestmark = pytest.mark.anyio


@pytest.fixture
def store() -> str:
    """SQLite only: the answers are the gateway's, the same on every store."""
    return "sqlite"


async def run_spend(agent: Any, ran: list[str], label: str, *args: Any, **kwargs: Any) -> Any:
    if agent.is_async:
        async with agent.spend(*args, **kwargs) as auth:
            ran.append(label)
    else:
        with agent.spend(*args, **kwargs) as auth:
            ran.append(label)
    return auth


async def test_a_repeated_spend_with_one_key_reuses_its_authorization(connect: Any) -> None:
    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(max_single_amount=500, require_approval_above=100)
        ran: list[str] = []
        with pytest.raises(ApprovalRequired) as first:
            await run_spend(agent, ran, "first", "purchase_order", 250, idempotency_key="thread-1/call-1")
        with pytest.raises(ApprovalRequired) as again:
            await run_spend(agent, ran, "again", "purchase_order", 250, idempotency_key="thread-1/call-1")
        assert again.value.authorization_id == first.value.authorization_id
        await agent.approve(first.value.authorization_id)
        auth = await run_spend(agent, ran, "approved", "purchase_order", 250, idempotency_key="thread-1/call-1")
        assert auth.authorization_id == first.value.authorization_id and auth.executed["status"] == "executed"
        with pytest.raises(SpendDenied) as done:
            await run_spend(agent, ran, "twice", "purchase_order", 250, idempotency_key="thread-1/call-1")
        assert done.value.authorization["status"] == "executed"
        assert ran == ["approved"]
        assert len((await agent.authorizations(agent_id=None))["authorizations"]) == 1


async def test_continuing_a_known_authorization_reads_it_and_never_authorizes(connect: Any) -> None:
    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(max_single_amount=500, require_approval_above=100)
        pending = await agent.authorize("purchase_order", 300)
        ran: list[str] = []
        with pytest.raises(ApprovalRequired):
            await run_spend(agent, ran, "early", "purchase_order", 300, authorization_id=pending["authorization_id"])
        await agent.approve(pending["authorization_id"])
        auth = await run_spend(
            agent, ran, "late", "purchase_order", 300, authorization_id=pending["authorization_id"], settle=True
        )
        assert auth.settled["status"] == "settled" and ran == ["late"]
        refused = await agent.authorize("purchase_order", 200)
        await agent.deny(refused["authorization_id"])
        with pytest.raises(SpendDenied):
            await run_spend(agent, ran, "denied", "purchase_order", 200, authorization_id=refused["authorization_id"])
        assert ran == ["late"]
        assert len((await agent.authorizations(agent_id=None))["authorizations"]) == 2


async def test_authorize_with_a_key_replays_the_first_decision(connect: Any) -> None:
    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(max_single_amount=500)
        first = await agent.authorize("purchase_order", 20, idempotency_key="k-1")
        second = await agent.authorize("purchase_order", 20, idempotency_key="k-1")
        other = await agent.authorize("purchase_order", 20, idempotency_key="k-2")
        assert first["authorization_id"] == second["authorization_id"] != other["authorization_id"]


async def test_record_tool_call_takes_adapter_context(connect: Any) -> None:
    async with connect(agent_id="buyer") as agent:
        _gating.record_tool_call(
            agent.client,
            "order_food",
            {"item": "uni"},
            1.5,
            "paused",
            extra={"tool_call_id": "call_1", "authorization_id": "auth_x", "outcome": "overridden?"},
        )
        assert await agent.flush(10)
        [event] = (await agent.events(agent_id=None, action="tool_call"))["events"]
        assert event["context"]["tool_call_id"] == "call_1"
        assert event["context"]["authorization_id"] == "auth_x"
        assert event["context"]["outcome"] == "paused"
