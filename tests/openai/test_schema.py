"""Strict function schemas: every schema we generate keeps OpenAI's strict-mode rules.

Our own tools (``tool_schemas()`` and friends) and users' functions (type hints) and
pydantic models, in the Chat Completions and Responses shapes: every property required,
nullable as a type union, ``additionalProperties: false`` on every object, no free-form
dicts, only keywords strict mode accepts. The checker itself is shown to catch each rule.
"""

from __future__ import annotations

import datetime
import enum
from typing import Any, Literal, Optional

import openai
import pytest
from pydantic import BaseModel, Field

from agenitry.openai import (
    StrictSchemaError,
    ToolRunner,
    chat_completions_schemas,
    chat_tool,
    responses_schemas,
    responses_tool,
    strict_problems,
    tool_schemas,
)


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


class Line(BaseModel):
    """One line of an order."""

    item: str = Field(description="What to buy.")
    pounds: int = Field(ge=1, le=500)
    note: Optional[str] = None


class Order(BaseModel):
    """An order to a supplier."""

    supplier: Literal["fishmonger", "butcher"]
    lines: list[Line] = Field(min_length=1)
    deliver_on: datetime.date
    size: Size = Size.SMALL
    rush: bool = False
    budget: Optional[float] = Field(default=None, description="The most to spend.")


def order_supplies(item: str, pounds: int, total: float, memo: Optional[str] = None) -> dict[str, Any]:
    """Order from the fish supplier.

    Args:
        item: The fish, e.g. salmon.
        pounds: How many pounds.
        total: The price quoted.
        memo: A note for the supplier.
    """
    return {}


def place(
    order: Order, tags: list[str], priority: Literal[1, 2, 3] = 1, when: Optional[datetime.datetime] = None
) -> str:
    """Place a structured order."""
    return ""


def no_arguments() -> str:
    """Read the walk-in thermometer."""
    return "2C"


def _parameters(tool: dict[str, Any]) -> dict[str, Any]:
    return tool["function"]["parameters"] if "function" in tool else tool["parameters"]


def every_schema() -> list[tuple[str, dict[str, Any]]]:
    schemas: list[tuple[str, dict[str, Any]]] = []
    for tool in chat_completions_schemas() + responses_schemas() + tool_schemas():
        schemas.append((tool.get("name") or tool["function"]["name"], tool))
    for target in (order_supplies, place, no_arguments, Order, Line):
        schemas.append((f"chat:{target.__name__}", chat_tool(target)))
        schemas.append((f"responses:{target.__name__}", responses_tool(target)))
    return schemas


@pytest.mark.parametrize(("name", "tool"), every_schema(), ids=[name for name, _ in every_schema()])
def test_every_generated_schema_keeps_the_strict_rules(name: str, tool: dict[str, Any]) -> None:
    assert tool["type"] == "function"
    if "function" in tool:
        function = tool["function"]
        assert set(function) <= {"name", "description", "parameters", "strict"}
    else:
        function = tool
        assert set(tool) <= {"type", "name", "description", "parameters", "strict"}
    assert function["strict"] is True
    assert function["name"]
    assert strict_problems(function["parameters"]) == []


def test_our_tools_come_in_both_shapes_without_arguments() -> None:
    chat = chat_completions_schemas()
    flat = responses_schemas()
    assert [t["function"]["name"] for t in chat] == ["authorize_spend", "log_event", "set_policy"]
    assert [t["name"] for t in flat] == ["authorize_spend", "log_event", "set_policy"]
    assert tool_schemas() == chat
    for wrapped, plain in zip(chat, flat):
        assert {"type": "function", **wrapped["function"]} == plain
    authorize = _parameters(chat[0])
    assert authorize["required"] == ["action", "amount", "reason"]
    assert authorize["properties"]["amount"]["type"] == "number"
    assert authorize["properties"]["reason"]["type"] == ["string", "null"]
    log = _parameters(chat[1])["properties"]
    assert log["direction"] == {"enum": ["inbound", "outbound", "internal", None], "type": ["string", "null"]}
    policy = _parameters(chat[2])["properties"]
    assert policy["allowed_actions"] == {"items": {"type": "string"}, "type": ["array", "null"]}


def test_a_functions_type_hints_and_docstring_make_its_schema() -> None:
    tool = chat_tool(order_supplies)
    assert tool["function"]["description"] == "Order from the fish supplier."
    parameters = tool["function"]["parameters"]
    assert parameters == {
        "type": "object",
        "properties": {
            "item": {"type": "string", "description": "The fish, e.g. salmon."},
            "pounds": {"type": "integer", "description": "How many pounds."},
            "total": {"type": "number", "description": "The price quoted."},
            # A defaulted argument is still required; null is how the model leaves it out.
            "memo": {"type": ["string", "null"], "description": "A note for the supplier."},
        },
        "required": ["item", "pounds", "total", "memo"],
        "additionalProperties": False,
    }


def test_nested_models_are_inlined_and_strict_at_every_level() -> None:
    parameters = responses_tool(place)["parameters"]
    order = parameters["properties"]["order"]
    assert order["additionalProperties"] is False
    assert order["required"] == ["supplier", "lines", "deliver_on", "size", "rush", "budget"]
    line = order["properties"]["lines"]["items"]
    assert line["additionalProperties"] is False and line["required"] == ["item", "pounds", "note"]
    assert line["properties"]["pounds"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert order["properties"]["deliver_on"] == {"type": "string", "format": "date"}
    assert order["properties"]["size"]["enum"] == ["small", "large"]
    assert parameters["properties"]["when"] == {"type": ["string", "null"], "format": "date-time"}
    assert "$defs" not in parameters and "$ref" not in str(parameters)


def test_required_fields_agree_with_the_openai_sdks_own_helper() -> None:
    ours = chat_tool(Order)["function"]["parameters"]
    theirs = openai.pydantic_function_tool(Order)["function"]["parameters"]
    assert ours["required"] == theirs["required"]
    assert set(ours["properties"]) == set(theirs["properties"])


def test_free_form_dicts_are_refused() -> None:
    def tag(labels: dict[str, str]) -> None: ...

    def anything(payload: Any) -> None: ...

    class Loose(BaseModel):
        extra: dict[str, Any]

    for target in (tag, anything, Loose):
        with pytest.raises(StrictSchemaError):
            chat_tool(target)
    # The runner refuses such a tool when it is added, not when the model first calls it.
    with pytest.raises(StrictSchemaError):
        ToolRunner(object()).add(tag)  # type: ignore[arg-type]


def test_recursive_models_are_refused() -> None:
    class Node(BaseModel):
        name: str
        children: list[Node]

    Node.model_rebuild()
    with pytest.raises(StrictSchemaError, match="recursive"):
        chat_tool(Node)


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}, "additionalProperties"),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": [], "additionalProperties": False},
            "required",
        ),
        ({"type": "object", "additionalProperties": {"type": "string"}}, "free-form"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string", "default": "x"}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "'default'",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "object", "properties": {}, "required": []}},
                "required": ["a"],
                "additionalProperties": False,
            },
            "$.a: additionalProperties",
        ),
        ({"type": "array", "items": {"type": "string"}}, "must be an object"),
        (
            {"type": "object", "properties": {"a": {}}, "required": ["a"], "additionalProperties": False},
            "no type",
        ),
    ],
    ids=["no-additional", "not-required", "dict", "default-keyword", "nested-object", "root-array", "any-type"],
)
def test_the_checker_catches_each_rule(schema: dict[str, Any], problem: str) -> None:
    problems = strict_problems(schema)
    assert any(problem in p for p in problems), problems
