"""Gate a LlamaIndex tool behind the spending policy; in workflow agents, wait for the owner.

:func:`gate_tool` wraps any tool. The inner tool runs only once the gateway approved the
spend; then the authorization is executed (or reversed if the tool fails). Denied →
``ToolOutput(is_error=True)`` with the reason; pending → ``is_error=True`` naming the
authorization, and the call is remembered: calling it again with the same arguments (or
:meth:`GatedTool.resume`) re-reads the authorization instead of asking again.

With ``human_approval=True`` the gate is a FunctionTool for workflow agents
(FunctionAgent, ReActAgent): on pending it emits an :class:`ApprovalRequestEvent` (an
``InputRequiredEvent`` carrying the authorization) and waits for a ``HumanResponseEvent``
with that ``authorization_id``. Whatever the response says, the gateway's record decides.
The workflow replays the step after the wait; the authorization id kept in the context's
store makes sure the replay neither authorizes nor executes twice.
"""

# No ``from __future__ import annotations``: LlamaIndex finds the Context parameter by its
# annotation object, which must not be a string.

import asyncio
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.tools import AsyncBaseTool, BaseTool, FunctionTool, ToolMetadata, ToolOutput, adapt_to_async_tool
from llama_index.core.workflow import Context, HumanResponseEvent, InputRequiredEvent

from agenitry import AgenitryError, ApprovalRequired, AsyncAgenitry, SpendDenied
from agenitry._base import BaseClient
from agenitry._gating import AmountSpec, resolve_amount, summarize_arguments

from ._tools import decision_text, resolve_client

__all__ = ["ApprovalRequestEvent", "Decision", "GatedTool", "gate_tool"]

#: Gated calls are spans too, so a direct call (outside an agent) is logged like any tool call.
dispatcher = get_dispatcher(__name__)


class ApprovalRequestEvent(InputRequiredEvent):
    """A spend waits for the owner: answer with ``HumanResponseEvent(response=..., authorization_id=...)``.

    The response only wakes the agent; the owner approves or denies in the gateway.
    """

    prefix: str = ""
    authorization_id: str
    authorization: dict[str, Any]
    tool_name: str
    tool_kwargs: dict[str, Any]


@dataclass
class Decision:
    """What came of one gated call."""

    status: str  # approved | denied | pending | error
    authorization_id: Optional[str]
    content: str


class _ToolFailed(Exception):
    def __init__(self, output: ToolOutput) -> None:
        super().__init__(str(output.content))
        self.output = output


class SpendRefused(Exception):
    """Raised inside a workflow agent's tool call; the agent turns it into an error output for the model.

    The agent keeps it as the output's ``exception``: ``status`` and ``authorization_id`` say what happened.
    """

    def __init__(self, message: str, *, status: str, authorization_id: Optional[str]) -> None:
        super().__init__(message)
        self.status = status
        self.authorization_id = authorization_id


class GatedOutput(str):
    """The text of an approved call's output, carrying its authorization id and the inner raw output."""

    authorization_id: Optional[str]
    raw_output: Any

    def __new__(cls, text: str, authorization_id: Optional[str], raw_output: Any) -> "GatedOutput":
        value = super().__new__(cls, text)
        value.authorization_id = authorization_id
        value.raw_output = raw_output
        return value


def _canonical(arguments: Mapping[str, Any]) -> str:
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)


class _Gate:
    """The steps shared by both gates: the spend, its amount and context, and the texts."""

    def __init__(
        self,
        inner: BaseTool,
        client: BaseClient,
        action: str,
        amount: AmountSpec,
        *,
        agent_id: Optional[str],
        settle: bool,
        actual: Optional[Callable[[Any], Any]],
    ) -> None:
        self.inner = inner
        self.client = client
        self.action = action
        self.amount = amount
        self.agent_id = agent_id
        self.settle = settle
        self.actual = actual
        self.name = inner.metadata.get_name()

    def amount_of(self, arguments: Mapping[str, Any]) -> Any:
        return resolve_amount(self.amount, arguments, self.name)

    def spend(self, arguments: Mapping[str, Any], authorization_id: Optional[str] = None) -> Any:
        return self.client.spend(  # type: ignore[attr-defined]
            self.action,
            self.amount_of(arguments),
            agent_id=self.agent_id,
            context={"tool": self.name, "arguments": summarize_arguments(arguments)},
            settle=self.settle,
            authorization_id=authorization_id,
        )

    def finish(self, auth: Any, output: ToolOutput) -> None:
        if output.is_error:
            raise _ToolFailed(output)  # reverses the authorization
        if self.actual is not None:
            auth.actual_amount = self.actual(output.raw_output)

    @staticmethod
    def failure_text(exc: BaseException, spend: Any) -> str:
        if isinstance(exc, AgenitryError) and spend.authorization_id is None:
            return f"error: could not ask the spending policy ({exc}); nothing was spent."
        cause = exc.output.content if isinstance(exc, _ToolFailed) else f"{type(exc).__name__}: {exc}"
        reversed_ = " The authorization was reversed; nothing was spent." if spend.reversed else ""
        return f"error: {cause}.{reversed_}"


