"""The adapter contract through LangGraph: GatedToolNode in a custom graph (sync and async).

See ``langchain_drivers``: each call is one graph run on its own thread over a SQLite
checkpoint file, and a restart is a new graph and client on that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytest
from langchain_core.tools import BaseTool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from adapters.contract import AdapterContract
from adapters.langchain_drivers import GraphDriver, answer
from agenitry import Agenitry
from agenitry.langgraph import Gate, GatedToolNode


class ToolNodeDriver(GraphDriver):
    name = "langgraph-toolnode"

    def build(self, buy: BaseTool, call: Optional[dict[str, Any]], checkpointer: Any) -> Any:
        def model(state: MessagesState) -> dict[str, Any]:
            return {"messages": [answer(call, state["messages"])]}

        graph = StateGraph(MessagesState)
        graph.add_node("model", model)
        spending = {"buy": Gate(buy.metadata["action"], "amount")}
        graph.add_node("tools", GatedToolNode([buy], client=self.client, spending=spending))
        graph.add_edge(START, "model")
        graph.add_conditional_edges("model", tools_condition)
        graph.add_edge("tools", "model")
        return graph.compile(checkpointer=checkpointer)


class AsyncToolNodeDriver(ToolNodeDriver):
    name = "langgraph-toolnode-async"
    use_async = True


class TestLangGraphToolNodeContract(AdapterContract):
    @pytest.fixture
    def driver(self, client: Agenitry, effects: list[dict[str, Any]], tmp_path: Path) -> GraphDriver:
        return ToolNodeDriver(client, effects, tmp_path / "checkpoints.db")


class TestLangGraphToolNodeAsyncContract(AdapterContract):
    @pytest.fixture
    def driver(self, client: Agenitry, effects: list[dict[str, Any]], tmp_path: Path) -> GraphDriver:
        return AsyncToolNodeDriver(client, effects, tmp_path / "checkpoints.db")
