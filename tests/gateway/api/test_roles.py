"""Tenant isolation and the role matrix, over every route the live app documents.

One table names each route of /openapi.json with what an admin key and an agent key get;
a route missing from the table fails the suite, so a new route cannot ship unchecked.
Without a valid key every keyed route answers 401 with the protocol's exact body; an
agent key gets 403 on admin routes and when acting for another agent, while
``agent_id: "default"`` (or none) means its own agent; another venue's objects answer
404 and reveal nothing. After every refused call, the venue's stored state is unchanged.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import httpx

from support.venues import Venue, make_venue

INVALID_KEY = {"error": "Invalid API key", "code": "invalid_api_key"}
OWN = "voice-agent"
OTHER = "other-agent"
#: A webhook URL nothing listens on (these tests run no deliverer: nothing is sent to it).
UNHEARD = "http://127.0.0.1:9/hook"


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    json: Optional[Any] = None


class Scene:
    """Objects of one venue to aim calls at, made through the real gateway in-process."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        # Approved up to 100, pending above: one policy gives every state a route needs.
        venue.policy(max_single_amount=10_000, require_approval_above=100)

    def approved(self, agent: str) -> str:
        return self._authorize(agent, 10, "approved")

    def pending(self, agent: str) -> str:
        return self._authorize(agent, 500, "pending")

    def executed(self, agent: str) -> str:
        authorization_id = self.approved(agent)
        self.venue.gateway.execute(self.venue.admin, authorization_id)
        return authorization_id

    def policy_id(self) -> str:
        return str(self.venue.policy(agent_id=f"scratch-{uuid.uuid4().hex[:8]}", max_single_amount=1)["id"])

    def key_id(self) -> str:
        record, _ = self.venue.gateway.create_key(self.venue.admin, role="agent", agent_id="spare-agent")
        return str(record["id"])

    def webhook_id(self) -> str:
        record, _ = self.venue.gateway.webhooks.add(self.venue.admin, UNHEARD, events=["authorization.pending"])
        return str(record["id"])

    def webhook_message(self) -> str:
        """A message of the venue's outbox: a pending authorization's, for a new endpoint."""
        webhook_id = self.webhook_id()
        self.pending(OWN)
        return str(self.venue.gateway.webhooks.deliveries(self.venue.admin, webhook_id)["deliveries"][0]["id"])

    def event_id(self, agent: str = OWN) -> str:
        fields = {"agent_id": agent, "action": "order_captured", "amount": 5}
        return str(self.venue.gateway.log_event(self.venue.admin, fields).body["id"])

    def _authorize(self, agent: str, amount: int, status: str) -> str:
        fields = {"agent_id": agent, "action": "order_captured", "amount": amount}
        decision = self.venue.gateway.authorize(self.venue.admin, fields).body
        assert decision["status"] == status
        return str(decision["authorization_id"])


@dataclass(frozen=True)
class Route:
    """One row of the matrix: what each role gets, and how to aim a call at a scene.

    ``agent`` is None on public routes; ``for_agent`` marks routes where an agent key
    could try to act for another agent; ``scoped`` marks routes that name a venue's
    object (in the path or the body), so another venue's key must get 404.
    """

    method: str
    path: str
    build: Callable[[Scene, str], Call]
    admin: int = 200
    agent: Optional[int] = 200
    for_agent: bool = False
    scoped: bool = False

    @property
    def public(self) -> bool:
        return self.agent is None


def _event(scene: Scene, agent: str) -> dict[str, Any]:
    return {"venue_id": scene.venue.id, "agent_id": agent, "action": "order_captured", "amount": 12.5}


