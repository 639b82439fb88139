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
from typing import Any, Callable, Literal, Optional, TypeVar

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field

from agenitry import Agenitry, AgenitryError, ApprovalRequired, AsyncAgenitry, SpendDenied
from agenitry._gating import AmountSpec, summarize_arguments
from agenitry.langchain._gate import DONE, Gate, denied_text, done_text, failed_text, pending_text

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


def _maybe_await(value: Any, then: Callable[[Any], str]) -> Any:
    if asyncio.iscoroutine(value):

        async def finish() -> str:
            return then(await value)

        return finish()
    return then(value)


# -- authorize ---------------------------------------------------------------------------------


class AuthorizeArgs(BaseModel):
    action: str = Field(description="What the spend is for, e.g. order_captured, reservation_booked, comp_issued")
    amount: float = Field(ge=0, description="The amount to spend, in the venue's currency")
    currency: Optional[str] = Field(default=None, description="ISO-4217 code; the venue's currency if left out")
    reason: Optional[str] = Field(default=None, description="Why the agent wants to spend, for the owner")


def authorization_text(answer: dict[str, Any]) -> str:
    status = answer.get("status")
    ident = answer.get("authorization_id")
    if status == "approved":
        return (
            f"APPROVED: {answer.get('action')} of {answer.get('amount')} may go ahead (authorization {ident}, "
            f"valid until {answer.get('expires_at')})."
        )
    if status == "pending":
        return "PENDING: " + pending_text(answer) + " Tell the guest the owner must approve first."
    return "DENIED: " + denied_text(answer)


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
        return _maybe_await(answer, authorization_text)

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
    amount: Optional[float] = Field(default=None, ge=0, description="The amount involved, if any")
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
        return _maybe_await(answer, lambda a: f"Logged {args['action']} as {a.get('id')}: {a.get('verify_url')}")

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
    max_single_amount: Optional[float] = Field(default=None, ge=0, description="Largest single spend")
    max_daily_spend: Optional[float] = Field(default=None, ge=0, description="Most spent in any 24 hours")
    max_monthly_spend: Optional[float] = Field(default=None, ge=0, description="Most spent in any 30 days")
    require_approval_above: Optional[float] = Field(default=None, ge=0, description="Spends above wait for the owner")
    allowed_actions: Optional[list[str]] = Field(default=None, description="The only actions allowed; empty: any")


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
    """An admin tool that replaces a spend policy (needs an admin key; an agent key is refused)."""
    resolved = resolve_client(api_key, venue_id, agent_id, base_url, client)

    def call(c: Any, **args: Any) -> Any:
        target = args.pop("agent_id", None) or agent_id
        answer = c.set_policy(agent_id=target, **args)
        return _maybe_await(answer, lambda a: "Policy saved: " + json.dumps(a, default=str, sort_keys=True))

    return _tool(
        name,
        description or "Create or replace the spend policy of an agent (or the whole venue). Admin only.",
        SetPolicyArgs,
        resolved,
        call,
    )


# -- gate_tool ------------------------------------------------------------------------------------------


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
) -> StructuredTool:
    """The same tool (name, description, schema), but it runs only once the spend is approved.

    ``amount``: an argument's name, a function of the arguments, or a number. Approved →
    the tool runs, then the authorization is executed (with ``actual(result)`` if given) and
    settled with ``settle=True``; the tool fails → reversed. Denied or pending → a tool error
    telling the model so; the tool does not run. To pause the graph until the owner decides,
    use ``AgenitryMiddleware`` or ``agenitry.langgraph.GatedToolNode`` instead.
    """
    resolved = resolve_client(api_key, venue_id, agent_id, base_url, client)
    gate = Gate(action=action, amount=amount, settle=settle, actual=actual, currency=currency)
    name = tool.name

    def spend(args: dict[str, Any]) -> Any:
        return resolved.spend(
            gate.action,
            gate.amount_of(args, name),
            agent_id=agent_id,
            currency=gate.currency,
            context={"tool": name, "arguments": summarize_arguments(args)},
            settle=gate.settle,
        )

    def inner_call(args: dict[str, Any]) -> dict[str, Any]:
        # As a tool call the inner tool answers a ToolMessage whose status says whether it failed.
        return {"type": "tool_call", "id": "agenitry-gated", "name": name, "args": args}

    def outcome(message: Any) -> str:
        if isinstance(message, ToolMessage):
            if message.status == "error":
                raise _InnerFailed(str(message.content))
            return message.content if isinstance(message.content, str) else json.dumps(message.content)
        return str(message)

    def refused(error: Exception, auth: Any) -> ToolException:
        if isinstance(error, ApprovalRequired):
            return ToolException(pending_text(error.authorization))
        if isinstance(error, SpendDenied):
            if error.authorization.get("status") in DONE:
                return ToolException(done_text(error.authorization))
            return ToolException(denied_text(error.authorization))
        if isinstance(error, AgenitryError):
            return ToolException(f"Could not get an authorization for {name}: {error}")
        return ToolException(failed_text(name, str(error), getattr(auth, "authorization_id", None)))

    def run(**args: Any) -> str:
        if isinstance(resolved, AsyncAgenitry):
            raise ToolException(f"{name} holds an AsyncAgenitry client: call it with ainvoke")
        auth = None
        try:
            with spend(args) as auth:
                # No callbacks: the outer (gated) call is the one the handlers record.
                result = outcome(tool.invoke(inner_call(args), config={"callbacks": []}))
                if actual is not None:
                    auth.actual_amount = actual(result)
            return result
        except Exception as error:
            raise refused(error, auth) from error

    async def arun(**args: Any) -> str:
        auth = None
        try:
            async with spend(args) as auth:
                result = outcome(await tool.ainvoke(inner_call(args), config={"callbacks": []}))
                if actual is not None:
                    auth.actual_amount = actual(result)
            return result
        except Exception as error:
            raise refused(error, auth) from error

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=name,
        description=tool.description,
        args_schema=tool.args_schema,
        handle_tool_error=True,
        handle_validation_error=True,
        metadata={**(tool.metadata or {}), "agenitry_client": resolved},
    )


class _InnerFailed(Exception):
    """The gated tool reported an error: the spend is reversed."""
