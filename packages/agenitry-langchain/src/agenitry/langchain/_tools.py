"""The seed's LangChain tools (authorize, log an event, set a policy) and ``gate_tool``.

Every tool is a ``StructuredTool`` with a pydantic argument schema, a sync and an async
function, and ``handle_tool_error``: a failure (a denial, a bad argument, the gateway out
of reach) comes back to the model as a tool error it can read, never as an exception in
the agent loop.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable
from typing import Any, Callable, Literal, Optional, TypeVar, Union

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field

from agenitry import Agenitry, AgenitryError, AsyncAgenitry
from agenitry.integration import (
    AmountSpec,
    Authorization,
    GateOutcome,
    arun_gated,
    decision_text,
    logged_text,
    policy_text,
    run_gated,
)
from agenitry.langchain._gate import Gate, checked

T = TypeVar("T")


def resolve_client(
    api_key: Optional[str], venue_id: Optional[str], agent_id: Optional[str], base_url: Optional[str], client: Any
) -> Any:
    """The client to use: ``client=`` as given, else one made from the seed's arguments (and env)."""
    if client is not None:
        return client
    return Agenitry(api_key=api_key, venue_id=venue_id, agent_id=agent_id, base_url=base_url)


def _runners(client: Any, call: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Awaitable[Any]]]:
    """A sync and an async function doing ``call(client_method_result)`` on either client."""

    def sync(**kwargs: Any) -> Any:
        if isinstance(client, AsyncAgenitry):
            raise ToolException("This tool holds an AsyncAgenitry client: call it with ainvoke")
        return _guarded(lambda: call(client, **kwargs))

    async def asynchronous(**kwargs: Any) -> Any:
        if isinstance(client, AsyncAgenitry):
            try:
                return await call(client, **kwargs)
            except (AgenitryError, ValueError) as error:
                raise ToolException(str(error)) from error
        return await asyncio.to_thread(functools.partial(sync, **kwargs))

    return sync, asynchronous


def _guarded(run: Callable[[], T]) -> T:
    try:
        return run()
    except (AgenitryError, ValueError) as error:
        raise ToolException(str(error)) from error


def _tool(
    name: str, description: str, schema: type[BaseModel], client: Any, call: Callable[..., Any]
) -> StructuredTool:
    sync, asynchronous = _runners(client, call)
    return StructuredTool.from_function(
        func=sync,
        coroutine=asynchronous,
        name=name,
        description=description,
        args_schema=schema,
        handle_tool_error=True,
        handle_validation_error=True,
        # The client the tool talks through (to close it, or to share it with other tools).
        metadata={"agenitry_client": client},
    )


def _maybe_await(value: Any, then: Callable[[Any], Any]) -> Any:
    """``then(value)``, awaiting ``value`` (and what ``then`` returns) when the client is async."""
    if asyncio.iscoroutine(value):

        async def finish() -> Any:
            result = then(await value)
            return (await result) if asyncio.iscoroutine(result) else result

        return finish()
    return then(value)


# -- authorize ---------------------------------------------------------------------------------


class AuthorizeArgs(BaseModel):
    action: str = Field(description="What the spend is for, e.g. order_captured, reservation_booked, comp_issued")
    # strict: the model's "450" or true is refused, never coerced into money.
    amount: float = Field(ge=0, strict=True, description="The amount to spend, in the venue's currency")
    currency: Optional[str] = Field(default=None, description="ISO-4217 code; the venue's currency if left out")
    reason: Optional[str] = Field(default=None, description="Why the agent wants to spend, for the owner")


def authorization_text(record: dict[str, Any]) -> str:
    """What ``authorize_spend`` answers, from the authorization's full record (action, amount, currency)."""
    return decision_text(Authorization.from_answer(record))


