"""Embedded mode: the gateway's own app in-process, acting as the venue's operator.

The venue is created on first use (in the currency asked for) and kept after; the
client's calls are recorded with actor ``embedded``; a venue id the gateway refuses, or
a database URL it cannot use, is an AgenitryError that says why.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agenitry import Agenitry, AgenitryError, AsyncAgenitry
from agenitry.gateway import Database, Gateway
from agenitry.gateway._clock import iso
from support.venues import Venue


def test_the_venue_is_created_on_first_use_and_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agenitry.db'}"
    with Agenitry.embedded(url, venue_id="trattoria", currency="EUR", public_url="https://verify.example") as agent:
        agent.set_policy(agent_id=None, max_single_amount=100)
        decision = agent.authorize("purchase_order", 99.99)
        logged = agent.log("order_captured", amount=12, await_confirmation=True)
        assert logged["verify_url"] == f"https://verify.example/verify/trattoria/{logged['id']}"
        assert agent.verify_url(logged["id"]) == logged["verify_url"]
        [event] = agent.events(action="order_captured")["events"]
        assert event["actor"] == "embedded" and event["currency"] == "EUR"

    async def again() -> None:
        async with AsyncAgenitry.embedded(url, venue_id="trattoria", currency="USD") as agent:
            record = await agent.get_authorization(decision["authorization_id"])
            assert record["currency"] == "EUR" and record["requested_by"] == "embedded"

    asyncio.run(again())
    database = Database(url)
    try:
        assert Gateway(database).get_venue("trattoria")["currency"] == "EUR"
    finally:
        database.dispose()


def test_embedded_on_each_store_answers_like_the_gateway(database: Database, venue: Venue) -> None:
    with Agenitry.embedded(database.url, venue_id=venue.id, agent_id="voice-agent") as agent:
        agent.set_policy(max_single_amount=500, require_approval_above=200)
        assert agent.authorize("order_captured", 127)["status"] == "approved"
        pending = agent.authorize("order_captured", 340)
        assert agent.approve(pending["authorization_id"])["status"] == "approved"
        assert agent.execute(pending["authorization_id"], actual_amount=338.5)["status"] == "executed"
        before = iso(int(time.time() * 1000))
        logged = agent.log("order_captured", amount=42.5)
        after = iso(int(time.time() * 1000))
        assert agent.flush(30)
    listed = venue.gateway.list_events(venue.admin, venue.id, agent_id="voice-agent", action="order_captured")
    assert [(event["id"] == logged["id"], event["amount"]) for event in listed["events"]] == [
        (True, 42.5),
        (False, 338.5),
    ]
    # The time of the log() call travels with the event; the gateway's own business event has none.
    logged_event, business_event = listed["events"]
    assert before <= logged_event["occurred_at"] <= after
    assert business_event["occurred_at"] is None
    record = venue.gateway.get_authorization(venue.admin, pending["authorization_id"])
    assert (record["status"], record["actual_amount"], record["decided_by"]) == ("executed", 338.5, "embedded")


@pytest.mark.parametrize(
    ("url", "venue_id", "message"),
    [
        ("sqlite:///{tmp}/a.db", "Not A Venue", "Embedded gateway: A venue id is 1-64 lower-case letters"),
        ("mysql://nowhere/db", "nobo", "Unsupported database 'mysql://nowhere/db'"),
    ],
)
def test_what_the_gateway_refuses_is_an_agenitry_error(tmp_path: Path, url: str, venue_id: str, message: str) -> None:
    with pytest.raises(AgenitryError, match=message):
        Agenitry.embedded(url.format(tmp=tmp_path), venue_id=venue_id)
