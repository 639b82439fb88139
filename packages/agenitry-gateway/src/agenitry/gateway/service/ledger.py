"""Holds and rolling windows, exact to the millisecond at a cost that history cannot grow.

Every hold is added to three buckets of its scope (the venue, and its agent): the minute,
the hour and the day in which its authorization was created. The amount held in a window
``[start, now]`` is then

    the exact holds created in [start, next minute)      -- read from authorizations
  + minute buckets up to the next hour                    -- at most 59 rows
  + hour buckets up to the next day                       -- at most 23 rows
  + day buckets from there on                             -- at most 31 rows

so a decision reads a bounded number of rows however many authorizations the window holds.
Nothing is ever created after ``now``, so the last term needs no upper bound.
"""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import Connection, Select, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from agenitry.gateway._clock import DAY, HOUR, MINUTE
from agenitry.gateway.store.schema import authorizations, spend_buckets

#: The venue-wide scope; any other scope is an agent id.
VENUE_SCOPE = ""
WIDTHS = (MINUTE, HOUR, DAY)


def _ceil(ms: int, width: int) -> int:
    return -(-ms // width) * width


def _held_statement(per_agent: bool) -> Select[Any]:
    # Built once with bound parameters: building the expression on every decision cost
    # more than running it, and one statement replaces the two round trips.
    a, b = authorizations.c, spend_buckets.c
    edge = select(func.coalesce(func.sum(a.hold), 0)).where(
        a.venue_id == bindparam("venue_id"),
        a.created_at >= bindparam("start"),
        a.created_at < bindparam("minute"),
    )
    if per_agent:
        edge = edge.where(a.agent_id == bindparam("scope"))

    # One range of the primary key per width. An OR of the three ranges made SQLite and
    # PostgreSQL read every bucket the scope kept (31 days of minutes: up to 44,640 rows).
    def buckets(width: int, first: str, end: Optional[str] = None) -> Any:
        query = select(func.coalesce(func.sum(b.amount), 0)).where(
            b.venue_id == bindparam("venue_id"),
            b.scope == bindparam("scope"),
            b.width == width,
            b.start >= bindparam(first),
        )
        if end is not None:
            query = query.where(b.start < bindparam(end))
        return query.scalar_subquery()

    return select(
        edge.scalar_subquery() + buckets(MINUTE, "minute", "hour") + buckets(HOUR, "hour", "day") + buckets(DAY, "day")
    )


_HELD_BY_VENUE = _held_statement(per_agent=False)
_HELD_BY_AGENT = _held_statement(per_agent=True)


def held_since(conn: Connection, venue_id: str, scope: str, start: int) -> int:
    """The amount held by authorizations of ``scope`` created at or after ``start``."""
    minute = _ceil(start, MINUTE)
    hour = _ceil(minute, HOUR)
    day = _ceil(hour, DAY)
    statement = _HELD_BY_VENUE if scope == VENUE_SCOPE else _HELD_BY_AGENT
    values = {"venue_id": venue_id, "scope": scope, "start": start, "minute": minute, "hour": hour, "day": day}
    return int(conn.execute(statement, values).scalar_one())


def _upsert(insert: Any) -> Any:
    return insert.on_conflict_do_update(
        index_elements=["venue_id", "scope", "width", "start"],
        set_={"amount": spend_buckets.c.amount + insert.excluded.amount},
    )


# One row's upsert, executed for the six buckets of a hold: unlike a multi-row VALUES
# built per call, SQLAlchemy compiles it once and caches it.
_ADD_HOLD = {
    "postgresql": _upsert(postgresql.insert(spend_buckets)),
    "sqlite": _upsert(sqlite.insert(spend_buckets)),
}


def add_hold(conn: Connection, venue_id: str, agent_id: str, created_at: int, delta: int) -> None:
    """Change what an authorization created at ``created_at`` holds by ``delta``."""
    if delta == 0:
        return
    rows = [
        {
            "venue_id": venue_id,
            "scope": scope,
            "width": width,
            "start": created_at - created_at % width,
            "amount": delta,
        }
        for scope in (VENUE_SCOPE, agent_id)
        for width in WIDTHS
    ]
    conn.execute(_ADD_HOLD[conn.dialect.name], rows)


def prune_buckets(conn: Connection, before: int) -> int:
    """Drop buckets that no window can reach any more; returns how many went."""
    result = conn.execute(spend_buckets.delete().where(spend_buckets.c.start < before - DAY))
    return result.rowcount or 0
