"""The policy dry run: what a changed policy would have decided on the venue's recent requests.

How the dry run counts. Every authorization request of the last ``days`` days is decided
again by the policy engine itself, at the moment it arrived and in the order the gateway
decided it (that of the log), twice: once under the policies as they are now ("current")
and once with the candidate policy in their place ("proposed"). Each replay keeps its own
holds, counted in rolling windows exact to the millisecond as the engine counts them:

- a request the replay denies holds nothing;
- one it approves or leaves pending holds its amount from the moment it was asked, then
  follows what really happened to it: from the moment the real authorization was
  executed it holds the actual amount, and from the moment it was reversed, denied by its
  owner or expired it holds nothing;
- one the gateway really denied at once has no such history: let through by a replay, it
  holds its amount for as long as the windows see it, as if spent in full, so that a
  looser policy never looks cheaper than it could have been;
- requests made before the period that still fall in a window count what they really
  held at each moment (the same history, from their real decision).

Nothing is written: the read is one read transaction, and an expiry that is due but not
yet written down counts as having happened when the window ended.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Optional

from sqlalchemy import func, select

from agenitry.gateway._clock import DAY, iso
from agenitry.gateway._money import display
from agenitry.gateway.service import inputs
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.bodies import require_named_venue
from agenitry.gateway.service.gateway import Gateway
from agenitry.gateway.service.ledger import VENUE_SCOPE
from agenitry.gateway.service.lifecycle import EXPIRING
from agenitry.gateway.service.policy import MONTHLY_WINDOW, WINDOW_CHECKS, Decision, Policy, evaluate
from agenitry.gateway.service.spend import amounts, checked_days
from agenitry.gateway.service.venues import venue_currency
from agenitry.gateway.store.schema import authorizations, events, policies

#: The most changed requests an answer lists (``changed_total`` counts them all).
MAX_CHANGED = 50
#: The denial code of an owner's denial: the one denial that comes after the decision.
OWNER_DENIAL = "denied_by_owner"
#: How the diff names each field of a policy.
LABELS = {
    "max_single_amount": "Single-transaction limit",
    "max_daily_spend": "Daily limit (24 hours)",
    "max_monthly_spend": "Monthly limit (30 days)",
    "require_approval_above": "Approval above",
    "allowed_actions": "Allowed actions",
}
OUTCOMES = ("approved", "pending", "denied")

_a = authorizations.c
# Requests of the same millisecond in the order the gateway decided them: that of their
# first log entries (found through the index on the venue and the time).
_ARRIVAL = (
    select(func.min(events.c.sequence))
    .where(events.c.venue_id == _a.venue_id, events.c.created_at == _a.created_at, events.c.authorization_id == _a.id)
    .scalar_subquery()
)
_REQUESTS = select(
    _a.id,
    _a.agent_id,
    _a.action,
    _a.currency,
    _a.amount,
    _a.actual_amount,
    _a.status,
    _a.denial_code,
    _a.denial_reason,
    _a.created_at,
    _a.expires_at,
    _a.executed_at,
    _a.denied_at,
    _a.reversed_at,
).order_by(_a.created_at, _ARRIVAL)


def dry_run(gateway: Gateway, principal: Principal, changes: dict[str, Any], *, days: int = 30) -> dict[str, Any]:
    """What the policy ``changes`` would have decided on the last ``days`` days of requests.

    ``changes`` is a PUT /v1/policies body (only the fields sent; ``None`` removes a
    limit), checked exactly as that PUT checks it, with the same errors; nothing changes.

    >>> answer = dry_run(gateway, admin, {"max_daily_spend": 300})  # doctest: +SKIP
    >>> answer["current"], answer["proposed"]  # doctest: +SKIP
    ({'approved': 7, 'pending': 1, 'denied': 0}, {'approved': 5, 'pending': 1, 'denied': 2})
    """
    require_named_venue(principal, changes)
    principal.require_admin("change a policy")
    days = checked_days(days)
    now = gateway.clock()
    start = now - days * DAY
    with gateway.db.read() as conn:
        currency = venue_currency(conn, principal.venue_id)
        agent_id, sent = inputs.policy_change(changes, currency)
        rows = conn.execute(select(policies).where(policies.c.venue_id == principal.venue_id)).all()
        requests = conn.execute(
            _REQUESTS.where(_a.venue_id == principal.venue_id, _a.created_at >= start - MONTHLY_WINDOW)
        ).all()

    current = {row.scope: Policy.from_row(row) for row in rows}
    scope = agent_id or VENUE_SCOPE
    before = current.get(scope)
    after = _changed_policy(before, sent, venue_id=principal.venue_id, agent_id=agent_id, now=now)
    replays = {"current": _Replay(current, currency), "proposed": _Replay({**current, scope: after}, currency)}
    counts = {name: dict.fromkeys(OUTCOMES, 0) for name in replays}
    changed: list[dict[str, Any]] = []
    changed_total = replayed = 0
    for request in requests:
        steps = _held_steps(request, now)
        if request.created_at < start:
            if not _denied_at_once(request):
                for replay in replays.values():
                    replay.hold(request, steps)
            continue
        replayed += 1
        decisions = {name: replay.decide(request) for name, replay in replays.items()}
        for name, decision in decisions.items():
            counts[name][decision.status] += 1
            if decision.status != "denied":
                replays[name].hold(request, steps)
        if decisions["current"].status != decisions["proposed"].status:
            changed_total += 1
            if len(changed) < MAX_CHANGED:
                changed.append(_changed(request, currency, decisions["current"], decisions["proposed"]))
    return {
        "venue_id": principal.venue_id,
        "currency": currency,
        "agent_id": agent_id,
        "policy_id": before.id if before is not None else None,
        "creates_policy": before is None,
        "diff": policy_diff(before, after, currency),
        "days": days,
        "since": iso(start),
        "until": iso(now),
        "requests": replayed,
        "current": counts["current"],
        "proposed": counts["proposed"],
        "changed_total": changed_total,
        "changed": changed,
    }


class _Replay:
    """One replay of the venue's requests under one set of policies, with its own holds.

    A hold is a list of steps (from each moment on, the amount held); each step, and the
    moment the hold leaves a window, is a change of that window's total waiting in a heap
    until the replay reaches its moment, so a replay costs n log n, not n squared.
    """

    def __init__(self, by_scope: dict[str, Policy], currency: str) -> None:
        self.by_scope = by_scope
        self.currency = currency
        self.held: dict[tuple[str, int], int] = defaultdict(int)
        self._due: list[tuple[int, int, str, int, int]] = []
        self._order = itertools.count()

    def decide(self, request: Any) -> Decision:
        if request.currency != self.currency:
            # Denied whatever the policy (currency_mismatch): the real answer stands.
            return Decision("denied", request.denial_code, request.denial_reason)
        self._reach(request.created_at)
        covering = [
            policy for policy in (self.by_scope.get(VENUE_SCOPE), self.by_scope.get(request.agent_id)) if policy
        ]
        return evaluate(
            covering,
            action=request.action,
            amount=request.amount,
            currency=request.currency,
            held=lambda policy, window: self.held[policy.scope, window],
        )

    def hold(self, request: Any, steps: Sequence[tuple[int, int]]) -> None:
        """Count ``request``'s hold against both windows of the venue and of its agent."""
        for _field, window, *_ in WINDOW_CHECKS:
            # A window at t counts what was created in [t - window, t]: until created_at + window.
            leaves = request.created_at + window + 1
            amount = 0
            for moment, then in steps:
                if moment >= leaves:
                    break
                self._change(moment, request.agent_id, window, then - amount)
                amount = then
            self._change(leaves, request.agent_id, window, -amount)
        self._reach(request.created_at)

    def _change(self, moment: int, agent_id: str, window: int, delta: int) -> None:
        if delta:
            heapq.heappush(self._due, (moment, next(self._order), agent_id, window, delta))

    def _reach(self, moment: int) -> None:
        """Apply every change due at or before ``moment``."""
        while self._due and self._due[0][0] <= moment:
            _, _, agent_id, window, delta = heapq.heappop(self._due)
            self.held[VENUE_SCOPE, window] += delta
            self.held[agent_id, window] += delta


