"""Fixtures shared by every test: real stores (SQLite and PostgreSQL), gateways, venues, servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agenitry.gateway import Database, Gateway, ManualClock, create_app
from agenitry.gateway._clock import DAY, start_of_utc_day, system_clock
from support.databases import create_postgres_database, drop_postgres_database
from support.live import LiveServer
from support.venues import Venue, make_venue

STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", autouse=True)
def _spool_in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Clients spool by default into the user's home: the suite's (and its subprocesses') go here."""
    directory = tmp_path_factory.mktemp("spool")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENITRY_SPOOL_DIR", str(directory))
        yield directory


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return "sqlite:///" + str(tmp_path_factory.mktemp("store") / "agenitry.db")


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="session")
def _databases() -> Iterator[dict[str, Database]]:
    opened: dict[str, Database] = {}
    yield opened
    for database in opened.values():
        database.dispose()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, _databases: dict[str, Database]) -> str:
    """The name of the store under test: every test using it runs on SQLite and PostgreSQL."""
    return str(request.param)


@pytest.fixture
def database(store: str, request: pytest.FixtureRequest, _databases: dict[str, Database]) -> Database:
    """A migrated database of the store under test, shared by the session (venues keep tests apart)."""
    if store not in _databases:
        db = Database(request.getfixturevalue(f"{store}_url"), pool_size=20)
        db.migrate()
        _databases[store] = db
    return _databases[store]


@pytest.fixture
def clock() -> ManualClock:
    # The next UTC midnight: a day boundary, as tests of windows expect, and not behind the
    # real clock, which stamps the events clients log (more than a day ahead is refused).
    return ManualClock(start_of_utc_day(system_clock()) + DAY)


@pytest.fixture
def gateway(database: Database, clock: ManualClock) -> Gateway:
    return Gateway(database, clock=clock, public_url="https://verify.example")


@pytest.fixture
def venue(gateway: Gateway) -> Venue:
    return make_venue(gateway)


@pytest.fixture
def live(gateway: Gateway) -> Iterator[LiveServer]:
    """The gateway's HTTP API, served by a real uvicorn on loopback."""
    server = LiveServer(create_app(gateway)).start()
    yield server
    server.stop()


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=10) as client:
        yield client


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
