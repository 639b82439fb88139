"""Run a model's tool calls: gate the spending ones, log every one, answer with tool outputs.

Give :meth:`ToolRunner.run` a Chat Completions message (``completion.choices[0].message``)
or a Responses API response (or its ``output`` list); it runs each function call and
returns the messages to send back: ``{"role": "tool", ...}`` for Chat Completions,
``{"type": "function_call_output", ...}`` for Responses. Nothing the model sends raises:
unknown tools, malformed arguments and wrong types become error outputs it can correct.

A spending tool goes through core's gated call (:func:`agenitry.integration.run_gated`):
its amount is checked as the model wrote it, its authorization is keyed by the call
(:func:`~agenitry.integration.call_key`: the runner's ``scope``, the call id, the tool, the
arguments), and the function runs only while this run holds the approved authorization's
claim. The same call run again (after a pause, a restart, or twice) continues its
authorization and runs at most once.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, Union

import pydantic

from agenitry.integration import (
    Agenitry,
    AmountSpec,
    AsyncAgenitry,
    Client,
    GatedCall,
    GateOutcome,
    InvalidAmount,
    OutcomeKind,
    arun_gated,
    call_key,
    describe_error,
    invalid_text,
    record_tool_call,
    run_gated,
)

from ._schema import arguments_model, chat_tool, describe, responses_tool, strict_schema
from ._tools import SIGNATURES, abind, bind

Shape = Literal["chat", "responses"]
Status = Literal["ok", "approved", "denied", "pending", "done", "in_progress", "invalid", "error"]

#: A gated call's outcome kind as a ToolResult status.
_STATUS: Mapping[OutcomeKind, Status] = {
    "ran": "approved",
    "approved": "approved",
    "denied": "denied",
    "pending": "pending",
    "already_done": "done",
    "in_progress": "in_progress",
    "failed": "error",
    "invalid": "invalid",
    "unavailable": "error",
}

logger = logging.getLogger("agenitry")


@dataclass(frozen=True)
class ToolCall:
    """One function call the model asked for."""

    id: str
    name: str
    arguments: str
    shape: Shape


@dataclass
class ToolResult:
    """What came of one call; :meth:`message` is the output to send back to the model."""

    call: ToolCall
    status: Status
    content: str
    authorization_id: Optional[str] = None
    value: Any = None

    def message(self) -> dict[str, Any]:
        """The output message for the model, in the shape of the call (Chat Completions or Responses)."""
        if self.call.shape == "chat":
            return {"role": "tool", "tool_call_id": self.call.id, "content": self.content}
        return {"type": "function_call_output", "call_id": self.call.id, "output": self.content}


@dataclass
class Tool:
    """A function the model may call; with ``action`` it is a spending tool, gated by the gateway."""

    name: str
    fn: Callable[..., Any]
    model: type[pydantic.BaseModel]
    description: str
    action: Optional[str] = None
    amount: Optional[AmountSpec] = None
    actual: Optional[Callable[[Any], Any]] = None
    settle: bool = False
    #: The function takes the arguments model itself (one parameter) rather than its fields.
    takes_model: bool = False

    def schema(self) -> dict[str, Any]:
        """The strict ``parameters`` schema of the tool's arguments."""
        return strict_schema(self.model)


@dataclass(frozen=True)
class _Plan:
    """A call whose arguments passed: the function to call, and (spending tools) the gated request."""

    body: Callable[[], Any]
    request: Optional[GatedCall]


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def tool_calls(source: Any) -> list[ToolCall]:
    """The function calls in a Chat Completions message, a Response, or a Responses output list."""
    if isinstance(source, (list, tuple)):
        items: Iterable[Any] = source
    elif _get(source, "tool_calls", None) is not None or _get(source, "role", None) == "assistant":
        calls = _get(source, "tool_calls", None) or []
        return [
            ToolCall(
                str(_get(c, "id")),
                str(_get(_get(c, "function"), "name")),
                str(_get(_get(c, "function"), "arguments") or ""),
                "chat",
            )
            for c in calls
            if _get(c, "type", "function") == "function"
        ]
    elif _get(source, "output", None) is not None:
        items = _get(source, "output")
    else:
        raise TypeError(f"expected a chat completion message or a Responses output, not {type(source).__name__}")
    return [
        ToolCall(str(_get(i, "call_id")), str(_get(i, "name")), str(_get(i, "arguments") or ""), "responses")
        for i in items
        if _get(i, "type") == "function_call"
    ]


