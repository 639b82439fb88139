"""Strict writes (issue 12): a mistake in a write body fails closed, through a real server.

Every write route refuses a field it does not know with 422 ``unknown_field``, naming the
field and the one probably meant, and stores nothing; ``PUT /v1/policies`` changes only
the limits it sends (``null`` removes one), so a typo can never make a policy unlimited;
a body naming another venue answers 404 like that venue's objects; a request with an
invalid key is refused before its body is read. The published 0.2.0 client, installed
apart and run in a subprocess, still does all its writes.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import httpx
import pytest

from agenitry import NO_LIMIT, Agenitry
from agenitry.gateway import Gateway
from agenitry.gateway.errors import NotFound
from support.live import LiveServer
from support.raw_http import read_answer
from support.venues import Venue, make_venue

OWN = "voice-agent"
MIB = 1_048_576
INVALID_KEY = {"error": "Invalid API key", "code": "invalid_api_key"}
LIMITS = ("max_single_amount", "max_daily_spend", "max_monthly_spend", "require_approval_above", "allowed_actions")


def auth(venue: Venue) -> dict[str, str]:
    return {"Authorization": f"Bearer {venue.admin_key}"}


def stored(venue: Venue) -> dict[str, Any]:
    """What the venue holds; every accepted write changes it (policy and key changes log an event)."""
    gateway, admin = venue.gateway, venue.admin
    events = gateway.list_events(admin, venue.id, limit=1)
    authorizations = gateway.list_authorizations(admin, limit=200)["authorizations"]
    return {
        "events": (events["total"], [event["id"] for event in events["events"]]),
        "authorizations": [(a["id"], a["status"], a["held_amount"]) for a in authorizations],
        "policies": gateway.list_policies(admin)["policies"],
        "keys": [(key["id"], key["revoked_at"]) for key in gateway.list_keys(admin)["keys"]],
    }


def authorization(venue: Venue, status: str) -> str:
    fields = {"agent_id": OWN, "action": "order_captured", "amount": 500 if status == "pending" else 10}
    authorization_id = str(venue.gateway.authorize(venue.admin, fields).body["authorization_id"])
    if status == "executed":
        venue.gateway.execute(venue.admin, authorization_id)
    return authorization_id


#: A webhook URL no test listens on (nothing here sends to it: these tests run no deliverer).
UNHEARD = "http://127.0.0.1:9/hook"


def webhook_message(venue: Venue) -> str:
    """A message of the venue's outbox: a pending authorization's, for a new endpoint."""
    endpoint, _ = venue.gateway.webhooks.add(venue.admin, UNHEARD, events=["authorization.pending"])
    authorization(venue, "pending")
    return str(venue.gateway.webhooks.deliveries(venue.admin, endpoint["id"])["deliveries"][0]["id"])


@dataclass(frozen=True)
class Write:
    """A write route, and how to send it a valid body plus one field it does not know."""

    method: str
    path: str
    build: Callable[[Venue], tuple[str, dict[str, Any]]]
    unknown: str
    meant: Optional[str] = None
    #: Where ``details`` places the unknown field.
    field: str = ""


EVENT = {"agent_id": OWN, "action": "order_captured", "amount": 12.5}

WRITES = [
    Write("POST", "/v1/events", lambda v: ("/v1/events", {**EVENT, "ammount": 3}), "ammount", "amount"),
    Write(
        "POST",
        "/v1/events/batch",
        lambda v: ("/v1/events/batch", {"events": [EVENT], "venue": v.id}),
        "venue",
    ),
    Write(
        "POST",
        "/v1/events/batch",
        lambda v: ("/v1/events/batch", {"events": [EVENT, {**EVENT, "directon": "inbound"}]}),
        "directon",
        "direction",
        field="events.1.directon",
    ),
    Write("POST", "/v1/authorize", lambda v: ("/v1/authorize", {**EVENT, "approve": True}), "approve"),
    Write(
        "POST",
        "/v1/authorize/{authorization_id}/claim",
        lambda v: (f"/v1/authorize/{authorization(v, 'approved')}/claim", {"lease_second": 30}),
        "lease_second",
        "lease_seconds",
    ),
    Write(
        "POST",
        "/v1/authorize/{authorization_id}/execute",
        lambda v: (f"/v1/authorize/{authorization(v, 'approved')}/execute", {"actual": 8}),
        "actual",
        "actual_amount",
    ),
    Write(
        "POST",
        "/v1/authorize/{authorization_id}/settle",
        lambda v: (f"/v1/authorize/{authorization(v, 'executed')}/settle", {"contxt": {}}),
        "contxt",
        "context",
    ),
    Write(
        "POST",
        "/v1/authorize/{authorization_id}/reverse",
        lambda v: (f"/v1/authorize/{authorization(v, 'approved')}/reverse", {"reason": "oops"}),
        "reason",
    ),
    Write(
        "POST",
        "/v1/authorize/{authorization_id}/approve",
        lambda v: (f"/v1/authorize/{authorization(v, 'pending')}/approve", {"notes": "ok"}),
        "notes",
        "note",
    ),
    Write(
        "POST",
        "/v1/authorize/{authorization_id}/deny",
        lambda v: (f"/v1/authorize/{authorization(v, 'pending')}/deny", {"reasons": "no"}),
        "reasons",
        "reason",
    ),
    Write(
        "PUT",
        "/v1/policies",
        lambda v: ("/v1/policies", {"max_single_amount": 50, "max_daily_limit": 100}),
        "max_daily_limit",
        "max_daily_spend",
    ),
    Write(
        "DELETE",
        "/v1/policies/{policy_id}",
        lambda v: (f"/v1/policies/{v.policy(agent_id='spare', max_single_amount=1)['id']}", {"force": True}),
        "force",
    ),
    Write("POST", "/v1/keys", lambda v: ("/v1/keys", {"role": "agent", "agent": OWN}), "agent", "agent_id"),
    Write(
        "DELETE",
        "/v1/keys/{key_id}",
        lambda v: (f"/v1/keys/{v.gateway.create_key(v.admin, role='agent', agent_id='spare')[0]['id']}", {"now": 1}),
        "now",
    ),
    Write("POST", "/v1/webhooks", lambda v: ("/v1/webhooks", {"url": UNHEARD, "event": []}), "event", "events"),
    Write(
        "DELETE",
        "/v1/webhooks/{webhook_id}",
        lambda v: (f"/v1/webhooks/{v.gateway.webhooks.add(v.admin, UNHEARD)[0]['id']}", {"force": True}),
        "force",
    ),
    Write(
        "POST",
        "/v1/webhooks/messages/{message_id}/retry",
        lambda v: (f"/v1/webhooks/messages/{webhook_message(v)}/retry", {"now": True}),
        "now",
    ),
]


def write_routes(http: httpx.Client) -> set[tuple[str, str]]:
    """Every POST, PUT and DELETE /openapi.json documents."""
    paths = http.get("/openapi.json").json()["paths"]
    return {
        (method.upper(), path)
        for path, operations in paths.items()
        for method in operations
        if method in ("post", "put", "delete")
    }


def test_the_table_covers_every_write_route(http: httpx.Client) -> None:
    assert write_routes(http) == {(write.method, write.path) for write in WRITES}


@pytest.mark.parametrize("write", WRITES, ids=lambda write: f"{write.method} {write.path} {write.unknown}")
def test_an_unknown_field_is_refused_and_nothing_is_stored(http: httpx.Client, venue: Venue, write: Write) -> None:
    venue.policy(max_single_amount=1000, require_approval_above=100)
    path, body = write.build(venue)
    before = stored(venue)
    response = http.request(write.method, path, json=body, headers=auth(venue))
    assert response.status_code == 422, response.text
    answer = response.json()
    sentence = f"Unknown field '{write.unknown}'" + (f"; did you mean '{write.meant}'?" if write.meant else "")
    assert answer["error"] == sentence
    assert answer["code"] == "unknown_field"
    assert answer["details"] == [{"field": write.field or write.unknown, "message": sentence, "type": "unknown_field"}]
    assert stored(venue) == before


def test_the_policy_typo_of_the_issue_is_refused(http: httpx.Client, venue: Venue) -> None:
    response = http.put("/v1/policies", json={"max_single_amount": 50, "max_daily_limit": 100}, headers=auth(venue))
    assert response.status_code == 422
    assert response.json()["error"] == "Unknown field 'max_daily_limit'; did you mean 'max_daily_spend'?"
    assert http.get("/v1/policies", headers=auth(venue)).json()["policies"] == []


def test_every_unknown_field_is_listed_and_comes_before_other_problems(http: httpx.Client, venue: Venue) -> None:
    body = {"events": [{"action": "order_captured", "amount": "12", "amout": 1}, {"action": 5, "colour": "red"}]}
    response = http.post("/v1/events/batch", json=body, headers=auth(venue))
    assert response.status_code == 422
    answer = response.json()
    assert answer["code"] == "unknown_field"
    assert answer["error"] == "Unknown field 'amout'; did you mean 'amount'? (and 1 more)"
    assert [(detail["field"], detail["type"]) for detail in answer["details"]] == [
        ("events.0.amout", "unknown_field"),
        ("events.1.colour", "unknown_field"),
    ]


def test_a_long_unknown_field_is_named_in_part(http: httpx.Client, venue: Venue) -> None:
    name = "x" * 10_000
    response = http.post("/v1/authorize", json={**EVENT, name: 1}, headers=auth(venue))
    assert response.status_code == 422
    assert response.json()["error"] == f"Unknown field '{'x' * 61}...'"


def test_openapi_documents_every_write_body_as_closed(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    bodies = [
        operation["requestBody"]["content"]["application/json"]["schema"]
        for operations in document["paths"].values()
        for operation in operations.values()
        if "requestBody" in operation
    ]
    names = {
        reference.rsplit("/", 1)[1]
        for body in bodies
        for reference in [body.get("$ref"), *[option.get("$ref") for option in body.get("anyOf", [])]]
        if reference
    }
    assert {"EventIn", "EventBatchIn", "AuthorizeIn", "PolicyIn", "KeyIn", "NoFieldsIn"} <= names
    for name in names:
        assert schemas[name]["additionalProperties"] is False, name


# -- PUT /v1/policies: what is not sent is kept ----------------------------------------------------


def put(http: httpx.Client, venue: Venue, body: dict[str, Any]) -> dict[str, Any]:
    response = http.put("/v1/policies", json=body, headers=auth(venue))
    assert response.status_code == 200, response.text
    return {name: response.json()[name] for name in ("id", "agent_id", *LIMITS)}


def test_a_put_creates_with_no_limit_where_nothing_is_sent(http: httpx.Client, venue: Venue) -> None:
    created = put(http, venue, {"max_single_amount": 50})
    assert created["agent_id"] is None
    assert [created[name] for name in LIMITS] == [50.0, None, None, None, None]


def test_a_limit_not_sent_keeps_its_value_and_null_removes_it(http: httpx.Client, venue: Venue) -> None:
    first = put(
        http,
        venue,
        {
            "agent_id": OWN,
            "max_single_amount": 50,
            "max_daily_spend": 100,
            "max_monthly_spend": 1000,
            "allowed_actions": ["order_captured"],
        },
    )
    second = put(http, venue, {"agent_id": OWN, "max_single_amount": 60})
    assert second == {**first, "max_single_amount": 60.0}
    third = put(http, venue, {"agent_id": OWN, "max_daily_spend": None, "allowed_actions": None})
    assert third == {**second, "max_daily_spend": None, "allowed_actions": None}
    # The venue-wide policy is another scope: creating it changes nothing of the agent's.
    venue_wide = put(http, venue, {"require_approval_above": 20})
    assert venue_wide["id"] != first["id"]
    listed = http.get("/v1/policies", headers=auth(venue)).json()["policies"]
    assert [{name: policy[name] for name in third} for policy in listed if policy["agent_id"] == OWN] == [third]


def test_a_kept_limit_still_decides(http: httpx.Client, venue: Venue) -> None:
    put(http, venue, {"max_single_amount": 100, "max_daily_spend": 150})
    put(http, venue, {"max_single_amount": 120})
    decisions = [
        http.post("/v1/authorize", json={**EVENT, "amount": amount}, headers=auth(venue)).json()
        for amount in (100, 100)
    ]
    assert [decision.get("denial_code") or decision["status"] for decision in decisions] == [
        "approved",
        "max_daily_spend",
    ]


def test_the_client_keeps_limits_left_out_and_removes_no_limit(live: LiveServer, venue: Venue) -> None:
    with Agenitry(api_key=venue.admin_key, venue_id=venue.id, base_url=live.url) as client:
        client.set_policy(agent_id=OWN, max_single_amount=50, max_daily_spend=100, allowed_actions=["comp_issued"])
        kept = client.set_policy(agent_id=OWN, max_single_amount=None, max_daily_spend=80)
        assert [kept[name] for name in LIMITS] == [50, 80, None, None, ["comp_issued"]]
        removed = client.set_policy(agent_id=OWN, max_daily_spend=NO_LIMIT, allowed_actions=NO_LIMIT)
        assert [removed[name] for name in LIMITS] == [50, None, None, None, None]


# -- a body's venue_id ------------------------------------------------------------------------------


@pytest.fixture
def theirs(venue: Venue) -> Venue:
    return make_venue(venue.gateway)


NAMED_VENUE = [
    ("POST", "/v1/events", lambda venue_id: {**EVENT, "venue_id": venue_id}, 201),
    ("POST", "/v1/events/batch", lambda venue_id: {"events": [EVENT, {**EVENT, "venue_id": venue_id}]}, 200),
    ("POST", "/v1/authorize", lambda venue_id: {**EVENT, "venue_id": venue_id}, 200),
    ("PUT", "/v1/policies", lambda venue_id: {"venue_id": venue_id, "max_single_amount": 5}, 200),
]


@pytest.mark.parametrize(("method", "path", "body", "accepted"), NAMED_VENUE, ids=[row[1] for row in NAMED_VENUE])
def test_a_body_naming_another_venue_answers_404_and_its_own_is_accepted(
    http: httpx.Client,
    venue: Venue,
    theirs: Venue,
    method: str,
    path: str,
    body: Callable[[str], dict[str, Any]],
    accepted: int,
) -> None:
    venue.policy(max_single_amount=1000)
    listing = http.get(f"/v1/events/{theirs.id}", headers=auth(venue))
    before = (stored(venue), stored(theirs))
    refused = http.request(method, path, json=body(theirs.id), headers=auth(venue))
    assert refused.status_code == 404
    # The very answer a read of that venue gets: nothing tells the venue exists.
    assert refused.json() == listing.json() == {"error": f"Venue '{theirs.id}' not found", "code": "venue_not_found"}
    assert (stored(venue), stored(theirs)) == before
    own = http.request(method, path, json=body(venue.id), headers=auth(venue))
    assert own.status_code == accepted, own.text


def test_the_service_checks_a_named_venue_for_every_caller(gateway: Gateway, venue: Venue, theirs: Venue) -> None:
    # The embedded client and the CLI call the service, so the check lives there.
    venue.policy(max_single_amount=1000)
    calls = [
        lambda fields: gateway.log_event(venue.admin, fields),
        lambda fields: gateway.log_events(venue.admin, [fields]),
        lambda fields: gateway.authorize(venue.admin, fields),
        lambda fields: gateway.put_policy(venue.admin, {"venue_id": fields["venue_id"]}),
    ]
    for call in calls:
        with pytest.raises(NotFound) as refused:
            call({**EVENT, "venue_id": theirs.id})
        assert refused.value.code == "venue_not_found"
        call({**EVENT, "venue_id": venue.id})


# -- the key before the body --------------------------------------------------------------------------


def raw_exchange(port: int, head: str) -> tuple[int, dict[str, Any]]:
    """Send a request's head alone (its body never follows) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head.encode())
        status, _, body = read_answer(connection)
    return status, json.loads(body)


