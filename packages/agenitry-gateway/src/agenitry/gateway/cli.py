"""The ``agenitry`` command: serve the gateway and administer venues, keys and approvals.

Every command that touches the database takes ``--db`` (before or after the command's
name; or AGENITRY_DATABASE_URL) and says on stderr which database it uses; the default is
``agenitry.db`` in the data directory (see :mod:`agenitry.gateway.cli_database`). A
configuration or connection mistake is one or two lines and exit code 2; ``--debug`` (or
AGENITRY_DEBUG=1) shows its traceback instead.
"""

from __future__ import annotations

import errno
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer
from sqlalchemy.exc import SQLAlchemyError

from agenitry.gateway import cli_database, cli_spool, cli_verify
from agenitry.gateway.errors import GatewayError, StorageBusy
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.gateway import Gateway
from agenitry.gateway.service.signing import SigningKey
from agenitry.gateway.settings import Settings

# Plain help (no rich panels): flags read as `--json`, not `--json <bool>`. A traceback never
# shows local variables: they hold database URLs and keys.
_HELP: dict[str, Any] = {"no_args_is_help": True, "rich_markup_mode": None, "pretty_exceptions_show_locals": False}
app = typer.Typer(help="Agenitry: spend authority and a verifiable audit trail for AI agents.", **_HELP)
venues_app = typer.Typer(help="Create and list venues.", **_HELP)
keys_app = typer.Typer(help="Create, list and revoke API keys.", **_HELP)
log_app = typer.Typer(help="The audit log's signing key and checkpoints.", **_HELP)
app.add_typer(venues_app, name="venues")
app.add_typer(keys_app, name="keys")
app.add_typer(log_app, name="log")
app.add_typer(cli_spool.spool_app(**_HELP), name="spool")
_command: ContextVar[Optional[typer.Context]] = ContextVar("agenitry_command", default=None)


_DB_HELP = (
    "The database: a file path, sqlite:///path.db or postgresql://user@host/db"
    " [default: $XDG_DATA_HOME/agenitry/agenitry.db, else ~/.local/share/agenitry/agenitry.db]"
)


@dataclass
class _Invocation:
    """The global options, and the database the command resolved (named in its messages)."""

    db: Optional[str] = None
    debug: bool = False
    database: Optional[cli_database.Target] = None


@app.callback()
def _every_command(
    context: typer.Context,
    db: Annotated[
        Optional[str], typer.Option("--db", envvar="AGENITRY_DATABASE_URL", help=_DB_HELP, show_default=False)
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", envvar="AGENITRY_DEBUG", help="Show a failure's traceback, not its summary")
    ] = False,
) -> None:
    _command.set(context)
    context.obj = _Invocation(db=db, debug=debug)


def _invocation() -> _Invocation:
    context = _command.get()
    obj = context.obj if context is not None else None
    return obj if isinstance(obj, _Invocation) else _Invocation()


