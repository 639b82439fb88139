"""openai-agents: the gateway decides needs_approval and the interruptions; RunHooks log executed calls.

A scripted model (agents.testing) calls a gated tool. Pinned: an amount under the
threshold needs no approval and runs once; a pending one interrupts the run, a run state
saved to a string and restored with a fresh client and gate (another process) finds the
same authorization instead of asking again, and runs once the owner approved, once only;
the same call id with other arguments is a new decision; a model-caused problem (a bad
amount, the gateway out of reach) is an answer the model reads, never an exception out
of ``Runner.run``; a call that already ran is told so, never "go ahead".
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


def build(gate: ApprovalGate, orders: list[tuple[str, float]], amount: Any, call_id: str = "call_tuna") -> Agent[Any]:
    def order(item: str, total: float) -> str:
        """Order from the supplier."""
        orders.append((item, total))
        return f"ordered {item}"

    tool = gate.function_tool(order, action="purchase_order", amount="total")
    model = ScriptedModel(
        [[function_call("order", {"item": "tuna", "total": amount}, call_id=call_id)], [assistant_message("done")]]
    )
    return Agent(name="buyer", tools=[tool], model=model)


def executed_tool_calls(venue: Venue, client: Agenitry) -> list[str]:
    client.flush()
    events = venue.gateway.list_events(venue.admin, venue.id, action="tool_call")["events"]
    return [e["context"]["outcome"] for e in sorted(events, key=lambda e: e["sequence"])]


def tool_outputs(result: Any) -> list[str]:
    return [str(item.output) for item in result.new_items if getattr(item, "type", "") == "tool_call_output_item"]


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
    assert executed_tool_calls(venue, agent_client) == ["ran"]


@pytest.mark.anyio
async def test_a_saved_run_resumes_elsewhere_on_the_same_authorization_once(
    agent_client: Agenitry, venue: Venue, live: LiveServer
) -> None:
    orders: list[tuple[str, float]] = []
    first_gate = ApprovalGate(agent_client)
    result = await Runner.run(build(first_gate, orders, 340), "order tuna", hooks=AgenitryRunHooks(agent_client))
    assert len(result.interruptions) == 1
    authorization_id = first_gate.authorizations["call_tuna"]
    saved = result.to_state().to_string()
    assert orders == []
    assert executed_tool_calls(venue, agent_client) == []  # a pending call did not execute

    # Another process: a fresh client, gate and agent; the state restored from its string.
    with Agenitry(venue.agent_key("buyer"), venue.id, base_url=live.url, max_retries=0) as restarted:
        gate = ApprovalGate(restarted)
        agent = build(gate, orders, 340)
        state, waiting = await gate.resolve(await RunState.from_string(agent, saved))
        assert len(waiting) == 1  # the owner has not decided: it stays undecided
        assert gate.authorizations["call_tuna"] == authorization_id

        venue.gateway.approve(venue.admin, authorization_id)
        state, waiting = await gate.resolve(await RunState.from_string(agent, saved))
        assert waiting == []
        final = await Runner.run(agent, state, hooks=AgenitryRunHooks(restarted))
        assert final.final_output == "done"
        assert tool_outputs(final) == ["ordered tuna"]

        # The saved state resumed a second time: the gateway says it ran; it is not repeated.
        agent = build(gate, orders, 340)
        state, waiting = await gate.resolve(await RunState.from_string(agent, saved))
        again = await Runner.run(agent, state)
        [told] = tool_outputs(again)
        assert told.startswith(f"Already done: this call was carried out under authorization {authorization_id}")
        restarted.flush()
    assert orders == [("tuna", 340)]
    [record] = venue.gateway.list_authorizations(venue.admin)["authorizations"]
    assert (record["authorization_id"], record["status"]) == (authorization_id, "executed")
    assert executed_tool_calls(venue, agent_client) == ["ran"]


@pytest.mark.anyio
async def test_the_same_call_id_with_changed_arguments_is_a_new_decision(agent_client: Agenitry, venue: Venue) -> None:
    orders: list[tuple[str, float]] = []
    gate = ApprovalGate(agent_client)
    first = await Runner.run(build(gate, orders, 90), "order tuna")
    edited = await Runner.run(build(gate, orders, 120), "order tuna")  # the same call id, another amount
    assert (first.final_output, edited.final_output) == ("done", "done")
    assert orders == [("tuna", 90), ("tuna", 120)]
    records = venue.gateway.list_authorizations(venue.admin)["authorizations"]
    assert sorted((float(r["amount"]), r["status"]) for r in records) == [(90.0, "executed"), (120.0, "executed")]


@pytest.mark.anyio
async def test_an_executed_call_run_again_is_told_it_was_done(agent_client: Agenitry, venue: Venue) -> None:
    orders: list[tuple[str, float]] = []
    gate = ApprovalGate(agent_client)
    await Runner.run(build(gate, orders, 90), "order tuna")
    again = await Runner.run(build(gate, orders, 90), "order tuna")
    [told] = tool_outputs(again)
    assert told == (
        f"Already done: this call was carried out under authorization {gate.authorizations['call_tuna']} "
        "(executed); it is not repeated."
    )
    assert orders == [("tuna", 90)]


@pytest.mark.anyio
@pytest.mark.parametrize("total", [True, "450", -5], ids=repr)
async def test_a_bad_amount_is_an_answer_not_an_exception(agent_client: Agenitry, venue: Venue, total: Any) -> None:
    orders: list[tuple[str, float]] = []
    result = await Runner.run(build(ApprovalGate(agent_client), orders, total), "order tuna")
    assert result.final_output == "done"
    [told] = tool_outputs(result)
    assert told.startswith("order was not run: total ")
    assert told.endswith("Nothing was authorized; call it again with corrected arguments.")
    assert orders == []
    assert venue.gateway.list_authorizations(venue.admin)["authorizations"] == []


@pytest.mark.anyio
async def test_an_unreachable_gateway_is_an_answer_not_an_exception(venue: Venue) -> None:
    set_tracing_disabled(True)
    orders: list[tuple[str, float]] = []
    offline = Agenitry(venue.agent_key("buyer"), venue.id, base_url="http://127.0.0.1:9", max_retries=0)
    result = await Runner.run(build(ApprovalGate(offline), orders, 90), "order tuna")
    offline.close(timeout=0.5)
    assert offline.dropped_events == 0  # the call's own record waits in the spool for the next client
    assert result.final_output == "done"
    [told] = tool_outputs(result)
    assert told.startswith("order was not run: the spending gateway could not be reached")
    assert orders == []


@pytest.mark.anyio
async def test_a_denied_spend_needs_no_approval_and_tells_the_model_why(agent_client: Agenitry, venue: Venue) -> None:
    orders: list[tuple[str, float]] = []
    gate = ApprovalGate(agent_client)
    result = await Runner.run(build(gate, orders, 3600), "order tuna")
    assert result.interruptions == []
    [told] = tool_outputs(result)
    assert told.startswith(
        "Not authorized (denied): Amount $3,600.00 exceeds the single-transaction limit of $500.00 for the venue."
    )
    assert orders == []
