"""Holds and rolling windows, exact to the millisecond at a cost that history cannot grow.

Every hold is added to four buckets of its scope (the venue, and its agent): the second,
the minute, the hour and the day in which its authorization was created. The amount held
in a window ``[start, now]`` is then

    the exact holds created in [start, next second)      -- read from authorizations
  + second buckets up to the next minute                  -- at most 59 rows
  + minute buckets up to the next hour                    -- at most 59 rows
  + hour buckets up to the next day                       -- at most 23 rows
  + day buckets from there on                             -- at most 31 rows

so a decision reads a bounded number of rows however many authorizations the window holds,
and at its edge the authorizations of one second, not of a minute: at 300 decisions a
second a minute's would be 18,000 rows, so the cost would grow with the request rate.
Nothing is ever created after ``now``, so the last term needs no upper bound. Every sum
is exact at any total (:mod:`agenitry.gateway.store.sums`).

Second buckets are read only at a window's edge, but an edge may fall on any second of the
widest window (30 days), so every width is kept as long and pruned alike
(:func:`prune_buckets`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Optional

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from agenitry.gateway._clock import DAY, HOUR, MINUTE, SECOND
from agenitry.gateway.errors import Conflict
from agenitry.gateway.store import driver
from agenitry.gateway.store.driver import Sql
from agenitry.gateway.store.schema import spend_buckets
from agenitry.gateway.store.sums import SPLIT_SUM, joined

#: The venue-wide scope; any other scope is an agent id.
VENUE_SCOPE = ""
WIDTHS = (SECOND, MINUTE, HOUR, DAY)
#: The end of the widest buckets' range: nothing is created after ``now``, so no time.
_NEVER = 1 << 62
_BUCKETS_SUM = SPLIT_SUM.format(column="amount")
_HOLDS_SUM = SPLIT_SUM.format(column="hold")

# The parts of every window asked, read in one statement as rows of (window, high half,
# low half): one range of the primary key per window and width (an OR of the ranges made
# SQLite and PostgreSQL read every bucket the scope kept: 31 days of minutes alone are
# 44,640 rows), and each window's exact edge. Not a join of one-row parts: PostgreSQL spent
# 5 ms planning the fifteen of three windows, and 0.6 ms running them.
#
# On PostgreSQL, one statement whatever the windows: the ranges come as arrays, each read by
# a lateral index scan, which plans in a tenth of a millisecond.
_HELD_POSTGRESQL = Sql(
    "SELECT r.w, s.high, s.low FROM unnest(CAST(:w AS INTEGER[]), CAST(:scope AS VARCHAR[]),"  # noqa: S608 - no value
    " CAST(:width AS INTEGER[]), CAST(:lo AS BIGINT[]), CAST(:hi AS BIGINT[])) AS r(w, scope, width, lo, hi)"
    f" CROSS JOIN LATERAL (SELECT {_BUCKETS_SUM} FROM spend_buckets"
    " WHERE venue_id = :venue_id AND scope = r.scope AND width = r.width AND start >= r.lo AND start < r.hi) AS s"
    " UNION ALL"
    " SELECT e.w, s.high, s.low FROM unnest(CAST(:edge_w AS INTEGER[]), CAST(:edge_scope AS VARCHAR[]),"
    " CAST(:edge_lo AS BIGINT[]), CAST(:edge_hi AS BIGINT[])) AS e(w, scope, lo, hi)"
    f" CROSS JOIN LATERAL (SELECT {_HOLDS_SUM} FROM authorizations"
    " WHERE venue_id = :venue_id AND created_at >= e.lo AND created_at < e.hi"
    " AND (e.scope = '' OR agent_id = e.scope)) AS s"
)


@functools.lru_cache(maxsize=64)
def _held_sqlite(per_agent: tuple[bool, ...]) -> Sql:
    # On SQLite, plain parts in a UNION ALL, built once per shape: SQLite plans them for
    # next to nothing, and building the statement on every decision cost more than running it.
    parts = [
        f"SELECT :w_{n} AS w, {_BUCKETS_SUM} FROM spend_buckets WHERE venue_id = :venue_id"  # noqa: S608 - no value in it
        f" AND scope = :scope_{n} AND width = :width_{n} AND start >= :lo_{n} AND start < :hi_{n}"
        for n in range(len(per_agent) * len(WIDTHS))
    ]
    parts += [
        f"SELECT {k} AS w, {_HOLDS_SUM} FROM authorizations WHERE venue_id = :venue_id"  # noqa: S608 - no value in it
        + (f" AND agent_id = :edge_scope_{k}" if agent else "")
        + f" AND created_at >= :edge_lo_{k} AND created_at < :edge_hi_{k}"
        for k, agent in enumerate(per_agent)
    ]
    return Sql(" UNION ALL ".join(parts))


def _ceil(ms: int, width: int) -> int:
    return -(-ms // width) * width


def held_in(conn: Connection, venue_id: str, windows: Sequence[tuple[str, int]]) -> list[int]:
    """For each ``(scope, start)``, the amount held by authorizations of ``scope``
    created at or after ``start``, read in one statement."""
    return held_amounts(driver.run(conn, *held_read(conn, venue_id, windows)), len(windows))


def held_read(conn: Connection, venue_id: str, windows: Sequence[tuple[str, int]]) -> tuple[Sql, dict[str, Any]]:
    """The statement of :func:`held_in`, to send with others; its cursor goes to :func:`held_amounts`."""
    ranges: dict[str, list[Any]] = {"w": [], "scope": [], "width": [], "lo": [], "hi": []}
    edges: dict[str, list[Any]] = {"w": [], "scope": [], "lo": [], "hi": []}
    for k, (scope, start) in enumerate(windows):
        bounds = [start]
        for width in WIDTHS:
            bounds.append(_ceil(bounds[-1], width))
        bounds.append(_NEVER)
        # The exact edge [start, next second), then each width up to where the next begins.
        for listed, value in zip(edges.values(), (k, scope, start, bounds[1])):
            listed.append(value)
        for n, width in enumerate(WIDTHS, start=1):
            for listed, value in zip(ranges.values(), (k, scope, width, bounds[n], bounds[n + 1])):
                listed.append(value)
    values: dict[str, Any] = {"venue_id": venue_id}
    if conn.dialect.name == "postgresql":
        values.update(ranges)
        values.update({f"edge_{column}": listed for column, listed in edges.items()})
        return _HELD_POSTGRESQL, values
    for column, listed in ranges.items():
        values.update({f"{column}_{n}": value for n, value in enumerate(listed)})
    for column, listed in edges.items():
        values.update({f"edge_{column}_{k}": value for k, value in enumerate(listed)})
    return _held_sqlite(tuple(scope != VENUE_SCOPE for scope, _ in windows)), values


def held_amounts(cursor: Any, windows: int) -> list[int]:
    """Each window's amount from the rows of :func:`held_read`'s statement."""
    high, low = [0] * windows, [0] * windows
    # Adding the parts' halves cannot overflow: Python's integers have no bound.
    for window, part_high, part_low in cursor:
        high[window] += int(part_high)
        low[window] += int(part_low)
    return [joined(h, lo) for h, lo in zip(high, low)]


def held_since(conn: Connection, venue_id: str, scope: str, start: int) -> int:
    """The amount held by authorizations of ``scope`` created at or after ``start``."""
    [amount] = held_in(conn, venue_id, [(scope, start)])
    return amount


#: The buckets of a hold: each width, for the venue and for the agent.
_BUCKETS = len(WIDTHS) * 2
# One statement for every bucket of a hold. Plain SQL, as both stores spell this upsert
# alike: on PostgreSQL a one-row upsert executed six times cost 40% more, and SQLAlchemy's
# multi-row insert construct, even built once, ran ten times slower than this on SQLite.
# The scopes differ (an agent id is never empty), so no two of its rows meet.
_HOLD_ROWS = ", ".join(f"(:venue_id, :scope_{k}, :width_{k}, :start_{k}, :amount)" for k in range(_BUCKETS))
#: The most one bucket may hold, in minor units: far past any real day (2^62 cents is 4.6 * 10^16
#: dollars), and a bucket one more hold of at most 10^16 minor units cannot push past 2^63.
BUCKET_CEILING = 1 << 62
# The guard is written as a subtraction so that it cannot overflow itself: on PostgreSQL
# ``amount + excluded.amount`` past 2^63 raises, and on SQLite it silently turns into a float.
# A bucket it refuses is set to NULL, which the column refuses: the statement fails, so that
# it can be sent with others, and with the COMMIT, without its answer being looked at first.
_ADD_HOLD = Sql(
    f"INSERT INTO spend_buckets (venue_id, scope, width, start, amount) VALUES {_HOLD_ROWS}"  # noqa: S608 - no value in it
    " ON CONFLICT (venue_id, scope, width, start) DO UPDATE SET amount = CASE"
    " WHEN spend_buckets.amount <= :ceiling - excluded.amount THEN spend_buckets.amount + excluded.amount END",
    prepared=True,
)
#: How each store words the guard's refusal (:func:`refused`).
_NOT_NULL = "23502"
_SQLITE_REFUSAL = "NOT NULL constraint failed: spend_buckets.amount"


def add_hold(conn: Connection, venue_id: str, agent_id: str, created_at: int, delta: int) -> None:
    """Change what an authorization created at ``created_at`` holds by ``delta``.

    Raises :class:`Conflict` (``ledger_capacity``) when a bucket would pass
    :data:`BUCKET_CEILING`; the caller's transaction then rolls back whole.
    """
    change = hold_change(venue_id, agent_id, created_at, delta)
    if change is not None:
        with capacity_guard():
            driver.run(conn, *change)


def hold_change(venue_id: str, agent_id: str, created_at: int, delta: int) -> Optional[tuple[Sql, dict[str, Any]]]:
    """The statement of :func:`add_hold`, to send with others (None when ``delta`` is 0);
    whatever sends it does so under :func:`capacity_guard`."""
    if delta == 0:
        return None
    values: dict[str, Any] = {"venue_id": venue_id, "amount": delta, "ceiling": BUCKET_CEILING}
    buckets = [(scope, width) for scope in (VENUE_SCOPE, agent_id) for width in WIDTHS]
    for k, (scope, width) in enumerate(buckets):
        values.update({f"scope_{k}": scope, f"width_{k}": width, f"start_{k}": created_at - created_at % width})
    return _ADD_HOLD, values


@contextmanager
def capacity_guard() -> Iterator[None]:
    """Turn the refusal of :func:`hold_change`'s statement into :class:`Conflict`
    (``ledger_capacity``): the caller's transaction (or savepoint) rolls back whole."""
    try:
        yield
    except IntegrityError as exc:
        if not refused(exc):
            raise
        raise Conflict(
            "This venue already holds the most its ledger can count in one day; nothing was authorized."
            " Set a daily or monthly limit, or wait for the day's holds to leave the window",
            code="ledger_capacity",
        ) from None


def refused(exc: IntegrityError) -> bool:
    """Whether ``exc`` is the guard of the hold's statement refusing a bucket."""
    diag = getattr(exc.orig, "diag", None)
    if diag is not None:  # psycopg: the error's fields
        return bool(
            getattr(exc.orig, "sqlstate", None) == _NOT_NULL
            and diag.table_name == "spend_buckets"
            and diag.column_name == "amount"
        )
    return str(exc.orig) == _SQLITE_REFUSAL


def prune_buckets(conn: Connection, before: int) -> int:
    """Drop the buckets of every width that start a day or more before ``before``, the start
    of the widest window: no window can reach them any more. Returns how many went.

    The sweep runs this every few seconds: it finds them by their start alone
    (``ix_spend_buckets_start``), as a busy venue keeps millions of second buckets."""
    result = conn.execute(spend_buckets.delete().where(spend_buckets.c.start < before - DAY))
    return result.rowcount or 0
