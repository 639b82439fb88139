"""openai-agents: spend approval from the gateway, and every executed tool call logged.

>>> gate = ApprovalGate(agent_client)  # doctest: +SKIP
>>> order = gate.function_tool(order_supplies, action="purchase_order", amount="total")  # doctest: +SKIP
>>> agent = Agent(name="chef", tools=[order])  # doctest: +SKIP
>>> result = await Runner.run(agent, "order salmon", hooks=AgenitryRunHooks(agent_client))  # doctest: +SKIP
>>> if result.interruptions:  # the owner decides in the gateway; later:  # doctest: +SKIP
...     state, waiting = await gate.resolve(result)
...     result = await Runner.run(agent, state)

A gated tool is core's gated call (:mod:`agenitry.integration`) in openai-agents' shape:
``needs_approval`` asks the gateway (:func:`~agenitry.integration.adecide`, keyed by
:func:`~agenitry.integration.call_key`) and interrupts the run only while the owner has
not decided; the tool's invoke runs the call (:func:`~agenitry.integration.arun_gated`):
it runs only under the approved authorization's claim, at most once, and answers the
model with core's sentence otherwise (denied, invalid amount, gateway unreachable,
already done). :meth:`ApprovalGate.resolve` approves or rejects interruptions by what the
gateway says now, never by the caller's word.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Optional

from agents import FunctionTool, RunContextWrapper, RunHooks, RunState
from agents import function_tool as _function_tool
from agents.tool_context import ToolContext

from agenitry.integration import (
    AmountSpec,
    Client,
    GatedCall,
    GateOutcome,
    adecide,
    arun_gated,
    call_key,
    invalid_text,
    record_tool_call,
)

__all__ = ["AgenitryRunHooks", "ApprovalGate"]

#: How a gated tool builds the request of one call (arguments, call id).
Requester = Callable[[dict[str, Any], str], GatedCall]


class _GatedTool(FunctionTool):
    """A FunctionTool made by :class:`ApprovalGate`: its calls are recorded by the gated call itself."""


def _arguments(raw: Optional[str]) -> Optional[dict[str, Any]]:
    """The call's arguments as the model wrote them, or None when they are not a JSON object."""
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _not_an_object(tool: str) -> str:
    return invalid_text(tool, "its arguments are not a JSON object")


