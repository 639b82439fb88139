"""The public proof routes over real HTTP, on SQLite and PostgreSQL.

GET /v1/verify/{venue}/{event} answers everything needed to verify the event offline, and
it verifies with only the public key; an edited answer does not. The log routes serve the
newest checkpoint, consistency proofs between checkpoints, and the signing keys. None needs
a key, none reveals another venue, and each client address is rate limited (429 with
Retry-After).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agenitry._merkle import verify_consistency
from agenitry._tlog import TlogProof, TrustedKey, open_checkpoint
from agenitry._verify import verify_event, verify_proof
from agenitry.gateway import Gateway, ManualClock, create_app
from agenitry.gateway._clock import HOUR, iso
from agenitry.gateway.api.ratelimit import TokenBuckets
from support.live import LiveServer
from support.venues import Venue, make_venue


def log(http: httpx.Client, venue: Venue, **fields: Any) -> dict[str, Any]:
    answer = http.post("/v1/events", json=fields, headers={"Authorization": f"Bearer {venue.admin_key}"})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def test_a_verify_document_verifies_offline_with_the_public_key(http: httpx.Client, venue: Venue) -> None:
    logged = log(http, venue, agent_id="voice-agent", action="order_captured", amount=42.5, reason="table 12")
    document = http.get(f"/v1/verify/{venue.id}/{logged['id']}").json()
    key = http.get("/v1/log/public-key").json()["public_key"]
    result = verify_event(document, key)
    assert result.ok, result.problems
    assert (result.index, result.tree_size) == (logged["sequence"], document["proof"]["tree_size"])
    assert document["verified"] is True and document["problems"] == []
    assert document["index"] == logged["sequence"] == document["entry"]["sequence"]
    assert document["proof"]["log_origin"] == f"verify.example/agenitry/{venue.id}"
    proof = TlogProof.parse(document["tlog_proof"])
    assert proof.checkpoint == document["checkpoint"] and proof.index == logged["sequence"]
    assert [base64.b64encode(digest).decode() for digest in proof.hashes] == document["proof"]["hashes"]
    assert proof.extra is not None and b'"amount":"42.50"' in proof.extra
    # Only the key matters: another one fails, whatever the server says about itself.
    assert not verify_event(document, base64.b64encode(bytes(32)).decode()).ok


EDITS = [
    ("event", "amount", 4250.0),
    ("event", "agent_id", "someone-else"),
    ("entry", "amount", "4250.00"),
    ("event", "occurred_at", "2026-12-02T07:05:00.123Z"),
    ("entry", "occurred_at", "2026-12-02T07:05:00.123Z"),
]


def test_an_edited_document_does_not_verify(http: httpx.Client, venue: Venue) -> None:
    logged = log(http, venue, agent_id="voice-agent", action="comp_issued", amount=42.5)
    key = http.get("/v1/log/public-key").json()["public_key"]
    for where, field, value in [*EDITS, ("entry", "sequence", 0)]:
        document = http.get(f"/v1/verify/{venue.id}/{logged['id']}").json()
        document[where][field] = value
        document.pop("leaf_hash")
        result = verify_event(document, key)
        assert not result.ok, (where, field)
        assert any(field in problem or "entry" in problem for problem in result.problems), result.problems


def test_the_time_the_agent_logged_it_is_signed_shown_and_checked(
    http: httpx.Client, venue: Venue, clock: ManualClock
) -> None:
    logged_at = iso(clock() - 2 * HOUR)
    late = log(http, venue, action="order_captured", amount=12, occurred_at=logged_at)
    plain = log(http, venue, action="order_captured", amount=12)
    key = http.get("/v1/log/public-key").json()["public_key"]
    document = http.get(f"/v1/verify/{venue.id}/{late['id']}").json()
    assert document["verified"] is True, document["problems"]
    assert document["event"]["occurred_at"] == document["entry"]["occurred_at"] == logged_at
    assert document["event"]["created_at"] == late["created_at"] == iso(clock())
    assert f"logged by the agent at {logged_at}" in http.get(f"/verify/{venue.id}/{late['id']}").text
    document["event"]["occurred_at"] = iso(clock() - HOUR)
    assert any("occurred_at" in problem for problem in verify_event(document, key).problems)
    # An event that names no time has none in its entry, which hashes as entries always did.
    document = http.get(f"/v1/verify/{venue.id}/{plain['id']}").json()
    assert document["verified"] is True and document["event"]["occurred_at"] is None
    assert "occurred_at" not in document["entry"]
    assert "logged by the agent" not in http.get(f"/verify/{venue.id}/{plain['id']}").text


def test_the_tlog_proof_file_verifies_on_its_own(http: httpx.Client, venue: Venue) -> None:
    logged = log(http, venue, action="reservation_booked", amount=0)
    answer = http.get(f"/v1/verify/{venue.id}/{logged['id']}/tlog-proof")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert f'filename="{logged["id"]}.tlog-proof"' in answer.headers["content-disposition"]
    assert answer.text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    key = http.get("/v1/log/public-key").json()["public_key"]
    assert verify_proof(answer.text, key).ok
    assert not verify_proof(answer.text.replace("index ", "index 1", 1), key).ok


def test_the_newest_checkpoint_and_consistency_between_checkpoints(
    http: httpx.Client, venue: Venue, gateway: Gateway
) -> None:
    first = http.get(f"/v1/log/{venue.id}/checkpoint")
    assert first.status_code == 200
    old = first.json()
    assert old["size"] == 1 and old["number"] == 0  # the venue's first, signed on demand
    for _ in range(6):
        log(http, venue, action="item_86d")
    assert http.get(f"/v1/log/{venue.id}/checkpoint").json() == old  # not re-signed on every call
    gateway.audit.sign(venue.id)
    new = http.get(f"/v1/log/{venue.id}/checkpoint").json()
    assert (new["number"], new["size"]) == (1, 7)
    key = TrustedKey(b64(new["public_key"]))
    assert new["verifier_key"].startswith(f"{new['origin']}+")
    assert TrustedKey.parse(new["verifier_key"]).public_key == key.public_key
    old_checkpoint, _ = open_checkpoint(old["checkpoint"], [key])
    new_checkpoint, _ = open_checkpoint(new["checkpoint"], [key])
    proof = http.get(f"/v1/log/{venue.id}/consistency", params={"first": 1, "second": 7}).json()
    assert (proof["first_root"], proof["second_root"]) == (old["root_hash"], new["root_hash"])
    hashes = [b64(digest) for digest in proof["hashes"]]
    assert verify_consistency(1, 7, old_checkpoint.root, new_checkpoint.root, hashes)
    assert not verify_consistency(1, 7, old_checkpoint.root, new_checkpoint.root, hashes[:-1])


BAD_RANGES = [
    ({"first": 5, "second": 2}, "invalid_tree_size"),
    ({"first": 1, "second": 99}, "invalid_tree_size"),
    ({"first": -1, "second": 2}, "validation_error"),
    ({"first": "one", "second": 2}, "validation_error"),
    ({"second": 2}, "validation_error"),
]


def test_bad_consistency_requests_are_refused(http: httpx.Client, venue: Venue) -> None:
    for query, code in BAD_RANGES:
        answer = http.get(f"/v1/log/{venue.id}/consistency", params=query)
        assert (answer.status_code, answer.json()["code"]) == (422, code), query


def test_nothing_of_another_venue_is_revealed(http: httpx.Client, venue: Venue) -> None:
    other = make_venue(venue.gateway)
    theirs = log(http, other, action="item_86d")["id"]
    assert http.get(f"/v1/verify/{venue.id}/{theirs}").status_code == 404
    assert http.get(f"/v1/verify/{venue.id}/{theirs}/tlog-proof").status_code == 404
    for path in ("/v1/log/no-such-venue/checkpoint", "/v1/log/no-such-venue/consistency?first=0&second=0"):
        answer = http.get(path)
        assert (answer.status_code, answer.json()["code"]) == (404, "log_not_found")
    mine = http.get(f"/v1/log/{venue.id}/checkpoint").json()
    assert mine["origin"].endswith(f"/{venue.id}") and other.id not in str(mine)


def test_the_public_key_route_lists_the_signing_key(http: httpx.Client, gateway: Gateway) -> None:
    answer = http.get("/v1/log/public-key").json()
    assert answer["algorithm"] == "Ed25519"
    assert answer["public_key"] == gateway.checkpointer.key.public_key_b64
    assert {"public_key": answer["public_key"], "current": True} in [
        {"public_key": key["public_key"], "current": key["current"]} for key in answer["keys"]
    ]


def test_openapi_documents_the_log_routes_without_a_key(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/log/public-key",
        "/v1/log/{venue_id}/checkpoint",
        "/v1/log/{venue_id}/consistency",
        "/v1/verify/{venue_id}/{event_id}/tlog-proof",
    ):
        parameters = paths[path]["get"].get("parameters", [])
        assert "authorization" not in {p["name"].lower() for p in parameters if p["in"] == "header"}, path


@pytest.fixture
def tight(gateway: Gateway) -> Iterator[httpx.Client]:
    """The gateway with a public limit of 3 requests at once, one more a minute."""
    server = LiveServer(create_app(gateway, public_rate_limit=1 / 60, public_rate_burst=3)).start()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


def test_the_public_routes_are_rate_limited_per_address(tight: httpx.Client, venue: Venue) -> None:
    event = log(tight, venue, action="item_86d")["id"]
    paths = [f"/v1/verify/{venue.id}/{event}", f"/verify/{venue.id}/{event}", "/v1/log/public-key"]
    assert [tight.get(path).status_code for path in paths] == [200, 200, 200]
    refused = tight.get(f"/v1/log/{venue.id}/checkpoint")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Keyed routes and the health check are not the public limit's business.
    keyed = {"Authorization": f"Bearer {venue.admin_key}"}
    assert [tight.get("/v1/policies", headers=keyed).status_code for _ in range(5)] == [200] * 5
    assert tight.get("/healthz").status_code == 200


def test_token_buckets_refill_at_their_rate_and_forget_the_oldest_clients() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=2, clock=lambda: now[0], max_clients=2)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] = 0.25
    assert buckets.take("a") == pytest.approx(0.25)
    now[0] = 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("b") == buckets.take("c") == 0.0  # "a" is forgotten: a full bucket again
    assert [buckets.take("a"), buckets.take("a"), buckets.take("a")] == [0.0, 0.0, 0.5]
    with pytest.raises(ValueError):
        TokenBuckets(rate=0, burst=1)
