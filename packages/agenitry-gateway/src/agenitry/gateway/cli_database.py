"""Which database an ``agenitry`` command works on, and a short sentence for every way
opening it goes wrong.

The rules, so that a newcomer never wonders where the state went:

- ``--db`` (or AGENITRY_DATABASE_URL) names the database: a URL, or a plain path taken as
  a SQLite file; without it, ``agenitry.db`` in the data directory
  (``$XDG_DATA_HOME/agenitry``), the same from any working directory.
- Only the commands that create state (``serve``, ``migrate``, ``venues create``) create a
  SQLite file. Of directories they create only the default data directory (0700);
  a directory named in ``--db`` must exist.
- A configuration or connection mistake is a :class:`DatabaseProblem`: what went wrong,
  the underlying cause, and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from agenitry.gateway.store.database import data_directory, default_sqlite_url, normalize_url


class DatabaseProblem(Exception):
    """A database that cannot be used as given: ``message``, and ``hint`` on what to do."""

    def __init__(self, message: str, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Target:
    """The database a command works on."""

    #: The URL the store opens (a SQLite file's path made absolute).
    url: str
    #: The SQLite file, if it is one.
    path: Optional[Path]
    #: Whether it is the default location (whose directory a command may create).
    default: bool

    @property
    def shown(self) -> str:
        """The URL to print: a password in it is masked."""
        return make_url(self.url).render_as_string(hide_password=True)


def target(db: Optional[str]) -> Target:
    """The database ``db`` names (a URL or a plain path); the default location when it is None.

    >>> target("/var/lib/agenitry/x.db").url
    'sqlite:////var/lib/agenitry/x.db'
    """
    if not db:
        return Target(default_sqlite_url(), data_directory() / "agenitry.db", default=True)
    if "://" not in db:
        path = Path(db).expanduser().absolute()
        return Target(f"sqlite:///{path}", path, default=False)
    try:
        url = make_url(normalize_url(db))
    except ArgumentError:
        raise DatabaseProblem(
            f"--db {db!r} is not a database URL or a file path",
            "give sqlite:///path/to/agenitry.db, a file path, or postgresql://user@host/database",
        ) from None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or "uri" in url.query:
        return Target(url.render_as_string(hide_password=False), None, default=False)
    path = Path(url.database).expanduser().absolute()
    return Target(url.set(database=str(path)).render_as_string(hide_password=False), path, default=False)


def prepare(database: Target, *, creates: bool) -> Optional[Path]:
    """Check that a command may open ``database``; return the directory it created, if any.

    A command that does not create state (``creates=False``) is refused a missing SQLite
    file, instead of leaving an empty database behind.
    """
    path = database.path
    if path is None or path.exists():
        return None
    if not creates:
        again = "" if database.default else f" --db {database.shown}"
        raise DatabaseProblem(
            f"no database at {path}", f"create a venue first with `agenitry venues create NAME{again}`"
        )
    if path.parent.is_dir():
        return None
    if not database.default:
        raise DatabaseProblem(
            f"directory {path.parent} does not exist", "create it first, or give another path with --db"
        )
    path.parent.mkdir(mode=0o700, parents=True)
    return path.parent


def explain(exc: BaseException, database: Target) -> DatabaseProblem:
    """The cause of a failure to open or migrate ``database``, as one sentence and a hint.

    The store wraps a refused connection as busy (503) for requests in flight; at a
    command's start the driver's own message is the useful part, so it is dug out.
    """
    cause = _driver_message(exc)
    if database.path is not None or database.url.startswith("sqlite"):
        return DatabaseProblem(
            f"cannot open the SQLite database: {cause}",
            "check the file and its directory's permissions, or give another with --db",
        )
    url = make_url(database.url)
    if "does not exist" in cause and cause.startswith("database"):
        hint = f"create it (createdb {url.database}) or give another database with --db"
    elif cause.startswith("role") or "authentication failed" in cause:
        hint = "check the user and password in --db (or AGENITRY_DATABASE_URL)"
    else:
        hint = f"is PostgreSQL running and reachable at {url.host or 'localhost'}:{url.port or 5432}? Check --db"
    return DatabaseProblem(f"cannot connect to the database: {cause}", hint)


def _driver_message(exc: BaseException) -> str:
    """The driver's first line, without libpq's ``connection to server ... failed:`` preamble."""
    seen: Optional[BaseException] = exc
    while seen is not None and not isinstance(seen, DBAPIError):
        seen = seen.__cause__ or seen.__context__
    orig = seen.orig if isinstance(seen, DBAPIError) else exc
    line = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    line = line.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
    return line[:1].lower() + line[1:]
