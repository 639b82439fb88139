"""The proxy's configuration file: the example reads as documented, and every mistake is refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agenitry.mcp import ConfigError, ToolRule, load_config, parse_config
from support.mcp_proxy import EXAMPLES


def test_the_example_configuration() -> None:
    config = load_config(EXAMPLES / "mcp_proxy.toml")
    assert (config.upstream.command, config.upstream.args) == ("python", ("mcp_supplier_server.py",))
    assert config.upstream.cwd == str(EXAMPLES)  # relative paths start at the file's folder
    assert (config.gateway.venue, config.gateway.agent) == ("nobo-downtown", "buyer")
    assert dict(config.tools) == {"place_order": ToolRule("purchase_order", "total", "USD", actual="charged")}
    lines = [line for line in (EXAMPLES / "mcp_proxy.toml").read_text().splitlines() if line and line[0] != "#"]
    assert len(lines) <= 12


def test_a_fixed_amount_a_url_upstream_and_the_settings() -> None:
    config = parse_config(
        {
            "upstream": {"url": "https://mcp.example/mcp", "headers": {"Authorization": "Bearer x"}},
            "agenitry": {"approval_wait": 30, "scope": "payments", "database": "sqlite:///a.db"},
            "tools": {"buy_ticket": {"action": "ticket", "amount": 12.5, "settle": True}},
        }
    )
    assert config.upstream.url == "https://mcp.example/mcp" and dict(config.upstream.headers) == {
        "Authorization": "Bearer x"
    }
    assert (config.approval_wait, config.scope, config.gateway.database) == (30.0, "payments", "sqlite:///a.db")
    assert config.tools["buy_ticket"] == ToolRule("ticket", 12.5, settle=True)


UPSTREAM = {"command": "supplier-mcp"}


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "needs an [upstream] table"),
        ({"upstream": {}}, "either command"),
        ({"upstream": {"command": "a", "url": "http://b"}}, "either command"),
        ({"upstream": {"url": "ftp://b"}}, "http:// or https://"),
        ({"upstream": {**UPSTREAM, "args": "x"}}, "upstream.args must be a list"),
        ({"upstream": UPSTREAM, "agenitry": {"venu": "x"}}, "[agenitry]: unknown key 'venu'"),
        ({"upstream": UPSTREAM, "agenitry": {"approval_wait": -1}}, "approval_wait must be a number of seconds"),
        ({"upstream": UPSTREAM, "toolz": {}}, "unknown key 'toolz'"),
        ({"upstream": UPSTREAM, "tools": {"t": {"action": "Buy!", "amount": "x"}}}, "tools.t.action"),
        ({"upstream": UPSTREAM, "tools": {"t": {"action": "buy", "amount": "x", "amout": 1}}}, "unknown key 'amout'"),
        ({"upstream": UPSTREAM, "tools": {"t": {"action": "buy"}}}, "tools.t.amount must be a JSON number"),
        ({"upstream": UPSTREAM, "tools": {"t": {"action": "buy", "amount": -1}}}, "must not be negative"),
        ({"upstream": UPSTREAM, "tools": {"t": {"action": "buy", "amount": 1.5, "currency": "JPY"}}}, "JPY"),
        ({"upstream": UPSTREAM, "tools": {"t": {"action": "buy", "amount": "x", "currency": "usdx"}}}, "ISO 4217"),
        ({"upstream": UPSTREAM, "tools": {"t": {"action": "buy", "amount": "x", "settle": "yes"}}}, "true or false"),
    ],
)
def test_a_mistake_is_refused_by_name(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(data)
    assert problem in str(refused.value)


def test_a_file_that_cannot_be_read_or_parsed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[upstream\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(broken)
