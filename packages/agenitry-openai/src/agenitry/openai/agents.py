"""openai-agents: spend approval from the gateway, and every executed tool call logged.

>>> gate = ApprovalGate(agent_client)  # doctest: +SKIP
>>> order = gate.function_tool(order_supplies, action="purchase_order", amount="total")  # doctest: +SKIP
>>> agent = Agent(name="chef", tools=[order])  # doctest: +SKIP
>>> result = await Runner.run(agent, "order salmon", hooks=AgenitryRunHooks(agent_client))  # doctest: +SKIP
>>> if result.interruptions:  # the owner decides in the gateway; later:  # doctest: +SKIP
...     state, waiting = await gate.resolve(result)
...     result = await Runner.run(agent, state)

``needs_approval`` asks the gateway (one authorization per tool call, keyed by its call
id): pending → the run stops with an interruption. :meth:`ApprovalGate.resolve` approves
or rejects the interruptions by what the gateway says now — never by the caller's word.
The tool's body continues the same authorization, so it runs only when the gateway
approved it, and is executed (or reversed if it raises) exactly once.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Optional

from agents import FunctionTool, RunContextWrapper, RunHooks, RunState
from agents import function_tool as _function_tool
from agents.tool_context import ToolContext

from agenitry import ApprovalRequired, AsyncAgenitry, SpendDenied
from agenitry._base import BaseClient
from agenitry._gating import AmountSpec, record_tool_call, resolve_amount, summarize_arguments

from ._tools import decision_text

__all__ = ["AgenitryRunHooks", "ApprovalGate"]


def _idempotency_key(call_id: str) -> str:
    return f"openai-agents:{call_id}"


class ApprovalGate:
    """Spending tools for openai-agents whose approval comes from the Agenitry gateway."""

    def __init__(self, client: BaseClient, *, agent_id: Optional[str] = None) -> None:
        self.client = client
        self.agent_id = agent_id
        #: Authorization ids by tool call id (what each interruption waits for).
        self.authorizations: dict[str, str] = {}
        #: For each gated tool: how to ask again for a call (after a restart, from a saved RunState).
        self._askers: dict[str, Callable[[dict[str, Any], str], Any]] = {}

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, method)(*args, **kwargs)
        if isinstance(self.client, AsyncAgenitry):
            return await result
        return result

    def _spend(self, action: str, amount: Any, call_id: str, arguments: dict[str, Any], tool: str) -> Any:
        return self.client.spend(  # type: ignore[attr-defined]
            action,
            amount,
            agent_id=self.agent_id,
            context={"tool": tool, "arguments": summarize_arguments(arguments)},
            # The same call id is the same request: a replay reuses the first authorization.
            idempotency_key=_idempotency_key(call_id),
        )

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
        # No failure_error_function: a failing body must raise through the spend, which reverses it.
        plain = _function_tool(
            fn, name_override=tool_name, description_override=description, failure_error_function=None
        )

        def amount_of(arguments: dict[str, Any]) -> Any:
            return resolve_amount(amount, arguments, tool_name)

        async def ask(arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
            """Authorize this call; the same call id always gets the same authorization (idempotency key)."""
            spend = self._spend(action, amount_of(arguments), call_id, arguments, tool_name)
            decision: dict[str, Any] = await self._call(
                "authorize",
                action,
                amount_of(arguments),
                agent_id=self.agent_id,
                context=spend.context,
                idempotency_key=_idempotency_key(call_id),
            )
            authorization_id = decision.get("authorization_id")
            if authorization_id:
                self.authorizations[call_id] = authorization_id
                if decision.get("status") == "pending":
                    # A replay answers with the first decision; the owner may have decided since.
                    decision = await self._call("get_authorization", authorization_id)
            return decision

        async def needs_approval(context: RunContextWrapper[Any], arguments: dict[str, Any], call_id: str) -> bool:
            # Denied needs no approval: the body reads the same authorization and refuses.
            return (await ask(arguments, call_id)).get("status") == "pending"

        self._askers[tool_name] = ask

        async def invoke(context: ToolContext[Any], raw: str) -> Any:
            arguments = json.loads(raw or "{}")
            spend = self._spend(action, amount_of(arguments), context.tool_call_id, arguments, tool_name)
            try:
                async with spend:
                    return await plain.on_invoke_tool(context, raw)
            except (ApprovalRequired, SpendDenied) as refused:
                return decision_text(dict(refused.authorization))
            except Exception as exc:
                reversed_ = " The authorization was reversed; nothing was spent." if spend.reversed else ""
                return f"error: {type(exc).__name__}: {exc}.{reversed_}"

        return FunctionTool(
            name=plain.name,
            description=plain.description,
            params_json_schema=plain.params_json_schema,
            on_invoke_tool=invoke,
            strict_json_schema=plain.strict_json_schema,
            needs_approval=needs_approval,
        )

    async def resolve(self, result: Any) -> tuple[RunState[Any], list[Any]]:
        """Approve or reject a run's interruptions by the gateway's current decision.

        Returns the state to run again and the interruptions still pending (left undecided).
        """
        state: RunState[Any] = result.to_state()
        waiting = []
        for item in state.get_interruptions():
            call_id = _call_id(item)
            authorization_id = self.authorizations.get(call_id)
            asker = self._askers.get(str(getattr(item, "name", None) or getattr(item.raw_item, "name", "")))
            if authorization_id is not None:
                record = await self._call("get_authorization", authorization_id)
            elif asker is not None:
                # A state restored elsewhere: asking again with the call id finds the same authorization.
                record = await asker(json.loads(getattr(item, "arguments", None) or "{}"), call_id)
            else:
                waiting.append(item)  # not one of this gate's tools
                continue
            status = record.get("status")
            if status == "approved":
                state.approve(item)
            elif status == "pending":
                waiting.append(item)
            else:
                state.reject(item, rejection_message=decision_text(record))
        return state, waiting


def _call_id(item: Any) -> str:
    raw = getattr(item, "raw_item", None)
    value = getattr(raw, "call_id", None) or (raw.get("call_id") if isinstance(raw, dict) else None)
    return str(value or getattr(item, "call_id", ""))


class AgenitryRunHooks(RunHooks[Any]):
    """Log every tool call that executes as a ``tool_call`` event (name, arguments, duration, outcome)."""

    def __init__(self, client: BaseClient, *, agent_id: Optional[str] = None) -> None:
        self.client = client
        self.agent_id = agent_id
        self._started: dict[str, float] = {}

    @staticmethod
    def _key(context: Any, tool: Any) -> str:
        return str(getattr(context, "tool_call_id", None) or getattr(tool, "name", "tool"))

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        self._started[self._key(context, tool)] = time.perf_counter()

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: Any) -> None:
        started = self._started.pop(self._key(context, tool), time.perf_counter())
        try:
            arguments = json.loads(getattr(context, "tool_arguments", None) or "{}")
        except json.JSONDecodeError:
            arguments = {"raw": getattr(context, "tool_arguments", "")}
        text = str(result)
        refused = text.startswith(("denied:", "pending:", "expired:"))
        record_tool_call(
            self.client,
            str(getattr(tool, "name", "tool")),
            arguments if isinstance(arguments, dict) else {"value": arguments},
            (time.perf_counter() - started) * 1000,
            "denied" if refused else "ok",
            None,
            self.agent_id,
        )
