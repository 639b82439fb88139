"""Gate and record one tool call of a LangChain/LangGraph agent: the part the middleware and ToolNode share.

A spending call goes through the core client's ``spend`` (authorize, run, execute or
reverse); this module only translates its answers for the framework: denied → a
``ToolMessage`` with status error and the reason; pending → ``interrupt()`` carrying the
authorization; after a resume the call starts again from the top, and the decision is
the authorization as the gateway has it *now* — the resume value is never read.

Re-runs are idempotent: the authorize request carries an Idempotency-Key made from the
thread and the tool_call_id, so a node that runs again (after a resume, after a restart
in another process) gets the same authorization back, and an authorization already
executed is not run a second time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar, Union

from langchain_core.messages import ToolMessage
from langgraph.errors import GraphBubbleUp
from langgraph.types import Command, interrupt

from agenitry import AgenitryError, ApprovalRequired, SpendDenied
from agenitry._gating import AmountSpec, logger, record_tool_call, resolve_amount, summarize_arguments

Result = Union[ToolMessage, Command[Any]]
M = TypeVar("M")
#: What a pause hands the human (``Interrupt.value``): enough to find and decide the authorization.
INTERRUPT_TYPE = "agenitry_approval"
#: Statuses that mean the side effect already happened under this authorization.
DONE = ("executed", "settled")


@dataclass(frozen=True)
class Gate:
    """Which spend a tool is: its action and where its amount comes from.

    ``amount``: an argument's name, a function of the arguments (a dict), or a number.
    ``actual``: maps the tool's result (a ToolMessage) to the amount really spent.
    """

    action: str
    amount: AmountSpec
    settle: bool = False
    actual: Optional[Callable[[Any], Any]] = None
    currency: Optional[str] = None

    def amount_of(self, args: Mapping[str, Any], tool: str = "the tool") -> Any:
        return resolve_amount(self.amount, args, tool)


Gates = Mapping[str, Union[Gate, Mapping[str, Any]]]


def as_gates(spending: Optional[Gates]) -> dict[str, Gate]:
    """``{"order_food": Gate(...)}`` or ``{"order_food": {"action": ..., "amount": ...}}``."""
    return {name: gate if isinstance(gate, Gate) else Gate(**gate) for name, gate in (spending or {}).items()}


def idempotency_key(
    config: Optional[Mapping[str, Any]], tool_call_id: Optional[str], args: Optional[Mapping[str, Any]] = None
) -> Optional[str]:
    """One key per (thread, tool call, arguments); None without a thread, where nothing can resume anyway.

    The arguments are part of it so that an edited call (same id, other amount) is a new
    request for the gateway to decide, never a replay of the original's approval.
    """
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None or not tool_call_id:
        return None
    arguments = json.dumps(dict(args or {}), sort_keys=True, default=str, separators=(",", ":"))
    digest = hashlib.sha256(f"{thread_id}\x00{tool_call_id}\x00{arguments}".encode()).hexdigest()
    return f"agenitry-lc-{digest[:48]}"


class _ToolFailed(Exception):
    """The tool answered with an error message: the spend must be reversed."""

    def __init__(self, message: ToolMessage) -> None:
        super().__init__(message.content)
        self.message = message


def _error(call: Mapping[str, Any], text: str, status: str, authorization_id: Optional[str] = None) -> ToolMessage:
    message = ToolMessage(content=text, tool_call_id=call.get("id") or "", name=call.get("name"), status="error")
    return _mark(message, status, authorization_id)


def _mark(message: M, status: str, authorization_id: Optional[str]) -> M:
    """What the gate decided, for code (never sent to the model): ``response_metadata["agenitry"]``."""
    if isinstance(message, ToolMessage):
        message.response_metadata = {
            **message.response_metadata,
            "agenitry": {"status": status, "authorization_id": authorization_id},
        }
    return message


def _amount_text(record: Mapping[str, Any]) -> str:
    amount = record.get("amount")
    currency = record.get("currency") or ""
    return f"{amount} {currency}".strip()


def pending_text(record: Mapping[str, Any]) -> str:
    return (
        f"Waiting for the owner's approval: {record.get('action')} of {_amount_text(record)} "
        f"(authorization {record.get('authorization_id') or record.get('id')}). Nothing was done yet."
    )


def denied_text(record: Mapping[str, Any]) -> str:
    status = record.get("status") or "denied"
    reason = record.get("denial_reason") or record.get("message")
    ident = record.get("authorization_id") or record.get("id")
    why = f": {reason}" if reason else ""
    return f"Not authorized ({status}){why}. Nothing was done (authorization {ident}). Do not retry this spend."


def done_text(record: Mapping[str, Any]) -> str:
    ident = record.get("authorization_id") or record.get("id")
    return (
        f"Already done: this call was carried out under authorization {ident} ({record.get('status')}); not repeated."
    )


def failed_text(name: str, error: Union[BaseException, str], authorization_id: Optional[str]) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return f"{name} failed: {text}. The authorization {authorization_id} was reversed; nothing was spent."


def interrupt_value(record: Mapping[str, Any], call: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": INTERRUPT_TYPE,
        "authorization_id": record.get("authorization_id") or record.get("id"),
        "status": record.get("status"),
        "action": record.get("action"),
        "amount": record.get("amount"),
        "currency": record.get("currency"),
        "expires_at": record.get("expires_at"),
        "tool": call.get("name"),
        "tool_call_id": call.get("id"),
        "args": dict(call.get("args") or {}),
        "message": pending_text(record),
    }


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

    # -- recording ----------------------------------------------------------------------------

    def record(self, call: Mapping[str, Any], started: float, outcome: str, error: Any = None, **extra: Any) -> None:
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
                extra={"tool_call_id": call.get("id"), **{k: v for k, v in extra.items() if v is not None}},
            )
        except Exception:  # a log that cannot be queued never changes what the agent does
            logger.warning("Could not record a tool call", exc_info=True)

    # -- the spend ------------------------------------------------------------------------------

    def _spend(
        self, gate: Gate, call: Mapping[str, Any], config: Optional[Mapping[str, Any]], known: Optional[str]
    ) -> Any:
        """The core spend; ``known``: the authorization a pause already made (read, never re-asked)."""
        args = dict(call.get("args") or {})
        return self.client.spend(
            gate.action,
            gate.amount_of(args, str(call.get("name"))),
            agent_id=self.agent_id,
            currency=gate.currency,
            context={"tool": call.get("name"), "arguments": summarize_arguments(args), "tool_call_id": call.get("id")},
            settle=gate.settle,
            idempotency_key=idempotency_key(config, call.get("id"), args),
            authorization_id=known,
        )

    def _refused(self, call: Mapping[str, Any], started: float, denied: SpendDenied) -> ToolMessage:
        record = denied.authorization
        if record.get("status") in DONE:
            self.record(call, started, "ok", authorization_id=denied.authorization_id, note="already executed")
            done = ToolMessage(content=done_text(record), tool_call_id=call.get("id") or "", name=call.get("name"))
            return _mark(done, "done", denied.authorization_id)
        self.record(call, started, "denied", denied.reason, authorization_id=denied.authorization_id)
        return _error(call, denied_text(record), str(record.get("status") or "denied"), denied.authorization_id)

    def _paused(self, call: Mapping[str, Any], started: float, pending: ApprovalRequired) -> Optional[ToolMessage]:
        """Pause (``interrupt``) or, with ``pause=False``, tell the model it waits; None: look again."""
        if not self.pause:
            self.record(call, started, "paused", authorization_id=pending.authorization_id)
            return _error(call, pending_text(pending.authorization), "pending", pending.authorization_id)
        try:
            # Raises GraphInterrupt the first time; after a resume it returns the resume value,
            # which is ignored on purpose: the caller reads the authorization again.
            interrupt(interrupt_value(pending.authorization, call))
        except GraphBubbleUp:
            self.record(call, started, "paused", authorization_id=pending.authorization_id)
            raise
        return None

    @staticmethod
    def _check(result: Result) -> None:
        if isinstance(result, ToolMessage) and result.status == "error":
            raise _ToolFailed(result)

    def wrap(self, request: Any, handler: Callable[[Any], Result]) -> Result:
        call = request.tool_call
        started = time.perf_counter()
        gate = self.gates.get(call.get("name"))
        if gate is None:
            return self._plain(call, started, lambda: handler(request))
        config = getattr(request.runtime, "config", None)
        known: Optional[str] = None
        while True:
            auth = None
            try:
                spend = self._spend(gate, call, config, known)
                with spend as auth:
                    result = handler(request)
                    self._check(result)
                    if gate.actual is not None:
                        auth.actual_amount = gate.actual(result)
            except ApprovalRequired as pending:
                message = self._paused(call, started, pending)
                if message is None:
                    known = pending.authorization_id
                    continue
                return message
            except SpendDenied as denied:
                return self._refused(call, started, denied)
            except GraphBubbleUp:
                raise
            except Exception as error:
                return self._failed(call, started, error, auth)
            self.record(call, started, "ok", authorization_id=auth.authorization_id)
            return _mark(result, "approved", auth.authorization_id)

    async def awrap(self, request: Any, handler: Callable[[Any], Awaitable[Result]]) -> Result:
        call = request.tool_call
        started = time.perf_counter()
        gate = self.gates.get(call.get("name"))
        if gate is None:
            return await self._aplain(call, started, lambda: handler(request))
        config = getattr(request.runtime, "config", None)
        # An async ToolNode gathers its calls and returns at the first interrupt while the
        # others still run; a resume could then re-run a call whose side effect is under way
        # but not yet executed. So a call pauses only once its siblings have finished or paused.
        configurable = (config or {}).get("configurable") or {}
        group = f"{configurable.get('thread_id')}\x00{configurable.get('checkpoint_ns')}"
        flight = asyncio.Event()
        peers = self._flights.setdefault(group, [])
        peers.append(flight)
        try:
            return await self._agated(request, handler, call, gate, config, started, flight, peers)
        finally:
            flight.set()
            peers.remove(flight)
            if not peers:
                self._flights.pop(group, None)

    async def _agated(
        self,
        request: Any,
        handler: Callable[[Any], Awaitable[Result]],
        call: Mapping[str, Any],
        gate: Gate,
        config: Optional[Mapping[str, Any]],
        started: float,
        flight: asyncio.Event,
        peers: list[asyncio.Event],
    ) -> Result:
        known: Optional[str] = None
        while True:
            auth = None
            try:
                spend = self._spend(gate, call, config, known)
                async with spend as auth:
                    result = await handler(request)
                    self._check(result)
                    if gate.actual is not None:
                        auth.actual_amount = gate.actual(result)
            except ApprovalRequired as pending:
                if self.pause:
                    flight.set()
                    await asyncio.gather(*(peer.wait() for peer in list(peers) if peer is not flight))
                message = self._paused(call, started, pending)
                if message is None:
                    known = pending.authorization_id
                    continue
                return message
            except SpendDenied as denied:
                return self._refused(call, started, denied)
            except GraphBubbleUp:
                raise
            except Exception as error:
                return self._failed(call, started, error, auth)
            self.record(call, started, "ok", authorization_id=auth.authorization_id)
            return _mark(result, "approved", auth.authorization_id)

    def _failed(self, call: Mapping[str, Any], started: float, error: Exception, auth: Any) -> Result:
        """What the model reads when the tool failed (its spend reversed) or no authorization came."""
        ident = getattr(auth, "authorization_id", None)
        if isinstance(error, _ToolFailed):
            self.record(call, started, "error", str(error), authorization_id=ident)
            return _mark(error.message, "error", ident)
        if isinstance(error, AgenitryError):
            self.record(call, started, "error", error)
            return _error(call, f"Could not get an authorization for {call.get('name')}: {error}", "error")
        self.record(call, started, "error", error, authorization_id=ident)
        return _error(call, failed_text(str(call.get("name")), error, ident), "error", ident)

    # -- calls that spend nothing: only recorded ---------------------------------------------------

    def _plain(self, call: Mapping[str, Any], started: float, run: Callable[[], Result]) -> Result:
        try:
            result = run()
        except GraphBubbleUp:
            self.record(call, started, "paused")
            raise
        except BaseException as error:
            self.record(call, started, "error" if isinstance(error, Exception) else "cancelled", error)
            raise
        self._note(call, started, result)
        return result

    async def _aplain(self, call: Mapping[str, Any], started: float, run: Callable[[], Awaitable[Result]]) -> Result:
        try:
            result = await run()
        except GraphBubbleUp:
            self.record(call, started, "paused")
            raise
        except BaseException as error:
            self.record(call, started, "error" if isinstance(error, Exception) else "cancelled", error)
            raise
        self._note(call, started, result)
        return result

    def _note(self, call: Mapping[str, Any], started: float, result: Result) -> None:
        if isinstance(result, ToolMessage) and result.status == "error":
            self.record(call, started, "error", str(result.content))
        else:
            self.record(call, started, "ok")
