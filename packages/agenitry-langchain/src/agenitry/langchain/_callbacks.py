"""``AgenitryCallbackHandler``: every tool call of any LangChain or LangGraph run, in the audit trail.

Most calls are seen through the tool callbacks. A call answered without its tool running
(LangGraph's ToolNode answering a call of a tool that does not exist, a call a middleware
refused) fires none: those are found at the end of the graph node that answered them, as
its ToolMessages whose tool_call_id no tool run started, and recorded once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Optional
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.errors import GraphBubbleUp
from langgraph.types import Command

from agenitry.integration import record_tool_call

logger = logging.getLogger("agenitry")


def _asked(inputs: Any) -> dict[str, dict[str, Any]]:
    """The tool calls a node was given, by id: a ToolNode's input is the state (its last
    AIMessage's calls) or, under ``create_agent``, the list of calls itself."""
    calls: list[Mapping[str, Any]]
    if isinstance(inputs, Mapping) and isinstance(inputs.get("messages"), list) and inputs["messages"]:
        last = inputs["messages"][-1]
        calls = list(last.tool_calls) if isinstance(last, AIMessage) else []
    elif isinstance(inputs, list):
        calls = [item for item in inputs if isinstance(item, Mapping) and item.get("type") == "tool_call"]
    else:
        calls = []
    return {str(call["id"]): dict(call) for call in calls if call.get("id")}


def _answers(output: Any) -> Iterator[ToolMessage]:
    """The ToolMessages in a node's output (an update dict, a list of them, or Commands)."""
    if isinstance(output, ToolMessage):
        yield output
    elif isinstance(output, Command):
        yield from _answers(output.update)
    elif isinstance(output, Mapping):
        yield from _answers(output.get("messages"))
    elif isinstance(output, (list, tuple)):
        for item in output:
            yield from _answers(item)


def _result(message: ToolMessage) -> tuple[str, Optional[str], str]:
    """(outcome, error, output) of a call the ToolMessage answers."""
    text = message.text
    return ("error", text, text) if message.status == "error" else ("ok", None, text)


class AgenitryCallbackHandler(BaseCallbackHandler):
    """Record each tool call as a ``tool_call`` event: name, inputs, output or error, duration, ids.

    Pass it in ``config={"callbacks": [handler]}`` (or a tool's ``callbacks``). It works
    under ``invoke`` and ``ainvoke`` alike: recording only queues the event, so it runs
    inline and never waits on the network. An interrupt (LangGraph's ``GraphInterrupt``)
    is recorded as ``outcome: "paused"``, not as an error. A call answered without its tool
    running (an unknown tool, a refused call) is recorded once, from the answer. Nothing
    here ever raises into the agent. ``client`` is an :class:`agenitry.Agenitry` or
    :class:`agenitry.AsyncAgenitry`.
    """

    run_inline = True
    raise_error = False

    def __init__(self, client: Any, *, agent_id: Optional[str] = None, max_output: int = 512) -> None:
        self.client = client
        self.agent_id = agent_id
        self.max_output = max_output
        self._runs: dict[UUID, dict[str, Any]] = {}
        #: Graph node runs given tool calls → (node, the calls no tool run has started yet).
        self._nodes: dict[UUID, tuple[str, dict[str, dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    # -- calls answered without a tool run ----------------------------------------------------

    def on_chain_start(
        self,
        serialized: Optional[dict[str, Any]],
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: Optional[UUID] = None,
        metadata: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        # A graph node's own run is named after the node; the runs inside it are not.
        node = (metadata or {}).get("langgraph_node")
        if node is None or kwargs.get("name") != node:
            return
        asked = _asked(inputs)
        if asked:
            with self._lock:
                self._nodes[run_id] = (str(node), asked)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, parent_run_id: Optional[UUID] = None, **kwargs: Any) -> None:
        with self._lock:
            node = self._nodes.pop(run_id, None)
        if node is None:
            return
        name, unstarted = node
        for message in _answers(outputs):
            call = unstarted.pop(message.tool_call_id, None)
            if call is not None:  # no tool ran, yet the model's attempt is the audit fact
                run = self._run(str(call.get("name")), dict(call.get("args") or {}), run_id, call["id"], name)
                self._record(run, None, *_result(message))

    def on_chain_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: Optional[UUID] = None, **kwargs: Any
    ) -> None:
        with self._lock:
            self._nodes.pop(run_id, None)

    # -- tool runs ----------------------------------------------------------------------------------

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
        # ``input_str`` is a Python repr; ``inputs`` is the real dict when the tool has a schema.
        arguments = dict(inputs) if isinstance(inputs, dict) else {"input": input_str}
        call_id = kwargs.get("tool_call_id")
        run = self._run(str(name), arguments, parent_run_id, call_id, (metadata or {}).get("langgraph_node"))
        with self._lock:
            self._runs[run_id] = run
            if parent_run_id in self._nodes and call_id:
                self._nodes[parent_run_id][1].pop(call_id, None)

    def on_tool_end(self, output: Any, *, run_id: UUID, parent_run_id: Optional[UUID] = None, **kwargs: Any) -> None:
        # Handled tool errors arrive here too, as an error ToolMessage (a plain dict invoke gives only text).
        if isinstance(output, ToolMessage):
            self._finish(run_id, *_result(output))
        else:
            self._finish(run_id, "ok", None, output if isinstance(output, str) else repr(output))

    def on_tool_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: Optional[UUID] = None, **kwargs: Any
    ) -> None:
        if isinstance(error, GraphBubbleUp):
            self._finish(run_id, "paused")
        else:
            self._finish(run_id, "error", error)

    # -- recording ----------------------------------------------------------------------------------

    @staticmethod
    def _run(
        name: str, arguments: dict[str, Any], parent: Optional[UUID], call_id: Optional[str], node: Optional[str]
    ) -> dict[str, Any]:
        return {
            "name": name,
            "arguments": arguments,
            "started": time.perf_counter(),
            "parent_run_id": str(parent) if parent else None,
            "tool_call_id": call_id,
            "node": node,
        }

    def _finish(self, run_id: UUID, outcome: str, error: Any = None, output: Optional[str] = None) -> None:
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is not None:
            self._record(run, run_id, outcome, error, output)

    def _record(
        self, run: dict[str, Any], run_id: Optional[UUID], outcome: str, error: Any, output: Optional[str] = None
    ) -> None:
        try:
            if output is not None and len(output) > self.max_output:
                output = f"{output[: self.max_output]}…(+{len(output) - self.max_output} chars)"
            extra = {
                "run_id": str(run_id) if run_id else None,
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
