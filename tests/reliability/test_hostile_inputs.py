"""Hostile input, past what tests/gateway/api/test_bad_input.py covers, through a real server.

Numbers at the edges of a double (1e308, 5e-324, -0.0, 2**53+1) and of the money range
(10**12 exactly, 10**12 + 0.01) in every amount field, not only the authorization's;
numbers that Python's parser refuses (integers of thousands of digits); huge JSON that
fits the body limit (50,000 context keys, 100,000-element arrays, 900 levels of nesting
in an ignored field); look-alike and invisible Unicode in every name the gateway
matches on (agent ids, actions, currencies, event ids, venue and object ids, filters);
thousands of query parameters; headers and paths of megabytes; Content-Length values
that lie. Each is answered with a clear 4xx (the gateway's JSON error where the request
reaches it, the HTTP server's 400 where it does not), never a 5xx, and stores nothing.

Numbers inside a context are stored, and must come back as the same JSON numbers on
both stores: PostgreSQL's JSONB keeps numbers as decimals, so 1e308 comes back as the
integer 10**308 and -0.0 as 0.0. Before that was normalized on the way in, the log no
longer verified such an event and an honest re-send of it was refused as a conflict.
"""

from __future__ import annotations

import contextlib
import json
import socket
from typing import Any, Optional

import httpx
import pytest

from support.live import LiveServer
from support.venues import Venue

OWN = "voice-agent"
TEN_12 = 10**12
#: Values a double can hold that no amount may be: each must be refused as invalid_amount.
EDGE_AMOUNTS = {
    "1e308": 1e308,
    "-1e308": -1e308,
    "5e-324 (smallest double)": 5e-324,
    "2**53+1": 2**53 + 1,
    "10**12 + 0.01": TEN_12 + 0.01,
    "-0.01": -0.01,
}
#: Names that look like valid ones but are not: homoglyphs, invisible and bidi characters.
LOOK_ALIKES = {
    "Cyrillic a": "\u0430gent",
    "fullwidth": "\uff41\uff47\uff45\uff4e\uff54",
    "zero-width space": "agent\u200b",
    "zero-width joiner": "age\u200dnt",
    "right-to-left override": "\u202eagent",
    "combining acute": "agent\u0301",
    "non-breaking space": "agent\u00a0",
    "BOM": "\ufeffagent",
}


def snapshot(venue: Venue) -> tuple[Any, ...]:
    """Everything a write could change in the venue: its log, authorizations, policies, keys."""
    gateway, admin = venue.gateway, venue.admin
    events = gateway.list_events(admin, venue.id, limit=1)
    authorizations = gateway.list_authorizations(admin, limit=200)["authorizations"]
    return (
        events["total"],
        [event["id"] for event in events["events"]],
        [(a["id"], a["status"], a["held_amount"], a["actual_amount"]) for a in authorizations],
        gateway.list_policies(admin)["policies"],
        len(gateway.list_keys(admin)["keys"]),
    )


class Client:
    """Requests with the venue's admin key; each refused one must leave the venue as it was."""

    def __init__(self, http: httpx.Client, venue: Venue, subtests: Any) -> None:
        self.http, self.venue, self.subtests = http, venue, subtests
        self.headers = {"Authorization": f"Bearer {venue.admin_key}"}

    def send(
        self, method: str, path: str, body: Any = None, *, raw: Optional[bytes] = None, **options: Any
    ) -> httpx.Response:
        headers = {**self.headers, **options.pop("headers", {})}
        if body is not None:
            raw = json.dumps(body).encode()
        if raw is not None:
            headers.setdefault("Content-Type", "application/json")
        return self.http.request(method, path, content=raw, headers=headers, **options)

    def refused(
        self, name: str, method: str, path: str, body: Any = None, *, status: int = 422, code: str = "", **options: Any
    ) -> None:
        with self.subtests.test(msg=name):
            before = snapshot(self.venue)
            answer = self.send(method, path, body, **options)
            assert answer.status_code < 500, f"{answer.status_code} {answer.text[:300]}"
            assert answer.status_code == status, answer.text[:300]
            error = answer.json()
            assert isinstance(error["error"], str) and len(error["error"]) > 10, error
            if code:
                assert error["code"] == code, error
            assert snapshot(self.venue) == before, "a refused request changed stored state"


