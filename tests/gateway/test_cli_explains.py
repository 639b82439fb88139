"""The ``agenitry`` command explains itself: where its database is, and every common
mistake in one or two lines with exit code 2, run as a user runs it (a subprocess with its
own HOME and working directory)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from support.databases import server_url


class Cli:
    """``agenitry`` in a subprocess, with a fresh HOME and no AGENITRY_* or XDG variables."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENITRY_", "XDG_"))}
        self.env["HOME"] = str(home)
        self.default = home / ".local" / "share" / "agenitry" / "agenitry.db"

    def __call__(self, *args: str, cwd: Optional[Path] = None, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agenitry.gateway.cli", *args],
            cwd=cwd or self.home,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    (tmp_path / "home").mkdir()
    return Cli(tmp_path / "home")


def refused(done: subprocess.CompletedProcess[str], *lines: str) -> None:
    """Exit code 2, and stderr is exactly ``lines`` after the database line, no traceback."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if not line.startswith("database: ")]
    assert said == list(lines)


def test_the_default_database_is_the_same_from_any_directory_and_is_named(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    made = cli("venues", "create", "nobo", cwd=tmp_path / "a")
    assert made.returncode == 0, made.stderr
    assert made.stderr.splitlines()[:2] == [
        f"database: sqlite:///{cli.default}",
        f"created {cli.default.parent} (mode 0700) for the database",
    ]
    assert stat.S_IMODE(cli.default.parent.stat().st_mode) == 0o700
    listed = cli("venues", "list", cwd=tmp_path / "b")
    assert listed.returncode == 0 and listed.stdout.startswith("nobo ")
    assert listed.stderr == f"database: sqlite:///{cli.default}\n"
    assert not list((tmp_path / "a").iterdir()) and not list((tmp_path / "b").iterdir())


def test_xdg_data_home_moves_the_default(cli: Cli, tmp_path: Path) -> None:
    done = cli("venues", "create", "nobo", XDG_DATA_HOME=str(tmp_path / "data"))
    assert done.returncode == 0 and (tmp_path / "data" / "agenitry" / "agenitry.db").exists()
    assert not cli.default.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["venues", "list"],
        ["authorizations", "--venue", "nobo"],
        ["keys", "list", "--venue", "nobo"],
        ["keys", "create", "--venue", "nobo", "--role", "admin"],
        ["approve", "auth_x", "--venue", "nobo"],
        ["deny", "auth_x", "--venue", "nobo"],
        ["export", "--venue", "nobo"],
        ["verify", "--venue", "nobo"],
    ],
)
def test_commands_that_need_a_database_never_create_one(cli: Cli, command: list[str]) -> None:
    refused(
        cli(*command),
        f"error: no database at {cli.default}",
        "hint: create a venue first with `agenitry venues create NAME`",
    )
    assert not cli.default.parent.exists()


def test_a_plain_path_is_a_sqlite_file_and_its_directory_must_exist(cli: Cli) -> None:
    done = cli("--db", "agenitry.db", "venues", "create", "nobo")
    assert done.returncode == 0 and (cli.home / "agenitry.db").exists()
    assert done.stderr.startswith(f"database: sqlite:///{cli.home / 'agenitry.db'}\n")
    assert cli("venues", "list", "--db", "./agenitry.db").stdout.startswith("nobo ")

    refused(
        cli("venues", "create", "nobo", "--db", "sqlite:////nonexistent/x.db"),
        "error: directory /nonexistent does not exist",
        "hint: create it first, or give another path with --db",
    )
    assert not Path("/nonexistent").exists()
    refused(
        cli("venues", "list", "--db", "x.db"),
        f"error: no database at {cli.home / 'x.db'}",
        f"hint: create a venue first with `agenitry venues create NAME --db sqlite:///{cli.home / 'x.db'}`",
    )


def test_a_missing_venue_is_named_with_the_database_looked_in(cli: Cli) -> None:
    cli("venues", "create", "nobo")
    refused(
        cli("authorizations", "--venue", "nobo-downtown"),
        f"error: Venue 'nobo-downtown' not found in sqlite:///{cli.default} (venue_not_found)",
    )


@pytest.mark.parametrize(
    ("url", "lines"),
    [
        (
            server_url("does_not_exist"),
            [
                'error: cannot connect to the database: database "does_not_exist" does not exist',
                "hint: create it (createdb does_not_exist) or give another database with --db",
            ],
        ),
        (
            "postgresql://postgres@127.0.0.1:1/agenitry",
            [
                "error: cannot connect to the database: connection refused",
                "hint: is PostgreSQL running and reachable at 127.0.0.1:1? Check --db",
            ],
        ),
        (
            server_url("postgres").replace("://postgres@", "://no_such_role:secret@"),
            [
                'error: cannot connect to the database: role "no_such_role" does not exist',
                "hint: check the user and password in --db (or AGENITRY_DATABASE_URL)",
            ],
        ),
    ],
)
def test_postgresql_mistakes_give_their_cause(cli: Cli, url: str, lines: list[str]) -> None:
    done = cli("venues", "list", AGENITRY_DATABASE_URL=url)
    refused(done, *lines)
    assert "secret" not in done.stderr


def test_debug_shows_the_traceback(cli: Cli) -> None:
    url = "postgresql://postgres@127.0.0.1:1/agenitry"
    for done in (
        cli("--debug", "--db", url, "venues", "list"),
        cli("--db", url, "venues", "list", AGENITRY_DEBUG="1"),
    ):
        assert done.returncode == 1 and "Traceback" in done.stderr and "Connection refused" in done.stderr


def test_a_busy_port_is_said_before_startup(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("serve", "--port", str(port))
    refused(done, f"error: port {port} on 127.0.0.1 is in use (another agenitry serve?); choose another with --port")
    assert "startup complete" not in done.stderr


def test_an_agent_key_needs_its_agent(cli: Cli) -> None:
    cli("venues", "create", "nobo")
    refused(
        cli("keys", "create", "--venue", "nobo", "--role", "agent"),
        "error: an agent key needs --agent-id (the agent it is bound to)",
    )
    refused(
        cli("keys", "create", "--venue", "nobo", "--role", "admin", "--agent-id", "voice"),
        "error: an admin key acts for the whole venue: leave out --agent-id, or give --role agent",
    )


def test_help_shows_flags_plainly(cli: Cli) -> None:
    done = cli("venues", "create", "--help")
    assert "--public-context " in done.stdout and "<bool>" not in done.stdout and "--no-" not in done.stdout
    assert "[default: USD]" in done.stdout


@pytest.mark.parametrize(
    ("command", "line"),
    [
        (["keys", "create", "--venue", "nobo", "--role", "boss"], "error: role must be admin or agent (invalid_role)"),
        (
            ["keys", "create", "--venue", "nobo", "--role", "agent", "--agent-id", "no spaces"],
            "error: agent_id must be 1-128 characters: letters, digits and _ . : @ - (invalid_agent_id)",
        ),
        (
            ["venues", "create", "Nobo Downtown"],
            "error: A venue id is 1-64 lower-case letters, digits, _ and -, such as 'nobo-downtown' (invalid_venue_id)",
        ),
        (
            ["venues", "create", "elsewhere", "--currency", "usdx"],
            "error: 'usdx' is not an ISO 4217 currency code (invalid_currency)",
        ),
        (
            ["authorizations", "--venue", "nobo", "--status", "done"],
            "error: status must be one of pending, approved, denied, expired, reversed, executed, settled"
            " (invalid_status)",
        ),
        (
            ["approve", "auth_x", "--venue", "nobo", "--execute-window", "0"],
            "error: Invalid gateway settings: execute_window must be between 1 second and 365 days",
        ),
        (
            ["serve", "--approval-window", "99999999"],
            "error: Invalid gateway settings: approval_window must be between 1 second and 365 days",
        ),
        (
            ["export", "--venue", "nobo", "-o", "missing/log.jsonl"],
            "error: cannot write missing/log.jsonl: No such file or directory",
        ),
    ],
)
def test_a_value_the_gateway_refuses_is_one_line_and_exit_2(cli: Cli, command: list[str], line: str) -> None:
    cli("venues", "create", "nobo")
    done = cli(*command)
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    assert [said for said in done.stderr.splitlines() if said.startswith("error: ")] == [line]


def test_spool_flush_into_a_database_resolves_it_like_every_command(cli: Cli) -> None:
    missing = cli.home / "x.db"
    for flush in (
        cli("spool", "flush", "--venue", "nobo", "--db", "x.db"),
        cli("--db", "x.db", "spool", "flush", "--venue", "nobo"),
    ):
        assert flush.stderr.startswith(f"database: sqlite:///{missing}\n")
        refused(
            flush,
            f"error: no database at {missing}",
            f"hint: create a venue first with `agenitry venues create NAME --db sqlite:///{missing}`",
        )
    assert not missing.exists()

    cli("venues", "create", "nobo", "--db", "x.db")
    done = cli("spool", "flush", "--venue", "nobo", "--db", "x.db")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"Delivered 0 event(s) to sqlite:///{missing}\n"

    refused_server = cli("spool", "flush", "--venue", "nobo", "--db", "postgresql://postgres@127.0.0.1:1/agenitry")
    assert refused_server.returncode == 2 and "Traceback" not in refused_server.stderr
    assert refused_server.stderr.splitlines()[-2:] == [
        "error: cannot connect to the database: connection refused",
        "hint: is PostgreSQL running and reachable at 127.0.0.1:1? Check --db",
    ]


def test_spool_flush_over_http_ignores_the_servers_database_variable(cli: Cli) -> None:
    done = cli(
        *("spool", "flush", "--venue", "nobo", "--api-key", "ag_x", "--base-url", "http://127.0.0.1:1"),
        AGENITRY_DATABASE_URL=str(cli.home / "x.db"),
    )
    assert done.returncode == 0 and done.stdout == "Delivered 0 event(s) to http://127.0.0.1:1\n"
    assert done.stderr == ""


def test_serve_help_shows_each_default_with_its_variable(cli: Cli) -> None:
    text = " ".join(cli("serve", "--help").stdout.split())
    for option, shown in [
        ("--port <int> The port to listen on", "[env var: AGENITRY_PORT; default: 8700]"),
        ("--execute-window <float> Seconds to execute an approval", "[env var: AGENITRY_EXECUTE_WINDOW; default: 300]"),
        ("--agent-byte-quota <int>", "[env var: AGENITRY_AGENT_BYTE_QUOTA; default: 10485760]"),
        ("--public-url <str> Base URL of verify links", "[env var: AGENITRY_PUBLIC_URL; default: http://HOST:PORT]"),
    ]:
        assert f"{option}" in text and shown in text
    assert "[300]" not in text


def test_serve_takes_its_defaults_from_the_environment_after_its_options(cli: Cli) -> None:
    done = cli("serve", "--execute-window", "5", AGENITRY_EXECUTE_WINDOW="0", AGENITRY_APPROVAL_WINDOW="0")
    refused(done, "error: Invalid gateway settings: approval_window must be between 1 second and 365 days")


def test_keygen_never_creates_a_directory(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "keys"
    refused(
        cli("log", "keygen", str(missing / "next.key")), f"error: directory {missing} does not exist; create it first"
    )
    assert not missing.exists()
    missing.mkdir()
    made = cli("log", "keygen", str(missing / "next.key"))
    assert made.returncode == 0, made.stderr
    assert (missing / "next.key").stat().st_mode & 0o777 == 0o600
