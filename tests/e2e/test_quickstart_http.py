"""The seed's quick-start flow, over real HTTP, with exactly the paths and bodies of wire protocol v1."""

from __future__ import annotations

import httpx

from support.venues import Venue


def test_quick_start_flow_over_http(http: httpx.Client, venue: Venue) -> None:
    auth = {"Authorization": f"Bearer {venue.admin_key}"}

    logged = http.post(
        "/v1/events",
        json={
            "venue_id": venue.id,
            "agent_id": "default",
            "action": "order_captured",
            "amount": 42.50,
            "direction": "inbound",
        },
        headers=auth,
    )
    assert logged.status_code == 201
    assert logged.json()["status"] == "logged"
    assert logged.json()["verify_url"].endswith(f"/verify/{venue.id}/{logged.json()['id']}")

    booked = http.post(
        "/v1/events",
        json={"venue_id": venue.id, "agent_id": "default", "action": "reservation_booked", "amount": 0},
        headers=auth,
    ).json()
    assert booked["id"].startswith("evt_")

    listed = http.get(f"/v1/events/{venue.id}", params={"action": "order_captured", "limit": 10}, headers=auth).json()
    assert [event["id"] for event in listed["events"]] == [logged.json()["id"]]
    assert listed["total"] == 1 and listed["has_more"] is False

    stats = http.get(f"/v1/events/{venue.id}/stats", params={"period": "7d"}, headers=auth).json()
    assert stats["total_inbound"] == 42.5
    assert stats["event_count"] == 2

    policy = http.put(
        "/v1/policies",
        json={
            "agent_id": "voice-agent",
            "max_single_amount": 500,
            "max_daily_spend": 5000,
            "require_approval_above": 200,
            "allowed_actions": ["order_captured", "reservation_booked", "comp_issued"],
        },
        headers=auth,
    )
    assert policy.status_code == 200
    assert policy.json()["id"].startswith("pol_")

    decision = http.post(
        "/v1/authorize",
        json={"agent_id": "voice-agent", "action": "order_captured", "amount": 127.00},
        headers=auth,
    ).json()
    assert decision["approved"] is True and decision["status"] == "approved"
    authorization_id = decision["authorization_id"]

    executed = http.post(f"/v1/authorize/{authorization_id}/execute", json={}, headers=auth).json()
    assert executed["status"] == "executed" and executed["event_id"].startswith("evt_")
    settled = http.post(f"/v1/authorize/{authorization_id}/settle", json={}, headers=auth).json()
    assert settled["status"] == "settled"

    denied = http.post(
        "/v1/authorize", json={"agent_id": "voice-agent", "action": "order_captured", "amount": 36000}, headers=auth
    ).json()
    assert denied["approved"] is False and denied["denial_code"] == "max_single_amount"
    assert denied["denial_reason"] == (
        "Amount $36,000.00 exceeds the single-transaction limit of $500.00 for agent 'voice-agent'"
    )

    pending = http.post(
        "/v1/authorize", json={"agent_id": "voice-agent", "action": "order_captured", "amount": 340}, headers=auth
    ).json()
    assert pending["status"] == "pending" and pending["approved"] is False
    approved = http.post(f"/v1/authorize/{pending['authorization_id']}/approve", json={}, headers=auth).json()
    assert approved["status"] == "approved"
    http.post(f"/v1/authorize/{pending['authorization_id']}/execute", json={"actual_amount": 320}, headers=auth)

    record = http.get(f"/v1/authorize/{pending['authorization_id']}", headers=auth).json()
    assert record["status"] == "executed" and record["actual_amount"] == 320

    listing = http.get("/v1/authorize", params={"agent_id": "voice-agent", "status": "executed"}, headers=auth).json()
    assert [item["id"] for item in listing["authorizations"]] == [pending["authorization_id"]]

    policies = http.get("/v1/policies", headers=auth).json()["policies"]
    deleted = http.delete(f"/v1/policies/{policies[0]['id']}", headers=auth).json()
    assert deleted == {"status": "deleted", "id": policies[0]["id"]}

    page = http.get(f"/verify/{venue.id}/{executed['event_id']}")
    assert page.status_code == 200 and "order_captured" in page.text and "voice-agent" in page.text
