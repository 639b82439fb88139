"""``agenitry spool``: see and push the events clients kept on disk while a gateway was unreachable.

The spool belongs to the clients (:mod:`agenitry.spool`); ``flush`` is an ordinary client
that replays one scope (a gateway, venue and key) and closes, so it follows the same rules:
each spool file is replayed by one process at a time, and what cannot be delivered stays.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from agenitry import Agenitry, AgenitryError
from agenitry.gateway import cli_database
from agenitry.gateway.cli_options import Venue, database, explained, invocation, problem
from agenitry.gateway.errors import StorageBusy
from agenitry.spool import default_spool_dir, summaries

SpoolDir = Annotated[
    Optional[Path],
    typer.Option(
        "--spool-dir",
        help="The spool root [AGENITRY_SPOOL_DIR, else $XDG_STATE_HOME/agenitry/spool]",
        show_default=False,
    ),
]


def _root(spool_dir: Optional[Path]) -> Path:
    root = spool_dir or default_spool_dir()
    if root is None:
        raise problem("the spool is off (AGENITRY_SPOOL_DIR=off, or no home directory)")
    return root


def spool_status(spool_dir: SpoolDir = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List what waits in the spool: per gateway and venue, events, bytes, files (held = a client has them now)."""
    root = _root(spool_dir)
    scopes = list(summaries(root))
    if as_json:
        typer.echo(json.dumps([{**asdict(scope), "directory": str(scope.directory)} for scope in scopes], indent=2))
        return
    if not scopes:
        typer.echo(f"Nothing waits in {root}")
        return
    typer.echo(f"{'gateway':<32} {'venue':<20} {'events':>8} {'bytes':>12} {'files':>6} {'held':>5}")
    for s in scopes:
        typer.echo(f"{s.gateway:<32} {s.venue_id:<20} {s.events:>8} {s.bytes:>12} {s.files:>6} {s.held:>5}")


def spool_flush(
    venue: Venue,
    api_key: Annotated[
        Optional[str], typer.Option(envvar="AGENITRY_API_KEY", help="The key the events were logged with")
    ] = None,
    base_url: Annotated[
        Optional[str], typer.Option(envvar="AGENITRY_BASE_URL", help="The gateway [http://127.0.0.1:8700]")
    ] = None,
    db: Annotated[
        Optional[str],
        typer.Option(
            "--db",
            help="Flush an embedded client's spool into this database instead: its URL as `spool status` shows it,"
            " or a SQLite file's path",
            show_default=False,
        ),
    ] = None,
    spool_dir: SpoolDir = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the gateway")] = 30.0,
) -> None:
    """Deliver now what the spool holds for one gateway, venue and key; exit 1 if some of it still waits."""
    root = _root(spool_dir)
    embedded = _embedded_database(db)
    with explained():
        try:
            if embedded is not None:
                client = Agenitry.embedded(embedded, venue_id=venue, spool_dir=root)
            else:
                client = Agenitry(api_key, venue, base_url=base_url, spool_dir=root)
        except AgenitryError as exc:
            if invocation().debug:
                raise
            if embedded is not None and exc.status == StorageBusy.status:
                # The embedded gateway words a database it cannot open as busy; the driver says why.
                cause = cli_database.explain(exc, database(db))
                raise problem(cause.message, cause.hint) from None
            raise problem(exc.message) from None
    waiting = client.pending_events
    client.flush(timeout)
    left = client.pending_events
    client.close(timeout=0)  # what is left stays in the spool
    where = client.base_url if embedded is None else database(db).shown
    typer.echo(f"Delivered {waiting - left - client.dropped_events} event(s) to {where}")
    if client.dropped_events:
        typer.echo(f"{client.dropped_events} event(s) refused by the gateway (see the warnings above)")
    if left:
        typer.echo(f"{left} event(s) still wait in {root}")
        raise typer.Exit(code=1)


def _embedded_database(db: Optional[str]) -> Optional[str]:
    """The database to flush into, from ``--db`` here or typed before ``spool``; None: a gateway over HTTP.

    AGENITRY_DATABASE_URL alone does not count: a server's environment sets it, and the
    spool being flushed is an HTTP client's. The database is named on stderr like every
    command's, and must exist. A URL goes to the client as given, because an embedded
    client's spool is kept under the URL its application gave.
    """
    current = invocation()
    given = db or (current.db if current.db_typed else None)
    if given is None:
        return None
    target = database(given)
    with explained():
        cli_database.prepare(target, creates=False)
    return given if "://" in given else target.url


def spool_app(**settings: Any) -> typer.Typer:
    """The ``spool`` command group, made with the main app's ``settings``."""
    group = typer.Typer(help="Events clients kept on disk while the gateway was unreachable.", **settings)
    group.command("status")(spool_status)
    group.command("flush")(spool_flush)
    return group
