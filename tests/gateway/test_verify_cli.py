"""``agenitry verify`` and ``agenitry export``, and the ``agenitry log`` commands.

One event is verified from its verify link (fetched from a real server) or from a saved
.tlog-proof with its entry and the public key; a whole venue from the database or from an
export file. Exit code 0 only when everything holds; 1 names what does not; 2 when the
check could not run. An export edited in any way fails, naming the first entry concerned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from agenitry.gateway import Database, Gateway
from agenitry.gateway.cli import app
from support.live import LiveServer
from support.venues import Venue

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def log(gateway: Gateway, venue: Venue, count: int) -> list[dict[str, Any]]:
    return [
        gateway.log_event(venue.admin, {"action": "order_captured", "agent_id": "till", "amount": 5 + i}).body
        for i in range(count)
    ]


def test_one_event_from_its_verify_link(live: LiveServer, http: httpx.Client, venue: Venue, gateway: Gateway) -> None:
    [event] = log(gateway, venue, 1)
    link = f"{live.url}/verify/{venue.id}/{event['id']}"
    key = gateway.checkpointer.key.public_key_b64
    code, out, _ = run("verify", link, "--public-key", key)
    assert code == 0, out
    assert out.startswith(f"verified: {link} is entry #1 of log verify.example/agenitry/{venue.id}, unchanged")
    code, out, _ = run("verify", f"{live.url}/v1/verify/{venue.id}/{event['id']}", "--public-key", key, "--json")
    assert code == 0 and json.loads(out)["index"] == 1
    code, out, _ = run("verify", link, "--public-key", "A" * 43 + "=")
    assert code == 1 and "NOT VERIFIED" in out and "not signed by any trusted key" in out
    code, out, err = run("verify", link)
    assert code == 0 and "no --public-key given" in err
    code, _, err = run("verify", f"{live.url}/verify/{venue.id}/evt_0000000000000000000000000", "--public-key", key)
    assert code == 2 and "answered 404" in err
    code, _, err = run("verify", f"{live.url}/elsewhere", "--public-key", key)
    assert code == 2 and "not a verify link" in err


def test_one_event_offline_from_a_saved_tlog_proof(
    http: httpx.Client, venue: Venue, gateway: Gateway, tmp_path: Path
) -> None:
    [event] = log(gateway, venue, 1)
    document = http.get(f"/v1/verify/{venue.id}/{event['id']}").json()
    proof = tmp_path / "event.tlog-proof"
    proof.write_text(document["tlog_proof"])
    entry = tmp_path / "entry.json"
    entry.write_text(json.dumps(document["entry"]))
    key = tmp_path / "log.pub"
    key.write_text(gateway.checkpointer.key.public_key_b64 + "\n")
    assert run("verify", str(proof), "--public-key", str(key))[0] == 0
    assert run("verify", str(proof), "--entry", str(entry), "--public-key", str(key))[0] == 0
    entry.write_text(json.dumps({**document["entry"], "amount": "500.00"}))
    code, out, _ = run("verify", str(proof), "--entry", str(entry), "--public-key", str(key))
    assert code == 1 and "not the entry the proof carries" in out
    code, _, err = run("verify", str(proof))
    assert code == 2 and "--public-key" in err


def test_a_whole_venue_from_the_database(venue: Venue, gateway: Gateway) -> None:
    log(gateway, venue, 4)
    gateway.audit.sign(venue.id)
    key = gateway.checkpointer.key.public_key_b64
    code, out, _ = run("verify", "--db", gateway.db.url, "--venue", venue.id, "--public-key", key, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert (report["ok"], report["entries"], report["checkpoints"]) == (True, 5, 1)
    code, out, _ = run("verify", "--db", gateway.db.url, "--venue", venue.id)
    assert code == 0 and "Trusted the public keys listed in the database itself" in out
    code, _, err = run("verify", "--db", gateway.db.url, "--venue", "no-such-venue", "--public-key", key)
    assert code == 2 and f"Venue 'no-such-venue' not found in {gateway.db.url}" in err


def exported(gateway: Gateway, venue: Venue, path: Path) -> list[dict[str, Any]]:
    code, _, err = run("export", "--venue", venue.id, "--db", gateway.db.url, "-o", str(path))
    assert code == 0, err
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_whole_venue_from_an_export_and_every_edit_of_it_is_named(
    venue: Venue, gateway: Gateway, tmp_path: Path
) -> None:
    log(gateway, venue, 5)
    gateway.audit.sign(venue.id)  # size 6
    log(gateway, venue, 4)
    gateway.audit.sign(venue.id)  # size 10
    key = gateway.checkpointer.key.public_key_b64
    lines = exported(gateway, venue, tmp_path / "log.jsonl")
    header, entries, notes = lines[0], lines[1:11], lines[11:]
    assert header["format"] == "agenitry-log-export/v1" and header["size"] == 10
    assert [line["entry"]["sequence"] for line in entries] == list(range(10)) and len(notes) == 2
    code, out, _ = run("verify", str(tmp_path / "log.jsonl"), "--public-key", key)
    assert code == 0 and f"verified: venue {venue.id}: 10 entries, 2 signed checkpoints" in out

    def verdict(edited: list[dict[str, Any]]) -> tuple[str, int]:
        code, out, _ = run("verify", str(write(tmp_path / "edited.jsonl", edited)), "--public-key", key, "--json")
        assert code == 1, out
        first = json.loads(out)["findings"][0]
        return first["kind"], first["sequence"]

    changed = [*entries]
    changed[3] = {**changed[3], "entry": {**changed[3]["entry"], "amount": "99.00"}}
    assert verdict([header, *changed, *notes]) == ("changed", 3)
    assert verdict([header, *entries[:3], *entries[4:], *notes]) == ("removed", 3)
    assert verdict([header, *entries[:4], entries[5], entries[4], *entries[6:], *notes]) == ("reordered", 4)
    assert verdict([header, *entries[:7], entries[2], *entries[7:], *notes]) == ("inserted", 7)
    assert verdict([header, *entries[:8], *notes]) == ("removed", 8)
    code, _, err = run("verify", str(write(tmp_path / "junk.txt", [{"hello": 1}])), "--public-key", key)
    assert code == 2 and "neither a .tlog-proof nor an agenitry export" in err


def test_the_log_commands_make_and_show_keys_and_sign(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/log.db"
    assert run("venues", "create", "nobo", "--db", db)[0] == 0
    code, _, err = run("log", "checkpoint", "--venue", "nobo", "--db", db)
    assert code == 2 and "no signing key found" in err
    key_file = tmp_path / "signing.key"
    code, public, _ = run("log", "keygen", str(key_file))
    assert code == 0 and key_file.stat().st_mode & 0o777 == 0o600
    assert run("log", "keygen", str(key_file))[0] == 2  # never overwritten
    assert run("log", "public-key", "--signing-key", str(key_file), "--db", db)[1] == public
    code, note, _ = run("log", "checkpoint", "--venue", "nobo", "--db", db, "--signing-key", str(key_file))
    assert code == 0 and note.startswith("127.0.0.1:8700/agenitry/nobo\n0\n")  # no event yet: the empty tree
    code, out, _ = run("verify", "--db", db, "--venue", "nobo", "--public-key", public.strip())
    assert code == 0, out


def test_a_venues_redacted_keys_never_reach_its_public_pages(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/redact.db"
    code, _, _ = run("venues", "create", "nobo", "--public-context", "--redact", "guest_name", "--db", db)
    assert code == 0
    secret = run("keys", "create", "--venue", "nobo", "--role", "admin", "--db", db)[1].strip()
    gateway = Gateway(Database(db))
    admin = gateway.authenticate(secret)
    context = {"table": 7, "guest_name": "Ann", "Guest_Email": "a@b.c", "payment": {"card_number": "4242", "tip": 3}}
    event = gateway.log_event(admin, {"action": "order_captured", "context": context}).body
    shown = gateway.public_event("nobo", event["id"])["context"]
    assert shown == {"table": 7, "payment": {"tip": 3}}
    gateway.db.dispose()
