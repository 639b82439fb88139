"""What logging events costs: a share of the key's rate limit, and each agent's quota.

A request that logs events costs its key one token per ``EVENTS_PER_TOKEN`` events or per
``BYTES_PER_TOKEN`` bytes of events, whichever is more, and at least one: a token stands
for the gateway's time of one decision, and on SQLite a 1,000-event batch took the time of
about 20 decisions, a 1 MiB one about 31. So a batch is no cheaper than its share of work.

Each agent of a venue may log ``events`` events and ``size`` bytes of events per
``window`` seconds: a bucket that holds one window's quota and refills at its pace, so an
agent that used it up gets it back gradually, never all at once at a window's edge. A
request over the quota is refused whole (429 ``quota_exceeded`` with Retry-After) and stores
nothing; one larger than the whole quota is refused with 413, since waiting would never
help. Events are measured as compact JSON, as the client sent them. The counts live in this
process's memory, like the key's rate limit: with N instances an agent may log up to N
times its quota. That keeps the check off the database and off the authorize path, where
the gateway logs its own events.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

from fastapi import FastAPI, Request

from agenitry.gateway.api.ratelimit import RateLimited, TokenBuckets, charge_key
from agenitry.gateway.errors import Forbidden, PayloadTooLarge
from agenitry.gateway.service.access import Principal

EVENTS_PER_TOKEN = 50
BYTES_PER_TOKEN = 32 * 1024


class QuotaExceeded(RateLimited):
    code = "quota_exceeded"

    def sentence(self, source: str) -> str:
        return f"{source} has logged its quota of events for now: retry in {self.retry_after} s"


class EventQuota:
    """Each agent's allowance of events and bytes per window.

    >>> quota = EventQuota(events=2, size=1000, window=3600, clock=lambda: 0.0)
    >>> quota.admit("venue", {"bot": (2, 100)})
    >>> quota.admit("venue", {"bot": (1, 10)})
    Traceback (most recent call last):
    ...
    agenitry.gateway.api.quota.QuotaExceeded: Agent 'bot' has logged its quota of events for now: retry in 1800 s
    """

    #: Every bucket holds one window's quota counted in millionths, so that the events and
    #: the bytes of every agent of a request are taken from one set of buckets, all or none.
    SCALE = 1_000_000

    def __init__(self, events: int, size: int, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {"events": events, "bytes": size}
        self.window = window
        self._buckets = TokenBuckets(self.SCALE / window, self.SCALE, clock=clock)

    def admit(self, venue_id: str, usage: Mapping[str, tuple[int, int]]) -> None:
        """Count each agent's (events, bytes), or raise and count nothing."""
        costs = {
            f"{venue_id}\x00{agent}\x00{unit}": used * self.SCALE / limit
            for agent, counts in usage.items()
            for (unit, limit), used in zip(self.limits.items(), counts)
            if limit > 0
        }
        wait = self._buckets.take_all(costs)
        agents = ", ".join(f"'{agent}'" for agent in sorted(usage))
        if wait == math.inf:
            raise PayloadTooLarge(
                f"These events are more than the whole quota of agent {agents} ({self.limits['events']} events "
                f"and {self.limits['bytes']} bytes per {self.window:g} s): send fewer or smaller events at a time",
                code="batch_too_large",
            )
        if wait > 0:
            raise QuotaExceeded(wait, f"Agent {agents}")


def admit_events(request: Request, principal: Principal, events: Sequence[Mapping[str, Any]]) -> None:
    """Charge a request that logs ``events`` to its key's rate limit and to its agents'
    quotas; called before anything is stored, so a refused request stores nothing."""
    usage: dict[str, tuple[int, int]] = {}
    total = 0
    for event in events:
        size = len(json.dumps(event, separators=(",", ":"), default=str).encode())
        total += size
        try:
            agent = principal.acting_for(event.get("agent_id"))
        except Forbidden:
            continue  # the service refuses the request, once it has answered 404 for another venue's
        count, used = usage.get(agent, (0, 0))
        usage[agent] = (count + 1, used + size)
    charge_key(request, principal.key_id, max(1.0, len(events) / EVENTS_PER_TOKEN, total / BYTES_PER_TOKEN))
    quota: Optional[EventQuota] = getattr(request.app.state, "event_quota", None)
    if quota is not None:
        quota.admit(principal.venue_id, usage)


def install(app: FastAPI, *, events: int, size: int, window: float) -> None:
    """Give each agent of ``app`` a quota of ``events`` events and ``size`` bytes per
    ``window`` seconds (0 turns that part off). Its 429 is rendered as a rate limit's."""
    app.state.event_quota = EventQuota(events, size, window) if events > 0 or size > 0 else None
