"""Bad days on the wire, through a real TCP proxy in front of a real gateway.

When the answer is lost after the gateway did the work (a 502 from the proxy, a dropped
connection, a stall past the timeout), the client sends the request again with the same
Idempotency-Key and the gateway replays its first answer: exactly one authorization
exists, and the caller gets its id. Garbage, HTML and unreachable gateways become
readable errors with the right class and code; nothing waits past its timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from agenitry import (
    Agenitry,
    AgenitryError,
    APIConnectionError,
    APITimeoutError,
    AsyncAgenitry,
    InternalServerError,
    NotFoundError,
)
from agenitry.gateway import Gateway
from support.live import LiveServer
from support.venues import Venue

FLAVOURS = ["sync", "async"]


def call(flavour: str, base_url: str, venue: Venue, method: str, *args: Any, **options: Any) -> Any:
    """Open a client of ``flavour``, make one call, close it; returns the answer."""
    settings = {"base_url": base_url, "retry_base_delay": 0.01, **options}
    if flavour == "sync":
        with Agenitry(venue.admin_key, venue.id, **settings) as client:
            return getattr(client, method)(*args)

    async def run() -> Any:
        async with AsyncAgenitry(venue.admin_key, venue.id, **settings) as client:
            return await getattr(client, method)(*args)

    return asyncio.run(run())


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    ("fault", "options"),
    [
        ("502_after", {}),
        ("drop_after", {}),
        ("stall", {"timeout": 0.5}),
    ],
)
def test_a_lost_answer_is_retried_and_makes_exactly_one_authorization(
    live: LiveServer,
    venue: Venue,
    gateway: Gateway,
    faults: Callable[..., Any],
    flavour: str,
    fault: str,
    options: dict[str, Any],
) -> None:
    venue.policy(max_single_amount=500)
    proxy = faults(live.url, fault, stall=2.0)
    decision = call(flavour, proxy.url, venue, "authorize", "order_captured", 127.0, **options)
    assert decision["status"] == "approved"
    stored = gateway.list_authorizations(venue.admin)
    assert stored["total"] == 1
    assert stored["authorizations"][0]["id"] == decision["authorization_id"]
    sent = proxy.requests_to("/v1/authorize")
    assert len(sent) == 2
    assert sent[0][2]["idempotency-key"] == sent[1][2]["idempotency-key"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_gateway_that_keeps_failing_ends_in_the_status_error(
    live: LiveServer, venue: Venue, gateway: Gateway, faults: Callable[..., Any], flavour: str
) -> None:
    venue.policy(max_single_amount=500)
    proxy = faults(live.url, "502_after", times=99)
    with pytest.raises(InternalServerError) as failed:
        call(flavour, proxy.url, venue, "authorize", "order_captured", 127.0, max_retries=2)
    assert failed.value.status == 502 and failed.value.code == "API"
    assert failed.value.message.startswith("The gateway answered HTTP 502 Bad Gateway with text/html instead of JSON")
    assert len(proxy.requests_to("/v1/authorize")) == 3
    assert gateway.list_authorizations(venue.admin)["total"] == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_retry_after_is_honoured_then_the_call_succeeds(
    live: LiveServer, venue: Venue, faults: Callable[..., Any], flavour: str
) -> None:
    proxy = faults(live.url, "retry_after", retry_after="0")
    policies = call(flavour, proxy.url, venue, "get_policies")
    assert policies == {"venue_id": venue.id, "policies": []}
    assert len(proxy.requests_to("/v1/policies")) == 2


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_html_from_a_proxy_is_a_readable_error_with_its_status(
    live: LiveServer, venue: Venue, faults: Callable[..., Any], flavour: str
) -> None:
    proxy = faults(live.url, "html", status=404)
    with pytest.raises(NotFoundError) as missing:
        call(flavour, proxy.url, venue, "get_policies")
    assert missing.value.status == 404 and missing.value.body is None
    assert "HTTP 404 Not Found with text/html instead of JSON: '502 Bad Gateway 502 Bad Gateway nginx'" in str(
        missing.value
    )
    ok_page = faults(live.url, "html", status=200)
    with pytest.raises(AgenitryError) as garbled:
        call(flavour, ok_page.url, venue, "authorize", "order_captured", 1.0)
    assert garbled.value.status == 200 and "instead of JSON" in garbled.value.message
    assert len(ok_page.requests_to("/v1/authorize")) == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_server_that_does_not_speak_http_is_a_network_error(
    live: LiveServer, venue: Venue, faults: Callable[..., Any], flavour: str
) -> None:
    proxy = faults(live.url, "garbage", times=99)
    with pytest.raises(APIConnectionError) as failed:
        call(flavour, proxy.url, venue, "get_policies", max_retries=1)
    assert failed.value.code == "NETWORK" and failed.value.status == 0
    assert "did not answer in HTTP" in failed.value.message
    assert len(proxy.requests_to("/v1/policies")) == 2


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_unreachable_is_network_and_silence_is_timeout(
    live: LiveServer, venue: Venue, faults: Callable[..., Any], free_port: int, flavour: str
) -> None:
    with pytest.raises(APIConnectionError) as refused:
        call(flavour, f"http://127.0.0.1:{free_port}", venue, "get_policies", max_retries=1)
    assert type(refused.value) is APIConnectionError
    assert (refused.value.code, refused.value.status) == ("NETWORK", 0)
    assert "connection refused" in refused.value.message
    silent = faults(live.url, "stall", times=99, stall=5.0)
    with pytest.raises(APITimeoutError) as timed_out:
        call(flavour, silent.url, venue, "get_policies", timeout=0.3, max_retries=1)
    assert (timed_out.value.code, timed_out.value.status) == ("TIMEOUT", 0)
    assert len(silent.requests_to("/v1/policies")) == 2
