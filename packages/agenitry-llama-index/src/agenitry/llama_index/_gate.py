"""Gate a LlamaIndex tool behind the spending policy; in workflow agents, wait for the owner.

:func:`gate_tool` wraps any tool in a :class:`GatedTool`, which only translates: a tool
call becomes one :class:`~agenitry.integration.GatedCall` for core's gated-call flow
(the amount checked as the model sent it, the authorization claimed, the inner tool run
at most once, executed or released), and the :class:`~agenitry.integration.GateOutcome`
becomes a ``ToolOutput``.

Inside a workflow agent (FunctionAgent, ReActAgent, ...) a call is identified by the
agent's tool call id, so the same call run again (a replayed step, a restored run)
continues its authorization and never runs twice. With ``human_approval=True`` a
pending call emits an :class:`ApprovalRequestEvent` and waits for a
``HumanResponseEvent``; the response only wakes the agent, the gateway's record decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.tools import AsyncBaseTool, BaseTool, FunctionTool, ToolMetadata, ToolOutput, adapt_to_async_tool
from llama_index.core.workflow import Context, HumanResponseEvent, InputRequiredEvent, WorkflowRuntimeError

from agenitry.integration import (
    AmountSpec,
    AsyncAgenitry,
    Client,
    GatedCall,
    GateOutcome,
    adecide,
    arun_gated,
    call_key,
    run_gated,
)

from ._tools import resolve_client

__all__ = [
    "ApprovalRequestEvent",
    "Decision",
    "GatedOutput",
    "GatedTool",
    "SpendRefused",
    "gate_tool",
    "pending_approvals",
]

#: Gated calls are spans too, so instrumentation sees them (and leaves their recording to the flow).
dispatcher = get_dispatcher(__name__)

#: What the model is told, by outcome kind (the kinds not listed keep their name).
STATUS = {"ran": "approved", "failed": "error", "unavailable": "error", "already_done": "done"}
#: Where a run's context keeps the approvals it waits for (``ctx.store``), by call key.
APPROVALS = "agenitry_approvals"


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
    """What came of one gated call: ``status`` is approved, denied, pending, done, in_progress, error or invalid."""

    status: str
    authorization_id: Optional[str]
    content: str


class SpendRefused(Exception):
    """The ``exception`` of a gated call's error output: ``status`` and ``authorization_id`` say what happened."""

    def __init__(self, message: str, *, status: str, authorization_id: Optional[str]) -> None:
        super().__init__(message)
        self.status = status
        self.authorization_id = authorization_id


class ToolFailed(Exception):
    """The inner tool answered with an error output instead of raising: nothing was spent."""


class GatedOutput(str):
    """The text of an approved call's output, carrying its authorization id and the inner raw output."""

    authorization_id: Optional[str]
    raw_output: Any

    def __new__(cls, text: str, authorization_id: Optional[str], raw_output: Any) -> GatedOutput:
        value = super().__new__(cls, text)
        value.authorization_id = authorization_id
        value.raw_output = raw_output
        return value


def _step_context() -> Optional[Context]:
    try:
        return Context.get_step_context()
    except WorkflowRuntimeError:  # called outside a workflow step
        return None


def _agent_call_id() -> Optional[str]:
    """The id of the tool call a workflow agent is running now, or None outside an agent."""
    # LlamaIndex passes no tool its call id: it lives on the running step's event (the
    # agent's ToolCall), held by the workflows runtime's step contextvar, which is not a
    # public API; without it each call is its own decision.
    try:
        from workflows.runtime.types.results import StepWorkerStateContextVar

        event = StepWorkerStateContextVar.get().event
    except (ImportError, LookupError):
        return None
    tool_id = getattr(event, "tool_id", None)
    return tool_id if isinstance(tool_id, str) and tool_id else None


def _checked(output: ToolOutput) -> ToolOutput:
    """The inner tool's output; an error output fails the call, so the authorization is released."""
    if output.is_error:
        raise output.exception if isinstance(output.exception, Exception) else ToolFailed(str(output.content))
    return output


