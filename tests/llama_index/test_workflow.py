"""Workflow agents: human approval through workflow events, and tool calls logged from spans.

A ReActAgent and a FunctionAgent driven by LlamaIndex's mock LLMs, on the real gateway.
Pinned: pending emits an ``ApprovalRequestEvent`` with the authorization and waits; after
the owner approves and the app answers, the step's replay neither authorizes nor executes
twice; a human "yes" while the owner denied runs nothing. ``instrument()`` records one
``tool_call`` per call (the wait is a pause, not an error or a second call), direct tool
calls too, and nothing after ``uninstrument()``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context, HumanResponseEvent, JsonPickleSerializer

from agenitry import Agenitry
from agenitry.llama_index import ApprovalRequestEvent, gate_tool, instrument, pending_approvals, uninstrument
from support.live import LiveServer
from support.venues import Venue

# LlamaIndex's workflows read pydantic's deprecated ``__fields__`` while building an agent, and
# its ReActAgent calls a Context property the workflows package deprecated.
pytestmark = [
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:is_running called from within a step:DeprecationWarning"),
    pytest.mark.anyio,
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def agent(venue: Venue, live: LiveServer) -> Iterator[Agenitry]:
    venue.policy(max_single_amount=500, require_approval_above=200)
    with Agenitry(venue.agent_key("buyer"), venue.id, base_url=live.url, max_retries=0) as client:
        yield client


def ordering(orders: list[tuple[str, float]]) -> FunctionTool:
    def order(item: str, total: float) -> str:
        """Order from the supplier."""
        orders.append((item, total))
        return f"ordered {item}"

    return FunctionTool.from_defaults(fn=order)


def check_stock(item: str) -> int:
    """Pounds in the walk-in."""
    return 4


def react_llm(total: float) -> MockFunctionCallingLLM:
    def respond(messages: list[ChatMessage], **_: Any) -> ChatMessage:
        if str(messages[-1].content).startswith("Observation:"):
            return ChatMessage(
                role="assistant", content="Thought: I can answer without using any more tools.\nAnswer: done"
            )
        return ChatMessage(
            role="assistant",
            content=f'Thought: order it.\nAction: order\nAction Input: {{"item": "tuna", "total": {total}}}',
        )

    return MockFunctionCallingLLM(response_generator=respond)


def trail(venue: Venue) -> list[str]:
    events = venue.gateway.list_events(venue.admin, venue.id, limit=100)["events"]
    actions = [e["action"] for e in sorted(events, key=lambda e: e["sequence"])]
    return [a for a in actions if a.startswith("authorization.") or a == "purchase_order"]


async def run_with_owner(handler: Any, venue: Venue, decide: str) -> tuple[Any, list[ApprovalRequestEvent]]:
    asked: list[ApprovalRequestEvent] = []
    async for event in handler.stream_events():
        if isinstance(event, ApprovalRequestEvent):
            asked.append(event)
            if decide == "approve":
                venue.gateway.approve(venue.admin, event.authorization_id)
            else:
                venue.gateway.deny(venue.admin, event.authorization_id, reason="not tonight")
            # The human's answer only wakes the agent; "yes" means nothing without the gateway.
            handler.ctx.send_event(HumanResponseEvent(response="yes", authorization_id=event.authorization_id))
    return await handler, asked


async def test_react_agent_waits_for_the_owner_and_the_replay_does_nothing_twice(agent: Agenitry, venue: Venue) -> None:
    orders: list[tuple[str, float]] = []
    tool = gate_tool(ordering(orders), action="purchase_order", amount="total", client=agent, human_approval=True)
    handler = ReActAgent(tools=[tool], llm=react_llm(340)).run(user_msg="order tuna")
    result, asked = await run_with_owner(handler, venue, "approve")
    [event] = asked
    assert event.authorization["status"] == "pending"
    assert event.tool_name == "order" and event.tool_kwargs == {"item": "tuna", "total": 340}
    assert event.authorization_id in event.prefix
    assert str(result) == "done"
    assert orders == [("tuna", 340)]
    [record] = venue.gateway.list_authorizations(venue.admin)["authorizations"]
    assert (record["authorization_id"], record["status"]) == (event.authorization_id, "executed")
    # One request, one approval, one execution: the replayed step asked and ran nothing again.
    assert trail(venue) == [
        "authorization.pending",
        "authorization.approved",
        "authorization.claimed",
        "authorization.executed",
        "purchase_order",
    ]


async def test_a_human_yes_while_the_owner_denied_runs_nothing(agent: Agenitry, venue: Venue) -> None:
    orders: list[tuple[str, float]] = []
    tool = gate_tool(ordering(orders), action="purchase_order", amount="total", client=agent, human_approval=True)
    handler = ReActAgent(tools=[tool], llm=react_llm(340)).run(user_msg="order tuna")
    result, asked = await run_with_owner(handler, venue, "deny")
    assert len(asked) == 1
    assert orders == []
    [call] = result.tool_calls
    assert call.tool_output.is_error
    assert str(call.tool_output.content).startswith("Not authorized (denied): not tonight")


def two_calls_then_done(total: float) -> MockFunctionCallingLLM:
    def respond(messages: list[ChatMessage], **_: Any) -> ChatMessage:
        if any(m.role == MessageRole.TOOL for m in messages):
            return ChatMessage(role="assistant", content="done")
        return ChatMessage(
            role="assistant",
            blocks=[
                ToolCallBlock(tool_call_id="c1", tool_name="check_stock", tool_kwargs={"item": "tuna"}),
                ToolCallBlock(tool_call_id="c2", tool_name="order", tool_kwargs={"item": "tuna", "total": total}),
            ],
        )

    return MockFunctionCallingLLM(response_generator=respond)


def logged(venue: Venue, client: Agenitry) -> list[tuple[str, str]]:
    client.flush()
    events = venue.gateway.list_events(venue.admin, venue.id, action="tool_call", limit=100)["events"]
    return sorted((e["context"]["tool"], e["context"]["outcome"]) for e in events)


@pytest.fixture
def instrumented(agent: Agenitry) -> Iterator[Any]:
    handler = instrument(agent)
    yield handler
    uninstrument(handler)


async def test_instrumentation_logs_each_agent_tool_call_once_through_a_wait(
    agent: Agenitry, venue: Venue, instrumented: Any
) -> None:
    orders: list[tuple[str, float]] = []
    gated = gate_tool(ordering(orders), action="purchase_order", amount="total", client=agent, human_approval=True)
    tools = [FunctionTool.from_defaults(fn=check_stock), gated]
    handler = FunctionAgent(tools=tools, llm=two_calls_then_done(340)).run(user_msg="restock")
    _, asked = await run_with_owner(handler, venue, "approve")
    assert len(asked) == 1
    assert orders == [("tuna", 340)]
    # The gated call is recorded once, by the gated-call flow (its outcome kind), not by the spans.
    assert logged(venue, agent) == [("check_stock", "ok"), ("order", "ran")]


async def test_instrumentation_logs_a_refused_call_once_with_its_outcome(
    agent: Agenitry, venue: Venue, instrumented: Any
) -> None:
    orders: list[tuple[str, float]] = []
    gated = gate_tool(ordering(orders), action="purchase_order", amount="total", client=agent, human_approval=True)
    tools = [FunctionTool.from_defaults(fn=check_stock), gated]
    await FunctionAgent(tools=tools, llm=two_calls_then_done(3600)).run(user_msg="restock")
    assert orders == []
    assert logged(venue, agent) == [("check_stock", "ok"), ("order", "denied")]


def test_direct_tool_calls_are_logged_once_and_not_after_uninstrument(agent: Agenitry, venue: Venue) -> None:
    orders: list[tuple[str, float]] = []
    handler = instrument(agent)
    try:
        FunctionTool.from_defaults(fn=check_stock).call(item="salmon")
        gated = gate_tool(ordering(orders), action="purchase_order", amount="total", client=agent)
        gated.call(item="salmon", total=20)  # the gated call and its inner tool: one record
    finally:
        uninstrument(handler)
    FunctionTool.from_defaults(fn=check_stock).call(item="tuna")
    assert logged(venue, agent) == [("check_stock", "ok"), ("order", "ran")]


async def test_a_run_saved_while_waiting_is_restored_in_a_new_process_and_runs_once(
    agent: Agenitry, venue: Venue, live: LiveServer
) -> None:
    """The docs' recipe: save the paused run with JsonPickleSerializer, restore it into a fresh
    agent on a new client, find the wait with pending_approvals, answer it: one order."""
    orders: list[tuple[str, float]] = []

    def fresh_agent(client: Agenitry) -> FunctionAgent:
        tool = gate_tool(ordering(orders), action="purchase_order", amount="total", client=client, human_approval=True)
        return FunctionAgent(tools=[tool], llm=two_calls_then_done(340))

    handler = fresh_agent(agent).run(user_msg="restock")
    async for event in handler.stream_events():
        if isinstance(event, ApprovalRequestEvent):
            saved = json.dumps(handler.ctx.to_dict(serializer=JsonPickleSerializer()))
            break
    await handler.cancel_run()  # the process ends here
    venue.gateway.approve(venue.admin, event.authorization_id)

    with Agenitry(venue.agent_key("buyer"), venue.id, base_url=live.url, max_retries=0) as restarted:
        again = fresh_agent(restarted)
        restored = again.run(ctx=Context.from_dict(again, json.loads(saved), serializer=JsonPickleSerializer()))
        [waiting] = await pending_approvals(restored.ctx)
        assert (waiting.authorization_id, waiting.tool_kwargs) == (
            event.authorization_id,
            {"item": "tuna", "total": 340},
        )
        restored.ctx.send_event(HumanResponseEvent(response="decided", authorization_id=waiting.authorization_id))
        result = await restored
    assert str(result) == "done"
    assert orders == [("tuna", 340)]
    assert await pending_approvals(restored.ctx) == []
    [record] = venue.gateway.list_authorizations(venue.admin)["authorizations"]
    assert (record["authorization_id"], record["status"]) == (event.authorization_id, "executed")
