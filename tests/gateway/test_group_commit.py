"""Group commit: writes that queue on a venue share one transaction, each as if alone.

Every test here makes a batch for certain: a first write holds the venue's transaction
open until the others are queued behind it, so they all run in the next batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select

from agenitry.gateway import Database, Gateway, GatewayError, Principal
from agenitry.gateway.errors import StorageBusy, Unauthenticated, Unprocessable
from agenitry.gateway.service.events import NewEvent
from agenitry.gateway.service.lifecycle import Tx
from agenitry.gateway.store.schema import authorizations, events
from support.venues import Venue, make_venue


@contextmanager
def one_batch(gateway: Gateway, venue_id: str, count: int) -> Iterator[ThreadPoolExecutor]:
    """Hold the venue's transaction while ``count`` writes submitted to the pool queue up;
    on leaving, let them run (as one batch) and wait for them."""
    inside, release = threading.Event(), threading.Event()

    def hold(tx: Tx) -> None:
        inside.set()
        release.wait(30)

    with ThreadPoolExecutor(max_workers=count + 1) as pool:
        holder = pool.submit(gateway.commits.run, venue_id, hold)
        assert inside.wait(30)
        batches = gateway.commits.batches
        yield pool
        for _ in range(3000):
            if gateway.commits.queued(venue_id) >= count:
                break
            threading.Event().wait(0.01)
        assert gateway.commits.queued(venue_id) == count
        release.set()
        holder.result(30)
    # The holder's batch, then the queued writes in one more.
    assert gateway.commits.batches == batches + 2


def answer(future: Future[Any]) -> Any:
    try:
        return future.result(30)
    except GatewayError as exc:
        return exc


def authorize(venue: Venue, amount: Any, **fields: Any) -> Callable[[], Any]:
    return lambda: venue.gateway.authorize(venue.agent(), {"action": "order_captured", "amount": amount, **fields}).body


def test_a_batch_decides_in_order_each_seeing_the_holds_before_it(gateway: Gateway, venue: Venue) -> None:
    venue.policy(agent_id="voice-agent", max_daily_spend=100)
    venue.agent()
    with one_batch(gateway, venue.id, 5) as pool:
        futures = [pool.submit(authorize(venue, 30)) for _ in range(5)]
    answers = [answer(future) for future in futures]
    # Decided in parallel against the same empty budget, all five would fit; in order, three do.
    assert sorted(a["status"] for a in answers) == ["approved"] * 3 + ["denied"] * 2
    assert {a["denial_code"] for a in answers if a["status"] == "denied"} == {"max_daily_spend"}
    with gateway.db.read() as conn:
        held = conn.execute(
            select(authorizations.c.amount).where(
                authorizations.c.venue_id == venue.id, authorizations.c.status == "approved"
            )
        ).all()
    assert sum(amount for (amount,) in held) == 9_000


def test_an_invalid_request_and_a_raising_write_leave_the_rest_of_their_batch_alone(
    gateway: Gateway, venue: Venue
) -> None:
    venue.policy(agent_id="voice-agent", max_daily_spend=100)
    venue.agent()

    def raises_after_writing(tx: Tx) -> None:
        tx.log(NewEvent(id="evt_written_then_undone_0001", agent_id="voice-agent", action="note", actor="test"))
        raise RuntimeError("a decision that fails halfway")

    with one_batch(gateway, venue.id, 5) as pool:
        first = pool.submit(authorize(venue, 60))
        wait_for_queue(gateway, venue.id, 1)
        invalid = pool.submit(authorize(venue, True))
        wait_for_queue(gateway, venue.id, 2)
        raising = pool.submit(gateway.commits.run, venue.id, raises_after_writing)
        wait_for_queue(gateway, venue.id, 3)
        second = pool.submit(authorize(venue, 30))
        wait_for_queue(gateway, venue.id, 4)
        third = pool.submit(authorize(venue, 30))

    assert answer(first)["status"] == "approved"
    refused = answer(invalid)
    assert isinstance(refused, Unprocessable) and refused.code == "invalid_amount"
    with pytest.raises(RuntimeError, match="fails halfway"):
        raising.result(30)
    # The second fits beside the first; the third does not: the failed ones held nothing.
    assert answer(second)["status"] == "approved"
    assert answer(third)["status"] == "denied"
    with gateway.db.read() as conn:
        rows = conn.execute(select(events).where(events.c.venue_id == venue.id).order_by(events.c.sequence)).all()
    assert "evt_written_then_undone_0001" not in {row.id for row in rows}
    assert [row.sequence for row in rows] == list(range(len(rows)))
    gateway.audit.sign(venue.id)  # the log as it stands, signed: its tree must match its entries
    assert gateway.audit.audit(venue.id).ok, gateway.audit.audit(venue.id).findings


def test_a_key_revoked_earlier_in_a_batch_is_refused_later_in_it(gateway: Gateway, venue: Venue) -> None:
    agent = venue.agent()
    with one_batch(gateway, venue.id, 2) as pool:
        revoked = pool.submit(gateway.revoke_key, venue.admin, agent.key_id)
        wait_for_queue(gateway, venue.id, 1)
        after = pool.submit(authorize(venue, 5))
    assert revoked.result(30).body["revoked_at"] is not None
    assert isinstance(answer(after), Unauthenticated)


def test_one_idempotency_key_twice_in_a_batch_is_one_decision(gateway: Gateway, venue: Venue) -> None:
    from agenitry.gateway.service.gateway import Idempotency

    agent = venue.agent()
    body = {"action": "order_captured", "amount": 12}
    key = Idempotency.of("order-77", agent, "POST", "/v1/authorize", body)
    with one_batch(gateway, venue.id, 2) as pool:
        futures = [pool.submit(gateway.authorize, agent, body, idempotency=key) for _ in range(2)]
    outcomes = [future.result(30) for future in futures]
    assert outcomes[0].body == outcomes[1].body
    assert sorted(outcome.replayed for outcome in outcomes) == [False, True]


def test_a_write_queued_past_the_busy_timeout_gives_up_having_changed_nothing(store: str, request: Any) -> None:
    database = Database(request.getfixturevalue(f"{store}_url"), busy_timeout_s=0.5)
    try:
        gateway = Gateway(database)
        venue = make_venue(gateway)
        venue.policy(max_single_amount=100)
        agent = venue.agent()
        inside, release = threading.Event(), threading.Event()

        def hold(tx: Tx) -> None:
            inside.set()
            release.wait(30)

        with ThreadPoolExecutor(max_workers=2) as pool:
            holder = pool.submit(gateway.commits.run, venue.id, hold)
            assert inside.wait(30)
            with pytest.raises(StorageBusy, match="nothing was changed"):
                gateway.authorize(agent, {"action": "order_captured", "amount": 5})
            release.set()
            holder.result(30)
        assert gateway.list_authorizations(venue.admin)["total"] == 0
        # The venue is not left led by a write that gave up: the next one runs.
        assert gateway.authorize(agent, {"action": "order_captured", "amount": 5}).body["status"] == "approved"
    finally:
        database.dispose()


def test_a_lone_write_runs_in_a_batch_of_its_own(gateway: Gateway, venue: Venue) -> None:
    agent: Principal = venue.agent()
    batches, writes = gateway.commits.batches, gateway.commits.writes
    gateway.authorize(agent, {"action": "order_captured", "amount": 5})
    assert (gateway.commits.batches, gateway.commits.writes) == (batches + 1, writes + 1)


def wait_for_queue(gateway: Gateway, venue_id: str, count: int) -> None:
    """Wait until ``count`` writes are queued, so the next one queues behind them."""
    for _ in range(3000):
        if gateway.commits.queued(venue_id) >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} writes never queued")
