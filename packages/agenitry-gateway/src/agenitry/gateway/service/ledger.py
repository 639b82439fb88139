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

import functools
from collections.abc import Sequence
from typing import Any, Optional

from sqlalchemy import Connection, Select, bindparam, func, select, text

from agenitry.gateway._clock import DAY, HOUR, MINUTE
from agenitry.gateway.store.schema import authorizations, spend_buckets

#: The venue-wide scope; any other scope is an agent id.
VENUE_SCOPE = ""
WIDTHS = (MINUTE, HOUR, DAY)


def _ceil(ms: int, width: int) -> int:
    return -(-ms // width) * width


def _held(k: int, per_agent: bool) -> Any:
    """The amount held in window ``k``, its parameters suffixed ``_k``."""
    a, b = authorizations.c, spend_buckets.c
    edge = select(func.coalesce(func.sum(a.hold), 0)).where(
        a.venue_id == bindparam("venue_id"),
        a.created_at >= bindparam(f"start_{k}"),
        a.created_at < bindparam(f"minute_{k}"),
    )
    if per_agent:
        edge = edge.where(a.agent_id == bindparam(f"scope_{k}"))

    # One range of the primary key per width. An OR of the three ranges made SQLite and
    # PostgreSQL read every bucket the scope kept (31 days of minutes: up to 44,640 rows).
    def buckets(width: int, first: str, end: Optional[str] = None) -> Any:
        query = select(func.coalesce(func.sum(b.amount), 0)).where(
            b.venue_id == bindparam("venue_id"),
            b.scope == bindparam(f"scope_{k}"),
            b.width == width,
            b.start >= bindparam(f"{first}_{k}"),
        )
        if end is not None:
            query = query.where(b.start < bindparam(f"{end}_{k}"))
        return query.scalar_subquery()

    return (
        edge.scalar_subquery() + buckets(MINUTE, "minute", "hour") + buckets(HOUR, "hour", "day") + buckets(DAY, "day")
    )


@functools.lru_cache(maxsize=64)
def _held_statement(per_agent: tuple[bool, ...]) -> Select[Any]:
    # Built once per shape with bound parameters: building the expression on every
    # decision cost more than running it, and one statement reads every window asked.
    return select(*(_held(k, agent) for k, agent in enumerate(per_agent)))


def held_in(conn: Connection, venue_id: str, windows: Sequence[tuple[str, int]]) -> list[int]:
    """For each ``(scope, start)``, the amount held by authorizations of ``scope``
    created at or after ``start``, read in one statement."""
    values: dict[str, Any] = {"venue_id": venue_id}
    for k, (scope, start) in enumerate(windows):
        minute = _ceil(start, MINUTE)
        hour = _ceil(minute, HOUR)
        values.update({f"scope_{k}": scope, f"start_{k}": start, f"minute_{k}": minute})
        values.update({f"hour_{k}": hour, f"day_{k}": _ceil(hour, DAY)})
    statement = _held_statement(tuple(scope != VENUE_SCOPE for scope, _ in windows))
    return [int(amount) for amount in conn.execute(statement, values).one()]


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
_ADD_HOLD = text(
    f"INSERT INTO spend_buckets (venue_id, scope, width, start, amount) VALUES {_HOLD_ROWS}"  # noqa: S608 - no value in it
    " ON CONFLICT (venue_id, scope, width, start) DO UPDATE SET amount = spend_buckets.amount + excluded.amount"
)


def add_hold(conn: Connection, venue_id: str, agent_id: str, created_at: int, delta: int) -> None:
    """Change what an authorization created at ``created_at`` holds by ``delta``."""
    if delta == 0:
        return
    values: dict[str, Any] = {"venue_id": venue_id, "amount": delta}
    buckets = [(scope, width) for scope in (VENUE_SCOPE, agent_id) for width in WIDTHS]
    for k, (scope, width) in enumerate(buckets):
        values.update({f"scope_{k}": scope, f"width_{k}": width, f"start_{k}": created_at - created_at % width})
    conn.execute(_ADD_HOLD, values)


def prune_buckets(conn: Connection, before: int) -> int:
    """Drop buckets that no window can reach any more; returns how many went."""
    result = conn.execute(spend_buckets.delete().where(spend_buckets.c.start < before - DAY))
    return result.rowcount or 0
