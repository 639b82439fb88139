"""Webhooks, service side, on both stores: signing, the outbox, filters, formats, retries, removal.

Every message goes to a real HTTP receiver on loopback (support/receiver.py) that verifies
its signature with the ``standardwebhooks`` library. The gateway and the deliverer share a
test clock, so retries are stepped through their schedule without waiting for it; the
receiver then checks each signature at the message's own timestamp (the library's
five-minute tolerance is about the wall clock, which a test clock is not on).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Optional

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook

from agenitry.gateway import Database, Gateway, GatewayError, ManualClock, Principal
from agenitry.gateway._clock import DAY, HOUR, SECOND, iso, parse_iso
from agenitry.gateway.service import lifecycle
from agenitry.gateway.service.webhook_delivery import (
    JITTER,
    LEASE_MARGIN,
    RETRY_SCHEDULE,
    Deliverer,
    new_secret,
    retry_delay,
    sign,
)
from agenitry.gateway.service.webhooks import EVENT_TYPES, MAX_ENDPOINTS, REMOVED
from agenitry.gateway.store.schema import venues, webhook_messages
from support.isolated import own_database, own_outboxes  # noqa: F401 - fixtures, found by their names
from support.processes import free_port
from support.receiver import Receiver, receiver_for_a_test_clock  # noqa: F401 - a fixture
from support.venues import Venue, make_venue

AGENT = "voice-agent"


@pytest.fixture
def deliverer(gateway: Gateway, clock: ManualClock) -> Deliverer:
    return Deliverer(gateway.webhooks, clock=clock, timeout=5)


@contextmanager
def removed_afterwards(venue: Venue) -> Iterator[Venue]:
    """The venue, its endpoints removed afterwards: no message of a test stays due for the
    next ones (a deliverer claims across every venue of its database)."""
    venue.policy(agent_id=AGENT, max_single_amount=1_000, require_approval_above=100)
    try:
        yield venue
    finally:
        for endpoint in venue.gateway.webhooks.list(venue.admin)["webhooks"]:
            venue.gateway.webhooks.remove(venue.admin, endpoint["id"])


@pytest.fixture
def owner(venue: Venue) -> Iterator[Venue]:
    with removed_afterwards(venue) as owner:
        yield owner


@pytest.fixture
def private_owner(gateway: Gateway) -> Iterator[Venue]:
    """A venue that hides the context key ``allergy`` besides the default ones."""
    venue_id = f"v-private-{uuid.uuid4().hex[:12]}"
    gateway.create_venue(venue_id, redacted_keys=["allergy"])
    _, secret = gateway.create_key(Principal.operator(venue_id), role="admin")
    with removed_afterwards(Venue(gateway, venue_id, gateway.authenticate(secret), secret)) as owner:
        yield owner


def add(
    venue: Venue, receiver: Receiver, path: str = "/hook", answers: Optional[list[int]] = None, **options: Any
) -> dict[str, Any]:
    """An endpoint at ``path`` of the receiver, which answers its first messages with ``answers``."""
    record, secret = venue.gateway.webhooks.add(venue.admin, receiver.url(path), **options)
    assert secret is not None
    receiver.trust(path, secret, answers=answers)
    tick(venue)
    return record


def authorize(venue: Venue, amount: float, **fields: Any) -> dict[str, Any]:
    body = {"agent_id": AGENT, "action": "comp_issued", "amount": amount, **fields}
    answer = venue.gateway.authorize(venue.agent(AGENT), body).body
    tick(venue)
    return answer


def tick(venue: Venue) -> None:
    """One millisecond on: the messages of one instant have no order among themselves."""
    clock = venue.gateway.clock
    assert isinstance(clock, ManualClock)
    clock.advance(1)


def due(message: dict[str, Any]) -> int:
    moment = parse_iso(message["next_attempt_at"])
    assert moment is not None
    return moment


def messages(venue: Venue, endpoint_id: str) -> list[dict[str, Any]]:
    """The endpoint's messages, oldest first."""
    return list(reversed(venue.gateway.webhooks.deliveries(venue.admin, endpoint_id, limit=200)["deliveries"]))


def refusal(call: Any) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        call()
    return refused.value


