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
