"""LlamaIndex tools on the real gateway: the factories and gate_tool, sync and async.

Pinned: the authorize/log/set_policy tools answer with text a model can act on (and an
agent key cannot set a policy); a gated tool runs its inner tool only when approved and
executes the authorization; denied and pending are ``ToolOutput(is_error=True)`` with
the reason or the authorization id; resuming a pending call re-reads its
authorization and runs it once; a failing inner tool reverses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.tools import FunctionTool

from agenitry import Agenitry, AsyncAgenitry
from agenitry.llama_index import (
    GatedTool,
    create_authorize_tool,
    create_log_event_tool,
    create_set_policy_tool,
    gate_tool,
)
from support.live import LiveServer
from support.venues import Venue


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def agent(venue: Venue, live: LiveServer) -> Iterator[Agenitry]:
    venue.policy(max_single_amount=500, require_approval_above=200)
    with Agenitry(venue.agent_key("buyer"), venue.id, base_url=live.url, max_retries=0) as client:
        yield client


def statuses(venue: Venue) -> list[str]:
    return [a["status"] for a in venue.gateway.list_authorizations(venue.admin)["authorizations"]]


def test_authorize_tool_answers_approved_denied_and_pending(agent: Agenitry, venue: Venue) -> None:
    tool = create_authorize_tool(client=agent)
    assert tool.metadata.name == "authorize_spend"
    assert set(tool.metadata.get_parameters_dict()["properties"]) == {"action", "amount", "reason"}
    approved = tool.call(action="purchase_order", amount=50, reason="salmon")
    denied = tool.call(action="purchase_order", amount=900)
    pending = tool.call(action="purchase_order", amount=300)
    assert sorted(statuses(venue)) == ["approved", "denied", "pending"]
    records = {a["status"]: a for a in venue.gateway.list_authorizations(venue.admin)["authorizations"]}
    assert str(approved.content) == (
        f"APPROVED: purchase_order of 50.00 USD for buyer may go ahead (authorization "
        f"{records['approved']['id']}, valid until {records['approved']['expires_at']})."
    )
    assert str(denied.content) == (
        f"DENIED: Not authorized (denied): {records['denied']['denial_reason']}. Nothing was done "
        f"(authorization {records['denied']['id']}). Do not retry this spend."
    )
    assert "Amount $900.00 exceeds the single-transaction limit" in str(denied.content)
    assert str(pending.content) == (
        f"PENDING: Waiting for the owner's approval: purchase_order of 300.00 USD (authorization "
        f"{records['pending']['id']}). Nothing was done yet; do not ask again, tell the user it needs approval."
    )


def test_the_factories_take_the_seeds_arguments(venue: Venue, live: LiveServer) -> None:
    venue.policy(max_single_amount=500)
    tool = create_authorize_tool(api_key=venue.agent_key("buyer"), venue_id=venue.id, base_url=live.url)
    try:
        assert str(tool.call(action="purchase_order", amount=5).content).startswith("APPROVED: purchase_order of 5.00")
    finally:
        tool.agenitry.close()  # type: ignore[attr-defined]


def test_log_event_and_set_policy_tools(agent: Agenitry, venue: Venue, live: LiveServer) -> None:
    logged = create_log_event_tool(client=agent).call(action="item_86d", reason="out of tuna")
    agent.flush()
    [event] = venue.gateway.list_events(venue.admin, venue.id, action="item_86d")["events"]
    assert str(logged.content) == (
        f"Logged item_86d as event {event['id']}; anyone with this link can verify it: {agent.verify_url(event['id'])}."
    )
    assert event["reason"] == "out of tuna"
    # An agent must never raise its own limit: the gateway refuses, the model reads why.
    refused = create_set_policy_tool(client=agent).call(max_single_amount=10_000)
    assert str(refused.content).startswith("error: the Agenitry gateway refused")
    with Agenitry(venue.admin_key, venue.id, base_url=live.url, max_retries=0) as admin:
        done = create_set_policy_tool(client=admin).call(agent_id="buyer", max_single_amount=20)
    policies = venue.gateway.list_policies(venue.admin)["policies"]
    [policy] = [p for p in policies if p["agent_id"] == "buyer"]
    assert str(done.content) == f"Policy {policy['id']} saved for agent buyer: at most 20 a spend."
    policies = venue.gateway.list_policies(venue.admin)["policies"]
    assert {p["agent_id"] for p in policies} == {None, "buyer"}


class Supplier:
    def __init__(self) -> None:
        self.orders: list[tuple[str, float]] = []

    def tool(self) -> FunctionTool:
        def order(item: str, total: float) -> str:
            """Order from the supplier."""
            if item == "broken":
                raise RuntimeError("supplier API is down")
            self.orders.append((item, total))
            return f"ordered {item}"

        return FunctionTool.from_defaults(fn=order)


def test_gated_tool_runs_only_when_approved(agent: Agenitry, venue: Venue) -> None:
    supplier = Supplier()
    gated = gate_tool(supplier.tool(), action="purchase_order", amount="total", client=agent)
    assert isinstance(gated, GatedTool)
    assert gated.metadata.name == "order"
    ok = gated.call(item="salmon", total=120)
    assert (ok.is_error, ok.content) == (False, "ordered salmon")
    denied = gated.call(item="wagyu", total=3600)
    assert denied.is_error
    assert "Amount $3,600.00 exceeds the single-transaction limit" in str(denied.content)
    assert denied.raw_output == {"status": "denied", "authorization_id": gated.last.authorization_id}
    assert supplier.orders == [("salmon", 120)]
    assert sorted(statuses(venue)) == ["denied", "executed"]


def test_pending_then_resume_runs_once_and_a_second_resume_is_done(agent: Agenitry, venue: Venue) -> None:
    supplier = Supplier()
    gated = gate_tool(supplier.tool(), action="purchase_order", amount="total", client=agent)
    assert isinstance(gated, GatedTool)
    first = gated.call(item="tuna", total=340)
    assert first.is_error
    authorization_id = first.raw_output["authorization_id"]
    assert first.raw_output == {"status": "pending", "authorization_id": authorization_id}
    assert authorization_id in str(first.content)
    assert gated.waiting == {authorization_id: {"item": "tuna", "total": 340}}
    assert gated.resume(authorization_id).raw_output == {"status": "pending", "authorization_id": authorization_id}
    venue.gateway.approve(venue.admin, authorization_id)
    done = gated.resume(authorization_id)
    assert (done.is_error, done.content, done.raw_output.authorization_id) == (False, "ordered tuna", authorization_id)
    assert gated.waiting == {}
    with pytest.raises(KeyError):
        gated.resume(authorization_id)
    assert supplier.orders == [("tuna", 340)]
    assert statuses(venue) == ["executed"]


def test_a_failing_inner_tool_reverses_the_spend(agent: Agenitry, venue: Venue) -> None:
    gated = gate_tool(Supplier().tool(), action="purchase_order", amount="total", client=agent)
    output = gated.call(item="broken", total=40)
    assert output.is_error
    assert "RuntimeError: supplier API is down" in str(output.content)
    assert statuses(venue) == ["reversed"]


def test_a_plain_function_can_be_gated_with_a_computed_amount(agent: Agenitry, venue: Venue) -> None:
    def order(item: str, pounds: int) -> str:
        """Order by the pound."""
        return f"{pounds} lb of {item}"

    gated = gate_tool(order, action="purchase_order", amount=lambda args: args["pounds"] * 12.5, client=agent)
    assert gated.call(item="salmon", pounds=8).content == "8 lb of salmon"
    [record] = venue.gateway.list_authorizations(venue.admin)["authorizations"]
    assert (record["amount"], record["context"]["arguments"]) == (100.0, {"item": "salmon", "pounds": 8})


@pytest.mark.anyio
async def test_async_gating_with_the_async_client(venue: Venue, live: LiveServer) -> None:
    venue.policy(max_single_amount=500, require_approval_above=200)
    calls: list[Any] = []

    async def order(item: str, total: float) -> str:
        """Order, asynchronously."""
        calls.append(item)
        return f"ordered {item}"

    async with AsyncAgenitry(venue.agent_key("buyer"), venue.id, base_url=live.url, max_retries=0) as client:
        gated = gate_tool(
            FunctionTool.from_defaults(async_fn=order), action="purchase_order", amount="total", client=client
        )
        assert (await gated.acall(item="salmon", total=20)).content == "ordered salmon"
        pending = await gated.acall(item="tuna", total=300)
        assert pending.is_error and pending.raw_output["status"] == "pending"
        with pytest.raises(TypeError, match="acall"):
            gated.call(item="salmon", total=20)
        authorize = create_authorize_tool(client=client)
        answer = await authorize.acall(action="purchase_order", amount=900)
        assert str(answer.content).startswith("DENIED: Not authorized (denied): Amount $900.00 exceeds")
    assert calls == ["salmon"]
