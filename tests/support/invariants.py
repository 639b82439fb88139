"""The ledger's invariants, checked from what one venue stored.

:func:`check_ledger` replays the venue's event log in sequence order (the order the
venue's lock let the decisions commit in) and checks, without trusting the gateway's own
arithmetic:

- **never above a limit**: at every decision point (an approval or a pending decision,
  and an owner's approval of a pending one) no window of any scope (the venue's and the
  agent's; 24 hours and 30 days) held more than the limit of the policy in effect, read
  from the ``policy.updated`` and ``policy.deleted`` events before it; nothing above a
  single-transaction limit or an approval threshold was approved by the policy; nothing
  was approved without a policy or for an action the policy does not allow;
- **every denial justified**: a request denied for a limit did not fit that limit;
- **every transition legal**: each authorization starts with its decision, moves only
  along the lifecycle's arrows, never after its expiry and never expires early;
- **every hold accounted for**: each authorization holds its actual amount when executed
  or settled, its amount when approved or pending, nothing otherwise; the log, the
  authorizations table and the spend buckets say the same, and the ledger's window sums
  equal the table's at many window starts;
- **no half-written state**: sequences run 0..n-1 without a gap, the venue's counter says
  n, every authorization has its decision event and every executed or reversed one its
  business event.

It raises :class:`LedgerViolation` (an AssertionError) listing what it found, or returns
a :class:`LedgerReport` of what the venue went through, so a test can also show that its
workload reached the limits it claims to test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Optional, Union

from sqlalchemy import Connection, select

from agenitry.gateway import Database
from agenitry.gateway._clock import DAY
from agenitry.gateway._money import to_minor
from agenitry.gateway.service import ledger
from agenitry.gateway.service.policy import DAILY_WINDOW, MONTHLY_WINDOW
from agenitry.gateway.store.schema import authorizations, events, spend_buckets, venues

#: Where each status may go next (``None``: the decision that creates an authorization).
NEXT = {
    None: {"approved", "pending", "denied"},
    "pending": {"approved", "denied", "expired"},
    "approved": {"executed", "reversed", "expired"},
    "executed": {"settled", "reversed"},
}
WINDOWS = (("max_daily_spend", DAILY_WINDOW), ("max_monthly_spend", MONTHLY_WINDOW))
LIMIT_FIELDS = ("max_single_amount", "max_daily_spend", "max_monthly_spend", "require_approval_above")
#: How many window starts the ledger's sums are compared at.
WINDOW_PROBES = 25
MAX_LISTED = 25


class LedgerViolation(AssertionError):
    """The stored state of a venue breaks an invariant; the message lists every finding."""


@dataclass(frozen=True)
class Limits:
    """One scope's policy as a ``policy.updated`` event recorded it, in minor units."""

    id: str
    values: dict[str, Optional[int]]
    allowed_actions: Optional[frozenset[str]]


@dataclass
class Replayed:
    """An authorization as its events tell it."""

    id: str
    agent_id: str
    amount: int
    created_at: int
    status: Optional[str] = None
    hold: int = 0
    expires_at: Optional[int] = None
    executed_amount: Optional[int] = None


@dataclass
class LedgerReport:
    """What the venue went through; ``peaks`` maps "scope window" to the largest share of
    its limit held at a decision point (1.0 is exactly at the limit)."""

    events: int = 0
    authorizations: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    transitions: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    peaks: dict[str, float] = field(default_factory=dict)


def check_ledger(database: Union[Database, str], venue_id: str) -> LedgerReport:
    """Check every invariant of ``venue_id``'s ledger; raises :class:`LedgerViolation`.

    ``database`` is an open :class:`Database` or a database URL.

    >>> report = check_ledger(database, venue.id)  # doctest: +SKIP
    >>> report.decisions["denied max_daily_spend"] > 0  # doctest: +SKIP
    """
    with _connection(database) as conn:
        return _Checker(conn, venue_id).run()


