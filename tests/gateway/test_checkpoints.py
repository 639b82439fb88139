"""Signed checkpoints and the key that signs them, on SQLite and PostgreSQL.

The signing key is generated once into a file only its owner can read, or given as a
seed; a key rotation leaves every older checkpoint verifiable. Checkpoints are C2SP
signed notes, signed every M entries (in the appending transaction), at least every N
seconds (by the sweep) and on demand; all are kept, and each extends the one before.
"""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest

from agenitry._merkle import verify_consistency
from agenitry._tlog import Checkpoint, TrustedKey, open_checkpoint, split_note
from agenitry._verify import verify_event, verify_log
from agenitry.gateway import Database, Gateway, ManualClock, Settings
from agenitry.gateway.service import checkpoints, log
from agenitry.gateway.service.signing import SigningKey
from support.venues import Venue, make_venue

SEED = bytes(range(32))


def sizes(gateway: Gateway, venue_id: str) -> list[int]:
    with gateway.db.read() as conn:
        return [checkpoint.size for checkpoint in checkpoints.every_checkpoint(conn, venue_id)]


def log_one(venue: Venue, count: int = 1) -> None:
    for _ in range(count):
        venue.gateway.log_event(venue.admin, {"action": "item_86d", "agent_id": "kitchen"})


# -- the key ----------------------------------------------------------------------------------


def test_a_key_is_generated_once_beside_the_database_readable_by_its_owner_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/data/agenitry.db"
    first = SigningKey.from_setting("", url)
    path = tmp_path / "data" / "agenitry-signing.key"
    assert first is not None and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = SigningKey.from_setting("", url)
    assert again is not None and again.public_key == first.public_key
    assert [file.name for file in path.parent.iterdir()] == ["agenitry-signing.key"]  # no draft left behind
    named = tmp_path / "keys" / "log.key"
    made = SigningKey.from_setting(str(named), url)
    assert made is not None and made.public_key != first.public_key
    assert stat.S_IMODE(named.stat().st_mode) == 0o600


def test_a_key_given_as_a_seed_and_what_is_refused(tmp_path: Path) -> None:
    seed = base64.b64encode(SEED).decode()
    key = SigningKey.from_setting(f"base64:{seed}", "postgresql://db/agenitry")
    assert key is not None and key.public_key == SigningKey(SEED).public_key
    with pytest.raises(ValueError, match="32-byte"):
        SigningKey.from_setting("base64:" + base64.b64encode(b"short").decode(), "sqlite:///x.db")
    with pytest.raises(ValueError, match="base64"):
        SigningKey.from_setting("base64:not base64!", "sqlite:///x.db")
    broken = tmp_path / "broken.key"
    broken.write_text("garbage")
    with pytest.raises(ValueError, match=r"broken\.key"):
        SigningKey.from_setting(str(broken), "sqlite:///x.db")
    # No file is ever made for PostgreSQL without a setting, and other commands make none.
    assert SigningKey.from_setting("", "postgresql://db/agenitry", create=False) is None
    assert SigningKey.from_setting("", f"sqlite:///{tmp_path}/none.db", create=False) is None
    assert not (tmp_path / "agenitry-signing.key").exists()


def test_bad_checkpoint_settings_are_named() -> None:
    with pytest.raises(ValueError, match="checkpoint_every must not be negative"):
        Settings(checkpoint_every=-1)
    with pytest.raises(ValueError, match="log_origin must not contain spaces"):
        Settings(log_origin="my log")
    with pytest.raises(ValueError, match="public_rate_burst must be at least 1"):
        Settings(public_rate_burst=0)


# -- checkpoints --------------------------------------------------------------------------------


def test_a_checkpoint_is_a_c2sp_signed_note_of_the_venues_tree(gateway: Gateway, venue: Venue) -> None:
    log_one(venue, 4)
    signed = gateway.audit.sign(venue.id)
    text, [signature] = split_note(signed.note)
    origin = f"verify.example/agenitry/{venue.id}"
    key = gateway.checkpointer.key.public_key
    assert text == f"{origin}\n5\n{base64.b64encode(signed.root).decode()}\n"
    assert (
        signed.note
        == text + f"\n\u2014 {origin} " + base64.b64encode(signature.key_id + signature.signature).decode() + "\n"
    )
    assert signature.name == origin
    assert signature.key_id == hashlib.sha256(origin.encode() + b"\n\x01" + key).digest()[:4]
    checkpoint, signer = open_checkpoint(signed.note, [TrustedKey(key)])
    with gateway.db.read() as conn:
        assert checkpoint == Checkpoint(origin, 5, log.root(conn, venue.id, 5))
    assert signer.public_key == key
    # Signing again with nothing new keeps the checkpoint there is.
    assert gateway.audit.sign(venue.id) == signed


