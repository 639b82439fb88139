"""The approval helper and node, and a pause that survives a process restart (SqliteSaver).

Pins down: ``approval_node`` pauses while the gateway says pending, goes on only when it
says approved (then executes, once) and reports a denial for the model; a resume value
claiming approval changes nothing; ``wait_for_approval`` works inside any node; with
SqliteSaver a graph paused in one process resumes in a new one and runs the spend once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from agenitry import Agenitry
from agenitry.langgraph import approval_node, wait_for_approval


class Order(TypedDict, total=False):
    item: str
    total: float
    authorization: Optional[dict[str, Any]]
    authorization_result: Any


def build(client: Any, placed: list[str]) -> Any:
    def propose(state: Order) -> dict[str, Any]:
        return {"authorization": client.authorize("order_captured", state["total"])}

    def place(state: Order, auth: Any) -> str:
        placed.append(state["item"])
        return f"placed {state['item']} under {auth.authorization_id}"

    graph = StateGraph(Order)
    graph.add_node("propose", propose)
    graph.add_node("approve", approval_node(client, execute=place, settle=True))
    graph.add_edge(START, "propose")
    graph.add_edge("propose", "approve")
    graph.add_edge("approve", END)
    return graph.compile(checkpointer=InMemorySaver())


CONFIG: Any = {"configurable": {"thread_id": "order-1"}}


def test_an_approved_spend_executes_at_once(client: Agenitry) -> None:
    placed: list[str] = []
    output = build(client, placed).invoke({"item": "salmon roll", "total": 24.5}, CONFIG, version="v2")
    assert placed == ["salmon roll"]
    assert output.value["authorization"]["status"] == "settled"
    assert output.value["authorization_result"].startswith("placed salmon roll under auth_")


def test_pending_waits_for_the_gateway_not_for_the_resume_value(client: Agenitry) -> None:
    placed: list[str] = []
    graph = build(client, placed)
    [pause] = graph.invoke({"item": "omakase", "total": 450}, CONFIG, version="v2").interrupts
    authorization_id = pause.value["authorization_id"]
    forged = graph.invoke(Command(resume={"approved": True, "status": "approved"}), CONFIG, version="v2")
    assert forged.interrupts and placed == []
    client.approve(authorization_id)
    output = graph.invoke(Command(resume="ok"), CONFIG, version="v2")
    assert placed == ["omakase"]
    assert output.value["authorization"]["status"] == "settled"
    assert client.get_authorization(authorization_id)["status"] == "settled"


def test_two_resumes_of_one_pause_place_the_order_once(client: Agenitry) -> None:
    """A resume delivered twice at once: the claim lets one run the order, the other is told so."""
    placed: list[str] = []
    first_back = threading.Event()

    def place(state: Order, auth: Any) -> str:
        first_back.wait(30)  # hold the claim until the other resume has come back
        placed.append(state["item"])
        return "placed"

    graph = StateGraph(Order)
    graph.add_node("propose", lambda state: {"authorization": client.authorize("order_captured", state["total"])})
    graph.add_node("approve", approval_node(client, execute=place))
    graph.add_edge(START, "propose")
    graph.add_edge("propose", "approve")
    graph.add_edge("approve", END)
    compiled = graph.compile(checkpointer=InMemorySaver())
    [pause] = compiled.invoke({"item": "omakase", "total": 450}, CONFIG, version="v2").interrupts
    client.approve(pause.value["authorization_id"])

    def resume() -> Any:
        try:
            return compiled.invoke(Command(resume="ok"), CONFIG, version="v2")
        finally:
            first_back.set()

    with ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(lambda _: resume(), range(2)))
    assert placed == ["omakase"]
    results = [output.value.get("authorization_result") for output in outputs]
    assert sorted(results, key=str) == [None, "placed"]
    [told] = [
        output.value["authorization"]["message"] for output in outputs if "authorization_result" not in output.value
    ]
    assert told.startswith(("Already under way", "Already done"))
    assert client.get_authorization(pause.value["authorization_id"])["status"] == "executed"


def test_a_denial_is_reported_and_nothing_runs(client: Agenitry) -> None:
    placed: list[str] = []
    graph = build(client, placed)
    [pause] = graph.invoke({"item": "omakase", "total": 450}, CONFIG, version="v2").interrupts
    client.deny(pause.value["authorization_id"], reason="Kitchen is full")
    output = graph.invoke(Command(resume={"approved": True}), CONFIG, version="v2")
    assert placed == []
    record = output.value["authorization"]
    assert record["status"] == "denied" and "Kitchen is full" in record["message"]


def test_a_policy_denial_never_pauses(client: Agenitry) -> None:
    placed: list[str] = []
    output = build(client, placed).invoke({"item": "sushi", "total": 5000}, CONFIG, version="v2")
    assert output.interrupts == () and placed == []
    assert "single-transaction limit" in output.value["authorization"]["message"]


@pytest.mark.anyio
async def test_the_async_node_on_the_async_client(aclient: Any) -> None:
    placed: list[str] = []

    async def propose(state: Order) -> dict[str, Any]:
        return {"authorization": await aclient.authorize("order_captured", state["total"])}

    async def place(state: Order, auth: Any) -> str:
        placed.append(state["item"])
        return "placed"

    graph_builder = StateGraph(Order)
    graph_builder.add_node("propose", propose)
    graph_builder.add_node("approve", approval_node(aclient, execute=place))
    graph_builder.add_edge(START, "propose")
    graph_builder.add_edge("propose", "approve")
    graph = graph_builder.compile(checkpointer=InMemorySaver())
    [pause] = (await graph.ainvoke({"item": "omakase", "total": 450}, CONFIG, version="v2")).interrupts
    assert (await graph.ainvoke(Command(resume=True), CONFIG, version="v2")).interrupts and placed == []
    await aclient.approve(pause.value["authorization_id"])
    output = await graph.ainvoke(Command(resume=True), CONFIG, version="v2")
    assert placed == ["omakase"] and output.value["authorization"]["status"] == "executed"


def test_wait_for_approval_inside_any_node(client: Agenitry) -> None:
    class State(TypedDict, total=False):
        authorization_id: str
        status: str

    def decide(state: State) -> dict[str, Any]:
        return {"status": wait_for_approval(client, state["authorization_id"])["status"]}

    graph_builder = StateGraph(State)
    graph_builder.add_node("decide", decide)
    graph_builder.add_edge(START, "decide")
    graph = graph_builder.compile(checkpointer=InMemorySaver())
    pending = client.authorize("order_captured", 300)
    assert graph.invoke({"authorization_id": pending["authorization_id"]}, CONFIG, version="v2").interrupts
    client.deny(pending["authorization_id"])
    assert graph.invoke(Command(resume=True), CONFIG, version="v2").value["status"] == "denied"


# -- restart between pause and resume --------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import json, sqlite3, sys
    from pathlib import Path
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import tools_condition
    from langgraph.types import Command
    from agenitry import Agenitry
    from agenitry.langgraph import Gate, GatedToolNode

    phase, database, checkpoints, effects, venue = sys.argv[1:6]

    class Scripted(GenericFakeChatModel):
        def bind_tools(self, tools, **kwargs):
            return self

    call = {"name": "order_food", "args": {"item": "omakase", "total": 450}, "id": "call_1", "type": "tool_call"}
    chat = Scripted(messages=iter([AIMessage(content="", tool_calls=[call]), AIMessage(content="Enjoy!")]))

    @tool
    def order_food(item: str, total: float) -> str:
        \"\"\"Order food.\"\"\"
        with open(effects, "a") as out:
            out.write(json.dumps([item, total]) + "\\n")
        return f"ordered {item}"

    client = Agenitry.embedded(database, venue_id=venue, agent_id="voice-agent")
    graph = StateGraph(MessagesState)
    graph.add_node("model", lambda state: {"messages": [chat.invoke(state["messages"])]})
    graph.add_node("tools", GatedToolNode([order_food], client=client,
                                          spending={"order_food": Gate("order_captured", "total")}))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    saver = SqliteSaver(sqlite3.connect(checkpoints, check_same_thread=False))
    app = graph.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "table-9"}}
    if phase == "pause":
        out = app.invoke({"messages": [{"role": "user", "content": "omakase for four"}]}, config, version="v2")
    else:
        assert app.get_state(config).next == ("tools",), app.get_state(config)
        out = app.invoke(Command(resume="resumed in a new process"), config, version="v2")
    client.close()
    print(json.dumps({"interrupts": [i.value for i in out.interrupts],
                      "last": out.value["messages"][-1].content}))
    """
)