class GatedTool(AsyncBaseTool):
    """A tool that runs its inner tool only when the gateway approved the spend (sync ``call`` and ``acall``)."""

    def __init__(
        self,
        inner: BaseTool,
        client: Client,
        action: str,
        amount: AmountSpec,
        *,
        agent_id: Optional[str] = None,
        settle: bool = False,
        actual: Optional[Callable[[Any], Any]] = None,
        human_approval: bool = False,
        approval_timeout: Optional[float] = None,
    ) -> None:
        self._inner = inner
        self._ainner = adapt_to_async_tool(inner)
        self._client = client
        self._action = action
        self._amount = amount
        self._agent_id = agent_id
        self._settle = settle
        self._actual = actual
        self._human_approval = human_approval
        self._approval_timeout = approval_timeout
        self._arguments: dict[str, dict[str, Any]] = {}
        #: The last call's decision (for inspection and tests).
        self.last: Optional[Decision] = None

    @property
    def metadata(self) -> ToolMetadata:
        return self._inner.metadata

    @property
    def waiting(self) -> dict[str, dict[str, Any]]:
        """The arguments of each call waiting for the owner, by authorization id."""
        return dict(self._arguments)

    def _request(self, kwargs: dict[str, Any], authorization_id: Optional[str] = None) -> GatedCall:
        name = self.metadata.get_name()
        call_id = _agent_call_id()
        actual = self._actual
        return GatedCall(
            self._action,
            self._amount,
            kwargs,
            tool=name,
            agent_id=self._agent_id,
            settle=self._settle,
            key=call_key(None, call_id, name, kwargs),
            authorization_id=authorization_id,
            actual=None if actual is None else (lambda output: actual(output.raw_output)),
            extra={"tool_call_id": call_id} if call_id else {},
        )

    def _answer(self, outcome: GateOutcome, kwargs: dict[str, Any]) -> ToolOutput:
        status = STATUS.get(outcome.kind, outcome.kind)
        authorization_id = outcome.authorization_id
        if authorization_id is not None:
            if outcome.kind == "pending":
                self._arguments[authorization_id] = kwargs
            else:
                self._arguments.pop(authorization_id, None)
        if outcome.kind == "ran":
            inner: ToolOutput = outcome.result
            self.last = Decision(status, authorization_id, str(inner.content))
            return inner.model_copy(
                update={"raw_output": GatedOutput(str(inner.content), authorization_id, inner.raw_output)}
            )
        self.last = Decision(status, authorization_id, outcome.message)
        return ToolOutput(
            content=outcome.message,
            tool_name=self.metadata.get_name(),
            raw_input={"args": (), "kwargs": kwargs},
            raw_output={"status": status, "authorization_id": authorization_id},
            is_error=outcome.kind != "already_done",
            exception=SpendRefused(outcome.message, status=status, authorization_id=authorization_id),
        )

    @dispatcher.span
    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Gate one call on a sync client (an AsyncAgenitry needs ``acall``)."""
        return self._call(self._request(kwargs), args)

    @dispatcher.span
    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Gate one call; in a workflow agent with ``human_approval``, wait for the owner while pending."""
        request = self._request(kwargs)
        ctx = _step_context() if self._human_approval else None
        # Without a call id a replayed step could not find its authorization again: no wait.
        if ctx is not None and request.key is not None:
            await self._wait_for_owner(ctx, request)
        return await self._acall(request, args)

    def _call(self, request: GatedCall, args: tuple[Any, ...]) -> ToolOutput:
        if isinstance(self._client, AsyncAgenitry):
            raise TypeError("this tool gates with an AsyncAgenitry client: use 'await tool.acall(...)'")
        kwargs = dict(request.arguments or {})
        outcome = run_gated(self._client, request, lambda: _checked(self._ainner.call(*args, **kwargs)))
        return self._answer(outcome, kwargs)

    async def _acall(self, request: GatedCall, args: tuple[Any, ...]) -> ToolOutput:
        kwargs = dict(request.arguments or {})

        async def body() -> ToolOutput:
            return _checked(await self._ainner.acall(*args, **kwargs))

        outcome = await arun_gated(self._client, request, body)
        return self._answer(outcome, kwargs)

    async def _wait_for_owner(self, ctx: Context, request: GatedCall) -> None:
        """While the call is pending, announce it and wait for the app's ``HumanResponseEvent``.

        The workflow replays the step from the top once the response arrives; the
        announcement kept in ``ctx.store`` (by call key) marks that replay, and stays
        there for :func:`pending_approvals` while the run waits, also across a restart.
        """
        path = f"{APPROVALS}.{request.key}"
        announced = await ctx.store.get(path, default=None)
        if announced is None:
            decision = await adecide(self._client, request)
            if decision.kind != "pending" or decision.authorization is None:
                return
            event = ApprovalRequestEvent(
                prefix=decision.message,
                authorization_id=decision.authorization.id,
                authorization=dict(decision.authorization.raw),
                tool_name=request.name,
                tool_kwargs=dict(request.arguments or {}),
            )
            await ctx.store.set(path, event.model_dump())
        else:
            event = ApprovalRequestEvent.model_validate(announced)
        await ctx.wait_for_event(
            HumanResponseEvent,
            waiter_id=request.key,
            waiter_event=event,
            requirements={"authorization_id": event.authorization_id},
            timeout=self._approval_timeout,
        )
        await ctx.store.set(path, None)

    def resume(self, authorization_id: str) -> ToolOutput:
        """Continue a pending call: runs it only if the gateway now says approved."""
        return self._call(self._request(self._pending(authorization_id), authorization_id), ())

    async def aresume(self, authorization_id: str) -> ToolOutput:
        """:meth:`resume` for async code."""
        return await self._acall(self._request(self._pending(authorization_id), authorization_id), ())

    def _pending(self, authorization_id: str) -> dict[str, Any]:
        if authorization_id not in self._arguments:
            raise KeyError(f"no pending call for authorization {authorization_id}")
        return self._arguments[authorization_id]


