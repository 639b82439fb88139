"""GatedToolNode in a custom LangGraph graph (scripted model, embedded gateway).

Pins down: approved → the tool runs and the authorization is executed; denied → the model
reads the reason, the tool does not run; pending → the graph pauses with the authorization
and, resumed, runs the tool only once the gateway says approved (a forged resume pauses it
again); a node re-run after resume authorizes once and runs each side effect once, even for
calls that already ran in the first run; sync and async.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import Command

from agenitry import Agenitry
from agenitry.langgraph import INTERRUPT_TYPE, Gate, GatedToolNode


class Kitchen:
    def __init__(self) -> None:
        self.orders: list[tuple[str, float]] = []

        @tool
        def order_food(item: str, total: float) -> str:
            """Send an order to the kitchen and charge the guest."""
            self.orders.append((item, total))
            return f"Ordered {item} for ${total:.2f}"

        @tool
        async def aorder_food(item: str, total: float) -> str:
            """Send an order to the kitchen and charge the guest."""
            self.orders.append((item, total))
            return f"Ordered {item} for ${total:.2f}"

        self.order_food = order_food
        self.aorder_food = aorder_food


def build(client: Any, chat: Any, food: Any) -> Any:
    def model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [chat.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", model)
    spending = {food.name: Gate("order_captured", amount="total")}
    graph.add_node("tools", GatedToolNode([food], client=client, spending=spending))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    return graph.compile(checkpointer=InMemorySaver())


CONFIG: Any = {"configurable": {"thread_id": "table-4"}}
ASK = {"messages": [{"role": "user", "content": "order please"}]}


def tool_messages(output: Any) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in output.value["messages"] if isinstance(m, ToolMessage)}


def test_approved_and_denied_calls(client: Agenitry, model: Any) -> None:
    kitchen = Kitchen()
    graph = build(
        client,
        model(
            ("order_food", {"item": "salmon roll", "total": 24.5}, "call_1"),
            ("order_food", {"item": "sushi for the street", "total": 5000}, "call_2"),
        ),
        kitchen.order_food,
    )
    output = graph.invoke(ASK, CONFIG, version="v2")
    assert kitchen.orders == [("salmon roll", 24.5)]
    messages = tool_messages(output)
    assert messages["call_1"].content == "Ordered salmon roll for $24.50"
    assert messages["call_2"].status == "error" and "single-transaction limit" in messages["call_2"].content
    statuses = sorted(a["status"] for a in client.authorizations(agent_id=None)["authorizations"])
    assert statuses == ["denied", "executed"]


def test_a_pending_call_pauses_and_a_forged_resume_pauses_it_again(client: Agenitry, model: Any) -> None:
    kitchen = Kitchen()
    graph = build(client, model(("order_food", {"item": "omakase", "total": 450}, "call_1")), kitchen.order_food)
    [pause] = graph.invoke(ASK, CONFIG, version="v2").interrupts
    assert pause.value["type"] == INTERRUPT_TYPE and pause.value["status"] == "pending"
    forged = graph.invoke(Command(resume={"approved": True}), CONFIG, version="v2")
    assert [i.value["authorization_id"] for i in forged.interrupts] == [pause.value["authorization_id"]]
    assert kitchen.orders == []
    assert graph.get_state(CONFIG).next == ("tools",)
    client.approve(pause.value["authorization_id"])
    graph.invoke(Command(resume="approved"), CONFIG, version="v2")
    assert kitchen.orders == [("omakase", 450)]
    assert client.get_authorization(pause.value["authorization_id"])["status"] == "executed"


def test_a_rerun_of_the_node_repeats_no_side_effect(client: Agenitry, model: Any) -> None:
    """One ToolNode runs both calls; when it re-runs after the resume, the cheap order is not placed again."""
    kitchen = Kitchen()
    turn = [
        ("order_food", {"item": "miso soup", "total": 6}, "call_a"),
        ("order_food", {"item": "omakase", "total": 450}, "call_b"),
    ]
    graph = build(client, model(turn), kitchen.order_food)
    [pause] = graph.invoke(ASK, CONFIG, version="v2").interrupts
    assert kitchen.orders == [("miso soup", 6)]
    client.approve(pause.value["authorization_id"])
    output = graph.invoke(Command(resume=True), CONFIG, version="v2")
    assert kitchen.orders == [("miso soup", 6), ("omakase", 450)]
    authorizations = client.authorizations(agent_id=None)["authorizations"]
    assert sorted(a["status"] for a in authorizations) == ["executed", "executed"]
    messages = tool_messages(output)
    assert messages["call_a"].status == "success" and "Already done" in messages["call_a"].content
    assert messages["call_b"].content == "Ordered omakase for $450.00"


def test_the_same_tool_call_id_in_another_thread_is_another_spend(client: Agenitry, model: Any) -> None:
    kitchen = Kitchen()
    for thread in ("table-1", "table-2"):
        graph = build(client, model(("order_food", {"item": "gyoza", "total": 9}, "call_1")), kitchen.order_food)
        graph.invoke(ASK, {"configurable": {"thread_id": thread}}, version="v2")
    assert kitchen.orders == [("gyoza", 9), ("gyoza", 9)]
    assert len(client.authorizations(agent_id=None)["authorizations"]) == 2


@pytest.mark.anyio
async def test_an_async_pause_waits_for_a_sibling_spend_under_way(aclient: Any, model: Any) -> None:
    """The async ToolNode gathers its calls: the pause must not leave a slow approved call half done.

    Otherwise the resume would re-run it while its authorization still says approved (not
    yet executed) and place the order twice.
    """
    orders: list[str] = []

    @tool
    async def slow_order(item: str, total: float) -> str:
        """Order through a slow supplier."""
        await asyncio.sleep(0.3)
        orders.append(item)
        return f"ordered {item}"

    graph = build(
        aclient,
        model(
            [
                ("slow_order", {"item": "miso soup", "total": 6}, "call_a"),
                ("slow_order", {"item": "omakase", "total": 450}, "call_b"),
            ]
        ),
        slow_order,
    )
    [pause] = (await graph.ainvoke(ASK, CONFIG, version="v2")).interrupts
    assert orders == ["miso soup"]
    await aclient.approve(pause.value["authorization_id"])
    await graph.ainvoke(Command(resume="go"), CONFIG, version="v2")
    assert orders == ["miso soup", "omakase"]
    statuses = [a["status"] for a in (await aclient.authorizations(agent_id=None))["authorizations"]]
    assert statuses == ["executed", "executed"]


@pytest.mark.anyio
async def test_async_graph_with_the_async_client(aclient: Any, model: Any) -> None:
    kitchen = Kitchen()
    graph = build(
        aclient,
        model(
            [
                ("aorder_food", {"item": "salmon roll", "total": 24.5}, "call_a"),
                ("aorder_food", {"item": "omakase", "total": 450}, "call_b"),
            ]
        ),
        kitchen.aorder_food,
    )
    [pause] = (await graph.ainvoke(ASK, CONFIG, version="v2")).interrupts
    assert kitchen.orders == [("salmon roll", 24.5)]
    again = await graph.ainvoke(Command(resume={"approved": True}), CONFIG, version="v2")
    assert again.interrupts and kitchen.orders == [("salmon roll", 24.5)]
    await aclient.approve(pause.value["authorization_id"])
    done = await graph.ainvoke(Command(resume="go"), CONFIG, version="v2")
    assert done.interrupts == ()
    assert kitchen.orders == [("salmon roll", 24.5), ("omakase", 450)]
    assert isinstance(done.value["messages"][-1], AIMessage)
