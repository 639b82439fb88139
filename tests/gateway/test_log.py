"""Each venue's Merkle tree in storage, on SQLite and PostgreSQL: appended in the event's own
transaction, O(log n) nodes a leaf, and every root and proof read from stored subtrees
equal to the pure RFC 9162 tree over the events' leaf hashes. Migration 0002 builds the
tree of events logged before it existed; entries stored before occurred_at existed
(migration 0005) still verify.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import func, select, text

from agenitry import canonical_json, leaf_hash
from agenitry._merkle import consistency_ranges, inclusion_ranges, root_of, verify_consistency, verify_inclusion
from agenitry._tlog import TrustedKey
from agenitry.gateway import Database, Gateway, Principal
from agenitry.gateway._clock import MINUTE, iso
from agenitry.gateway.errors import Unprocessable
from agenitry.gateway.service import log
from agenitry.gateway.store.database import _MIGRATIONS
from agenitry.gateway.store.schema import events, log_nodes
from support.databases import create_postgres_database, drop_postgres_database
from support.venues import Venue

BATCHES = [1, 2, 3, 5, 8, 13, 21]  # with the key's creation, 54 entries


def leaves_of(gateway: Gateway, venue_id: str) -> list[bytes]:
    with gateway.db.read() as conn:
        rows = conn.execute(
            select(events.c.leaf_hash).where(events.c.venue_id == venue_id).order_by(events.c.sequence)
        ).scalars()
        return [bytes.fromhex(leaf) for leaf in rows]


def pure_hash(leaves: list[bytes], start: int, end: int) -> bytes:
    return root_of(leaves[start:end])


@pytest.fixture
def grown(venue: Venue) -> Venue:
    """A venue whose log grew in batches of many sizes, one transaction each."""
    for size in BATCHES:
        venue.gateway.log_events(venue.admin, [{"action": "item_86d", "agent_id": "kitchen"}] * size)
    return venue


def test_the_stored_tree_gives_every_root_of_the_pure_tree(grown: Venue) -> None:
    leaves = leaves_of(grown.gateway, grown.id)
    assert len(leaves) == 1 + sum(BATCHES)
    with grown.gateway.db.read() as conn:
        for size in range(len(leaves) + 1):
            assert log.root(conn, grown.id, size) == root_of(leaves[:size]), size


def test_proofs_read_from_storage_are_the_pure_trees_proofs(grown: Venue) -> None:
    leaves = leaves_of(grown.gateway, grown.id)
    n = len(leaves)
    with grown.gateway.db.read() as conn:
        for size in (1, 2, 7, 8, 13, 32, n):
            root = root_of(leaves[:size])
            for index in range(size):
                proof = log.inclusion_proof(conn, grown.id, index, size)
                expected = [pure_hash(leaves, start, end) for start, end in inclusion_ranges(index, size)]
                assert proof == expected, (index, size)
                assert verify_inclusion(leaves[index], index, size, proof, root)
        for second in (13, 32, n):
            for first in range(second + 1):
                proof = log.consistency_proof(conn, grown.id, first, second, size=n)
                assert proof == [pure_hash(leaves, start, end) for start, end in consistency_ranges(first, second)]
                assert verify_consistency(first, second, root_of(leaves[:first]), root_of(leaves[:second]), proof)
        with pytest.raises(Unprocessable, match="first <= second"):
            log.consistency_proof(conn, grown.id, 3, n + 1, size=n)


def test_an_append_writes_the_leaf_and_the_parents_it_completes(grown: Venue) -> None:
    n = 1 + sum(BATCHES)
    with grown.gateway.db.read() as conn:
        stored = conn.execute(
            select(log_nodes.c.level, func.count()).where(log_nodes.c.venue_id == grown.id).group_by(log_nodes.c.level)
        ).all()
    # Level L holds one node per complete run of 2^L leaves: 2n - popcount(n) in all.
    assert dict(stored) == {level: n >> level for level in range(n.bit_length())}
    assert sum(count for _, count in stored) == 2 * n - bin(n).count("1")


def test_a_refused_batch_adds_nothing_to_the_tree(venue: Venue) -> None:
    gateway = venue.gateway
    before = leaves_of(gateway, venue.id)
    bad = [{"action": "item_86d"}, {"action": "Not An Action"}]
    with pytest.raises(Unprocessable):
        gateway.log_events(venue.admin, bad)
    gateway.log_events(venue.admin, [{"action": "item_86d"}])
    leaves = leaves_of(gateway, venue.id)
    assert len(leaves) == len(before) + 1
    with gateway.db.read() as conn:
        assert log.leaves(conn, venue.id) == leaves
        assert log.root(conn, venue.id, len(leaves)) == root_of(leaves)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def old_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A fresh database at migration 0001, before the tree existed."""
    if request.param == "sqlite":
        url = "sqlite:///" + str(tmp_path_factory.mktemp("old") / "old.db")
    else:
        url = create_postgres_database()
    database = Database(url)
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with database.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    yield database
    database.dispose()
    if request.param == "postgresql":
        drop_postgres_database(url)


