"""The whole lifecycle against a real gateway on the embedded SQLite default.

Run it with ``make demo``. It creates a venue and keys with the ``agenitry`` command,
starts ``agenitry serve``, then plays the quick-start flow over HTTP as an agent would:
a policy, an order approved then executed and settled, an order denied, an order that
waits for the owner (who approves it from the command line) and is then executed, and
finally the events and stats, with the verify link of each event. The gateway keeps
serving until Ctrl-C (``--once`` stops after the flow).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

VENUE = "nobo-downtown"
AGENT = "voice-agent"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="stop the gateway after the flow")
    parser.add_argument("--dir", default="var/demo", help="where the demo database lives")
    parser.add_argument("--port", type=int, default=int(os.environ.get("AGENITRY_PORT", "8700")))
    args = parser.parse_args()

    folder = Path(args.dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    db = f"sqlite:///{(folder / 'agenitry.db').resolve()}"
    port = args.port if _free(args.port) else _any_free_port()
    base = f"http://127.0.0.1:{port}"

    cli = [sys.executable, "-m", "agenitry.gateway.cli"]
    _run([*cli, "venues", "create", VENUE, "--name", "Nobo Downtown", "--db", db])
    admin_key = json.loads(_run([*cli, "keys", "create", "--venue", VENUE, "--role", "admin", "--json", "--db", db]))
    agent_key = json.loads(
        _run([*cli, "keys", "create", "--venue", VENUE, "--role", "agent", "--agent-id", AGENT, "--json", "--db", db])
    )
    print(f"Venue {VENUE}: admin key {admin_key['prefix']}…, agent key {agent_key['prefix']}… for {AGENT}")

    server = subprocess.Popen(
        [*cli, "serve", "--db", db, "--port", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(base, server, admin_key["key"])
        print(f"Gateway serving on {base} (SQLite: {folder / 'agenitry.db'})\n")
        owner = _Api(base, admin_key["key"])
        agent = _Api(base, agent_key["key"])
        _flow(owner, agent, cli, db)
        if args.once:
            return 0
        print(f"\nThe gateway keeps serving on {base}: open the verify links above. Ctrl-C stops it.")
        server.wait()
    except KeyboardInterrupt:
        print("\nStopping the gateway.")
    finally:
        server.terminate()
        server.wait(timeout=10)
    return 0


def _flow(owner: _Api, agent: _Api, cli: list[str], db: str) -> None:
    policy = owner.call(
        "PUT",
        "/v1/policies",
        {
            "agent_id": AGENT,
            "max_single_amount": 500,
            "max_daily_spend": 5000,
            "require_approval_above": 200,
            "allowed_actions": ["order_captured", "reservation_booked", "comp_issued"],
        },
    )
    print(f"1. The owner sets {AGENT}'s policy {policy['id']}: $500 per order, $5,000 a day, approval above $200")

    auth = agent.call("POST", "/v1/authorize", {"action": "order_captured", "amount": 127.00})
    print(f"2. The agent asks for $127.00: {auth['status']} ({auth['authorization_id']})")
    executed = agent.call("POST", f"/v1/authorize/{auth['authorization_id']}/execute", {})
    settled = agent.call("POST", f"/v1/authorize/{auth['authorization_id']}/settle", {})
    print(f"   executed → event {executed['event_id']}, then {settled['status']}")

    denied = agent.call("POST", "/v1/authorize", {"action": "order_captured", "amount": 36000})
    print(f"3. The agent asks for $36,000.00: {denied['status']} — {denied['denial_reason']}")

    pending = agent.call("POST", "/v1/authorize", {"action": "order_captured", "amount": 340})
    print(f"4. The agent asks for $340.00: {pending['status']} — {pending['message']}")
    approval = _run(
        [*cli, "approve", pending["authorization_id"], "--venue", VENUE, "--note", "regular guest", "--db", db]
    )
    print(f"   The owner runs `agenitry approve`: {approval.strip()}")
    executed_late = agent.call("POST", f"/v1/authorize/{pending['authorization_id']}/execute", {"actual_amount": 338.5})
    print(f"   executed for $338.50 → event {executed_late['event_id']}")

    logged = agent.call("POST", "/v1/events", {"venue_id": VENUE, "action": "reservation_booked", "amount": 0})
    print(f"5. The agent logs a reservation: {logged['status']} as entry #{logged['sequence']}")

    events = owner.call("GET", f"/v1/events/{VENUE}?limit=200")
    stats = owner.call("GET", f"/v1/events/{VENUE}/stats?period=today")
    print(f"\nThe audit trail holds {events['total']} events; today's business: ")
    print(f"  inbound ${stats['total_inbound']:,.2f} over {stats['event_count']} events")
    for event in reversed(events["events"]):
        amount = f"{event['amount']:>9,.2f}" if event["amount"] is not None else " " * 9
        print(f"  #{event['sequence']:<3} {event['action']:<26} {amount}  {event['verify_url']}")


class _Api:
    """A plain HTTP client, as any program in any language would use the gateway."""

    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.key = key

    def call(self, method: str, path: str, body: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.key}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer: dict[str, Any] = json.load(response)
                return answer
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"{method} {path} failed: {exc.code} {exc.read().decode()}") from None


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:])} failed: {done.stderr.strip()}")
    return done.stdout


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


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _any_free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
