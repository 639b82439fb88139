"""Each API key has its own rate limit on the keyed routes, over real HTTP on both stores.

A key past its limit is answered 429 ``rate_limited`` with Retry-After, and its refused
requests change nothing; other keys, in the same venue or another, go on being served.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from agenitry.gateway import Gateway, Settings, create_app
from support.live import LiveServer
from support.venues import Venue, make_venue

BURST = 3
REQUEST = {"action": "purchase_order", "amount": 10}


@pytest.fixture
def tight(gateway: Gateway) -> Iterator[httpx.Client]:
    """The gateway with a limit of 3 requests at once per key, one more a minute."""
    server = LiveServer(create_app(gateway, key_rate_limit=1 / 60, key_rate_burst=BURST)).start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


def authorize(http: httpx.Client, key: str) -> httpx.Response:
    return http.post("/v1/authorize", json=REQUEST, headers={"Authorization": f"Bearer {key}"})


def test_a_runaway_key_is_refused_while_the_others_are_served(tight: httpx.Client, venue: Venue) -> None:
    venue.policy(max_single_amount=100)
    runaway, steady = venue.agent_key("runaway"), venue.agent_key("steady")
    assert [authorize(tight, runaway).status_code for _ in range(BURST)] == [200] * BURST

    refused = authorize(tight, runaway)
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "rate_limited"
    assert "API key" in body["error"]
    assert 1 <= int(refused.headers["Retry-After"]) == body["retry_after"] <= 60
    # Every keyed route counts, reads included.
    assert tight.get("/v1/policies", headers={"Authorization": f"Bearer {runaway}"}).status_code == 429

    # The other agent of the venue, and the venue's admin, still have their own tokens.
    assert [authorize(tight, steady).status_code for _ in range(BURST)] == [200] * BURST
    admin = {"Authorization": f"Bearer {venue.admin_key}"}
    assert tight.get("/v1/policies", headers=admin).status_code == 200

    # The refused decisions left nothing behind: only the three served ones hold money.
    listed = tight.get("/v1/authorize", params={"agent_id": "runaway"}, headers=admin).json()
    assert listed["total"] == BURST


def test_keys_of_other_venues_are_not_affected(tight: httpx.Client, gateway: Gateway, venue: Venue) -> None:
    other = make_venue(gateway)
    for current in (venue, other):
        current.policy(max_single_amount=100)
    for _ in range(BURST):
        authorize(tight, venue.agent_key())
    assert authorize(tight, venue.agent_key()).status_code == 429
    assert authorize(tight, other.agent_key()).status_code == 200


def test_a_wrong_key_is_answered_401_and_charges_no_one(tight: httpx.Client, venue: Venue) -> None:
    venue.policy(max_single_amount=100)
    for _ in range(2 * BURST):
        assert authorize(tight, "ag_not_a_key").status_code == 401
    assert [authorize(tight, venue.agent_key()).status_code for _ in range(BURST)] == [200] * BURST


def test_a_rate_of_zero_turns_the_limit_off(gateway: Gateway, venue: Venue) -> None:
    venue.policy(max_single_amount=100)
    server = LiveServer(create_app(gateway, key_rate_limit=0, key_rate_burst=1)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            assert {authorize(http, venue.agent_key()).status_code for _ in range(20)} == {200}
    finally:
        server.stop()


def test_the_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().key_rate_limit, Settings().key_rate_burst) == (50.0, 200)
    monkeypatch.setenv("AGENITRY_KEY_RATE_LIMIT", "2.5")
    monkeypatch.setenv("AGENITRY_KEY_RATE_BURST", "7")
    assert (Settings.from_env().key_rate_limit, Settings.from_env().key_rate_burst) == (2.5, 7)
    with pytest.raises(ValueError, match="key_rate_limit must not be negative"):
        Settings(key_rate_limit=-1)
    with pytest.raises(ValueError, match="key_rate_burst must be at least 1"):
        Settings(key_rate_burst=0)
