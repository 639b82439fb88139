"""``AgenitryCallbackHandler``: every tool call of any LangChain or LangGraph run, in the audit trail."""

from __future__ import annotations

import threading
import time
from typing import Any, Optional
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import ToolMessage
from langgraph.errors import GraphBubbleUp

from agenitry._gating import logger, record_tool_call


class AgenitryCallbackHandler(BaseCallbackHandler):
    """Record each tool call as a ``tool_call`` event: name, inputs, output or error, duration, ids.

    Pass it in ``config={"callbacks": [handler]}`` (or a tool's ``callbacks``). It works
    under ``invoke`` and ``ainvoke`` alike: recording only queues the event, so it runs
    inline and never waits on the network. An interrupt (LangGraph's ``GraphInterrupt``)
    is recorded as ``outcome: "paused"``, not as an error. Nothing here ever raises into
    the agent. ``client`` is an :class:`agenitry.Agenitry` or :class:`agenitry.AsyncAgenitry`.
    """

    run_inline = True
    raise_error = False

    def __init__(self, client: Any, *, agent_id: Optional[str] = None, max_output: int = 512) -> None:
        self.client = client
        self.agent_id = agent_id
        self.max_output = max_output
        self._runs: dict[UUID, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        tags: Optional[list[str]] = None,
        metadata: Optional[dict[str, Any]] = None,
        inputs: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        name = (serialized or {}).get("name") or kwargs.get("name") or "tool"
        run = {
            "name": str(name),
            # ``input_str`` is a Python repr; ``inputs`` is the real dict when the tool has a schema.
            "arguments": dict(inputs) if isinstance(inputs, dict) else {"input": input_str},
            "started": time.perf_counter(),
            "parent_run_id": str(parent_run_id) if parent_run_id else None,
            "tool_call_id": kwargs.get("tool_call_id"),
            "node": (metadata or {}).get("langgraph_node"),
        }
        with self._lock:
            self._runs[run_id] = run

    def on_tool_end(self, output: Any, *, run_id: UUID, parent_run_id: Optional[UUID] = None, **kwargs: Any) -> None:
        # Handled tool errors arrive here too, as an error ToolMessage (a plain dict invoke gives only text).
        if isinstance(output, ToolMessage):
            outcome = "error" if output.status == "error" else "ok"
            text = output.content if isinstance(output.content, str) else str(output.content)
            self._finish(run_id, outcome, error=text if outcome == "error" else None, output=text)
        else:
            self._finish(run_id, "ok", output=output if isinstance(output, str) else repr(output))

    def on_tool_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: Optional[UUID] = None, **kwargs: Any
    ) -> None:
        if isinstance(error, GraphBubbleUp):
            self._finish(run_id, "paused")
        else:
            self._finish(run_id, "error", error=error)

    def _finish(self, run_id: UUID, outcome: str, *, error: Any = None, output: Optional[str] = None) -> None:
        try:
            with self._lock:
                run = self._runs.pop(run_id, None)
            if run is None:
                return
            if output is not None and len(output) > self.max_output:
                output = f"{output[: self.max_output]}…(+{len(output) - self.max_output} chars)"
            extra = {
                "run_id": str(run_id),
                "parent_run_id": run["parent_run_id"],
                "tool_call_id": run["tool_call_id"],
                "langgraph_node": run["node"],
                "output": output,
            }
            record_tool_call(
                self.client,
                run["name"],
                run["arguments"],
                (time.perf_counter() - run["started"]) * 1000,
                outcome,
                error,
                self.agent_id,
                extra={key: value for key, value in extra.items() if value is not None},
            )
        except Exception:  # the audit log must never break the agent
            logger.warning("Could not record a tool call", exc_info=True)
