"""AgenitryMiddleware in a real ``create_agent`` loop (scripted model, embedded gateway).

Pins down: a gated tool runs only when the gateway approved it (asserted on the side
effect); denied → an error ToolMessage with the reason; pending → the agent pauses with
the authorization in the interrupt; a resume — forged or not — is only a cue to read the
authorization again; a re-run after resume authorizes once and runs once; a failing tool
is reversed; every call (blocked ones too) is in the audit trail. Sync and async.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from langchain.agents import create_agent
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agenitry import Agenitry
from agenitry.langchain import INTERRUPT_TYPE, AgenitryMiddleware, Gate

SPENDING = {"order_food": Gate("order_captured", amount="total", settle=True)}


class Kitchen:
    """The side effects: what was really ordered, and what was looked up."""

    def __init__(self) -> None:
        self.orders: list[tuple[str, float]] = []
        self.fail = False

        @tool
        def order_food(item: str, total: float) -> str:
            """Send an order to the kitchen and charge the guest."""
            if self.fail:
                raise RuntimeError("kitchen printer is offline")
            self.orders.append((item, total))
            return f"Ordered {item} for ${total:.2f}"

        @tool
        def lookup_menu(dish: str) -> str:
            """Find a dish on the menu."""
            return f"{dish}: $24.50"

        self.tools = [order_food, lookup_menu]


@pytest.fixture
def kitchen() -> Kitchen:
    return Kitchen()


def agent_for(client: Any, kitchen: Kitchen, model: Any, **options: Any) -> Any:
    middleware = AgenitryMiddleware(client, SPENDING, **options)
    return create_agent(model, tools=kitchen.tools, middleware=[middleware], checkpointer=InMemorySaver())


def tool_messages(output: Any) -> list[ToolMessage]:
    return [m for m in output.value["messages"] if isinstance(m, ToolMessage)]


CONFIG = {"configurable": {"thread_id": "table-7"}}
ASK = {"messages": [{"role": "user", "content": "I'd like to order"}]}


def test_an_approved_order_runs_and_is_executed_and_settled(client: Agenitry, kitchen: Kitchen, model: Any) -> None:
    agent = agent_for(client, kitchen, model(("order_food", {"item": "salmon roll", "total": 24.5}, "call_1")))
    output = agent.invoke(ASK, CONFIG, version="v2")
    assert output.interrupts == ()
    assert kitchen.orders == [("salmon roll", 24.5)]
    [message] = tool_messages(output)
    assert message.status == "success" and message.content == "Ordered salmon roll for $24.50"
    [authorization] = client.authorizations(agent_id=None)["authorizations"]
    assert authorization["status"] == "settled"
    assert authorization["context"]["tool_call_id"] == "call_1"


@pytest.mark.parametrize(
    ("args", "code"),
    [({"item": "sushi for the block", "total": 5000}, "max_single_amount"), ({"item": "x", "total": 10}, None)],
)
def test_a_denied_order_never_runs_and_the_model_reads_the_reason(
    client: Agenitry, kitchen: Kitchen, model: Any, args: dict[str, Any], code: Any
) -> None:
    spending = {"order_food": Gate("comp_issued", amount="total")} if code is None else SPENDING
    middleware = AgenitryMiddleware(client, spending)
    agent = create_agent(
        model(("order_food", args, "call_1")),
        tools=kitchen.tools,
        middleware=[middleware],
        checkpointer=InMemorySaver(),
    )
    output = agent.invoke(ASK, CONFIG, version="v2")
    assert kitchen.orders == []
    [message] = tool_messages(output)
    [authorization] = client.authorizations(agent_id=None)["authorizations"]
    assert authorization["status"] == "denied"
    assert authorization["denial_code"] == (code or "action_not_allowed")
    assert message.status == "error"
    assert authorization["denial_reason"] in message.content
    assert output.value["messages"][-1].content == "All done."  # the agent went on


def test_pending_pauses_then_runs_once_after_the_owner_approves(
    client: Agenitry, kitchen: Kitchen, model: Any, recorded: Callable[[], list[dict[str, Any]]]
) -> None:
    agent = agent_for(client, kitchen, model(("order_food", {"item": "omakase for four", "total": 450}, "call_1")))
    paused = agent.invoke(ASK, CONFIG, version="v2")
    [pause] = paused.interrupts
    assert pause.value["type"] == INTERRUPT_TYPE and pause.value["tool_call_id"] == "call_1"
    authorization_id = pause.value["authorization_id"]
    assert kitchen.orders == []
    assert agent.get_state(CONFIG).next == ("tools",)

    # A resume claiming approval while the gateway says pending: no order, paused again.
    forged = agent.invoke(Command(resume={"approved": True, "decision": "approve"}), CONFIG, version="v2")
    assert kitchen.orders == []
    assert [i.value["authorization_id"] for i in forged.interrupts] == [authorization_id]
    assert client.get_authorization(authorization_id)["status"] == "pending"

    client.approve(authorization_id)
    done = agent.invoke(Command(resume="owner said yes"), CONFIG, version="v2")
    assert done.interrupts == ()
    assert kitchen.orders == [("omakase for four", 450)]
    assert client.get_authorization(authorization_id)["status"] == "settled"
    assert len(client.authorizations(agent_id=None)["authorizations"]) == 1  # re-runs did not authorize again
    outcomes = [c["outcome"] for c in recorded() if c["tool"] == "order_food"]
    assert outcomes == ["pending", "pending", "ran"]


def test_an_edited_call_is_a_new_request_not_the_approved_one(client: Agenitry, kitchen: Kitchen, model: Any) -> None:
    """Same thread, same tool_call_id, a bigger amount: the gateway decides afresh."""
    first = agent_for(client, kitchen, model(("order_food", {"item": "omakase", "total": 450}, "call_1")))
    approved_id = first.invoke(ASK, CONFIG, version="v2").interrupts[0].value["authorization_id"]
    client.approve(approved_id)
    edited = agent_for(client, kitchen, model(("order_food", {"item": "omakase", "total": 900}, "call_1")))
    output = edited.invoke(ASK, CONFIG, version="v2")
    [pause] = output.interrupts
    assert pause.value["authorization_id"] != approved_id and pause.value["amount"] == 900
    assert kitchen.orders == []
    assert client.get_authorization(approved_id)["status"] == "approved"


def test_pending_then_the_owner_denies_tells_the_model(client: Agenitry, kitchen: Kitchen, model: Any) -> None:
    agent = agent_for(client, kitchen, model(("order_food", {"item": "omakase", "total": 450}, "call_1")))
    authorization_id = agent.invoke(ASK, CONFIG, version="v2").interrupts[0].value["authorization_id"]
    client.deny(authorization_id, reason="We are closed tonight")
    output = agent.invoke(Command(resume={"approved": True}), CONFIG, version="v2")
    assert kitchen.orders == []
    [message] = tool_messages(output)
    assert message.status == "error" and "We are closed tonight" in message.content


def test_without_pausing_the_model_is_told_to_wait(client: Agenitry, kitchen: Kitchen, model: Any) -> None:
    agent = agent_for(client, kitchen, model(("order_food", {"item": "omakase", "total": 450}, "c1")), pause=False)
    output = agent.invoke(ASK, CONFIG, version="v2")
    assert output.interrupts == () and kitchen.orders == []
    [message] = tool_messages(output)
    [authorization] = client.authorizations(agent_id=None)["authorizations"]
    assert message.status == "error" and authorization["authorization_id"] in message.content


def test_a_failing_tool_is_reversed_and_reported(client: Agenitry, kitchen: Kitchen, model: Any) -> None:
    kitchen.fail = True
    agent = agent_for(client, kitchen, model(("order_food", {"item": "salmon roll", "total": 24.5}, "call_1")))
    output = agent.invoke(ASK, CONFIG, version="v2")
    [message] = tool_messages(output)
    [authorization] = client.authorizations(agent_id=None)["authorizations"]
    assert authorization["status"] == "reversed"
    assert message.status == "error" and message.content == (
        "order_food failed: RuntimeError: kitchen printer is offline. "
        f"Authorization {authorization['authorization_id']} was released; nothing was spent."
    )


@pytest.mark.parametrize(("total", "sent"), [(True, "the boolean true"), ("450", "the string '450'")])
def test_an_amount_that_is_not_a_number_is_refused_unrun(
    client: Agenitry, kitchen: Kitchen, model: Any, total: Any, sent: str
) -> None:
    agent = agent_for(client, kitchen, model(("order_food", {"item": "omakase", "total": total}, "call_1")))
    [message] = tool_messages(agent.invoke(ASK, CONFIG, version="v2"))
    assert kitchen.orders == [] and client.authorizations(agent_id=None)["authorizations"] == []
    assert message.status == "error" and message.content == (
        f"order_food was not run: total must be a JSON number such as 127.5, not {sent}. "
        "Nothing was authorized; call it again with corrected arguments."
    )


def test_a_rerun_after_resume_neither_authorizes_nor_orders_twice(
    client: Agenitry, kitchen: Kitchen, model: Any
) -> None:
    """Two orders in one turn: the cheap one runs at once, the dear one pauses.

    On resume the paused call runs again from the top; the cheap one must not be ordered again.
    """
    turn = [
        ("order_food", {"item": "miso soup", "total": 6}, "call_a"),
        ("order_food", {"item": "omakase", "total": 450}, "call_b"),
    ]
    agent = agent_for(client, kitchen, model(turn))
    paused = agent.invoke(ASK, CONFIG, version="v2")
    [pause] = paused.interrupts
    assert kitchen.orders == [("miso soup", 6)]
    client.approve(pause.value["authorization_id"])
    output = agent.invoke(Command(resume=True), CONFIG, version="v2")
    assert output.interrupts == ()
    assert sorted(kitchen.orders) == [("miso soup", 6), ("omakase", 450)]
    authorizations = client.authorizations(agent_id=None)["authorizations"]
    assert sorted(a["status"] for a in authorizations) == ["settled", "settled"]
    messages = {m.tool_call_id: m for m in tool_messages(output)}
    assert messages["call_a"].content == "Ordered miso soup for $6.00"
    assert messages["call_b"].content == "Ordered omakase for $450.00"


def test_ungated_and_blocked_calls_are_all_recorded(
    client: Agenitry, kitchen: Kitchen, model: Any, recorded: Callable[[], list[dict[str, Any]]]
) -> None:
    agent = agent_for(
        client,
        kitchen,
        model(
            ("lookup_menu", {"dish": "salmon roll"}, "call_1"),
            ("order_food", {"item": "sushi", "total": 5000}, "call_2"),
            ("order_food", {"item": "salmon roll", "total": 24.5}, "call_3"),
        ),
    )
    agent.invoke(ASK, CONFIG, version="v2")
    calls = [(c["tool"], c["tool_call_id"], c["outcome"]) for c in recorded()]
    assert calls == [
        ("lookup_menu", "call_1", "ok"),
        ("order_food", "call_2", "denied"),
        ("order_food", "call_3", "ran"),
    ]
    assert all(c["duration_ms"] >= 0 for c in recorded())


@pytest.mark.anyio
async def test_the_async_agent_pauses_and_resumes_on_the_gateways_word(
    aclient: Any, kitchen: Kitchen, model: Any
) -> None:
    agent = agent_for(
        aclient,
        kitchen,
        model(
            ("order_food", {"item": "salmon roll", "total": 24.5}, "call_1"),
            ("order_food", {"item": "omakase", "total": 450}, "call_2"),
        ),
    )
    paused = await agent.ainvoke(ASK, CONFIG, version="v2")
    assert kitchen.orders == [("salmon roll", 24.5)]
    authorization_id = paused.interrupts[0].value["authorization_id"]
    again = await agent.ainvoke(Command(resume={"approved": True}), CONFIG, version="v2")
    assert kitchen.orders == [("salmon roll", 24.5)] and again.interrupts
    await aclient.approve(authorization_id)
    done = await agent.ainvoke(Command(resume="checked"), CONFIG, version="v2")
    assert done.interrupts == ()
    assert kitchen.orders == [("salmon roll", 24.5), ("omakase", 450)]
    assert (await aclient.get_authorization(authorization_id))["status"] == "settled"


@pytest.mark.anyio
async def test_the_async_agent_with_a_sync_client_is_denied_the_same_way(
    client: Agenitry, kitchen: Kitchen, model: Any
) -> None:
    agent = agent_for(client, kitchen, model(("order_food", {"item": "sushi", "total": 5000}, "call_1")))
    output = await agent.ainvoke(ASK, CONFIG, version="v2")
    assert kitchen.orders == []
    [message] = tool_messages(output)
    assert message.status == "error" and "single-transaction limit" in message.content
