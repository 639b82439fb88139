"""``agenitry webhooks``: add, list, remove, deliveries and retry against a real SQLite database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agenitry.gateway import Database, Gateway, Principal
from agenitry.gateway._clock import parse_iso
from agenitry.gateway.cli import app
from agenitry.gateway.service.webhooks import RETRY_SCHEDULE, Deliverer
from support.processes import free_port

runner = CliRunner()
VENUE = "nobo"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    assert run("venues", "create", VENUE, "--db", url)[0] == 0
    return url


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_an_owner_adds_lists_and_removes_endpoints(db_url: str) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    code, out, err = run(
        *("webhooks", "add", "--venue", VENUE, "--url", url, "--db", db_url),
        *("--event", "authorization.pending", "--events", "authorization.approved, policy.updated"),
        *("--format", "slack", "--description", "#approvals"),
    )
    secret = out.strip()
    assert code == 0 and secret.startswith("whsec_") and len(out.splitlines()) == 1
    assert "not shown again" in err and "authorization.pending, authorization.approved, policy.updated" in err

    code, out, _ = run("webhooks", "list", "--venue", VENUE, "--json", "--db", db_url)
    [listed] = json.loads(out)
    assert (listed["url"], listed["format"], listed["description"]) == (url, "slack", "#approvals")
    assert listed["events"] == ["authorization.pending", "authorization.approved", "policy.updated"]
    assert secret not in out and listed["created_by"] == "cli"
    code, out, _ = run("webhooks", "list", "--venue", VENUE, "--db", db_url)
    assert code == 0 and listed["id"] in out and "active" in out and secret not in out

    code, out, _ = run("webhooks", "remove", listed["id"], "--venue", VENUE, "--db", db_url)
    assert (code, out.strip()) == (0, f"Removed {listed['id']}.")
    assert "removed" in run("webhooks", "list", "--venue", VENUE, "--db", db_url)[1]


def test_deliveries_and_a_retry(db_url: str) -> None:
    code, out, _ = run(
        "webhooks", "add", "--venue", VENUE, "--url", f"http://127.0.0.1:{free_port()}/h", "--db", db_url
    )
    code, out, _ = run("webhooks", "list", "--venue", VENUE, "--json", "--db", db_url)
    [endpoint] = json.loads(out)
    database = Database(db_url)
    try:
        gateway = Gateway(database)
        gateway.put_policy(Principal.operator(VENUE), {"max_single_amount": 10})
        Deliverer(gateway.webhooks, timeout=5).run_once()  # nothing listens: the attempt fails
        code, out, _ = run("webhooks", "deliveries", endpoint["id"], "--venue", VENUE, "--db", db_url)
        [line] = out.splitlines()
        assert code == 0 and "policy.updated" in line and "pending" in line and "1 attempt(s)" in line
        assert "No answer" in line and " next " in line
        message_id = line.split()[0]
        code, out, _ = run("webhooks", "retry", message_id, "--venue", VENUE, "--db", db_url)
        assert code == 0 and out.startswith(f"{message_id} is due now")
        [retried] = gateway.webhooks.deliveries(Principal.operator(VENUE), endpoint["id"])["deliveries"]
        # Due now, not after the schedule's first wait of five seconds.
        due, attempted = parse_iso(retried["next_attempt_at"]), parse_iso(retried["attempts"][0]["attempted_at"])
        assert retried["status"] == "pending" and due is not None and attempted is not None
        assert due - attempted < RETRY_SCHEDULE[0]
        code, out, _ = run("webhooks", "deliveries", endpoint["id"], "--venue", VENUE, "--json", "--db", db_url)
        assert json.loads(out)["deliveries"][0]["id"] == message_id
    finally:
        database.dispose()


def test_mistakes_are_one_line_and_a_nonzero_exit(db_url: str) -> None:
    code, _, err = run("webhooks", "add", "--venue", VENUE, "--url", "ftp://files.example.com", "--db", db_url)
    assert code == 2 and "this one's scheme is 'ftp'" in err and "(invalid_url)" in err
    bad_type = ("--url", "https://example.com/h", "--events", "authorization.aproved")
    code, _, err = run("webhooks", "add", "--venue", VENUE, *bad_type, "--db", db_url)
    assert code == 2 and "did you mean 'authorization.approved'?" in err
    code, _, err = run(
        "webhooks", "add", "--venue", VENUE, "--url", "https://example.com/h", "--events", ",", "--db", db_url
    )
    assert code == 2 and "names no event type" in err
    code, _, err = run("webhooks", "remove", "wh_nope", "--venue", VENUE, "--db", db_url)
    assert code == 1 and "Webhook 'wh_nope' not found (webhook_not_found)" in err
    code, _, err = run("webhooks", "retry", "msg_nope", "--venue", VENUE, "--db", db_url)
    assert code == 1 and "(message_not_found)" in err
    code, _, err = run("webhooks", "list", "--venue", "elsewhere", "--db", db_url)
    assert code == 2 and "venue_not_found" in err
    assert run("webhooks", "list", "--venue", VENUE, "--json", "--db", db_url)[1].strip() == "[]"
