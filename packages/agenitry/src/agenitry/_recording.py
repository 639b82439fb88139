"""Tool-call records: what a call's audit event says, and the decorator that logs every call.

A record never changes what the tool did: it is queued without waiting on the network,
arguments are redacted by name (secrets never leave the process) and cut short.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional, TypeVar, Union, cast

from agenitry._base import BaseClient
from agenitry._texts import describe_error

logger = logging.getLogger("agenitry")

F = TypeVar("F", bound=Callable[..., Any])

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


def bound_arguments(signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments by name, defaults filled in (``self`` and ``cls`` left out)."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return {name: value for name, value in bound.arguments.items() if name not in ("self", "cls")}


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
                record(tool, bound_arguments(signature, args, kwargs), duration_ms, outcome, error)
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
