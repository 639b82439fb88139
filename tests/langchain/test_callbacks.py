"""AgenitryCallbackHandler: every tool call lands in the audit trail, whatever happened to it.

Pins down: successes, handled errors (an error ToolMessage), raised errors, and calls
paused by ``interrupt()`` (recorded as ``paused``, never as errors) are all recorded with
name, inputs, output or error, duration, run ids and tool_call_id; it works under
``invoke`` and ``ainvoke``; a handler that cannot record never breaks the agent.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from langchain.agents import create_agent
from langchain_core.tools import StructuredTool, ToolException, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, interrupt

from agenitry import Agenitry
from agenitry.langchain import AgenitryCallbackHandler

Recorded = Callable[[], list[dict[str, Any]]]


@tool
def lookup_menu(dish: str) -> str:
    """Find a dish on the menu."""
    return f"{dish}: $24.50"


def _check_table(table: int) -> str:
    """Check whether a table is free."""
    raise ToolException(f"table {table} does not exist")


check_table = StructuredTool.from_function(_check_table, name="check_table", handle_tool_error=True)


@tool
def call_supplier(item: str) -> str:
    """Phone the supplier."""
    raise ValueError("line busy")


def test_successes_handled_and_raised_errors_are_recorded(client: Agenitry, recorded: Recorded) -> None:
    handler = AgenitryCallbackHandler(client)
    config: Any = {"callbacks": [handler]}
    assert lookup_menu.invoke({"dish": "salmon roll"}, config) == "salmon roll: $24.50"
    handled = check_table.invoke(
        {"type": "tool_call", "id": "call_9", "name": "check_table", "args": {"table": 99}}, config
    )
    assert handled.status == "error"
    with pytest.raises(ValueError, match="line busy"):
        call_supplier.invoke({"item": "salmon"}, config)
    first, second, third = recorded()
    assert (first["tool"], first["arguments"], first["outcome"], first["output"]) == (
        "lookup_menu",
        {"dish": "salmon roll"},
        "ok",
        "salmon roll: $24.50",
    )
    assert first["run_id"] and "tool_call_id" not in first  # a plain invoke has no tool call id
    assert (second["tool"], second["outcome"], second["tool_call_id"]) == ("check_table", "error", "call_9")
    assert "table 99 does not exist" in second["error"]
    assert (third["tool"], third["outcome"], third["error"]) == ("call_supplier", "error", "ValueError: line busy")
    assert all(isinstance(c["duration_ms"], (int, float)) and c["duration_ms"] >= 0 for c in (first, second, third))


def test_an_interrupt_is_a_pause_not_an_error(client: Agenitry, recorded: Recorded, model: Any) -> None:
    @tool
    def book_private_room(guests: int) -> str:
        """Book the private room (the manager confirms)."""
        answer = interrupt({"question": f"private room for {guests}?"})
        return f"booked: {answer}"

    agent = create_agent(
        model(("book_private_room", {"guests": 12}, "call_1")), tools=[book_private_room], checkpointer=InMemorySaver()
    )
    config: Any = {"configurable": {"thread_id": "t1"}, "callbacks": [AgenitryCallbackHandler(client)]}
    paused = agent.invoke({"messages": [{"role": "user", "content": "book"}]}, config, version="v2")
    assert paused.interrupts
    agent.invoke(Command(resume="yes"), config, version="v2")
    calls = [c for c in recorded() if c["tool"] == "book_private_room"]
    assert [c["outcome"] for c in calls] == ["paused", "ok"]
    assert "error" not in calls[0]
    assert calls[1]["output"] == "booked: yes"
    assert {c["tool_call_id"] for c in calls} == {"call_1"}
    assert all(c["parent_run_id"] and c["langgraph_node"] == "tools" for c in calls)


@pytest.mark.anyio
async def test_it_records_async_runs_inside_a_graph(client: Agenitry, recorded: Recorded, model: Any) -> None:
    @tool
    async def seat_guests(table: int) -> str:
        """Seat the guests."""
        return f"seated at {table}"

    agent = create_agent(model(("seat_guests", {"table": 7}, "call_7")), tools=[seat_guests])
    config: Any = {"callbacks": [AgenitryCallbackHandler(client)]}
    await agent.ainvoke({"messages": [{"role": "user", "content": "seat us"}]}, config)
    [call] = recorded()
    assert (call["tool"], call["arguments"], call["outcome"], call["tool_call_id"]) == (
        "seat_guests",
        {"table": 7},
        "ok",
        "call_7",
    )


def test_a_call_of_a_tool_that_does_not_exist_is_recorded_once(
    client: Agenitry, recorded: Recorded, model: Any
) -> None:
    """ToolNode answers it with an error message and fires no tool callback; the attempt is still recorded."""
    chat = model([("order_caviar", {"grams": 50}, "call_x"), ("lookup_menu", {"dish": "uni"}, "call_m")])
    graph = StateGraph(MessagesState)
    graph.add_node("model", lambda state: {"messages": [chat.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode([lookup_menu]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    graph.compile().invoke({"messages": [("user", "caviar?")]}, {"callbacks": [AgenitryCallbackHandler(client)]})
    calls = sorted(recorded(), key=lambda call: str(call["tool_call_id"]))
    assert [(c["tool"], c["tool_call_id"], c["outcome"]) for c in calls] == [
        ("lookup_menu", "call_m", "ok"),
        ("order_caviar", "call_x", "error"),
    ]
    unknown = calls[1]
    assert unknown["arguments"] == {"grams": 50} and unknown["langgraph_node"] == "tools"
    assert "order_caviar is not a valid tool" in unknown["error"]


@pytest.mark.anyio
async def test_a_call_of_an_unknown_tool_in_an_agent_is_recorded_once(
    client: Agenitry, recorded: Recorded, model: Any
) -> None:
    agent = create_agent(model(("order_caviar", {"grams": 50}, "call_x")), tools=[lookup_menu])
    await agent.ainvoke(
        {"messages": [{"role": "user", "content": "caviar"}]}, {"callbacks": [AgenitryCallbackHandler(client)]}
    )
    [call] = recorded()
    assert (call["tool"], call["tool_call_id"], call["outcome"]) == ("order_caviar", "call_x", "error")


def test_a_handler_that_cannot_record_never_breaks_the_agent() -> None:
    graph = StateGraph(MessagesState)

    def node(state: MessagesState) -> dict[str, Any]:
        return {"messages": [lookup_menu.invoke({"dish": "uni"})]}

    graph.add_node("menu", node)
    graph.add_edge(START, "menu")
    graph.add_edge("menu", END)
    broken = AgenitryCallbackHandler(object())  # not a client: every recording fails
    output = graph.compile().invoke({"messages": []}, {"callbacks": [broken]})
    assert output["messages"][-1].content == "uni: $24.50"
