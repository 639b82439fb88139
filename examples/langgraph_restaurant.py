"""The restaurant voice agent on LangGraph, with the owner in the loop (offline by default).

Run it with ``make demo`` (or ``python examples/langgraph_restaurant.py``). A guest talks
to Nobo Downtown's voice agent, a LangGraph graph whose spending tools run through a
``GatedToolNode`` on an embedded Agenitry gateway (SQLite):

1. a salmon roll, $24.50: approved, ordered, executed and settled;
2. the omakase for four, $450: above the approval threshold, so the graph pauses; the owner
   approves from the command line (``agenitry approve``), the graph resumes from its
   SQLite checkpoint, and the order is placed, executed and settled;
3. $5,000 of sushi for the whole street: denied by the single-order limit;
4. a refund: not among the agent's allowed actions, denied;

then the audit trail, every tool call included, each with its verify link. ``--serve``
keeps ``agenitry serve`` running on the same database afterwards so the links open, and
opens the owner's console to you: it prints the console's address and an admin key, and
leaves one request (a $640 catering order) waiting there for your decision.

Offline, a scripted chat model plays the agent's part. With ``OPENAI_API_KEY`` set and
``langchain-openai`` installed (and without ``--offline``) a real model does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import Command

from agenitry import Agenitry
from agenitry.langgraph import Gate, GatedToolNode

VENUE = "nobo-downtown"
AGENT = "voice-agent"
#: How long the gateway gets to finish its requests after Ctrl-C.
GRACE = 10
SYSTEM = (
    "You are the voice agent of Nobo Downtown, a sushi restaurant. Take orders with order_food "
    "(total in USD) and refunds with issue_refund. If a tool says you are not authorized, tell the guest why."
)
#: What the guest says, and what the scripted agent does about it (one tool call per turn).
CONVERSATION: list[tuple[str, str, dict[str, Any]]] = [
    ("A salmon roll, please.", "order_food", {"item": "salmon roll", "quantity": 1, "total": 24.50}),
    ("And the omakase for four, for tonight.", "order_food", {"item": "omakase", "quantity": 4, "total": 450.00}),
    (
        "Actually, sushi for the whole street: $5,000 worth.",
        "order_food",
        {"item": "sushi platter", "quantity": 100, "total": 5000.00},
    ),
    ("My last order was late; refund me $30.", "issue_refund", {"order": "salmon roll", "amount": 30.00}),
]


class ScriptedAgent(BaseChatModel):
    """Plays the model offline: the scripted tool call for each guest turn, then a reply to its result."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedAgent:  # type: ignore[override]
        return self

    @property
    def _llm_type(self) -> str:
        return "scripted-agent"

    def _generate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            if last.status == "error":
                reply = f"I'm sorry, I can't do that. {last.content}"
            else:
                reply = f"Done: {last.content}"
            message = AIMessage(content=reply)
        else:
            turn = sum(isinstance(m, HumanMessage) for m in messages) - 1
            _, name, args = CONVERSATION[turn]
            message = AIMessage(
                content="", tool_calls=[{"name": name, "args": args, "id": f"call_{turn + 1}", "type": "tool_call"}]
            )
        return ChatResult(generations=[ChatGeneration(message=message)])


def chat_model(offline: bool) -> BaseChatModel:
    if not offline and os.environ.get("OPENAI_API_KEY"):
        try:
            from langchain_openai import ChatOpenAI  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            print("Using a real model (OPENAI_API_KEY is set).")
            return ChatOpenAI(model="gpt-4o-mini", temperature=0)  # type: ignore[no-any-return]
    return ScriptedAgent()


# -- the restaurant's tools: what really happens -------------------------------------------------------

KITCHEN: list[str] = []


@tool
def order_food(item: str, quantity: int, total: float) -> str:
    """Send an order to the kitchen and charge the guest's card."""
    KITCHEN.append(f"{quantity} x {item}")
    return f"{quantity} x {item} sent to the kitchen, ${total:,.2f} charged."


@tool
def issue_refund(order: str, amount: float) -> str:
    """Refund a guest."""
    return f"Refunded ${amount:,.2f} for the {order}."


