"""Fixtures for the LangChain and LangGraph adapter tests: an embedded gateway with a fresh venue
per test, and a scripted tool-calling chat model. Each folder's conftest imports them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from agenitry import Agenitry, AsyncAgenitry

AGENT = "voice-agent"
#: Up to $1,000 a spend, the owner approves above $100, orders and bookings only.
POLICY: dict[str, Any] = {
    "max_single_amount": 1000,
    "require_approval_above": 100,
    "allowed_actions": ["order_captured", "reservation_booked"],
}


class ScriptedModel(GenericFakeChatModel):
    """A chat model that answers from a script and accepts tools (no fake in langchain-core does)."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self


def _turn(turn: Any) -> AIMessage:
    if isinstance(turn, AIMessage):
        return turn
    calls = turn if isinstance(turn, list) else [turn]
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"} for name, args, call_id in calls],
    )


@pytest.fixture
def model() -> Callable[..., ScriptedModel]:
    """``model(("order_food", {...}, "call_1"), ...)``: one tool-calling turn per argument, then "All done."."""

    def make(*turns: Any) -> ScriptedModel:
        return ScriptedModel(messages=iter([*(_turn(turn) for turn in turns), AIMessage(content="All done.")]))

    return make


@pytest.fixture(scope="session")
def embedded_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "sqlite:///" + str(tmp_path_factory.mktemp("adapter") / "agenitry.db")


@pytest.fixture
def venue_id() -> str:
    return f"ad-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(embedded_url: str, venue_id: str) -> Iterator[Agenitry]:
    """The venue's operator, in-process, acting for the voice agent; the policy is set venue-wide."""
    with Agenitry.embedded(embedded_url, venue_id=venue_id, agent_id=AGENT) as agent:
        agent.set_policy(agent_id=None, **POLICY)
        yield agent


@pytest.fixture
async def aclient(embedded_url: str, venue_id: str) -> Any:
    agent = AsyncAgenitry.embedded(embedded_url, venue_id=venue_id, agent_id=AGENT)
    await agent.set_policy(agent_id=None, **POLICY)
    yield agent
    await agent.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def recorded(client: Agenitry) -> Callable[[], list[dict[str, Any]]]:
    """The venue's recorded tool calls (their contexts), oldest first."""

    def read() -> list[dict[str, Any]]:
        assert client.flush(timeout=10)
        events = client.events(agent_id=None, action="tool_call", limit=200)["events"]
        return [event["context"] for event in sorted(events, key=lambda event: event["sequence"])]

    return read
