"""Real databases for tests: a SQLite file, and a fresh PostgreSQL database per run."""

from __future__ import annotations

import os
import secrets

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

#: The server CI and every developer machine run; override with AGENITRY_TEST_POSTGRES.
POSTGRES_SERVER = os.environ.get("AGENITRY_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def server_url(database: str) -> str:
    return POSTGRES_SERVER.rsplit("/", 1)[0] + "/" + database


def create_postgres_database() -> str:
    """Create an empty database for this run and return its URL.

    Raises RuntimeError when the server cannot be reached: the PostgreSQL tests are part
    of the suite, never skipped.
    """
    name = f"agenitry_test_{os.getpid()}_{secrets.token_hex(4)}"
    engine = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {POSTGRES_SERVER} ({exc.orig}); start it with "
            "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'"
        ) from exc
    finally:
        engine.dispose()
    return server_url(name)


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    engine = create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