def build_graph(client: Agenitry, model: BaseChatModel, checkpointer: Any) -> Any:
    tools = [order_food, issue_refund]
    bound = model.bind_tools(tools)

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke([SystemMessage(SYSTEM), *state["messages"]])]}

    spending = {
        "order_food": Gate("order_captured", amount="total", settle=True),
        "issue_refund": Gate("comp_issued", amount="amount", settle=True),
    }
    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", GatedToolNode(tools, client=client, spending=spending))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(checkpointer=checkpointer)


# -- the story ------------------------------------------------------------------------------------------


def owner_approves(authorization_id: str, database: str, how: str, client: Agenitry) -> None:
    if how == "api":
        record = client.approve(authorization_id, note="Approved by the owner")
        print(f"   The owner approves through the API: {record['status']}")
        return
    command = [sys.executable, "-m", "agenitry.gateway.cli", "approve", authorization_id, "--venue", VENUE]
    done = subprocess.run([*command, "--db", database], capture_output=True, text=True, check=True)
    print(f"   The owner runs `agenitry approve {authorization_id} --venue {VENUE}`: {done.stdout.strip()}")


def play(client: Agenitry, graph: Any, database: str, how: str) -> None:
    config: Any = {"configurable": {"thread_id": "call-0142"}}
    for number, (said, _, _) in enumerate(CONVERSATION, start=1):
        print(f"{number}. Guest: {said}")
        output = graph.invoke({"messages": [HumanMessage(said)]}, config, version="v2")
        while output.interrupts:
            pause = output.interrupts[0].value
            print(
                f"   ⏸  The graph pauses: {pause['action']} of ${pause['amount']:,.2f} needs the owner's approval "
                f"({pause['authorization_id']})."
            )
            owner_approves(pause["authorization_id"], database, how, client)
            # The value is only a cue: the node reads the authorization from the gateway again.
            output = graph.invoke(Command(resume="the owner decided"), config, version="v2")
            print("   ▶  Resumed from the checkpoint.")
        tool_message = next(m for m in reversed(output.value["messages"]) if isinstance(m, ToolMessage))
        decided = tool_message.response_metadata.get("agenitry", {})
        if decided.get("authorization_id"):
            record = client.get_authorization(decided["authorization_id"])
            print(f"   Authorization {record['authorization_id']}: {record['status']}")
        print(f"   Agent: {output.value['messages'][-1].content}")


def audit_trail(client: Agenitry) -> None:
    client.flush(timeout=10)
    events = sorted(client.events(agent_id=None, limit=200)["events"], key=lambda event: event["sequence"])
    print(f"\nThe audit trail ({len(events)} events), each verifiable by anyone holding its link:")
    for event in events:
        context = event.get("context") or {}
        if event["action"] == "tool_call":
            what = f"tool_call {context.get('tool')} → {context.get('outcome')}"
        else:
            amount = event.get("amount")
            what = f"{event['action']}" + (f" ${float(amount):,.2f}" if amount is not None else "")
        print(f"  #{event['sequence']:<3} {what:<44} {event['verify_url']}")


def where_things_are(folder: Path) -> None:
    """The files the demo left, and commands that work on them (from this directory)."""
    agenitry = Path(sys.executable).with_name("agenitry")
    if agenitry.is_relative_to(Path.cwd()):
        agenitry = agenitry.relative_to(Path.cwd())
    command = f"{agenitry} --db {folder / 'agenitry.db'}"
    print(
        f"\nThe database is {folder / 'agenitry.db'}; its checkpoint signing key is {folder / 'agenitry-signing.key'}."
    )
    print("Look at it yourself (sign a checkpoint of the log now, then verify it):")
    print(f"  {command} authorizations --venue {VENUE}")
    print(f"  {command} log checkpoint --venue {VENUE}")
    print(f"  {command} verify --venue {VENUE}")


def leave_one_waiting(client: Agenitry) -> str:
    """A request for the owner to decide in the console: its authorization id."""
    waiting = client.authorize(
        action="order_captured",
        amount=640,
        reason="Catering for tomorrow's office lunch: 32 bento boxes",
        context={"order": "catering-0917", "guest_email": "office@example.com"},
    )
    return str(waiting["authorization_id"])


