"""The ``agenitry`` command: serve the gateway and administer venues, keys and approvals.

Every command that touches the database takes ``--db`` (or AGENITRY_DATABASE_URL); the
default is ``agenitry.db`` in the working directory.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer

from agenitry.gateway.errors import GatewayError
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.gateway import Gateway
from agenitry.gateway.settings import Settings
from agenitry.gateway.store.database import Database

app = typer.Typer(help="Agenitry: spend authority and a verifiable audit trail for AI agents.", no_args_is_help=True)
venues_app = typer.Typer(help="Create and list venues.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(venues_app, name="venues")
app.add_typer(keys_app, name="keys")

Db = Annotated[
    Optional[str],
    typer.Option(
        "--db", envvar="AGENITRY_DATABASE_URL", help="sqlite:///path.db or postgresql://...", show_default=False
    ),
]
Venue = Annotated[str, typer.Option("--venue", envvar="AGENITRY_VENUE_ID", help="The venue id")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
ExecuteWindow = Annotated[
    Optional[float], typer.Option(envvar="AGENITRY_EXECUTE_WINDOW", help="Seconds to execute an approval [300]")
]


def _gateway(db: Optional[str], **settings: Any) -> Gateway:
    try:
        config = Settings.from_env(database_url=db, **settings)
    except ValueError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    gateway = Gateway(
        Database(config.database_url),
        execute_window=config.execute_window,
        approval_window=config.approval_window,
        public_url=config.verify_base_url,
    )
    gateway.migrate()
    return gateway


def _fail(exc: GatewayError) -> typer.Exit:
    typer.secho(f"error: {exc.message} ({exc.code})", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


@app.command()
def serve(
    db: Db = None,
    host: Annotated[Optional[str], typer.Option(envvar="AGENITRY_HOST", help="[default: 127.0.0.1]")] = None,
    port: Annotated[Optional[int], typer.Option(envvar="AGENITRY_PORT", help="[default: 8700]")] = None,
    execute_window: ExecuteWindow = None,
    approval_window: Annotated[
        Optional[float], typer.Option(envvar="AGENITRY_APPROVAL_WINDOW", help="Seconds a pending request waits [86400]")
    ] = None,
    public_url: Annotated[
        Optional[str], typer.Option(envvar="AGENITRY_PUBLIC_URL", help="Base URL of verify links")
    ] = None,
    sweep_interval: Annotated[
        Optional[float], typer.Option(envvar="AGENITRY_SWEEP_INTERVAL", help="Seconds between expiry sweeps [5]")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level")] = "info",
) -> None:
    """Run the gateway's HTTP API (migrating the database first)."""
    import uvicorn

    from agenitry.gateway.api.app import create_app

    try:
        settings = Settings.from_env(
            database_url=db,
            host=host,
            port=port,
            execute_window=execute_window,
            approval_window=approval_window,
            public_url=public_url,
            sweep_interval=sweep_interval,
        )
    except ValueError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    gateway = Gateway(
        Database(settings.database_url),
        execute_window=settings.execute_window,
        approval_window=settings.approval_window,
        public_url=settings.verify_base_url,
    )
    gateway.migrate()
    typer.echo(f"Agenitry gateway on http://{settings.host}:{settings.port} ({gateway.db.dialect})")
    try:
        uvicorn.run(
            create_app(gateway, max_body_bytes=settings.max_body_bytes, sweep_interval=settings.sweep_interval),
            host=settings.host,
            port=settings.port,
            log_level=log_level,
        )
    finally:
        gateway.db.dispose()


@app.command()
def migrate(db: Db = None) -> None:
    """Create or upgrade the database schema."""
    _gateway(db)
    typer.echo("Database is at the newest schema.")


