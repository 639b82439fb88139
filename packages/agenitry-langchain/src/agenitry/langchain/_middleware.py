"""``AgenitryMiddleware``: gating and logging for ``langchain.agents.create_agent``."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Callable, Optional

from agenitry.langchain._gate import Gates, Result, ToolCallGate
from langchain.agents.middleware import AgentMiddleware
from langchain.agents.middleware.types import ToolCallRequest


class AgenitryMiddleware(AgentMiddleware):
    """Log every tool call of the agent and gate the spending tools named in ``spending``.

    >>> agent = create_agent(model, tools=[order_food, lookup_menu], checkpointer=InMemorySaver(),  # doctest: +SKIP
    ...     middleware=[AgenitryMiddleware(client, spending={"order_food": Gate("order_captured", "total")})])

    Approved → the tool runs, then the authorization is executed (reversed if the tool
    fails); denied → ``ToolMessage(status="error")`` with the reason; pending →
    ``interrupt()`` with the authorization (needs a checkpointer; ``pause=False`` tells the
    model instead). Resume with any ``Command(resume=...)``: the middleware reads the
    authorization again and acts on what the gateway says, never on the resume value.
    List it first in ``middleware`` so it sees calls other middleware blocks.
    """

    def __init__(
        self,
        client: Any,
        spending: Optional[Gates] = None,
        *,
        pause: bool = True,
        log_calls: bool = True,
        agent_id: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.gate = ToolCallGate(client, spending, pause=pause, log_calls=log_calls, agent_id=agent_id)

    def wrap_tool_call(self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Result]) -> Result:
        return self.gate.wrap(request, handler)

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[Result]]
    ) -> Result:
        return await self.gate.awrap(request, handler)
