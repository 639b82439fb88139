"""Fixtures for the MCP tests: the example supplier server and an agent's client on a live gateway.

The adapter's tests run on SQLite (the gateway's own suite runs every decision on both
stores); the test of concurrent calls also runs on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import ModuleType

import pytest

from agenitry import AsyncAgenitry
from support.live import LiveServer
from support.mcp_proxy import AGENT, POLICY, load_supplier
from support.venues import Venue


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def supplier() -> ModuleType:
    """The example supplier; ``supplier.orders`` is every order it really received."""
    return load_supplier()


@pytest.fixture
async def agent(venue: Venue, live: LiveServer) -> AsyncIterator[AsyncAgenitry]:
    """The buyer agent's client, over HTTP on the test's gateway, with the venue's policy set."""
    venue.policy(**POLICY)
    client = AsyncAgenitry(venue.agent_key(AGENT), venue.id, agent_id=AGENT, base_url=live.url)
    yield client
    await client.close()