def create_authorize_tool(
    api_key: Optional[str] = None,
    venue_id: Optional[str] = None,
    agent_id: Optional[str] = None,
    base_url: Optional[str] = None,
    *,
    client: Any = None,
    name: str = "authorize_spend",
    description: Optional[str] = None,
) -> StructuredTool:
    """A tool the model calls before spending: APPROVED / PENDING / DENIED with the reason."""
    resolved = resolve_client(api_key, venue_id, agent_id, base_url, client)

    def call(c: Any, **args: Any) -> Any:
        answer = c.authorize(
            args["action"], args["amount"], agent_id=agent_id, currency=args.get("currency"), reason=args.get("reason")
        )
        # The decision names no action, amount or currency: the record does.
        return _maybe_await(
            answer, lambda a: _maybe_await(c.get_authorization(a["authorization_id"]), authorization_text)
        )

    return _tool(
        name,
        description
        or "Ask for spend authority before any action that costs or commits money. Answers APPROVED (go ahead, "
        "with an authorization id), PENDING (the owner must approve first: do not act) or DENIED (with the reason).",
        AuthorizeArgs,
        resolved,
        call,
    )


# -- log an event --------------------------------------------------------------------------------


class LogEventArgs(BaseModel):
    action: str = Field(description="What happened, e.g. order_captured, reservation_booked, item_86d")
    amount: Optional[float] = Field(default=None, ge=0, strict=True, description="The amount involved, if any")
    currency: Optional[str] = Field(default=None, description="ISO-4217 code; the venue's currency if left out")
    direction: Optional[Literal["inbound", "outbound", "internal"]] = Field(
        default=None, description="Money coming in, going out, or neither"
    )
    reason: Optional[str] = Field(default=None, description="A short note for the audit trail")
    context: Optional[dict[str, Any]] = Field(default=None, description="Details worth keeping (table, guest, items)")


def create_log_event_tool(
    api_key: Optional[str] = None,
    venue_id: Optional[str] = None,
    agent_id: Optional[str] = None,
    base_url: Optional[str] = None,
    *,
    client: Any = None,
    name: str = "log_event",
    description: Optional[str] = None,
) -> StructuredTool:
    """A tool that writes an event to the audit trail and answers with its verify link."""
    resolved = resolve_client(api_key, venue_id, agent_id, base_url, client)

    def call(c: Any, **args: Any) -> Any:
        answer = c.log(
            args["action"],
            amount=args.get("amount"),
            currency=args.get("currency"),
            direction=args.get("direction"),
            agent_id=agent_id,
            context=args.get("context"),
            reason=args.get("reason"),
        )
        return _maybe_await(answer, lambda a: logged_text(args["action"], a))

    return _tool(
        name,
        description or "Record something the agent did in the venue's audit trail; answers with a verify link.",
        LogEventArgs,
        resolved,
        call,
    )


# -- set a policy ---------------------------------------------------------------------------------


class SetPolicyArgs(BaseModel):
    agent_id: Optional[str] = Field(default=None, description="The agent the policy is for; empty: the whole venue")
    # Strict, as every amount: a limit of "450" or true is an error the model reads, never a number.
    max_single_amount: Optional[float] = Field(default=None, ge=0, strict=True, description="Largest single spend")
    max_daily_spend: Optional[float] = Field(default=None, ge=0, strict=True, description="Most spent in any 24 hours")
    max_monthly_spend: Optional[float] = Field(default=None, ge=0, strict=True, description="Most spent in any 30 days")
    require_approval_above: Optional[float] = Field(
        default=None, ge=0, strict=True, description="Spends above wait for the owner"
    )
    allowed_actions: Optional[list[str]] = Field(
        default=None, description="The only actions allowed (an empty list allows none); left out: unchanged"
    )


_SET_POLICY = (
    "Create or update the spend policy of an agent (or the whole venue); limits left out keep their value. Admin only."
)


