"""Gate a spending call and record tool calls: the engine every adapter builds on.

The steps of a spend are written once, as flows (see ``_base``) that yield calls on the
client by name: authorize; on ``pending`` poll the authorization until a deadline; run
the caller's code; then execute (with the actual amount) and settle, or reverse when
the code raised. A runner does each call with a sync client (blocking, or in a thread
from async code) or an async client (awaited), so ``with client.spend(...)``,
``async with aclient.spend(...)`` and ``@client.guard`` share one implementation.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, TypeVar, Union, cast

from agenitry._base import BaseClient, Flow, Sleep, adrive, drive
from agenitry._config import APPROVAL_POLL_INITIAL, APPROVAL_POLL_MAX
from agenitry._exceptions import AgenitryError, ApprovalRequired, SpendDenied

logger = logging.getLogger("agenitry")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
#: What ``guard(amount=...)`` takes: an argument's name, a function of the arguments, or a number.
AmountSpec = Union[str, float, int, Callable[[dict[str, Any]], Any]]


def resolve_amount(spec: Optional[AmountSpec], arguments: Mapping[str, Any], tool: str = "the tool") -> Any:
    """The amount a call spends: a named argument, a function of the arguments, or a number."""
    if callable(spec):
        return spec(dict(arguments))
    if isinstance(spec, str):
        if spec not in arguments:
            raise TypeError(f"{tool} was called without its amount argument {spec!r}")
        return arguments[spec]
    return spec


#: Statuses in which the agent may go ahead (or already went ahead).
APPROVED = ("approved", "executed", "settled")
#: Argument names whose values never leave the process (matched anywhere in the name).
REDACTED = re.compile(
    r"password|passwd|passphrase|secret|token|api_?key|authorization|auth_?header|card|cvv|cvc|ssn|"
    r"private_?key|credential|cookie|session_?id",
    re.IGNORECASE,
)
REDACTED_VALUE = "[redacted]"
MAX_TEXT = 256
MAX_ITEMS = 20
MAX_DEPTH = 4
MAX_ARGUMENTS_BYTES = 8 * 1024


@dataclass(frozen=True)
class Call:
    """A flow asks its runner to call ``client.<method>(*args, **kwargs)``."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    """Does a flow's calls on one client: blocking in ``run``, awaited in ``arun``."""

    supports_sync: bool

    def run(self, flow: Flow[T]) -> T: ...

    async def arun(self, flow: Flow[T]) -> T: ...


class SyncRunner:
    """For :class:`~agenitry.Agenitry`; from async code its blocking calls run in a thread."""

    supports_sync = True

    def __init__(self, client: Any) -> None:
        self._client = client

    def run(self, flow: Flow[T]) -> T:
        return drive(flow, self._perform)

    async def arun(self, flow: Flow[T]) -> T:
        return await adrive(flow, self._aperform)

    def _perform(self, step: Union[Call, Sleep]) -> Any:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        return getattr(self._client, step.method)(*step.args, **step.kwargs)

    async def _aperform(self, step: Union[Call, Sleep]) -> Any:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        method = functools.partial(getattr(self._client, step.method), *step.args, **step.kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, method)


class AsyncRunner:
    """For :class:`~agenitry.AsyncAgenitry`: every call is awaited."""

    supports_sync = False

    def __init__(self, client: Any) -> None:
        self._client = client

    def run(self, flow: Flow[T]) -> T:
        flow.close()
        raise TypeError("AsyncAgenitry gates async code: use 'async with client.spend(...)' or an async function")

    async def arun(self, flow: Flow[T]) -> T:
        return await adrive(flow, self._aperform)

    async def _aperform(self, step: Union[Call, Sleep]) -> Any:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        return await getattr(self._client, step.method)(*step.args, **step.kwargs)


# -- flows ----------------------------------------------------------------------------------


def approval_flow(authorization_id: str, timeout: float) -> Flow[dict[str, Any]]:
    """Poll an authorization with capped backoff until it is decided or ``timeout`` seconds pass.

    Approved → its record; denied or expired → :class:`SpendDenied`; still pending at the
    deadline → :class:`ApprovalRequired`.
    """
    deadline = time.monotonic() + timeout
    delay = APPROVAL_POLL_INITIAL
    while True:
        record: dict[str, Any] = yield Call("get_authorization", (authorization_id,))
        status = record.get("status")
        if status in APPROVED:
            return record
        if status != "pending":
            raise SpendDenied(record)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ApprovalRequired(record)
        yield Sleep(min(delay, remaining))
        delay = min(delay * 2, APPROVAL_POLL_MAX)


