"""The ``agenitry`` command: serve the gateway and administer venues, keys and approvals.

Every command that touches the database takes ``--db`` (before or after the command's
name; or AGENITRY_DATABASE_URL) and says on stderr which database it uses; the default is
``agenitry.db`` in the data directory (see :mod:`agenitry.gateway.cli_database`). A
configuration or connection mistake is one or two lines and exit code 2; ``--debug`` (or
AGENITRY_DEBUG=1) shows its traceback instead.
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import sys
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from agenitry.gateway import cli_database, cli_options, cli_spool, cli_verify, cli_webhooks
from agenitry.gateway.cli_options import AsJson, Db, Venue, command, explained, invocation, problem
from agenitry.gateway.errors import BadRequest, GatewayError, Unprocessable
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


@app.callback()
def _every_command(
    context: typer.Context,
    db: Annotated[
        Optional[str],
        typer.Option("--db", envvar="AGENITRY_DATABASE_URL", help=cli_options.DB_HELP, show_default=False),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", envvar="AGENITRY_DEBUG", help="Show a failure's traceback, not its summary")
    ] = False,
) -> None:
    cli_options.begin(context, db=db, debug=debug)


_SETTINGS_DEFAULTS = {item.name: item.default for item in fields(Settings)}


def _setting(name: str, help: str, *decls: str, default: Optional[str] = None) -> Any:
    """The option of the gateway setting ``name``, helped in click's usual form with its
    environment variable and default (``default``, else Settings' own).

    It stays unset unless given, so that Settings.from_env applies AGENITRY_<NAME>, then
    Settings' default: the default lives in one place, and the help only shows it.
    """
    envvar = f"AGENITRY_{name.upper()}"
    if default is None:
        value = _SETTINGS_DEFAULTS[name]
        default = f"{value:g}" if isinstance(value, float) else str(value)
    return typer.Option(
        *decls,
        envvar=envvar,
        show_envvar=False,
        show_default=False,
        help=f"{help}  [env var: {envvar}; default: {default}]",
    )


ExecuteWindow = Annotated[Optional[float], _setting("execute_window", "Seconds to execute an approval")]
SigningKeyOption = Annotated[
    Optional[str],
    _setting(
        "signing_key",
        "Checkpoint signing key: a file, or base64:<seed>",
        default="agenitry-signing.key beside a SQLite file",
    ),
]


#: What a command does with its database: may create it, needs it to exist, or only
#: names it (``log public-key`` finds the signing key beside it).
Opening = Literal["create", "existing", "named"]


def _settings(db: Optional[str], opening: Opening = "existing", **settings: Any) -> Settings:
    """The settings, checked before the database is: a typo in them is the first thing said."""
    database = cli_options.database(db)
    with explained():
        checked = Settings.from_env(database_url=database.url, **settings)
    _prepare(database, opening)
    return checked


def _prepare(database: cli_database.Target, opening: Opening) -> None:
    with explained():
        if opening != "named":
            created = cli_database.prepare(database, creates=opening == "create")
            if created is not None:
                typer.echo(f"created {created} (mode 0700) for the database", err=True)


def _gateway(
    db: Optional[str], *, venue: Optional[str] = None, opening: Opening = "existing", **settings: Any
) -> Gateway:
    """The gateway on the command's database, migrated; with ``venue``, refused unless it exists."""
    with explained():
        gateway = _settings(db, opening, **settings).gateway(serving=False)
        context = command()
        if context is not None:
            # A command's connections close with it (a PostgreSQL pool would outlive it otherwise).
            context.call_on_close(gateway.db.dispose)
        gateway.migrate()
    if venue is not None:
        try:
            gateway.get_venue(venue)
        except GatewayError as exc:
            raise _fail(exc) from None
    return gateway


def _fail(exc: GatewayError, code: int = 1) -> typer.Exit:
    """The service's refusal as one line; exit ``code``, or 2 for a value it refuses (a mistake in an option)."""
    opened = invocation().database
    if exc.code == "venue_not_found" and opened is not None:
        # Most often the command looked in another database than the one meant.
        return problem(f"{exc.message} in {opened.shown} ({exc.code})")
    if isinstance(exc, (BadRequest, Unprocessable)):
        return problem(f"{exc.message} ({exc.code})")
    typer.secho(f"error: {exc.message} ({exc.code})", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


app.add_typer(cli_webhooks.webhooks_app(_gateway, _fail, **_HELP), name="webhooks")


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


@app.command()
def serve(
    db: Db = None,
    host: Annotated[Optional[str], _setting("host", "The address to listen on")] = None,
    port: Annotated[Optional[int], _setting("port", "The port to listen on")] = None,
    execute_window: ExecuteWindow = None,
    approval_window: Annotated[Optional[float], _setting("approval_window", "Seconds a pending request waits")] = None,
    public_url: Annotated[
        Optional[str], _setting("public_url", "Base URL of verify links", default="http://HOST:PORT")
    ] = None,
    sweep_interval: Annotated[
        Optional[float], _setting("sweep_interval", "Seconds between expiry sweeps, 0: none")
    ] = None,
    signing_key: SigningKeyOption = None,
    checkpoint_every: Annotated[
        Optional[int], _setting("checkpoint_every", "Sign a checkpoint every this many entries, 0: never")
    ] = None,
    checkpoint_interval: Annotated[
        Optional[float], _setting("checkpoint_interval", "...and after this many seconds of waiting, 0: never")
    ] = None,
    log_origin: Annotated[
        Optional[str], _setting("log_origin", "Start of each venue's log origin", default="<public host>/agenitry")
    ] = None,
    agent_event_quota: Annotated[
        Optional[int], _setting("agent_event_quota", "Events each agent may log per window, 0: any")
    ] = None,
    agent_byte_quota: Annotated[
        Optional[int], _setting("agent_byte_quota", "Bytes of events per agent per window, 0: any")
    ] = None,
    agent_quota_window: Annotated[
        Optional[float], _setting("agent_quota_window", "The quota window in seconds")
    ] = None,
    header_timeout: Annotated[
        Optional[float], _setting("header_timeout", "Seconds a client has to send a request head")
    ] = None,
    keep_alive_timeout: Annotated[
        Optional[float], _setting("keep_alive_timeout", "Seconds an idle connection stays open")
    ] = None,
    max_connections: Annotated[
        Optional[int], _setting("max_connections", "Connections at once; more answer 503")
    ] = None,
    api_docs: Annotated[
        bool, _setting("api_docs", "Serve /docs, the API's operations", "--docs", default="off")
    ] = False,
    webhook_delivery: Annotated[
        Optional[bool],
        _setting(
            "webhook_delivery",
            "Send webhooks from this process",
            "--webhook-delivery/--no-webhook-delivery",
            default="on",
        ),
    ] = None,
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
        webhook_delivery=webhook_delivery,
    )
    listener = _listen(settings.host, settings.port)
    with contextlib.closing(listener):
        _prepare(cli_options.database(db), "create")
        with explained():
            gateway = settings.gateway()
            gateway.migrate()
        shown = cli_options.database(db).shown
        typer.echo(f"Agenitry gateway on http://{settings.host}:{settings.port}, database {shown}")
        try:
            server.run(app_from_settings(gateway, settings), settings, listener, log_level=log_level)
        finally:
            gateway.db.dispose()


def _listen(host: str, port: int) -> socket.socket:
    """The socket uvicorn serves on, bound before the database is migrated: an address it
    cannot use is said in one line, before anything has started."""
    from agenitry.gateway import server

    try:
        return server.listen(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise problem(
                f"port {port} on {host} is in use (another agenitry serve?); choose another with --port"
            ) from None
        raise problem(f"cannot listen on {host}:{port}: {exc.strerror or exc}", "check --host and --port") from None


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
        raise problem("an agent key needs --agent-id (the agent it is bound to)")
    if role == "admin" and agent_id:
        raise problem("an admin key acts for the whole venue: leave out --agent-id, or give --role agent")
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
    try:
        sink = sys.stdout if output == "-" else Path(output).open("w", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise problem(f"cannot write {output}: {exc.strerror or exc}", "check --output") from None
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
    with explained():
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
    if not path.parent.is_dir():  # as for --db: no directory the user did not make is created for them
        typer.secho(f"error: directory {path.parent} does not exist; create it first", err=True, fg=typer.colors.RED)
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


@app.command(
    "mcp",
    add_help_option=False,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def mcp(context: typer.Context) -> None:
    """Agenitry over MCP: `agenitry mcp serve` (the venue's tools), `agenitry mcp proxy --config FILE`."""
    try:
        from agenitry.mcp import main as mcp_main
    except ImportError:
        # The gateway does not depend on the MCP SDK: say how to get it, in one sentence.
        raise problem(
            "agenitry mcp needs the agenitry-mcp package: pip install 'agenitry[mcp]'"
            " (from a checkout: pip install ./packages/agenitry-mcp)"
        ) from None
    args = list(context.args)
    given = invocation()
    if given.db_typed and given.db and args and "--db" not in args:
        args += ["--db", given.db]  # `agenitry --db X mcp serve` runs embedded on X, as other commands do
    raise typer.Exit(code=mcp_main(args))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
