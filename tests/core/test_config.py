"""Settings: arguments first, then AGENITRY_* variables; what is missing or wrong is named at once.

Each client holds its own settings (no global state), so two clients with different
keys in one process never overwrite each other.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from agenitry import Agenitry, AgenitryError, AsyncAgenitry, create_agenitry
from support.live import LiveServer
from support.venues import Venue, make_venue

CLIENTS = [Agenitry, AsyncAgenitry]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENITRY_API_KEY", "AGENITRY_VENUE_ID", "AGENITRY_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_missing_api_key_or_venue_id_is_named(kind: Any) -> None:
    with pytest.raises(AgenitryError, match=r"^api_key is required: pass api_key=\.\.\. or set AGENITRY_API_KEY$"):
        kind(venue_id="nobo-downtown")
    with pytest.raises(AgenitryError, match=r"^venue_id is required: pass venue_id=\.\.\. or set AGENITRY_VENUE_ID$"):
        kind(api_key="ag_x")
    with pytest.raises(AgenitryError, match="venue_id is required"):
        kind.embedded("sqlite:///unused.db")


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"max_retries": -1}, "max_retries must be a whole number >= 0"),
        ({"timeout": 0}, "timeout must be a number of seconds > 0"),
        ({"retry_base_delay": -0.5}, "retry_base_delay must be a number of seconds >= 0"),
        ({"max_queue": 0}, "max_queue must be a whole number >= 1"),
        ({"base_url": "ftp://gateway"}, "base_url must be an http:// or https:// URL, got 'ftp://gateway'"),
        ({"base_url": "http://127.0.0.1:99999"}, "base_url has an invalid port"),
    ],
)
def test_invalid_settings_fail_fast(options: dict[str, Any], named: str) -> None:
    with pytest.raises(AgenitryError, match=named.replace(".", r"\.").replace("+", r"\+")):
        Agenitry("ag_x", "nobo-downtown", **options)


def test_the_default_gateway_is_the_local_one() -> None:
    client = Agenitry("ag_x", "nobo-downtown")
    try:
        assert client.base_url == "http://127.0.0.1:8700"
        assert client.verify_url("evt_1") == "http://127.0.0.1:8700/verify/nobo-downtown/evt_1"
    finally:
        client.close()


@pytest.mark.parametrize("kind", CLIENTS)
def test_the_environment_supplies_what_the_arguments_do_not(
    monkeypatch: pytest.MonkeyPatch, live: LiveServer, venue: Venue, kind: Any
) -> None:
    monkeypatch.setenv("AGENITRY_API_KEY", venue.admin_key)
    monkeypatch.setenv("AGENITRY_VENUE_ID", venue.id)
    monkeypatch.setenv("AGENITRY_BASE_URL", live.url)
    if kind is Agenitry:
        with Agenitry() as client:
            assert (client.venue_id, client.base_url) == (venue.id, live.url)
            assert client.get_policies() == {"venue_id": venue.id, "policies": []}
        return

    async def run() -> None:
        async with AsyncAgenitry() as client:
            assert (client.venue_id, client.base_url) == (venue.id, live.url)
            assert await client.get_policies() == {"venue_id": venue.id, "policies": []}

    asyncio.run(run())


def test_two_clients_keep_their_own_keys(live: LiveServer, venue: Venue) -> None:
    other = make_venue(venue.gateway)
    first = create_agenitry(venue.admin_key, venue.id, base_url=live.url)
    second = create_agenitry(other.admin_key, other.id, base_url=live.url)
    try:
        assert isinstance(first, Agenitry)
        assert first.get_policies()["venue_id"] == venue.id
        assert second.get_policies()["venue_id"] == other.id
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("kind", CLIENTS)
def test_embedded_without_the_gateway_says_what_to_install(monkeypatch: pytest.MonkeyPatch, kind: Any) -> None:
    monkeypatch.setitem(sys.modules, "agenitry.gateway", None)
    with pytest.raises(AgenitryError) as missing:
        kind.embedded("sqlite:///unused.db", venue_id="nobo-downtown")
    assert missing.value.message == (
        "Embedded mode needs the agenitry-gateway package:"
        " from a checkout of the Agenitry repository, pip install ./packages/agenitry-gateway"
    )
