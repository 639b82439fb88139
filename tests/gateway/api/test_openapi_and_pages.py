"""What the gateway documents and shows without a key: /openapi.json, /healthz, the verify links.

/openapi.json lists every route of wire protocol v1 (DESIGN §3) with its methods, body
fields, query parameters and the Idempotency-Key header of every write. The verify page
shows what happened (action, amount, agent, time, authorization status), hides the
context unless the venue made it public, escapes what callers wrote, and answers 404 for
an unknown event or an event under another venue. /v1/verify returns the event, its
canonical entry, and a leaf hash anyone can recompute from that entry.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

import agenitry
from agenitry.gateway import Principal
from support.venues import Venue, make_venue

OWN = "voice-agent"
SECRET = "table-12-allergy-note"

#: DESIGN §3, row by row: method, path, body fields, query parameters.
WIRE_V1: list[tuple[str, str, set[str], set[str]]] = [
    (
        "POST",
        "/v1/events",
        {"venue_id", "agent_id", "action", "amount", "currency", "direction", "context", "reason", "id"},
        set(),
    ),
    ("POST", "/v1/events/batch", {"events"}, set()),
    ("GET", "/v1/events/{}", set(), {"agent_id", "action", "context", "limit", "offset"}),
    ("GET", "/v1/events/{}/stats", set(), {"period"}),
    ("POST", "/v1/authorize", {"agent_id", "action", "amount", "currency", "context", "reason"}, set()),
    ("POST", "/v1/authorize/{}/claim", {"lease_seconds"}, set()),
    ("POST", "/v1/authorize/{}/execute", {"actual_amount", "context", "claim_token"}, set()),
    ("POST", "/v1/authorize/{}/settle", {"context"}, set()),
    ("POST", "/v1/authorize/{}/reverse", {"claim_token"}, set()),
    ("POST", "/v1/authorize/{}/approve", {"note"}, set()),
    ("POST", "/v1/authorize/{}/deny", {"reason"}, set()),
    ("GET", "/v1/authorize", set(), {"agent_id", "action", "status", "limit", "offset"}),
    ("GET", "/v1/authorize/{}", set(), set()),
    (
        "PUT",
        "/v1/policies",
        {
            "agent_id",
            "max_single_amount",
            "max_daily_spend",
            "max_monthly_spend",
            "require_approval_above",
            "allowed_actions",
        },
        set(),
    ),
    ("GET", "/v1/policies", set(), set()),
    ("DELETE", "/v1/policies/{}", set(), set()),
    ("GET", "/verify/{}/{}", set(), set()),
    ("GET", "/v1/verify/{}/{}", set(), set()),
]


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every documented operation by (method, path with its parameters written ``{}``)."""
    return {
        (method.upper(), re.sub(r"\{[^}]+\}", "{}", path)): operation
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    }


def body_fields(spec: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    # An optional body is documented as anyOf [the model, null].
    for choice in schema.get("anyOf", [schema]):
        if "$ref" in choice:
            name = choice["$ref"].rsplit("/", 1)[1]
            return set(spec["components"]["schemas"][name]["properties"])
    return set()


def parameters(operation: dict[str, Any], where: str) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == where}


def test_openapi_lists_every_route_of_wire_protocol_v1(http: httpx.Client) -> None:
    answer = http.get("/openapi.json")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    spec = answer.json()
    documented = operations(spec)
    missing = [(method, path) for method, path, _, _ in WIRE_V1 if (method, path) not in documented]
    assert missing == []
    for method, path, fields, query in WIRE_V1:
        operation = documented[(method, path)]
        assert body_fields(spec, operation) >= fields, f"{method} {path} body"
        assert parameters(operation, "query") >= query, f"{method} {path} query"
        headers = {name.lower() for name in parameters(operation, "header")}
        keyed = path.startswith("/v1/") and not path.startswith("/v1/verify/")
        assert ("authorization" in headers) == keyed, f"{method} {path} documents its key"
        if method in ("POST", "PUT", "DELETE"):
            assert "idempotency-key" in headers, f"{method} {path} takes Idempotency-Key"
    assert "201" in documented[("POST", "/v1/events")]["responses"]
    assert ("GET", "/healthz") in documented


def test_healthz_names_the_store(http: httpx.Client, store: str) -> None:
    answer = http.get("/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok", "database": store})


def log(http: httpx.Client, venue_key: str, **fields: Any) -> dict[str, Any]:
    answer = http.post("/v1/events", json=fields, headers={"Authorization": f"Bearer {venue_key}"})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def page(http: httpx.Client, venue_id: str, event_id: str) -> httpx.Response:
    answer = http.get(f"/verify/{venue_id}/{event_id}")
    assert answer.headers["content-type"].startswith("text/html")
    return answer


