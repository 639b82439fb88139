"""OpenAI function calling with spend gating: the real openai client, offline by default.

A buyer agent orders fish through Chat Completions. ``ToolRunner`` gives the model strict
tool schemas, runs the tool calls it answers with (a spending one only once the gateway
approved it) and returns the tool messages to send back. The salmon order is under the
approval threshold and runs; the tuna order waits for the owner, who approves it in the
gateway, and the runner completes it. Then one turn of the Responses API (a read-only
tool). Every call is in the audit trail.

Without OPENAI_API_KEY the model's answers are replayed from hand-written vcrpy cassettes
(tests/openai/cassettes/, in OpenAI's documented response format) through the real
``openai`` client: no network, no API key. With OPENAI_API_KEY set it talks to the real
model instead (``--replay`` replays anyway).

    python examples/openai_function_calling.py [--dir var/openai-example] [--replay]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openai import OpenAI

from agenitry import Agenitry
from agenitry.openai import ToolRunner

VENUE = "nobo-downtown"
MODEL = "gpt-4o-mini"
CASSETTES = Path(__file__).resolve().parents[1] / "tests" / "openai" / "cassettes"
SYSTEM = "You are the buyer for a restaurant. Use the tools; never spend without them."
#: Ids the gateway makes up (random on every run): the replay compares requests without them.
IDS = re.compile(r"\b(auth|evt)_[A-Za-z0-9]+")


def order_supplies(item: str, pounds: int, total: float) -> dict[str, Any]:
    """Order fish from the supplier; returns the receipt.

    Args:
        item: The fish, e.g. salmon.
        pounds: How many pounds.
        total: The price quoted, in dollars.
    """
    return {"item": item, "pounds": pounds, "charged": total}


def check_stock(item: str) -> int:
    """How many pounds of an item are in the walk-in.

    Args:
        item: The fish, e.g. salmon.
    """
    return {"salmon": 4, "tuna": 0}.get(item, 0)


def _normalized(request: Any) -> Any:
    body = request.body or b"{}"
    text = body.decode() if isinstance(body, bytes) else str(body)
    return json.loads(IDS.sub(r"\1_ID", text))


def same_conversation(recorded: Any, sent: Any) -> None:
    """vcrpy matcher: the same JSON body, but for the gateway's random ids."""
    if _normalized(recorded) != _normalized(sent):
        raise AssertionError("the request differs from the recorded one")


@contextlib.contextmanager
def replay(live: bool, name: str) -> Iterator[None]:
    if live:
        yield
        return
    import vcr

    player = vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode="none",
        match_on=["method", "scheme", "host", "port", "path", "conversation"],
        filter_headers=["authorization"],
    )
    player.register_matcher("conversation", same_conversation)
    with player.use_cassette(name, allow_playback_repeats=False) as cassette:
        yield
        if not cassette.all_played:
            raise RuntimeError(f"{name}: not every recorded answer was used")


def chat(llm: OpenAI, runner: ToolRunner, live: bool) -> list[str]:
    """The Chat Completions loop; returns the authorization ids left pending."""
    messages: list[Any] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Order 50 lb of salmon ($180) and 20 lb of tuna ($340)."},
    ]
    pending: list[str] = []
    with replay(live, "chat_order.yaml"):
        for _ in range(4):
            reply = llm.chat.completions.create(model=MODEL, messages=messages, tools=runner.chat_tools())
            message = reply.choices[0].message
            messages.append(message.model_dump(exclude_none=True))
            if not message.tool_calls:
                print(f"model: {message.content}")
                break
            for result in runner.run_calls(message):
                arguments = json.loads(result.call.arguments)
                print(f"tool {result.call.name}{arguments} -> {result.status}: {result.content}")
                messages.append(result.message())
                if result.status == "pending" and result.authorization_id:
                    pending.append(result.authorization_id)
    return pending


def responses(llm: OpenAI, runner: ToolRunner, live: bool) -> None:
    """One question through the Responses API."""
    with replay(live, "responses_stock.yaml"):
        items: list[Any] = [{"role": "user", "content": "How much salmon is in the walk-in?"}]
        response = llm.responses.create(model=MODEL, input=items, tools=runner.responses_tools())
        outputs = runner.run(response)
        for output in outputs:
            print(f"responses: function_call_output {output['output']}")
        items += [item.model_dump(exclude_none=True) for item in response.output] + outputs
        final = llm.responses.create(model=MODEL, input=items, tools=runner.responses_tools())
        print(f"model: {final.output_text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="var/openai-example", help="where the SQLite database lives")
    parser.add_argument("--replay", action="store_true", help="replay the cassettes even if OPENAI_API_KEY is set")
    args = parser.parse_args()
    live = bool(os.environ.get("OPENAI_API_KEY")) and not args.replay
    folder = Path(args.dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    database = f"sqlite:///{(folder / 'agenitry.db').resolve()}"
    llm = OpenAI(api_key=os.environ["OPENAI_API_KEY"]) if live else OpenAI(api_key="sk-offline", max_retries=0)

    with Agenitry.embedded(database, venue_id=VENUE, agent_id="buyer") as agent:
        agent.set_policy(max_single_amount=500, require_approval_above=200)
        runner = ToolRunner(agent, tools=[check_stock])
        runner.add(order_supplies, action="purchase_order", amount="total", actual=lambda receipt: receipt["charged"])

        pending = chat(llm, runner, live)
        for authorization_id in pending:
            agent.approve(authorization_id, note="fine, tuna is on the menu")  # the owner, in the gateway
            result = runner.resume(authorization_id)
            print(f"owner approved {authorization_id}; resumed -> {result.status}: {result.content}")

        responses(llm, runner, live)

        agent.flush()
        print("Audit trail:")
        for event in reversed(agent.events(agent_id=None, limit=50)["events"]):
            context = event.get("context") or {}
            detail = f"{context.get('tool')} {context.get('outcome')}" if event["action"] == "tool_call" else ""
            print(f"  {event['action']:<16} {event['amount'] or '':>8} {detail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
