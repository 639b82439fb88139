"""The commands in processes of their own, as MCP clients start them: over stdio and over streamable HTTP.

The proxy runs examples/mcp_proxy.toml as an owner would, with one line added: the
supplier's ledger file (``SUPPLIER_LEDGER``), where it writes every order it really
received, so the test can count them across restarts of both processes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client as MCPClient
from mcp import StdioServerParameters
from typer.testing import CliRunner

from agenitry.gateway.cli import app
from agenitry.mcp import main
from support.live import LiveServer
from support.mcp_proxy import AGENT, EXAMPLES, POLICY, authorizations, load_supplier, read
from support.processes import free_port
from support.venues import Venue

pytestmark = pytest.mark.anyio
PYTHON = sys.executable
SALMON = {"item": "salmon", "pounds": 2, "total": 36.0}
TUNA = {"item": "tuna", "pounds": 20, "total": 340.0}


def _environment(**extra: str) -> dict[str, str]:
    """This environment, with the venv's python first on PATH (the example's upstream command is `python`)."""
    path = f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, **extra}


def _config(tmp_path: Path, ledger: Path) -> Path:
    """examples/mcp_proxy.toml with the supplier's ledger file added (and its folder: the copy lives elsewhere)."""
    example = (EXAMPLES / "mcp_proxy.toml").read_text()
    added = f"cwd = {json.dumps(str(EXAMPLES))}\nenv = {{ SUPPLIER_LEDGER = {json.dumps(str(ledger))} }}\n"
    config = tmp_path / "proxy.toml"
    config.write_text(example.replace("[agenitry]\n", added + "\n[agenitry]\n", 1))
    return config


def _ledger(path: Path) -> list[str]:
    return [json.loads(line)["item"] for line in path.read_text().splitlines()] if path.exists() else []


@asynccontextmanager
async def _proxy_over_stdio(config: Path, venue: Venue, live: LiveServer) -> AsyncIterator[MCPClient]:
    """``python -m agenitry.mcp proxy --config ...`` started by an MCP client, as Claude Desktop would."""
    command = StdioServerParameters(
        command=PYTHON,
        args=["-m", "agenitry.mcp", "proxy", "--config", str(config), "--venue", venue.id],
        env=_environment(AGENITRY_API_KEY=venue.agent_key(AGENT), AGENITRY_BASE_URL=live.url),
    )
    async with MCPClient(command, mode="legacy") as session:
        yield session