def live_endpoints(venue: Venue) -> int:
    with venue.gateway.db.read() as conn:
        return int(conn.execute(select(venues.c.webhooks).where(venues.c.id == venue.id)).scalar_one())


# -- signing -------------------------------------------------------------------------------


def test_signatures_are_standard_webhooks_signatures() -> None:
    # The specification's own example (standard-webhooks.com, and the libraries' tests).
    vector = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
    )
    assert vector == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[len("whsec_") :])) == 32
    assert new_secret() != secret
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    body = '{"type":"authorization.pending","data":{"reason":"caf\\u00e9"}}'
    expected = Webhook(secret).sign("msg_x", moment, body)
    assert sign(secret, "msg_x", int(moment.timestamp()), body) == expected
    assert sign(secret, "msg_y", int(moment.timestamp()), body) != expected


# -- the outbox ----------------------------------------------------------------------------


def test_a_decision_writes_its_message_in_its_own_transaction(owner: Venue, receiver: Receiver) -> None:
    endpoint = add(owner, receiver)
    gateway = owner.gateway
    # A decision that fails after its message is written leaves neither.
    with pytest.raises(RuntimeError), gateway._venue_tx(owner.id) as tx:
        row = lifecycle.create(
            tx,
            agent_id=AGENT,
            action="comp_issued",
            amount=15_000,
            currency="USD",
            context=None,
            reason=None,
            actor=owner.admin.key_id,
            execute_window=gateway.execute_window,
            approval_window=gateway.approval_window,
        )
        assert gateway.webhooks.enqueue(tx) == 1
        seen = tx.conn.execute(
            select(webhook_messages.c.event_type).where(webhook_messages.c.endpoint_id == endpoint["id"])
        )
        assert seen.scalars().all() == ["authorization.pending"]
        raise RuntimeError("the decision fails before it commits")
    assert messages(owner, endpoint["id"]) == []
    assert refusal(lambda: gateway.get_authorization(owner.admin, row.id)).code == "authorization_not_found"

    decision = authorize(owner, 150)
    [message] = messages(owner, endpoint["id"])
    assert message["event_type"] == "authorization.pending" and message["status"] == "pending"
    assert message["created_at"] == decision["created_at"] and message["attempts"] == []
    assert message["payload"]["data"]["authorization"]["id"] == decision["authorization_id"]


def test_a_venue_without_endpoints_writes_no_message(owner: Venue, gateway: Gateway) -> None:
    authorize(owner, 150)
    with gateway.db.read() as conn:
        count = conn.execute(select(func.count()).where(webhook_messages.c.venue_id == owner.id)).scalar_one()
    assert count == 0 and live_endpoints(owner) == 0


def test_each_endpoint_gets_the_types_its_filter_names(owner: Venue, receiver: Receiver) -> None:
    every = add(owner, receiver, "/every")
    approvals = add(owner, receiver, "/approvals", events=["authorization.approved"])
    channel = add(owner, receiver, "/channel", events=["authorization.pending"], format="slack")
    decision = authorize(owner, 150)
    owner.gateway.approve(owner.admin, decision["authorization_id"])
    tick(owner)
    owner.gateway.claim(owner.agent(AGENT), decision["authorization_id"])  # claims are not a webhook type
    owner.agent("another-agent")  # nor are keys
    owner.policy(max_daily_spend=5_000)
    assert [m["event_type"] for m in messages(owner, every["id"])] == [
        "authorization.pending",
        "authorization.approved",
        "policy.updated",
    ]
    assert [m["event_type"] for m in messages(owner, approvals["id"])] == ["authorization.approved"]
    [slack] = messages(owner, channel["id"])
    assert slack["event_type"] == "authorization.pending" and list(slack["payload"]) == ["text"]