class Spend:
    """One gated spend: use it with ``with`` (or ``async with``); it is also the handle inside.

    >>> with client.spend("purchase_order", 120.0) as auth:  # doctest: +SKIP
    ...     receipt = supplier.order(salmon_lbs=50)
    ...     auth.actual_amount = receipt.total
    """

    def __init__(
        self,
        runner: Runner,
        action: str,
        amount: Any,
        *,
        agent_id: Optional[str] = None,
        currency: Optional[str] = None,
        context: Optional[dict[str, Any]] = None,
        reason: Optional[str] = None,
        settle: bool = False,
        wait: Optional[float] = None,
        idempotency_key: Optional[str] = None,
        authorization_id: Optional[str] = None,
    ) -> None:
        self._runner = runner
        self.action = action
        self.amount = amount
        self.agent_id = agent_id
        self.currency = currency
        self.context = context
        self.reason = reason
        self.settle = settle
        self.wait = wait
        self.idempotency_key = idempotency_key
        #: The gateway's decision (after waiting, the approved authorization record).
        self.authorization: Optional[dict[str, Any]] = None
        self.authorization_id: Optional[str] = authorization_id
        #: What was really spent; execute() sends it (None: the authorized amount).
        self.actual_amount: Optional[Any] = None
        self.executed: Optional[dict[str, Any]] = None
        self.settled: Optional[dict[str, Any]] = None
        self.reversed: Optional[dict[str, Any]] = None

    def _enter(self) -> Flow[Spend]:
        decision: dict[str, Any]
        if self.authorization_id is not None:
            # Continuing (after a pause): only the gateway's current record decides.
            decision = yield Call("get_authorization", (self.authorization_id,))
        else:
            decision = yield Call(
                "authorize",
                (self.action, self.amount),
                {
                    "agent_id": self.agent_id,
                    "currency": self.currency,
                    "context": self.context,
                    "reason": self.reason,
                    "idempotency_key": self.idempotency_key,
                },
            )
            replayable = self.idempotency_key is not None and decision.get("status") in ("pending", "approved")
            if replayable and decision.get("authorization_id"):
                # A repeat answers with the first decision; the owner may have decided since.
                decision = yield Call("get_authorization", (decision["authorization_id"],))
        self.authorization = decision
        self.authorization_id = decision.get("authorization_id") or decision.get("id")
        status = decision.get("status")
        if status == "approved":
            return self
        if status == "pending" and self.authorization_id:
            if self.wait is None:
                raise ApprovalRequired(decision)
            self.authorization = yield from approval_flow(self.authorization_id, self.wait)
            return self
        raise SpendDenied(decision)

    def _exit(self, error: Optional[BaseException]) -> Flow[None]:
        if error is not None:
            try:
                self.reversed = yield Call("reverse", (self.authorization_id,))
            except AgenitryError as exc:
                # The caller's exception matters more; the hold lapses when the window expires.
                logger.warning("Could not reverse %s after %r: %s", self.authorization_id, error, exc)
            return
        self.executed = yield Call("execute", (self.authorization_id,), {"actual_amount": self.actual_amount})
        if self.settle:
            self.settled = yield Call("settle", (self.authorization_id,))

    def __enter__(self) -> Spend:
        return self._runner.run(self._enter())

    def __exit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException], tb: Any) -> None:
        self._runner.run(self._exit(error))

    async def __aenter__(self) -> Spend:
        return await self._runner.arun(self._enter())

    async def __aexit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException], tb: Any) -> None:
        await self._runner.arun(self._exit(error))

    def __repr__(self) -> str:
        return f"Spend({self.action!r}, {self.amount!r}, authorization_id={self.authorization_id!r})"


# -- decorators -------------------------------------------------------------------------------


