"""Bad input gets a clear error, and nothing changes (issue 2), through a real server.

Every kind of bad input the issue names: amounts that are negative, not finite, huge or
over-precise; unknown currencies; action names outside the pattern or reserved; strings
or booleans where numbers belong; missing fields; oversized bodies and contexts;
malformed JSON; bad query parameters; ids of another venue; invalid transitions; execute
after expiry; an actual amount above the authorization; a reused Idempotency-Key; odd
Unicode. Each answers its status with a machine ``code`` and a readable ``error``, never
a 500, and leaves the stored state of both venues exactly as it was. Values just inside
each limit are accepted, so the refusals are the limits' doing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

import httpx
import pytest

from agenitry.gateway import ManualClock
from agenitry.gateway._clock import DAY, iso
from support.venues import Venue, make_venue

OWN = "voice-agent"
REQUEST = {"agent_id": OWN, "action": "order_captured", "amount": 10}
MIB = 1_048_576
_UNSET: Any = object()


@dataclass(frozen=True)
class Bad:
    """One bad request and the refusal it must get.

    ``body`` is a Python value sent as JSON (NaN and Infinity written as the bare words,
    lone surrogates as ``\\ud800`` escapes), or bytes sent as they are. ``path`` may name
    objects of the scene: {venue}, {approved}, {pending}, ..., {their_approved}, ...
    """

    name: str
    body: Any = _UNSET
    status: int = 422
    code: str = "validation_error"
    mentions: str = ""
    method: str = "POST"
    path: str = "/v1/authorize"
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def authorize(**changes: Any) -> dict[str, Any]:
    """The quick-start request with some fields changed (``_UNSET`` drops one)."""
    body = {**REQUEST, **changes}
    return {name: value for name, value in body.items() if value is not _UNSET}


def nested(levels: int) -> dict[str, Any]:
    """A context that is ``levels`` objects deep."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"next": value}
    return value


def nested_lists(levels: int) -> list[Any]:
    """A list ``levels`` lists deep."""
    value: list[Any] = [1]
    for _ in range(levels - 1):
        value = [value]
    return value


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