def test_the_json_payload_shows_the_authorization_without_redacted_context(
    private_owner: Venue, receiver: Receiver
) -> None:
    owner, gateway = private_owner, private_owner.gateway
    venue_id, principal = owner.id, owner.admin
    endpoint = add(owner, receiver)
    context = {"table": 12, "guest_email": "ann@example.com", "allergy_note": "nuts", "items": [{"card_last4": "4242"}]}
    decision = authorize(owner, 150, reason="The guest waited an hour", context=context)
    [message] = messages(owner, endpoint["id"])
    payload = message["payload"]
    assert list(payload) == ["type", "timestamp", "data"]
    assert payload["type"] == "authorization.pending" and payload["timestamp"] == decision["created_at"]
    data = payload["data"]
    record = gateway.get_authorization(principal, decision["authorization_id"])
    assert data["authorization"] == {**record, "context": {"table": 12, "items": [{}]}}
    assert data["message"] == decision["message"] and "approval threshold of $100.00" in data["message"]
    assert data["expires_at"] == decision["expires_at"]
    assert data["console_url"] == f"https://verify.example/console/authorizations/{decision['authorization_id']}"
    event = data["event"]
    assert event["verify_url"] == f"https://verify.example/verify/{venue_id}/{event['id']}"
    logged = gateway.list_events(principal, venue_id, action="authorization.pending")["events"]
    assert [e["id"] for e in logged] == [event["id"]] and event["actor"] == owner.agent(AGENT).key_id
    # The body is compact JSON, fixed when written.
    with gateway.db.read() as conn:
        body = conn.execute(select(webhook_messages.c.body).where(webhook_messages.c.id == message["id"])).scalar_one()
    assert body == json.dumps(payload, separators=(",", ":"))


def test_policy_events_carry_the_policy(owner: Venue, receiver: Receiver) -> None:
    endpoint = add(owner, receiver)
    slack = add(owner, receiver, "/channel", format="slack")
    policy = owner.policy(agent_id=AGENT, max_daily_spend=2_500.5, allowed_actions=["comp_issued"])
    tick(owner)
    owner.gateway.delete_policy(owner.admin, policy["id"])
    updated, deleted = messages(owner, endpoint["id"])
    assert updated["event_type"] == "policy.updated" and deleted["event_type"] == "policy.deleted"
    details = updated["payload"]["data"]
    assert details["agent_id"] == AGENT and details["policy"]["id"] == policy["id"]
    assert details["policy"]["max_daily_spend"] == 2500.5 and details["policy"]["require_approval_above"] == 100
    assert deleted["payload"]["data"]["policy"] == {"id": policy["id"]}
    said = [m["payload"]["text"] for m in messages(owner, slack["id"])]
    assert said[0].startswith(f"The policy of agent {AGENT} was updated by key {owner.admin.key_id}:")
    assert "$2,500.50 a day" in said[0] and "approval above $100.00" in said[0] and "actions comp_issued" in said[0]
    assert said[1].startswith(f"The policy of agent {AGENT} was deleted") and said[1].endswith("/console/policies")