Db = Annotated[
    Optional[str],
    typer.Option("--db", help="As the global --db, for this command (or AGENITRY_DATABASE_URL)", show_default=False),
]
Venue = Annotated[str, typer.Option("--venue", envvar="AGENITRY_VENUE_ID", help="The venue id")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
ExecuteWindow = Annotated[
    Optional[float], typer.Option(envvar="AGENITRY_EXECUTE_WINDOW", help="Seconds to execute an approval [300]")
]
SigningKeyOption = Annotated[
    Optional[str],
    typer.Option(
        envvar="AGENITRY_SIGNING_KEY",
        help="Checkpoint signing key: a file, or base64:<seed> [agenitry-signing.key beside a SQLite file]",
        show_default=False,
    ),
]


#: What a command does with its database: may create it, needs it to exist, or only
#: names it (``log public-key`` finds the signing key beside it).
Opening = Literal["create", "existing", "named"]


def _problem(message: str, hint: Optional[str] = None) -> typer.Exit:
    """Say a mistake in one or two lines; the exit code for a usage or configuration mistake."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    return typer.Exit(code=2)


@contextmanager
def _explained() -> Iterator[None]:
    """Configuration and connection mistakes as their short message and exit 2 (--debug: raised)."""
    try:
        yield
    except (cli_database.DatabaseProblem, StorageBusy, SQLAlchemyError, ValueError) as exc:
        invocation = _invocation()
        if invocation.debug:
            raise
        if isinstance(exc, cli_database.DatabaseProblem):
            raise _problem(exc.message, exc.hint) from None
        if isinstance(exc, ValueError) or invocation.database is None:
            raise _problem(str(exc)) from None
        problem = cli_database.explain(exc, invocation.database)
        raise _problem(problem.message, problem.hint) from None


def _database(db: Optional[str]) -> cli_database.Target:
    """The command's database (its --db, else the global one, else the default), said once on stderr."""
    invocation = _invocation()
    if invocation.database is None:
        with _explained():
            invocation.database = cli_database.target(db or invocation.db)
        typer.echo(f"database: {invocation.database.shown}", err=True)
    return invocation.database


def _settings(db: Optional[str], opening: Opening = "existing", **settings: Any) -> Settings:
    """The settings, checked before the database is: a typo in them is the first thing said."""
    database = _database(db)
    with _explained():
        checked = Settings.from_env(database_url=database.url, **settings)
    _prepare(database, opening)
    return checked


def _prepare(database: cli_database.Target, opening: Opening) -> None:
    with _explained():
        if opening != "named":
            created = cli_database.prepare(database, creates=opening == "create")
            if created is not None:
                typer.echo(f"created {created} (mode 0700) for the database", err=True)


def _gateway(
    db: Optional[str], *, venue: Optional[str] = None, opening: Opening = "existing", **settings: Any
) -> Gateway:
    """The gateway on the command's database, migrated; with ``venue``, refused unless it exists."""
    with _explained():
        gateway = _settings(db, opening, **settings).gateway(serving=False)
        command = _command.get()
        if command is not None:
            # A command's connections close with it (a PostgreSQL pool would outlive it otherwise).
            command.call_on_close(gateway.db.dispose)
        gateway.migrate()
    if venue is not None:
        try:
            gateway.get_venue(venue)
        except GatewayError as exc:
            raise _fail(exc) from None
    return gateway


def _fail(exc: GatewayError, code: int = 1) -> typer.Exit:
    database = _invocation().database
    if exc.code == "venue_not_found" and database is not None:
        # Most often the command looked in another database than the one meant.
        return _problem(f"{exc.message} in {database.shown} ({exc.code})")
    typer.secho(f"error: {exc.message} ({exc.code})", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


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
    signing_key: SigningKeyOption = None,
    checkpoint_every: Annotated[
        Optional[int],
        typer.Option(envvar="AGENITRY_CHECKPOINT_EVERY", help="Sign a checkpoint every this many entries [1000]"),
    ] = None,
    checkpoint_interval: Annotated[
        Optional[float],
        typer.Option(envvar="AGENITRY_CHECKPOINT_INTERVAL", help="...and after this many seconds of waiting [60]"),
    ] = None,
    log_origin: Annotated[
        Optional[str],
        typer.Option(envvar="AGENITRY_LOG_ORIGIN", help="Start of each venue's log origin [<public host>/agenitry]"),
    ] = None,
    agent_event_quota: Annotated[
        Optional[int],
        typer.Option(envvar="AGENITRY_AGENT_EVENT_QUOTA", help="Events each agent may log per window, 0: any [10000]"),
    ] = None,
    agent_byte_quota: Annotated[
        Optional[int],
        typer.Option(envvar="AGENITRY_AGENT_BYTE_QUOTA", help="Bytes of events per agent per window [10485760]"),
    ] = None,
    agent_quota_window: Annotated[
        Optional[float], typer.Option(envvar="AGENITRY_AGENT_QUOTA_WINDOW", help="The quota window in seconds [3600]")
    ] = None,
    header_timeout: Annotated[
        Optional[float],
        typer.Option(envvar="AGENITRY_HEADER_TIMEOUT", help="Seconds a client has to send a request head [10]"),
    ] = None,
    keep_alive_timeout: Annotated[
        Optional[float],
        typer.Option(envvar="AGENITRY_KEEP_ALIVE_TIMEOUT", help="Seconds an idle connection stays open [5]"),
    ] = None,
    max_connections: Annotated[
        Optional[int],
        typer.Option(envvar="AGENITRY_MAX_CONNECTIONS", help="Connections at once; more answer 503 [1000]"),
    ] = None,
    api_docs: Annotated[
        bool, typer.Option("--docs", envvar="AGENITRY_API_DOCS", help="Serve /docs, the API's operations")
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level")] = "info",
) -> None:
    """Run the gateway's HTTP API (migrating the database first)."""
    from agenitry.gateway import server
    from agenitry.gateway.api.app import app_from_settings

    settings = _settings(
        db,
        "named",
        host=host,
        port=port,
        execute_window=execute_window,
        approval_window=approval_window,
        public_url=public_url,
        sweep_interval=sweep_interval,
        signing_key=signing_key,
        checkpoint_every=checkpoint_every,
        checkpoint_interval=checkpoint_interval,
        log_origin=log_origin,
        agent_event_quota=agent_event_quota,
        agent_byte_quota=agent_byte_quota,
        agent_quota_window=agent_quota_window,
        header_timeout=header_timeout,
        keep_alive_timeout=keep_alive_timeout,
        max_connections=max_connections,
        api_docs=api_docs,
    )
    _check_address(settings.host, settings.port)
    _prepare(_database(db), "create")
    with _explained():
        gateway = settings.gateway()
        gateway.migrate()
    typer.echo(f"Agenitry gateway on http://{settings.host}:{settings.port}, database {_database(db).shown}")
    try:
        server.run(app_from_settings(gateway, settings), settings, log_level=log_level)
    finally:
        gateway.db.dispose()


def _check_address(host: str, port: int) -> None:
    """Refuse an address uvicorn could not listen on, before it says "startup complete"."""
    from agenitry.gateway import server

    try:
        server.check_address(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise _problem(
                f"port {port} on {host} is in use (another agenitry serve?); choose another with --port"
            ) from None
        raise _problem(f"cannot listen on {host}:{port}: {exc.strerror or exc}", "check --host and --port") from None


@app.command()
def migrate(db: Db = None) -> None:
    """Create or upgrade the database schema."""
    _gateway(db, opening="create")
    typer.echo("Database is at the newest schema.")


@venues_app.command("create")
def venues_create(
    venue_id: Annotated[str, typer.Argument(metavar="NAME", help="The venue id, e.g. nobo-downtown")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code of the venue's money")] = "USD",
    name: Annotated[Optional[str], typer.Option(help="A display name")] = None,
    public_context: Annotated[
        bool, typer.Option("--public-context", help="Show event context on public verify pages")
    ] = False,
    redact: Annotated[
        Optional[list[str]],
        typer.Option(help="A context key never shown publicly (repeatable), besides password, token, card, email..."),
    ] = None,
    db: Db = None,
) -> None:
    """Create a venue."""
    try:
        venue = _gateway(db, opening="create").create_venue(
            venue_id, name=name, currency=currency, public_context=public_context, redacted_keys=redact
        )
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
    if role == "agent" and not agent_id:
        raise _problem("an agent key needs --agent-id (the agent it is bound to)")
    if role == "admin" and agent_id:
        raise _problem("an admin key acts for the whole venue: leave out --agent-id, or give --role agent")
    try:
        record, secret = _gateway(db, venue=venue).create_key(
            Principal.operator(venue), role=role, agent_id=agent_id, name=name
        )
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
        keys = _gateway(db, venue=venue).list_keys(Principal.operator(venue))["keys"]
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
        _gateway(db, venue=venue).revoke_key(Principal.operator(venue), key_id)
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
        gateway = _gateway(db, venue=venue, execute_window=execute_window)
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
        record = _gateway(db, venue=venue).deny(Principal.operator(venue), authorization_id, reason=reason).body
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
        page = _gateway(db, venue=venue).list_authorizations(
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


# -- the audit log -------------------------------------------------------------------------


PublicKeys = Annotated[
    Optional[list[str]],
    typer.Option(
        "--public-key", help="A trusted key (base64, hex, vkey, or a file holding one); repeat for rotated keys"
    ),
]


@app.command()
def verify(
    target: Annotated[
        Optional[str], typer.Argument(help="A verify link, a .tlog-proof file, or an export file", show_default=False)
    ] = None,
    public_key: PublicKeys = None,
    entry: Annotated[
        Optional[Path], typer.Option(help="The event's entry JSON (or its verify document), with a .tlog-proof")
    ] = None,
    venue: Annotated[Optional[str], typer.Option(help="With --db: verify this venue's whole log")] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Verify one event (a verify link or a .tlog-proof) or a whole venue (--db and --venue, or an export).

    Exit code 0 only when everything holds; 1 when something does not, naming the first
    entry that was changed, removed, inserted or reordered; 2 when it could not check.
    """
    try:
        keys = cli_verify.trusted(public_key or [])
        if target is None:
            if venue is None:
                raise cli_verify.VerifyUsageError("give a verify link, a file, or --db with --venue")
            verdict = cli_verify.Verdict.of_report(_gateway(db, venue=venue).audit.audit(venue, keys or None))
        elif venue is not None:
            raise cli_verify.VerifyUsageError("give a verify link or a file, or --venue (with --db), not both")
        else:
            verdict = cli_verify.check_target(target, keys, entry, lambda line: typer.echo(line, err=True))
    except (cli_verify.VerifyUsageError, OSError) as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    except GatewayError as exc:
        raise _fail(exc, code=2) from None
    typer.echo(verdict.output(as_json))
    raise typer.Exit(code=0 if verdict.ok else 1)


@app.command()
def export(
    venue: Venue,
    output: Annotated[str, typer.Option("--output", "-o", help="The file to write, or - for standard output")] = "-",
    db: Db = None,
) -> None:
    """Write a venue's whole log (entries, tree leaves, checkpoints) as JSON lines, for ``agenitry verify``."""
    gateway = _gateway(db, venue=venue)
    sink = sys.stdout if output == "-" else Path(output).open("w", encoding="utf-8")  # noqa: SIM115
    try:
        for line in gateway.audit.export(venue):
            sink.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
    except GatewayError as exc:
        raise _fail(exc) from None
    finally:
        if sink is not sys.stdout:
            sink.close()


def _signing_key(db: Optional[str], signing_key: Optional[str]) -> SigningKey:
    settings = _settings(db, "named", signing_key=signing_key)
    with _explained():
        key = SigningKey.from_setting(settings.signing_key, settings.database_url, create=False)
    if key is None:
        typer.secho(
            "error: no signing key found: give --signing-key (agenitry serve makes one beside a SQLite file)",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(code=2)
    return key


@log_app.command("public-key")
def log_public_key(db: Db = None, signing_key: SigningKeyOption = None) -> None:
    """Print the public key (base64) of the signing key: give it to whoever verifies."""
    typer.echo(_signing_key(db, signing_key).public_key_b64)


@log_app.command("keygen")
def log_keygen(path: Annotated[Path, typer.Argument(help="The new key's file (must not exist)")]) -> None:
    """Generate a new signing key into a file (mode 0600) and print its public key: for a rotation."""
    if path.exists():
        typer.secho(f"error: {path} exists; a key is never overwritten", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2)
    typer.echo(SigningKey.create(path).public_key_b64)


@log_app.command("checkpoint")
def log_checkpoint(venue: Venue, db: Db = None, signing_key: SigningKeyOption = None) -> None:
    """Sign a checkpoint of a venue's log now and print it."""
    _signing_key(db, signing_key)  # refuses when there is no lasting key to sign with
    gateway = _gateway(db, venue=venue, signing_key=signing_key)
    try:
        typer.echo(gateway.audit.sign(venue).note, nl=False)
    except GatewayError as exc:
        raise _fail(exc) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
