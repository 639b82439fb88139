"""Databases of a test module's own, for tests that run a webhook deliverer.

A deliverer claims due messages across every venue of its database, so on the session's
shared database it would also send what other tests left in the outbox (to receivers long
gone), and they would see its attempts. These tests get a fresh database per store instead:
a module imports :func:`own_outboxes` and :func:`own_database`, which pytest finds by their
fixture names (``_outboxes``, ``database``: the latter replaces the session's).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agenitry.gateway import Database
from support.databases import create_postgres_database, drop_postgres_database


class OwnDatabases:
    """A fresh, migrated database per store, made on first use and dropped at :meth:`close`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.opened: dict[str, Database] = {}
        self.postgres: list[str] = []

    def of(self, store: str) -> Database:
        if store not in self.opened:
            if store == "postgresql":
                url = create_postgres_database()
                self.postgres.append(url)
            else:
                url = f"sqlite:///{self.directory / 'outbox.db'}"
            database = Database(url, pool_size=20)
            database.migrate()
            self.opened[store] = database
        return self.opened[store]

    def close(self) -> None:
        for database in self.opened.values():
            database.dispose()
        for url in self.postgres:
            drop_postgres_database(url)


@contextmanager
def own_databases(directory: Path) -> Iterator[OwnDatabases]:
    databases = OwnDatabases(directory)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture(scope="module", name="_outboxes")
def own_outboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnDatabases]:
    with own_databases(tmp_path_factory.mktemp("outbox")) as databases:
        yield databases


@pytest.fixture(name="database")
def own_database(store: str, _outboxes: OwnDatabases) -> Database:
    """The module's own database of the store under test."""
    return _outboxes.of(store)