@pytest.fixture
def client(http: httpx.Client, venue: Venue, subtests: Any) -> Client:
    venue.policy(max_single_amount=TEN_12)
    return Client(http, venue, subtests)


def approved(client: Client, amount: float) -> str:
    answer = client.send("POST", "/v1/authorize", {"agent_id": OWN, "action": "comp_issued", "amount": amount})
    assert answer.status_code == 200 and answer.json()["approved"], answer.text
    return str(answer.json()["authorization_id"])


def test_float_edges_in_every_amount_field(client: Client) -> None:
    auth_id = approved(client, 100)
    fields: list[tuple[str, str, Any]] = [
        ("authorize", "/v1/authorize", lambda value: {"agent_id": OWN, "action": "comp_issued", "amount": value}),
        ("execute", f"/v1/authorize/{auth_id}/execute", lambda value: {"actual_amount": value}),
        ("event", "/v1/events", lambda value: {"action": "comp_issued", "amount": value}),
        ("batch", "/v1/events/batch", lambda value: {"events": [{"action": "comp_issued", "amount": value}]}),
        *[
            (f"policy {limit}", "/v1/policies", lambda value, limit=limit: {"agent_id": OWN, limit: value})
            for limit in ("max_single_amount", "max_daily_spend", "max_monthly_spend", "require_approval_above")
        ],
    ]
    for where, path, body in fields:
        method = "PUT" if path == "/v1/policies" else "POST"
        for name, value in EDGE_AMOUNTS.items():
            client.refused(f"{where}: {name}", method, path, body(value), code="invalid_amount")
        # Past what a double can hold: the parser's infinity must not slip through as a number.
        raw = json.dumps(body(0)).replace("0", "1e309", 1).encode()
        assert b"1e309" in raw
        client.refused(f"{where}: 1e309", method, path, raw=raw, code="invalid_amount")


def test_the_edges_that_are_amounts_are_taken_exactly(client: Client) -> None:
    venue = client.venue
    # 10**12 is the largest amount: authorized, executed, logged and set as a limit exactly.
    auth_id = approved(client, TEN_12)
    executed = client.send("POST", f"/v1/authorize/{auth_id}/execute", {"actual_amount": TEN_12})
    assert executed.status_code == 200, executed.text
    logged = client.send("POST", "/v1/events", {"action": "order_captured", "amount": TEN_12})
    assert logged.status_code == 201, logged.text
    policy = client.send("PUT", "/v1/policies", {"agent_id": "big", "max_daily_spend": TEN_12})
    assert policy.status_code == 200 and policy.json()["max_daily_spend"] == TEN_12
    # -0.0 is zero: stored and shown as 0, never as a negative amount.
    zero = approved(client, -0.0)
    record = client.send("GET", f"/v1/authorize/{zero}").json()
    assert (record["amount"], record["held_amount"]) == (0, 0)
    negative_zero = client.send("POST", "/v1/events", {"action": "comp_issued", "amount": -0.0}).json()
    entry = venue.gateway.public_event(venue.id, negative_zero["id"])["entry"]
    assert entry["amount"] == "0.00"
    for event_id in (logged.json()["id"], negative_zero["id"]):
        assert venue.gateway.public_event(venue.id, event_id)["amount"] in (TEN_12, 0)


def test_context_numbers_come_back_the_same_and_the_log_verifies(client: Client) -> None:
    venue = client.venue
    context = {
        "largest double": 1e308,
        "smallest double": 5e-324,
        "negative zero": -0.0,
        "beyond 2**53": 2**53 + 1,
        "beyond 2**64": 2**64 + 1,
        "googol": 10**100,
        "1e20": 1e20,
        "a cent past 10**12": TEN_12 + 0.01,
        "list": [1e308, -0.0, [5e-324]],
    }
    event = {"id": "evt_hostile_numbers_0001", "action": "item_86d", "context": context}
    first = client.send("POST", "/v1/events", event)
    assert first.status_code == 201, first.text
    # The same event re-sent (a client retrying) is stored once, not refused as a conflict.
    again = client.send("POST", "/v1/events", event)
    assert again.status_code == 201, again.text
    assert again.json()["sequence"] == first.json()["sequence"]
    [stored] = [e for e in client.send("GET", f"/v1/events/{venue.id}").json()["events"] if e["id"] == event["id"]]
    # Each number comes back as the same number (1e308 may come back written as 10**308).
    assert stored["context"] == json.loads(json.dumps(context)) or all(
        float(stored["context"][name]) == float(value)
        for name, value in context.items()
        if isinstance(value, (int, float))
    )
    assert stored["context"]["list"][1] == 0 and stored["context"]["googol"] == 10**100
    venue.gateway.audit.sign(venue.id)
    audit = venue.gateway.audit.audit(venue.id)
    assert audit.ok, audit.findings[:3]


