"""Agenitry over the Model Context Protocol: the venue's tools as an MCP server, and a gating proxy.

- ``agenitry mcp serve`` (:func:`build_server`): authorize, authorization_status, execute,
  log_event, and for an admin key set_policy, as MCP tools.
- ``agenitry mcp proxy --config proxy.toml`` (:class:`GatingProxy`): any MCP server's tools
  re-exposed unchanged, the spending ones gated by the owner's policy, every call recorded.

>>> from agenitry.mcp import GatingProxy, ToolRule, build_server, load_config  # doctest: +SKIP
"""

from ._cli import main
from ._client import console_link, is_admin, open_client
from ._config import (
    DEFAULT_APPROVAL_WAIT,
    ConfigError,
    GatewaySettings,
    ProxyConfig,
    ToolRule,
    Upstream,
    load_config,
    parse_config,
)
from ._proxy import META_AUTHORIZATION, META_CONSOLE, META_OUTCOME, GatingProxy, UpstreamError
from ._server import build_server

__all__ = [
    "DEFAULT_APPROVAL_WAIT",
    "META_AUTHORIZATION",
    "META_CONSOLE",
    "META_OUTCOME",
    "ConfigError",
    "GatewaySettings",
    "GatingProxy",
    "ProxyConfig",
    "ToolRule",
    "Upstream",
    "UpstreamError",
    "build_server",
    "console_link",
    "is_admin",
    "load_config",
    "main",
    "open_client",
    "parse_config",
]