async def pending_approvals(ctx: Context) -> list[ApprovalRequestEvent]:
    """The approvals a workflow run waits for, read from its context.

    A run restored from a saved context (``Context.from_dict``) does not announce its
    waits again; this finds them, to answer each with a ``HumanResponseEvent``.

    >>> for event in await pending_approvals(handler.ctx):  # doctest: +SKIP
    ...     handler.ctx.send_event(HumanResponseEvent(response="decided", authorization_id=event.authorization_id))
    """
    stored = await ctx.store.get(APPROVALS, default=None) or {}
    return [ApprovalRequestEvent.model_validate(event) for event in stored.values() if event]


def gate_tool(
    tool: Union[BaseTool, Callable[..., Any]],
    *,
    action: str,
    amount: AmountSpec,
    client: Optional[Client] = None,
    api_key: Optional[str] = None,
    venue_id: Optional[str] = None,
    agent_id: Optional[str] = None,
    base_url: Optional[str] = None,
    settle: bool = False,
    actual: Optional[Callable[[Any], Any]] = None,
    human_approval: bool = False,
    approval_timeout: Optional[float] = None,
) -> GatedTool:
    """Wrap a tool (or a plain function) so it runs only when the spending policy approves.

    ``amount``: the name of the tool's amount argument, a function of its arguments, or a number.
    ``actual``: the amount really spent, from the tool's raw output (default: the authorized one).
    ``human_approval``: in workflow agents, wait for the owner's decision instead of answering pending.

    >>> order = gate_tool(order_tool, action="purchase_order", amount="total", client=agent)  # doctest: +SKIP
    """
    inner = tool if isinstance(tool, BaseTool) else FunctionTool.from_defaults(fn=tool)
    return GatedTool(
        inner,
        resolve_client(client, api_key, venue_id, agent_id, base_url),
        action,
        amount,
        agent_id=agent_id if client is not None else None,
        settle=settle,
        actual=actual,
        human_approval=human_approval,
        approval_timeout=approval_timeout,
    )
