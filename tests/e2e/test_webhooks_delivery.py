"""Webhooks end to end: real receivers on loopback verify every message with ``standardwebhooks``.

- A receiver that refuses the first deliveries gets the message again, under the same
  ``webhook-id``, until it takes it (the retry waits are stepped over, not slept through).
- A gateway killed with SIGKILL after the decision committed and before the message went
  out delivers it once another ``agenitry serve`` starts on the database: the outbox
  committed with the decision.
- Two ``agenitry serve`` processes on one PostgreSQL database, taking many decisions,
  deliver every message exactly once between them.

Each test has a database of its own: a serving gateway sends every venue's outbox.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from agenitry.gateway import Database, Gateway, Principal
from agenitry.gateway._clock import parse_iso
from agenitry.gateway.service.webhooks import Deliverer
from agenitry.gateway.store.schema import webhook_attempts, webhook_messages
from support.databases import create_postgres_database, drop_postgres_database
from support.processes import GatewayProcess, free_port, start_gateways
from support.receiver import Receiver

VENUE = "nobo-downtown"
AGENT = "voice-agent"
STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each store."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


def prepare(url: str) -> tuple[str, str]:
    """The venue, its policy (approval above $100) and its keys; the admin's and the agent's secrets."""
    database = Database(url)
    try:
        database.migrate()
        gateway = Gateway(database)
        gateway.create_venue(VENUE)
        owner = Principal.operator(VENUE)
        _, admin_key = gateway.create_key(owner, role="admin")
        _, agent_key = gateway.create_key(owner, role="agent", agent_id=AGENT)
        gateway.put_policy(owner, {"agent_id": AGENT, "max_single_amount": 1_000, "require_approval_above": 100})
    finally:
        database.dispose()
    assert admin_key and agent_key
    return admin_key, agent_key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def add_endpoint(base_url: str, admin_key: str, url: str) -> dict[str, Any]:
    answer = httpx.post(f"{base_url}/v1/webhooks", json={"url": url}, headers=bearer(admin_key), timeout=10)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def authorize(base_url: str, agent_key: str, amount: float) -> dict[str, Any]:
    body = {"action": "comp_issued", "amount": amount, "reason": "The soup was cold"}
    answer = httpx.post(f"{base_url}/v1/authorize", json=body, headers=bearer(agent_key), timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def outbox(url: str) -> list[tuple[str, str, int]]:
    """Every message as (id, status, attempts recorded)."""
    database = Database(url)
    try:
        with database.read() as conn:
            m, a = webhook_messages.c, webhook_attempts.c
            counted = conn.execute(select(a.message_id, func.count()).group_by(a.message_id)).all()
            attempts: dict[str, int] = {message_id: count for message_id, count in counted}
            return [(row.id, row.status, attempts.get(row.id, 0)) for row in conn.execute(select(m.id, m.status))]
    finally:
        database.dispose()


def test_a_refused_message_comes_again_with_its_id_until_it_is_taken(
    tmp_path: Path, receiver: Receiver, database_url: str
) -> None:
    _, agent_key = prepare(database_url)
    database = Database(database_url)
    gateway = Gateway(database)  # the wall clock: the receiver checks each timestamp against its own
    owner = Principal.operator(VENUE)
    record, secret = gateway.webhooks.add(owner, receiver.url(), events=["authorization.pending"])
    assert secret is not None
    receiver.trust("/hook", secret, answers=[500, 500])
    decision = gateway.authorize(gateway.authenticate(agent_key), {"action": "comp_issued", "amount": 150}).body
    deliverer = Deliverer(gateway.webhooks)
    try:
        assert deliverer.run_once() == 1
        for _ in range(2):
            [message] = gateway.webhooks.deliveries(owner, record["id"])["deliveries"]
            due = parse_iso(message["next_attempt_at"])
            assert message["status"] == "pending" and due is not None
            assert deliverer.run_once(now=due) == 1  # as if the retry's wait had passed
        got = receiver.at("/hook")
        assert [item.answered for item in got] == [500, 500, 200] and all(item.verified for item in got)
        assert len({item.id for item in got}) == 1 and len({item.body for item in got}) == 1
        assert got[0].payload()["data"]["authorization"]["id"] == decision["authorization_id"]
        assert outbox(database_url) == [(got[0].id, "delivered", 3)]
    finally:
        gateway.webhooks.remove(owner, record["id"])
        database.dispose()


@pytest.mark.parametrize("stopped", ["delivery off", "receiver down"])
def test_a_gateway_killed_after_the_decision_delivers_after_a_restart(
    tmp_path: Path, database_url: str, stopped: str
) -> None:
    admin_key, agent_key = prepare(database_url)
    port = free_port()
    options = ("--no-webhook-delivery",) if stopped == "delivery off" else ()
    first = GatewayProcess(database_url, tmp_path / "first.log", options).start()
    second = GatewayProcess(database_url, tmp_path / "second.log")
    receiver = None
    try:
        record = add_endpoint(first.url, admin_key, f"http://127.0.0.1:{port}/hook")
        decision = authorize(first.url, agent_key, 150)
        assert decision["status"] == "pending"
        if stopped == "receiver down":
            # The first attempt failed (nothing listens), and its retry is due in seconds.
            poll_until(lambda: outbox(database_url)[0][2] == 1)
        [(message_id, status, _)] = outbox(database_url)
        assert status == "pending"
        first.kill()
        receiver = Receiver(port=port).start()
        receiver.trust("/hook", record["secret"])
        second.start()
        [got] = receiver.wait_for(lambda seen: len(seen) >= 1, timeout=30)
        assert got.verified and got.id == message_id
        assert got.payload()["data"]["authorization"]["id"] == decision["authorization_id"]
        poll_until(lambda: outbox(database_url)[0][1] == "delivered")
        attempts = 2 if stopped == "receiver down" else 1
        assert outbox(database_url) == [(message_id, "delivered", attempts)]
    finally:
        first.stop()
        second.stop()
        if receiver is not None:
            receiver.stop()


@pytest.mark.postgres
def test_two_gateways_on_one_postgresql_deliver_each_message_once(tmp_path: Path, receiver: Receiver) -> None:
    url = create_postgres_database()
    try:
        admin_key, agent_key = prepare(url)
        gateways = start_gateways(url, tmp_path, 2)
        try:
            record = add_endpoint(gateways[0].url, admin_key, receiver.url())
            receiver.trust("/hook", record["secret"])
            amounts = [50 if n % 2 else 150 for n in range(60)]  # approved and pending, alike
            with ThreadPoolExecutor(8) as pool:
                decided = list(
                    pool.map(lambda n: authorize(gateways[n % 2].url, agent_key, amounts[n]), range(len(amounts)))
                )
            assert Counter(d["status"] for d in decided) == {"approved": 30, "pending": 30}
            seen = receiver.wait_for(lambda got: len({item.id for item in got}) >= len(amounts), timeout=60)
            poll_until(lambda: {status for _, status, _ in outbox(url)} == {"delivered"})
        finally:
            for gateway in gateways:
                gateway.stop()
        messages = outbox(url)
        assert len(messages) == len(amounts)
        assert {(status, attempts) for _, status, attempts in messages} == {("delivered", 1)}
        assert Counter(item.id for item in receiver.received) == Counter(
            {message_id: 1 for message_id, _, _ in messages}
        )
        assert all(item.verified for item in seen)
        types = Counter(item.payload()["type"] for item in receiver.received)
        assert types == {"authorization.approved": 30, "authorization.pending": 30}
    finally:
        drop_postgres_database(url)


def poll_until(done: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``done()`` holds; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not reached within the deadline"
        time.sleep(0.05)
