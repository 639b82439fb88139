"""openai-agents: the gateway decides needs_approval and the interruptions; RunHooks log executed calls.

A scripted model (agents.testing) calls a gated tool. Pinned: an amount under the
threshold needs no approval and runs once; a pending one interrupts the run, a run state
saved to a string and restored with a fresh gate (another process) finds the same
authorization instead of asking again, and runs once the owner approved; the hooks log
exactly the calls that executed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent, Runner, RunState, set_tracing_disabled
from agents.testing import ScriptedModel, assistant_message, function_call

from agenitry import Agenitry
from agenitry.openai.agents import AgenitryRunHooks, ApprovalGate
from support.live import LiveServer
from support.venues import Venue


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def agent_client(venue: Venue, live: LiveServer) -> Iterator[Agenitry]:
    set_tracing_disabled(True)
    venue.policy(max_single_amount=500, require_approval_above=200)
    with Agenitry(venue.agent_key("buyer"), venue.id, base_url=live.url, max_retries=0) as client:
        yield client


def build(gate: ApprovalGate, orders: list[tuple[str, float]], amount: float) -> Agent[Any]:
    def order(item: str, total: float) -> str:
        """Order from the supplier."""
        orders.append((item, total))
        return f"ordered {item}"

    tool = gate.function_tool(order, action="purchase_order", amount="total")
    model = ScriptedModel(
        [[function_call("order", {"item": "tuna", "total": amount}, call_id="call_tuna")], [assistant_message("done")]]
    )
    return Agent(name="buyer", tools=[tool], model=model)


def executed_tool_calls(venue: Venue, client: Agenitry) -> list[str]:
    client.flush()
    events = venue.gateway.list_events(venue.admin, venue.id, action="tool_call")["events"]
    return [e["context"]["outcome"] for e in events]


@pytest.mark.anyio
async def test_under_the_threshold_runs_without_approval_and_is_logged(agent_client: Agenitry, venue: Venue) -> None:
    orders: list[tuple[str, float]] = []
    gate = ApprovalGate(agent_client)
    result = await Runner.run(build(gate, orders, 90), "order tuna", hooks=AgenitryRunHooks(agent_client))
    assert result.interruptions == []
    assert result.final_output == "done"
    assert orders == [("tuna", 90)]
    [record] = venue.gateway.list_authorizations(venue.admin)["authorizations"]
    assert record["status"] == "executed"
    assert executed_tool_calls(venue, agent_client) == ["ok"]


@pytest.mark.anyio
async def test_a_saved_run_resumes_elsewhere_on_the_same_authorization(agent_client: Agenitry, venue: Venue) -> None:
    orders: list[tuple[str, float]] = []
    first_gate = ApprovalGate(agent_client)
    agent = build(first_gate, orders, 340)
    result = await Runner.run(agent, "order tuna", hooks=AgenitryRunHooks(agent_client))
    assert len(result.interruptions) == 1
    authorization_id = first_gate.authorizations["call_tuna"]
    saved = result.to_state().to_string()
    assert orders == []
    assert executed_tool_calls(venue, agent_client) == []  # a pending call did not execute

    # Another process: a fresh gate and agent, the state restored from its string.
    gate = ApprovalGate(agent_client)
    agent = build(gate, orders, 340)
    restored = await RunState.from_string(agent, saved)

    class Saved:
        def to_state(self) -> Any:
            return restored

    state, waiting = await gate.resolve(Saved())
    assert len(waiting) == 1  # the owner has not decided: it stays undecided
    assert gate.authorizations["call_tuna"] == authorization_id

    venue.gateway.approve(venue.admin, authorization_id)
    state, waiting = await gate.resolve(Saved())
    assert waiting == []
    final = await Runner.run(agent, state, hooks=AgenitryRunHooks(agent_client))
    assert final.final_output == "done"
    assert orders == [("tuna", 340)]
    [record] = venue.gateway.list_authorizations(venue.admin)["authorizations"]
    assert (record["authorization_id"], record["status"]) == (authorization_id, "executed")
    assert executed_tool_calls(venue, agent_client) == ["ok"]


@pytest.mark.anyio
async def test_a_denied_spend_needs_no_approval_and_tells_the_model_why(agent_client: Agenitry, venue: Venue) -> None:
    orders: list[tuple[str, float]] = []
    gate = ApprovalGate(agent_client)
    result = await Runner.run(build(gate, orders, 3600), "order tuna")
    assert result.interruptions == []
    outputs = [str(item.output) for item in result.new_items if getattr(item, "type", "") == "tool_call_output_item"]
    assert outputs == [
        "denied: Amount $3,600.00 exceeds the single-transaction limit of $500.00 for the venue. Do not spend."
    ]
    assert orders == []
