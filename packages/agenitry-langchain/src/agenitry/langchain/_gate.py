"""Gate and record one tool call of a LangChain/LangGraph agent: the part the middleware and ToolNode share.

A spending call goes through core's gated call (``agenitry.integration.run_gated``:
check the amount, authorize, claim, run, execute or release, record); this module only
translates: a ``ToolCallRequest`` → a :class:`~agenitry.integration.GatedCall`, and the
outcome → a ``ToolMessage`` (status error for what the model should read as one) or, for
``pending``, ``interrupt()`` carrying the authorization.

After a resume LangGraph runs the node again from the top. The call's Idempotency-Key
(:func:`~agenitry.integration.call_key` over the thread, the tool_call_id, the tool and
its arguments) brings back the same authorization, read as the gateway has it *now*; the
resume value is never read. The claim makes a second run of an approved call answer
``in_progress`` or ``already_done`` instead of running its side effect again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Optional, TypeVar, Union

from langchain_core.messages import ToolMessage
from langchain_core.tools import ToolException
from langgraph.errors import GraphBubbleUp
from langgraph.types import Command, interrupt

from agenitry.integration import (
    AmountSpec,
    Authorization,
    GatedCall,
    GateOutcome,
    arun_gated,
    call_key,
    record_tool_call,
    run_gated,
)

logger = logging.getLogger("agenitry")
Result = Union[ToolMessage, Command[Any]]
M = TypeVar("M")
#: What a pause hands the human (``Interrupt.value``): enough to find and decide the authorization.
INTERRUPT_TYPE = "agenitry_approval"


@dataclass(frozen=True)
class Gate:
    """Which spend a tool is: its action and where its amount comes from.

    ``amount``: an argument's name, a function of the arguments (a dict), or a number; the
    value the model wrote must be a JSON number (``"450"`` or ``true`` is refused unrun).
    ``actual``: maps the tool's result (a ToolMessage) to the amount really spent.
    """

    action: str
    amount: AmountSpec
    settle: bool = False
    actual: Optional[Callable[[Any], Any]] = None
    currency: Optional[str] = None

    def request(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        agent_id: Optional[str] = None,
        key: Optional[str] = None,
        record: bool = True,
        context: Optional[Mapping[str, Any]] = None,
        extra: Optional[Mapping[str, Any]] = None,
    ) -> GatedCall:
        """The gated call of one invocation of ``tool`` with the model's ``arguments``, as sent."""
        return GatedCall(
            self.action,
            self.amount,
            arguments,
            tool=tool,
            currency=self.currency,
            agent_id=agent_id,
            context=context,
            settle=self.settle,
            key=key,
            actual=self.actual,
            record=record,
            extra=extra or {},
        )


Gates = Mapping[str, Union[Gate, Mapping[str, Any]]]


def as_gates(spending: Optional[Gates]) -> dict[str, Gate]:
    """``{"order_food": Gate(...)}`` or ``{"order_food": {"action": ..., "amount": ...}}``."""
    return {name: gate if isinstance(gate, Gate) else Gate(**gate) for name, gate in (spending or {}).items()}


def mark(message: M, outcome: str, authorization_id: Optional[str]) -> M:
    """What the gate decided, for code (never sent to the model): ``response_metadata["agenitry"]``."""
    if isinstance(message, ToolMessage):
        message.response_metadata = {
            **message.response_metadata,
            "agenitry": {"status": outcome, "authorization_id": authorization_id},
        }
    return message


def checked(result: Any) -> Any:
    """The tool's answer, or :class:`ToolException` when it answered an error (so its spend is released)."""
    if isinstance(result, ToolMessage) and result.status == "error":
        raise ToolException(result.text)
    return result


def interrupt_value(authorization: Authorization, message: str, call: Mapping[str, Any]) -> dict[str, Any]:
    """The pause's payload: the pending authorization and the call it holds back."""
    return {
        "type": INTERRUPT_TYPE,
        "authorization_id": authorization.id,
        "status": authorization.status,
        "action": authorization.action,
        "amount": authorization.raw.get("amount"),
        "currency": authorization.currency,
        "expires_at": authorization.expires_at,
        "tool": call.get("name"),
        "tool_call_id": call.get("id"),
        "args": dict(call.get("args") or {}),
        "message": message,
    }


def pause_graph(value: dict[str, Any]) -> NoReturn:
    """Pause the graph on a call the gateway has just said is pending.

    On a re-run after a resume, the ``interrupt()`` calls already answered return their
    resume values, which are stale: the gateway was read after them. So the loop goes on
    until the first unanswered ``interrupt()``, which raises ``GraphInterrupt``.
    """
    while True:
        interrupt(value)


