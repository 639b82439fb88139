"""Webhooks over HTTP, through a real server on both stores: routes, roles, venues, idempotency.

Admin keys add, list and remove a venue's endpoints, read each one's deliveries and retry
a message; an agent key is 403 ``admin_required`` on every route, and another venue's
endpoint or message is 404, as if it did not exist. The secret is in the answer that adds
an endpoint and in no other; a repeat under the same Idempotency-Key adds nothing.
"""

from __future__ import annotations

from typing import Any, Optional

import httpx

from agenitry.gateway import Gateway, ManualClock
from agenitry.gateway.service.webhooks import Deliverer
from support.isolated import own_database, own_outboxes  # noqa: F401 - fixtures, found by their names
from support.processes import free_port
from support.receiver import Receiver, receiver_for_a_test_clock  # noqa: F401 - a fixture
from support.venues import Venue, make_venue

AGENT = "voice-agent"


def headers(key: str, idempotency_key: Optional[str] = None) -> dict[str, str]:
    sent = {"Authorization": f"Bearer {key}"}
    if idempotency_key is not None:
        sent["Idempotency-Key"] = idempotency_key
    return sent


def nowhere() -> str:
    """A loopback address nothing listens on."""
    return f"http://127.0.0.1:{free_port()}/hook"


def add(http: httpx.Client, venue: Venue, url: str, **fields: Any) -> dict[str, Any]:
    answer = http.post("/v1/webhooks", json={"url": url, **fields}, headers=headers(venue.admin_key))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def pending(venue: Venue) -> str:
    venue.policy(agent_id=AGENT, max_single_amount=1_000, require_approval_above=100)
    fields = {"agent_id": AGENT, "action": "comp_issued", "amount": 150}
    return str(venue.gateway.authorize(venue.agent(AGENT), fields).body["authorization_id"])


def test_an_admin_adds_lists_and_removes_endpoints(http: httpx.Client, venue: Venue) -> None:
    url = nowhere()
    body = {"url": url, "events": ["authorization.pending"], "format": "slack", "description": "#approvals"}
    added = http.post("/v1/webhooks", json=body, headers=headers(venue.admin_key))
    assert added.status_code == 201 and "Idempotent-Replayed" not in added.headers
    record = added.json()
    assert record["secret"].startswith("whsec_") and record["id"].startswith("wh_")
    assert (record["url"], record["format"], record["events"], record["description"]) == (
        url,
        "slack",
        ["authorization.pending"],
        "#approvals",
    )
    assert (record["venue_id"], record["created_by"], record["removed_at"]) == (venue.id, venue.admin.key_id, None)
    listed = http.get("/v1/webhooks", headers=headers(venue.admin_key))
    assert listed.status_code == 200 and record["secret"] not in listed.text
    shown = {key: value for key, value in record.items() if key != "secret"}
    assert listed.json() == {"venue_id": venue.id, "webhooks": [shown]}
    removed = http.delete(f"/v1/webhooks/{record['id']}", headers=headers(venue.admin_key))
    assert removed.status_code == 200 and removed.json()["removed_at"] is not None
    assert http.get("/v1/webhooks", headers=headers(venue.admin_key)).json()["webhooks"] == [removed.json()]


def test_deliveries_show_each_attempt_and_a_message_can_be_sent_again(
    http: httpx.Client, venue: Venue, receiver: Receiver, gateway: Gateway, clock: ManualClock
) -> None:
    record = add(http, venue, receiver.url(), events=["authorization.pending"])
    receiver.trust("/hook", record["secret"], answers=[500] * 8)
    pending(venue)
    deliverer = Deliverer(gateway.webhooks, clock=clock)
    deliverer.run_once()
    answer = http.get(f"/v1/webhooks/{record['id']}/deliveries", headers=headers(venue.admin_key))
    assert answer.status_code == 200
    page = answer.json()
    assert page["webhook"]["id"] == record["id"] and "secret" not in page["webhook"]
    [message] = page["deliveries"]
    assert (message["status"], message["attempt_count"], message["last_status"]) == ("pending", 1, 500)
    assert [(a["number"], a["status_code"]) for a in message["attempts"]] == [(1, 500)]
    assert message["payload"]["type"] == "authorization.pending"
    receiver.trust("/hook", record["secret"])  # the receiver is fixed
    retried = http.post(f"/v1/webhooks/messages/{message['id']}/retry", headers=headers(venue.admin_key))
    assert retried.status_code == 200, retried.text
    assert (retried.json()["id"], retried.json()["status"]) == (message["id"], "pending")
    assert deliverer.run_once() == 1
    [sent] = http.get(f"/v1/webhooks/{record['id']}/deliveries?limit=1", headers=headers(venue.admin_key)).json()[
        "deliveries"
    ]
    assert (sent["status"], [a["status_code"] for a in sent["attempts"]]) == ("delivered", [500, 200])
    assert {item.id for item in receiver.at("/hook")} == {message["id"]}
    again = http.post(f"/v1/webhooks/messages/{message['id']}/retry", headers=headers(venue.admin_key))
    assert (again.status_code, again.json()["code"]) == (409, "already_delivered")
    too_many = http.get(f"/v1/webhooks/{record['id']}/deliveries?limit=201", headers=headers(venue.admin_key))
    assert too_many.status_code == 422
    gateway.webhooks.remove(venue.admin, record["id"])


