"""The Agenitry client behind an MCP server, and the few things both servers ask of it.

Both the server and the proxy take any client (sync or async). Built from settings it
is an :class:`~agenitry.AsyncAgenitry`: over HTTP (AGENITRY_API_KEY, AGENITRY_BASE_URL),
or embedded on a local database, where it acts as the venue's operator.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Optional
from urllib.parse import quote

import anyio.to_thread

from agenitry import AgenitryError, NotFoundError, PermissionDeniedError
from agenitry.integration import AsyncAgenitry, Client

from ._config import ENV_AGENT_ID, GatewaySettings

#: No authorization has this id: asking to approve it tells an admin key (404) from an agent key (403).
_ROLE_PROBE = "auth_agenitry_mcp_role_probe"


def open_client(settings: GatewaySettings) -> AsyncAgenitry:
    """An async client from ``settings``, falling back to the AGENITRY_* environment.

    With ``database`` it is embedded (needs agenitry-gateway); otherwise it talks HTTP and
    needs AGENITRY_API_KEY. A missing or wrong setting raises AgenitryError naming it.
    """
    agent = settings.agent or os.environ.get(ENV_AGENT_ID) or None
    if settings.database:
        return AsyncAgenitry.embedded(
            settings.database, venue_id=settings.venue, agent_id=agent, public_url=settings.console_url
        )
    return AsyncAgenitry(venue_id=settings.venue, agent_id=agent, base_url=settings.base_url)


async def ask(client: Client, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call one of the client's methods from async code: awaited on an AsyncAgenitry, in a
    worker thread on an Agenitry (its calls block)."""
    call = getattr(client, method)
    if isinstance(client, AsyncAgenitry):
        return await call(*args, **kwargs)
    return await anyio.to_thread.run_sync(functools.partial(call, *args, **kwargs))


async def is_admin(client: Client) -> bool:
    """Whether the client's key is an admin key (an embedded client always is).

    Asks to approve an authorization that does not exist: an admin key is told it does
    not exist, an agent key that it may not approve. Nothing changes either way.
    """
    try:
        await ask(client, "approve", _ROLE_PROBE)
    except NotFoundError:
        return True
    except PermissionDeniedError:
        return False
    except AgenitryError as error:
        if error.status == 404:
            return True
        raise
    return True


def console_link(base: str, authorization_id: str) -> str:
    """The console's page of one authorization, where the owner approves or denies it.

    >>> console_link("http://127.0.0.1:8700/", "auth_1")
    'http://127.0.0.1:8700/console/authorizations/auth_1'
    """
    return f"{base.rstrip('/')}/console/authorizations/{quote(authorization_id, safe='')}"


def console_base(client: Client, configured: Optional[str]) -> str:
    """Where the owner's console is: as configured, else the gateway the client talks to."""
    return (configured or client.base_url).rstrip("/")