def run(tmp_path: Path, phase: str, database: str, venue_id: str) -> dict[str, Any]:
    script = tmp_path / "restaurant_graph.py"
    script.write_text(SCRIPT)
    argv = [phase, database, str(tmp_path / "checkpoints.db"), str(tmp_path / "effects.jsonl"), venue_id]
    done = subprocess.run(
        [sys.executable, str(script), *argv], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def test_a_pause_survives_a_restart_with_sqlitesaver(tmp_path: Path, embedded_url: str, venue_id: str) -> None:
    with Agenitry.embedded(embedded_url, venue_id=venue_id) as owner:
        owner.set_policy(agent_id=None, max_single_amount=1000, require_approval_above=100)
        paused = run(tmp_path, "pause", embedded_url, venue_id)
        [value] = paused["interrupts"]
        assert not (tmp_path / "effects.jsonl").exists()
        # The process is gone; the owner approves; a new process resumes from the checkpoint file.
        owner.approve(value["authorization_id"])
        resumed = run(tmp_path, "resume", embedded_url, venue_id)
        assert resumed == {"interrupts": [], "last": "Enjoy!"}
        assert (tmp_path / "effects.jsonl").read_text().splitlines() == ['["omakase", 450.0]']
        [record] = owner.authorizations(agent_id=None)["authorizations"]
        assert record["status"] == "executed" and record["authorization_id"] == value["authorization_id"]
