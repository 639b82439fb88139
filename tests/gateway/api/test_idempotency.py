"""Idempotency over HTTP: a request sent many times, one after another or all at once, has one effect.

A repeat under the same Idempotency-Key replays the first status and body with
``Idempotent-Replayed: true``; other parameters under that key answer 422
``idempotency_key_reused``; sixteen racing clients with one key create one
authorization, one execution, one batch, one policy change, on SQLite and PostgreSQL.
Events carry client ids, so a re-sent event is stored once and a different event under
a used id answers 409 ``event_id_conflict``. Keys never collide across venues or callers.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

import httpx

from agenitry.gateway import ManualClock
from support.live import LiveServer
from support.venues import Venue, make_venue

OWN = "voice-agent"
REQUEST = {"agent_id": OWN, "action": "order_captured", "amount": 10}
RACERS = 16
#: When the client says it logged the events below (a replayed event keeps it).
LOGGED_AT = "2026-12-02T07:05:00.123Z"


def auth(venue: Venue, key: Optional[str] = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {venue.admin_key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def replayed(response: httpx.Response) -> bool:
    value = response.headers.get("Idempotent-Replayed")
    assert value in (None, "true"), value
    return value == "true"


def event_total(venue: Venue, **filters: Any) -> int:
    return int(venue.gateway.list_events(venue.admin, venue.id, limit=1, **filters)["total"])


def authorization_total(venue: Venue) -> int:
    return int(venue.gateway.list_authorizations(venue.admin, limit=1)["total"])


def state(venue: Venue) -> tuple[Any, ...]:
    """Enough of the venue's stored state that any write changes it."""
    gateway, admin = venue.gateway, venue.admin
    listed = gateway.list_authorizations(admin, limit=200)["authorizations"]
    return (
        event_total(venue),
        [(a["id"], a["status"], a["held_amount"]) for a in listed],
        gateway.list_policies(admin)["policies"],
    )


def race(live: LiveServer, method: str, path: str, body: Any, headers: dict[str, str]) -> list[httpx.Response]:
    """Send one request from RACERS clients at once, each on its own connection."""
    start = threading.Barrier(RACERS)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=live.url, timeout=60) as client:
            start.wait(timeout=30)
            response = client.request(method, path, json=body, headers=headers)
            response.read()
            return response

    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(one, range(RACERS)))


def assert_one_answer(answers: list[httpx.Response], status: int) -> None:
    """All racers got the same status and body; exactly one of them did the work."""
    assert [answer.status_code for answer in answers] == [status] * RACERS, [a.text[:200] for a in answers]
    # Parsed, not as text: PostgreSQL keeps the stored answer as JSONB, which orders keys its own way.
    assert all(answer.json() == answers[0].json() for answer in answers)
    assert sorted(replayed(answer) for answer in answers) == [False] + [True] * (RACERS - 1)


def test_a_repeat_replays_the_first_status_and_body(http: httpx.Client, venue: Venue) -> None:
    venue.policy(max_single_amount=1000, require_approval_above=100)
    gateway, admin = venue.gateway, venue.admin
    executed = gateway.authorize(admin, REQUEST).body["authorization_id"]
    gateway.execute(admin, executed)
    approved = [gateway.authorize(admin, REQUEST).body["authorization_id"] for _ in range(2)]
    pending = [gateway.authorize(admin, {**REQUEST, "amount": 500}).body["authorization_id"] for _ in range(2)]
    scratch = venue.policy(agent_id="scratch", max_single_amount=1)["id"]
    writes = [
        ("POST", "/v1/authorize", REQUEST, 200),
        ("POST", "/v1/events", {"action": "comp_issued", "amount": 4.5}, 201),
        ("POST", "/v1/events/batch", {"events": [{"action": "item_86d"}, {"action": "price_changed"}]}, 200),
        ("POST", f"/v1/authorize/{approved[0]}/execute", {"actual_amount": 9.5}, 200),
        ("POST", f"/v1/authorize/{executed}/settle", {"context": {"receipt": "r-1"}}, 200),
        ("POST", f"/v1/authorize/{approved[1]}/reverse", None, 200),
        ("POST", f"/v1/authorize/{pending[0]}/approve", {"note": "regular"}, 200),
        ("POST", f"/v1/authorize/{pending[1]}/deny", {"reason": "too much"}, 200),
        ("PUT", "/v1/policies", {"agent_id": OWN, "max_daily_spend": 300}, 200),
        ("DELETE", f"/v1/policies/{scratch}", None, 200),
    ]
    for method, path, body, status in writes:
        key = f"{method}-{path}"
        first = http.request(method, path, json=body, headers=auth(venue, key))
        assert (first.status_code, replayed(first)) == (status, False), f"{method} {path}: {first.text[:300]}"
        before = state(venue)
        again = http.request(method, path, json=body, headers=auth(venue, key))
        assert (again.status_code, replayed(again)) == (status, True), f"{method} {path}"
        assert again.json() == first.json(), f"{method} {path}"
        assert state(venue) == before, f"{method} {path}: the repeat changed stored state"