def test_a_checkpoint_every_m_entries_in_the_appending_transaction(database: Database, clock: ManualClock) -> None:
    gateway = Gateway(database, clock=clock, checkpoint_every=5, checkpoint_interval=0)
    venue = make_venue(gateway)  # entry #0: its key's creation
    log_one(venue, 11)
    assert sizes(gateway, venue.id) == [5, 10]
    gateway.log_events(venue.admin, [{"action": "item_86d"}] * 12)  # 12 -> 24 crosses 15 and 20: one checkpoint
    assert sizes(gateway, venue.id) == [5, 10, 24]


def test_a_checkpoint_at_least_every_n_seconds_through_the_sweep(database: Database, clock: ManualClock) -> None:
    gateway = Gateway(database, clock=clock, checkpoint_every=0, checkpoint_interval=60)
    venue = make_venue(gateway)
    log_one(venue, 3)
    gateway.sweep()
    assert sizes(gateway, venue.id) == [4]
    log_one(venue, 2)
    gateway.sweep()
    clock.advance(59_999)
    gateway.sweep()
    assert sizes(gateway, venue.id) == [4]
    clock.advance(1)
    gateway.sweep()
    assert sizes(gateway, venue.id) == [4, 6]
    clock.advance(3_600_000)
    gateway.sweep()  # nothing new: no new checkpoint
    assert sizes(gateway, venue.id) == [4, 6]


def test_every_checkpoint_is_kept_and_extends_the_one_before(gateway: Gateway, venue: Venue) -> None:
    for count in (1, 2, 5, 1):
        log_one(venue, count)
        gateway.audit.sign(venue.id)
    with gateway.db.read() as conn:
        kept = checkpoints.every_checkpoint(conn, venue.id)
        assert [(c.number, c.size) for c in kept] == [(0, 2), (1, 4), (2, 9), (3, 10)]
        for before, after in zip(kept, kept[1:]):
            proof = log.consistency_proof(conn, venue.id, before.size, after.size, size=10)
            assert verify_consistency(before.size, after.size, before.root, after.root, proof)


def test_the_origin_comes_from_a_setting_and_stays_with_the_venue(database: Database, clock: ManualClock) -> None:
    first = Gateway(database, clock=clock, log_origin="audit.example/logs")
    venue = make_venue(first)
    assert first.audit.sign(venue.id).origin == f"audit.example/logs/{venue.id}"
    moved = Gateway(database, clock=clock, public_url="https://elsewhere.example")
    log_one(Venue(moved, venue.id, venue.admin, venue.admin_key))
    assert moved.audit.sign(venue.id).origin == f"audit.example/logs/{venue.id}"
    assert Gateway(database, public_url="https://x.example:8443").checkpointer.prefix == "x.example:8443/agenitry"


def test_a_rotated_key_signs_new_checkpoints_and_old_ones_stay_verifiable(
    database: Database, clock: ManualClock
) -> None:
    old_key, new_key = SigningKey(SEED), SigningKey.generate()
    before = Gateway(database, clock=clock, signing_key=old_key, public_url="https://verify.example")
    venue = make_venue(before)
    event = before.log_event(venue.admin, {"action": "item_86d"}).body
    before.audit.sign(venue.id)
    after = Gateway(database, clock=clock, signing_key=new_key, public_url="https://verify.example")
    # The newest checkpoint covers everything yet was signed by the old key: the new key signs it again.
    assert after.audit.sign(venue.id).public_key == new_key.public_key_b64
    keys = after.audit.public_keys()
    assert keys["public_key"] == new_key.public_key_b64
    listed = {key["public_key"]: key["current"] for key in keys["keys"]}
    assert listed[old_key.public_key_b64] is False and listed[new_key.public_key_b64] is True
    lines = list(after.audit.export(venue.id))
    entries = [line["entry"] for line in lines if "entry" in line]
    notes = [line["checkpoint"] for line in lines if "checkpoint" in line]
    report = verify_log(venue.id, entries, notes, [TrustedKey(old_key.public_key), TrustedKey(new_key.public_key)])
    assert report.ok and report.checkpoints == 2, report.findings
    only_new = verify_log(venue.id, entries, notes, [TrustedKey(new_key.public_key)])
    assert [finding.kind for finding in only_new.findings] == ["signature"]
    document = after.audit.document(after.public_event(venue.id, event["id"]))
    assert document["public_key"] == new_key.public_key_b64
    assert verify_event(document, new_key.public_key_b64).ok
    assert not verify_event(document, old_key.public_key_b64).ok


def test_a_proof_of_an_entry_no_checkpoint_covers_signs_one(gateway: Gateway, venue: Venue) -> None:
    gateway.audit.sign(venue.id)
    event = gateway.log_event(venue.admin, {"action": "item_86d"}).body
    assert sizes(gateway, venue.id) == [1]
    document = gateway.audit.document(gateway.public_event(venue.id, event["id"]))
    assert sizes(gateway, venue.id) == [1, 2]
    assert document["verified"] and document["proof"]["tree_size"] == 2
    # A covered entry is proven against the newest checkpoint; nothing new is signed.
    gateway.audit.document(gateway.public_event(venue.id, event["id"]))
    assert sizes(gateway, venue.id) == [1, 2]
