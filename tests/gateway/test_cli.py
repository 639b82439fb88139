"""The ``agenitry`` command: venues, keys, approvals and listings against a real database."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from typer.testing import CliRunner

from agenitry.gateway import Database, Gateway
from agenitry.gateway.cli import app
from agenitry.gateway.errors import Unauthenticated

runner = CliRunner()


@pytest.fixture
def db_url(tmp_path: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path}/cli.db"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_venue_and_keys_lifecycle(db_url: str) -> None:
    assert run("venues", "create", "nobo", "--currency", "eur", "--db", db_url)[0] == 0
    code, out, _ = run("venues", "list", "--json", "--db", db_url)
    assert [(v["id"], v["currency"]) for v in json.loads(out)] == [("nobo", "EUR")]

    code, out, err = run("keys", "create", "--venue", "nobo", "--role", "agent", "--agent-id", "voice", "--db", db_url)
    secret = out.strip()
    assert code == 0 and secret.startswith("ag_") and "not shown again" in err
    gateway = Gateway(Database(db_url))
    assert gateway.authenticate(secret).agent_id == "voice"

    code, out, _ = run("keys", "list", "--venue", "nobo", "--json", "--db", db_url)
    [listed] = json.loads(out)
    assert listed["prefix"] == secret[:11] and secret not in out

    assert run("keys", "revoke", listed["id"], "--venue", "nobo", "--db", db_url)[0] == 0
    with pytest.raises(Unauthenticated):
        gateway.authenticate(secret)


def test_errors_are_sentences_and_exit_nonzero(db_url: str) -> None:
    run("venues", "create", "nobo", "--db", db_url)
    code, _, err = run("venues", "create", "nobo", "--db", db_url)
    assert code == 1 and "already exists" in err
    code, _, err = run("venues", "create", "Bad Name!", "--db", db_url)
    assert code == 2 and "venue id" in err
    code, _, err = run("keys", "create", "--venue", "nobo", "--role", "root", "--db", db_url)
    assert code == 2 and "role must be admin or agent" in err
    code, _, err = run("keys", "create", "--venue", "elsewhere", "--role", "admin", "--db", db_url)
    assert code == 2 and f"Venue 'elsewhere' not found in {db_url}" in err
    code, _, err = run("serve", "--db", db_url, "--port", "70000")
    assert code == 2 and "port must be 1-65535" in err


def test_owner_approves_and_denies_pending_authorizations(db_url: str) -> None:
    run("venues", "create", "nobo", "--db", db_url)
    secret = run("keys", "create", "--venue", "nobo", "--role", "admin", "--db", db_url)[1].strip()
    gateway = Gateway(Database(db_url))
    admin = gateway.authenticate(secret)
    gateway.put_policy(admin, {"require_approval_above": 100})
    first = gateway.authorize(admin, {"action": "purchase_order", "amount": 250}).body["authorization_id"]
    second = gateway.authorize(admin, {"action": "purchase_order", "amount": 300}).body["authorization_id"]

    code, out, _ = run("authorizations", "--venue", "nobo", "--status", "pending", "--json", "--db", db_url)
    assert code == 0 and {a["id"] for a in json.loads(out)["authorizations"]} == {first, second}

    code, out, _ = run("approve", first, "--venue", "nobo", "--note", "known supplier", "--db", db_url)
    assert code == 0 and "approved" in out
    code, out, _ = run("deny", second, "--venue", "nobo", "--reason", "too much", "--db", db_url)
    assert code == 0 and "denied" in out

    approved = gateway.get_authorization(admin, first)
    assert approved["status"] == "approved" and approved["decided_by"] == "cli" and approved["note"] == "known supplier"
    assert gateway.get_authorization(admin, second)["denial_reason"] == "too much"

    code, _, err = run("approve", first, "--venue", "nobo", "--db", db_url)
    assert code == 1 and "invalid_transition" in err


def test_approve_takes_the_servers_execute_window(db_url: str) -> None:
    run("venues", "create", "nobo", "--db", db_url)
    secret = run("keys", "create", "--venue", "nobo", "--role", "admin", "--db", db_url)[1].strip()
    gateway = Gateway(Database(db_url))
    admin = gateway.authenticate(secret)
    gateway.put_policy(admin, {"require_approval_above": 100})
    pending = gateway.authorize(admin, {"action": "purchase_order", "amount": 250}).body["authorization_id"]

    code, out, _ = run("approve", pending, "--venue", "nobo", "--execute-window", "60", "--db", db_url)
    record = gateway.get_authorization(admin, pending)
    assert code == 0 and record["expires_at"] in out
    approved_at = datetime.fromisoformat(record["approved_at"].replace("Z", "+00:00"))
    expires_at = datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00"))
    assert (expires_at - approved_at).total_seconds() == 60


def test_bad_settings_in_the_environment_are_named(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENITRY_EXECUTE_WINDOW", "soon")
    code, _, err = run("venues", "list", "--db", db_url)
    assert code == 2 and "AGENITRY_EXECUTE_WINDOW='soon'" in err


def test_names_longer_than_their_column_are_refused(db_url: str) -> None:
    code, _, err = run("venues", "create", "nobo", "--name", "n" * 201, "--db", db_url)
    assert code == 2 and "at most 200 characters" in err
    run("venues", "create", "nobo", "--db", db_url)
    code, _, err = run("keys", "create", "--venue", "nobo", "--role", "admin", "--name", "k" * 201, "--db", db_url)
    assert code == 2 and "at most 200 characters" in err