@venues_app.command("create")
def venues_create(
    venue_id: Annotated[str, typer.Argument(metavar="NAME", help="The venue id, e.g. nobo-downtown")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code of the venue's money")] = "USD",
    name: Annotated[Optional[str], typer.Option(help="A display name")] = None,
    public_context: Annotated[bool, typer.Option(help="Show event context on public verify pages")] = False,
    db: Db = None,
) -> None:
    """Create a venue."""
    try:
        venue = _gateway(db).create_venue(venue_id, name=name, currency=currency, public_context=public_context)
    except GatewayError as exc:
        raise _fail(exc) from None
    typer.echo(f"Created venue {venue['id']} ({venue['currency']}).")


@venues_app.command("list")
def venues_list(db: Db = None, as_json: AsJson = False) -> None:
    """List venues."""
    venues = _gateway(db).list_venues()
    if as_json:
        _print_json(venues)
        return
    for venue in venues:
        typer.echo(f"{venue['id']:<32} {venue['currency']}  {venue['event_count']} events  {venue['name']}")


@keys_app.command("create")
def keys_create(
    venue: Venue,
    role: Annotated[str, typer.Option(help="admin or agent")],
    agent_id: Annotated[Optional[str], typer.Option(help="The agent an agent key acts for")] = None,
    name: Annotated[Optional[str], typer.Option(help="A label for the key")] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Create an API key and print it. It is shown this once: only its digest is kept."""
    try:
        record, secret = _gateway(db).create_key(Principal.operator(venue), role=role, agent_id=agent_id, name=name)
    except GatewayError as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json({**record, "key": secret})
        return
    typer.echo(secret)
    who = f"agent {agent_id}" if agent_id else "admin"
    typer.echo(f"Key {record['id']} ({who}) for venue {venue}. Store it now: it is not shown again.", err=True)


@keys_app.command("list")
def keys_list(venue: Venue, db: Db = None, as_json: AsJson = False) -> None:
    """List a venue's keys by prefix."""
    try:
        keys = _gateway(db).list_keys(Principal.operator(venue))["keys"]
    except GatewayError as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json(keys)
        return
    for key in keys:
        state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
        typer.echo(f"{key['id']}  {key['prefix']}…  {key['role']:<5}  {key['agent_id'] or '-':<20} {state}")


@keys_app.command("revoke")
def keys_revoke(key_id: str, venue: Venue, db: Db = None) -> None:
    """Revoke a key; requests with it answer 401 from now on."""
    try:
        _gateway(db).revoke_key(Principal.operator(venue), key_id)
    except GatewayError as exc:
        raise _fail(exc) from None
    typer.echo(f"Revoked {key_id}.")


@app.command()
def approve(
    authorization_id: str,
    venue: Venue,
    note: Annotated[Optional[str], typer.Option(help="Why it was approved")] = None,
    execute_window: ExecuteWindow = None,
    db: Db = None,
) -> None:
    """Approve a pending authorization (the policy's checks 1-4 run again first)."""
    try:
        gateway = _gateway(db, execute_window=execute_window)
        record = gateway.approve(Principal.operator(venue), authorization_id, note=note).body
    except GatewayError as exc:
        raise _fail(exc) from None
    typer.echo(f"{authorization_id} is {record['status']}; it may be executed until {record['expires_at']}.")


@app.command()
def deny(
    authorization_id: str,
    venue: Venue,
    reason: Annotated[Optional[str], typer.Option(help="Told to the agent")] = None,
    db: Db = None,
) -> None:
    """Deny a pending authorization."""
    try:
        record = _gateway(db).deny(Principal.operator(venue), authorization_id, reason=reason).body
    except GatewayError as exc:
        raise _fail(exc) from None
    typer.echo(f"{authorization_id} is {record['status']}.")


@app.command()
def authorizations(
    venue: Venue,
    status: Annotated[Optional[str], typer.Option(help="pending, approved, denied, ...")] = None,
    agent_id: Annotated[Optional[str], typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """List a venue's authorizations, newest first."""
    try:
        page = _gateway(db).list_authorizations(
            Principal.operator(venue), status=status, agent_id=agent_id, limit=limit
        )
    except GatewayError as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json(page)
        return
    for item in page["authorizations"]:
        typer.echo(
            f"{item['id']}  {item['status']:<9} {item['agent_id']:<16} {item['action']:<18}"
            f" {item['amount']:>12.2f} {item['currency']}  {item['created_at']}"
        )
    typer.echo(f"{len(page['authorizations'])} of {page['total']}", err=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
