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
        typer.secho("error: the spool is off (AGENITRY_SPOOL_DIR=off, or no home directory)", err=True, fg="red")
        raise typer.Exit(code=2)
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
    venue: Annotated[str, typer.Option("--venue", envvar="AGENITRY_VENUE_ID", help="The venue id")],
    api_key: Annotated[
        Optional[str], typer.Option(envvar="AGENITRY_API_KEY", help="The key the events were logged with")
    ] = None,
    base_url: Annotated[
        Optional[str], typer.Option(envvar="AGENITRY_BASE_URL", help="The gateway [http://127.0.0.1:8700]")
    ] = None,
    db: Annotated[
        Optional[str], typer.Option("--db", help="Flush an embedded client's spool into this database instead")
    ] = None,
    spool_dir: SpoolDir = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the gateway")] = 30.0,
) -> None:
    """Deliver now what the spool holds for one gateway, venue and key; exit 1 if some of it still waits."""
    root = _root(spool_dir)
    try:
        if db is not None:
            client = Agenitry.embedded(db, venue_id=venue, spool_dir=root)
        else:
            client = Agenitry(api_key, venue, base_url=base_url, spool_dir=root)
    except AgenitryError as exc:
        typer.secho(f"error: {exc.message}", err=True, fg="red")
        raise typer.Exit(code=2) from None
    waiting = client.pending_events
    client.flush(timeout)
    left = client.pending_events
    client.close(timeout=0)  # what is left stays in the spool
    typer.echo(
        f"Delivered {waiting - left - client.dropped_events} event(s) to {client.base_url if db is None else db}"
    )
    if client.dropped_events:
        typer.echo(f"{client.dropped_events} event(s) refused by the gateway (see the warnings above)")
    if left:
        typer.echo(f"{left} event(s) still wait in {root}")
        raise typer.Exit(code=1)


def spool_app(**settings: Any) -> typer.Typer:
    """The ``spool`` command group, made with the main app's ``settings``."""
    group = typer.Typer(help="Events clients kept on disk while the gateway was unreachable.", **settings)
    group.command("status")(spool_status)
    group.command("flush")(spool_flush)
    return group
