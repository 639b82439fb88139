"""What logging events costs, over real HTTP on both stores: a batch takes its key's rate
limit by its events and bytes, and each agent has a quota of events and bytes per window.

A refused request stores nothing. A request the bucket or the quota can never hold is
answered 413 (waiting would not help; the core client halves such a batch); one that
must wait is answered 429 with Retry-After. Decisions log their own events and count
against no quota.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agenitry.gateway import Gateway, Settings, create_app
from support.live import LiveServer
from support.processes import GatewayProcess
from support.venues import Venue

BURST = 10


def serve(gateway: Gateway, **settings: Any) -> Iterator[httpx.Client]:
    server = LiveServer(create_app(gateway, **settings)).start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
    server.stop()


@pytest.fixture
def tight(gateway: Gateway) -> Iterator[httpx.Client]:
    """A key rate limit of 10 tokens at once, one more a minute; no agent quota."""
    yield from serve(gateway, key_rate_limit=1 / 60, key_rate_burst=BURST, agent_event_quota=0, agent_byte_quota=0)


@pytest.fixture
def quota(gateway: Gateway) -> Iterator[httpx.Client]:
    """5 events and 8 KiB per agent an hour; no key rate limit."""
    yield from serve(gateway, key_rate_limit=0, agent_event_quota=5, agent_byte_quota=8192)


def events(count: int, padding: int = 0, **fields: Any) -> dict[str, Any]:
    return {"events": [{"action": "order_captured", "context": {"pad": "x" * padding}, **fields}] * count}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def stored(venue: Venue, agent_id: str | None = None) -> int:
    page = venue.gateway.list_events(venue.admin, venue.id, agent_id=agent_id, action="order_captured", limit=1)
    return int(page["total"])


def test_a_batch_costs_its_key_one_token_per_50_events(tight: httpx.Client, venue: Venue) -> None:
    key = bearer(venue.agent_key())
    assert tight.post("/v1/events/batch", json=events(400), headers=key).status_code == 200  # 8 tokens
    refused = tight.post("/v1/events/batch", json=events(150), headers=key)  # 3 tokens; 2 left
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 120
    assert stored(venue) == 400
    assert tight.post("/v1/events", json=events(1)["events"][0], headers=key).status_code == 201


def test_a_batch_costs_its_key_one_token_per_32_kib(tight: httpx.Client, venue: Venue) -> None:
    key = bearer(venue.agent_key())
    big = events(20, padding=14_000)  # ~280 KiB: 9 tokens, though 20 events would cost one
    assert tight.post("/v1/events/batch", json=big, headers=key).status_code == 200
    assert tight.post("/v1/events/batch", json=big, headers=key).status_code == 429
    assert stored(venue) == 20


def test_a_batch_costlier_than_the_whole_bucket_is_refused_413(tight: httpx.Client, venue: Venue) -> None:
    refused = tight.post("/v1/events/batch", json=events(600), headers=bearer(venue.agent_key()))
    assert refused.status_code == 413
    body = refused.json()
    assert body["code"] == "batch_too_large"
    assert "costs 12 tokens" in body["error"] and "more than the 10 it can ever hold" in body["error"]
    assert stored(venue) == 0


def test_an_agent_past_its_quota_is_answered_429_and_nothing_is_stored(quota: httpx.Client, venue: Venue) -> None:
    key = bearer(venue.agent_key("chatty"))
    assert quota.post("/v1/events/batch", json=events(4), headers=key).status_code == 200
    assert quota.post("/v1/events/batch", json=events(2), headers=key).status_code == 429  # all or none
    assert quota.post("/v1/events", json=events(1)["events"][0], headers=key).status_code == 201

    refused = quota.post("/v1/events", json=events(1)["events"][0], headers=key)
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "quota_exceeded"
    assert "Agent 'chatty'" in body["error"]
    # One event of a quota of 5 an hour comes back in 720 s.
    assert 700 <= int(refused.headers["Retry-After"]) == body["retry_after"] <= 720
    assert stored(venue, "chatty") == 5

    # Other agents of the venue have their own quota.
    assert quota.post("/v1/events", json=events(1)["events"][0], headers=bearer(venue.agent_key())).status_code == 201


def test_the_quota_counts_bytes_too(quota: httpx.Client, venue: Venue) -> None:
    key = bearer(venue.agent_key())
    assert quota.post("/v1/events/batch", json=events(1, padding=6000), headers=key).status_code == 200
    refused = quota.post("/v1/events/batch", json=events(1, padding=3000), headers=key)
    assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
    assert stored(venue) == 1


def test_a_batch_over_the_whole_quota_is_refused_413(quota: httpx.Client, venue: Venue) -> None:
    refused = quota.post("/v1/events/batch", json=events(6), headers=bearer(venue.agent_key()))
    assert refused.status_code == 413 and refused.json()["code"] == "batch_too_large"
    assert "quota of agent 'voice-agent' (5 events and 8192 bytes per 3600 s)" in refused.json()["error"]
    assert stored(venue) == 0


def test_an_admin_batch_for_several_agents_is_refused_whole(quota: httpx.Client, venue: Venue) -> None:
    admin = bearer(venue.admin_key)
    assert quota.post("/v1/events/batch", json=events(5, agent_id="full"), headers=admin).status_code == 200
    mixed = {"events": events(2, agent_id="fresh")["events"] + events(1, agent_id="full")["events"]}
    assert quota.post("/v1/events/batch", json=mixed, headers=admin).status_code == 429
    assert (stored(venue, "fresh"), stored(venue, "full")) == (0, 5)


def test_decisions_count_against_no_quota(quota: httpx.Client, venue: Venue) -> None:
    venue.policy(max_single_amount=100)
    key = bearer(venue.agent_key())
    for _ in range(4):
        decision = quota.post("/v1/authorize", json={"action": "purchase_order", "amount": 5}, headers=key).json()
        assert decision["approved"] is True
        executed = quota.post(f"/v1/authorize/{decision['authorization_id']}/execute", json={}, headers=key)
        assert executed.status_code == 200
    assert quota.post("/v1/events/batch", json=events(5), headers=key).status_code == 200


def test_the_quota_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert (settings.agent_event_quota, settings.agent_byte_quota, settings.agent_quota_window) == (
        10_000,
        10_485_760,
        3600.0,
    )
    monkeypatch.setenv("AGENITRY_AGENT_EVENT_QUOTA", "0")
    monkeypatch.setenv("AGENITRY_AGENT_QUOTA_WINDOW", "60")
    assert (Settings.from_env().agent_event_quota, Settings.from_env().agent_quota_window) == (0, 60.0)
    with pytest.raises(ValueError, match="agent_byte_quota must not be negative"):
        Settings(agent_byte_quota=-1)
    with pytest.raises(ValueError, match="agent_quota_window must be more than 0"):
        Settings(agent_quota_window=0)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_agenitry_serve_takes_the_quota_as_an_option(venue: Venue, sqlite_url: str, tmp_path: Path) -> None:
    server = GatewayProcess(sqlite_url, tmp_path / "serve.log", ("--agent-event-quota", "2")).start()
    try:
        key = bearer(venue.agent_key("optioned"))
        answers = [httpx.post(f"{server.url}/v1/events/batch", json=events(1), headers=key) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [200, 200, 429]
        assert answers[2].json()["code"] == "quota_exceeded"
    finally:
        server.stop()