class Scene:
    """A venue with an authorization in every status, and another venue with its own objects."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.theirs = make_venue(venue.gateway)
        #: Venues besides ours whose state the refused requests must leave alone.
        self.watched: list[Venue] = []
        gateway, admin = venue.gateway, venue.admin
        for owner in (venue, self.theirs):
            owner.policy(max_single_amount=1000, require_approval_above=100)
        self.ids = {"venue": venue.id, "their_venue": self.theirs.id}
        for status in ("approved", "pending", "executed", "settled", "denied", "reversed"):
            self.ids[status] = self.authorization(500 if status in ("pending", "denied") else 10)
        gateway.execute(admin, self.ids["executed"])
        gateway.execute(admin, self.ids["settled"])
        gateway.settle(admin, self.ids["settled"])
        gateway.deny(admin, self.ids["denied"])
        gateway.reverse(admin, self.ids["reversed"])
        their_fields = {**REQUEST, "agent_id": "their-agent"}
        self.ids["their_approved"] = gateway.authorize(self.theirs.admin, their_fields).body["authorization_id"]
        self.ids["their_policy"] = self.theirs.policy(agent_id="their-agent", max_single_amount=5)["id"]
        self.ids["their_key"] = gateway.create_key(self.theirs.admin, role="agent", agent_id="their-agent")[0]["id"]

    def authorization(self, amount: float, agent: str = OWN) -> str:
        fields = {"agent_id": agent, "action": "order_captured", "amount": amount}
        return str(self.venue.gateway.authorize(self.venue.admin, fields).body["authorization_id"])

    def state(self) -> list[dict[str, Any]]:
        return [snapshot(venue) for venue in (self.venue, *self.watched)]


@pytest.fixture
def scene(venue: Venue) -> Scene:
    return Scene(venue)


def send(http: httpx.Client, secret: str, case: Bad, ids: dict[str, str]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {secret}", **case.headers}
    content: Optional[bytes] = None
    if case.body is not _UNSET:
        content = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
        headers.setdefault("Content-Type", "application/json")
    url = case.path.format(**ids)
    return http.request(case.method, url, content=content, params=case.params, headers=headers)


def assert_refused(http: httpx.Client, scene: Scene, cases: list[Bad], subtests: Any, secret: str = "") -> None:
    """Each case gets its status, code and sentence, and changes nothing in any venue watched."""
    latest = scene.state()
    for case in cases:
        with subtests.test(msg=case.name):
            response = send(http, secret or scene.venue.admin_key, case, scene.ids)
            # The next case compares with this one's outcome, so a change is blamed once.
            before, latest = latest, scene.state()
            assert response.status_code != 500, response.text
            assert response.status_code == case.status, response.text[:300]
            body = response.json()
            assert body["code"] == case.code, body
            assert isinstance(body["error"], str) and len(body["error"]) > 10, body
            assert case.mentions in body["error"], body
            for name, value in case.extra.items():
                assert body[name] == value, body
            assert latest == before, "the refused request changed stored state"


def test_bad_amounts(http: httpx.Client, scene: Scene, subtests: Any) -> None:
    def amount(name: str, value: Any, code: str = "invalid_amount") -> Bad:
        return Bad(name, authorize(amount=value), code=code, mentions="amount")

    cases = [
        amount("negative", -1),
        amount("a negative cent", -0.01),
        amount("NaN", float("nan")),
        amount("Infinity", float("inf")),
        amount("-Infinity", float("-inf")),
        Bad("1e400 overflows to infinity", b'{"action": "order_captured", "amount": 1e400}', code="invalid_amount"),
        amount("a cent above 10^12", 1_000_000_000_000.01),
        amount("10^13", 10**13),
        amount("a 400-digit integer", 10**400),
        amount("a tenth of a cent", 1.001),
        amount("float noise", 0.1 + 0.2),
        amount("1e-300", 1e-300),
        Bad("1.5 JPY in a USD venue", authorize(amount=1.5, currency="JPY"), code="invalid_amount", mentions="JPY"),
        Bad("1.0001 KWD", authorize(amount=1.0001, currency="KWD"), code="invalid_amount"),
        amount("a string", "12", code="validation_error"),
        amount("an empty string", "", code="validation_error"),
        amount("true", True, code="validation_error"),
        amount("false", False, code="validation_error"),
        amount("null", None, code="validation_error"),
        amount("a list", [12], code="validation_error"),
        amount("an object", {"value": 12}, code="validation_error"),
    ]
    execute = "/v1/authorize/{approved}/execute"
    cases += [
        Bad(f"actual_amount {name}", {"actual_amount": value}, code=code, mentions="actual_amount", path=execute)
        for name, value, code in [
            ("negative", -1, "invalid_amount"),
            ("NaN", float("nan"), "invalid_amount"),
            ("over-precise", 9.999, "invalid_amount"),
            ("huge", 1e13, "invalid_amount"),
            ("a string", "5", "validation_error"),
            ("true", True, "validation_error"),
        ]
    ]
    cases += [
        Bad(f"policy {name}", {name: value}, code=code, mentions=name, method="PUT", path="/v1/policies")
        for name, value, code in [
            ("max_single_amount", -5, "invalid_amount"),
            ("max_single_amount", "500", "validation_error"),
            ("max_daily_spend", 1.001, "invalid_amount"),
            ("max_monthly_spend", float("inf"), "invalid_amount"),
            ("require_approval_above", 10**13, "invalid_amount"),
            ("require_approval_above", True, "validation_error"),
        ]
    ]
    cases += [
        Bad("event amount negative", {"action": "comp_issued", "amount": -3}, code="invalid_amount", path="/v1/events"),
        Bad("event amount a string", {"action": "comp_issued", "amount": "3"}, path="/v1/events"),
        Bad(
            "one bad amount in a batch",
            {"events": [{"action": "comp_issued", "amount": 3}, {"action": "comp_issued", "amount": float("nan")}]},
            code="invalid_amount",
            mentions="events[1]",
            path="/v1/events/batch",
            extra={"index": 1},
        ),
    ]
    assert_refused(http, scene, cases, subtests)


def test_amounts_of_a_zero_decimal_currency(http: httpx.Client, scene: Scene, subtests: Any) -> None:
    yen = make_venue(scene.venue.gateway, currency="JPY")
    yen.policy(max_single_amount=100_000)
    scene.watched.append(yen)
    cases = [
        Bad("1.5 JPY", authorize(amount=1.5), code="invalid_amount", mentions="JPY"),
        Bad("0.5 JPY", authorize(amount=0.5), code="invalid_amount", mentions="JPY"),
        Bad(
            "a policy limit of 99.9 JPY",
            {"max_single_amount": 99.9},
            code="invalid_amount",
            method="PUT",
            path="/v1/policies",
        ),
    ]
    assert_refused(http, scene, cases, subtests, secret=yen.admin_key)
    accepted = http.post(
        "/v1/authorize", json=authorize(amount=1500), headers={"Authorization": f"Bearer {yen.admin_key}"}
    )
    assert accepted.status_code == 200 and accepted.json()["approved"] is True


def test_bad_names_and_strings(http: httpx.Client, scene: Scene, subtests: Any) -> None:
    pattern = "lower-case name"
    cases = [
        Bad("unknown currency", authorize(currency="XYZ"), code="invalid_currency", mentions="XYZ"),
        Bad("two-letter currency", authorize(currency="US"), code="invalid_currency"),
        Bad("currency symbol", authorize(currency="€"), code="invalid_currency"),
        Bad("numeric currency", authorize(currency=840)),
        *[
            Bad(f"action {name!r}", authorize(action=name), code="invalid_action", mentions=pattern)
            for name in [
                "Order_Captured",
                "1st_order",
                "",
                "a" * 65,
                "order captured",
                "ordér",
                "-order",
                "order_captured\n",
                "order/captured",
            ]
        ],
        *[
            Bad(f"reserved action {name}", authorize(action=name), code="reserved_action", mentions="authorization.")
            for name in ("authorization.approved", "authorization.x", "policy.updated", "key.created")
        ],
        Bad(
            "reserved action in an event",
            {"action": "authorization.settled"},
            code="reserved_action",
            path="/v1/events",
        ),
        Bad("numeric action", authorize(action=12)),
        *[
            Bad(f"agent_id {name!r}", authorize(agent_id=name), code="invalid_agent_id", mentions="agent_id")
            for name in ["voice agent", "a" * 129, "voice-agent\n", "ägent", "-agent"]
        ],
        Bad("numeric agent_id", authorize(agent_id=42)),
        Bad("reason too long", authorize(reason="x" * 2001), code="invalid_field", mentions="reason"),
        Bad("numeric reason", authorize(reason=12)),
        Bad("context a list", authorize(context=[1, 2])),
        Bad("context a string", authorize(context="table 12")),
        Bad("context a number", authorize(context=5)),
        Bad("context with NaN", authorize(context={"tip": float("nan")}), code="invalid_context"),
        Bad(
            "direction", {"action": "comp_issued", "direction": "sideways"}, code="invalid_direction", path="/v1/events"
        ),
        *[
            Bad(f"event id {name!r}", {"action": "comp_issued", "id": name}, code="invalid_event_id", path="/v1/events")
            for name in [
                "evt_short",
                "evt_" + "a" * 65,
                "not_evt_aaaaaaaaaaaaaaaa",
                "evt_aaaaaaaaaaaaaaaa\n",
                "evt_aaaa aaaaaaaaaaaaa",
            ]
        ],
        Bad("numeric event id", {"action": "comp_issued", "id": 7}, path="/v1/events"),
        Bad("policy agent_id", {"agent_id": "bad agent"}, code="invalid_agent_id", method="PUT", path="/v1/policies"),
        Bad("allowed_actions a string", {"allowed_actions": "order_captured"}, method="PUT", path="/v1/policies"),
        Bad(
            "allowed_actions with a bad name",
            {"allowed_actions": ["order_captured", "Bad Name"]},
            code="invalid_action",
            mentions="allowed_actions",
            method="PUT",
            path="/v1/policies",
        ),
        Bad(
            "101 allowed_actions",
            {"allowed_actions": [f"action_{n}" for n in range(101)]},
            code="invalid_action",
            method="PUT",
            path="/v1/policies",
        ),
        Bad("key of no role", {"role": "owner", "agent_id": OWN}, path="/v1/keys"),
        Bad(
            "admin key bound to an agent", {"role": "admin", "agent_id": OWN}, code="invalid_agent_id", path="/v1/keys"
        ),
        Bad("approve note a number", {"note": 5}, path="/v1/authorize/{pending}/approve"),
        Bad("deny reason too long", {"reason": "x" * 2001}, code="invalid_field", path="/v1/authorize/{pending}/deny"),
    ]
    assert_refused(http, scene, cases, subtests)


def test_bad_occurred_at(http: httpx.Client, scene: Scene, clock: ManualClock, subtests: Any) -> None:
    def event(occurred_at: Any) -> dict[str, Any]:
        return {"action": "comp_issued", "occurred_at": occurred_at}

    late = iso(clock() + DAY + 1)
    cases = [
        *[
            Bad(f"occurred_at {text!r}", event(text), code="invalid_occurred_at", mentions="such as", path="/v1/events")
            for text in [
                "2026-12-02T07:05:00Z",
                "2026-12-02T07:05:00.123456Z",
                "2026-12-02T07:05:00.123+00:00",
                "2026-12-02 07:05:00.123Z",
                "2026-02-30T07:05:00.123Z",
                "2026-12-02T24:00:00.000Z",
                "\uff12\uff10\uff12\uff16-12-02T07:05:00.123Z",  # full-width digits
                "",
            ]
        ],
        Bad("occurred_at a number", event(1_796_195_100_123), mentions="occurred_at", path="/v1/events"),
        Bad(
            "occurred_at ahead of the gateway",
            event(late),
            code="invalid_occurred_at",
            mentions="more than a day",
            path="/v1/events",
        ),
        Bad(
            "occurred_at before 2000", event("1999-12-31T23:59:59.999Z"), code="invalid_occurred_at", path="/v1/events"
        ),
        Bad(
            "occurred_at ahead in a batch",
            {"events": [event(iso(clock())), event(late)]},
            code="invalid_occurred_at",
            mentions="events[1]",
            path="/v1/events/batch",
            extra={"index": 1},
        ),
    ]
    assert_refused(http, scene, cases, subtests)
    auth = {"Authorization": f"Bearer {scene.venue.admin_key}"}
    for at_the_limit in (iso(clock() + DAY), "2000-01-01T00:00:00.000Z"):
        logged = http.post("/v1/events", json=event(at_the_limit), headers=auth)
        assert logged.status_code == 201, logged.text
        [stored] = scene.venue.gateway.list_events(scene.venue.admin, scene.venue.id, limit=1)["events"]
        assert (stored["id"], stored["occurred_at"]) == (logged.json()["id"], at_the_limit)


def test_missing_fields(http: httpx.Client, scene: Scene, subtests: Any) -> None:
    cases = [
        Bad("empty object", {}, mentions="action"),
        Bad("no action", authorize(action=_UNSET), mentions="action"),
        Bad("no amount", authorize(amount=_UNSET), mentions="amount"),
        Bad("no body at all", mentions="body"),
        Bad("JSON null", None),
        Bad("a JSON list", [REQUEST]),
        Bad("a JSON string", "order_captured"),
        Bad("event without action", {"amount": 3}, mentions="action", path="/v1/events"),
        Bad("batch without events", {}, mentions="events", path="/v1/events/batch"),
        Bad("empty batch", {"events": []}, mentions="events", path="/v1/events/batch"),
        Bad("1,001 events", {"events": [{"action": "item_86d"}] * 1001}, mentions="events", path="/v1/events/batch"),
        Bad("key without role", {"agent_id": OWN}, mentions="role", path="/v1/keys"),
        Bad("agent key without agent_id", {"role": "agent"}, code="invalid_agent_id", path="/v1/keys"),
        Bad("JSON sent as text/plain", authorize(), headers={"Content-Type": "text/plain"}),
    ]
    assert_refused(http, scene, cases, subtests)


def test_malformed_json(http: httpx.Client, scene: Scene, subtests: Any) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    raw = {
        "cut short": b'{"agent_id": "voice-agent", "amount":',
        "single quotes": b"{'action': 'order_captured', 'amount': 1}",
        "trailing comma": b'{"action": "order_captured", "amount": 1,}',
        "unquoted keys": b"{action: 1}",
        "trailing garbage": b'{"action": "order_captured", "amount": 1} x',
        "not UTF-8": b'{"action": "order_\xff\xfe", "amount": 1}',
        "100k-deep context": b'{"action": "order_captured", "amount": 1, "context": {"a": ' + deep + b"}}",
        "100k-deep body": deep,
        "misspelled NaN": b'{"action": "order_captured", "amount": Nan}',
    }
    cases = [Bad(name, body, status=400, code="invalid_json") for name, body in raw.items()]
    cases += [
        Bad(f"{path}: cut short", b'{"x":', status=400, code="invalid_json", method=method, path=path)
        for method, path in [
            ("POST", "/v1/events"),
            ("POST", "/v1/events/batch"),
            ("POST", "/v1/authorize/{approved}/execute"),
            ("POST", "/v1/authorize/{executed}/settle"),
            ("POST", "/v1/authorize/{pending}/approve"),
            ("POST", "/v1/authorize/{pending}/deny"),
            ("PUT", "/v1/policies"),
            ("POST", "/v1/keys"),
        ]
    ]
    assert_refused(http, scene, cases, subtests)


def test_oversized_bodies_and_contexts(http: httpx.Client, scene: Scene, subtests: Any) -> None:
    too_big = json.dumps({**REQUEST, "reason": "x" * MIB}).encode()

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the limit must hold while the body streams in.
        yield too_big[:100]
        for start in range(100, len(too_big), 65_536):
            yield too_big[start : start + 65_536]

    cases = [
        Bad("over 1 MiB with Content-Length", too_big, status=413, code="payload_too_large"),
        Bad(
            "a batch over 1 MiB",
            {"events": [{"action": "item_86d", "reason": "x" * 1500}] * 1000},
            status=413,
            code="payload_too_large",
            path="/v1/events/batch",
        ),
        Bad("context over 16 KiB", authorize(context={"blob": "x" * 16_500}), code="invalid_context", mentions="16384"),
        Bad("context 17 levels deep", authorize(context=nested(17)), code="invalid_context", mentions="16 levels"),
        Bad("context 17 levels in a list", authorize(context={"a": nested_lists(16)}), code="invalid_context"),
        Bad(
            "execute context 17 deep",
            {"context": nested(17)},
            code="invalid_context",
            path="/v1/authorize/{approved}/execute",
        ),
        Bad(
            "settle context over 16 KiB",
            {"context": {"b": "y" * 17_000}},
            code="invalid_context",
            path="/v1/authorize/{executed}/settle",
        ),
        Bad(
            "event context 17 deep",
            {"action": "item_86d", "context": nested(17)},
            code="invalid_context",
            path="/v1/events",
        ),
    ]
    assert_refused(http, scene, cases, subtests)
    with subtests.test(msg="over 1 MiB, chunked without Content-Length"):
        before = scene.state()
        auth = {"Authorization": f"Bearer {scene.venue.admin_key}", "Content-Type": "application/json"}
        response = http.post("/v1/authorize", content=chunks(), headers=auth)
        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
        assert scene.state() == before


def test_bad_query_parameters(http: httpx.Client, scene: Scene, subtests: Any) -> None:
    events = "/v1/events/{venue}"

    def query(name: str, path: str, params: dict[str, Any], code: str = "validation_error", mentions: str = "") -> Bad:
        return Bad(name, method="GET", path=path, params=params, code=code, mentions=mentions)

    cases = [
        query("events limit 0", events, {"limit": 0}, mentions="limit"),
        query("events limit 201", events, {"limit": 201}, mentions="limit"),
        query("events limit not a number", events, {"limit": "ten"}, mentions="limit"),
        query("events offset -1", events, {"offset": -1}, mentions="offset"),
        query("events offset 10^12", events, {"offset": 10**12}, mentions="offset"),
        query("context not JSON", events, {"context": "table=12"}, code="invalid_context_filter"),
        query("context a list", events, {"context": "[1]"}, code="invalid_context_filter"),
        query("context a string", events, {"context": '"x"'}, code="invalid_context_filter"),
        query("context with NaN", events, {"context": '{"tip": NaN}'}, code="invalid_context_filter"),
        query("context too long", events, {"context": json.dumps({"k": "v" * 5000})}, code="invalid_context_filter"),
        query("context too deep", events, {"context": json.dumps(nested(17))}, code="invalid_context_filter"),
        query("context 2000 deep", events, {"context": "[" * 2000 + "]" * 2000}, code="invalid_context_filter"),
        query("authorizations limit 0", "/v1/authorize", {"limit": 0}, mentions="limit"),
        query("authorizations limit 201", "/v1/authorize", {"limit": 201}, mentions="limit"),
        query("authorizations offset -1", "/v1/authorize", {"offset": -1}, mentions="offset"),
        query("unknown status", "/v1/authorize", {"status": "paid"}, code="invalid_status", mentions="pending"),
        query("unknown period", events + "/stats", {"period": "year"}, code="invalid_period", mentions="7d"),
        query("NUL in a filter", events, {"agent_id": "voice\x00agent"}, code="invalid_field"),
    ]
    assert_refused(http, scene, cases, subtests)


def test_ids_of_another_venue_answer_404(http: httpx.Client, scene: Scene, subtests: Any) -> None:
    scene.watched.append(scene.theirs)
    theirs = "{their_approved}"
    not_found = "authorization_not_found"
    cases = [
        Bad("execute theirs", {}, status=404, code=not_found, path=f"/v1/authorize/{theirs}/execute"),
        Bad("settle theirs", {}, status=404, code=not_found, path=f"/v1/authorize/{theirs}/settle"),
        Bad("reverse theirs", status=404, code=not_found, path=f"/v1/authorize/{theirs}/reverse"),
        Bad("approve theirs", {}, status=404, code=not_found, path=f"/v1/authorize/{theirs}/approve"),
        Bad("deny theirs", {}, status=404, code=not_found, path=f"/v1/authorize/{theirs}/deny"),
        Bad("read theirs", status=404, code=not_found, method="GET", path=f"/v1/authorize/{theirs}"),
        Bad("an unknown id", {}, status=404, code=not_found, path="/v1/authorize/auth_nothing/execute"),
        Bad(
            "delete their policy",
            status=404,
            code="policy_not_found",
            method="DELETE",
            path="/v1/policies/{their_policy}",
        ),
        Bad("revoke their key", status=404, code="key_not_found", method="DELETE", path="/v1/keys/{their_key}"),
        Bad("list their events", status=404, code="venue_not_found", method="GET", path="/v1/events/{their_venue}"),
        Bad("their stats", status=404, code="venue_not_found", method="GET", path="/v1/events/{their_venue}/stats"),
        Bad(
            "log into their venue",
            {"venue_id": scene.theirs.id, "action": "comp_issued"},
            status=404,
            code="venue_not_found",
            path="/v1/events",
        ),
        Bad(
            "batch into their venue",
            {"events": [{"action": "comp_issued"}, {"venue_id": scene.theirs.id, "action": "comp_issued"}]},
            status=404,
            code="venue_not_found",
            path="/v1/events/batch",
        ),
    ]
    assert_refused(http, scene, cases, subtests)


def test_invalid_transitions_answer_409_with_the_current_status(
    http: httpx.Client, scene: Scene, subtests: Any
) -> None:
    refused = {
        "execute": ["pending", "executed", "settled", "denied", "reversed"],
        "settle": ["approved", "pending", "settled", "denied", "reversed"],
        "reverse": ["pending", "settled", "denied", "reversed"],
        "approve": ["approved", "executed", "settled", "denied", "reversed"],
        "deny": ["approved", "executed", "settled", "denied", "reversed"],
    }
    cases = [
        Bad(
            f"{step} when {status}",
            {},
            status=409,
            code="invalid_transition",
            mentions=status,
            path=f"/v1/authorize/{{{status}}}/{step}",
            extra={"current_status": status},
        )
        for step, statuses in refused.items()
        for status in statuses
    ]
    assert_refused(http, scene, cases, subtests)


def test_actual_amount_above_the_authorized_amount(http: httpx.Client, scene: Scene) -> None:
    auth = {"Authorization": f"Bearer {scene.venue.admin_key}"}
    url = f"/v1/authorize/{scene.ids['approved']}/execute"
    before = scene.state()
    above = http.post(url, json={"actual_amount": 10.01}, headers=auth)
    assert above.status_code == 409
    assert above.json()["code"] == "amount_exceeds_authorization"
    assert above.json()["current_status"] == "approved"
    assert scene.state() == before
    equal = http.post(url, json={"actual_amount": 10}, headers=auth)
    assert equal.status_code == 200 and equal.json()["status"] == "executed"


def test_execute_after_expiry(http: httpx.Client, scene: Scene, clock: ManualClock) -> None:
    auth = {"Authorization": f"Bearer {scene.venue.admin_key}"}
    on_time, late = scene.authorization(10), scene.authorization(10)
    pending = scene.authorization(500)
    record = http.get(f"/v1/authorize/{late}", headers=auth).json()
    clock.advance(300_000)
    # Expiry is never early: at expires_at itself the authorization still executes.
    assert http.post(f"/v1/authorize/{on_time}/execute", headers=auth).status_code == 200
    clock.advance(1)
    assert http.get(f"/v1/authorize/{late}", headers=auth).json()["status"] == "expired"
    before = scene.state()
    for step in ("execute", "settle", "reverse"):
        refused = http.post(f"/v1/authorize/{late}/{step}", headers=auth)
        assert refused.status_code == 409, refused.text
        assert (refused.json()["code"], refused.json()["current_status"]) == ("invalid_transition", "expired")
        assert scene.state() == before
    assert http.get(f"/v1/authorize/{late}", headers=auth).json()["expired_at"] == record["expires_at"]
    clock.advance(86_400_000)
    http.get(f"/v1/authorize/{pending}", headers=auth)
    before = scene.state()
    approve = http.post(f"/v1/authorize/{pending}/approve", headers=auth)
    assert (approve.status_code, approve.json()["current_status"]) == (409, "expired")
    assert scene.state() == before


def test_idempotency_key_misuse(http: httpx.Client, scene: Scene, subtests: Any) -> None:
    auth = {"Authorization": f"Bearer {scene.venue.admin_key}", "Idempotency-Key": "order-1234"}
    first = http.post("/v1/authorize", json=REQUEST, headers=auth)
    assert first.status_code == 200
    cases = [
        Bad(
            "same key, other amount",
            authorize(amount=11),
            code="idempotency_key_reused",
            headers={"Idempotency-Key": "order-1234"},
        ),
        Bad(
            "same key, other route",
            {"action": "comp_issued"},
            code="idempotency_key_reused",
            path="/v1/events",
            headers={"Idempotency-Key": "order-1234"},
        ),
        Bad("key over 255 characters", REQUEST, mentions="Idempotency-Key", headers={"Idempotency-Key": "k" * 256}),
        Bad("empty key", REQUEST, code="invalid_idempotency_key", headers={"Idempotency-Key": ""}),
        Bad(
            "a lone surrogate, idempotent",
            authorize(reason="\ud800"),
            code="invalid_text",
            headers={"Idempotency-Key": "odd-1"},
        ),
    ]
    assert_refused(http, scene, cases, subtests)


ODD_BUT_FINE = {
    "accent": "Café crème",
    "combining mark": "Cafe\u0301",
    "right-to-left override": "\u202etxt.exe",
    "zero-width joiner": "👩\u200d🍳",
    "astral plane": "𝄞 🍕",
    "byte order mark": "\ufeffmenu",
    "noncharacter": "\uffff",
    "line separator": "a\u2028b",
    "control characters": "tab\tnew\nline\x7f\x1b[31m",
    "CJK": "北京烤鸭",
    "quotes and backslashes": 'say "\\u0000" \\',
}
ODD_AND_REFUSED = {
    "NUL": "a\x00b",
    "lone high surrogate": "\ud800",
    "lone low surrogate": "x\udfff",
}


def test_odd_unicode_is_stored_exactly_or_refused_clearly(http: httpx.Client, scene: Scene, subtests: Any) -> None:
    auth = {"Authorization": f"Bearer {scene.venue.admin_key}", "Content-Type": "application/json"}
    for name, text in ODD_BUT_FINE.items():
        with subtests.test(msg=f"stored: {name}"):
            body = {"action": "comp_issued", "amount": 1, "reason": text, "context": {"note": text, text: [text]}}
            logged = http.post("/v1/events", content=json.dumps(body).encode(), headers=auth)
            assert logged.status_code == 201, logged.text
            [event] = [
                e
                for e in http.get(f"/v1/events/{scene.venue.id}", headers=auth).json()["events"]
                if e["id"] == logged.json()["id"]
            ]
            assert (event["reason"], event["context"]) == (text, {"note": text, text: [text]})
    cases = [
        Bad(f"{name} in {where}", body, code=code, mentions=where)
        for name, text in ODD_AND_REFUSED.items()
        for where, body, code in [
            ("reason", authorize(reason=text), "invalid_field"),
            ("context", authorize(context={"note": text}), "invalid_context"),
            ("context", authorize(context={text: 1}), "invalid_context"),
        ]
    ]
    cases += [
        Bad(
            f"{name} in a key name",
            {"role": "agent", "agent_id": OWN, "name": text},
            code="invalid_field",
            path="/v1/keys",
        )
        for name, text in ODD_AND_REFUSED.items()
    ]
    cases += [
        Bad(f"{name} in a deny reason", {"reason": text}, code="invalid_field", path="/v1/authorize/{pending}/deny")
        for name, text in ODD_AND_REFUSED.items()
    ]
    cases += [
        Bad(f"{name} in an event", {"action": "comp_issued", "reason": text}, code="invalid_field", path="/v1/events")
        for name, text in ODD_AND_REFUSED.items()
    ]
    cases.append(Bad("NUL in a path id", {}, code="invalid_field", path="/v1/authorize/auth_%00/execute"))
    assert_refused(http, scene, cases, subtests)


def test_values_at_each_limit_are_accepted(http: httpx.Client, venue: Venue) -> None:
    venue.policy(max_single_amount=1_000_000_000_000)
    auth = {"Authorization": f"Bearer {venue.admin_key}", "Content-Type": "application/json"}
    context_16k = {"blob": "x" * (16_384 - len('{"blob":""}'))}
    accepted = {
        "10^12": authorize(amount=10**12),
        "a cent": authorize(amount=0.01),
        "zero": authorize(amount=0),
        "3 decimals in KWD": authorize(amount=1.001, currency="KWD"),
        "a 64-character action": authorize(action="a" * 64),
        "a 128-character agent": authorize(agent_id="a" * 128),
        "a reason of 2000 characters": authorize(reason="r" * 2000),
        "a context 16 levels deep": authorize(context=nested(16)),
        "a context of exactly 16 KiB": authorize(context=context_16k),
    }
    for name, body in accepted.items():
        response = http.post("/v1/authorize", content=json.dumps(body).encode(), headers=auth)
        assert response.status_code == 200, f"{name}: {response.text[:300]}"
    exactly_1_mib = json.dumps(authorize(reason="z" * 2000)).encode()
    exactly_1_mib += b" " * (MIB - len(exactly_1_mib))
    assert len(exactly_1_mib) == MIB
    assert http.post("/v1/authorize", content=exactly_1_mib, headers=auth).status_code == 200