def test_migration_0002_builds_the_tree_of_earlier_events(old_database: Database) -> None:
    rows = []
    for venue_id, count in (("old-a", 11), ("old-b", 3)):
        for sequence in range(count):
            entry = {"venue_id": venue_id, "sequence": sequence}
            rows.append(
                {
                    "venue_id": venue_id,
                    "sequence": sequence,
                    "id": f"evt_{venue_id}_{sequence:020d}",
                    "agent_id": "kitchen",
                    "action": "item_86d",
                    "actor": "cli",
                    "created_at": 0,
                    "leaf_hash": leaf_hash(canonical_json(entry)).hex(),
                }
            )
    with old_database.write() as conn:
        for venue_id, count in (("old-a", 11), ("old-b", 3)):
            conn.execute(
                text(
                    "INSERT INTO venues (id, name, currency, public_context, event_count, created_at)"
                    " VALUES (:id, :id, 'USD', false, :count, 0)"
                ),
                {"id": venue_id, "count": count},
            )
        conn.execute(events.insert(), rows)
    old_database.migrate()
    gateway = Gateway(old_database)
    for venue_id, count in (("old-a", 11), ("old-b", 3)):
        leaves = leaves_of(gateway, venue_id)
        with old_database.read() as conn:
            assert log.leaves(conn, venue_id) == leaves
            assert log.root(conn, venue_id, count) == root_of(leaves)
            assert log.first_wrong_node(conn, venue_id, leaves) is None
    # The tree goes on growing from where the migration left it.
    gateway.log_events(Principal.operator("old-a"), [{"action": "item_86d"}])
    leaves = leaves_of(gateway, "old-a")
    with old_database.read() as conn:
        assert log.root(conn, "old-a", 12) == root_of(leaves)


def test_entries_stored_before_occurred_at_existed_still_verify(old_database: Database) -> None:
    """Old rows hash as the entries of their day did, with no occurred_at in them; new events
    that carry one join the same log, and the whole log verifies against its signed checkpoint."""
    venue_id, created_at = "old-c", 1_767_225_600_000
    rows = []
    for sequence in range(5):
        row = {
            "venue_id": venue_id,
            "sequence": sequence,
            "id": f"evt_{venue_id}_{sequence:020d}",
            "agent_id": "kitchen",
            "action": "order_captured",
            "amount": 1250 + sequence,
            "currency": "USD",
            "direction": "inbound",
            "reason": "table 4",
            "actor": "cli",
            "created_at": created_at + sequence,
        }
        # The entry exactly as the gateway wrote it before occurred_at existed.
        entry = {
            **{name: row[name] for name in ("id", "venue_id", "sequence", "agent_id", "action", "currency")},
            **{name: row[name] for name in ("direction", "reason", "actor")},
            "v": 1,
            "created_at": iso(created_at + sequence),
            "amount": f"12.{50 + sequence}",
            "authorization_id": None,
            "context_digest": None,
        }
        rows.append({**row, "leaf_hash": leaf_hash(canonical_json(entry)).hex()})
    with old_database.write() as conn:
        conn.execute(
            text(
                "INSERT INTO venues (id, name, currency, public_context, event_count, created_at)"
                " VALUES (:id, :id, 'USD', false, 5, 0)"
            ),
            {"id": venue_id},
        )
        conn.execute(events.insert(), rows)
    old_database.migrate()
    gateway = Gateway(old_database)
    logged_at = iso(gateway.clock() - MINUTE)
    gateway.log_events(Principal.operator(venue_id), [{"action": "item_86d", "occurred_at": logged_at}])
    gateway.audit.sign(venue_id)
    report = gateway.audit.audit(venue_id, [TrustedKey(gateway.checkpointer.key.public_key)])
    assert report.ok, report.findings
    assert (report.entries, report.signed_size) == (6, 6)
    exported = [line["entry"] for line in gateway.audit.export(venue_id) if "entry" in line]
    assert ["occurred_at" in entry for entry in exported] == [False] * 5 + [True]
    assert exported[-1]["occurred_at"] == logged_at
