"""One approval, at most one side effect: the claim, and who may reverse what, on both stores.

A claim is taken under the venue's lock, so of many threads or ``agenitry serve``
processes claiming one approved authorization exactly one gets a token; while its lease
runs only that token executes it (or lets its agent reverse it). A second claim is 409
``already_claimed``, a claim after execute 409 ``already_executed``; a lease that ended
lets a new claimer in. The token is stored only as a digest and never enters the log.
An agent never reverses an executed authorization (403 ``admin_required``): the hold of
what it spent stays, so authorize → execute → reverse cannot spend past a daily limit.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

import httpx
import pytest
from sqlalchemy import select

from agenitry.gateway import Database, Gateway, GatewayError, ManualClock
from agenitry.gateway._clock import SECOND, iso
from agenitry.gateway.service.gateway import Idempotency
from agenitry.gateway.store.schema import authorizations
from support.processes import start_gateways
from support.venues import Venue, make_venue

AGENT = "voice-agent"
EXECUTE_WINDOW = 300 * SECOND
STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def approved(venue: Venue, amount: float = 50, **policy: Any) -> str:
    venue.policy(agent_id=AGENT, max_single_amount=1_000, require_approval_above=100, **policy)
    decision = venue.gateway.authorize(
        venue.agent(AGENT), {"agent_id": AGENT, "action": "purchase_order", "amount": amount}
    )
    assert decision.body["status"] == "approved"
    return str(decision.body["authorization_id"])


def refusal(call: Any) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        call()
    return refused.value


def stored(venue: Venue, authorization_id: str) -> Any:
    with venue.gateway.db.read() as conn:
        return conn.execute(select(authorizations).where(authorizations.c.id == authorization_id)).one()


def logged(venue: Venue, authorization_id: str) -> list[dict[str, Any]]:
    listed = venue.gateway.list_events(venue.admin, venue.id, limit=200)["events"]
    return sorted((e for e in listed if e["authorization_id"] == authorization_id), key=lambda e: e["sequence"])


def test_a_claim_gives_one_token_stored_only_as_its_digest(venue: Venue, clock: ManualClock) -> None:
    authorization_id = approved(venue)
    agent = venue.agent(AGENT)

    answer = venue.gateway.claim(agent, authorization_id).body

    token = answer["claim_token"]
    assert token.startswith("clm_") and len(token) >= 4 + 26
    assert answer == {
        "authorization_id": authorization_id,
        "status": "approved",
        "claim_token": token,
        "claimed_until": iso(clock() + EXECUTE_WINDOW),
        "claimed_by": agent.key_id,
    }
    row = stored(venue, authorization_id)
    assert row.claim_digest == hashlib.sha256(token.encode()).hexdigest()
    [claimed] = [e for e in logged(venue, authorization_id) if e["action"] == "authorization.claimed"]
    assert claimed["actor"] == agent.key_id
    assert token not in repr(claimed) and row.claim_digest not in repr(claimed)
    assert claimed["context"]["claimed_until"] == answer["claimed_until"]


def test_a_second_claim_is_refused_while_the_lease_runs(venue: Venue, clock: ManualClock) -> None:
    authorization_id = approved(venue)
    first = venue.gateway.claim(venue.agent(AGENT), authorization_id).body

    refused = refusal(lambda: venue.gateway.claim(venue.admin, authorization_id))

    assert (refused.status, refused.code) == (409, "already_claimed")
    assert refused.body()["current_status"] == "approved"
    assert refused.body()["claimed_until"] == first["claimed_until"]
    assert "runs once" in refused.message
    assert stored(venue, authorization_id).claim_digest == hashlib.sha256(first["claim_token"].encode()).hexdigest()


def test_a_lease_is_never_longer_than_the_execute_window(venue: Venue, clock: ManualClock) -> None:
    authorization_id = approved(venue)

    answer = venue.gateway.claim(venue.agent(AGENT), authorization_id, lease_seconds=10 * 3600).body

    assert answer["claimed_until"] == iso(stored(venue, authorization_id).expires_at)


def test_a_lease_that_ended_lets_a_new_claimer_in(venue: Venue, clock: ManualClock) -> None:
    authorization_id = approved(venue)
    agent = venue.agent(AGENT)
    first = venue.gateway.claim(agent, authorization_id, lease_seconds=30).body
    assert first["claimed_until"] == iso(clock() + 30 * SECOND)

    clock.advance(30 * SECOND)
    assert refusal(lambda: venue.gateway.claim(venue.admin, authorization_id)).code == "already_claimed"
    clock.advance(1)
    second = venue.gateway.claim(venue.admin, authorization_id).body

    assert second["claimed_by"] == venue.admin.key_id
    # The holder that died comes back too late: its token no longer executes.
    late = refusal(lambda: venue.gateway.execute(agent, authorization_id, claim_token=first["claim_token"]))
    assert (late.status, late.code) == (409, "claimed_by_another")
    assert venue.gateway.execute(venue.admin, authorization_id, claim_token=second["claim_token"]).body["status"] == (
        "executed"
    )


def test_execute_of_a_claimed_authorization_needs_its_token(venue: Venue, clock: ManualClock) -> None:
    authorization_id = approved(venue)
    agent = venue.agent(AGENT)
    token = venue.gateway.claim(agent, authorization_id).body["claim_token"]

    for caller, given in ((agent, None), (venue.admin, None), (agent, "clm_not-the-token")):
        refused = refusal(lambda c=caller, g=given: venue.gateway.execute(c, authorization_id, claim_token=g))
        assert (refused.status, refused.code) == (409, "claimed_by_another")
        assert "claimed by another caller until" in refused.message
    assert stored(venue, authorization_id).status == "approved"

    done = venue.gateway.execute(agent, authorization_id, claim_token=token, actual_amount=40).body

    assert done["status"] == "executed"
    row = stored(venue, authorization_id)
    assert (row.status, row.hold, row.claimed_by) == ("executed", 4_000, agent.key_id)
    again = refusal(lambda: venue.gateway.claim(agent, authorization_id))
    assert (again.status, again.code, again.body()["current_status"]) == (409, "already_executed", "executed")


def test_unclaimed_authorizations_work_without_a_token_and_refuse_a_stray_one(venue: Venue) -> None:
    plain, other = approved(venue), approved(venue)
    token = venue.gateway.claim(venue.agent(AGENT), other).body["claim_token"]

    stray = refusal(lambda: venue.gateway.execute(venue.agent(AGENT), plain, claim_token=token))

    assert (stray.status, stray.code) == (409, "claim_mismatch")
    assert venue.gateway.execute(venue.agent(AGENT), plain).body["status"] == "executed"


@pytest.mark.parametrize(
    ("state", "code"),
    [
        *[(state, "invalid_transition") for state in ("pending", "denied", "reversed", "expired")],
        *[(state, "already_executed") for state in ("executed", "settled")],
    ],
)
def test_only_an_approved_authorization_can_be_claimed(venue: Venue, clock: ManualClock, state: str, code: str) -> None:
    venue.policy(agent_id=AGENT, max_single_amount=1_000, require_approval_above=100)
    amount = {"pending": 200, "denied": 2_000}.get(state, 50)
    decision = venue.gateway.authorize(venue.admin, {"agent_id": AGENT, "action": "purchase_order", "amount": amount})
    authorization_id = decision.body["authorization_id"]
    if state in ("executed", "settled"):
        venue.gateway.execute(venue.admin, authorization_id)
    if state == "settled":
        venue.gateway.settle(venue.admin, authorization_id)
    if state == "reversed":
        venue.gateway.reverse(venue.admin, authorization_id)
    if state == "expired":
        clock.advance(EXECUTE_WINDOW + 1)

    refused = refusal(lambda: venue.gateway.claim(venue.agent(AGENT), authorization_id))

    assert (refused.status, refused.code, refused.body()["current_status"]) == (409, code, state)
    assert stored(venue, authorization_id).claim_digest is None


def test_another_agent_cannot_claim(venue: Venue) -> None:
    authorization_id = approved(venue)

    refused = refusal(lambda: venue.gateway.claim(venue.agent("other-agent"), authorization_id))

    assert (refused.status, refused.code) == (403, "agent_mismatch")


def test_a_claimed_authorization_is_released_by_its_holder_or_an_admin(venue: Venue) -> None:
    held, owned = approved(venue), approved(venue)
    agent = venue.agent(AGENT)
    token = venue.gateway.claim(agent, held).body["claim_token"]
    venue.gateway.claim(agent, owned)

    refused = refusal(lambda: venue.gateway.reverse(agent, held))
    assert (refused.status, refused.code) == (409, "claimed_by_another")

    assert venue.gateway.reverse(agent, held, claim_token=token).body["status"] == "reversed"
    assert venue.gateway.reverse(venue.admin, owned).body["status"] == "reversed"
    assert (stored(venue, held).hold, stored(venue, owned).hold) == (0, 0)


def test_a_repeated_claim_under_one_idempotency_key_gets_a_working_token(venue: Venue) -> None:
    authorization_id = approved(venue)
    agent = venue.agent(AGENT)
    key = Idempotency.of("claim-1", agent, "POST", f"/v1/authorize/{authorization_id}/claim", None)
    first = venue.gateway.claim(agent, authorization_id, idempotency=key)

    repeat = venue.gateway.claim(agent, authorization_id, idempotency=key)

    assert repeat.replayed and repeat.body["claimed_until"] == first.body["claimed_until"]
    # Only the digest was stored: the repeat carries a fresh token and the lost one is void.
    assert repeat.body["claim_token"] != first.body["claim_token"]
    lost = refusal(lambda: venue.gateway.execute(agent, authorization_id, claim_token=first.body["claim_token"]))
    assert lost.code == "claimed_by_another"
    assert venue.gateway.execute(agent, authorization_id, claim_token=repeat.body["claim_token"]).body["status"] == (
        "executed"
    )


# -- reversal: an agent never gives back budget it spent ------------------------------------


def test_an_agent_cannot_reverse_what_it_executed(venue: Venue) -> None:
    authorization_id = approved(venue)
    agent = venue.agent(AGENT)
    venue.gateway.execute(agent, authorization_id, actual_amount=45)
    before = stored(venue, authorization_id)

    refused = refusal(lambda: venue.gateway.reverse(agent, authorization_id))

    assert (refused.status, refused.code) == (403, "admin_required")
    assert "an agent cannot give back budget it spent" in refused.message
    assert stored(venue, authorization_id) == before


def test_authorize_execute_reverse_repeated_stays_within_the_daily_limit(venue: Venue) -> None:
    agent = venue.agent(AGENT)
    venue.policy(agent_id=AGENT, max_daily_spend=100)
    spent = 0
    for _ in range(5):
        decision = venue.gateway.authorize(agent, {"agent_id": AGENT, "action": "purchase_order", "amount": 60}).body
        if decision["status"] != "approved":
            assert decision["denial_code"] == "max_daily_spend"
            continue
        venue.gateway.execute(agent, decision["authorization_id"])
        spent += 60
        refusal(lambda d=decision: venue.gateway.reverse(agent, d["authorization_id"]))

    assert spent == 60


def test_an_agent_reverses_an_approved_one_and_its_hold_goes_back(venue: Venue) -> None:
    authorization_id = approved(venue, max_daily_spend=50)
    agent = venue.agent(AGENT)

    assert venue.gateway.reverse(agent, authorization_id).body == {
        "authorization_id": authorization_id,
        "status": "reversed",
        "event_id": None,
    }
    assert stored(venue, authorization_id).hold == 0
    assert approved(venue, max_daily_spend=50)


def test_an_admin_reverses_an_executed_one_with_a_reversal_event(venue: Venue) -> None:
    authorization_id = approved(venue)
    venue.gateway.execute(venue.agent(AGENT), authorization_id, actual_amount=45)

    answer = venue.gateway.reverse(venue.admin, authorization_id).body

    events = logged(venue, authorization_id)
    assert [(e["action"], e["actor"]) for e in events[-2:]] == [
        ("authorization.reversed", venue.admin.key_id),
        ("reversal", venue.admin.key_id),
    ]
    assert answer["event_id"] == events[-1]["id"] and events[-1]["amount"] == 45.0
    assert stored(venue, authorization_id).hold == 0


# -- races: exactly one claimer -----------------------------------------------------------------


def test_threads_claiming_one_authorization_get_exactly_one_token(venue: Venue) -> None:
    authorization_id = approved(venue)
    agent = venue.agent(AGENT)
    start = threading.Barrier(16)

    def claim(_: int) -> Optional[str]:
        start.wait()
        try:
            return str(venue.gateway.claim(agent, authorization_id).body["claim_token"])
        except GatewayError as refused:
            assert refused.code == "already_claimed"
            return None

    with ThreadPoolExecutor(16) as pool:
        tokens = [token for token in pool.map(claim, range(16)) if token is not None]

    assert len(tokens) == 1
    assert stored(venue, authorization_id).claim_digest == hashlib.sha256(tokens[0].encode()).hexdigest()


@pytest.fixture(scope="module", params=STORES)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, list[str]]]:
    """Three ``agenitry serve`` processes on one database, and an in-process gateway on it."""
    logs = tmp_path_factory.mktemp(f"claim-{request.param}")
    url = (
        "sqlite:///" + str(logs / "shared.db")
        if request.param == "sqlite"
        else request.getfixturevalue("postgresql_url")
    )
    database = Database(url)
    database.migrate()
    servers = start_gateways(url, logs, 3)
    try:
        yield Gateway(database), [server.url for server in servers]
    finally:
        for server in servers:
            server.stop()
        database.dispose()


def test_gateway_processes_claiming_one_authorization_give_exactly_one_token(
    served: tuple[Gateway, list[str]],
) -> None:
    gateway, urls = served
    venue = make_venue(gateway)
    authorization_id = approved(venue)
    headers = {"Authorization": f"Bearer {venue.agent_key(AGENT)}"}
    start = threading.Barrier(12)

    def claim(index: int) -> httpx.Response:
        with httpx.Client(base_url=urls[index % len(urls)], headers=headers, timeout=30) as client:
            start.wait()
            return client.post(f"/v1/authorize/{authorization_id}/claim")

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(claim, range(12)))

    assert sorted(answer.status_code for answer in answers) == [200] + [409] * 11
    assert {answer.json()["code"] for answer in answers if answer.status_code == 409} == {"already_claimed"}
    [won] = [answer.json() for answer in answers if answer.status_code == 200]
    assert stored(venue, authorization_id).claim_digest == hashlib.sha256(won["claim_token"].encode()).hexdigest()
