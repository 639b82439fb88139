"""The hand-written cassettes replay through the real openai client, and only for the request they recorded.

The example's replay compares request bodies as JSON (gateway ids aside): a request the
cassette did not record (here: another user message) is refused, not answered.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from openai import OpenAI
from vcr.errors import CannotOverwriteExistingCassetteException


@pytest.fixture
def example(repo_root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "openai_example", repo_root / "examples" / "openai_function_calling.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _first_request(example: ModuleType, user: str) -> list[dict[str, object]]:
    return [{"role": "system", "content": example.SYSTEM}, {"role": "user", "content": user}]


def test_the_recorded_request_gets_the_recorded_tool_calls(example: ModuleType) -> None:
    from agenitry.openai import ToolRunner

    runner = ToolRunner(object(), tools=[example.check_stock])  # type: ignore[arg-type]
    runner.add(example.order_supplies, action="purchase_order", amount="total")
    llm = OpenAI(api_key="sk-offline", max_retries=0)
    user = "Order 50 lb of salmon ($180) and 20 lb of tuna ($340)."
    with (
        pytest.raises(RuntimeError, match="not every recorded answer was used"),
        example.replay(False, "chat_order.yaml"),
    ):
        reply = llm.chat.completions.create(
            model=example.MODEL, messages=_first_request(example, user), tools=runner.chat_tools()
        )
    calls = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("order_supplies", '{"item": "salmon", "pounds": 50, "total": 180}'),
        ("order_supplies", '{"item": "tuna", "pounds": 20, "total": 340}'),
    ]
    llm.close()


def test_a_request_the_cassette_did_not_record_is_refused(example: ModuleType) -> None:
    from agenitry.openai import ToolRunner

    runner = ToolRunner(object(), tools=[example.check_stock])  # type: ignore[arg-type]
    runner.add(example.order_supplies, action="purchase_order", amount="total")
    llm = OpenAI(api_key="sk-offline", max_retries=0)
    with pytest.raises(CannotOverwriteExistingCassetteException), example.replay(False, "chat_order.yaml"):
        llm.chat.completions.create(
            model=example.MODEL, messages=_first_request(example, "Order 900 lb of wagyu."), tools=runner.chat_tools()
        )
    llm.close()