class GatedTool(AsyncBaseTool):
    """A tool that runs its inner tool only when the gateway approved the spend (sync ``call`` and ``acall``)."""

    def __init__(self, gate: _Gate) -> None:
        self._gate = gate
        self._inner = adapt_to_async_tool(gate.inner)
        #: Pending calls by the canonical JSON of their arguments → authorization id.
        self._waiting: dict[str, str] = {}
        self._arguments: dict[str, dict[str, Any]] = {}
        #: The last call's decision (for inspection and tests).
        self.last: Optional[Decision] = None

    @property
    def metadata(self) -> ToolMetadata:
        return self._gate.inner.metadata

    @property
    def waiting(self) -> dict[str, dict[str, Any]]:
        """The arguments of each call waiting for the owner, by authorization id."""
        return dict(self._arguments)

    def _output(self, decision: Decision, kwargs: dict[str, Any], inner: Optional[ToolOutput] = None) -> ToolOutput:
        self.last = decision
        key = _canonical(kwargs)
        if decision.status == "pending" and decision.authorization_id:
            self._waiting[key] = decision.authorization_id
            self._arguments[decision.authorization_id] = kwargs
        elif decision.authorization_id:
            self._waiting.pop(key, None)
            self._arguments.pop(decision.authorization_id, None)
        if inner is not None and decision.status == "approved":
            return inner
        return ToolOutput(
            content=decision.content,
            tool_name=self._gate.name,
            raw_input={"args": (), "kwargs": kwargs},
            raw_output={"status": decision.status, "authorization_id": decision.authorization_id},
            is_error=True,
        )

    @dispatcher.span
    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        if isinstance(self._gate.client, AsyncAgenitry):
            raise TypeError("this tool gates with an AsyncAgenitry client: use 'await tool.acall(...)'")
        spend = self._gate.spend(kwargs, self._waiting.get(_canonical(kwargs)))
        try:
            with spend as auth:
                output = self._inner.call(*args, **kwargs)
                self._gate.finish(auth, output)
        except (ApprovalRequired, SpendDenied) as refused:
            return self._output(_refusal(refused), kwargs)
        except Exception as exc:
            return self._output(Decision("error", spend.authorization_id, self._gate.failure_text(exc, spend)), kwargs)
        return self._output(Decision("approved", spend.authorization_id, str(output.content)), kwargs, output)

    @dispatcher.span
    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        spend = self._gate.spend(kwargs, self._waiting.get(_canonical(kwargs)))
        try:
            async with spend as auth:
                output = await self._inner.acall(*args, **kwargs)
                self._gate.finish(auth, output)
        except (ApprovalRequired, SpendDenied) as refused:
            return self._output(_refusal(refused), kwargs)
        except Exception as exc:
            return self._output(Decision("error", spend.authorization_id, self._gate.failure_text(exc, spend)), kwargs)
        return self._output(Decision("approved", spend.authorization_id, str(output.content)), kwargs, output)

    def resume(self, authorization_id: str) -> ToolOutput:
        """Continue a pending call: runs it only if the gateway now says approved."""
        return self.call(**self._pending(authorization_id))

    async def aresume(self, authorization_id: str) -> ToolOutput:
        return await self.acall(**self._pending(authorization_id))

    def _pending(self, authorization_id: str) -> dict[str, Any]:
        if authorization_id not in self._arguments:
            raise KeyError(f"no pending call for authorization {authorization_id}")
        return self._arguments[authorization_id]