def _changed_policy(
    before: Optional[Policy], sent: dict[str, Any], *, venue_id: str, agent_id: Optional[str], now: int
) -> Policy:
    """The policy the PUT would store: the columns sent over the stored ones (over none
    for a new policy), as the PUT's update writes only the columns sent."""
    values = dict(sent)
    if values.get("allowed_actions") is not None:
        values["allowed_actions"] = tuple(values["allowed_actions"])
    base = before or Policy(
        id="",
        venue_id=venue_id,
        agent_id=agent_id,
        max_single_amount=None,
        max_daily_spend=None,
        max_monthly_spend=None,
        require_approval_above=None,
        allowed_actions=None,
        created_at=now,
        updated_at=now,
    )
    return dataclasses.replace(base, **values, updated_at=now)


def _denied_at_once(request: Any) -> bool:
    """Whether the gateway denied the request when it was asked (not its owner, later)."""
    return bool(request.status == "denied" and request.denial_code != OWNER_DENIAL)


def _held_steps(request: Any, now: int) -> list[tuple[int, int]]:
    """What ``request`` holds from each moment on if it was let through (approved or
    pending), following what really happened to it afterwards."""
    steps = [(request.created_at, request.amount)]
    if request.executed_at is not None:
        steps.append((request.executed_at, request.actual_amount))
    released = _released_at(request, now)
    if released is not None:
        steps.append((released, 0))
    return steps


