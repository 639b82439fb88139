"""A LlamaIndex FunctionAgent that spends only what the policy allows, with the owner in the loop.

The agent (a scripted function-calling LLM, so it runs offline) checks the walk-in and
orders fish. ``order_supplies`` is gated with ``human_approval=True``: the salmon order is
under the approval threshold and runs at once; the tuna order waits — the workflow emits
an ``ApprovalRequestEvent`` carrying the authorization, the owner approves it in the
gateway, the app sends a ``HumanResponseEvent`` and the agent carries on (the gateway's
record decides, not the response). The wagyu order is over the limit: the model is told
why and nothing is bought. ``instrument()`` logs every tool call from LlamaIndex's spans.

    python examples/llamaindex_agent.py [--dir var/llamaindex-example]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import warnings
from pathlib import Path
from typing import Any

from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import HumanResponseEvent
from pydantic.warnings import PydanticDeprecationWarning

from agenitry import Agenitry
from agenitry.llama_index import ApprovalRequestEvent, create_authorize_tool, gate_tool, instrument, uninstrument

VENUE = "nobo-downtown"
# LlamaIndex's workflows still read pydantic attributes pydantic deprecated; not ours to fix.
warnings.filterwarnings("ignore", category=PydanticDeprecationWarning)


def order_supplies(item: str, pounds: int, total: float) -> str:
    """Order fish from the supplier."""
    return f"ordered {pounds} lb of {item} for ${total:,.2f}"


def check_stock(item: str) -> int:
    """How many pounds of an item are in the walk-in."""
    return {"salmon": 4, "tuna": 0}.get(item, 0)


def scripted_model() -> MockFunctionCallingLLM:
    """Check the stock, then order three things at once; then sum up."""

    def respond(messages: list[ChatMessage], **_: Any) -> ChatMessage:
        tool_turns = sum(1 for m in messages if m.role == MessageRole.ASSISTANT and m.blocks)
        if tool_turns == 0:
            call = ToolCallBlock(tool_call_id="call_stock", tool_name="check_stock", tool_kwargs={"item": "salmon"})
            return ChatMessage(role="assistant", blocks=[call])
        if tool_turns == 1:
            orders = [("salmon", 50, 180.0), ("tuna", 20, 340.0), ("wagyu", 30, 3600.0)]
            calls = [
                ToolCallBlock(
                    tool_call_id=f"call_{item}",
                    tool_name="order_supplies",
                    tool_kwargs={"item": item, "pounds": pounds, "total": total},
                )
                for item, pounds, total in orders
            ]
            return ChatMessage(role="assistant", blocks=calls)
        return ChatMessage(role="assistant", content="Salmon and tuna are ordered; the wagyu was over the limit.")

    return MockFunctionCallingLLM(response_generator=respond)


async def run_agent(agent: Agenitry) -> None:
    order = gate_tool(
        FunctionTool.from_defaults(fn=order_supplies),
        action="purchase_order",
        amount="total",
        client=agent,
        human_approval=True,
    )
    tools = [FunctionTool.from_defaults(fn=check_stock), order, create_authorize_tool(client=agent)]
    handler = FunctionAgent(tools=tools, llm=scripted_model()).run(user_msg="Restock salmon, tuna and wagyu.")
    async for event in handler.stream_events():
        if isinstance(event, ApprovalRequestEvent):
            print(f"waiting: {event.prefix}")
            # The owner decides in the gateway (here: this embedded client is the venue's operator).
            agent.approve(event.authorization_id, note="tuna is on tonight's menu")
            print(f"owner approved {event.authorization_id}")
            handler.ctx.send_event(HumanResponseEvent(response="decided", authorization_id=event.authorization_id))
        elif isinstance(event, ToolCallResult):
            output = event.tool_output
            print(f"tool {event.tool_name}{event.tool_kwargs} -> {'error' if output.is_error else 'ok'}: {output}")
    print(f"agent: {await handler}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="var/llamaindex-example", help="where the SQLite database lives")
    args = parser.parse_args()
    folder = Path(args.dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    database = f"sqlite:///{(folder / 'agenitry.db').resolve()}"

    with Agenitry.embedded(database, venue_id=VENUE, agent_id="buyer") as agent:
        agent.set_policy(max_single_amount=500, require_approval_above=200)
        handler = instrument(agent)
        try:
            asyncio.run(run_agent(agent))
        finally:
            uninstrument(handler)
        agent.flush()
        print("Audit trail:")
        for event in reversed(agent.events(agent_id=None, limit=50)["events"]):
            context = event.get("context") or {}
            detail = f"{context.get('tool')} {context.get('outcome')}" if event["action"] == "tool_call" else ""
            print(f"  {event['action']:<24} {event['amount'] or '':>8} {detail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