def test_slack_messages_are_sentences_a_person_reads(owner: Venue, receiver: Receiver, clock: ManualClock) -> None:
    types = [name for name in EVENT_TYPES if name.startswith("authorization.")]
    channel = add(owner, receiver, "/channel", format="slack", events=types)
    gateway, admin = owner.gateway, owner.admin
    pending = authorize(owner, 150, reason="Guest <@U123> waited & left <!channel>")["authorization_id"]
    denied = authorize(owner, 250)["authorization_id"]
    released = authorize(owner, 20)["authorization_id"]
    refunded = authorize(owner, 30)["authorization_id"]
    for step in (
        lambda: gateway.approve(admin, pending),
        lambda: gateway.execute(admin, pending, actual_amount=120),
        lambda: gateway.settle(admin, pending),
        lambda: gateway.deny(admin, denied, reason="Not for a cold soup"),
        lambda: gateway.reverse(admin, released),
        lambda: gateway.execute(admin, refunded),
        lambda: gateway.reverse(admin, refunded),
    ):
        step()
        tick(owner)
    authorize(owner, 400)
    clock.advance(DAY + SECOND)
    gateway.sweep()
    said = [(m["event_type"], m["payload"]["text"]) for m in messages(owner, channel["id"])]
    link = f"https://verify.example/console/authorizations/{pending}"
    expected = [
        ("authorization.pending", "Agent voice-agent asks to spend $150.00 on comp_issued: Guest &lt;@U123&gt; waited"),
        ("authorization.pending", "Agent voice-agent asks to spend $250.00 on comp_issued. Amount $250.00 is above"),
        ("authorization.approved", "Approved by policy: agent voice-agent may spend $20.00 on comp_issued until"),
        ("authorization.approved", "Approved by policy: agent voice-agent may spend $30.00"),
        ("authorization.approved", f"Approved by key {admin.key_id}: agent voice-agent may spend $150.00"),
        ("authorization.executed", "Executed: agent voice-agent spent $120.00 (of $150.00 approved) on comp_issued."),
        ("authorization.settled", "Settled: agent voice-agent spent $120.00 on comp_issued."),
        (
            "authorization.denied",
            "Denied: agent voice-agent asked to spend $250.00 on comp_issued. Not for a cold soup.",
        ),
        ("authorization.reversed", f"Reversed by key {admin.key_id}: agent voice-agent will not spend the $20.00"),
        ("authorization.executed", "Executed: agent voice-agent spent $30.00 on comp_issued."),
        ("authorization.reversed", "the $30.00 agent voice-agent spent on comp_issued is given back"),
        ("authorization.pending", "Agent voice-agent asks to spend $400.00"),
        ("authorization.expired", "Expired without a decision: agent voice-agent asked to spend $400.00"),
    ]
    assert [kind for kind, _ in said] == [kind for kind, _ in expected]
    for (_, text), (_, start) in zip(said, expected):
        assert text.startswith(start) or start in text, (text, start)
    first = said[0][1]
    assert "approval threshold of $100.00" in first and f"Decide before {iso(clock() - SECOND)[:10]} " in first
    assert first.endswith(link) and "<!channel>" not in first and "&lt;!channel&gt;" in first


def test_an_approval_that_expires_unused_says_so(owner: Venue, receiver: Receiver, clock: ManualClock) -> None:
    channel = add(owner, receiver, "/channel", format="slack", events=["authorization.expired"])
    authorize(owner, 20)
    clock.advance(owner.gateway.execute_window + SECOND)
    owner.gateway.sweep()
    [expired] = messages(owner, channel["id"])
    assert expired["payload"]["text"].startswith("Expired unused: agent voice-agent was approved to spend $20.00")


# -- delivery ------------------------------------------------------------------------------


def test_every_attempt_is_signed_and_a_refused_message_is_retried_with_its_id(
    owner: Venue, receiver: Receiver, deliverer: Deliverer, clock: ManualClock
) -> None:
    endpoint = add(owner, receiver, answers=[500, 503])
    authorize(owner, 150)
    assert deliverer.run_once() == 1
    assert deliverer.run_once() == 0  # not due again yet
    [waiting] = messages(owner, endpoint["id"])
    assert (waiting["status"], waiting["attempt_count"], waiting["last_status"]) == ("pending", 1, 500)
    for _ in range(2):
        clock.set(due(messages(owner, endpoint["id"])[0]))
        assert deliverer.run_once() == 1
    [done] = messages(owner, endpoint["id"])
    assert done["status"] == "delivered" and done["delivered_at"] == done["attempts"][-1]["attempted_at"]
    assert [a["status_code"] for a in done["attempts"]] == [500, 503, 200]
    got = receiver.at("/hook")
    assert [r.answered for r in got] == [500, 503, 200] and all(r.verified for r in got)
    assert {r.id for r in got} == {done["id"]} and len({r.body for r in got}) == 1
    assert [r.timestamp for r in got] == sorted({r.timestamp for r in got})  # stamped anew each time
    headers = got[0].headers
    assert headers["content-type"] == "application/json" and headers["user-agent"].startswith("Agenitry-Webhooks/")
    assert deliverer.run_once() == 0


