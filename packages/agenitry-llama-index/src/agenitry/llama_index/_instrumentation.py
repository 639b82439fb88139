"""Log every tool call through LlamaIndex's instrumentation (a span handler on tool-call spans).

Workflow agents emit no tool event, but every tool call is a span: the agent's
``call_tool`` step (its argument ``ev`` is the ``ToolCall``, its result the
``ToolCallResult``) and, for direct calls, ``BaseTool.call`` / ``acall``. The handler records
each finished call as a ``tool_call`` event (name, arguments redacted, duration, outcome)
without blocking. A gated call (a :class:`GatedTool`, and the agent step around it) is
left out: core's gated-call flow records it once, with its outcome and authorization. A
span dropped because the workflow waits for an event (``WaitingForEvent``) is a pause: it
is not recorded; the replayed step records the call once it finishes. (The step itself
exits with no result when it waits; that too is a pause.)
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from typing import Any, Optional

from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.span import BaseSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.tools import BaseTool, ToolOutput
from pydantic import Field, PrivateAttr

from agenitry.integration import Client, record_tool_call

from ._gate import GatedTool

logger = logging.getLogger("agenitry")


class ToolSpan(BaseSpan):
    """A span of interest: a tool call (``tool`` set) or one of its ancestors."""

    tool: Optional[str] = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    started: float = Field(default_factory=time.perf_counter)
    inside_tool: bool = False
    #: A gated tool runs under this span: the gated-call flow records the call, not this handler.
    gated: bool = False


def _is_pause(err: Optional[BaseException]) -> bool:
    # The workflow's control-flow exception for a wait; matched by name, its module moved between versions.
    return err is not None and type(err).__name__ == "WaitingForEvent"


class AgenitrySpanHandler(BaseSpanHandler[ToolSpan]):
    """Records a ``tool_call`` event for every tool call a LlamaIndex agent (or your code) makes."""

    _client: Any = PrivateAttr()
    _agent_id: Optional[str] = PrivateAttr(default=None)
    _spans: dict[str, ToolSpan] = PrivateAttr(default_factory=dict)
    _guard: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, client: Client, *, agent_id: Optional[str] = None) -> None:
        super().__init__(open_spans={}, completed_spans=[], dropped_spans=[], current_span_ids={})
        self._client = client
        self._agent_id = agent_id
        self._spans = {}
        self._guard = threading.Lock()

    @classmethod
    def class_name(cls) -> str:
        return "AgenitrySpanHandler"

    # -- spans --------------------------------------------------------------------------------

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Optional[Any] = None,
        parent_span_id: Optional[str] = None,
        tags: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> Optional[ToolSpan]:
        with self._guard:
            parent = self._spans.get(parent_span_id) if parent_span_id else None
        inside = parent is not None and (parent.tool is not None or parent.inside_tool)
        method = id_.rsplit("-", 5)[0].rsplit(".", 1)[-1]
        tool: Optional[str] = None
        arguments: dict[str, Any] = {}
        event = bound_args.arguments.get("ev")
        if method == "call_tool" and event is not None and hasattr(event, "tool_name"):
            tool, arguments = str(event.tool_name), dict(getattr(event, "tool_kwargs", None) or {})
        elif method in ("call", "acall") and isinstance(instance, GatedTool):
            with self._guard:  # the agent step that called it (if any) is this gated call
                ancestor = parent
                while ancestor is not None and ancestor.tool is None:
                    ancestor = self._spans.get(ancestor.parent_id) if ancestor.parent_id else None
                if ancestor is not None:
                    ancestor.gated = True
            inside = True  # the inner tool's own spans are part of the gated call
        elif method in ("call", "acall") and isinstance(instance, BaseTool) and not inside:
            tool = instance.metadata.get_name()
            arguments = dict(bound_args.arguments.get("kwargs") or {})
        span = ToolSpan(id_=id_, parent_id=parent_span_id, tool=tool, arguments=arguments, inside_tool=inside)
        with self._guard:
            self._spans[id_] = span
        return span

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Optional[Any] = None,
        result: Optional[Any] = None,
        **kwargs: Any,
    ) -> Optional[ToolSpan]:
        with self._guard:
            span = self._spans.pop(id_, None)
        # A step that waits for an event exits with no result: a pause, recorded when the replay finishes.
        if span is not None and span.tool is not None and not span.gated and result is not None:
            output = getattr(result, "tool_output", result)
            failed = isinstance(output, ToolOutput) and output.is_error
            self._record(span, "error" if failed else "ok", str(output.content) if failed else None)
        return span

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Optional[Any] = None,
        err: Optional[BaseException] = None,
        **kwargs: Any,
    ) -> Optional[ToolSpan]:
        with self._guard:
            span = self._spans.pop(id_, None)
        if span is not None and span.tool is not None and not span.gated and not _is_pause(err):
            cancelled = err is not None and not isinstance(err, Exception)
            self._record(span, "cancelled" if cancelled else "error", err)
        return span

    def _record(self, span: ToolSpan, outcome: str, error: Any) -> None:
        assert span.tool is not None  # noqa: S101 -- only tool spans are recorded
        try:
            record_tool_call(
                self._client,
                span.tool,
                span.arguments,
                (time.perf_counter() - span.started) * 1000,
                outcome,
                error,
                self._agent_id,
            )
        except Exception:  # the audit of a call never changes what the agent does
            logger.warning("Could not record the call of %s", span.tool, exc_info=True)


def instrument(client: Client, *, agent_id: Optional[str] = None) -> AgenitrySpanHandler:
    """Log every LlamaIndex tool call from now on (the root dispatcher); returns the handler.

    >>> handler = instrument(agent_client)  # doctest: +SKIP
    >>> uninstrument(handler)  # doctest: +SKIP
    """
    handler = AgenitrySpanHandler(client, agent_id=agent_id)
    get_dispatcher().add_span_handler(handler)
    return handler


def uninstrument(handler: AgenitrySpanHandler) -> None:
    """Stop a handler that :func:`instrument` added."""
    dispatcher = get_dispatcher()
    dispatcher.span_handlers[:] = [h for h in dispatcher.span_handlers if h is not handler]
