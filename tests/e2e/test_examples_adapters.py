"""The LlamaIndex and OpenAI examples run offline (embedded gateway; a scripted or replayed model) and do what
they say: gating, the owner's approval, one record per tool call; the cassettes are JSON-matchable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _run(repo_root: Path, script: str, folder: Path, *extra: str) -> str:
    done = subprocess.run(
        [sys.executable, "-W", "error", script, "--dir", str(folder), *extra],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(folder), "NO_PROXY": "*"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _trail(out: str) -> list[str]:
    return [line.split()[0] for line in out.split("Audit trail:")[1].strip().splitlines()]


def test_llamaindex_agent_gates_orders_and_waits_for_the_owner(repo_root: Path, tmp_path: Path) -> None:
    out = _run(repo_root, "examples/llamaindex_agent.py", tmp_path)
    assert "tool check_stock{'item': 'salmon'} -> ok: 4" in out
    assert "-> ok: ordered 50 lb of salmon for $180.00" in out
    assert "-> error: Not authorized (denied): Amount $3,600.00 exceeds the single-transaction limit of $500.00" in out
    assert "waiting: Waiting for the owner's approval: purchase_order of 340.00 USD (authorization auth_" in out
    # The tuna runs only after the owner's approval, once.
    assert out.index("owner approved auth_") < out.index("ordered 20 lb of tuna for $340.00")
    assert out.count("ordered 20 lb of tuna") == 1
    trail = _trail(out)
    assert trail.count("purchase_order") == 2
    assert trail.count("authorization.denied") == 1
    assert trail.count("authorization.pending") == 1
    assert trail.count("authorization.executed") == 2
    assert trail.count("authorization.claimed") == 2
    # One record per tool call: the workflow's wait is a pause, not a second call.
    assert trail.count("tool_call") == 4


def test_openai_function_calling_replays_cassettes_through_the_real_client(repo_root: Path, tmp_path: Path) -> None:
    out = _run(repo_root, "examples/openai_function_calling.py", tmp_path, "--replay")
    assert "tool order_supplies{'item': 'salmon', 'pounds': 50, 'total': 180} -> approved" in out
    tuna = (
        "tool order_supplies{'item': 'tuna', 'pounds': 20, 'total': 340} -> pending: "
        "Waiting for the owner's approval: purchase_order of 340.00 USD (authorization auth_"
    )
    assert tuna in out
    assert "model: The salmon is ordered ($180)." in out
    assert "resumed -> approved: " in out and '"item": "tuna"' in out
    assert "responses: function_call_output 4" in out
    assert "model: There are 4 lb of salmon in the walk-in." in out
    trail = _trail(out)
    assert trail.count("purchase_order") == 2
    assert trail.count("authorization.pending") == 1
    assert trail.count("tool_call") == 4


@pytest.mark.parametrize("cassette", ["chat_order.yaml", "responses_stock.yaml"])
def test_cassettes_record_json_requests_and_documented_responses(repo_root: Path, cassette: str) -> None:
    import yaml

    data = yaml.safe_load((repo_root / "tests" / "openai" / "cassettes" / cassette).read_text())
    for interaction in data["interactions"]:
        # vcrpy compares bodies as JSON only when the recorded request says it is JSON.
        assert interaction["request"]["headers"]["Content-Type"] == ["application/json"]
        assert interaction["request"]["uri"].startswith("https://api.openai.com/v1/")
        assert interaction["response"]["status"]["code"] == 200