ROUTES = [
    Route(
        "POST",
        "/v1/events",
        lambda s, a: Call("POST", "/v1/events", _event(s, a)),
        admin=201,
        agent=201,
        for_agent=True,
        scoped=True,
    ),
    Route(
        "POST",
        "/v1/events/batch",
        lambda s, a: Call("POST", "/v1/events/batch", {"events": [_event(s, a)]}),
        for_agent=True,
        scoped=True,
    ),
    Route("GET", "/v1/events/{venue_id}", lambda s, a: Call("GET", f"/v1/events/{s.venue.id}"), scoped=True),
    Route(
        "GET", "/v1/events/{venue_id}/stats", lambda s, a: Call("GET", f"/v1/events/{s.venue.id}/stats"), scoped=True
    ),
    Route(
        "POST",
        "/v1/authorize",
        lambda s, a: Call("POST", "/v1/authorize", {"agent_id": a, "action": "order_captured", "amount": 20}),
        for_agent=True,
    ),
    Route("GET", "/v1/authorize", lambda s, a: Call("GET", "/v1/authorize")),
    Route(
        "POST",
        "/v1/authorize/{authorization_id}/claim",
        lambda s, a: Call("POST", f"/v1/authorize/{s.approved(a)}/claim", {"lease_seconds": 30}),
        for_agent=True,
        scoped=True,
    ),
    Route(
        "POST",
        "/v1/authorize/{authorization_id}/execute",
        lambda s, a: Call("POST", f"/v1/authorize/{s.approved(a)}/execute", {"actual_amount": 8}),
        for_agent=True,
        scoped=True,
    ),
    Route(
        "POST",
        "/v1/authorize/{authorization_id}/settle",
        lambda s, a: Call("POST", f"/v1/authorize/{s.executed(a)}/settle", {}),
        for_agent=True,
        scoped=True,
    ),
    Route(
        "POST",
        "/v1/authorize/{authorization_id}/reverse",
        lambda s, a: Call("POST", f"/v1/authorize/{s.approved(a)}/reverse"),
        for_agent=True,
        scoped=True,
    ),
    Route(
        "POST",
        "/v1/authorize/{authorization_id}/approve",
        lambda s, a: Call("POST", f"/v1/authorize/{s.pending(a)}/approve", {"note": "ok"}),
        agent=403,
        scoped=True,
    ),
    Route(
        "POST",
        "/v1/authorize/{authorization_id}/deny",
        lambda s, a: Call("POST", f"/v1/authorize/{s.pending(a)}/deny", {"reason": "no"}),
        agent=403,
        scoped=True,
    ),
    Route(
        "GET",
        "/v1/authorize/{authorization_id}",
        lambda s, a: Call("GET", f"/v1/authorize/{s.approved(a)}"),
        scoped=True,
    ),
    Route(
        "PUT",
        "/v1/policies",
        lambda s, a: Call("PUT", "/v1/policies", {"agent_id": a, "max_single_amount": 1_000_000}),
        agent=403,
    ),
    Route("GET", "/v1/policies", lambda s, a: Call("GET", "/v1/policies")),
    Route(
        "DELETE",
        "/v1/policies/{policy_id}",
        lambda s, a: Call("DELETE", f"/v1/policies/{s.policy_id()}"),
        agent=403,
        scoped=True,
    ),
    Route(
        "POST",
        "/v1/keys",
        lambda s, a: Call("POST", "/v1/keys", {"role": "agent", "agent_id": a}),
        admin=201,
        agent=403,
    ),
    Route("GET", "/v1/keys", lambda s, a: Call("GET", "/v1/keys"), agent=403),
    Route(
        "DELETE",
        "/v1/keys/{key_id}",
        lambda s, a: Call("DELETE", f"/v1/keys/{s.key_id()}"),
        agent=403,
        scoped=True,
    ),
    Route(
        "POST",
        "/v1/webhooks",
        lambda s, a: Call("POST", "/v1/webhooks", {"url": UNHEARD}),
        admin=201,
        agent=403,
    ),
    Route("GET", "/v1/webhooks", lambda s, a: Call("GET", "/v1/webhooks"), agent=403),
    Route(
        "DELETE",
        "/v1/webhooks/{webhook_id}",
        lambda s, a: Call("DELETE", f"/v1/webhooks/{s.webhook_id()}"),
        agent=403,
        scoped=True,
    ),
    Route(
        "GET",
        "/v1/webhooks/{webhook_id}/deliveries",
        lambda s, a: Call("GET", f"/v1/webhooks/{s.webhook_id()}/deliveries"),
        agent=403,
        scoped=True,
    ),
    Route(
        "POST",
        "/v1/webhooks/messages/{message_id}/retry",
        lambda s, a: Call("POST", f"/v1/webhooks/messages/{s.webhook_message()}/retry"),
        agent=403,
        scoped=True,
    ),
    Route(
        "GET",
        "/v1/verify/{venue_id}/{event_id}",
        lambda s, a: Call("GET", f"/v1/verify/{s.venue.id}/{s.event_id(a)}"),
        agent=None,
    ),
    Route(
        "GET",
        "/verify/{venue_id}/{event_id}",
        lambda s, a: Call("GET", f"/verify/{s.venue.id}/{s.event_id(a)}"),
        agent=None,
    ),
    Route(
        "GET",
        "/v1/verify/{venue_id}/{event_id}/tlog-proof",
        lambda s, a: Call("GET", f"/v1/verify/{s.venue.id}/{s.event_id(a)}/tlog-proof"),
        agent=None,
    ),
    Route(
        "GET", "/v1/log/{venue_id}/checkpoint", lambda s, a: Call("GET", f"/v1/log/{s.venue.id}/checkpoint"), agent=None
    ),
    Route(
        "GET",
        "/v1/log/{venue_id}/consistency",
        lambda s, a: Call("GET", f"/v1/log/{s.venue.id}/consistency?first=1&second=2"),
        agent=None,
    ),
    Route("GET", "/v1/log/public-key", lambda s, a: Call("GET", "/v1/log/public-key"), agent=None),
    Route("GET", "/healthz", lambda s, a: Call("GET", "/healthz"), agent=None),
    Route("GET", "/agenitry-verify.py", lambda s, a: Call("GET", "/agenitry-verify.py"), agent=None),
]
KEYED = [route for route in ROUTES if not route.public]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def send(http: httpx.Client, call: Call, headers: dict[str, str]) -> httpx.Response:
    return http.request(call.method, call.url, json=call.json, headers=headers)