def test_json_past_the_parser_or_the_limits(client: Client) -> None:
    base = {"agent_id": OWN, "action": "comp_issued", "amount": 1}
    digits = "7" * 5_000
    for where in ("amount", "context", "ignored field"):
        text = {
            "amount": f'{{"action": "comp_issued", "amount": {digits}}}',
            "context": f'{{"action": "comp_issued", "amount": 1, "context": {{"n": {digits}}}}}',
            "ignored field": f'{{"action": "comp_issued", "amount": 1, "zzz": {digits}}}',
        }[where]
        client.refused(
            f"a 5,000-digit integer in the {where}",
            "POST",
            "/v1/authorize",
            raw=text.encode(),
            status=400,
            code="invalid_json",
        )
    wide = {f"k{n}": n for n in range(50_000)}
    client.refused("50,000 context keys", "POST", "/v1/authorize", {**base, "context": wide}, code="invalid_context")
    long_list = {"list": list(range(100_000))}
    client.refused(
        "a 100,000-element list in a context",
        "POST",
        "/v1/events",
        {"action": "x", "context": long_list},
        code="invalid_context",
    )
    nested: Any = "leaf"
    for _ in range(900):
        nested = [nested]
    client.refused(
        "900 levels in allowed_actions", "PUT", "/v1/policies", {"allowed_actions": nested}, code="validation_error"
    )
    client.refused("900 levels in a batch", "POST", "/v1/events/batch", {"events": nested}, code="validation_error")
    client.refused(
        "900 levels in an execute context",
        "POST",
        f"/v1/authorize/{approved(client, 1)}/execute",
        {"context": {"deep": nested}},
        code="invalid_context",
    )
    client.refused(
        "900 levels in an unknown field", "POST", "/v1/authorize", {**base, "zzz": nested}, code="unknown_field"
    )
    client.refused(
        "gzip-encoded body (never inflated)",
        "POST",
        "/v1/authorize",
        raw=b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
        headers={"Content-Encoding": "gzip"},
        status=400,
        code="invalid_json",
    )


def test_look_alike_and_invisible_unicode_in_names(client: Client) -> None:
    venue = client.venue
    auth_id = approved(client, 5)
    for name, text in LOOK_ALIKES.items():
        client.refused(
            f"agent_id: {name}",
            "POST",
            "/v1/authorize",
            {"agent_id": text, "action": "comp_issued", "amount": 1},
            code="invalid_agent_id",
        )
        client.refused(
            f"action: {name}", "POST", "/v1/events", {"action": text.replace("agent", "comp")}, code="invalid_action"
        )
        client.refused(
            f"allowed action: {name}", "PUT", "/v1/policies", {"allowed_actions": [text]}, code="invalid_action"
        )
        client.refused(f"policy agent: {name}", "PUT", "/v1/policies", {"agent_id": text}, code="invalid_agent_id")
        client.refused(
            f"key agent: {name}", "POST", "/v1/keys", {"role": "agent", "agent_id": text}, code="invalid_agent_id"
        )
        client.refused(
            f"event id: {name}",
            "POST",
            "/v1/events",
            {"id": "evt_" + text + "_0123456789abcdef", "action": "comp_issued"},
            code="invalid_event_id",
        )
        client.refused(
            f"currency: {name}",
            "POST",
            "/v1/authorize",
            {"agent_id": OWN, "action": "comp_issued", "amount": 1, "currency": "US" + text[-1]},
            code="invalid_currency",
        )
        # An id with a look-alike in it names nothing: 404, never another object.
        client.refused(
            f"authorization id: {name}", "POST", f"/v1/authorize/{auth_id}{text[-1]}/execute", {}, status=404
        )
        client.refused(f"venue id: {name}", "GET", f"/v1/events/{venue.id}{text[-1]}", status=404)
        # A filter that looks like an agent matches nothing and changes nothing.
        with client.subtests.test(msg=f"filter: {name}"):
            listed = client.send("GET", "/v1/authorize", params={"agent_id": text})
            assert (listed.status_code, listed.json()["total"]) == (200, 0)