def create_set_policy_tool(
    api_key: Optional[str] = None,
    venue_id: Optional[str] = None,
    agent_id: Optional[str] = None,
    base_url: Optional[str] = None,
    *,
    client: Any = None,
    name: str = "set_spend_policy",
    description: Optional[str] = None,
) -> StructuredTool:
    """An admin tool that creates or updates a spend policy (needs an admin key; an agent key is refused).

    Limits the model leaves out keep their value, so a call never loosens a policy by omission.
    """
    resolved = resolve_client(api_key, venue_id, agent_id, base_url, client)

    def call(c: Any, **args: Any) -> Any:
        target = args.pop("agent_id", None) or agent_id
        answer = c.set_policy(agent_id=target, **args)
        return _maybe_await(answer, policy_text)

    return _tool(
        name,
        description or _SET_POLICY,
        SetPolicyArgs,
        resolved,
        call,
    )


# -- gate_tool ------------------------------------------------------------------------------------------


class _RawArgumentsTool(StructuredTool):
    """A StructuredTool whose function gets the arguments as the model wrote them, once they validate."""

    def _parse_input(self, tool_input: Union[str, dict[str, Any]], tool_call_id: Optional[str]) -> Any:
        parsed = super()._parse_input(tool_input, tool_call_id)
        # The schema coerces ("450" → 450.0, true → 1.0); the gate must check what was sent.
        return tool_input if isinstance(tool_input, dict) else parsed


def gate_tool(
    tool: BaseTool,
    *,
    action: str,
    amount: AmountSpec,
    client: Any = None,
    settle: bool = False,
    actual: Optional[Callable[[Any], Any]] = None,
    currency: Optional[str] = None,
    api_key: Optional[str] = None,
    venue_id: Optional[str] = None,
    agent_id: Optional[str] = None,
    base_url: Optional[str] = None,
    log_calls: bool = True,
) -> StructuredTool:
    """The same tool (name, description, schema), but it runs only once the spend is approved.

    ``amount``: an argument's name, a function of the arguments, or a number; the value the
    model sent must be a JSON number (``"450"`` or ``true`` is refused, nothing authorized).
    Approved → the tool runs, then the authorization is executed (with ``actual(result)`` if
    given) and settled with ``settle=True``; the tool fails → released. Denied or pending →
    a tool error telling the model so; the tool does not run. Each call is recorded as a
    ``tool_call`` event (``log_calls=False``: not). To pause the graph until the owner
    decides, use ``AgenitryMiddleware`` or ``agenitry.langgraph.GatedToolNode`` instead.
    """
    resolved = resolve_client(api_key, venue_id, agent_id, base_url, client)
    gate = Gate(action=action, amount=amount, settle=settle, actual=actual, currency=currency)
    name = tool.name

    def inner_call(args: dict[str, Any]) -> dict[str, Any]:
        # As a tool call the inner tool answers a ToolMessage whose status says whether it failed.
        return {"type": "tool_call", "id": "agenitry-gated", "name": name, "args": args}

    def text(message: Any) -> str:
        content = checked(message).content if isinstance(message, ToolMessage) else message
        return content if isinstance(content, str) else json.dumps(content, default=str)

    def answer(outcome: GateOutcome) -> str:
        if outcome.kind != "ran":
            raise ToolException(outcome.message)
        return str(outcome.result)

    def run(**args: Any) -> str:
        if isinstance(resolved, AsyncAgenitry):
            raise ToolException(f"{name} holds an AsyncAgenitry client: call it with ainvoke")
        request = gate.request(name, args, agent_id=agent_id, record=log_calls)
        # No callbacks: the outer (gated) call is the one the handlers record.
        return answer(run_gated(resolved, request, lambda: text(tool.invoke(inner_call(args), {"callbacks": []}))))

    async def arun(**args: Any) -> str:
        async def body() -> str:
            return text(await tool.ainvoke(inner_call(args), {"callbacks": []}))

        return answer(await arun_gated(resolved, gate.request(name, args, agent_id=agent_id, record=log_calls), body))

    return _RawArgumentsTool(
        func=run,
        coroutine=arun,
        name=name,
        description=tool.description,
        args_schema=tool.args_schema if tool.args_schema is not None else tool.get_input_schema(),
        handle_tool_error=True,
        handle_validation_error=True,
        metadata={**(tool.metadata or {}), "agenitry_client": resolved},
    )