async def test_the_example_behind_the_proxy_over_stdio_across_a_restart(
    venue: Venue, live: LiveServer, tmp_path: Path
) -> None:
    venue.policy(**POLICY)
    ledger = tmp_path / "orders.jsonl"
    config = _config(tmp_path, ledger)
    async with MCPClient(load_supplier().server, mode="legacy") as direct:
        upstream_tools = [tool.model_dump(by_alias=True) for tool in (await direct.list_tools()).tools]

    async with _proxy_over_stdio(config, venue, live) as session:
        assert [tool.model_dump(by_alias=True) for tool in (await session.list_tools()).tools] == upstream_tools
        ran = read(await session.call_tool("place_order", SALMON))
        denied = read(await session.call_tool("place_order", {"item": "tuna", "pounds": 50, "total": 850.0}))
        invalid = read(await session.call_tool("place_order", {"item": "tuna", "pounds": 1, "total": "17"}))
        pending = read(await session.call_tool("place_order", TUNA))
        products = await session.call_tool("list_products", {})
    assert [ran[0], denied[0], invalid[0], pending[0]] == ["ran", "denied", "invalid", "pending"]
    assert f"{live.url}/console/authorizations/{pending[1]}" in pending[2]
    assert not products.is_error
    assert _ledger(ledger) == ["salmon"]  # the denied and the invalid calls never reached the supplier

    venue.gateway.approve(venue.admin, pending[1])
    # Both processes are new: the proxy (and so the supplier it starts); the client repeats the call.
    async with _proxy_over_stdio(config, venue, live) as session:
        resumed = read(await session.call_tool("place_order", TUNA))
        again = read(await session.call_tool("place_order", TUNA))
    assert [resumed[:2], again[:2]] == [("ran", pending[1]), ("already_done", pending[1])]
    assert _ledger(ledger) == ["salmon", "tuna"]
    statuses = {a["id"]: a["status"] for a in authorizations(venue)}
    assert statuses == {ran[1]: "executed", denied[1]: "denied", pending[1]: "executed"}
    # Every call of both processes is in the trail, each with its outcome.
    calls = venue.gateway.list_events(venue.admin, venue.id, action="tool_call", limit=50)["events"]
    outcomes = sorted(event["context"]["outcome"] for event in calls)
    assert outcomes == sorted(["ran", "denied", "invalid", "pending", "ok", "ran", "already_done"])


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@pytest.fixture
def processes() -> Any:
    started: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **env: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [PYTHON, *args], env=_environment(**env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.terminate()
        process.wait(10)
        if process.stderr:
            process.stderr.close()


async def test_the_proxy_over_streamable_http_in_front_of_a_server_over_http(
    venue: Venue, live: LiveServer, tmp_path: Path, processes: Any
) -> None:
    venue.policy(**POLICY)
    supplier_port, proxy_port = free_port(), free_port()
    supplier = processes(str(EXAMPLES / "mcp_supplier_server.py"), "--http", str(supplier_port))
    config = tmp_path / "proxy.toml"
    config.write_text(
        f'[upstream]\nurl = "http://127.0.0.1:{supplier_port}/mcp"\n\n'
        '[tools.place_order]\naction = "purchase_order"\namount = "total"\n'
    )
    _wait_for_port(supplier_port, supplier)
    proxy = processes(
        *("-m", "agenitry.mcp", "proxy", "--config", str(config), "--transport", "http"),
        *("--port", str(proxy_port), "--venue", venue.id, "--agent", AGENT),
        AGENITRY_API_KEY=venue.agent_key(AGENT),
        AGENITRY_BASE_URL=live.url,
    )
    await anyio.to_thread.run_sync(_wait_for_port, proxy_port, proxy)
    async with MCPClient(f"http://127.0.0.1:{proxy_port}/mcp") as session:
        assert "place_order" in {tool.name for tool in (await session.list_tools()).tools}
        ran = await session.call_tool("place_order", SALMON)
        pending = await session.call_tool("place_order", TUNA)
    assert (read(ran)[0], ran.structured_content["charged"]) == ("ran", 36.0)
    assert read(pending)[0] == "pending"
    assert sorted(a["status"] for a in authorizations(venue)) == ["executed", "pending"]


async def test_serve_over_streamable_http_with_an_agent_key(venue: Venue, live: LiveServer, processes: Any) -> None:
    venue.policy(**POLICY)
    port = free_port()
    server = processes(
        *("-m", "agenitry.mcp", "serve", "--transport", "http", "--port", str(port), "--venue", venue.id),
        AGENITRY_API_KEY=venue.agent_key(AGENT),
        AGENITRY_BASE_URL=live.url,
    )
    await anyio.to_thread.run_sync(_wait_for_port, port, server)
    async with MCPClient(f"http://127.0.0.1:{port}/mcp") as session:
        tools = {tool.name for tool in (await session.list_tools()).tools}
        approved = await session.call_tool("authorize", {"action": "purchase_order", "amount": 36})
        refused = await session.call_tool("authorize", {"action": "purchase_order", "amount": True})
        forbidden = await session.call_tool("set_policy", {"max_single_amount": 10_000})
    assert "set_policy" not in tools and {"authorize", "execute", "log_event"} <= tools
    assert approved.structured_content["status"] == "approved"
    assert refused.is_error and forbidden.is_error
    assert [a["amount"] for a in authorizations(venue)] == [36.0]


async def test_serve_over_stdio_embedded_on_a_database(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path}/agenitry.db"
    command = StdioServerParameters(
        command=str(Path(PYTHON).parent / "agenitry"),
        args=["--db", database, "mcp", "serve", "--venue", "nobo-downtown", "--agent", AGENT],
        env=_environment(),
    )
    async with MCPClient(command, mode="legacy") as session:
        tools = {tool.name for tool in (await session.list_tools()).tools}
        assert "set_policy" in tools  # embedded: the owner's own process, an operator
        policy = await session.call_tool("set_policy", {"max_single_amount": 100, "require_approval_above": 60})
        approved = await session.call_tool("authorize", {"action": "purchase_order", "amount": 50})
        pending = await session.call_tool("authorize", {"action": "purchase_order", "amount": 80})
    assert not policy.is_error
    assert approved.structured_content["status"] == "approved"
    page = pending.structured_content["console_url"]
    assert page == f"http://127.0.0.1:8700/console/authorizations/{pending.structured_content['authorization_id']}"


def test_a_mistake_in_the_configuration_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(
        '[upstream]\ncommand = "python"\n\n[tools.place_order]\naction = "purchase_order"\namount = true\n'
    )
    monkeypatch.setenv("AGENITRY_API_KEY", "ag_unused")
    assert main(["proxy", "--config", str(config)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {config}: tools.place_order.amount must be a JSON number such as 127.5, not the boolean true"
        " (or name the argument holding the amount)"
    ]
    monkeypatch.delenv("AGENITRY_API_KEY")
    assert main(["serve", "--venue", "nobo-downtown"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: set AGENITRY_API_KEY to the agent's API key, or give --db to run the gateway embedded"
    ]


def test_the_proxy_does_not_start_on_a_key_the_gateway_refuses(
    venue: Venue, live: LiveServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _environment()["PATH"])
    monkeypatch.setenv("AGENITRY_API_KEY", "ag_not_a_key_of_this_gateway")
    config = str(EXAMPLES / "mcp_proxy.toml")
    assert main(["proxy", "--config", config, "--venue", venue.id, "--base-url", live.url]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "error: Invalid API key"


def test_agenitry_mcp_without_the_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "agenitry.mcp", None)  # as if agenitry-mcp were not installed
    done = CliRunner().invoke(app, ["mcp", "serve"])
    assert done.exit_code == 2
    assert "pip install 'agenitry[mcp]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
