"""A LangChain agent (``create_agent``) with AgenitryMiddleware: every tool call logged, spending gated.

Run it with ``python examples/langchain_agent.py``. The kitchen manager's agent checks
the menu, orders fish within its limits, waits for the owner on a large order (the agent
pauses with ``interrupt()``; the owner approves through the API; the agent resumes), and
86es a dish with the seed's ``log_event`` tool. Then the audit trail, with verify links.

Offline, a scripted chat model plays the agent. With ``OPENAI_API_KEY`` set and
``langchain-openai`` installed (and without ``--offline``) a real model does.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agenitry import Agenitry
from agenitry.langchain import AgenitryMiddleware, Gate, create_log_event_tool

VENUE = "nobo-downtown"
AGENT = "kitchen-agent"
ASKS: list[tuple[str, str, dict[str, Any]]] = [
    ("What does the salmon cost us?", "lookup_supplier_price", {"item": "salmon"}),
    ("Order 10 lb of salmon.", "order_supplies", {"item": "salmon", "pounds": 10, "total": 180.00}),
    ("Order 40 lb of bluefin for the weekend.", "order_supplies", {"item": "bluefin", "pounds": 40, "total": 620.00}),
    ("We are out of uni: mark it 86'd.", "log_event", {"action": "item_86d", "reason": "uni sold out"}),
]


class ScriptedAgent(BaseChatModel):
    """Plays the model offline: one scripted tool call per request, then a reply to its result."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedAgent:  # type: ignore[override]
        return self

    @property
    def _llm_type(self) -> str:
        return "scripted-agent"

    def _generate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            message = AIMessage(content=("Could not: " if last.status == "error" else "Done: ") + str(last.content))
        else:
            turn = sum(isinstance(m, HumanMessage) for m in messages) - 1
            _, name, args = ASKS[turn]
            message = AIMessage(
                content="", tool_calls=[{"name": name, "args": args, "id": f"call_{turn + 1}", "type": "tool_call"}]
            )
        return ChatResult(generations=[ChatGeneration(message=message)])


def chat_model(offline: bool) -> Any:
    if not offline and os.environ.get("OPENAI_API_KEY"):
        try:
            from langchain_openai import ChatOpenAI  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            return ChatOpenAI(model="gpt-4o-mini", temperature=0)
    return ScriptedAgent()


ORDERS: list[str] = []


@tool
def lookup_supplier_price(item: str) -> str:
    """The supplier's price per pound."""
    return f"{item}: $18.00/lb"


@tool
def order_supplies(item: str, pounds: int, total: float) -> str:
    """Order from the fish supplier (charged to the restaurant's account)."""
    ORDERS.append(f"{pounds} lb {item}")
    return f"{pounds} lb of {item} ordered for ${total:,.2f}"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="SQLite file of the embedded gateway (default: a temporary one)")
    parser.add_argument("--offline", action="store_true", help="always use the scripted model")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agenitry-langchain-") as folder:
        return run(f"sqlite:///{args.db or Path(folder) / 'agenitry.db'}", args.offline)


def run(database: str, offline: bool) -> int:
    with Agenitry.embedded(database, venue_id=VENUE, agent_id=AGENT) as client:
        client.set_policy(max_single_amount=2000, require_approval_above=500, allowed_actions=["purchase_order"])
        print(f"{AGENT}'s policy: purchases only, up to $2,000, the owner approves above $500.\n")
        middleware = AgenitryMiddleware(
            client, spending={"order_supplies": Gate("purchase_order", amount="total", settle=True)}
        )
        agent = create_agent(
            chat_model(offline),
            tools=[lookup_supplier_price, order_supplies, create_log_event_tool(client=client)],
            middleware=[middleware],
            checkpointer=InMemorySaver(),  # a pause needs a checkpointer
        )
        config: Any = {"configurable": {"thread_id": "kitchen-monday"}}
        for number, (asked, _, _) in enumerate(ASKS, start=1):
            print(f"{number}. Manager: {asked}")
            output = agent.invoke({"messages": [HumanMessage(asked)]}, config, version="v2")
            while output.interrupts:
                pause = output.interrupts[0].value
                print(f"   ⏸  Paused: {pause['message']}")
                approved = client.approve(pause["authorization_id"], note="Weekend special")
                print(f"   The owner approves through the API: {approved['status']}")
                output = agent.invoke(Command(resume="decided"), config, version="v2")
            print(f"   Agent: {output.value['messages'][-1].content}")

        client.flush(timeout=10)
        events = sorted(client.events(agent_id=None, limit=100)["events"], key=lambda event: event["sequence"])
        print(f"\nSupplier orders placed: {', '.join(ORDERS)}")
        print(f"The audit trail ({len(events)} events):")
        for event in events:
            context = event.get("context") or {}
            what = event["action"] if event["action"] != "tool_call" else f"tool_call {context['tool']}"
            outcome = f" → {context['outcome']}" if "outcome" in context else ""
            print(f"  #{event['sequence']:<3} {what + outcome:<40} {event['verify_url']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
