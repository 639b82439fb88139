"""The transport: kept-alive connections, shared safely by threads and tasks.

Sequential calls reuse one connection (the 0.2.0 SDK opened one per request); many
threads on one sync client, or many tasks on one async client, get correct answers over
a bounded number of connections; a connection the server closed while it sat idle is
replaced without an error, a duplicate request, or a retry delay.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

import pytest

from agenitry import Agenitry, AsyncAgenitry
from agenitry.gateway import Gateway
from support.live import LiveServer
from support.venues import Venue


@pytest.fixture
def store() -> str:
    """The transport does not care which store the gateway runs on: SQLite only, to stay fast."""
    return "sqlite"


@pytest.fixture
def proxy(live: LiveServer, venue: Venue, faults: Callable[..., Any]) -> Any:
    venue.policy(max_single_amount=500)
    return faults(live.url)


def test_sequential_calls_share_one_connection(proxy: Any, venue: Venue) -> None:
    with Agenitry(venue.admin_key, venue.id, base_url=proxy.url) as client:
        for _ in range(10):
            assert client.authorize("order_captured", 10)["status"] == "approved"

    async def run() -> None:
        async with AsyncAgenitry(venue.admin_key, venue.id, base_url=proxy.url) as client:
            for _ in range(10):
                assert (await client.authorize("order_captured", 10))["status"] == "approved"

    asyncio.run(run())
    assert len(proxy.requests_to("/v1/authorize")) == 20
    assert proxy.connections == 2


def test_threads_share_one_sync_client(proxy: Any, venue: Venue, gateway: Gateway) -> None:
    answers: list[dict[str, Any]] = []
    with Agenitry(venue.admin_key, venue.id, base_url=proxy.url) as client:

        def work() -> None:
            for _ in range(10):
                answers.append(client.authorize("order_captured", 1))

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(answers) == 80 and {answer["status"] for answer in answers} == {"approved"}
    stored = gateway.list_authorizations(venue.admin, limit=200)
    assert stored["total"] == 80
    assert {a["id"] for a in stored["authorizations"]} == {answer["authorization_id"] for answer in answers}
    assert proxy.connections <= 8


def test_tasks_share_one_async_client(proxy: Any, venue: Venue, gateway: Gateway) -> None:
    async def run() -> list[dict[str, Any]]:
        async with AsyncAgenitry(venue.admin_key, venue.id, base_url=proxy.url) as client:
            return await asyncio.gather(*(client.authorize("order_captured", 1) for _ in range(25)))

    answers = asyncio.run(run())
    assert len({answer["authorization_id"] for answer in answers}) == 25
    assert gateway.list_authorizations(venue.admin)["total"] == 25
    assert proxy.connections <= 25


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_connection_closed_while_idle_is_replaced_quietly(
    live: LiveServer, venue: Venue, faults: Callable[..., Any], flavour: str
) -> None:
    venue.policy(max_single_amount=500)
    proxy = faults(live.url, "close_after", times=99)
    # No retries allowed: the replacement happens inside the transport, before any answer was lost.
    options = {"base_url": proxy.url, "max_retries": 0}
    if flavour == "sync":
        with Agenitry(venue.admin_key, venue.id, **options) as client:
            answers = [client.authorize("order_captured", 1) for _ in range(3)]
    else:

        async def run() -> list[dict[str, Any]]:
            async with AsyncAgenitry(venue.admin_key, venue.id, **options) as client:
                return [await client.authorize("order_captured", 1) for _ in range(3)]

        answers = asyncio.run(run())
    assert [answer["status"] for answer in answers] == ["approved"] * 3
    assert len(proxy.requests_to("/v1/authorize")) == 3
    assert proxy.connections == 3
