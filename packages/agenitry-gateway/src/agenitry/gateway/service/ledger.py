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
import operator
from collections.abc import Sequence
from typing import Any, Optional

from sqlalchemy import Connection, Select, bindparam, select, text, true

from agenitry.gateway._clock import DAY, HOUR, MINUTE, SECOND
from agenitry.gateway.errors import Conflict
from agenitry.gateway.store.schema import authorizations, spend_buckets
from agenitry.gateway.store.sums import joined, split_sum

#: The venue-wide scope; any other scope is an agent id.
VENUE_SCOPE = ""
WIDTHS = (SECOND, MINUTE, HOUR, DAY)
#: The parameter naming where each width's buckets begin: the window's start rounded up to it.
_BOUNDS = ("second", "minute", "hour", "day")
#: The one-row parts of a window: its exact edge, then one per width.
_PARTS = 1 + len(WIDTHS)


def _ceil(ms: int, width: int) -> int:
    return -(-ms // width) * width


def _held(k: int, per_agent: bool) -> list[Any]:
    """The one-row parts of window ``k`` (the exact holds, then each width of buckets),
    each as the high and low halves of its sum; parameters suffixed ``_k``."""
    a, b = authorizations.c, spend_buckets.c
    edge = select(*split_sum(a.hold)).where(
        a.venue_id == bindparam("venue_id"),
        a.created_at >= bindparam(f"start_{k}"),
        a.created_at < bindparam(f"second_{k}"),
    )
    if per_agent:
        edge = edge.where(a.agent_id == bindparam(f"scope_{k}"))

    # One range of the primary key per width. An OR of the ranges made SQLite and
    # PostgreSQL read every bucket the scope kept (31 days of minutes alone: 44,640 rows).
    def buckets(width: int, first: str, end: Optional[str] = None) -> Select[Any]:
        query = select(*split_sum(b.amount)).where(
            b.venue_id == bindparam("venue_id"),
            b.scope == bindparam(f"scope_{k}"),
            b.width == width,
            b.start >= bindparam(f"{first}_{k}"),
        )
        if end is not None:
            query = query.where(b.start < bindparam(f"{end}_{k}"))
        return query

    ends: list[Optional[str]] = [*_BOUNDS[1:], None]
    parts = [edge, *(buckets(width, first, end) for width, first, end in zip(WIDTHS, _BOUNDS, ends))]
    return [part.subquery(f"held_{k}_{n}") for n, part in enumerate(parts)]


@functools.lru_cache(maxsize=64)
def _held_statement(per_agent: tuple[bool, ...]) -> Select[Any]:
    # Built once per shape with bound parameters: building the expression on every
    # decision cost more than running it, and one statement reads every window asked.
    # Every part is one row, so joining them on TRUE only puts them side by side.
    parts = [part for k, agent in enumerate(per_agent) for part in _held(k, agent)]
    side_by_side = functools.reduce(lambda left, right: left.join(right, true()), parts[1:], parts[0])
    halves = []
    for k in range(len(per_agent)):
        window = parts[_PARTS * k : _PARTS * (k + 1)]
        # Adding the parts' halves cannot overflow either: still fewer than 2^31 rows.
        halves += [functools.reduce(operator.add, (part.c[half] for part in window)) for half in ("high", "low")]
    return select(*halves).select_from(side_by_side)


def held_in(conn: Connection, venue_id: str, windows: Sequence[tuple[str, int]]) -> list[int]:
    """For each ``(scope, start)``, the amount held by authorizations of ``scope``
    created at or after ``start``, read in one statement."""
    values: dict[str, Any] = {"venue_id": venue_id}
    for k, (scope, start) in enumerate(windows):
        values.update({f"scope_{k}": scope, f"start_{k}": start})
        bound = start
        for width, name in zip(WIDTHS, _BOUNDS):
            bound = _ceil(bound, width)
            values[f"{name}_{k}"] = bound
    statement = _held_statement(tuple(scope != VENUE_SCOPE for scope, _ in windows))
    row = conn.execute(statement, values).one()
    return [joined(row[2 * k], row[2 * k + 1]) for k in range(len(windows))]


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
_ADD_HOLD = text(
    f"INSERT INTO spend_buckets (venue_id, scope, width, start, amount) VALUES {_HOLD_ROWS}"  # noqa: S608 - no value in it
    " ON CONFLICT (venue_id, scope, width, start) DO UPDATE SET amount = spend_buckets.amount + excluded.amount"
    " WHERE spend_buckets.amount <= :ceiling - excluded.amount"
)


def add_hold(conn: Connection, venue_id: str, agent_id: str, created_at: int, delta: int) -> None:
    """Change what an authorization created at ``created_at`` holds by ``delta``.

    Raises :class:`Conflict` (``ledger_capacity``) when a bucket would pass
    :data:`BUCKET_CEILING`; the caller's transaction then rolls back whole.
    """
    if delta == 0:
        return
    values: dict[str, Any] = {"venue_id": venue_id, "amount": delta, "ceiling": BUCKET_CEILING}
    buckets = [(scope, width) for scope in (VENUE_SCOPE, agent_id) for width in WIDTHS]
    for k, (scope, width) in enumerate(buckets):
        values.update({f"scope_{k}": scope, f"width_{k}": width, f"start_{k}": created_at - created_at % width})
    # A row the guard refused is neither inserted nor updated, so it is missing from the count.
    if conn.execute(_ADD_HOLD, values).rowcount != _BUCKETS:
        raise Conflict(
            "This venue already holds the most its ledger can count in one day; nothing was authorized."
            " Set a daily or monthly limit, or wait for the day's holds to leave the window",
            code="ledger_capacity",
        )


def prune_buckets(conn: Connection, before: int) -> int:
    """Drop the buckets of every width that start a day or more before ``before``, the start
    of the widest window: no window can reach them any more. Returns how many went.

    The sweep runs this every few seconds: it finds them by their start alone
    (``ix_spend_buckets_start``), as a busy venue keeps millions of second buckets."""
    result = conn.execute(spend_buckets.delete().where(spend_buckets.c.start < before - DAY))
    return result.rowcount or 0
