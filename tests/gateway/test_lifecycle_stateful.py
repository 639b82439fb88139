"""The lifecycle against a model: a hypothesis state machine driving the real gateway.

Random sequences of authorize, claim (with and without a lease), execute (within or above
the amount, with or without the claim's token), settle, reverse (by the agent or the
owner), approve, deny and clock moves (to and past execute windows, approval windows and the
24-hour and 30-day edges) run on SQLite and on PostgreSQL. A plain Python model of the
statuses, claims and holds, whose legal steps and roles come from the lifecycle's own
table (:data:`agenitry.TRANSITIONS`), predicts every answer. After every step:

- every transition the model calls illegal was refused (409, or 403 for a role the table
  does not allow, such as an agent reversing what it executed) and changed nothing;
- every accepted transition (expiry included) is exactly one ``authorization.<status>``
  event with its actor, and execute and reversal left their business events;
- for every scope and window the amount held, summed over the authorizations table,
  equals the model, equals what ``ledger.held_since`` reports, and is within the limit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from agenitry import AUTHORIZATION_STATUSES, TRANSITIONS
from agenitry.gateway import Gateway, GatewayError, ManualClock, Principal
from agenitry.gateway._clock import DAY, MINUTE, SECOND
from agenitry.gateway.service import ledger
from agenitry.gateway.store.schema import authorizations, events
from support.venues import make_venue

MONTH = 30 * DAY
EXECUTE_WINDOW = 300 * SECOND
APPROVAL_WINDOW = DAY
WINDOWS = {"max_daily_spend": DAY, "max_monthly_spend": MONTH}
AGENTS = ("a", "b")
# Agent "a" may only place purchase orders: one request in four meets check 2.
ACTIONS = ("purchase_order", "purchase_order", "purchase_order", "comp_issued")


@dataclass(frozen=True)
class Limits:
    """A policy in minor units; ``scope`` is "" for the venue, else the agent id."""

    scope: str
    max_single_amount: Optional[int] = None
    max_daily_spend: Optional[int] = None
    max_monthly_spend: Optional[int] = None
    require_approval_above: Optional[int] = None
    allowed_actions: Optional[tuple[str, ...]] = None

    def wire(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"agent_id": self.scope or None}
        for name in ("max_single_amount", "max_daily_spend", "max_monthly_spend", "require_approval_above"):
            value = getattr(self, name)
            fields[name] = None if value is None else value / 100
        fields["allowed_actions"] = None if self.allowed_actions is None else list(self.allowed_actions)
        return fields


VENUE_POLICY = Limits(
    "", max_single_amount=100_00, max_daily_spend=150_00, max_monthly_spend=250_00, require_approval_above=60_00
)
# Agent "a" has a stricter policy of its own; agent "b" only the venue's.
AGENT_POLICIES = {"a": Limits("a", max_single_amount=80_00, max_daily_spend=90_00, allowed_actions=("purchase_order",))}
LIMITS_BY_SCOPE = {"": [VENUE_POLICY], "a": [AGENT_POLICIES["a"]], "b": []}

AMOUNTS = st.one_of(
    st.sampled_from([0, 1, 30_00, 59_99, 60_00, 60_01, 79_99, 80_00, 80_01, 90_00, 100_00, 100_01, 150_00]),
    st.integers(0, 120_00),
)
PICKS = st.integers(0, 1_000)
OPERATIONS = ("execute", "settle", "reverse", "approve", "deny", "claim")
# The model of the lifecycle: which operations each status allows (expiry aside), from the table.
LEGAL = {
    status: steps
    for status in AUTHORIZATION_STATUSES
    if (steps := tuple(operation for operation in OPERATIONS if status in TRANSITIONS[operation].sources))
}
LEASES = st.sampled_from([None, 1, 60, 600])
# Three tries in four take a legal step from an open authorization, so that histories
# get deep; the rest try any operation on any authorization, to meet the illegal ones.
MOSTLY_LEGAL = st.integers(0, 3).map(lambda n: n > 0)
# Mostly small steps; sometimes onto (or one past) an expiry or a window's edge.
CLOCK_MOVES = ("tick", "tick", "tick", "expiry_edge", "past_execute", "past_approval", "day_edge", "month_edge")


@dataclass
class Auth:
    """What the model knows of one authorization."""

    id: str
    agent: str
    action: str
    amount: int
    created_at: int
    status: str
    expires_at: Optional[int]
    actual: Optional[int] = None
    claim_token: Optional[str] = None
    claimed_until: Optional[int] = None
    # (status, actor) of every authorization.<status> event, in order.
    transitions: list[tuple[str, str]] = field(default_factory=list)
    # (action, amount) of the business events it caused.
    business: list[tuple[str, Optional[int]]] = field(default_factory=list)

    @property
    def hold(self) -> int:
        if self.status in ("approved", "pending"):
            return self.amount
        if self.status in ("executed", "settled"):
            return self.actual or 0
        return 0

    def move(self, status: str, actor: str) -> None:
        self.status = status
        self.transitions.append((status, actor))

    def claimed(self, now: int) -> bool:
        return self.status == "approved" and self.claimed_until is not None and now <= self.claimed_until


def minor(amount: float) -> int:
    return round(amount * 100)


def machine_for(gateway: Gateway, clock: ManualClock) -> type[RuleBasedStateMachine]:
    """The state machine bound to one store's gateway; each run gets a fresh venue."""

    class LifecycleMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.venue = make_venue(gateway)
            self.venue.policy(**VENUE_POLICY.wire())
            for limits in AGENT_POLICIES.values():
                self.venue.policy(**limits.wire())
            self.keys: dict[str, Principal] = {agent: self.venue.agent(agent) for agent in AGENTS}
            self.model: dict[str, Auth] = {}
            # The answer of the last accepted operation.
            self.answer: dict[str, Any] = {}

        # -- the model ------------------------------------------------------------------

        def expire(self) -> None:
            now = clock()
            for auth in self.model.values():
                if auth.status in ("approved", "pending") and auth.expires_at is not None and auth.expires_at < now:
                    event(f"expired from {auth.status}")
                    auth.move("expired", "system")

        def held(self, scope: str, window: int, exclude: Optional[Auth] = None) -> int:
            now = clock()
            return sum(
                auth.hold
                for auth in self.model.values()
                if auth is not exclude
                and now - window <= auth.created_at <= now
                and (scope == "" or auth.agent == scope)
            )

        def predict(
            self, agent: str, action: str, amount: int, *, approval_check: bool = True, exclude: Optional[Auth] = None
        ) -> tuple[str, Optional[str]]:
            covering = [VENUE_POLICY, *([AGENT_POLICIES[agent]] if agent in AGENT_POLICIES else [])]
            for policy in covering:
                if policy.max_single_amount is not None and amount > policy.max_single_amount:
                    return "denied", "max_single_amount"
            for policy in covering:
                if policy.allowed_actions is not None and action not in policy.allowed_actions:
                    return "denied", "action_not_allowed"
            for name, window in WINDOWS.items():
                for policy in covering:
                    limit = getattr(policy, name)
                    if limit is not None and self.held(policy.scope, window, exclude) + amount > limit:
                        return "denied", name
            if approval_check:
                for policy in covering:
                    if policy.require_approval_above is not None and amount > policy.require_approval_above:
                        return "pending", None
            return "approved", None

        # -- driving the gateway ----------------------------------------------------------

        def attempt(self, auth: Auth, operation: str, by: Principal, **kwargs: Any) -> Optional[GatewayError]:
            """Run ``operation``; on a refusal, check that the stored record did not change."""
            before = gateway.get_authorization(self.venue.admin, auth.id)
            try:
                answer = getattr(gateway, operation)(by, auth.id, **kwargs).body
            except GatewayError as refused:
                assert gateway.get_authorization(self.venue.admin, auth.id) == before
                return refused
            assert answer["status"] != before["status"] or operation == "claim"
            event(f"{operation}: {before['status']} -> {answer['status']}")
            self.answer = answer
            return None

        def assert_invalid(self, refused: Optional[GatewayError], auth: Auth, code: str = "invalid_transition") -> None:
            event(f"refused from {auth.status}: {code}")
            assert refused is not None, f"accepted from {auth.status}"
            assert (refused.status, refused.code) == (403 if code == "admin_required" else 409, code)
            if refused.status == 409:
                assert refused.body()["current_status"] == auth.status

        def refusal_of(self, auth: Auth, operation: str, by: Principal, token: Optional[str]) -> Optional[str]:
            """The code the table and the claim predict for ``operation``, or None if it is allowed."""
            if operation not in LEGAL.get(auth.status, ()):
                return "invalid_transition"
            if not TRANSITIONS[operation].allows(auth.status, by.role):
                return "admin_required"
            owner_release = operation == "reverse" and by.role == "admin" and token is None
            if auth.claimed(clock()) and token != auth.claim_token and not owner_release:
                return "claimed_by_another"
            return None

        def has_authorizations(self) -> bool:
            return bool(self.model)

        @initialize(offset=st.integers(0, DAY - 1))
        def start_anywhere_in_a_day(self, offset: int) -> None:
            # Where the clock stands inside its minute, hour and day decides which buckets edges fall in.
            clock.advance(offset)

        @rule(agent=st.sampled_from(AGENTS), action=st.sampled_from(ACTIONS), amount=AMOUNTS)
        def authorize(self, agent: str, action: str, amount: int) -> None:
            self.expire()
            expected = self.predict(agent, action, amount)
            body = {"agent_id": agent, "action": action, "amount": amount / 100}
            decision = gateway.authorize(self.keys[agent], body).body

            assert (decision["status"], decision.get("denial_code")) == expected
            event(f"authorize: {expected[1] or expected[0]}")
            now = clock()
            windows = {"approved": EXECUTE_WINDOW, "pending": APPROVAL_WINDOW}
            auth = Auth(
                id=decision["authorization_id"],
                agent=agent,
                action=action,
                amount=amount,
                created_at=now,
                status="new",
                expires_at=now + windows[expected[0]] if expected[0] in windows else None,
            )
            auth.move(expected[0], self.keys[agent].key_id)
            self.model[auth.id] = auth

        @precondition(has_authorizations)
        @rule(
            pick=PICKS,
            legal=MOSTLY_LEGAL,
            operation=st.sampled_from(OPERATIONS),
            over=st.integers(0, 3).map(lambda n: n == 0),
            share=st.integers(0, 100),
            as_owner=st.booleans(),
            with_token=st.integers(0, 3).map(lambda n: n > 0),
            lease=LEASES,
        )
        def transition(
            self,
            pick: int,
            legal: bool,
            operation: str,
            over: bool,
            share: int,
            as_owner: bool,
            with_token: bool,
            lease: Optional[int],
        ) -> None:
            self.expire()
            everyone = list(self.model.values())
            open_ = [auth for auth in everyone if auth.status in LEGAL]
            pool = open_ if legal and open_ else everyone
            auth = pool[pick % len(pool)]
            if legal and auth.status in LEGAL:
                steps = LEGAL[auth.status]
                operation = steps[OPERATIONS.index(operation) % len(steps)]
            by = self.venue.admin if as_owner else self.keys[auth.agent]
            token = auth.claim_token if with_token else None
            if operation == "execute":
                actual = auth.amount + 1 + share if over else auth.amount * share // 100
                self.execute(auth, by, actual, token)
            elif operation in ("approve", "deny"):
                self.decide(auth, operation)
            elif operation == "claim":
                self.claim(auth, by, lease)
            else:
                self.finish(auth, operation, by, token)

        def claim(self, auth: Auth, by: Principal, lease: Optional[int]) -> None:
            refused = self.attempt(auth, "claim", by, lease_seconds=lease)
            if auth.status in ("executed", "settled"):
                self.assert_invalid(refused, auth, "already_executed")
            elif auth.status != "approved":
                self.assert_invalid(refused, auth)
            elif auth.claimed(clock()):
                self.assert_invalid(refused, auth, "already_claimed")
            else:
                assert refused is None and auth.expires_at is not None
                auth.claim_token = self.answer["claim_token"]
                end = auth.expires_at if lease is None else min(clock() + lease * SECOND, auth.expires_at)
                auth.claimed_until = end
                auth.transitions.append(("claimed", by.key_id))

        def execute(self, auth: Auth, by: Principal, actual: int, token: Optional[str]) -> None:
            refused = self.attempt(auth, "execute", by, actual_amount=actual / 100, claim_token=token)
            code = self.refusal_of(auth, "execute", by, token)
            if code is not None:
                self.assert_invalid(refused, auth, code)
            elif actual > auth.amount:
                assert refused is not None and (refused.status, refused.code) == (409, "amount_exceeds_authorization")
            else:
                assert refused is None
                auth.actual = actual
                auth.move("executed", by.key_id)
                auth.business.append((auth.action, actual))

        def finish(self, auth: Auth, operation: str, by: Principal, token: Optional[str]) -> None:
            """Settle or reverse."""
            token = token if operation == "reverse" else None
            options = {"claim_token": token} if operation == "reverse" else {}
            refused = self.attempt(auth, operation, by, **options)
            code = self.refusal_of(auth, operation, by, token)
            if code is not None:
                self.assert_invalid(refused, auth, code)
                return
            assert refused is None
            if operation == "reverse" and auth.status == "executed":
                auth.business.append(("reversal", auth.actual))
            auth.move(TRANSITIONS[operation].targets[0], by.key_id)

        def decide(self, auth: Auth, operation: str) -> None:
            """The owner approves or denies."""
            refused = self.attempt(auth, operation, self.venue.admin)
            if auth.status != "pending":
                self.assert_invalid(refused, auth)
                return
            if operation == "deny":
                assert refused is None
                auth.move("denied", self.venue.admin.key_id)
                return
            status, code = self.predict(auth.agent, auth.action, auth.amount, approval_check=False, exclude=auth)
            if status == "denied":
                assert refused is not None and (refused.status, refused.code) == (409, code)
            else:
                assert refused is None
                auth.expires_at = clock() + EXECUTE_WINDOW
                auth.move("approved", self.venue.admin.key_id)

        @rule(kind=st.sampled_from(CLOCK_MOVES), pick=PICKS, step=st.integers(1, 10 * MINUTE), beyond=st.integers(0, 1))
        def advance(self, kind: str, pick: int, step: int, beyond: int) -> None:
            now = clock()
            target: Optional[int] = None
            waiting = [a.expires_at for a in self.model.values() if a.status in ("approved", "pending")]
            created = [a.created_at for a in self.model.values()]
            if kind == "past_execute":
                target = now + EXECUTE_WINDOW + 1
            elif kind == "past_approval":
                target = now + APPROVAL_WINDOW + 1
            elif kind == "expiry_edge" and waiting:
                expires_at = waiting[pick % len(waiting)]
                target = None if expires_at is None else expires_at + beyond
            elif kind in ("day_edge", "month_edge") and created:
                window = DAY if kind == "day_edge" else MONTH
                target = created[pick % len(created)] + window + beyond
            clock.set(target if target is not None and target > now else now + step)
            event(f"clock: {kind}")

        # -- what must hold after every step -------------------------------------------------

        @invariant()
        def the_store_matches_the_model(self) -> None:
            # In this order: the listing applies any expiry that is due, which the other
            # two read back from the tables as they are.
            self.statuses_and_holds()
            self.every_transition_is_one_event()
            self.windows_hold_what_the_table_says_and_stay_within_the_limits()

        def statuses_and_holds(self) -> None:
            self.expire()
            listed = gateway.list_authorizations(self.venue.admin, limit=200)
            assert listed["total"] == len(self.model)
            stored = {a["id"]: (a["status"], minor(a["held_amount"])) for a in listed["authorizations"]}
            assert stored == {auth.id: (auth.status, auth.hold) for auth in self.model.values()}

        def every_transition_is_one_event(self) -> None:
            e = events.c
            with gateway.db.read() as conn:
                rows = conn.execute(
                    select(e.authorization_id, e.action, e.actor, e.amount)
                    .where(e.venue_id == self.venue.id, e.authorization_id.is_not(None))
                    .order_by(e.sequence)
                ).all()
            transitions = Counter(
                (row.authorization_id, row.action, row.actor) for row in rows if row.action.startswith("authorization.")
            )
            assert transitions == Counter(
                (auth.id, f"authorization.{status}", actor)
                for auth in self.model.values()
                for status, actor in auth.transitions
            )
            business: dict[str, list[tuple[str, Optional[int]]]] = {}
            for row in rows:
                if not row.action.startswith("authorization."):
                    business.setdefault(row.authorization_id, []).append((row.action, row.amount))
            assert business == {auth.id: auth.business for auth in self.model.values() if auth.business}

        def windows_hold_what_the_table_says_and_stay_within_the_limits(self) -> None:
            now = clock()
            a = authorizations.c
            with gateway.db.read() as conn:
                for scope, limits in LIMITS_BY_SCOPE.items():
                    for name, window in WINDOWS.items():
                        query = select(func.coalesce(func.sum(a.hold), 0)).where(
                            a.venue_id == self.venue.id, a.created_at >= now - window, a.created_at <= now
                        )
                        if scope:
                            query = query.where(a.agent_id == scope)
                        summed = int(conn.execute(query).scalar_one())
                        assert ledger.held_since(conn, self.venue.id, scope, now - window) == summed
                        assert summed == self.held(scope, window)
                        # The venue's limit bounds every scope, an agent's limit its own.
                        for policy in (*limits, VENUE_POLICY):
                            limit = getattr(policy, name)
                            assert limit is None or summed <= limit, (scope, name)

    return LifecycleMachine


# A failure is shrunk for up to five minutes (hypothesis' own cap), each step a few real
# transactions: past the suite's timeout, which would cut off the minimal example.
@pytest.mark.timeout(900)
def test_the_lifecycle_follows_its_model(gateway: Gateway, clock: ManualClock) -> None:
    run_state_machine_as_test(
        machine_for(gateway, clock),
        settings=settings(
            max_examples=15,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