def snapshot(venue: Venue) -> dict[str, Any]:
    """What the venue's admin sees of its stored state; any write changes it.

    Every change to a policy or a key appends an event, so the log's length and head
    and the authorizations cover all of it. Read through the gateway in-process: the
    same store the server writes, without HTTP round trips after every refused call.
    """
    gateway, admin = venue.gateway, venue.admin
    events = gateway.list_events(admin, venue.id, limit=1)
    authorizations = gateway.list_authorizations(admin, limit=200)
    assert authorizations["has_more"] is False
    return {
        "events": (events["total"], [event["id"] for event in events["events"]]),
        "authorizations": [
            (a["id"], a["status"], a["held_amount"], a["actual_amount"]) for a in authorizations["authorizations"]
        ],
    }


def describe(route: Route, response: httpx.Response) -> str:
    return f"{route.method} {route.path} answered {response.status_code} {response.text[:300]}"


def test_the_table_covers_every_documented_route(http: httpx.Client) -> None:
    documented = {
        (method.upper(), path)
        for path, operations in http.get("/openapi.json").json()["paths"].items()
        for method in operations
    }
    table = {(route.method, route.path) for route in ROUTES}
    assert len(table) == len(ROUTES), "a route is in the table twice"
    assert documented - table == set(), "routes with no row in the role matrix"
    assert table - documented == set(), "rows for routes the app no longer has"


def revoked_keys(venue: Venue) -> tuple[str, str]:
    """Secrets of an admin key and an agent key of the venue, both revoked."""
    gateway = venue.gateway
    admin, admin_secret = gateway.create_key(venue.admin, role="admin")
    agent, agent_secret = gateway.create_key(venue.admin, role="agent", agent_id=OWN)
    gateway.revoke_key(venue.admin, admin["id"])
    gateway.revoke_key(venue.admin, agent["id"])
    return admin_secret, agent_secret


def assert_refused_401(http: httpx.Client, venue: Venue, route: Route, call: Call, refused: dict[str, Any]) -> None:
    before = snapshot(venue)
    for name, headers in refused.items():
        response = send(http, call, headers)
        assert (response.status_code, response.json()) == (401, INVALID_KEY), f"{name}: {describe(route, response)}"
        assert snapshot(venue) == before, f"{name}: {route.method} {route.path} changed state"
    # The same call with the admin key goes through: the 401 was the key's doing alone.
    assert send(http, call, bearer(venue.admin_key)).status_code == route.admin


def test_every_keyed_route_answers_401_without_a_valid_key(http: httpx.Client, venue: Venue) -> None:
    revoked_admin, _ = revoked_keys(venue)
    refused = {
        "no header": {},
        "malformed header": {"Authorization": f"Basic {venue.admin_key}"},
        "unknown key": bearer("ag_" + secrets.token_urlsafe(32)),
        "revoked key": bearer(revoked_admin),
    }
    scene = Scene(venue)
    for route in KEYED:
        assert_refused_401(http, venue, route, route.build(scene, OWN), refused)