def _bound(signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return {name: value for name, value in bound.arguments.items() if name not in ("self", "cls")}


def guard(
    runner: Runner,
    *,
    action: str,
    amount: AmountSpec,
    settle: bool = False,
    actual: Optional[Callable[[Any], Any]] = None,
    agent_id: Optional[str] = None,
    currency: Optional[str] = None,
    reason: Optional[str] = None,
    wait: Optional[float] = None,
) -> Callable[[F], F]:
    """The decorator behind ``client.guard``: the function runs only once the spend is approved."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        if isinstance(amount, str) and amount not in signature.parameters:
            raise TypeError(f"guard(amount={amount!r}): {fn.__name__}() has no argument named {amount!r}")
        tool = getattr(fn, "__name__", "tool")

        def spend(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Spend:
            arguments = _bound(signature, args, kwargs)
            value = resolve_amount(amount, arguments, tool)
            context = {"tool": tool, "arguments": summarize_arguments(arguments)}
            return Spend(
                runner,
                action,
                value,
                agent_id=agent_id,
                currency=currency,
                context=context,
                reason=reason,
                settle=settle,
                wait=wait,
            )

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def gated_async(*args: Any, **kwargs: Any) -> Any:
                async with spend(args, kwargs) as auth:
                    result = await fn(*args, **kwargs)
                    if actual is not None:
                        auth.actual_amount = actual(result)
                    return result

            return cast(F, gated_async)

        if not runner.supports_sync:
            raise TypeError(f"AsyncAgenitry.guard wraps async functions; {tool}() is sync: use Agenitry.guard")

        @functools.wraps(fn)
        def gated(*args: Any, **kwargs: Any) -> Any:
            with spend(args, kwargs) as auth:
                result = fn(*args, **kwargs)
                if actual is not None:
                    auth.actual_amount = actual(result)
                return result

        return cast(F, gated)

    return decorate


RecordToolCall = Callable[[str, Mapping[str, Any], float, str, Optional[BaseException]], Any]


def logged(record: RecordToolCall, name: Optional[str] = None) -> Callable[[F], F]:
    """The decorator behind ``client.logged``: every call is recorded as a ``tool_call`` event."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        tool = name or str(getattr(fn, "__name__", "tool"))

        def note(args: tuple[Any, ...], kwargs: dict[str, Any], started: float, error: Optional[BaseException]) -> None:
            duration_ms = (time.perf_counter() - started) * 1000
            outcome = "ok" if error is None else "error" if isinstance(error, Exception) else "cancelled"
            try:
                record(tool, _bound(signature, args, kwargs), duration_ms, outcome, error)
            except Exception:  # recording must never change what the tool did
                logger.warning("Could not record the call of %s", tool, exc_info=True)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def recorded_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    note(args, kwargs, started, exc)
                    raise
                note(args, kwargs, started, None)
                return result

            return cast(F, recorded_async)

        @functools.wraps(fn)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                note(args, kwargs, started, exc)
                raise
            note(args, kwargs, started, None)
            return result

        return cast(F, recorded)

    return decorate


# -- what a tool call's record says -------------------------------------------------------------


def _summary(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else f"{value[:MAX_TEXT]}…(+{len(value) - MAX_TEXT} chars)"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {
            str(key): REDACTED_VALUE if REDACTED.search(str(key)) else _summary(item, depth + 1)
            for key, item in items[:MAX_ITEMS]
        }
        if len(items) > MAX_ITEMS:
            out["…"] = f"+{len(items) - MAX_ITEMS} more"
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        out_list = [_summary(item, depth + 1) for item in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            out_list.append(f"…(+{len(items) - MAX_ITEMS} more)")
        return out_list
    return _summary(repr(value), depth)


def summarize_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments fit for an audit log: secrets redacted by name, long values cut short.

    >>> summarize_arguments({"card_number": "4242424242424242", "note": "x" * 300})["card_number"]
    '[redacted]'
    """
    summary = cast(dict[str, Any], _summary(dict(arguments), 0))
    if len(json.dumps(summary, ensure_ascii=False)) > MAX_ARGUMENTS_BYTES:
        summary = {
            key: f"<{type(arguments[key]).__name__}>" if key in arguments else value for key, value in summary.items()
        }
    return summary


def describe_error(error: Union[BaseException, str, None]) -> Optional[str]:
    if error is None:
        return None
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text if len(text) <= 4 * MAX_TEXT else text[: 4 * MAX_TEXT] + "…"


#: The action of a recorded tool call (a custom action; its direction is internal).
TOOL_CALL = "tool_call"


def record_tool_call(
    client: BaseClient,
    name: str,
    arguments: Mapping[str, Any],
    duration_ms: float,
    outcome: str,
    error: Union[BaseException, str, None] = None,
    agent_id: Optional[str] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """Queue a ``tool_call`` event on ``client`` (never waits on the network).

    ``extra``: more context from adapters (a framework's run ids, tool_call_id,
    authorization_id), kept as given (it is not redacted: never put arguments in it); the
    standard keys win over it.
    """
    context = tool_call_context(name, arguments, duration_ms=duration_ms, outcome=outcome, error=error)
    if extra:
        context = {**extra, **context}
    event = client._new_event(
        TOOL_CALL, amount=None, currency=None, direction=None, agent_id=agent_id, context=context, reason=None
    )
    return client._enqueue(event)


def tool_call_context(
    name: str,
    arguments: Mapping[str, Any],
    *,
    duration_ms: float,
    outcome: str,
    error: Union[BaseException, str, None] = None,
) -> dict[str, Any]:
    """The context of a ``tool_call`` event: tool, arguments, duration_ms, outcome, error."""
    context: dict[str, Any] = {
        "tool": name,
        "arguments": summarize_arguments(arguments),
        "duration_ms": round(float(duration_ms), 3),
        "outcome": outcome,
    }
    described = describe_error(error)
    if described is not None:
        context["error"] = described
    return context