def serve(database: str, port: int, waiting: str) -> None:
    """Serve the database over HTTP until Ctrl-C, with the owner's console open to a newcomer:
    an admin key to sign in with, and the request ``waiting`` for the owner."""
    admin_key = _console_key(database)
    # Ctrl-C stops it even when started by a program that ignores Ctrl-C (a background job of a script does).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    command = [sys.executable, "-m", "agenitry.gateway.cli", "serve", "--db", database, "--port", str(port)]
    server = subprocess.Popen([*command, "--log-level", "warning"], stdout=subprocess.DEVNULL)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}", server, admin_key)
        print(f"\nThe gateway serves the same database on http://127.0.0.1:{port}: open the verify links above.")
        print(f"\nThe owner's console: http://127.0.0.1:{port}/console")
        print(f"  Sign in with this admin key (made for the demo, shown only here): {admin_key}")
        print(f"  A catering order of $640.00 waits for your decision there ({waiting}).")
        print("Ctrl-C stops it.", flush=True)
        # Wake up now and then: a Ctrl-C is noticed between waits even if it reached another thread.
        while server.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("\nStopping the gateway.")
    finally:
        server.terminate()
        try:
            server.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:  # requests still running after the grace: stop it hard
            server.kill()
            server.wait()


def _console_key(database: str) -> str:
    """A new admin key of the venue, from the CLI an owner would use (the secret on stdout)."""
    command = [sys.executable, "-m", "agenitry.gateway.cli", "keys", "create", "--venue", VENUE, "--role", "admin"]
    done = subprocess.run([*command, "--name", "demo console", "--db", database], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"could not make an admin key: {done.stderr.strip()}")
    return done.stdout.strip()


def _wait_until_up(base: str, server: subprocess.Popen[bytes], admin_key: str) -> None:
    """Wait until this demo's gateway answers: one that takes the demo's admin key (another
    program may have taken the port meanwhile, and then this gateway exits)."""
    deadline = time.monotonic() + 30
    request = urllib.request.Request(base + "/v1/policies", headers={"Authorization": f"Bearer {admin_key}"})
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the gateway did not start (is {base} taken by another program?)")
        try:
            with urllib.request.urlopen(request, timeout=1):
                return
        except OSError:  # not listening yet, or another program's answer: wait for ours
            time.sleep(0.1)
    raise SystemExit("the gateway did not answer within 30 seconds")


def _free_port(preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="var/restaurant", help="where the database and the checkpoints live")
    parser.add_argument("--approve-with", choices=["cli", "api"], default="cli", help="how the owner approves")
    parser.add_argument("--offline", action="store_true", help="always use the scripted model")
    parser.add_argument("--serve", action="store_true", help="keep a gateway serving the database afterwards")
    parser.add_argument("--port", type=int, default=int(os.environ.get("AGENITRY_PORT", "8700")))
    args = parser.parse_args(argv)

    folder = Path(args.dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    database = f"sqlite:///{(folder / 'agenitry.db').resolve()}"
    port = _free_port(args.port)

    client = Agenitry.embedded(database, venue_id=VENUE, agent_id=AGENT, public_url=f"http://127.0.0.1:{port}")
    client.set_policy(
        agent_id=AGENT,
        max_single_amount=1000,
        max_daily_spend=3000,
        require_approval_above=200,
        allowed_actions=["order_captured", "reservation_booked"],
    )
    print(
        f"Nobo Downtown's policy for {AGENT}: up to $1,000 an order, $3,000 a day, "
        "the owner approves above $200, orders and bookings only.\n"
    )
    checkpoints = sqlite3.connect(folder / "checkpoints.db", check_same_thread=False)
    try:
        graph = build_graph(client, chat_model(args.offline), SqliteSaver(checkpoints))
        play(client, graph, database, args.approve_with)
        print(f"\nThe kitchen received: {', '.join(KITCHEN) or 'nothing'}")
        audit_trail(client)
        where_things_are(folder)
        waiting = leave_one_waiting(client) if args.serve else None
    finally:
        client.close()
        checkpoints.close()
    if waiting is not None:
        # With the client closed, no thread of this process but the main one is left to catch Ctrl-C.
        serve(database, port, waiting)
    return 0


if __name__ == "__main__":
    sys.exit(main())
