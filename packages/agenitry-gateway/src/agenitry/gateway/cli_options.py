"""What every ``agenitry`` command shares: its common options, the database it resolved, and
how it says a mistake.

Both :mod:`agenitry.gateway.cli` and :mod:`agenitry.gateway.cli_spool` import this module
(``cli`` imports ``cli_spool`` to add its command group, so the shared parts cannot live in
``cli``). A configuration or connection mistake is one or two lines and exit code 2;
``--debug`` (or AGENITRY_DEBUG=1) raises it instead, with its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Optional

import typer
from sqlalchemy.exc import SQLAlchemyError

from agenitry.gateway import cli_database
from agenitry.gateway.errors import StorageBusy

DB_HELP = (
    "The database: a file path, sqlite:///path.db or postgresql://user@host/db"
    " [default: $XDG_DATA_HOME/agenitry/agenitry.db, else ~/.local/share/agenitry/agenitry.db]"
)

Db = Annotated[
    Optional[str],
    typer.Option("--db", help="As the global --db, for this command (or AGENITRY_DATABASE_URL)", show_default=False),
]
Venue = Annotated[str, typer.Option("--venue", envvar="AGENITRY_VENUE_ID", help="The venue id")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


@dataclass
class Invocation:
    """The global options, and the database the command resolved (named in its messages)."""

    db: Optional[str] = None
    #: Whether the global --db was typed, rather than taken from AGENITRY_DATABASE_URL.
    db_typed: bool = False
    debug: bool = False
    database: Optional[cli_database.Target] = None


_command: ContextVar[Optional[typer.Context]] = ContextVar("agenitry_command", default=None)


def begin(context: typer.Context, *, db: Optional[str], debug: bool) -> None:
    """Record the global options of the command ``context`` runs."""
    _command.set(context)
    source = context.get_parameter_source("db")
    # By name: typer carries its own copy of click, whose enum is not click's.
    typed = source is not None and source.name == "COMMANDLINE"
    context.obj = Invocation(db=db, db_typed=typed, debug=debug)


def command() -> Optional[typer.Context]:
    """The running command's context (None outside a command, e.g. in a unit test)."""
    return _command.get()


def invocation() -> Invocation:
    """The running command's global options."""
    context = _command.get()
    obj = context.obj if context is not None else None
    return obj if isinstance(obj, Invocation) else Invocation()


def problem(message: str, hint: Optional[str] = None) -> typer.Exit:
    """Say a mistake in one or two lines; the exit code for a usage or configuration mistake."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    return typer.Exit(code=2)


@contextmanager
def explained() -> Iterator[None]:
    """Configuration and connection mistakes as their short message and exit 2 (--debug: raised)."""
    try:
        yield
    except (cli_database.DatabaseProblem, StorageBusy, SQLAlchemyError, ValueError) as exc:
        current = invocation()
        if current.debug:
            raise
        if isinstance(exc, cli_database.DatabaseProblem):
            raise problem(exc.message, exc.hint) from None
        if isinstance(exc, ValueError) or current.database is None:
            raise problem(str(exc)) from None
        cause = cli_database.explain(exc, current.database)
        raise problem(cause.message, cause.hint) from None


def database(db: Optional[str]) -> cli_database.Target:
    """The command's database (its --db, else the global one, else the default), said once on stderr."""
    current = invocation()
    if current.database is None:
        with explained():
            current.database = cli_database.target(db or current.db)
        typer.echo(f"database: {current.database.shown}", err=True)
    return current.database