def test_the_retry_schedule_spans_more_than_a_day_then_fails(
    owner: Venue, receiver: Receiver, deliverer: Deliverer, clock: ManualClock
) -> None:
    endpoint = add(owner, receiver, answers=[500] * 20)
    authorize(owner, 150)
    first = clock()
    waits = []
    for attempt in range(1, len(RETRY_SCHEDULE) + 2):
        assert deliverer.run_once() == 1
        [message] = messages(owner, endpoint["id"])
        assert message["attempt_count"] == attempt
        if message["status"] == "failed":
            break
        waits.append(due(message) - clock())
        clock.set(due(message) - 1)
        assert deliverer.run_once() == 0  # a millisecond early
        clock.advance(1)
    assert message["status"] == "failed" and message["attempt_count"] == len(RETRY_SCHEDULE) + 1
    for wait, scheduled in zip(waits, RETRY_SCHEDULE):
        assert scheduled <= wait <= scheduled * (1 + JITTER)
    assert len(waits) == len(RETRY_SCHEDULE) and clock() - first > 24 * HOUR
    assert len({r.id for r in receiver.at("/hook")}) == 1 and len(receiver.at("/hook")) == len(RETRY_SCHEDULE) + 1


def test_the_schedule_in_numbers() -> None:
    assert [retry_delay(n) for n in range(1, 9)] == [*RETRY_SCHEDULE, None]
    assert retry_delay(1, 0.5) == 5 * SECOND * (1 + JITTER * 0.5)
    assert 27 * HOUR < sum(RETRY_SCHEDULE) < 28 * HOUR


def test_an_unreachable_or_redirecting_receiver_is_a_failed_attempt(
    owner: Venue, receiver: Receiver, deliverer: Deliverer
) -> None:
    gone = owner.gateway.webhooks.add(owner.admin, f"http://127.0.0.1:{free_port()}/hook")[0]
    moved = add(owner, receiver, answers=[301])
    authorize(owner, 150)
    assert deliverer.run_once() == 2
    [refused] = messages(owner, gone["id"])
    assert refused["status"] == "pending" and refused["last_status"] is None
    assert refused["last_error"].startswith("No answer") and refused["attempts"][0]["status_code"] is None
    [redirected] = messages(owner, moved["id"])
    assert redirected["last_status"] == 301 and "redirects are not followed" in redirected["last_error"]
    assert len(receiver.at("/hook")) == 1


def test_a_removed_endpoint_gets_nothing_more(owner: Venue, receiver: Receiver, deliverer: Deliverer) -> None:
    endpoint = add(owner, receiver)
    other = add(owner, receiver, "/other")
    assert live_endpoints(owner) == 2
    authorize(owner, 150)
    removed = owner.gateway.webhooks.remove(owner.admin, endpoint["id"]).body
    assert removed["removed_at"] is not None and live_endpoints(owner) == 1
    assert owner.gateway.webhooks.remove(owner.admin, endpoint["id"]).body == removed  # once is enough
    assert live_endpoints(owner) == 1
    [stopped] = messages(owner, endpoint["id"])
    assert (stopped["status"], stopped["last_error"]) == ("failed", REMOVED)
    deliverer.run_once()
    assert receiver.at("/hook") == [] and len(receiver.at("/other")) == 1
    authorize(owner, 150)
    assert len(messages(owner, endpoint["id"])) == 1 and len(messages(owner, other["id"])) == 2
    refused = refusal(lambda: owner.gateway.webhooks.retry(owner.admin, stopped["id"]))
    assert (refused.status, refused.code) == (409, "webhook_removed")
    listed = owner.gateway.webhooks.list(owner.admin)["webhooks"]
    assert [(e["id"], e["removed_at"] is not None) for e in listed] == [(endpoint["id"], True), (other["id"], False)]


def test_the_owner_retries_a_failed_message_with_the_same_id(
    owner: Venue, receiver: Receiver, deliverer: Deliverer, clock: ManualClock
) -> None:
    # Pending only: the authorization expires meanwhile, which is a message of its own.
    endpoint = add(owner, receiver, answers=[500] * (len(RETRY_SCHEDULE) + 1), events=["authorization.pending"])
    authorize(owner, 150)
    for _ in range(len(RETRY_SCHEDULE) + 1):
        clock.advance(11 * HOUR)
        deliverer.run_once()
    [failed] = messages(owner, endpoint["id"])
    assert failed["status"] == "failed"
    again = owner.gateway.webhooks.retry(owner.admin, failed["id"]).body
    assert (again["id"], again["status"], again["next_attempt_at"]) == (failed["id"], "pending", iso(clock()))
    assert again["payload"] == failed["payload"] and len(again["attempts"]) == len(RETRY_SCHEDULE) + 1
    assert deliverer.run_once() == 1
    [delivered] = messages(owner, endpoint["id"])
    assert delivered["status"] == "delivered" and delivered["attempt_count"] == len(RETRY_SCHEDULE) + 2
    assert {r.id for r in receiver.at("/hook")} == {failed["id"]}
    refused = refusal(lambda: owner.gateway.webhooks.retry(owner.admin, failed["id"]))
    assert (refused.status, refused.code) == (409, "already_delivered")
    logged = owner.gateway.list_events(owner.admin, owner.id, action="webhook.retried")["events"]
    assert [e["context"] for e in logged] == [{"webhook_id": endpoint["id"], "message_id": failed["id"]}]