def _refusal(refused: Union[ApprovalRequired, SpendDenied]) -> Decision:
    record = dict(refused.authorization)
    if isinstance(refused, ApprovalRequired):
        return Decision("pending", refused.authorization_id, decision_text(record))
    if record.get("status") in ("executed", "settled"):
        return Decision("denied", refused.authorization_id, "denied: this authorization was already used.")
    return Decision("denied", refused.authorization_id, decision_text(record))


def _approval_tool(gate: _Gate, timeout: Optional[float]) -> FunctionTool:
    """The gate as a FunctionTool that takes the workflow Context and waits for the owner."""
    client = gate.client
    inner = adapt_to_async_tool(gate.inner)

    async def ask(method: str, *args: Any, **kwargs: Any) -> Any:
        if isinstance(client, AsyncAgenitry):
            return await getattr(client, method)(*args, **kwargs)
        return await asyncio.to_thread(functools.partial(getattr(client, method), *args, **kwargs))

    async def gated(ctx: Context, **kwargs: Any) -> Any:
        key = f"agenitry:{gate.name}:{_canonical(kwargs)}"
        authorization_id = await ctx.store.get(key, default=None)
        if authorization_id is None:
            spend = gate.spend(kwargs)
            decision = await ask(
                "authorize",
                gate.action,
                spend.amount,
                agent_id=gate.agent_id,
                context=spend.context,
            )
            authorization_id = decision.get("authorization_id")
            if authorization_id is None:
                raise SpendRefused(decision_text(decision), status="error", authorization_id=None)
            # Remembered before waiting: the replay after the wait finds it and does not authorize again.
            await ctx.store.set(key, authorization_id)
            pending = decision.get("status") == "pending"
        else:
            pending = True  # only a replay after the wait gets here
        try:
            if pending:
                record = await ask("get_authorization", authorization_id)
                await ctx.wait_for_event(
                    HumanResponseEvent,
                    waiter_id=key,
                    waiter_event=ApprovalRequestEvent(
                        prefix=decision_text(record),
                        authorization_id=authorization_id,
                        authorization=record,
                        tool_name=gate.name,
                        tool_kwargs=kwargs,
                    ),
                    requirements={"authorization_id": authorization_id},
                    timeout=timeout,
                )
            # Whatever the human said, the gateway's record decides.
            spend = gate.spend(kwargs, authorization_id)
            try:
                async with spend as auth:
                    output = await inner.acall(**kwargs)
                    gate.finish(auth, output)
            except (ApprovalRequired, SpendDenied) as refused:
                refusal = _refusal(refused)
                raise SpendRefused(refusal.content, status=refusal.status, authorization_id=authorization_id) from None
            except SpendRefused:
                raise
            except Exception as exc:
                text = gate.failure_text(exc, spend)
                raise SpendRefused(text, status="error", authorization_id=authorization_id) from exc
        except SpendRefused:
            await ctx.store.set(key, None)
            raise
        await ctx.store.set(key, None)
        return GatedOutput(str(output.content), authorization_id, output.raw_output)

    metadata = gate.inner.metadata
    return FunctionTool.from_defaults(
        async_fn=gated,
        name=metadata.get_name(),
        description=metadata.description,
        fn_schema=metadata.fn_schema,
        return_direct=metadata.return_direct,
    )


def gate_tool(
    tool: Union[BaseTool, Callable[..., Any]],
    *,
    action: str,
    amount: AmountSpec,
    client: Optional[BaseClient] = None,
    api_key: Optional[str] = None,
    venue_id: Optional[str] = None,
    agent_id: Optional[str] = None,
    base_url: Optional[str] = None,
    settle: bool = False,
    actual: Optional[Callable[[Any], Any]] = None,
    human_approval: bool = False,
    approval_timeout: Optional[float] = None,
) -> Union[GatedTool, FunctionTool]:
    """Wrap a tool (or a plain function) so it runs only when the spending policy approves.

    ``amount``: the name of the tool's amount argument, a function of its arguments, or a number.
    ``actual``: the amount really spent, from the tool's raw output (default: the authorized one).
    ``human_approval``: for workflow agents, wait for the owner's decision instead of answering pending.
    """
    inner = tool if isinstance(tool, BaseTool) else FunctionTool.from_defaults(fn=tool)
    gate = _Gate(
        inner,
        resolve_client(client, api_key, venue_id, agent_id, base_url),
        action,
        amount,
        agent_id=agent_id if client is not None else None,
        settle=settle,
        actual=actual,
    )
    if human_approval:
        return _approval_tool(gate, approval_timeout)
    return GatedTool(gate)
