"""``GatedToolNode``: LangGraph's ToolNode that logs every call and gates the spending tools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from langchain_core.tools import BaseTool

from agenitry.langchain._gate import Gates, ToolCallGate
from langgraph.prebuilt import ToolNode


class GatedToolNode(ToolNode):
    """A ``ToolNode`` whose spending tools run only when the gateway approves.

    >>> tools = GatedToolNode([order_food, lookup_menu], client=client,  # doctest: +SKIP
    ...     spending={"order_food": Gate("order_captured", amount="total", settle=True)})

    Approved → the tool runs and the authorization is executed (reversed if the tool
    fails); denied → an error ToolMessage with the reason; pending → ``interrupt()`` with
    the authorization (compile the graph with a checkpointer). On resume the node runs
    again: the authorize request is repeated with the same Idempotency-Key (thread +
    tool_call_id), so it gets the same authorization back, reads its status now, and runs
    the tool only if the gateway approved it — never twice, never on the resume value.
    """

    def __init__(
        self,
        tools: Sequence[Union[BaseTool, Callable[..., Any]]],
        *,
        client: Any,
        spending: Optional[Gates] = None,
        pause: bool = True,
        log_calls: bool = True,
        agent_id: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        self.gate = ToolCallGate(client, spending, pause=pause, log_calls=log_calls, agent_id=agent_id)
        super().__init__(tools, wrap_tool_call=self.gate.wrap, awrap_tool_call=self.gate.awrap, **kwargs)