@pytest.mark.parametrize("authorization", ["Bearer ag_" + "x" * 43, "Bearer not-a-key", None])
def test_a_request_without_a_valid_key_is_refused_before_its_body_arrives(
    http: httpx.Client, live: LiveServer, authorization: Optional[str]
) -> None:
    routes = sorted(write_routes(http))
    assert routes
    for method, path in routes:
        target = path.replace("{", "").replace("}", "")  # any id: the key is refused first
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MIB}\r\n" + (f"Authorization: {authorization}\r\n" if authorization else "") + "\r\n"
        )
        assert raw_exchange(live.port, head) == (401, INVALID_KEY), (method, path)


# -- the published 0.2.0 client ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def sdk_020(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The published agenitry 0.2.0, installed apart: its distribution name is ours."""
    target = tmp_path_factory.mktemp("agenitry-0.2.0")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), "agenitry==0.2.0"],
        check=True,
    )
    yield target


SDK_020_WRITES = textwrap.dedent(
    """
    import json, sys
    from agenitry import Agenitry

    base_url, api_key, venue_id = sys.argv[1:]
    agent = Agenitry(api_key=api_key, venue_id=venue_id, base_url=base_url, max_retries=0)
    seen = {}
    seen["log"] = agent.log("order_captured", amount=42.5, currency="USD", direction="inbound",
                            context={"table": 12}, reason="dinner", agent_id="voice-agent",
                            await_confirmation=True)["status"]
    policy = agent.set_policy(agent_id=None, max_single_amount=500, max_daily_spend=5000,
                              max_monthly_spend=50000, require_approval_above=200,
                              allowed_actions=["order_captured", "comp_issued"])
    spent = agent.authorize("order_captured", 127.0, agent_id="voice-agent", currency="USD",
                            context={"table": 12}, reason="dinner")
    seen["execute"] = agent.execute(spent["authorization_id"], actual_amount=120.0, context={"tip": 5})["status"]
    seen["settle"] = agent.settle(spent["authorization_id"], context={"paid": True})["status"]
    seen["execute_bare"] = agent.execute(agent.authorize("comp_issued", 10)["authorization_id"])["status"]
    seen["reverse"] = agent.reverse(agent.authorize("comp_issued", 20)["authorization_id"])["status"]
    seen["pending"] = agent.authorize("order_captured", 340)["status"]
    seen["policy"] = policy["max_single_amount"]
    seen["delete"] = agent.delete_policy(policy["id"])["status"]
    print(json.dumps(seen))
    """
)


def test_the_published_0_2_0_client_does_every_write(live: LiveServer, venue: Venue, sdk_020: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SDK_020_WRITES, live.url, venue.admin_key, venue.id],
        env={"PYTHONPATH": str(sdk_020)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "log": "logged",
        "execute": "executed",
        "settle": "settled",
        "execute_bare": "executed",
        "reverse": "reversed",
        "pending": "pending",
        "policy": 500,
        "delete": "deleted",
    }
