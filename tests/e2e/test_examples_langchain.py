"""The LangChain and LangGraph examples run offline and tell the whole human-in-the-loop story.

``examples/langgraph_restaurant.py --serve`` is what ``make demo`` runs: the test plays it
to the end, opens one of its verify links on the gateway it leaves serving, then stops it
with Ctrl-C (SIGINT).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _offline_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "AGENITRY_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_the_langchain_agent_example(repo_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "examples/langchain_agent.py"],
        cwd=repo_root,
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Done: 10 lb of salmon ordered for $180.00" in out
    assert "⏸  Paused: Waiting for the owner's approval: purchase_order of 620.00 USD" in out
    assert "The owner approves through the API: approved" in out and "Done: 40 lb of bluefin ordered" in out
    assert "Supplier orders placed: 10 lb salmon, 40 lb bluefin" in out
    assert "tool_call order_supplies → pending" in out and "tool_call lookup_supplier_price → ok" in out
    assert out.count("/verify/nobo-downtown/evt_") == 19  # 18 events + the link log_event answered


def test_the_restaurant_demo_then_the_gateway_keeps_serving(repo_root: Path, tmp_path: Path) -> None:
    port = _free_port()
    demo = subprocess.Popen(
        [sys.executable, "examples/langgraph_restaurant.py", "--serve", "--dir", str(tmp_path), "--port", str(port)],
        cwd=repo_root,
        env=_offline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a timeout below stops its gateway too
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops it."):
                break
        out = "".join(lines)
        assert "Ctrl-C stops it." in out, demo.stderr.read() if demo.stderr else out
        links = re.findall(rf"http://127\.0\.0\.1:{port}/verify/nobo-downtown/evt_\w+", out)
        page = httpx.get(links[-1], timeout=10)
        assert page.status_code == 200 and links[-1].rsplit("/", 1)[1] in page.text
        owner_sees_the_waiting_order(out, port)
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            rest, _ = demo.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)  # never leave it (or its gateway) running into the next test
            rest, errors = demo.communicate()
            raise AssertionError(f"the demo did not stop on Ctrl-C:\n{rest}\n{errors}") from None
    assert demo.returncode == 0
    assert "Stopping the gateway." in rest

    # 1. the salmon roll, approved at once and settled
    assert re.search(r"1\. Guest: A salmon roll.*\n   Authorization auth_\w+: settled\n   Agent: Done: 1 x salmon", out)
    # 2. the omakase: paused, approved from the CLI, resumed, settled
    omakase = out.split("2. Guest:")[1].split("3. Guest:")[0]
    assert "⏸  The graph pauses: order_captured of $450.00 needs the owner's approval" in omakase
    assert "The owner runs `agenitry approve auth_" in omakase and "is approved" in omakase
    assert "▶  Resumed from the checkpoint." in omakase and ": settled" in omakase
    # 3. and 4. denied, with the reason told to the guest
    assert "exceeds the single-transaction limit of $1,000.00" in out.split("3. Guest:")[1].split("4. Guest:")[0]
    assert "Action 'comp_issued' is not allowed" in out.split("4. Guest:")[1]
    assert "The kitchen received: 1 x salmon roll, 4 x omakase\n" in out
    # every tool call is in the trail with its link
    trail = out.split("The audit trail")[1]
    calls = re.findall(r"tool_call (\w+) → (\w+)\s+http://\S+/verify/nobo-downtown/evt_\w+", trail)
    assert calls == [
        ("order_food", "ran"),
        ("order_food", "pending"),
        ("order_food", "ran"),
        ("order_food", "denied"),
        ("issue_refund", "denied"),
    ]
    assert len(links) == 19
    # where things are, and follow-up commands that work as printed
    assert (
        f"The database is {tmp_path / 'agenitry.db'}; its checkpoint signing key is {tmp_path}/agenitry-signing.key"
        in out
    )
    follow_ups = [line.strip() for line in out.splitlines() if line.startswith("  ") and " --db " in line]
    assert [shlex.split(line)[3] for line in follow_ups] == ["authorizations", "log", "verify"]
    for line in follow_ups:
        done = subprocess.run(shlex.split(line), cwd=repo_root, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, (line, done.stderr)
    # the 19 of the story, the console's admin key and the order left waiting
    assert done.stdout.startswith("verified: venue nobo-downtown: 21 entries, 1 signed checkpoints")


def owner_sees_the_waiting_order(out: str, port: int) -> None:
    """The console the demo prints opens with the admin key it prints, on the order it left waiting."""
    console = re.search(r"The owner's console: (http://127\.0\.0\.1:\d+/console)\n", out)
    key = re.search(r"Sign in with this admin key \(made for the demo, shown only here\): (ag_[\w-]+)\n", out)
    waiting = re.search(r"A catering order of \$640\.00 waits for your decision there \((auth_\w+)\)", out)
    assert console and key and waiting, out
    assert console.group(1) == f"http://127.0.0.1:{port}/console"
    with httpx.Client(base_url=console.group(1).removesuffix("/console"), timeout=10) as browser:
        form = browser.get("/console/login").text
        token = re.search(r'name="token" value="([^"]+)"', form)
        assert token is not None
        signed_in = browser.post(
            "/console/login",
            data={"token": token.group(1), "then": "/console", "key": key.group(1)},
            headers={"Origin": f"http://127.0.0.1:{port}"},
        )
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console"
        queue = browser.get("/console").text
    assert waiting.group(1) in queue and "$640.00" in queue and "32 bento boxes" in queue