def test_every_malformed_or_dead_key_answers_the_same_401(http: httpx.Client, venue: Venue) -> None:
    revoked_admin, revoked_agent = revoked_keys(venue)
    refused = {
        "no scheme": {"Authorization": venue.admin_key},
        "lower-case scheme, no key": {"Authorization": "bearer"},
        "empty bearer": {"Authorization": "Bearer"},
        "not a key": {"Authorization": "Bearer not-an-agenitry-key"},
        "two keys": {"Authorization": f"Bearer {venue.admin_key} {venue.admin_key}"},
        "key with a tail": bearer(venue.admin_key + "x"),
        "key cut short": bearer(venue.admin_key[:-1]),
        "huge key": bearer("ag_" + "a" * 10_000),
        "revoked admin key": bearer(revoked_admin),
        "revoked agent key": bearer(revoked_agent),
    }
    scene = Scene(venue)
    # One route an agent may call, one only an admin may.
    for path in ("/v1/authorize", "/v1/authorize/{authorization_id}/approve"):
        [route] = [route for route in ROUTES if route.path == path and route.method == "POST"]
        assert_refused_401(http, venue, route, route.build(scene, OWN), refused)


def test_each_role_gets_what_its_row_says(http: httpx.Client, venue: Venue) -> None:
    scene = Scene(venue)
    for route in KEYED:
        response = send(http, route.build(scene, OWN), bearer(venue.admin_key))
        assert response.status_code == route.admin, describe(route, response)
    for route in KEYED:
        call = route.build(scene, OWN)
        before = snapshot(venue)
        response = send(http, call, bearer(venue.agent_key(OWN)))
        assert response.status_code == route.agent, describe(route, response)
        if route.agent == 403:
            assert response.json()["code"] == "admin_required", describe(route, response)
            assert response.json()["error"].startswith("Only an admin key can")
            assert snapshot(venue) == before, f"{route.method} {route.path} changed state"


def test_an_agent_key_never_acts_for_another_agent(http: httpx.Client, venue: Venue) -> None:
    scene = Scene(venue)
    own_key = bearer(venue.agent_key(OWN))
    venue.agent_key(OTHER)
    aimed = [route for route in KEYED if route.for_agent]
    assert {route.path for route in aimed} >= {
        "/v1/authorize",
        "/v1/events",
        "/v1/authorize/{authorization_id}/execute",
    }
    for route in aimed:
        call = route.build(scene, OTHER)
        before = snapshot(venue)
        response = send(http, call, own_key)
        assert response.status_code == 403, describe(route, response)
        assert response.json()["code"] == "agent_mismatch", describe(route, response)
        assert snapshot(venue) == before, f"{route.method} {route.path} changed state"


def test_a_batch_with_one_event_of_another_agent_stores_nothing(http: httpx.Client, venue: Venue) -> None:
    mine = {"agent_id": OWN, "action": "order_captured", "amount": 1}
    auth = bearer(venue.agent_key(OWN))
    before = snapshot(venue)
    response = http.post("/v1/events/batch", json={"events": [mine, {**mine, "agent_id": OTHER}]}, headers=auth)
    assert (response.status_code, response.json()["code"]) == (403, "agent_mismatch")
    assert snapshot(venue) == before


def test_default_or_no_agent_id_means_the_keys_own_agent(http: httpx.Client, venue: Venue) -> None:
    venue.policy(max_single_amount=100)
    auth = bearer(venue.agent_key(OWN))
    for named in ({"agent_id": "default"}, {}):
        decision = http.post("/v1/authorize", json={**named, "action": "order_captured", "amount": 10}, headers=auth)
        assert decision.status_code == 200 and decision.json()["approved"] is True
        record = http.get(f"/v1/authorize/{decision.json()['authorization_id']}", headers=auth).json()
        assert record["agent_id"] == OWN
        logged = http.post("/v1/events", json={**named, "action": "comp_issued", "amount": 3}, headers=auth)
        batch = http.post("/v1/events/batch", json={"events": [{**named, "action": "item_86d"}]}, headers=auth)
        assert (logged.status_code, batch.status_code) == (201, 200)
        listed = http.get(f"/v1/events/{venue.id}", params={"agent_id": OWN}, headers=auth).json()
        stored = {event["id"]: event["agent_id"] for event in listed["events"]}
        assert stored[logged.json()["id"]] == OWN
        assert stored[batch.json()["ids"][0]] == OWN
    assert http.get(f"/v1/events/{venue.id}", params={"agent_id": "default"}, headers=auth).json()["total"] == 0


