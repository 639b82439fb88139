"""The decision path's statements on the driver's cursor (``store/driver.py``) fail and are
seen as SQLAlchemy's would be: a storage failure must be told from a bad write, and a lost
connection must not go back to the pool."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError

from agenitry.gateway import Database
from agenitry.gateway.store import driver
from agenitry.gateway.store.driver import Sql

_INSERT = Sql(
    "INSERT INTO idempotency_keys (venue_id, key, fingerprint, body, created_at) VALUES (:venue_id, :key, 'f', '{}', 1)"
)


def test_the_spelling_for_psycopg_keeps_casts_and_literal_percent_signs() -> None:
    sql = Sql("SELECT CAST(:a AS INTEGER[]), x::text, '50%' WHERE y = :b_2 AND z = :a")
    assert sql.pyformat == "SELECT CAST(%(a)s AS INTEGER[]), x::text, '50%%' WHERE y = %(b_2)s AND z = %(a)s"
    assert sql.text.startswith("SELECT CAST(:a AS")


def test_a_constraint_broken_on_the_driver_is_sqlalchemys_integrity_error_and_loses_only_its_write(
    database: Database,
) -> None:
    with database.engine.connect() as conn:
        with conn.begin():
            driver.run(conn, _INSERT, {"venue_id": "driver-venue", "key": "k1"})
        with pytest.raises(IntegrityError) as raised, conn.begin():
            driver.run(conn, _INSERT, {"venue_id": "driver-venue", "key": "k2"})
            driver.run(conn, _INSERT, {"venue_id": "driver-venue", "key": "k1"})
        assert not raised.value.connection_invalidated
        keys = conn.execute(text("SELECT key FROM idempotency_keys WHERE venue_id = 'driver-venue'")).scalars().all()
    assert keys == ["k1"]


def test_the_engines_listeners_see_every_statement_run_on_the_driver(database: Database) -> None:
    seen: list[str] = []

    def keep(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", keep)
    try:
        with database.engine.connect() as conn:
            assert driver.first(conn, Sql("SELECT :one + 1"), {"one": 1}) == (2,)
    finally:
        event.remove(database.engine, "before_cursor_execute", keep)
    assert seen == ["SELECT %(one)s + 1" if database.dialect == "postgresql" else "SELECT :one + 1"]


def test_a_connection_lost_under_the_driver_is_invalidated_not_pooled(postgresql_url: str) -> None:
    database = Database(postgresql_url, pool_size=1)
    try:
        with database.engine.connect() as conn:
            backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with database.engine.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
            with pytest.raises(OperationalError) as raised:
                driver.run(conn, Sql("SELECT 1"), {})
            assert raised.value.connection_invalidated
            assert conn.invalidated
        with database.engine.connect() as conn:  # a new connection, not the dead one
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        database.engine.dispose()


def test_a_statement_sent_with_the_commit_that_fails_commits_nothing(database: Database) -> None:
    with pytest.raises(IntegrityError), database.write() as conn:
        driver.run(conn, _INSERT, {"venue_id": "driver-commit", "key": "first"})
        database.send_with_commit(
            conn,
            [
                (_INSERT, {"venue_id": "driver-commit", "key": "second"}),
                (_INSERT, {"venue_id": "driver-commit", "key": "first"}),
            ],
        )
    with database.engine.connect() as conn:  # psycopg starts transactions itself again
        assert not getattr(conn.connection.dbapi_connection, "autocommit", False)
    with database.write() as conn:
        database.send_with_commit(conn, [(_INSERT, {"venue_id": "driver-commit", "key": "third"})])
    with database.read() as conn:
        keys = conn.execute(text("SELECT key FROM idempotency_keys WHERE venue_id = 'driver-commit'")).scalars().all()
    assert keys == ["third"]
