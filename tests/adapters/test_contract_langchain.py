"""The adapter contract through LangChain: AgenitryMiddleware in ``create_agent`` (sync and async).

See ``langchain_drivers``: each call is one agent run on its own thread over a SQLite
checkpoint file, and a restart is a new agent and client on that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytest
from langchain.agents import create_agent
from langchain_core.tools import BaseTool

from adapters.contract import AdapterContract
from adapters.langchain_drivers import GraphDriver, ScriptedModel
from agenitry import Agenitry
from agenitry.langchain import AgenitryMiddleware, Gate


class MiddlewareDriver(GraphDriver):
    name = "langchain-middleware"

    def build(self, buy: BaseTool, call: Optional[dict[str, Any]], checkpointer: Any) -> Any:
        middleware = AgenitryMiddleware(self.client, {"buy": Gate(buy.metadata["action"], amount="amount")})
        return create_agent(ScriptedModel(call=call), tools=[buy], middleware=[middleware], checkpointer=checkpointer)


class AsyncMiddlewareDriver(MiddlewareDriver):
    name = "langchain-middleware-async"
    use_async = True


class TestLangChainMiddlewareContract(AdapterContract):
    @pytest.fixture
    def driver(self, client: Agenitry, effects: list[dict[str, Any]], tmp_path: Path) -> GraphDriver:
        return MiddlewareDriver(client, effects, tmp_path / "checkpoints.db")


class TestLangChainMiddlewareAsyncContract(AdapterContract):
    @pytest.fixture
    def driver(self, client: Agenitry, effects: list[dict[str, Any]], tmp_path: Path) -> GraphDriver:
        return AsyncMiddlewareDriver(client, effects, tmp_path / "checkpoints.db")
