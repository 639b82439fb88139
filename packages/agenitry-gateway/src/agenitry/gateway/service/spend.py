"""Spend against limits: what each scope spent and holds in its rolling windows, and day by day.

The numbers are the policy engine's: a scope's "used" in a window is what a decision made
now would count against that window's limit (``ledger.held_in``): the spent amount of
executed and settled authorizations plus the amount of pending and approved ones, for
authorizations created within ``[now - window, now]``. A pending or approved authorization
whose window has passed counts nothing even before its expiry is written down, since the
next decision would expire it first; so this read changes nothing.

Everything comes from one grouped read of the venue's authorizations (by agent and UTC
day, with conditional sums for the two windows) and one read of its policies, however
many agents the venue has.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Optional

from sqlalchemy import and_, case, literal_column, select

from agenitry import SPENT_STATUSES
from agenitry.gateway._clock import DAY, iso, start_of_utc_day
from agenitry.gateway._money import display
from agenitry.gateway.errors import Unprocessable
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.gateway import Gateway
from agenitry.gateway.service.inputs import POLICY_LIMITS
from agenitry.gateway.service.ledger import VENUE_SCOPE
from agenitry.gateway.service.lifecycle import EXPIRING
from agenitry.gateway.service.policy import WINDOW_CHECKS, Policy
from agenitry.gateway.service.venues import venue_currency
from agenitry.gateway.store.schema import authorizations, policies
from agenitry.gateway.store.sums import joined, split_sum

#: The most days a history (or a dry run) may cover.
MAX_DAYS = 90
#: The rolling windows by the names the summary gives them: each limit and its length.
WINDOWS = {name: (field, length) for field, length, _span, name in WINDOW_CHECKS}
_WIDEST = max(length for _field, length in WINDOWS.values())


def checked_days(days: Any) -> int:
    """A number of days a page may ask for: a whole number from 1 to :data:`MAX_DAYS`."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise Unprocessable(f"days must be a whole number from 1 to {MAX_DAYS}", code="invalid_days")
    return days


def amounts(currency: str, **minor: Optional[int]) -> dict[str, Any]:
    """Each amount in minor units, and beside it as a person reads it (``<name>_display``).

    >>> amounts("USD", spent=12000, limit=None)
    {'spent': 12000, 'spent_display': '$120.00', 'limit': None, 'limit_display': None}
    """
    shown: dict[str, Any] = {}
    for name, value in minor.items():
        shown[name] = value
        shown[f"{name}_display"] = display(value, currency) if value is not None else None
    return shown


def spend_summary(gateway: Gateway, principal: Principal, *, days: int = 30) -> dict[str, Any]:
    """Spend against limits for the principal's venue, as a whole and per agent, as of now.

    Any key of the venue may read it. The agents listed are those with a policy or with an
    authorization in the last 30 days (or in the ``days`` of history, if more).

    >>> spend_summary(gateway, admin)["venue"]["daily"]["used_display"]  # doctest: +SKIP
    '$150.00'
    """
    days = checked_days(days)
    now = gateway.clock()
    first_day = start_of_utc_day(now) - (days - 1) * DAY
    since = min(first_day, now - _WIDEST)
    a = authorizations.c
    # The day written into the SQL: PostgreSQL groups by an expression only if the select
    # list repeats it exactly, which two bound parameters would not.
    day = (a.created_at - a.created_at % literal_column(str(DAY))).label("day")
    spent = a.status.in_(SPENT_STATUSES)
    held = and_(a.status.in_(EXPIRING), a.expires_at >= now)
    sums: list[Any] = []
    for counts in (spent, held):
        sums += split_sum(case((counts, a.hold), else_=0))
        for _field, length in WINDOWS.values():
            sums += split_sum(case((and_(counts, a.created_at >= now - length), a.hold), else_=0))
    with gateway.db.read() as conn:
        currency = venue_currency(conn, principal.venue_id)
        groups = conn.execute(
            select(a.agent_id, day, *sums)
            .where(a.venue_id == principal.venue_id, a.created_at >= since)
            .group_by(a.agent_id, day)
        ).all()
        policy_rows = conn.execute(select(policies).where(policies.c.venue_id == principal.venue_id)).all()

    scopes = {row.scope: Policy.from_row(row) for row in policy_rows}
    # (scope, "spent" or "held", day start or window name) -> minor units
    counted: dict[tuple[str, str, Any], int] = defaultdict(int)
    per_kind = len(WINDOWS) + 1
    for agent_id, day_start, *parts in groups:
        values = [joined(high, low) for high, low in zip(parts[::2], parts[1::2])]
        for k, kind in enumerate(("spent", "held")):
            by_day, *by_window = values[k * per_kind : (k + 1) * per_kind]
            for scope in (VENUE_SCOPE, agent_id):
                counted[scope, kind, int(day_start)] += by_day
                for name, value in zip(WINDOWS, by_window):
                    counted[scope, kind, name] += value

    def scope_summary(scope: str) -> dict[str, Any]:
        policy = scopes.get(scope)
        limits = {name: getattr(policy, name) if policy is not None else None for name in POLICY_LIMITS}
        summary: dict[str, Any] = {
            "agent_id": scope or None,
            "policy_id": policy.id if policy is not None else None,
            "limits": amounts(currency, **limits),
        }
        for name, (field, _length) in WINDOWS.items():
            summary[name] = _window(
                counted[scope, "spent", name], counted[scope, "held", name], limits[field], currency
            )
        summary["days"] = [
            {
                "date": str(iso(start))[:10],
                "start": iso(start),
                **amounts(currency, spent=counted[scope, "spent", start], held=counted[scope, "held", start]),
            }
            for start in range(first_day, first_day + days * DAY, DAY)
        ]
        return summary

    agents = sorted({scope for scope in scopes if scope} | {agent_id for agent_id, *_ in groups})
    return {
        "venue_id": principal.venue_id,
        "currency": currency,
        "as_of": iso(now),
        "period_days": days,
        "venue": scope_summary(VENUE_SCOPE),
        "agents": [scope_summary(agent) for agent in agents],
    }


def _window(spent: int, held: int, limit: Optional[int], currency: str) -> dict[str, Any]:
    """One rolling window of one scope: spent, held, their sum (what the limit is checked
    against), the limit, what is left under it, and the fraction used (above 1 when a limit
    was lowered below what the window already holds)."""
    used = spent + held
    remaining = max(limit - used, 0) if limit is not None else None
    if limit is None:
        fraction = None
    elif limit == 0:
        fraction = 0.0 if used == 0 else 1.0
    else:
        fraction = used / limit
    return {
        **amounts(currency, spent=spent, held=held, used=used, limit=limit, remaining=remaining),
        "fraction": fraction,
    }