class ToolRunner:
    """Runs a model's tool calls on an Agenitry client (sync :meth:`run`, async :meth:`arun`).

    ``scope``: what makes a call id unique for this runner (a conversation or thread id);
    None, the default, when call ids are unique alone (OpenAI's are). A call run again
    with the same scope, call id, tool and arguments, even by another runner in another
    process, continues the same authorization.

    >>> runner = ToolRunner(agent, tools=[lookup_menu], scope="conversation-42")  # doctest: +SKIP
    >>> runner.add(order_supplies, action="purchase_order", amount="total")  # doctest: +SKIP
    >>> reply = llm.chat.completions.create(model=model, messages=messages, tools=runner.chat_tools())  # doctest: +SKIP
    >>> messages += [reply.choices[0].message, *runner.run(reply.choices[0].message)]  # doctest: +SKIP
    """

    def __init__(
        self,
        client: Client,
        tools: Iterable[Callable[..., Any]] = (),
        *,
        agenitry_tools: bool = False,
        agent_id: Optional[str] = None,
        scope: Optional[str] = None,
    ) -> None:
        self.client = client
        self.agent_id = agent_id
        self.scope = scope
        self.tools: dict[str, Tool] = {}
        #: Calls of this runner waiting for the owner, by authorization id (see :meth:`resume`).
        self.pending: dict[str, ToolCall] = {}
        for fn in tools:
            self.add(fn)
        if agenitry_tools:
            implementations = abind(client) if isinstance(client, AsyncAgenitry) else bind(client)
            for signature in SIGNATURES:
                self.add(
                    implementations[signature.__name__], name=signature.__name__, arguments=arguments_model(signature)
                )
                self.tools[signature.__name__].description = describe(signature)

    # -- tools ----------------------------------------------------------------------------------

    def add(
        self,
        fn: Callable[..., Any],
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
        arguments: Optional[type[pydantic.BaseModel]] = None,
        action: Optional[str] = None,
        amount: Optional[AmountSpec] = None,
        actual: Optional[Callable[[Any], Any]] = None,
        settle: bool = False,
    ) -> Callable[..., Any]:
        """Offer ``fn`` to the model. With ``action`` and ``amount`` it is a spending tool.

        ``arguments``: a pydantic model for the arguments; ``fn`` then receives one instance
        of it (unless the model was derived from ``fn``'s own signature).
        ``amount``: an argument's name, a function of the arguments as the model sent them
        (JSON values), or a number.
        """
        if (action is None) != (amount is None):
            raise TypeError("a spending tool needs both action= and amount=")
        tool_name = name or str(getattr(fn, "__name__", "tool"))
        model = arguments or arguments_model(fn, tool_name)
        strict_schema(model)  # fail now, not when the model first calls it
        if isinstance(amount, str) and amount not in model.model_fields:
            raise TypeError(f"amount={amount!r}: {tool_name} has no argument named {amount!r}")
        text = description if description is not None else describe(fn) or describe(model)
        takes_model = arguments is not None and not _accepts_fields(fn, model)
        self.tools[tool_name] = Tool(tool_name, fn, model, text, action, amount, actual, settle, takes_model)
        return fn

    def chat_tools(self) -> list[dict[str, Any]]:
        """Every tool as a strict Chat Completions tool."""
        return [chat_tool(t.model, name=t.name, description=t.description) for t in self.tools.values()]

    def responses_tools(self) -> list[dict[str, Any]]:
        """Every tool as a strict Responses API tool."""
        return [responses_tool(t.model, name=t.name, description=t.description) for t in self.tools.values()]

    # -- running ----------------------------------------------------------------------------------

    def run(self, source: Any) -> list[dict[str, Any]]:
        """Run every tool call of a message / response; the outputs to send back, in order."""
        return [result.message() for result in self.run_calls(source)]

    async def arun(self, source: Any) -> list[dict[str, Any]]:
        """:meth:`run` for async code (either client; async tool functions are awaited)."""
        return [result.message() for result in await self.arun_calls(source)]

    def run_calls(self, source: Any) -> list[ToolResult]:
        """Run every tool call of a message / response; a :class:`ToolResult` each, in order."""
        client = self._sync_client()
        return [self._run_one(client, call) for call in tool_calls(source)]

    async def arun_calls(self, source: Any) -> list[ToolResult]:
        """:meth:`run_calls` for async code."""
        return [await self._arun_one(call) for call in tool_calls(source)]

    def resume(self, authorization_id: str) -> ToolResult:
        """Continue a pending call of this runner: the gateway's record decides (approved → it runs once).

        A new runner (after a restart) has no pending calls: it continues one when the
        same call (same scope, call id, tool and arguments) is run again.
        """
        return self._run_one(self._sync_client(), self._pending_call(authorization_id), authorization_id)

    async def aresume(self, authorization_id: str) -> ToolResult:
        """:meth:`resume` for async code."""
        return await self._arun_one(self._pending_call(authorization_id), authorization_id)

    def _pending_call(self, authorization_id: str) -> ToolCall:
        if authorization_id not in self.pending:
            raise KeyError(f"no pending call for authorization {authorization_id}")
        return self.pending[authorization_id]

    def _sync_client(self) -> Agenitry:
        if isinstance(self.client, AsyncAgenitry):
            raise TypeError("this runner has an AsyncAgenitry client: use 'await runner.arun(...)'")
        return self.client

    # -- one call: planned once, run sync or async ------------------------------------------------

    def _run_one(self, client: Agenitry, call: ToolCall, authorization_id: Optional[str] = None) -> ToolResult:
        started = time.perf_counter()
        plan = self._plan(call, authorization_id)
        if isinstance(plan, ToolResult):
            return self._recorded(plan, started)
        if plan.request is not None:
            return self._gated(call, run_gated(client, plan.request, plan.body))
        try:
            value = plan.body()
        except Exception as error:
            return self._recorded(_error(call, error), started)
        return self._recorded(ToolResult(call, "ok", _text(value), value=value), started)

    async def _arun_one(self, call: ToolCall, authorization_id: Optional[str] = None) -> ToolResult:
        started = time.perf_counter()
        plan = self._plan(call, authorization_id)
        if isinstance(plan, ToolResult):
            return self._recorded(plan, started)
        if plan.request is not None:
            return self._gated(call, await arun_gated(self.client, plan.request, plan.body))
        try:
            value = plan.body()
            if inspect.isawaitable(value):
                value = await value
        except Exception as error:
            return self._recorded(_error(call, error), started)
        return self._recorded(ToolResult(call, "ok", _text(value), value=value), started)

    def _plan(self, call: ToolCall, authorization_id: Optional[str]) -> Union[ToolResult, _Plan]:
        """The call ready to run, or the error output that ends it (nothing was authorized)."""
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return ToolResult(call, "error", f"error: there is no tool named {call.name!r} (tools: {known}).")
        text = call.arguments or "{}"
        try:
            arguments = json.loads(text)
        except json.JSONDecodeError as exc:
            return ToolResult(
                call,
                "error",
                f"error: the arguments of {call.name} are not valid JSON ({exc.msg} at position {exc.pos}). "
                f"Call {call.name} again with a JSON object of its parameters.",
            )
        if not isinstance(arguments, dict):
            return ToolResult(
                call, "error", f"error: the arguments of {call.name} must be a JSON object. Call it again with one."
            )
        request = None
        if tool.action is not None:
            request = GatedCall(
                tool.action,
                tool.amount,
                arguments,
                tool=tool.name,
                agent_id=self.agent_id,
                settle=tool.settle,
                key=call_key(self.scope, call.id, tool.name, arguments),
                authorization_id=authorization_id,
                actual=tool.actual,
                extra={"tool_call_id": call.id},
            )
            if isinstance(tool.amount, str):
                # The amount as the model wrote it, checked before the types: `true` or "450" is
                # an invalid amount, never coerced into money.
                try:
                    request.checked_amount()
                except InvalidAmount as error:
                    return ToolResult(call, "invalid", invalid_text(tool.name, error))
        try:
            # Strict: a wrong type is an error the model corrects, never a coerced value.
            parsed = tool.model.model_validate_json(text, strict=True)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}" for error in exc.errors()
            )
            return ToolResult(
                call,
                "error",
                f"error: invalid arguments for {call.name}: {problems}. Call it again with corrected arguments.",
            )
        return _Plan(lambda: _invoke(tool, parsed), request)

    def _gated(self, call: ToolCall, outcome: GateOutcome) -> ToolResult:
        """A gated call's outcome as a ToolResult (run_gated recorded it); pending calls are kept for resume."""
        authorization_id = outcome.authorization_id
        if authorization_id is not None:
            if outcome.kind == "pending":
                self.pending[authorization_id] = call
            else:
                self.pending.pop(authorization_id, None)
        content = _text(outcome.result) if outcome.kind == "ran" else outcome.message
        return ToolResult(call, _STATUS[outcome.kind], content, authorization_id, outcome.result)

    def _recorded(self, result: ToolResult, started: float) -> ToolResult:
        """Record a call that was not gated (a plain tool, or one refused before any authorization)."""
        try:
            arguments = json.loads(result.call.arguments or "{}")
        except json.JSONDecodeError:
            arguments = {"raw": result.call.arguments}
        try:
            record_tool_call(
                self.client,
                result.call.name,
                arguments if isinstance(arguments, dict) else {"value": arguments},
                (time.perf_counter() - started) * 1000,
                result.status,
                result.content if result.status != "ok" else None,
                self.agent_id,
                extra={"tool_call_id": result.call.id},
            )
        except Exception:  # the audit of a call never changes what the model is told
            logger.warning("Could not record the call of %s", result.call.name, exc_info=True)
        return result


def _invoke(tool: Tool, parsed: pydantic.BaseModel) -> Any:
    if tool.takes_model:
        return tool.fn(parsed)
    return tool.fn(**{name: getattr(parsed, name) for name in type(parsed).model_fields})


def _error(call: ToolCall, error: Exception) -> ToolResult:
    return ToolResult(call, "error", f"error: {describe_error(error)}")


def _accepts_fields(fn: Callable[..., Any], model: type[pydantic.BaseModel]) -> bool:
    """Whether ``fn`` takes the model's fields as keyword arguments (rather than one model instance)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return True
    return set(model.model_fields) <= set(parameters) and len(parameters) >= len(model.model_fields) > 0


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)
