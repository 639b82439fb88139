"""The proxy's configuration file (TOML), read once and checked whole before anything starts.

A mistake in it is refused with a sentence naming the table and key: a typo in a tool's
name or its amount argument would otherwise leave a spending tool ungated, so unknown
keys are refused too. The API key never lives in the file (``AGENITRY_API_KEY``).

::

    [upstream]                      # the MCP server to put behind the proxy
    command = "python"              # a command started over stdio (relative paths: from this file's folder)
    args = ["mcp_supplier_server.py"]
    # url = "http://127.0.0.1:9000/mcp"   # or a streamable HTTP server

    [agenitry]                      # optional: else AGENITRY_BASE_URL, AGENITRY_VENUE_ID, AGENITRY_AGENT_ID
    venue = "nobo-downtown"
    agent = "buyer"

    [tools.place_order]             # a gated tool; every other tool passes through, logged
    action = "purchase_order"
    amount = "total"                # the argument holding the amount, or a number: a fixed price
    currency = "USD"
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Optional, Union

from agenitry import ACTION_PATTERN, CURRENCIES, InvalidAmount, check_amount

#: Seconds the proxy waits for the owner after a client opened the approval page (URL elicitation).
DEFAULT_APPROVAL_WAIT = 120.0
ENV_AGENT_ID = "AGENITRY_AGENT_ID"

_EMPTY: Mapping[str, str] = MappingProxyType({})


class ConfigError(ValueError):
    """The configuration cannot be used; the message says where and why."""


@dataclass(frozen=True)
class ToolRule:
    """How one upstream tool spends: the action, where its amount is, and what to do after.

    ``amount``: the name of the argument holding the amount, or a fixed amount (a number).
    ``actual``: a top-level field of the tool's structured result holding the amount really
    spent (default: the authorized amount). ``settle``: settle right after executing.
    """

    action: str
    amount: Union[str, int, float]
    currency: Optional[str] = None
    settle: bool = False
    actual: Optional[str] = None
    reason: Optional[str] = None


@dataclass(frozen=True)
class Upstream:
    """The MCP server behind the proxy: a command run over stdio, or a streamable HTTP URL."""

    command: Optional[str] = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    cwd: Optional[str] = None
    url: Optional[str] = None
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def describe(self) -> str:
        """The upstream in a few words, for messages: its URL or its command line."""
        return self.url or " ".join((self.command or "", *self.args))


@dataclass(frozen=True)
class GatewaySettings:
    """Where the gateway is: over HTTP (``base_url``, the key from AGENITRY_API_KEY) or embedded
    on a local ``database``. Unset values fall back to the AGENITRY_* environment."""

    venue: Optional[str] = None
    agent: Optional[str] = None
    base_url: Optional[str] = None
    database: Optional[str] = None
    console_url: Optional[str] = None


@dataclass(frozen=True)
class ProxyConfig:
    """A whole proxy configuration: the upstream, the gateway, and the gated tools by name."""

    upstream: Upstream
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    tools: Mapping[str, ToolRule] = field(default_factory=lambda: MappingProxyType({}))
    approval_wait: float = DEFAULT_APPROVAL_WAIT
    scope: Optional[str] = None


_TOP = {"upstream", "agenitry", "tools"}
_UPSTREAM = {"command", "args", "env", "cwd", "url", "headers"}
_GATEWAY = ("venue", "agent", "base_url", "database", "console_url")
_AGENITRY = {*_GATEWAY, "approval_wait", "scope"}
_TOOL = {"action", "amount", "currency", "settle", "actual", "reason"}


def _unknown(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r} (known: {', '.join(sorted(allowed))})")


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table")
    return value


def _text(table: Mapping[str, Any], key: str, where: str) -> Optional[str]:
    value = table.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{where}.{key} must be a non-empty string")
    return value


def _texts(table: Mapping[str, Any], key: str, where: str) -> Mapping[str, str]:
    value = _table(table.get(key, {}), f"{where}.{key}")
    if not all(isinstance(item, str) for item in value.values()):
        raise ConfigError(f"{where}.{key} must map names to strings")
    return MappingProxyType(dict(value))


def _upstream(table: Mapping[str, Any], folder: Path) -> Upstream:
    _unknown(table, _UPSTREAM, "[upstream]")
    command, url = _text(table, "command", "upstream"), _text(table, "url", "upstream")
    if (command is None) == (url is None):
        raise ConfigError("[upstream] needs either command (a server run over stdio) or url (streamable HTTP)")
    args = table.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise ConfigError("upstream.args must be a list of strings")
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"upstream.url must be an http:// or https:// URL, got {url!r}")
    cwd = _text(table, "cwd", "upstream")
    return Upstream(
        command=command,
        args=tuple(args),
        env=_texts(table, "env", "upstream"),
        cwd=str(folder / cwd) if cwd is not None else str(folder),
        url=url,
        headers=_texts(table, "headers", "upstream"),
    )


def _rule(name: str, table: Mapping[str, Any]) -> ToolRule:
    where = f"tools.{name}"
    _unknown(table, _TOOL, f"[{where}]")
    action = table.get("action")
    if not isinstance(action, str) or not ACTION_PATTERN.match(action):
        raise ConfigError(f"{where}.action must be an action name such as purchase_order, got {action!r}")
    currency = _text(table, "currency", where)
    if currency is not None and currency.upper() not in CURRENCIES:
        raise ConfigError(f"{where}.currency must be an ISO 4217 code such as USD, got {currency!r}")
    amount: Any = table.get("amount")
    if isinstance(amount, str):
        if not amount:
            raise ConfigError(f"{where}.amount must name the argument holding the amount")
    else:
        try:
            check_amount(amount, currency, name=f"{where}.amount")
        except InvalidAmount as error:
            raise ConfigError(f"{error} (or name the argument holding the amount)") from None
    spec: Union[str, int, float] = amount
    settle = table.get("settle", False)
    if not isinstance(settle, bool):
        raise ConfigError(f"{where}.settle must be true or false")
    return ToolRule(
        action=action,
        amount=spec,
        currency=currency.upper() if currency else None,
        settle=settle,
        actual=_text(table, "actual", where),
        reason=_text(table, "reason", where),
    )


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where} must be a number of seconds >= 0")
    return float(value)


def parse_config(data: Mapping[str, Any], folder: Union[str, os.PathLike[str]] = ".") -> ProxyConfig:
    """A configuration from its parsed TOML (``folder``: where relative paths start)."""
    _unknown(data, _TOP, "the configuration")
    if "upstream" not in data:
        raise ConfigError("the configuration needs an [upstream] table: the MCP server to put behind the proxy")
    upstream = _upstream(_table(data["upstream"], "[upstream]"), Path(folder))
    settings = _table(data.get("agenitry", {}), "[agenitry]")
    _unknown(settings, _AGENITRY, "[agenitry]")
    gateway = GatewaySettings(**{key: _text(settings, key, "agenitry") for key in _GATEWAY})
    tools = {
        name: _rule(name, _table(table, f"[tools.{name}]"))
        for name, table in _table(data.get("tools", {}), "[tools]").items()
    }
    return ProxyConfig(
        upstream=upstream,
        gateway=gateway,
        tools=MappingProxyType(tools),
        approval_wait=_seconds(settings.get("approval_wait", DEFAULT_APPROVAL_WAIT), "agenitry.approval_wait"),
        scope=_text(settings, "scope", "agenitry"),
    )


def load_config(path: Union[str, os.PathLike[str]]) -> ProxyConfig:
    """Read and check a proxy configuration file.

    >>> config = load_config("examples/mcp_proxy.toml")  # doctest: +SKIP
    >>> config.tools["place_order"].action  # doctest: +SKIP
    'purchase_order'
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read {file}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file} is not valid TOML: {error}") from None
    try:
        return parse_config(data, file.resolve().parent)
    except ConfigError as error:
        raise ConfigError(f"{file}: {error}") from None