def test_a_claimed_message_waits_for_its_lease(
    owner: Venue, receiver: Receiver, deliverer: Deliverer, clock: ManualClock, database: Database
) -> None:
    add(owner, receiver)
    authorize(owner, 150)
    stalled = Deliverer(owner.gateway.webhooks, clock=clock, timeout=5)
    [claimed] = stalled._claim(clock(), 10)  # an instance that claimed it, then stopped
    assert deliverer.run_once() == 0
    clock.advance(stalled.lease)
    assert deliverer.run_once() == 0  # the lease's last millisecond
    clock.advance(1)
    assert deliverer.run_once() == 1
    assert [r.id for r in receiver.at("/hook")] == [claimed.id]
    assert stalled.lease == 5 * SECOND + LEASE_MARGIN


def test_two_deliverers_on_one_database_send_each_message_once(
    owner: Venue, receiver: Receiver, clock: ManualClock, database: Database
) -> None:
    endpoint = add(owner, receiver)
    for _ in range(24):
        authorize(owner, 150)
    # Two instances: each its own connection pool, as two gateways on one database have.
    other = Gateway(Database(database.url, pool_size=4), clock=clock)
    racers = [Deliverer(owner.gateway.webhooks, clock=clock), Deliverer(other.webhooks, clock=clock)]
    start = threading.Barrier(len(racers))
    sent = [0] * len(racers)

    def race(index: int) -> None:
        start.wait()
        while (count := racers[index].run_once(limit=3)) > 0:
            sent[index] += count

    threads = [threading.Thread(target=race, args=(index,)) for index in range(len(racers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    other.db.dispose()
    assert sum(sent) == 24
    assert set(Counter(r.id for r in receiver.at("/hook")).values()) == {1}
    assert {m["status"] for m in messages(owner, endpoint["id"])} == {"delivered"}
    assert all(len(m["attempts"]) == 1 for m in messages(owner, endpoint["id"]))


def test_a_commit_wakes_the_running_deliverer(owner: Venue, receiver: Receiver, clock: ManualClock) -> None:
    add(owner, receiver)
    # Polling once a minute: only the commit's doorbell can bring the message within seconds.
    authorize(owner, 150)
    running = Deliverer(owner.gateway.webhooks, clock=clock, poll_interval=60).start()
    try:
        receiver.wait_for(lambda got: len(got) == 1, timeout=10)  # its first round, at its start
        authorize(owner, 150)
        receiver.wait_for(lambda got: len(got) == 2, timeout=10)
    finally:
        running.stop()


# -- what the owner may configure ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ftp://files.example.com/in", "must start with http:// or https://; this one's scheme is 'ftp'"),
        ("hooks.example.com/agenitry", "this one has no scheme"),
        ("javascript:alert(1)", "this one's scheme is 'javascript'"),
        ("https://", "names no host"),
        ("https://example.com:99999/", "port"),
        ("https://example.com/a b", "spaces or control characters"),
        ("https://example.com/" + "a" * 2_000, "at most 2,000"),
        ("", "url is required"),
    ],
)
def test_urls_that_cannot_receive_are_refused(owner: Venue, url: str, said: str) -> None:
    refused = refusal(lambda: owner.gateway.webhooks.add(owner.admin, url))
    assert (refused.status, refused.code) == (422, "invalid_url") and said in refused.message
    assert owner.gateway.webhooks.list(owner.admin)["webhooks"] == []


def test_event_types_formats_and_descriptions_are_checked(owner: Venue, receiver: Receiver) -> None:
    add_ = owner.gateway.webhooks.add
    url = receiver.url()
    typo = refusal(lambda: add_(owner.admin, url, events=["authorization.aproved"]))
    assert typo.code == "invalid_event_type" and "did you mean 'authorization.approved'?" in typo.message
    unknown = refusal(lambda: add_(owner.admin, url, events=["refund.issued"]))
    assert "known: authorization.pending" in unknown.message
    for events in ([], "authorization.pending"):
        assert refusal(lambda events=events: add_(owner.admin, url, events=events)).code == "invalid_event_type"
    fmt = refusal(lambda: add_(owner.admin, url, format="xml"))
    assert (fmt.status, fmt.code) == (422, "invalid_format") and "'xml'" in fmt.message
    assert refusal(lambda: add_(owner.admin, url, description="d" * 201)).code == "invalid_field"
    record, _ = add_(owner.admin, url, events=["policy.updated", "policy.updated"], description="ops channel")
    assert record["events"] == ["policy.updated"] and record["description"] == "ops channel"
    assert "secret" not in record


def test_only_admins_of_the_venue_reach_its_webhooks(owner: Venue, receiver: Receiver, gateway: Gateway) -> None:
    endpoint = add(owner, receiver)
    authorize(owner, 150)
    [message] = messages(owner, endpoint["id"])
    agent = owner.agent(AGENT)
    service = gateway.webhooks
    for call in (
        lambda: service.add(agent, receiver.url()),
        lambda: service.list(agent),
        lambda: service.remove(agent, endpoint["id"]),
        lambda: service.deliveries(agent, endpoint["id"]),
        lambda: service.retry(agent, message["id"]),
    ):
        refused = refusal(call)
        assert (refused.status, refused.code) == (403, "admin_required")
    stranger = make_venue(gateway).admin
    assert refusal(lambda: service.remove(stranger, endpoint["id"])).code == "webhook_not_found"
    assert refusal(lambda: service.deliveries(stranger, endpoint["id"])).code == "webhook_not_found"
    assert refusal(lambda: service.retry(stranger, message["id"])).code == "message_not_found"
    assert service.list(stranger)["webhooks"] == []
    assert refusal(lambda: service.deliveries(owner.admin, endpoint["id"], limit=0)).code == "invalid_limit"


def test_adding_and_removing_is_in_the_audit_log_without_the_urls_path(owner: Venue, receiver: Receiver) -> None:
    secret_path = "/services/T000/B000/XXXXXXXXXXXXXXXX"
    endpoint = add(owner, receiver, secret_path, format="slack")
    authorize(owner, 150)
    owner.gateway.webhooks.remove(owner.admin, endpoint["id"])
    listed = owner.gateway.list_events(owner.admin, owner.id, limit=200)["events"]
    owned = {e["action"]: e for e in listed if e["action"].startswith("webhook.")}
    assert owned["webhook.added"]["context"] == {
        "webhook_id": endpoint["id"],
        "site": f"http://127.0.0.1:{receiver.port}",
        "format": "slack",
        "events": None,
    }
    assert owned["webhook.removed"]["context"] == {"webhook_id": endpoint["id"], "unsent": 1}
    assert owned["webhook.added"]["actor"] == owner.admin.key_id
    assert secret_path not in json.dumps(listed)


def test_a_venue_has_at_most_twenty_endpoints(owner: Venue, receiver: Receiver) -> None:
    for n in range(MAX_ENDPOINTS):
        owner.gateway.webhooks.add(owner.admin, receiver.url(f"/{n}"))
    refused = refusal(lambda: owner.gateway.webhooks.add(owner.admin, receiver.url()))
    assert (refused.status, refused.code) == (422, "too_many_webhooks")
    first = owner.gateway.webhooks.list(owner.admin)["webhooks"][0]
    owner.gateway.webhooks.remove(owner.admin, first["id"])
    owner.gateway.webhooks.add(owner.admin, receiver.url())
    assert live_endpoints(owner) == MAX_ENDPOINTS