def test_a_different_request_under_a_used_key_is_refused(http: httpx.Client, venue: Venue) -> None:
    venue.policy(max_single_amount=1000)
    first = http.post("/v1/authorize", json=REQUEST, headers=auth(venue, "order-77"))
    before = state(venue)
    for other in ({**REQUEST, "amount": 11}, {**REQUEST, "action": "comp_issued"}, {**REQUEST, "reason": "again"}):
        refused = http.post("/v1/authorize", json=other, headers=auth(venue, "order-77"))
        assert refused.status_code == 422
        assert refused.json()["code"] == "idempotency_key_reused"
        assert "different request" in refused.json()["error"]
        assert state(venue) == before
    elsewhere = http.post("/v1/events", json={"action": "comp_issued"}, headers=auth(venue, "order-77"))
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (422, "idempotency_key_reused")
    assert state(venue) == before
    # The refusals did not spoil the key: the original request still replays.
    again = http.post("/v1/authorize", json=REQUEST, headers=auth(venue, "order-77"))
    assert (again.json(), replayed(again)) == (first.json(), True)


def test_a_replay_is_kept_for_at_least_a_day(http: httpx.Client, venue: Venue, clock: ManualClock) -> None:
    venue.policy(max_single_amount=1000)
    first = http.post("/v1/authorize", json=REQUEST, headers=auth(venue, "day-old"))
    clock.advance(24 * 3600 * 1000)
    venue.gateway.sweep()
    total = authorization_total(venue)
    again = http.post("/v1/authorize", json=REQUEST, headers=auth(venue, "day-old"))
    assert (again.status_code, again.json(), replayed(again)) == (200, first.json(), True)
    assert authorization_total(venue) == total


def test_racing_authorizations_under_one_key_create_one(live: LiveServer, venue: Venue) -> None:
    venue.policy(max_single_amount=1000)
    before = event_total(venue)
    answers = race(live, "POST", "/v1/authorize", REQUEST, auth(venue, "race-authorize"))
    assert_one_answer(answers, 200)
    assert answers[0].json()["approved"] is True
    assert authorization_total(venue) == 1
    assert event_total(venue) == before + 1


def test_racing_executions_under_one_key_make_one_business_event(live: LiveServer, venue: Venue) -> None:
    venue.policy(max_single_amount=1000)
    authorization_id = venue.gateway.authorize(venue.admin, REQUEST).body["authorization_id"]
    answers = race(
        live, "POST", f"/v1/authorize/{authorization_id}/execute", {"actual_amount": 7}, auth(venue, "race-execute")
    )
    assert_one_answer(answers, 200)
    business = venue.gateway.list_events(venue.admin, venue.id, action="order_captured")["events"]
    assert [(event["authorization_id"], event["amount"]) for event in business] == [(authorization_id, 7.0)]
    assert event_total(venue, action="authorization.executed") == 1


def test_racing_executions_without_a_key_still_execute_once(live: LiveServer, venue: Venue) -> None:
    venue.policy(max_single_amount=1000)
    authorization_id = venue.gateway.authorize(venue.admin, REQUEST).body["authorization_id"]
    answers = race(live, "POST", f"/v1/authorize/{authorization_id}/execute", {}, auth(venue))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [409] * (RACERS - 1)
    for answer in answers:
        if answer.status_code == 409:
            assert (answer.json()["code"], answer.json()["current_status"]) == ("invalid_transition", "executed")
    assert event_total(venue, action="order_captured") == 1


def test_racing_batches_under_one_key_store_one_batch(live: LiveServer, venue: Venue) -> None:
    batch = {"events": [{"action": "order_captured", "amount": n} for n in (1, 2, 3)]}
    answers = race(live, "POST", "/v1/events/batch", batch, auth(venue, "race-batch"))
    assert_one_answer(answers, 200)
    assert answers[0].json()["accepted"] == 3
    assert event_total(venue, action="order_captured") == 3


def test_racing_policy_changes_under_one_key_change_it_once(live: LiveServer, venue: Venue) -> None:
    answers = race(live, "PUT", "/v1/policies", {"max_single_amount": 250}, auth(venue, "race-policy"))
    assert_one_answer(answers, 200)
    assert event_total(venue, action="policy.updated") == 1
    [policy] = venue.gateway.list_policies(venue.admin)["policies"]
    assert (policy["id"], policy["max_single_amount"]) == (answers[0].json()["id"], 250.0)


