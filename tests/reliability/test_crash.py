"""``kill -9`` of a gateway mid-burst loses no acknowledged write and leaves nothing half-written.

Client threads log events (one at a time and in batches, each with a client-made id),
authorize (each with an Idempotency-Key) and execute some approvals, as fast as one
gateway process answers. Twice, with requests in flight, the process is killed with
SIGKILL and a new one started on the same database (a SQLite file, or PostgreSQL).
Each client re-sends what got no answer, with the same ids and keys, to the new process.

Afterwards, read straight from the database:

- every write that got a 2xx answer is there exactly once: each event under its id with
  the sequence it was told, each authorization under its id, one authorization per
  Idempotency-Key, each acknowledged execution executed;
- a re-sent request whose first answer was lost was applied once (its answer replays);
- nothing is half-written: :func:`support.invariants.check_ledger` passes (sequences
  0..n-1, every authorization with its decision and business events, holds, buckets)
  and the venue's verifiable log checks out entry by entry.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import httpx
import pytest
from sqlalchemy import func, select

from agenitry.gateway import Database, Gateway
from agenitry.gateway.store.schema import authorizations, events, idempotency_keys
from support.invariants import check_ledger
from support.processes import GatewayProcess
from support.venues import Venue, make_venue

STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
THREADS = 6
KILLS = 2
#: Acknowledged writes between two kills: enough that requests are in flight at each.
ACKS_PER_LIFE = 40
#: How long a client keeps re-sending one request while no gateway answers.
RESEND_DEADLINE_S = 60.0

Report = Callable[[str, object], None]


@dataclass
class Write:
    """One logical write; re-sent as it is until it gets an answer."""

    kind: str
    path: str
    body: dict[str, Any]
    key: Optional[str] = None
    sends: int = 0
    first_sent: float = 0.0


@dataclass
class Acks:
    """What the gateways acknowledged, and how."""

    events: dict[str, Optional[int]] = field(default_factory=dict)
    authorizations: dict[str, str] = field(default_factory=dict)
    executed: set[str] = field(default_factory=set)
    writes: Counter[str] = field(default_factory=Counter)
    resent: int = 0
    replayed: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def total(self) -> int:
        return sum(self.writes.values())


class Burst:
    """Client threads writing to whichever gateway process is current."""

    def __init__(self, venue: Venue, gateway: GatewayProcess) -> None:
        self.venue = venue
        self.gateway = gateway
        self.acks = Acks()
        self.stop = threading.Event()

    def new_write(self, rng: random.Random, thread: int, n: int) -> Write:
        agent = f"agent-{thread % 3}"
        tag = f"{thread:02d}{n:06d}{rng.getrandbits(40):010x}"
        cents = rng.randint(100, 9_999)
        if n % 3 == 0:
            body = {"id": f"evt_one_{tag}", "agent_id": agent, "action": "order_captured", "amount": cents / 100}
            return Write("event", "/v1/events", body)
        if n % 3 == 1:
            batch = [
                {"id": f"evt_batch_{tag}_{k}", "agent_id": agent, "action": "item_86d", "amount": (cents + k) / 100}
                for k in range(3)
            ]
            return Write("batch", "/v1/events/batch", {"events": batch})
        body = {"agent_id": agent, "action": "comp_issued", "amount": cents / 100}
        return Write("authorize", "/v1/authorize", body, key=f"authorize-{tag}")

    def send(self, client: httpx.Client, write: Write) -> Optional[httpx.Response]:
        """One attempt; None when no gateway answered (it is down, or was killed mid-request)."""
        headers = {"Idempotency-Key": write.key} if write.key else {}
        write.sends += 1
        write.first_sent = write.first_sent or time.monotonic()
        try:
            return client.post(write.path, json=write.body, headers=headers)
        except httpx.TransportError:
            return None

    def run(self, thread: int) -> None:
        rng = random.Random(thread)
        backlog: list[Write] = []
        n = 0
        client: Optional[httpx.Client] = None
        client_url = ""
        try:
            while True:
                if not backlog:
                    if self.stop.is_set():
                        return
                    backlog.append(self.new_write(rng, thread, n))
                    n += 1
                write = backlog[0]
                url = self.gateway.url
                if client is None or url != client_url:
                    if client is not None:
                        client.close()
                    client = httpx.Client(
                        base_url=url, headers={"Authorization": f"Bearer {self.venue.admin_key}"}, timeout=30
                    )
                    client_url = url
                response = self.send(client, write)
                if response is None or response.status_code >= 500:
                    if time.monotonic() - write.first_sent > RESEND_DEADLINE_S:
                        self.fail(write, "no gateway answered")
                        backlog.pop(0)
                    time.sleep(0.02)
                    continue
                backlog.pop(0)
                follow_up = self.record(write, response, rng)
                if follow_up is not None:
                    backlog.append(follow_up)
        finally:
            if client is not None:
                client.close()

    def fail(self, write: Write, why: str) -> None:
        with self.acks.lock:
            self.acks.failures.append(f"{write.kind} {write.body}: {why}")

    def record(self, write: Write, response: httpx.Response, rng: random.Random) -> Optional[Write]:
        """Keep an acknowledgement; an approval is executed half the time."""
        if response.status_code not in (200, 201):
            self.fail(write, f"{response.status_code} {response.text}")
            return None
        body = response.json()
        acks = self.acks
        with acks.lock:
            acks.writes[write.kind] += 1
            acks.resent += write.sends > 1
            acks.replayed += response.headers.get("Idempotent-Replayed") == "true"
            if write.kind == "event":
                acks.events[body["id"]] = body["sequence"]
            elif write.kind == "batch":
                acks.events.update(dict.fromkeys(body["ids"]))
            elif write.kind == "authorize":
                acks.authorizations[body["authorization_id"]] = write.key or ""
            else:
                acks.executed.add(body["authorization_id"])
        if write.kind == "authorize" and body["approved"] and rng.random() < 0.5:
            auth_id = body["authorization_id"]
            return Write("execute", f"/v1/authorize/{auth_id}/execute", {}, key=f"execute-{auth_id}")
        return None

    def wait_for_acks(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while self.acks.total < count:
            assert time.monotonic() < deadline, f"only {self.acks.total} of {count} writes acknowledged"
            assert not self.acks.failures, self.acks.failures[:3]
            time.sleep(0.01)


@pytest.fixture
def report(record_property: Callable[[str, object], None], request: pytest.FixtureRequest) -> Report:
    def keep(name: str, value: object) -> None:
        record_property(name, value)
        print(f"{request.node.name}: {name}={value}")

    return keep


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLite file of this test's own, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        yield "sqlite:///" + str(tmp_path / "crash.db")
    else:
        yield str(request.getfixturevalue("postgresql_url"))


def test_kill_9_mid_burst_loses_no_acknowledged_write(database_url: str, tmp_path: Path, report: Report) -> None:
    database = Database(database_url)
    try:
        database.migrate()
        gateway = Gateway(database)
        venue = make_venue(gateway)
        venue.policy(max_single_amount=100)
        server = GatewayProcess(database_url, tmp_path / "serve.log").start()
        burst = Burst(venue, server)
        try:
            with ThreadPoolExecutor(THREADS) as pool:
                threads = [pool.submit(burst.run, index) for index in range(THREADS)]
                for life in range(1, KILLS + 1):
                    burst.wait_for_acks(life * ACKS_PER_LIFE)
                    server.kill()
                    # The clients keep trying the dead address until the new process is up.
                    server.start()
                burst.wait_for_acks((KILLS + 1) * ACKS_PER_LIFE)
                burst.stop.set()
                for future in threads:
                    future.result()
        finally:
            server.stop()
        acks = burst.acks
        assert not acks.failures, acks.failures[:5]
        report("acknowledged", dict(acks.writes))
        report("resent_after_no_answer", acks.resent)
        report("answers_replayed", acks.replayed)
        # The kills caught requests in flight: some writes had to be sent again.
        assert acks.resent > 0

        with database.read() as conn:
            stored = {
                row.id: row.sequence
                for row in conn.execute(
                    select(events.c.id, events.c.sequence).where(
                        events.c.venue_id == venue.id, events.c.action.in_(["order_captured", "item_86d"])
                    )
                )
            }
            rows = {
                row.id: row for row in conn.execute(select(authorizations).where(authorizations.c.venue_id == venue.id))
            }
            keys = conn.execute(
                select(func.count())
                .select_from(idempotency_keys)
                .where(idempotency_keys.c.venue_id == venue.id, idempotency_keys.c.key.like("authorize-%"))
            ).scalar_one()
        # Every acknowledged event once, at the sequence it was told; nothing else was logged.
        assert stored.keys() == acks.events.keys()
        told = {event_id: sequence for event_id, sequence in acks.events.items() if sequence is not None}
        assert {event_id: stored[event_id] for event_id in told} == told
        assert len(stored) == acks.writes["event"] + 3 * acks.writes["batch"]
        # One authorization per Idempotency-Key, each acknowledged one stored.
        assert rows.keys() == acks.authorizations.keys()
        assert len(set(acks.authorizations.values())) == len(rows) == keys == acks.writes["authorize"]
        assert {auth_id for auth_id, row in rows.items() if row.status == "executed"} == acks.executed

        ledger = check_ledger(database, venue.id)
        assert ledger.authorizations == len(rows)
        # A checkpoint over the whole log, then every entry, leaf and tree node checked against it.
        gateway.audit.sign(venue.id)
        audit = gateway.audit.audit(venue.id)
        assert audit.ok, audit.findings[:3]
        assert audit.entries == ledger.events
    finally:
        database.dispose()