class ApprovalGate:
    """Spending tools for openai-agents whose approval comes from the Agenitry gateway.

    ``scope``: what makes a call id unique (a conversation or run id); None, the default,
    when call ids are unique alone (OpenAI's are). The same call (scope, call id, tool,
    arguments) always continues the same authorization, in any process.
    """

    def __init__(self, client: Client, *, agent_id: Optional[str] = None, scope: Optional[str] = None) -> None:
        self.client = client
        self.agent_id = agent_id
        self.scope = scope
        #: Authorization ids by tool call id (what each call was decided under), as this gate saw them.
        self.authorizations: dict[str, str] = {}
        #: For each gated tool: the request of one of its calls (to resolve interruptions of a restored state).
        self._requests: dict[str, Requester] = {}

    def function_tool(
        self,
        fn: Callable[..., Any],
        *,
        action: str,
        amount: AmountSpec,
        name: Optional[str] = None,
        description: Optional[str] = None,
    ) -> FunctionTool:
        """``fn`` as a FunctionTool that needs the gateway's approval (``needs_approval`` asks it)."""
        tool_name = name or fn.__name__
        # No failure_error_function: a failing body must raise into the gated call, which releases it.
        plain = _function_tool(
            fn, name_override=tool_name, description_override=description, failure_error_function=None
        )

        def request(arguments: dict[str, Any], call_id: str) -> GatedCall:
            return GatedCall(
                action,
                amount,
                arguments,
                tool=tool_name,
                agent_id=self.agent_id,
                key=call_key(self.scope, call_id, tool_name, arguments),
                extra={"tool_call_id": call_id},
            )

        async def needs_approval(context: RunContextWrapper[Any], arguments: dict[str, Any], call_id: str) -> bool:
            # Only the owner's pending decision stops the run; every other outcome (denied, a
            # bad amount, the gateway out of reach) is the tool's to answer the model.
            return (await self._decide(request(arguments, call_id), call_id)).kind == "pending"

        async def invoke(context: ToolContext[Any], raw: str) -> Any:
            arguments = _arguments(raw)
            if arguments is None:
                return _not_an_object(tool_name)
            call_id = context.tool_call_id
            outcome = await arun_gated(
                self.client, request(arguments, call_id), lambda: plain.on_invoke_tool(context, raw)
            )
            self._note(call_id, outcome)
            return outcome.result if outcome.kind == "ran" else outcome.message

        self._requests[tool_name] = request
        return _GatedTool(
            name=plain.name,
            description=plain.description,
            params_json_schema=plain.params_json_schema,
            on_invoke_tool=invoke,
            strict_json_schema=plain.strict_json_schema,
            needs_approval=needs_approval,
        )

    async def resolve(self, result: Any) -> tuple[RunState[Any], list[Any]]:
        """Approve or reject a run's interruptions by the gateway's current decision.

        ``result``: a run result, or a RunState (one restored with ``RunState.from_string``).
        Approved → approved (the tool still runs only under the gateway's claim);
        pending, or the gateway out of reach → returned undecided; anything else (denied,
        expired, already done, an invalid amount) → rejected with the sentence the model reads.
        Returns the state to run again and the interruptions still undecided.
        """
        state: RunState[Any] = result if isinstance(result, RunState) else result.to_state()
        waiting = []
        for item in state.get_interruptions():
            request = self._requests.get(str(item.name))
            if request is None:
                waiting.append(item)  # not one of this gate's tools
                continue
            arguments = _arguments(item.arguments)
            if arguments is None:
                state.reject(item, rejection_message=_not_an_object(str(item.name)))
                continue
            call_id = str(item.call_id)
            outcome = await self._decide(request(arguments, call_id), call_id)
            if outcome.kind == "approved":
                state.approve(item)
            elif outcome.kind in ("pending", "unavailable"):
                waiting.append(item)
            else:
                state.reject(item, rejection_message=outcome.message)
        return state, waiting

    async def _decide(self, request: GatedCall, call_id: str) -> GateOutcome:
        outcome = await adecide(self.client, request)
        self._note(call_id, outcome)
        return outcome

    def _note(self, call_id: str, outcome: GateOutcome) -> None:
        if outcome.authorization_id is not None:
            self.authorizations[call_id] = outcome.authorization_id


class AgenitryRunHooks(RunHooks[Any]):
    """Log every tool call that executes as a ``tool_call`` event (name, arguments, duration, outcome).

    Calls of an :class:`ApprovalGate`'s tools are left out: the gated call records them
    itself, with their outcome and authorization.
    """

    def __init__(self, client: Client, *, agent_id: Optional[str] = None) -> None:
        self.client = client
        self.agent_id = agent_id
        self._started: dict[str, float] = {}

    @staticmethod
    def _key(context: Any, tool: Any) -> str:
        return str(getattr(context, "tool_call_id", None) or getattr(tool, "name", "tool"))

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        """Note when the call started."""
        if not isinstance(tool, _GatedTool):
            self._started[self._key(context, tool)] = time.perf_counter()

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: Any) -> None:
        """Record the executed call."""
        if isinstance(tool, _GatedTool):
            return
        started = self._started.pop(self._key(context, tool), time.perf_counter())
        raw = getattr(context, "tool_arguments", None)
        arguments = _arguments(raw)
        call_id = getattr(context, "tool_call_id", None)
        record_tool_call(
            self.client,
            str(getattr(tool, "name", "tool")),
            arguments if arguments is not None else {"raw": raw or ""},
            (time.perf_counter() - started) * 1000,
            "ok",
            None,
            self.agent_id,
            extra={"tool_call_id": call_id} if call_id else None,
        )
