"""Helpers for the MCP tests: the example supplier server, and the proxy in front of it, all through
the real ``mcp`` library (in memory)."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import mcp_types as types
from mcp import Client as MCPClient

from agenitry.mcp import META_AUTHORIZATION, META_OUTCOME, GatingProxy, ToolRule
from support.venues import Venue

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AGENT = "buyer"
#: Up to $500 a spend; the owner approves anything above $100.
POLICY: dict[str, Any] = {"max_single_amount": 500, "require_approval_above": 100}
#: The example's rule: place_order spends its total, and the supplier's charge is the actual amount.
RULES = {"place_order": ToolRule("purchase_order", "total", "USD", actual="charged")}


def load_supplier() -> ModuleType:
    """A fresh copy of examples/mcp_supplier_server.py: its own server and its own ``orders``."""
    spec = importlib.util.spec_from_file_location(f"supplier_{uuid.uuid4().hex}", EXAMPLES / "mcp_supplier_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def proxied(
    client: Any,
    upstream_server: Any,
    rules: Mapping[str, ToolRule] = RULES,
    *,
    mode: str = "auto",
    elicitation: Any = None,
    approval_wait: float = 5.0,
) -> AsyncIterator[tuple[MCPClient, GatingProxy]]:
    """An MCP session with the proxy in front of ``upstream_server`` (all in memory), and the proxy."""
    async with MCPClient(upstream_server) as upstream:
        proxy = GatingProxy(client, upstream, rules, approval_wait=approval_wait)
        await proxy.check()
        async with MCPClient(proxy.server, mode=mode, elicitation_callback=elicitation) as session:
            yield session, proxy


def read(result: types.CallToolResult) -> tuple[Optional[str], Optional[str], str]:
    """What a client reads of a call: the outcome and authorization the proxy noted, and the text."""
    meta = result.meta or {}
    text = " ".join(block.text for block in result.content if isinstance(block, types.TextContent))
    return meta.get(META_OUTCOME), meta.get(META_AUTHORIZATION), text


def authorizations(venue: Venue) -> list[dict[str, Any]]:
    """The venue's authorizations, newest first."""
    return list(venue.gateway.list_authorizations(venue.admin)["authorizations"])
