"""Keys trusted from memory, revoked at once: no write of a revoked key commits, on any instance.

Two ``Gateway`` objects on one database stand for two gateway instances. Whether a key was
read from the store is seen by counting the statements the engine sends.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select

from agenitry.gateway import Database, Gateway, ManualClock, Principal, create_app
from agenitry.gateway._clock import SECOND
from agenitry.gateway.errors import Unauthenticated
from agenitry.gateway.service import keys as keys_module
from agenitry.gateway.service.gateway import Idempotency
from agenitry.gateway.service.key_cache import KeyCache
from agenitry.gateway.store.schema import authorizations, events
from support.live import LiveServer
from support.venues import Venue

AGENT = "till"
REQUEST = {"agent_id": AGENT, "action": "purchase_order", "amount": 1}
INVALID_KEY = {"error": "Invalid API key", "code": "invalid_api_key"}


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements the database's engine sends while the block runs."""
    sent: list[str] = []

    def keep(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(database.engine, "before_cursor_execute", keep)
    try:
        yield sent
    finally:
        event.remove(database.engine, "before_cursor_execute", keep)


@pytest.fixture
def other(database: Database, clock: ManualClock) -> Gateway:
    """A second gateway instance on the same database."""
    return Gateway(database, clock=clock, public_url="https://verify.example")


@pytest.fixture
def agent_key(venue: Venue) -> str:
    venue.policy(max_single_amount=1_000)
    return venue.agent_key(AGENT)


def authorizations_of(gateway: Gateway, key_id: str) -> int:
    with gateway.db.read() as conn:
        query = select(func.count()).select_from(authorizations).where(authorizations.c.requested_by == key_id)
        return int(conn.execute(query).scalar_one())


def test_a_cached_key_is_read_once_and_its_writes_add_no_statement(venue: Venue, agent_key: str) -> None:
    gateway = venue.gateway
    gateway.keys.forget(venue.agent(AGENT).key_id)
    with statements(gateway.db) as first:
        principal = gateway.authenticate(agent_key, cached=True)
    with statements(gateway.db) as again:
        assert gateway.authenticate(agent_key, cached=True) == principal
    assert len(first) >= 1 and again == []
    # A write by a key whose venue revoked nothing since it was read re-reads no key.
    with statements(gateway.db) as sent:
        assert gateway.authorize(principal, dict(REQUEST)).body["approved"]
    assert not any("api_keys" in statement for statement in sent)


def test_a_revoked_key_is_refused_by_the_next_request_of_the_same_instance(venue: Venue, agent_key: str) -> None:
    gateway = venue.gateway
    principal = gateway.authenticate(agent_key, cached=True)
    once = Idempotency.of("first", principal, "POST", "/v1/authorize", REQUEST)
    assert gateway.authorize(principal, dict(REQUEST), idempotency=once).body["approved"]
    gateway.revoke_key(venue.admin, principal.key_id)
    with pytest.raises(Unauthenticated):
        gateway.authenticate(agent_key, cached=True)
    # A request authenticated just before the revocation committed is refused by its write,
    # a repeat of an answered request too.
    for idempotency in (None, once):
        with pytest.raises(Unauthenticated):
            gateway.authorize(principal, dict(REQUEST), idempotency=idempotency)
    assert authorizations_of(gateway, principal.key_id) == 1


def test_a_key_revoked_on_another_instance_is_refused_by_its_next_write_there(
    venue: Venue, agent_key: str, other: Gateway, clock: ManualClock
) -> None:
    cached = other.authenticate(agent_key, cached=True)
    assert other.authorize(cached, dict(REQUEST)).body["approved"]
    venue.gateway.revoke_key(venue.admin, cached.key_id)
    # The other instance still trusts its entry for reads (docs/security.md)...
    assert other.authenticate(agent_key, cached=True) == cached
    # ...but no write of the key commits there.
    with pytest.raises(Unauthenticated):
        other.authorize(cached, dict(REQUEST))
    with pytest.raises(Unauthenticated):
        other.log_event(cached, {"action": "order_captured", "amount": 5})
    assert authorizations_of(other, cached.key_id) == 1
    # The refused write made that instance forget the key, for reads too.
    with pytest.raises(Unauthenticated):
        other.authenticate(agent_key, cached=True)


def test_an_instance_that_wrote_nothing_stops_reading_with_a_revoked_key_after_the_ttl(
    venue: Venue, agent_key: str, other: Gateway, clock: ManualClock
) -> None:
    cached = other.authenticate(agent_key, cached=True)
    venue.gateway.revoke_key(venue.admin, cached.key_id)
    clock.advance(5 * SECOND - 1)
    assert other.authenticate(agent_key, cached=True) == cached
    clock.advance(1)
    with pytest.raises(Unauthenticated):
        other.authenticate(agent_key, cached=True)


def test_revoking_another_key_refuses_nothing_and_costs_one_read(venue: Venue, agent_key: str, other: Gateway) -> None:
    cached = other.authenticate(agent_key, cached=True)
    spare, _ = venue.gateway.create_key(venue.admin, role="agent", agent_id="spare")
    venue.gateway.revoke_key(venue.admin, spare["id"])
    with statements(other.db) as sent:
        assert other.authorize(cached, dict(REQUEST)).body["approved"]
    assert sum("api_keys" in statement for statement in sent) == 1
    # The entry moved to the venue's new version: the key's next write reads it no more.
    renewed = other.authenticate(agent_key, cached=True)
    assert renewed.keys_version == (cached.keys_version or 0) + 1
    with statements(other.db) as sent:
        assert other.authorize(renewed, dict(REQUEST)).body["approved"]
    assert not any("api_keys" in statement for statement in sent)


def test_a_key_created_after_a_miss_works_at_once(
    venue: Venue, other: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "ag_" + secrets.token_urlsafe(32)
    held = len(other.keys)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            other.authenticate(secret, cached=True)
    for _ in range(200):
        with pytest.raises(Unauthenticated):
            other.authenticate("ag_" + secrets.token_urlsafe(32), cached=True)
    assert len(other.keys) == held  # unknown keys take no room
    monkeypatch.setattr(keys_module, "new_api_key", lambda: secret)
    record, shown = venue.gateway.create_key(venue.admin, role="agent", agent_id=AGENT)
    assert shown == secret
    assert other.authenticate(secret, cached=True).key_id == record["id"]


def test_the_cache_keeps_at_most_its_size_dropping_the_least_recently_used(
    venue: Venue, database: Database, clock: ManualClock
) -> None:
    small = Gateway(database, clock=clock, key_cache_size=3)
    secrets_ = [venue.gateway.create_key(venue.admin, role="agent", agent_id=f"a{n}")[1] or "" for n in range(5)]
    for secret in secrets_:
        small.authenticate(secret, cached=True)
    assert len(small.keys) == 3
    with statements(database) as sent:
        for secret in secrets_[2:]:
            small.authenticate(secret, cached=True)
    assert sent == []
    with statements(database) as sent:
        small.authenticate(secrets_[0], cached=True)
    assert len(sent) >= 1 and len(small.keys) == 3


def test_a_ttl_of_zero_reads_the_key_on_every_request(venue: Venue, agent_key: str, database: Database) -> None:
    uncached = Gateway(database, clock=venue.gateway.clock, key_cache_ttl=0)
    for _ in range(3):
        with statements(database) as sent:
            uncached.authenticate(agent_key, cached=True)
        assert len(sent) >= 1
    assert len(uncached.keys) == 0


def test_a_look_up_that_raced_a_revocation_is_not_kept() -> None:
    cache = KeyCache(ttl_ms=5_000)
    principal = Principal("key_1", "nobo", "agent", AGENT, keys_version=0)
    began = cache.epoch
    cache.forget("key_1")  # the revocation committed while the key was being read
    cache.put("digest", principal, now=0, epoch=began)
    assert cache.get("digest", now=0) is None


@pytest.mark.parametrize("threads", [3])
def test_no_write_commits_after_the_revocation_committed(
    venue: Venue, agent_key: str, database: Database, clock: ManualClock, threads: int
) -> None:
    """Writers on one instance race a revocation on another: once the revocation's audit
    event is in the log, no decision of the key follows it (the log's order is commit order)."""
    writer = Gateway(database, clock=clock)
    revoker = Gateway(database, clock=clock)
    cached = writer.authenticate(agent_key, cached=True)
    started = threading.Barrier(threads + 1)
    refused: list[int] = []

    def write() -> None:
        started.wait()
        for _ in range(2_000):
            try:
                writer.authorize(cached, dict(REQUEST))
            except Unauthenticated:
                refused.append(1)
                return

    workers = [threading.Thread(target=write) for _ in range(threads)]
    for worker in workers:
        worker.start()
    started.wait()
    revoker.revoke_key(venue.admin, cached.key_id)
    for worker in workers:
        worker.join()
    assert len(refused) == threads
    e = events.c
    with database.read() as conn:
        revoked_at = conn.execute(
            select(e.sequence).where(e.venue_id == venue.id, e.action == "key.revoked")
        ).scalar_one()
        last_write = conn.execute(
            select(func.max(e.sequence)).where(e.venue_id == venue.id, e.actor == cached.key_id)
        ).scalar_one()
    assert last_write is None or last_write < revoked_at


def test_over_http_a_revocation_on_one_instance_refuses_the_next_write_on_another(
    venue: Venue, agent_key: str, other: Gateway, clock: ManualClock
) -> None:
    first = LiveServer(create_app(venue.gateway)).start()
    second = LiveServer(create_app(other)).start()
    try:
        agent = {"Authorization": f"Bearer {agent_key}"}
        admin = {"Authorization": f"Bearer {venue.admin_key}"}
        with httpx.Client(base_url=second.url, timeout=10) as there, httpx.Client(base_url=first.url) as here:
            assert there.post("/v1/authorize", json=REQUEST, headers=agent).status_code == 200
            key_id = venue.agent(AGENT).key_id
            assert here.delete(f"/v1/keys/{key_id}", headers=admin).status_code == 200
            assert there.get("/v1/policies", headers=agent).status_code == 200  # a read, within the TTL
            refused = there.post("/v1/authorize", json=REQUEST, headers=agent)
            assert (refused.status_code, refused.json()) == (401, INVALID_KEY)
            assert there.get("/v1/policies", headers=agent).status_code == 401
            assert here.post("/v1/authorize", json=REQUEST, headers=agent).status_code == 401
    finally:
        second.stop()
        first.stop()