def test_another_venues_objects_answer_404_and_reveal_nothing(http: httpx.Client, venue: Venue) -> None:
    other = make_venue(venue.gateway)
    theirs = Scene(other)
    private_agent = "b-private-agent"
    for secret, role in ((venue.admin_key, "admin"), (venue.agent_key(OWN), "agent")):
        for route in (route for route in KEYED if route.scoped):
            # An agent key is refused an admin route before any object is looked up.
            expected = 403 if role == "agent" and route.agent == 403 else 404
            call = route.build(theirs, private_agent)
            mine_before, theirs_before = snapshot(venue), snapshot(other)
            response = send(http, call, bearer(secret))
            assert response.status_code == expected, describe(route, response)
            assert set(response.json()) == {"error", "code"}, describe(route, response)
            assert private_agent not in response.text, describe(route, response)
            # Another venue's object must look exactly like one that never existed.
            real_id = target_of(call, other)
            made_up = send(http, renamed(call, real_id), bearer(secret))
            assert made_up.status_code == expected
            assert made_up.json() == json.loads(response.text.replace(real_id, made_up_id(real_id))), describe(
                route, made_up
            )
            assert snapshot(other) == theirs_before, f"{route.method} {route.path} changed the other venue"
            assert snapshot(venue) == mine_before, f"{route.method} {route.path} changed the caller's venue"


def target_of(call: Call, venue: Venue) -> str:
    """The id of the other venue's object a call aims at: its venue, or the id in its path."""
    if venue.id in call.url or venue.id in json.dumps(call.json):
        return venue.id
    return next(part for part in call.url.split("/")[2:] if "_" in part)


def made_up_id(real_id: str) -> str:
    return real_id[:-4] + "zzzz"


def renamed(call: Call, real_id: str) -> Call:
    """The same call aimed at an id of the same shape that was never made."""
    made_up = made_up_id(real_id)
    body = None if call.json is None else json.loads(json.dumps(call.json).replace(real_id, made_up))
    return Call(call.method, call.url.replace(real_id, made_up), body)


def test_lists_show_only_the_keys_own_venue(http: httpx.Client, venue: Venue) -> None:
    other = make_venue(venue.gateway)
    theirs = Scene(other)
    their_ids = {theirs.approved(OWN), theirs.pending(OWN), theirs.policy_id(), theirs.key_id(), theirs.event_id()}
    their_ids.add(theirs.webhook_id())
    Scene(venue).approved(OWN)
    auth = bearer(venue.admin_key)
    answers = [
        http.get("/v1/authorize", headers=auth),
        http.get("/v1/policies", headers=auth),
        http.get("/v1/keys", headers=auth),
        http.get(f"/v1/events/{venue.id}", params={"limit": 200}, headers=auth),
        http.get(f"/v1/events/{venue.id}/stats", params={"period": "all"}, headers=auth),
        http.get("/v1/webhooks", headers=auth),
    ]
    for answer in answers:
        assert answer.status_code == 200
        assert answer.json()["venue_id"] == venue.id
        assert not [found for found in their_ids if found in answer.text], answer.text[:300]
        assert other.id not in answer.text
    assert answers[0].json()["total"] == 1


def test_a_key_revoked_over_http_stops_working_at_once(http: httpx.Client, venue: Venue) -> None:
    venue.policy(max_single_amount=100)
    admin = bearer(venue.admin_key)
    created = http.post("/v1/keys", json={"role": "agent", "agent_id": OWN, "name": "till 3"}, headers=admin)
    assert created.status_code == 201
    new_key = bearer(created.json()["key"])
    request = {"agent_id": OWN, "action": "order_captured", "amount": 5}
    assert http.post("/v1/authorize", json=request, headers=new_key).status_code == 200
    assert http.delete(f"/v1/keys/{created.json()['id']}", headers=admin).json()["revoked_at"] is not None
    before = snapshot(venue)
    refused = http.post("/v1/authorize", json=request, headers=new_key)
    assert (refused.status_code, refused.json()) == (401, INVALID_KEY)
    assert snapshot(venue) == before


def test_public_routes_need_no_key(http: httpx.Client, venue: Venue) -> None:
    scene = Scene(venue)
    for route in (route for route in ROUTES if route.public):
        response = send(http, route.build(scene, OWN), {})
        assert response.status_code == 200, describe(route, response)
    assert http.get("/openapi.json").status_code == 200