def test_many_query_parameters(client: Client) -> None:
    venue = client.venue
    # As many as a request head holds: agenitry serve refuses a head past 16 KiB (a 200 KB
    # query is in test_requests_the_http_server_refuses).
    repeated = [("agent_id", f"agent-{n}") for n in range(600)]
    with client.subtests.test(msg="600 repeated filters"):
        answer = client.send("GET", "/v1/authorize", params=repeated)
        assert answer.status_code == 200 and answer.json()["total"] == 0
    unknown = [(f"p{n}", "1") for n in range(1_500)]
    with client.subtests.test(msg="1,500 unknown parameters"):
        assert client.send("GET", f"/v1/events/{venue.id}", params=unknown).status_code == 200
    # The last of repeated values is the one read: a bad one is refused, whatever came before.
    client.refused("limit=5 then limit=500", "GET", "/v1/authorize", params=[("limit", "5"), ("limit", "500")])
    client.refused(
        "status=pending then a bad status",
        "GET",
        "/v1/authorize",
        params=[("status", "pending"), ("status", "paid")],
        code="invalid_status",
    )
    client.refused(
        "800 context filters, one not JSON",
        "GET",
        f"/v1/events/{venue.id}",
        params=[("context", "{}")] * 799 + [("context", "{")],
        code="invalid_context_filter",
    )


def test_long_headers_and_paths(client: Client) -> None:
    client.refused(
        "a 100 KB bearer key",
        "GET",
        "/v1/authorize",
        headers={"Authorization": "Bearer ag_" + "a" * 100_000},
        status=401,
        code="invalid_api_key",
    )
    client.refused(
        "a 10 KB Idempotency-Key",
        "POST",
        "/v1/authorize",
        {"agent_id": OWN, "action": "comp_issued", "amount": 1},
        headers={"Idempotency-Key": "k" * 10_000},
    )
    client.refused("a 60 KB authorization id", "POST", f"/v1/authorize/{'a' * 60_000}/settle", {}, status=404)
    client.refused("a 60 KB venue id", "GET", f"/v1/events/{'v' * 60_000}/stats", status=404)


def raw_request(live: LiveServer, request: bytes) -> bytes:
    """Send bytes no HTTP client would; returns the start of the answer."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as connection:
        # The server may answer and close before it has read the whole request: read its answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            try:
                chunk = connection.recv(65_536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
        return answer


@pytest.mark.parametrize(
    ("name", "head"),
    [
        ("a 1 MB header", b"GET /v1/authorize HTTP/1.1\r\nX-Long: " + b"a" * 1_000_000 + b"\r\n"),
        ("a 1 MB path", b"GET /v1/authorize/" + b"a" * 1_000_000 + b" HTTP/1.1\r\n"),
        (
            "a 200 KB query",
            b"GET /v1/authorize?" + b"&".join(b"agent_id=%d" % n for n in range(20_000)) + b" HTTP/1.1\r\n",
        ),
        ("NUL in a header", b"POST /v1/authorize HTTP/1.1\r\nIdempotency-Key: a\x00b\r\nContent-Length: 2\r\n"),
        ("raw bytes in the path", b"POST /v1/authorize/\xff\xfe/execute HTTP/1.1\r\nContent-Length: 2\r\n"),
        ("Content-Length: 10**20", b"POST /v1/authorize HTTP/1.1\r\nContent-Length: 100000000000000000000\r\n"),
        ("Content-Length: -5", b"POST /v1/authorize HTTP/1.1\r\nContent-Length: -5\r\n"),
        ("Content-Length: abc", b"POST /v1/authorize HTTP/1.1\r\nContent-Length: abc\r\n"),
        ("two Content-Lengths", b"POST /v1/authorize HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 9\r\n"),
    ],
)
def test_requests_the_http_server_refuses(live: LiveServer, venue: Venue, name: str, head: bytes) -> None:
    before = snapshot(venue)
    key = b"Authorization: Bearer " + venue.admin_key.encode() + b"\r\n"
    answer = raw_request(live, head + b"Host: 127.0.0.1\r\n" + key + b"\r\n{}")
    # A server that answers before it read a huge head closes on the rest, and the reset
    # can reach us before its answer: a cut connection is a refusal too, never a 2xx or 5xx.
    if answer:
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:200]
    assert snapshot(venue) == before