@contextmanager
def _connection(database: Union[Database, str]) -> Iterator[Connection]:
    owned = isinstance(database, str)
    db = Database(database) if isinstance(database, str) else database
    try:
        with db.read() as conn:
            yield conn
    finally:
        if owned:
            db.dispose()


def _ms(text: str) -> int:
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000 + 0.5)


class _Checker:
    def __init__(self, conn: Connection, venue_id: str) -> None:
        self.conn = conn
        self.venue_id = venue_id
        self.problems: list[str] = []
        self.report = LedgerReport()
        self.policies: dict[str, Limits] = {}
        self.replayed: dict[str, Replayed] = {}
        #: Authorizations holding something now, the only ones a window sum needs.
        self.open: dict[str, Replayed] = {}

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def run(self) -> LedgerReport:
        venue = self.conn.execute(select(venues).where(venues.c.id == self.venue_id)).first()
        if venue is None:
            raise LedgerViolation(f"no venue {self.venue_id!r}")
        self.currency = venue.currency
        log = self.conn.execute(
            select(events).where(events.c.venue_id == self.venue_id).order_by(events.c.sequence)
        ).all()
        table = {
            row.id: row
            for row in self.conn.execute(select(authorizations).where(authorizations.c.venue_id == self.venue_id))
        }
        self.actions = {auth_id: row.action for auth_id, row in table.items()}
        self.report.events = len(log)
        self.report.authorizations = len(table)
        sequences = [row.sequence for row in log]
        if sequences != list(range(len(log))):
            missing = sorted(set(range(len(log))) - set(sequences))[:10]
            self.problem(f"sequences are not 0..{len(log) - 1} without gaps (missing {missing})")
        if venue.event_count != len(log):
            self.problem(f"the venue counts {venue.event_count} events but {len(log)} are stored")
        for row in log:
            self.replay(row)
        self.compare(table, {row.id: row for row in log})
        self.check_buckets(table, log[-1].created_at if log else 0)
        self.report.statuses = Counter(row.status for row in table.values())
        if self.problems:
            listed = "\n  ".join(self.problems[:MAX_LISTED])
            more = f"\n  ... and {len(self.problems) - MAX_LISTED} more" if len(self.problems) > MAX_LISTED else ""
            raise LedgerViolation(f"venue {self.venue_id}: {len(self.problems)} violations:\n  {listed}{more}")
        return self.report

    # -- the log, event by event ----------------------------------------------------------

    def replay(self, row: Any) -> None:
        if row.action == "policy.updated":
            scope = "" if row.agent_id == "*" else row.agent_id
            values = {
                name: to_minor(Decimal(repr(row.context[name])), self.currency)
                if row.context.get(name) is not None
                else None
                for name in LIMIT_FIELDS
            }
            allowed = row.context.get("allowed_actions")
            self.policies[scope] = Limits(row.context["id"], values, None if allowed is None else frozenset(allowed))
        elif row.action == "policy.deleted":
            for scope, limits in list(self.policies.items()):
                if limits.id == row.context["id"]:
                    del self.policies[scope]
        elif row.action.startswith("authorization."):
            self.transition(row, row.action.removeprefix("authorization."))

    def transition(self, row: Any, status: str) -> None:
        where = f"event {row.sequence} ({row.action} of {row.authorization_id})"
        auth = self.replayed.get(row.authorization_id)
        if auth is None:
            auth = Replayed(row.authorization_id, row.agent_id, row.amount, row.created_at)
            self.replayed[auth.id] = auth
        if status not in NEXT.get(auth.status, set()):
            self.problem(f"{where}: {auth.status or 'a new authorization'} cannot become {status}")
        if auth.status in ("approved", "pending") and auth.expires_at is not None:
            if status == "expired" and row.created_at <= auth.expires_at:
                self.problem(f"{where}: expired at {row.created_at}, not after its expiry {auth.expires_at}")
            if status != "expired" and row.created_at > auth.expires_at:
                self.problem(f"{where}: became {status} at {row.created_at}, after its expiry {auth.expires_at}")
        first = auth.status is None
        hold = {"approved": auth.amount, "pending": auth.amount, "executed": row.amount}.get(status, 0)
        if status == "settled":
            hold = auth.hold
        if status == "executed":
            auth.executed_amount = row.amount
            if row.amount > auth.amount:
                self.problem(f"{where}: executed {row.amount}, above the authorized {auth.amount}")
        auth.status, auth.hold = status, hold
        if status in ("approved", "pending"):
            auth.expires_at = _ms(row.context["expires_at"])
        if hold:
            self.open[auth.id] = auth
        else:
            self.open.pop(auth.id, None)
        if first:
            code = row.context.get("denial_code")
            self.report.decisions[f"{status} {code}" if code else status] += 1
            if status == "denied":
                self.justify_denial(where, auth, code, row.created_at)
            else:
                if status == "pending" and not any(
                    (limits.values["require_approval_above"] or auth.amount) < auth.amount
                    for _, limits in self.covering(auth)
                ):
                    self.problem(f"{where}: pending although no approval threshold is below {auth.amount}")
                self.check_decision(where, auth, row.created_at, by_policy=status == "approved")
        else:
            self.report.transitions[status] += 1
            if status == "approved":
                self.check_decision(where, auth, row.created_at, by_policy=False)

    def covering(self, auth: Replayed) -> list[tuple[str, Limits]]:
        return [(scope, self.policies[scope]) for scope in ("", auth.agent_id) if scope in self.policies]

    def held(self, scope: str, start: int) -> int:
        return sum(
            auth.hold for auth in self.open.values() if auth.created_at >= start and scope in ("", auth.agent_id)
        )

    def check_decision(self, where: str, auth: Replayed, now: int, *, by_policy: bool) -> None:
        """``auth`` now holds its amount: every covering limit must still be met."""
        covering = self.covering(auth)
        if not covering:
            self.problem(f"{where}: {auth.status} with no policy covering agent {auth.agent_id!r}")
        action = self.actions.get(auth.id)
        for scope, limits in covering:
            single = limits.values["max_single_amount"]
            if single is not None and auth.amount > single:
                self.problem(f"{where}: {auth.amount} is above the single limit {single} of scope {scope!r}")
            if limits.allowed_actions is not None and action not in limits.allowed_actions:
                self.problem(f"{where}: action {action!r} is not allowed in scope {scope!r}")
            threshold = limits.values["require_approval_above"]
            if by_policy and threshold is not None and auth.amount > threshold:
                self.problem(f"{where}: {auth.amount} approved without the owner, above {threshold}")
            for name, window in WINDOWS:
                limit = limits.values[name]
                if limit is None:
                    continue
                held = self.held(scope, now - window)
                if held > limit:
                    self.problem(f"{where}: scope {scope!r} holds {held} in its {name} window, above {limit}")
                key = f"{scope or 'venue'} {name}"
                share = held / limit if limit else float(held > 0)
                self.report.peaks[key] = max(self.report.peaks.get(key, 0.0), share)

    def justify_denial(self, where: str, auth: Replayed, code: Optional[str], now: int) -> None:
        """A policy's denial must be true of the policy in effect."""
        covering = self.covering(auth)
        action = self.actions.get(auth.id)

        def over(scope: str, limits: Limits, name: str, window: Optional[int]) -> bool:
            limit = limits.values[name]
            already = 0 if window is None else self.held(scope, now - window)
            return limit is not None and already + auth.amount > limit

        if code == "no_policy":
            fair = not covering
        elif code == "max_single_amount":
            fair = any(over(scope, limits, code, None) for scope, limits in covering)
        elif code == "action_not_allowed":
            fair = any(
                limits.allowed_actions is not None and action not in limits.allowed_actions for _, limits in covering
            )
        elif code in dict(WINDOWS):
            fair = any(over(scope, limits, code, dict(WINDOWS)[code]) for scope, limits in covering)
        else:
            fair = code == "currency_mismatch"
        if not fair:
            self.problem(f"{where}: denied for {code} although the policy in effect allowed {auth.amount}")

    # -- the log against the tables -------------------------------------------------------

    def compare(self, table: dict[str, Any], log: dict[str, Any]) -> None:
        for auth_id in self.replayed.keys() - table.keys():
            self.problem(f"{auth_id} has events but no row in the authorizations table")
        for auth_id, row in table.items():
            auth = self.replayed.get(auth_id)
            if auth is None:
                self.problem(f"{auth_id} ({row.status}) has no decision event in the log")
                continue
            expected = {"approved": row.amount, "pending": row.amount}.get(row.status, 0)
            if row.status in ("executed", "settled"):
                expected = row.actual_amount
            if (row.status, row.hold) != (auth.status, auth.hold) or row.hold != expected:
                self.problem(
                    f"{auth_id}: the table says {row.status} holding {row.hold}, the log {auth.status}"
                    f" holding {auth.hold}; {row.status} should hold {expected}"
                )
            if (row.amount, row.created_at, row.agent_id) != (auth.amount, auth.created_at, auth.agent_id):
                self.problem(f"{auth_id}: amount, time or agent differ between the table and its decision event")
            if row.actual_amount != auth.executed_amount:
                self.problem(f"{auth_id}: actual amount {row.actual_amount}, executed for {auth.executed_amount}")
            if row.status == "expired" and row.expired_at != row.expires_at:
                self.problem(f"{auth_id}: expired_at {row.expired_at} is not its expiry {row.expires_at}")
            business = [(row.event_id, row.action)] if row.actual_amount is not None else []
            if row.reversal_event_id is not None or (row.status == "reversed" and row.actual_amount is not None):
                business.append((row.reversal_event_id, "reversal"))
            for event_id, action in business:
                event = log.get(event_id)
                if event is None or (event.action, event.authorization_id, event.amount) != (
                    action,
                    auth_id,
                    row.actual_amount,
                ):
                    self.problem(f"{auth_id}: its {action} event {event_id} is missing or says something else")

    def check_buckets(self, table: dict[str, Any], newest: int) -> None:
        # Buckets before the sweep's pruning horizon may be gone; nothing older is compared.
        horizon = newest - MONTHLY_WINDOW - DAY
        expected: Counter[tuple[str, int, int]] = Counter()
        for row in table.values():
            if row.created_at < horizon or not row.hold:
                continue
            for scope in (ledger.VENUE_SCOPE, row.agent_id):
                for width in ledger.WIDTHS:
                    expected[(scope, width, row.created_at - row.created_at % width)] += row.hold
        stored = Counter(
            {
                (bucket.scope, bucket.width, bucket.start): bucket.amount
                for bucket in self.conn.execute(
                    select(spend_buckets).where(
                        spend_buckets.c.venue_id == self.venue_id, spend_buckets.c.start >= horizon
                    )
                )
                if bucket.amount
            }
        )
        for key in expected.keys() | stored.keys():
            if expected[key] != stored[key]:
                scope, width, start = key
                self.problem(
                    f"bucket {scope or 'venue'!r} width {width} at {start} holds {stored[key]},"
                    f" the table {expected[key]}"
                )
        scopes = {ledger.VENUE_SCOPE, *(row.agent_id for row in table.values())}
        for start in self.probe_starts(table.values(), horizon):
            for scope in scopes:
                want = sum(
                    row.hold
                    for row in table.values()
                    if row.created_at >= start and scope in (ledger.VENUE_SCOPE, row.agent_id)
                )
                got = ledger.held_since(self.conn, self.venue_id, scope, start)
                if got != want:
                    self.problem(f"the ledger says scope {scope!r} holds {got} since {start}, the table {want}")

    @staticmethod
    def probe_starts(rows: Iterable[Any], horizon: int) -> list[int]:
        """Window starts on and just after authorizations' times: every edge a bucket can have."""
        times = sorted({row.created_at for row in rows if row.created_at >= horizon})
        if not times:
            return []
        step = max(1, len(times) // WINDOW_PROBES)
        chosen = times[::step][:WINDOW_PROBES]
        return sorted({horizon, *chosen, *(moment + 1 for moment in chosen)})
