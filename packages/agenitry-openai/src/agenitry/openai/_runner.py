"""Run a model's tool calls: gate the spending ones, log every one, answer with tool outputs.

Give :meth:`ToolRunner.run` a Chat Completions message (``completion.choices[0].message``)
or a Responses API response (or its ``output`` list); it runs each function call and
returns the messages to send back: ``{"role": "tool", ...}`` for Chat Completions,
``{"type": "function_call_output", ...}`` for Responses. Nothing the model sends raises:
unknown tools and malformed arguments become error outputs it can correct.

A spending tool runs only once the gateway approved its authorization. Pending → the
output says approval is pending and names the authorization; the call is remembered, and
when the model repeats it (same tool, same arguments) or the application calls
:meth:`ToolRunner.resume`, the authorization is re-read from the gateway: approved → the
tool runs once and the authorization is executed; denied or expired → it never runs.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, Union

import pydantic

from agenitry import AgenitryError, ApprovalRequired, AsyncAgenitry, SpendDenied
from agenitry._base import BaseClient
from agenitry._gating import AmountSpec, record_tool_call, resolve_amount, summarize_arguments

from ._schema import arguments_model, chat_tool, describe, responses_tool, strict_schema
from ._tools import SIGNATURES, abind, bind, decision_text

Shape = Literal["chat", "responses"]
Status = Literal["ok", "approved", "denied", "pending", "error"]


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
        return strict_schema(self.model)


@dataclass
class _Pending:
    tool: str
    arguments: str
    call: ToolCall
    key: tuple[str, str] = field(default=("", ""))


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


def _canonical(arguments: Mapping[str, Any]) -> str:
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)


class ToolRunner:
    """Runs a model's tool calls on an Agenitry client (sync :meth:`run`, async :meth:`arun`).

    >>> runner = ToolRunner(agent, tools=[lookup_menu])  # doctest: +SKIP
    >>> runner.add(order_supplies, action="purchase_order", amount="total")  # doctest: +SKIP
    >>> reply = llm.chat.completions.create(model=model, messages=messages, tools=runner.chat_tools())  # doctest: +SKIP
    >>> messages += [reply.choices[0].message, *runner.run(reply.choices[0].message)]  # doctest: +SKIP
    """

    def __init__(
        self,
        client: BaseClient,
        tools: Iterable[Callable[..., Any]] = (),
        *,
        agenitry_tools: bool = False,
        agent_id: Optional[str] = None,
    ) -> None:
        self.client = client
        self.agent_id = agent_id
        self.tools: dict[str, Tool] = {}
        #: Calls waiting for the owner, by authorization id.
        self.pending: dict[str, _Pending] = {}
        self._waiting: dict[tuple[str, str], str] = {}
        self._finished: dict[str, ToolResult] = {}
        for fn in tools:
            self.add(fn)
        if agenitry_tools:
            implementations = abind(client) if isinstance(client, AsyncAgenitry) else bind(client)  # type: ignore[arg-type]
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
        ``amount``: an argument's name, a function of the arguments, or a number.
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
        return [result.message() for result in await self.arun_calls(source)]

    def run_calls(self, source: Any) -> list[ToolResult]:
        if isinstance(self.client, AsyncAgenitry):
            raise TypeError("this runner has an AsyncAgenitry client: use 'await runner.arun(...)'")
        return [self._drive_sync(call) for call in tool_calls(source)]

    async def arun_calls(self, source: Any) -> list[ToolResult]:
        return [await self._drive_async(call) for call in tool_calls(source)]

    def resume(self, authorization_id: str) -> ToolResult:
        """Continue a pending call now that the owner may have decided (the gateway's record decides)."""
        pending = self._pending_for(authorization_id)
        return self._drive_sync(pending.call, continuing=authorization_id)

    async def aresume(self, authorization_id: str) -> ToolResult:
        pending = self._pending_for(authorization_id)
        return await self._drive_async(pending.call, continuing=authorization_id)

    def _pending_for(self, authorization_id: str) -> _Pending:
        if authorization_id in self._finished:
            return _Pending("", "", self._finished[authorization_id].call)
        if authorization_id not in self.pending:
            raise KeyError(f"no pending call for authorization {authorization_id}")
        return self.pending[authorization_id]

    # -- one call: the same steps, sync or async ------------------------------------------------------

    def _prepare(self, call: ToolCall) -> Union[ToolResult, tuple[Tool, dict[str, Any]]]:
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            return ToolResult(call, "error", f"error: there is no tool named {call.name!r} (tools: {known}).")
        try:
            raw = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as exc:
            return ToolResult(
                call,
                "error",
                f"error: the arguments of {call.name} are not valid JSON ({exc.msg} at position {exc.pos}). "
                f"Call {call.name} again with a JSON object of its parameters.",
            )
        if not isinstance(raw, dict):
            return ToolResult(
                call, "error", f"error: the arguments of {call.name} must be a JSON object. Call it again with one."
            )
        try:
            parsed = tool.model.model_validate(raw)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}" for error in exc.errors()
            )
            return ToolResult(
                call,
                "error",
                f"error: invalid arguments for {call.name}: {problems}. Call it again with corrected arguments.",
            )
        return tool, {"_model": parsed, **{name: getattr(parsed, name) for name in type(parsed).model_fields}}

    def _invoke(self, tool: Tool, values: dict[str, Any]) -> Any:
        model = values["_model"]
        if tool.takes_model:
            return tool.fn(model)
        return tool.fn(**{k: v for k, v in values.items() if k != "_model"})

    def _spend(self, tool: Tool, arguments: dict[str, Any], continuing: Optional[str]) -> Any:
        return self.client.spend(  # type: ignore[attr-defined]
            str(tool.action),
            resolve_amount(tool.amount, arguments, tool.name),
            agent_id=self.agent_id,
            context={"tool": tool.name, "arguments": summarize_arguments(arguments)},
            settle=tool.settle,
            authorization_id=continuing,
        )

    def _before(
        self, call: ToolCall, continuing: Optional[str]
    ) -> Union[ToolResult, tuple[Tool, dict[str, Any], Optional[str]]]:
        if continuing is not None and continuing in self._finished:
            return self._finished[continuing]  # a replay: it already ran (or was refused)
        prepared = self._prepare(call)
        if isinstance(prepared, ToolResult):
            return prepared
        tool, values = prepared
        arguments = {k: v for k, v in values.items() if k != "_model"}
        if tool.action is not None and continuing is None:
            # The model asking again for a call that waits for the owner continues it.
            continuing = self._waiting.get((tool.name, _canonical(_plain(arguments))))
            if continuing is not None and continuing in self._finished:
                return self._finished[continuing]
        return tool, values, continuing

    def _decided(
        self, call: ToolCall, tool: Tool, arguments: dict[str, Any], auth_id: Optional[str], result: ToolResult
    ) -> ToolResult:
        key = (tool.name, _canonical(_plain(arguments)))
        if result.status == "pending" and result.authorization_id:
            self.pending[result.authorization_id] = _Pending(tool.name, call.arguments, call, key)
            self._waiting[key] = result.authorization_id
        elif result.authorization_id:
            previous = self.pending.pop(result.authorization_id, None)
            self._waiting.pop(previous.key if previous else key, None)
            if auth_id is not None:
                self._finished[result.authorization_id] = result
        return result

    def _drive_sync(self, call: ToolCall, continuing: Optional[str] = None) -> ToolResult:
        started = time.perf_counter()
        before = self._before(call, continuing)
        if isinstance(before, ToolResult):
            return self._log(before, started, {})
        tool, values, auth_id = before
        arguments = {k: v for k, v in values.items() if k != "_model"}
        if tool.action is None:
            try:
                value = self._invoke(tool, values)
            except Exception as exc:
                return self._log(ToolResult(call, "error", f"error: {type(exc).__name__}: {exc}"), started, arguments)
            return self._log(ToolResult(call, "ok", _text(value), value=value), started, arguments)
        spend = self._spend(tool, arguments, auth_id)
        try:
            with spend as auth:
                value = self._invoke(tool, values)
                if tool.actual is not None:
                    auth.actual_amount = tool.actual(value)
            result = ToolResult(call, "approved", _text(value), spend.authorization_id, value)
        except (ApprovalRequired, SpendDenied) as exc:
            result = self._refused(call, exc)
        except Exception as exc:
            result = self._failed(call, spend, exc)
        return self._log(self._decided(call, tool, arguments, auth_id, result), started, arguments)

    async def _drive_async(self, call: ToolCall, continuing: Optional[str] = None) -> ToolResult:
        started = time.perf_counter()
        before = self._before(call, continuing)
        if isinstance(before, ToolResult):
            return self._log(before, started, {})
        tool, values, auth_id = before
        arguments = {k: v for k, v in values.items() if k != "_model"}
        if tool.action is None:
            try:
                value = await _maybe_await(self._invoke(tool, values))
            except Exception as exc:
                return self._log(ToolResult(call, "error", f"error: {type(exc).__name__}: {exc}"), started, arguments)
            return self._log(ToolResult(call, "ok", _text(value), value=value), started, arguments)
        spend = self._spend(tool, arguments, auth_id)
        try:
            async with spend as auth:
                value = await _maybe_await(self._invoke(tool, values))
                if tool.actual is not None:
                    auth.actual_amount = tool.actual(value)
            result = ToolResult(call, "approved", _text(value), spend.authorization_id, value)
        except (ApprovalRequired, SpendDenied) as exc:
            result = self._refused(call, exc)
        except Exception as exc:
            result = self._failed(call, spend, exc)
        return self._log(self._decided(call, tool, arguments, auth_id, result), started, arguments)

    @staticmethod
    def _refused(call: ToolCall, exc: Union[ApprovalRequired, SpendDenied]) -> ToolResult:
        status: Status = "pending" if isinstance(exc, ApprovalRequired) else "denied"
        record = dict(exc.authorization)
        if status == "denied" and record.get("status") in ("executed", "settled"):
            # Continuing an authorization that was already used: it never runs twice.
            return ToolResult(call, "denied", "denied: this authorization was already used.", exc.authorization_id)
        return ToolResult(call, status, decision_text(record), exc.authorization_id)

    @staticmethod
    def _failed(call: ToolCall, spend: Any, exc: Exception) -> ToolResult:
        if isinstance(exc, AgenitryError) and spend.authorization_id is None:
            text = f"error: could not ask the spending policy ({exc}); nothing was spent."
        else:
            reversed_ = " The authorization was reversed; nothing was spent." if spend.reversed else ""
            text = f"error: {type(exc).__name__}: {exc}.{reversed_}"
        return ToolResult(call, "error", text, spend.authorization_id)

    def _log(self, result: ToolResult, started: float, arguments: Mapping[str, Any]) -> ToolResult:
        outcome = {"ok": "ok", "approved": "ok"}.get(result.status, result.status)
        error = result.content if result.status == "error" else None
        try:
            record_tool_call(
                self.client,
                result.call.name,
                _plain(arguments),
                (time.perf_counter() - started) * 1000,
                outcome,
                error,
                self.agent_id,
            )
        except Exception:  # the audit of a call never changes what the model is told
            import logging

            logging.getLogger("agenitry").warning("Could not record the call of %s", result.call.name, exc_info=True)
        return result


def _accepts_fields(fn: Callable[..., Any], model: type[pydantic.BaseModel]) -> bool:
    """Whether ``fn`` takes the model's fields as keyword arguments (rather than one model instance)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return True
    return set(model.model_fields) <= set(parameters) and len(parameters) >= len(model.model_fields) > 0


def _plain(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.model_dump(mode="json") if isinstance(v, pydantic.BaseModel) else v for k, v in arguments.items()}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
