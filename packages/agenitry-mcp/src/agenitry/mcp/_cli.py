"""``agenitry mcp serve`` and ``agenitry mcp proxy`` (also ``python -m agenitry.mcp``, ``agenitry-mcp``).

Over stdio (the default) standard output carries the protocol alone: everything said to
a person goes to standard error. A configuration mistake is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any, Optional

import anyio
import mcp
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

from agenitry import AgenitryError, AuthenticationError, PermissionDeniedError

from ._client import ask, is_admin, open_client
from ._config import ConfigError, GatewaySettings, Upstream, load_config
from ._proxy import GatingProxy
from ._server import build_server

USAGE_ERROR = 2


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agenitry mcp", description="Agenitry over the Model Context Protocol: a server and a gating proxy."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{serve,proxy}")
    serve = commands.add_parser(
        "serve", help="the venue's tools (authorize, execute, log_event...) as an MCP server", description=_SERVE
    )
    proxy = commands.add_parser("proxy", help="an MCP server's tools behind the spending policy", description=_PROXY)
    proxy.add_argument("--config", required=True, help="the proxy's TOML file (see docs/adapters/mcp.md)")
    for command in (serve, proxy):
        gateway = command.add_argument_group("the gateway (default: the AGENITRY_* environment)")
        gateway.add_argument("--venue", help="the venue id [env AGENITRY_VENUE_ID]")
        gateway.add_argument("--agent", help="the agent id [env AGENITRY_AGENT_ID]")
        gateway.add_argument("--base-url", help="the gateway's URL [env AGENITRY_BASE_URL; http://127.0.0.1:8700]")
        gateway.add_argument("--db", help="embedded: the gateway's database (sqlite:///path.db or postgresql://...)")
        gateway.add_argument("--console-url", help="where the owner's console is (default: the gateway's URL)")
        served = command.add_argument_group("how it is served")
        served.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="default: stdio")
        served.add_argument("--host", default="127.0.0.1", help="http: the address (default 127.0.0.1)")
        served.add_argument("--port", type=int, default=8765, help="http: the port (default 8765)")
        served.add_argument("--path", default="/mcp", help="http: the endpoint's path (default /mcp)")
    return parser


_SERVE = (
    "Serve authorize, authorization_status, execute and log_event (and set_policy for an admin key) to an agent."
    " The API key comes from AGENITRY_API_KEY; with --db the gateway runs embedded on that database."
)
_PROXY = (
    "Put an MCP server behind the spending policy: its tools are served unchanged, the ones named in the"
    " configuration are gated, and every call is recorded."
)


def _settings(options: argparse.Namespace, configured: GatewaySettings) -> GatewaySettings:
    """The configuration's gateway settings, with the command line's on top."""
    given = {
        "venue": options.venue,
        "agent": options.agent,
        "base_url": options.base_url,
        "database": options.db,
        "console_url": options.console_url,
    }
    return replace(configured, **{key: value for key, value in given.items() if value is not None})


def _open(settings: GatewaySettings, stack: AsyncExitStack) -> Any:
    """The client on the gateway (closed with ``stack``), or a sentence saying what is missing."""
    if not settings.database and not os.environ.get("AGENITRY_API_KEY"):
        raise ConfigError("set AGENITRY_API_KEY to the agent's API key, or give --db to run the gateway embedded")
    client = open_client(settings)
    stack.push_async_callback(client.close)
    return client


def _target(upstream: Upstream, stack: AsyncExitStack) -> Any:
    """What :class:`mcp.Client` connects to for ``upstream``."""
    if upstream.command is not None:
        return mcp.StdioServerParameters(
            command=upstream.command, args=list(upstream.args), env=dict(upstream.env) or None, cwd=upstream.cwd
        )
    if upstream.url is None:
        raise ConfigError("[upstream] needs either command (a server run over stdio) or url (streamable HTTP)")
    if not upstream.headers:
        return upstream.url
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers=dict(upstream.headers), timeout=httpx2.Timeout(30.0, read=300.0))
    stack.push_async_callback(http.aclose)
    return streamable_http_client(upstream.url, http_client=http)


async def _serve_stdio(server: Server[Any]) -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def _serve(options: argparse.Namespace, stdio: Callable[[], Awaitable[None]], http: Callable[..., Any]) -> None:
    if options.transport == "stdio":
        await stdio()
        return
    import uvicorn

    app = http(streamable_http_path=options.path, host=options.host)
    _say(f"listening on http://{options.host}:{options.port}{options.path}")
    await uvicorn.Server(uvicorn.Config(app, host=options.host, port=options.port, log_level="warning")).serve()


async def _key_accepted(client: Any) -> None:
    """Refuse to start on a key the gateway refuses; a gateway out of reach is only a warning
    (the tools that are not gated still work, the spending ones answer that it is out of reach)."""
    try:
        await ask(client, "get_policies")
    except (AuthenticationError, PermissionDeniedError):
        raise
    except AgenitryError as error:
        _say(f"warning: the gateway does not answer now ({error}); spending calls answer 'unavailable' until it does")


async def serve_command(options: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        client = _open(_settings(options, GatewaySettings()), stack)
        admin = await is_admin(client)
        server = build_server(client, admin=admin, console_url=options.console_url)
        tools = ", ".join(tool.name for tool in await server.list_tools())
        _say(f"agenitry mcp serve: venue {client.venue_id}, tools {tools}")
        await _serve(options, server.run_stdio_async, server.streamable_http_app)


async def proxy_command(options: argparse.Namespace) -> None:
    config = load_config(options.config)
    async with AsyncExitStack() as stack:
        settings = _settings(options, config.gateway)
        client = _open(settings, stack)
        await _key_accepted(client)
        try:
            upstream = await stack.enter_async_context(mcp.Client(_target(config.upstream, stack)))
        except Exception as error:
            raise ConfigError(f"cannot start the upstream ({config.upstream.describe()}): {error}") from None
        proxy = GatingProxy(
            client,
            upstream,
            config.tools,
            scope=config.scope,
            approval_wait=config.approval_wait,
            console_url=settings.console_url,
        )
        await proxy.check()
        gated = ", ".join(f"{name} ({rule.action})" for name, rule in proxy.rules.items()) or "none"
        _say(
            f"agenitry mcp proxy: {proxy.scope} with {len(proxy.tools)} tools; gated: {gated}; venue {client.venue_id}"
        )
        await _serve(options, lambda: _serve_stdio(proxy.server), proxy.server.streamable_http_app)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; the exit code (0, or 2 for a configuration mistake)."""
    options = _parser().parse_args(argv)
    command = serve_command if options.command == "serve" else proxy_command
    try:
        anyio.run(command, options)
    except KeyboardInterrupt:
        return 0
    except BaseException as error:  # a task group wraps what its tasks raise
        problem = _problem(error)
        if problem is None:
            raise
        _say(f"error: {problem}")
        return USAGE_ERROR
    return 0


def _problem(error: BaseException) -> Optional[Exception]:
    """The configuration or gateway mistake behind ``error`` (unwrapping exception groups), if any."""
    if isinstance(error, (ConfigError, AgenitryError)):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _problem(inner)
            if found is not None:
                return found
    return None