def test_the_verify_page_shows_what_happened_and_hides_the_context(http: httpx.Client, venue: Venue) -> None:
    logged = log(
        http,
        venue.admin_key,
        agent_id=OWN,
        action="order_captured",
        amount=42.5,
        reason="<script>alert('owned')</script>",
        context={"note": SECRET},
    )
    assert logged["verify_url"] == f"https://verify.example/verify/{venue.id}/{logged['id']}"
    shown = page(http, venue.id, logged["id"])
    assert shown.status_code == 200
    for fact in ("order_captured", "$42.50", OWN, logged["created_at"], logged["id"], "inbound"):
        assert fact in shown.text, fact
    assert SECRET not in shown.text
    assert "<script>alert" not in shown.text and "&lt;script&gt;" in shown.text


def test_the_verify_page_shows_the_authorization_status(http: httpx.Client, venue: Venue) -> None:
    venue.policy(max_single_amount=500)
    agent = {"Authorization": f"Bearer {venue.agent_key(OWN)}"}
    decision = http.post("/v1/authorize", json={"action": "comp_issued", "amount": 18}, headers=agent).json()
    authorization_id = decision["authorization_id"]
    executed = http.post(f"/v1/authorize/{authorization_id}/execute", json={"actual_amount": 17.25}, headers=agent)
    event_id = executed.json()["event_id"]
    shown = page(http, venue.id, event_id).text
    for fact in ("comp_issued", "$17.25", OWN, authorization_id, ">executed<"):
        assert fact in shown, fact
    http.post(f"/v1/authorize/{authorization_id}/settle", json={}, headers=agent)
    assert ">settled<" in page(http, venue.id, event_id).text


def test_a_venue_with_public_context_shows_it(http: httpx.Client, venue: Venue) -> None:
    gateway = venue.gateway
    public_id = f"v-public-{uuid.uuid4().hex[:12]}"
    gateway.create_venue(public_id, public_context=True)
    _, secret = gateway.create_key(Principal.operator(public_id), role="admin")
    shared = log(http, secret, action="item_86d", context={"note": SECRET})
    hidden = log(http, venue.admin_key, action="item_86d", context={"note": SECRET})
    assert SECRET in page(http, public_id, shared["id"]).text
    assert SECRET not in page(http, venue.id, hidden["id"]).text
    assert http.get(f"/v1/verify/{public_id}/{shared['id']}").json()["event"]["context"] == {"note": SECRET}
    assert http.get(f"/v1/verify/{venue.id}/{hidden['id']}").json()["event"]["context"] is None


def test_unknown_events_and_events_under_another_venue_answer_404(http: httpx.Client, venue: Venue) -> None:
    other = make_venue(venue.gateway)
    mine = log(http, venue.admin_key, action="item_86d")["id"]
    theirs = log(http, other.admin_key, action="item_86d")["id"]
    wrong = [
        (venue.id, "evt_0000000000000000000000000"),
        (venue.id, theirs),
        (other.id, mine),
        ("no-such-venue", mine),
    ]
    for venue_id, event_id in wrong:
        shown = page(http, venue_id, event_id)
        assert shown.status_code == 404, (venue_id, event_id)
        assert "No such record" in shown.text
        assert event_id not in shown.text
        data = http.get(f"/v1/verify/{venue_id}/{event_id}")
        assert (data.status_code, data.json()["code"]) == (404, "event_not_found")
        # An event of another venue looks exactly like one that never existed.
        assert data.json() == http.get(f"/v1/verify/{venue_id}/evt_0000000000000000000000000").json()


def test_v1_verify_returns_the_entry_its_leaf_hash_commits_to(http: httpx.Client, venue: Venue) -> None:
    logged = log(http, venue.admin_key, agent_id=OWN, action="order_captured", amount=42.5, context={"note": SECRET})
    answer = http.get(f"/v1/verify/{venue.id}/{logged['id']}")
    assert answer.status_code == 200
    proof = answer.json()
    entry = proof["entry"]
    assert proof["leaf_hash"] == agenitry.leaf_hash(agenitry.canonical_json(entry)).hex()
    assert proof["event"]["leaf_hash"] == proof["leaf_hash"]
    listed = http.get(f"/v1/events/{venue.id}", headers={"Authorization": f"Bearer {venue.admin_key}"}).json()
    assert [event["leaf_hash"] for event in listed["events"] if event["id"] == logged["id"]] == [proof["leaf_hash"]]
    assert entry["id"] == logged["id"] and entry["venue_id"] == venue.id
    assert entry["sequence"] == logged["sequence"] and entry["created_at"] == logged["created_at"]
    assert (entry["agent_id"], entry["action"], entry["amount"], entry["currency"]) == (
        OWN,
        "order_captured",
        "42.50",
        "USD",
    )
    assert entry["actor"] == venue.admin.key_id
    # The context is committed to by a salted digest, never written into the entry.
    assert SECRET not in agenitry.canonical_json(entry).decode()
    assert re.fullmatch(r"[0-9a-f]{64}", entry["context_digest"])
    bare = log(http, venue.admin_key, action="item_86d")
    assert http.get(f"/v1/verify/{venue.id}/{bare['id']}").json()["entry"]["context_digest"] is None
