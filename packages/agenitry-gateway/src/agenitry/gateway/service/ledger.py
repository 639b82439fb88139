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

from sqlalchemy import Connection, and_, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from agenitry.gateway._clock import DAY, HOUR, MINUTE
from agenitry.gateway.store.schema import authorizations, spend_buckets

#: The venue-wide scope; any other scope is an agent id.
VENUE_SCOPE = ""
WIDTHS = (MINUTE, HOUR, DAY)


def _ceil(ms: int, width: int) -> int:
    return -(-ms // width) * width


def held_since(conn: Connection, venue_id: str, scope: str, start: int) -> int:
    """The amount held by authorizations of ``scope`` created at or after ``start``."""
    minute = _ceil(start, MINUTE)
    hour = _ceil(minute, HOUR)
    day = _ceil(hour, DAY)

    edge = select(func.coalesce(func.sum(authorizations.c.hold), 0)).where(
        authorizations.c.venue_id == venue_id,
        authorizations.c.created_at >= start,
        authorizations.c.created_at < minute,
    )
    if scope != VENUE_SCOPE:
        edge = edge.where(authorizations.c.agent_id == scope)

    b = spend_buckets.c
    buckets = select(func.coalesce(func.sum(b.amount), 0)).where(
        b.venue_id == venue_id,
        b.scope == scope,
        or_(
            and_(b.width == MINUTE, b.start >= minute, b.start < hour),
            and_(b.width == HOUR, b.start >= hour, b.start < day),
            and_(b.width == DAY, b.start >= day),
        ),
    )
    return int(conn.execute(edge).scalar_one()) + int(conn.execute(buckets).scalar_one())


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
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(spend_buckets).values(rows)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["venue_id", "scope", "width", "start"],
            set_={"amount": spend_buckets.c.amount + insert.excluded.amount},
        )
    )


def prune_buckets(conn: Connection, before: int) -> int:
    """Drop buckets that no window can reach any more; returns how many went."""
    result = conn.execute(spend_buckets.delete().where(spend_buckets.c.start < before - DAY))
    return result.rowcount or 0
