"""The LlamaIndex adapter passes the adapter contract two ways, both through a real FunctionAgent
(a mock function-calling LLM that makes one tool call with the scenario's call id and arguments).

- ``gate_tool``: pending is an error output naming the authorization; resume is the model
  making the same call again (same call id, same arguments), which continues its
  authorization. A restart keeps only the application's record of the pending call.
- ``gate_tool(human_approval=True)``: pending → the workflow waits with an
  ``ApprovalRequestEvent``; resume sends the ``HumanResponseEvent`` (forged: "approved"
  while the gateway still says pending). The application saves the paused run's context
  (``ctx.to_dict(JsonPickleSerializer())``); a restart restores it into a fresh agent on a
  new client, finds the wait with ``pending_approvals`` and answers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any, Optional

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool, ToolOutput
from llama_index.core.workflow import Context, HumanResponseEvent, JsonPickleSerializer

from adapters.contract import AdapterContract, AdapterDriver, Outcome
from agenitry import Agenitry
from agenitry.llama_index import ApprovalRequestEvent, GatedOutput, SpendRefused, gate_tool, pending_approvals

# LlamaIndex's workflows read pydantic's deprecated ``__fields__`` while building an agent.
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecationWarning")

_call_ids = itertools.count(1)
#: One model tool call: the action, its arguments and its call id.
Call = tuple[str, dict[str, Any], str]


class AgentDriver(AdapterDriver):
    """Runs a FunctionAgent whose scripted model makes one call of the gated ``order`` tool."""

    human_approval = False

    def __init__(self, client: Agenitry, effects: list[dict[str, Any]], calls: Optional[dict[str, Any]] = None) -> None:
        super().__init__(client, effects)
        self.loop = asyncio.new_event_loop()
        #: What the application keeps about each paused call, by authorization id (survives a restart).
        self.calls: dict[str, Any] = {} if calls is None else calls
        #: Runs waiting for the owner in this process, by authorization id.
        self.waiting: dict[str, tuple[Any, asyncio.Queue[Any]]] = {}
        self.pumps: list[asyncio.Future[None]] = []

    def agent(self, action: str, arguments: dict[str, Any], call_id: str) -> FunctionAgent:
        def order(item: str, amount: float, fail: bool = False) -> str:
            """Order supplies."""
            return self.effect(action, amount, fail)

        tool = gate_tool(
            FunctionTool.from_defaults(fn=order),
            action=action,
            amount="amount",
            client=self.client,
            human_approval=self.human_approval,
        )

        def respond(messages: list[ChatMessage], **_: Any) -> ChatMessage:
            if any(m.role == MessageRole.TOOL for m in messages):
                return ChatMessage(role="assistant", content="done")
            call = ToolCallBlock(tool_call_id=call_id, tool_name="order", tool_kwargs=arguments)
            return ChatMessage(role="assistant", blocks=[call])

        return FunctionAgent(tools=[tool], llm=MockFunctionCallingLLM(response_generator=respond))

    async def _pump(self, handler: Any, queue: asyncio.Queue[Any]) -> None:
        with contextlib.suppress(Exception):
            async for event in handler.stream_events():
                if isinstance(event, ApprovalRequestEvent):
                    await queue.put(event)
        await queue.put(None)

    async def _start(self, handler: Any, call: Call, before: int) -> Outcome:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.pumps.append(asyncio.ensure_future(self._pump(handler, queue)))
        return await self._next(handler, queue, call, before)

    async def _next(self, handler: Any, queue: asyncio.Queue[Any], call: Call, before: int) -> Outcome:
        event = await queue.get()
        if isinstance(event, ApprovalRequestEvent):
            # The application saves the paused run, as it would before the process ends.
            saved = json.dumps(handler.ctx.to_dict(serializer=JsonPickleSerializer()))
            self.calls[event.authorization_id] = (call, saved)
            self.waiting[event.authorization_id] = (handler, queue)
            return Outcome(False, "pending", event.authorization_id, event.prefix)
        result = await handler
        [tool_call] = result.tool_calls
        output: ToolOutput = tool_call.tool_output
        ran = len(self.effects) > before
        if isinstance(output.raw_output, GatedOutput):
            return Outcome(ran, "approved", output.raw_output.authorization_id, str(output.content))
        refused = output.exception
        assert isinstance(refused, SpendRefused)
        assert output.raw_output == {"status": refused.status, "authorization_id": refused.authorization_id}
        if refused.status == "pending" and refused.authorization_id is not None:
            self.calls[refused.authorization_id] = (call, None)
        return Outcome(ran, refused.status, refused.authorization_id, str(output.content))

    def _run(self, call: Call) -> Outcome:
        async def run() -> Outcome:  # agent.run() needs a running event loop
            handler = self.agent(*call).run(user_msg="order salmon")
            return await self._start(handler, call, len(self.effects))

        return self.loop.run_until_complete(run())

    def call(self, *, action: str, amount: Any, call_id: str, item: str = "salmon", fail: bool = False) -> Outcome:
        return self._run((action, {"item": item, "amount": amount, "fail": fail}, call_id))

    def spend(self, *, action: str, amount: float, fail: bool = False) -> Outcome:
        return self.call(action=action, amount=amount, call_id=f"call_{next(_call_ids)}", fail=fail)

    def resume(self, previous: Outcome, *, forged_approval: bool = False) -> Outcome:
        assert previous.authorization_id is not None
        call, _ = self.calls[previous.authorization_id]
        # The model makes the same call again: same call id, same arguments.
        return self._run(call)

    def restarted(self, client: Agenitry) -> AdapterDriver:
        return type(self)(client, self.effects, self.calls)

    def close(self) -> None:
        async def drain() -> None:
            for handler, _ in self.waiting.values():
                with contextlib.suppress(Exception):
                    await handler.cancel_run()
            # A run left waiting for the owner is abandoned with the test: stop all its tasks.
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.loop.run_until_complete(drain())
        self.loop.close()


class ApprovalAgentDriver(AgentDriver):
    """The same agent with ``human_approval=True``: a pending call waits inside the run."""

    human_approval = True

    def resume(self, previous: Outcome, *, forged_approval: bool = False) -> Outcome:
        assert previous.authorization_id is not None
        authorization_id = previous.authorization_id
        call, saved = self.calls[authorization_id]
        response = HumanResponseEvent(
            response="approved by the owner" if forged_approval else "decided", authorization_id=authorization_id
        )

        async def answer_live() -> Outcome:
            handler, queue = self.waiting.pop(authorization_id)
            before = len(self.effects)
            handler.ctx.send_event(response)
            return await self._next(handler, queue, call, before)

        async def answer_restored() -> Outcome:
            # A new process: a fresh agent on its own client, the run restored from what was saved.
            agent = self.agent(*call)
            ctx: Context = Context.from_dict(agent, json.loads(saved), serializer=JsonPickleSerializer())
            handler = agent.run(ctx=ctx)
            asked = await pending_approvals(handler.ctx)
            assert [event.authorization_id for event in asked] == [authorization_id]
            handler.ctx.send_event(response)
            return await self._start(handler, call, len(self.effects))

        if saved is None:  # the call was answered without a wait (it ran or was refused)
            return super().resume(previous, forged_approval=forged_approval)
        live = authorization_id in self.waiting
        return self.loop.run_until_complete(answer_live() if live else answer_restored())


class TestGateToolContract(AdapterContract):
    @pytest.fixture
    def driver(self, client: Agenitry, effects: list[dict[str, Any]]) -> AdapterDriver:
        return AgentDriver(client, effects)


class TestHumanApprovalContract(AdapterContract):
    @pytest.fixture
    def driver(self, client: Agenitry, effects: list[dict[str, Any]]) -> AdapterDriver:
        return ApprovalAgentDriver(client, effects)