def _released_at(request: Any, now: int) -> Optional[int]:
    """When the real authorization stopped holding, if it did: reversed, denied by its
    owner, or expired (the engine expires it once ``expires_at`` has passed, written down
    or not)."""
    if request.reversed_at is not None:
        return int(request.reversed_at)
    if request.denial_code == OWNER_DENIAL:
        return int(request.denied_at)
    if request.status == "expired" or (request.status in EXPIRING and request.expires_at < now):
        return int(request.expires_at) + 1
    return None


def _changed(request: Any, currency: str, current: Decision, proposed: Decision) -> dict[str, Any]:
    denying = proposed if proposed.status == "denied" else current
    return {
        "id": request.id,
        "agent_id": request.agent_id,
        "action": request.action,
        **amounts(currency, amount=request.amount),
        "created_at": iso(request.created_at),
        "current": current.status,
        "proposed": proposed.status,
        "denial_code": denying.denial_code,
        # Why the proposed policy decides as it does (or, when it approves, why the current one did not).
        "reason": proposed.denial_reason or proposed.message or current.denial_reason or current.message,
    }


def policy_diff(before: Optional[Policy], after: Policy, currency: str) -> list[dict[str, Any]]:
    """Each field that changes, with its old and new values (minor units, or the actions)
    and as a person reads them: "Daily limit (24 hours): $500.00 -> $300.00".

    A field of a policy that does not exist yet reads as unset ("no limit", "any action").
    """
    entries = []
    for field, label in LABELS.items():
        old = getattr(before, field) if before is not None else None
        new = getattr(after, field)
        if old != new:
            entries.append(
                {
                    "field": field,
                    "label": label,
                    "old": _shown(field, old, currency),
                    "new": _shown(field, new, currency),
                    "old_value": list(old) if isinstance(old, tuple) else old,
                    "new_value": list(new) if isinstance(new, tuple) else new,
                }
            )
    return entries


def _shown(field: str, value: Any, currency: str) -> str:
    if field == "allowed_actions":
        if value is None:
            return "any action"
        return ", ".join(value) if value else "none"
    return display(value, currency) if value is not None else "no limit"
