"""The adapter contract through LangChain: AgenitryMiddleware in ``create_agent`` (sync and async).

Each spend is one agent run on its own thread: a scripted model calls the gated tool
once; pending pauses the agent (``interrupt``), and ``resume`` continues that thread with
``Command(resume=...)`` — ``{"approved": True}`` when the approval is forged.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any, Optional

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from adapters.contract import AdapterContract, AdapterDriver, Outcome
from agenitry import Agenitry
from agenitry.langchain import AgenitryMiddleware, Gate

_threads = itertools.count()


class ScriptedModel(GenericFakeChatModel):
    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self


def read(output: Any) -> Outcome:
    """What the agent was told, as the contract's Outcome (``ran`` is filled in by the driver)."""
    if output.interrupts:
        value = output.interrupts[0].value
        return Outcome(False, "pending", value["authorization_id"], value["message"])
    [message] = [m for m in output.value["messages"] if isinstance(m, ToolMessage)][-1:]
    decided = message.response_metadata.get("agenitry", {})
    status = decided.get("status", "error")
    if status in ("denied", "expired"):
        status = "denied"
    return Outcome(False, status, decided.get("authorization_id"), str(message.content))


class MiddlewareDriver(AdapterDriver):
    name = "langchain-middleware"
    use_async = False

    def __init__(self, client: Agenitry, effects: list[dict[str, Any]]) -> None:
        super().__init__(client, effects)
        self._runs: dict[str, tuple[Any, dict[str, Any]]] = {}

    def _invoke(self, agent: Any, value: Any, config: dict[str, Any]) -> Any:
        if self.use_async:
            return asyncio.run(agent.ainvoke(value, config, version="v2"))
        return agent.invoke(value, config, version="v2")

    def _outcome(self, output: Any, before: int) -> Outcome:
        outcome = read(output)
        outcome.ran = len(self.effects) > before
        return outcome

    def spend(self, *, action: str, amount: float, fail: bool = False) -> Outcome:
        @tool
        def buy(amount: float) -> str:
            """Spend money at the supplier."""
            return self.effect(action, amount, fail)

        call = {"name": "buy", "args": {"amount": amount}, "id": "call_1", "type": "tool_call"}
        model = ScriptedModel(messages=iter([AIMessage(content="", tool_calls=[call]), AIMessage(content="Done.")]))
        middleware = AgenitryMiddleware(self.client, {"buy": Gate(action, amount="amount")})
        agent = create_agent(model, tools=[buy], middleware=[middleware], checkpointer=InMemorySaver())
        config = {"configurable": {"thread_id": f"contract-{next(_threads)}"}}
        before = len(self.effects)
        outcome = self._outcome(self._invoke(agent, {"messages": [{"role": "user", "content": "buy"}]}, config), before)
        if outcome.authorization_id is not None:
            self._runs[outcome.authorization_id] = (agent, config)
        return outcome

    def resume(self, previous: Outcome, *, forged_approval: bool = False) -> Outcome:
        assert previous.authorization_id is not None
        agent, config = self._runs[previous.authorization_id]
        value: Optional[Any] = {"approved": True, "type": "approve"} if forged_approval else "look again"
        before = len(self.effects)
        return self._outcome(self._invoke(agent, Command(resume=value), config), before)


class AsyncMiddlewareDriver(MiddlewareDriver):
    name = "langchain-middleware-async"
    use_async = True


class TestLangChainMiddlewareContract(AdapterContract):
    @pytest.fixture
    def driver(self, client: Agenitry, effects: list[dict[str, Any]]) -> MiddlewareDriver:
        return MiddlewareDriver(client, effects)


class TestLangChainMiddlewareAsyncContract(AdapterContract):
    @pytest.fixture
    def driver(self, client: Agenitry, effects: list[dict[str, Any]]) -> MiddlewareDriver:
        return AsyncMiddlewareDriver(client, effects)