def test_a_resent_event_is_stored_once(http: httpx.Client, venue: Venue) -> None:
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "action": "order_captured",
        "amount": 42.5,
        "context": {"table": 4},
        "occurred_at": LOGGED_AT,
    }
    first = http.post("/v1/events", json=event, headers=auth(venue))
    assert first.status_code == 201 and first.json()["id"] == event["id"]
    before = state(venue)
    again = http.post("/v1/events", json=event, headers=auth(venue))
    assert (again.status_code, again.json()) == (201, first.json())
    in_batch = http.post("/v1/events/batch", json={"events": [event, event]}, headers=auth(venue))
    assert in_batch.status_code == 200 and in_batch.json()["ids"] == [event["id"], event["id"]]
    assert state(venue) == before
    assert event_total(venue, action="order_captured") == 1


def test_a_different_event_under_a_used_id_is_refused(http: httpx.Client, venue: Venue) -> None:
    event = {"id": f"evt_{uuid.uuid4().hex}", "action": "order_captured", "amount": 42.5, "occurred_at": LOGGED_AT}
    assert http.post("/v1/events", json=event, headers=auth(venue)).status_code == 201
    before = state(venue)
    fresh = {"id": f"evt_{uuid.uuid4().hex}", "action": "item_86d"}
    for other in (
        {**event, "amount": 42.51},
        {**event, "action": "comp_issued"},
        {**event, "context": {"table": 5}},
        {**event, "agent_id": "someone-else"},
        {**event, "occurred_at": "2026-12-02T07:05:00.124Z"},
        {name: value for name, value in event.items() if name != "occurred_at"},
    ):
        for path, body in (("/v1/events", other), ("/v1/events/batch", {"events": [fresh, other]})):
            refused = http.post(path, json=body, headers=auth(venue))
            assert refused.status_code == 409, refused.text
            assert refused.json()["code"] == "event_id_conflict"
            assert event["id"] in refused.json()["error"]
            assert state(venue) == before
    clash = http.post("/v1/events/batch", json={"events": [fresh, {**fresh, "amount": 1}]}, headers=auth(venue))
    assert (clash.status_code, clash.json()["code"]) == (409, "event_id_conflict")
    assert state(venue) == before


def test_racing_resends_of_one_event_store_it_once(live: LiveServer, venue: Venue) -> None:
    event = {"id": f"evt_{uuid.uuid4().hex}", "action": "comp_issued", "amount": 3}
    answers = race(live, "POST", "/v1/events", event, auth(venue))
    assert [answer.status_code for answer in answers] == [201] * RACERS
    assert all(answer.json() == answers[0].json() for answer in answers)
    assert event_total(venue, action="comp_issued") == 1


def test_venues_and_callers_never_share_a_key(http: httpx.Client, venue: Venue) -> None:
    other = make_venue(venue.gateway)
    for each in (venue, other):
        each.policy(max_single_amount=1000)
    mine = http.post("/v1/authorize", json=REQUEST, headers=auth(venue, "shared-key"))
    theirs = http.post("/v1/authorize", json=REQUEST, headers=auth(other, "shared-key"))
    assert (replayed(mine), replayed(theirs)) == (False, False)
    assert mine.json()["authorization_id"] != theirs.json()["authorization_id"]
    assert (authorization_total(venue), authorization_total(other)) == (1, 1)
    event_id = f"evt_{uuid.uuid4().hex}"
    for each in (venue, other):
        logged = http.post("/v1/events", json={"id": event_id, "action": "item_86d"}, headers=auth(each))
        assert logged.status_code == 201 and logged.json()["sequence"] >= 1
    # Another key of the same venue never gets the first caller's stored answer.
    agent_headers = {"Authorization": f"Bearer {venue.agent_key(OWN)}", "Idempotency-Key": "shared-key"}
    before = state(venue)
    refused = http.post("/v1/authorize", json=REQUEST, headers=agent_headers)
    assert (refused.status_code, refused.json()["code"]) == (422, "idempotency_key_reused")
    assert state(venue) == before


def test_creating_a_key_twice_under_one_idempotency_key_creates_one(http: httpx.Client, venue: Venue) -> None:
    body = {"role": "agent", "agent_id": OWN}
    first = http.post("/v1/keys", json=body, headers=auth(venue, "new-key"))
    again = http.post("/v1/keys", json=body, headers=auth(venue, "new-key"))
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["key"].startswith("ag_")
    # The secret was never stored, so a replay cannot show it again.
    assert again.json()["key"] is None and again.headers["Idempotent-Replayed"] == "true"
    keys = http.get("/v1/keys", headers=auth(venue)).json()["keys"]
    assert [k["id"] for k in keys].count(first.json()["id"]) == 1 and len(keys) == 2