def test_agent_keys_are_refused_on_every_route(http: httpx.Client, venue: Venue) -> None:
    record = add(http, venue, nowhere(), events=["authorization.pending"])
    pending(venue)
    [message] = venue.gateway.webhooks.deliveries(venue.admin, record["id"])["deliveries"]
    agent = headers(venue.agent_key(AGENT))
    for method, path, body in (
        ("POST", "/v1/webhooks", {"url": nowhere()}),
        ("GET", "/v1/webhooks", None),
        ("DELETE", f"/v1/webhooks/{record['id']}", None),
        ("GET", f"/v1/webhooks/{record['id']}/deliveries", None),
        ("POST", f"/v1/webhooks/messages/{message['id']}/retry", None),
    ):
        answer = http.request(method, path, json=body, headers=agent)
        assert (answer.status_code, answer.json()["code"]) == (403, "admin_required"), (method, path)
        refused = http.request(method, path, json=body)
        assert (refused.status_code, refused.json()["code"]) == (401, "invalid_api_key"), (method, path)
    assert len(venue.gateway.webhooks.list(venue.admin)["webhooks"]) == 1
    venue.gateway.webhooks.remove(venue.admin, record["id"])


def test_another_venues_endpoints_and_messages_do_not_exist(http: httpx.Client, venue: Venue) -> None:
    theirs = make_venue(venue.gateway)
    record = add(http, theirs, nowhere(), events=["authorization.pending"])
    pending(theirs)
    [message] = theirs.gateway.webhooks.deliveries(theirs.admin, record["id"])["deliveries"]
    mine = headers(venue.admin_key)
    for method, path, code in (
        ("DELETE", f"/v1/webhooks/{record['id']}", "webhook_not_found"),
        ("GET", f"/v1/webhooks/{record['id']}/deliveries", "webhook_not_found"),
        ("POST", f"/v1/webhooks/messages/{message['id']}/retry", "message_not_found"),
        ("DELETE", "/v1/webhooks/wh_0000000000000000000000000", "webhook_not_found"),
    ):
        answer = http.request(method, path, headers=mine)
        assert (answer.status_code, answer.json()["code"]) == (404, code), (method, path)
    assert http.get("/v1/webhooks", headers=mine).json()["webhooks"] == []
    assert theirs.gateway.webhooks.list(theirs.admin)["webhooks"][0]["removed_at"] is None
    theirs.gateway.webhooks.remove(theirs.admin, record["id"])


def test_a_repeated_add_or_remove_has_one_effect(http: httpx.Client, venue: Venue) -> None:
    body = {"url": nowhere(), "events": ["authorization.pending"]}
    first = http.post("/v1/webhooks", json=body, headers=headers(venue.admin_key, "add-1"))
    repeat = http.post("/v1/webhooks", json=body, headers=headers(venue.admin_key, "add-1"))
    assert (first.status_code, repeat.status_code) == (201, 201)
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert repeat.json() == {**first.json(), "secret": None}
    other = http.post("/v1/webhooks", json={**body, "format": "slack"}, headers=headers(venue.admin_key, "add-1"))
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    listed = venue.gateway.webhooks.list(venue.admin)["webhooks"]
    assert [item["id"] for item in listed] == [first.json()["id"]]
    path = f"/v1/webhooks/{first.json()['id']}"
    removed = http.delete(path, headers=headers(venue.admin_key, "remove-1"))
    again = http.delete(path, headers=headers(venue.admin_key, "remove-1"))
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == removed.json()
    logged = venue.gateway.list_events(venue.admin, venue.id, limit=50)["events"]
    assert sorted(e["action"] for e in logged if e["action"].startswith("webhook.")) == [
        "webhook.added",
        "webhook.removed",
    ]


def test_bad_bodies_are_refused_with_a_sentence(http: httpx.Client, venue: Venue) -> None:
    admin = headers(venue.admin_key)
    for body, code, said in (
        ({"url": "ftp://files.example.com"}, "invalid_url", "this one's scheme is 'ftp'"),
        ({"url": nowhere(), "event": ["policy.updated"]}, "unknown_field", "did you mean 'events'?"),
        ({"url": nowhere(), "events": ["authorization.aproved"]}, "invalid_event_type", "did you mean"),
        ({"url": nowhere(), "format": "teams"}, "invalid_format", "json"),
    ):
        answer = http.post("/v1/webhooks", json=body, headers=admin)
        assert (answer.status_code, answer.json()["code"]) == (422, code), body
        assert said in answer.json()["error"], answer.json()
    for body in ({}, {"url": 7}, {"url": nowhere(), "events": "policy.updated"}):
        assert http.post("/v1/webhooks", json=body, headers=admin).status_code == 422, body
    extra = http.post("/v1/webhooks/messages/msg_0000000000000000000000000/retry", json={"now": 1}, headers=admin)
    assert (extra.status_code, extra.json()["code"]) == (422, "unknown_field")
    assert venue.gateway.webhooks.list(venue.admin)["webhooks"] == []


def test_openapi_documents_the_webhook_routes(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    documented = {
        (method.upper(), path): operation for path, item in paths.items() for method, operation in item.items()
    }
    writes = [
        ("POST", "/v1/webhooks"),
        ("DELETE", "/v1/webhooks/{webhook_id}"),
        ("POST", "/v1/webhooks/messages/{message_id}/retry"),
    ]
    for route in [*writes, ("GET", "/v1/webhooks"), ("GET", "/v1/webhooks/{webhook_id}/deliveries")]:
        names = {p["name"].lower() for p in documented[route].get("parameters", []) if p["in"] == "header"}
        assert "authorization" in names, route
        assert ("idempotency-key" in names) == (route in writes), route
    assert "201" in documented[("POST", "/v1/webhooks")]["responses"]
