"""Gate a plain Python function with the core client: no framework, no server, offline.

An agent's tool, ``order_supplies``, spends money. ``@agent.guard`` asks the gateway
(embedded here, in this process, on a SQLite file) before every call: an approved order
runs and is then executed for what the supplier really charged and settled; an order
over the limit is refused before the function runs (SpendDenied); one above the
approval threshold waits for the owner (ApprovalRequired), who approves it, and the
agent completes it. ``@agent.logged`` records a read-only tool's calls. The wrapped
function keeps its signature and docstring, so any framework can build a tool schema
from it. Finally the audit trail, each event with its verify link.

    python examples/custom_tool_decorator.py [--dir var/custom-tool]
"""

from __future__ import annotations

import argparse
import inspect
import shutil
from pathlib import Path
from typing import Any

from agenitry import Agenitry, ApprovalRequired, SpendDenied

VENUE = "nobo-downtown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="var/custom-tool", help="where the SQLite database lives")
    args = parser.parse_args()
    folder = Path(args.dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    database = f"sqlite:///{(folder / 'agenitry.db').resolve()}"

    with Agenitry.embedded(database, venue_id=VENUE, agent_id="buyer") as agent:
        agent.set_policy(max_single_amount=500, require_approval_above=200, allowed_actions=["purchase_order"])

        @agent.guard(action="purchase_order", amount="total", settle=True, actual=lambda receipt: receipt["charged"])
        def order_supplies(item: str, pounds: int, total: float, supplier_api_key: str = "sk-demo") -> dict[str, Any]:
            """Order from the fish supplier; returns the receipt. (The key is redacted in the audit log.)"""
            return {"item": item, "pounds": pounds, "charged": round(total * 0.97, 2)}

        @agent.logged
        def check_stock(item: str) -> int:
            """How many pounds of ``item`` are in the walk-in."""
            return {"salmon": 4, "tuna": 0}.get(item, 0)

        print(f"Tool: order_supplies{inspect.signature(order_supplies)} — {order_supplies.__doc__}")
        check_stock("salmon")

        receipt = order_supplies("salmon", 50, 180.0)
        print(f"salmon $180.00: approved, executed and settled for ${receipt['charged']:.2f}")

        try:
            order_supplies("wagyu", 40, 3600.0)
        except SpendDenied as denied:
            print(f"wagyu $3,600.00: denied — {denied.reason}")

        try:
            order_supplies("tuna", 30, 340.0)
        except ApprovalRequired as waiting:
            print(f"tuna $340.00: pending — {waiting.authorization_id} waits for the owner")
            agent.approve(waiting.authorization_id, note="Friday omakase")  # the owner, from the same process
            record = agent.wait_for_approval(waiting.authorization_id, timeout=5)
            receipt = order_supplies.__wrapped__("tuna", 30, 340.0)  # type: ignore[attr-defined]
            agent.execute(record["authorization_id"], actual_amount=receipt["charged"])
            print(f"tuna $340.00: approved by the owner, executed for ${receipt['charged']:.2f}")

        agent.flush(10)
        # Tool calls are logged in the background, so they land when delivered, after the decisions made meanwhile.
        print("\nAudit trail, in order (links open once `agenitry serve` runs on this database):")
        for event in reversed(agent.events(agent_id=None, limit=50)["events"]):
            amount = f" ${event['amount']:.2f}" if event["amount"] is not None else ""
            print(f"  #{event['sequence']:<3} {event['action']:<26}{amount:<10} {event['verify_url']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