class ToolCallGate:
    """``wrap``/``awrap`` for ``ToolCallRequest`` handlers: log every call, gate the spending ones.

    ``client`` is an :class:`agenitry.Agenitry` (its calls run in a thread under async) or
    an :class:`agenitry.AsyncAgenitry` (async agents only).
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
        self.client = client
        self.gates = as_gates(spending)
        self.pause = pause
        self.log_calls = log_calls
        self.agent_id = agent_id
        self._flights: dict[str, list[asyncio.Event]] = {}

    def _request(self, gate: Gate, request: Any) -> GatedCall:
        call = request.tool_call
        configurable = (getattr(request.runtime, "config", None) or {}).get("configurable") or {}
        name, arguments = str(call.get("name")), dict(call.get("args") or {})
        return gate.request(
            name,
            arguments,
            agent_id=self.agent_id,
            # Without a thread nothing can resume the call, so nothing may repeat it either.
            key=call_key(configurable["thread_id"], call.get("id"), name, arguments)
            if configurable.get("thread_id") is not None
            else None,
            record=self.log_calls,
            context={"tool_call_id": call.get("id")},
            extra={"tool_call_id": call.get("id")},
        )

    def _answer(self, call: Mapping[str, Any], outcome: GateOutcome) -> Result:
        """The outcome as the framework's answer; ``pending`` pauses the graph (unless ``pause=False``)."""
        if outcome.kind == "pending" and self.pause and outcome.authorization is not None:
            pause_graph(interrupt_value(outcome.authorization, outcome.message, call))
        if isinstance(outcome.error, GraphBubbleUp):  # the tool itself paused or handed control up
            raise outcome.error
        if outcome.kind == "ran":
            result: Result = outcome.result
            return mark(result, outcome.kind, outcome.authorization_id)
        message = ToolMessage(
            content=outcome.message,
            tool_call_id=call.get("id") or "",
            name=call.get("name"),
            status="error" if outcome.is_error else "success",
        )
        return mark(message, outcome.kind, outcome.authorization_id)

    def wrap(self, request: Any, handler: Callable[[Any], Result]) -> Result:
        gate = self.gates.get(request.tool_call.get("name"))
        if gate is None:
            return self._plain(request.tool_call, lambda: handler(request))
        outcome = run_gated(self.client, self._request(gate, request), lambda: checked(handler(request)))
        return self._answer(request.tool_call, outcome)

    async def awrap(self, request: Any, handler: Callable[[Any], Awaitable[Result]]) -> Result:
        gate = self.gates.get(request.tool_call.get("name"))
        if gate is None:
            return await self._aplain(request.tool_call, lambda: handler(request))

        async def body() -> Any:
            return checked(await handler(request))

        # An async ToolNode gathers its calls and returns at the first interrupt while the
        # others still run; their claims would then answer "in progress" on the resume. So a
        # call pauses only once its siblings have finished or paused.
        configurable = (getattr(request.runtime, "config", None) or {}).get("configurable") or {}
        group = f"{configurable.get('thread_id')}\x00{configurable.get('checkpoint_ns')}"
        flight = asyncio.Event()
        peers = self._flights.setdefault(group, [])
        peers.append(flight)
        try:
            outcome = await arun_gated(self.client, self._request(gate, request), body)
            if outcome.kind == "pending" and self.pause:
                flight.set()
                await asyncio.gather(*(peer.wait() for peer in list(peers) if peer is not flight))
            return self._answer(request.tool_call, outcome)
        finally:
            flight.set()
            peers.remove(flight)
            if not peers:
                self._flights.pop(group, None)

    # -- calls that spend nothing: only recorded ---------------------------------------------------

    def record(self, call: Mapping[str, Any], started: float, outcome: str, error: Any = None) -> None:
        """Queue the ``tool_call`` event of a call that spends nothing (never raises, never waits)."""
        if not self.log_calls:
            return
        try:
            record_tool_call(
                self.client,
                str(call.get("name")),
                dict(call.get("args") or {}),
                (time.perf_counter() - started) * 1000,
                outcome,
                error,
                self.agent_id,
                extra={"tool_call_id": call.get("id")} if call.get("id") else None,
            )
        except Exception:  # a log that cannot be queued never changes what the agent does
            logger.warning("Could not record a tool call", exc_info=True)

    def _plain(self, call: Mapping[str, Any], run: Callable[[], Result]) -> Result:
        started = time.perf_counter()
        try:
            result = run()
        except BaseException as error:
            self._failed(call, started, error)
            raise
        self._note(call, started, result)
        return result

    async def _aplain(self, call: Mapping[str, Any], run: Callable[[], Awaitable[Result]]) -> Result:
        started = time.perf_counter()
        try:
            result = await run()
        except BaseException as error:
            self._failed(call, started, error)
            raise
        self._note(call, started, result)
        return result

    def _failed(self, call: Mapping[str, Any], started: float, error: BaseException) -> None:
        if isinstance(error, GraphBubbleUp):
            self.record(call, started, "paused")
        else:
            self.record(call, started, "error" if isinstance(error, Exception) else "cancelled", error)

    def _note(self, call: Mapping[str, Any], started: float, result: Result) -> None:
        if isinstance(result, ToolMessage) and result.status == "error":
            self.record(call, started, "error", result.text)
        else:
            self.record(call, started, "ok")
