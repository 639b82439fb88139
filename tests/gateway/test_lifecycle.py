"""The authorization lifecycle through the real gateway, on both stores.

Pins down DESIGN §5: every legal transition and every illegal one (409
``invalid_transition`` naming the current status, nothing changed); exact expiry (an
approved authorization expires at ``expires_at + 1 ms``, never at ``expires_at``; a
pending one after the approval window), applied lazily on every read and by the sweep;
``actual_amount`` above the authorized amount refused; an owner's approval re-running
checks 1-4 on the policy as it is now; the audit events each transition appends and who
caused them; the roles (agents never approve, never touch another agent's
authorization); and money in venues whose currency has no or three decimal places.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Optional

import pytest
from sqlalchemy import func, select

from agenitry import AUTHORIZATION_STATUSES, TRANSITIONS
from agenitry.gateway import Gateway, GatewayError, ManualClock, Principal
from agenitry.gateway._clock import DAY, HOUR, SECOND, iso
from agenitry.gateway.store.schema import authorizations
from support.venues import Venue, make_venue

AGENT = "voice-agent"
EXECUTE_WINDOW = 300 * SECOND
APPROVAL_WINDOW = DAY

# The policy every lifecycle test starts from: 50 is approved, 200 waits, 2000 is denied.
LIMITS = {"max_single_amount": 1_000, "max_daily_spend": 5_000, "require_approval_above": 100}

OPERATIONS = ("execute", "settle", "reverse", "approve", "deny")
# The lifecycle's own table says what each (status, operation) leads to.
LEGAL = {
    (state, operation): TRANSITIONS[operation].targets[0]
    for operation in OPERATIONS
    for state in TRANSITIONS[operation].sources
}
STATES = AUTHORIZATION_STATUSES


def authorize(venue: Venue, amount: Any, *, by: Optional[Principal] = None, **fields: Any) -> dict[str, Any]:
    body = {"agent_id": AGENT, "action": "purchase_order", "amount": amount, **fields}
    return venue.gateway.authorize(by or venue.admin, body).body


def record(venue: Venue, authorization_id: str) -> dict[str, Any]:
    return venue.gateway.get_authorization(venue.admin, authorization_id)


def operate(venue: Venue, operation: str, authorization_id: str, by: Optional[Principal] = None) -> dict[str, Any]:
    call: Callable[..., Any] = getattr(venue.gateway, operation)
    return dict(call(by or venue.admin, authorization_id).body)


def refusal(call: Callable[[], Any]) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        call()
    return refused.value


def events(venue: Venue, authorization_id: Optional[str] = None) -> list[dict[str, Any]]:
    """The venue's events, oldest first (those of one authorization when given)."""
    listed = venue.gateway.list_events(venue.admin, venue.id, limit=200)["events"]
    chosen = [e for e in listed if authorization_id is None or e["authorization_id"] == authorization_id]
    return sorted(chosen, key=lambda e: e["sequence"])


def raw(venue: Venue, authorization_id: str) -> Any:
    """The stored row as it is, without the expiry a read through the gateway applies."""
    with venue.gateway.db.read() as conn:
        return conn.execute(select(authorizations).where(authorizations.c.id == authorization_id)).one()


def in_state(venue: Venue, clock: ManualClock, state: str) -> str:
    """An authorization of ``venue`` brought into ``state``; returns its id."""
    venue.policy(agent_id=AGENT, **LIMITS)
    amount = {"pending": 200, "denied": 2_000}.get(state, 50)
    authorization_id = str(authorize(venue, amount)["authorization_id"])
    if state in ("executed", "settled"):
        operate(venue, "execute", authorization_id)
    if state == "settled":
        operate(venue, "settle", authorization_id)
    if state == "reversed":
        operate(venue, "reverse", authorization_id)
    if state == "expired":
        clock.advance(EXECUTE_WINDOW + 1)
    assert record(venue, authorization_id)["status"] == state
    return authorization_id


@pytest.mark.parametrize(("state", "operation"), sorted(LEGAL))
def test_every_legal_transition(venue: Venue, clock: ManualClock, state: str, operation: str) -> None:
    authorization_id = in_state(venue, clock, state)
    before = len(events(venue))

    answer = operate(venue, operation, authorization_id)

    status = LEGAL[(state, operation)]
    assert answer["status"] == status
    assert record(venue, authorization_id)["status"] == status
    appended = events(venue)[before:]
    assert [(e["action"], e["actor"]) for e in appended if e["action"].startswith("authorization.")] == [
        (f"authorization.{status}", venue.admin.key_id)
    ]


ILLEGAL = [(state, operation) for state in STATES for operation in OPERATIONS if (state, operation) not in LEGAL]


@pytest.mark.parametrize(("state", "operation"), ILLEGAL)
def test_every_illegal_transition_is_refused_and_changes_nothing(
    venue: Venue, clock: ManualClock, state: str, operation: str
) -> None:
    authorization_id = in_state(venue, clock, state)
    before, logged = record(venue, authorization_id), events(venue)

    refused = refusal(lambda: operate(venue, operation, authorization_id))

    assert (refused.status, refused.code) == (409, "invalid_transition")
    assert refused.body()["current_status"] == state
    assert state in refused.message
    assert record(venue, authorization_id) == before
    assert events(venue) == logged


def test_a_refused_transition_on_an_unknown_id_is_404(venue: Venue) -> None:
    refused = refusal(lambda: operate(venue, "execute", "auth_doesnotexist"))
    assert (refused.status, refused.code) == (404, "authorization_not_found")


def test_a_decision_opens_the_window_it_names(venue: Venue, clock: ManualClock) -> None:
    venue.policy(agent_id=AGENT, **LIMITS)
    now = clock()

    approved, pending, denied = authorize(venue, 50), authorize(venue, 200), authorize(venue, 2_000)

    assert approved["expires_at"] == iso(now + EXECUTE_WINDOW)
    assert pending["expires_at"] == iso(now + APPROVAL_WINDOW)
    assert "expires_at" not in denied
    assert [d["approved"] for d in (approved, pending, denied)] == [True, False, False]


@pytest.mark.parametrize("state", ["approved", "pending"])
def test_expiry_is_exact_and_never_early(venue: Venue, clock: ManualClock, state: str) -> None:
    authorization_id = in_state(venue, clock, state)
    expires_at = raw(venue, authorization_id).expires_at
    assert expires_at == clock() + (EXECUTE_WINDOW if state == "approved" else APPROVAL_WINDOW)

    clock.set(expires_at)
    assert record(venue, authorization_id)["status"] == state
    clock.set(expires_at + 1)
    expired = record(venue, authorization_id)

    assert (expired["status"], expired["held_amount"]) == ("expired", 0)
    assert expired["expired_at"] == iso(expires_at)


def test_an_approved_authorization_can_be_executed_at_its_last_millisecond(venue: Venue, clock: ManualClock) -> None:
    authorization_id = in_state(venue, clock, "approved")
    clock.set(raw(venue, authorization_id).expires_at)

    assert operate(venue, "execute", authorization_id)["status"] == "executed"


def test_a_pending_authorization_can_be_approved_at_its_last_millisecond(venue: Venue, clock: ManualClock) -> None:
    authorization_id = in_state(venue, clock, "pending")
    clock.set(raw(venue, authorization_id).expires_at)

    approved = operate(venue, "approve", authorization_id)

    assert approved["status"] == "approved"
    assert approved["expires_at"] == iso(clock() + EXECUTE_WINDOW)


@pytest.mark.parametrize(
    ("state", "operation"),
    [("approved", "execute"), ("approved", "reverse"), ("pending", "approve"), ("pending", "deny")],
)
def test_a_transition_after_expiry_is_refused(venue: Venue, clock: ManualClock, state: str, operation: str) -> None:
    authorization_id = in_state(venue, clock, state)
    clock.set(raw(venue, authorization_id).expires_at + 1)

    refused = refusal(lambda: operate(venue, operation, authorization_id))

    assert (refused.status, refused.code, refused.body()["current_status"]) == (409, "invalid_transition", "expired")
    assert record(venue, authorization_id)["status"] == "expired"


def test_approval_opens_a_fresh_execute_window(venue: Venue, clock: ManualClock) -> None:
    authorization_id = in_state(venue, clock, "pending")
    clock.advance(3 * HOUR)
    approved_at = clock()
    operate(venue, "approve", authorization_id)

    clock.set(approved_at + EXECUTE_WINDOW)
    assert record(venue, authorization_id)["status"] == "approved"
    clock.set(approved_at + EXECUTE_WINDOW + 1)
    assert record(venue, authorization_id)["status"] == "expired"


def test_lazy_expiry_is_visible_on_every_read(venue: Venue, clock: ManualClock) -> None:
    authorization_id = in_state(venue, clock, "approved")
    clock.advance(EXECUTE_WINDOW + 1)
    gateway = venue.gateway

    approved = gateway.list_authorizations(venue.admin, status="approved")
    expired = gateway.list_authorizations(venue.admin, status="expired")

    assert approved["total"] == 0 and approved["authorizations"] == []
    assert expired["total"] == 1
    assert [a["id"] for a in expired["authorizations"]] == [authorization_id]
    assert expired["authorizations"][0]["held_amount"] == 0
    assert raw(venue, authorization_id).status == "expired"


def test_the_sweep_expires_what_is_due_and_nothing_early(venue: Venue, clock: ManualClock) -> None:
    venue.policy(agent_id=AGENT, **LIMITS)
    # An instant unlike any other test's, so that what the sweep finds due is knowable.
    clock.set(clock() + 3 * DAY + 7_654_321)
    approved, pending = authorize(venue, 50)["authorization_id"], authorize(venue, 200)["authorization_id"]
    expires_at = raw(venue, approved).expires_at
    gateway = venue.gateway

    clock.set(expires_at)
    gateway.sweep()
    assert raw(venue, approved).status == "approved"

    clock.set(expires_at + 1)
    with gateway.db.read() as conn:
        due = conn.execute(
            select(func.count())
            .select_from(authorizations)
            .where(authorizations.c.status.in_(["approved", "pending"]), authorizations.c.expires_at < clock())
        ).scalar_one()
    assert gateway.sweep() == due >= 1

    swept = raw(venue, approved)
    assert (swept.status, swept.hold, swept.expired_at) == ("expired", 0, expires_at)
    assert raw(venue, pending).status == "pending"
    assert gateway.sweep() == 0
    [expiry] = [e for e in events(venue, approved) if e["action"] == "authorization.expired"]
    assert expiry["actor"] == "system"


@pytest.mark.parametrize("actual", [Decimal("50.01"), 51, 10**6])
def test_an_actual_amount_above_the_authorized_one_is_refused(venue: Venue, clock: ManualClock, actual: Any) -> None:
    authorization_id = in_state(venue, clock, "approved")
    before, logged = record(venue, authorization_id), events(venue)

    refused = refusal(lambda: venue.gateway.execute(venue.admin, authorization_id, actual_amount=actual))

    assert (refused.status, refused.code) == (409, "amount_exceeds_authorization")
    assert refused.body()["current_status"] == "approved"
    assert record(venue, authorization_id) == before
    assert events(venue) == logged


@pytest.mark.parametrize(("actual", "spent"), [(None, 50.0), (50, 50.0), (Decimal("49.99"), 49.99), (0, 0.0)])
def test_execute_records_the_actual_amount(venue: Venue, clock: ManualClock, actual: Any, spent: float) -> None:
    authorization_id = in_state(venue, clock, "approved")

    answer = venue.gateway.execute(venue.admin, authorization_id, actual_amount=actual).body

    executed = record(venue, authorization_id)
    assert (executed["actual_amount"], executed["held_amount"], executed["amount"]) == (spent, spent, 50.0)
    [business] = [e for e in events(venue, authorization_id) if e["id"] == answer["event_id"]]
    assert (business["action"], business["amount"]) == ("purchase_order", spent)


# (how the policy changes while the request waits, the denial code approval then meets)
TIGHTENED = [
    pytest.param({**LIMITS, "max_single_amount": 199}, "max_single_amount", id="single"),
    pytest.param({**LIMITS, "allowed_actions": ["comp_issued"]}, "action_not_allowed", id="action"),
    pytest.param({**LIMITS, "max_daily_spend": 199.99}, "max_daily_spend", id="daily"),
    pytest.param({**LIMITS, "max_monthly_spend": 150}, "max_monthly_spend", id="monthly"),
    pytest.param(None, "no_policy", id="deleted"),
]


@pytest.mark.parametrize(("tightened", "code"), TIGHTENED)
def test_approval_re_runs_checks_1_to_4_on_the_current_policy(
    venue: Venue, clock: ManualClock, tightened: Optional[dict[str, Any]], code: str
) -> None:
    authorization_id = in_state(venue, clock, "pending")
    gateway = venue.gateway
    if tightened is None:
        [policy] = gateway.list_policies(venue.admin)["policies"]
        gateway.delete_policy(venue.admin, policy["id"])
    else:
        venue.policy(agent_id=AGENT, **tightened)
    before, logged = record(venue, authorization_id), events(venue)

    refused = refusal(lambda: operate(venue, "approve", authorization_id))

    assert (refused.status, refused.code, refused.body()["current_status"]) == (409, code, "pending")
    assert "stays pending" in refused.message
    assert record(venue, authorization_id) == before
    assert events(venue) == logged

    # Fields not sent keep their value: the tightened ones are removed by name.
    venue.policy(agent_id=AGENT, **LIMITS, allowed_actions=None, max_monthly_spend=None)
    assert operate(venue, "approve", authorization_id)["status"] == "approved"


def test_approval_counts_every_other_hold_but_not_its_own(venue: Venue) -> None:
    venue.policy(max_daily_spend=100, require_approval_above=50)
    waiting = authorize(venue, 60)["authorization_id"]
    assert authorize(venue, 40)["status"] == "approved"
    venue.policy(max_daily_spend=99.99, require_approval_above=50)

    refused = refusal(lambda: operate(venue, "approve", waiting))
    assert refused.code == "max_daily_spend"

    venue.policy(max_daily_spend=100, require_approval_above=50)
    approved = operate(venue, "approve", waiting)
    assert (approved["status"], approved["held_amount"]) == ("approved", 60.0)


def test_approval_does_not_re_run_the_approval_threshold(venue: Venue) -> None:
    venue.policy(require_approval_above=10)
    waiting = authorize(venue, 500)["authorization_id"]

    approved = operate(venue, "approve", waiting)

    assert (approved["status"], approved["approved"]) == ("approved", True)


@pytest.mark.parametrize(("reason", "expected"), [("over budget", "over budget"), (None, "Denied by the owner")])
def test_an_owner_denial(venue: Venue, clock: ManualClock, reason: Optional[str], expected: str) -> None:
    authorization_id = in_state(venue, clock, "pending")
    clock.advance(1_234)

    denied = venue.gateway.deny(venue.admin, authorization_id, reason=reason).body

    assert (denied["status"], denied["denial_code"], denied["denial_reason"]) == ("denied", "denied_by_owner", expected)
    assert (denied["decided_by"], denied["denied_at"], denied["held_amount"]) == (venue.admin.key_id, iso(clock()), 0)
    assert denied["approved"] is False


def test_approve_records_the_owner_and_the_note(venue: Venue, clock: ManualClock) -> None:
    authorization_id = in_state(venue, clock, "pending")

    approved = venue.gateway.approve(venue.admin, authorization_id, note="ok for the gala").body

    assert (approved["decided_by"], approved["note"], approved["approved_at"]) == (
        venue.admin.key_id,
        "ok for the gala",
        iso(clock()),
    )


def test_each_transition_appends_its_event_with_its_actor(venue: Venue, clock: ManualClock) -> None:
    venue.policy(agent_id=AGENT, **LIMITS)
    agent = venue.agent(AGENT)
    authorization_id = authorize(venue, 200, by=agent, context={"table": 12})["authorization_id"]
    venue.gateway.approve(venue.admin, authorization_id)
    executed = venue.gateway.execute(agent, authorization_id, actual_amount=Decimal("180.25"), context={"po": "7"})
    venue.gateway.settle(agent, authorization_id)

    logged = events(venue, authorization_id)

    assert [(e["action"], e["actor"]) for e in logged] == [
        ("authorization.pending", agent.key_id),
        ("authorization.approved", venue.admin.key_id),
        ("authorization.executed", agent.key_id),
        ("purchase_order", agent.key_id),
        ("authorization.settled", agent.key_id),
    ]
    assert all(e["authorization_id"] == authorization_id and e["agent_id"] == AGENT for e in logged)
    business = logged[3]
    assert business["id"] == executed.body["event_id"]
    assert (business["amount"], business["currency"], business["direction"]) == (180.25, "USD", "outbound")
    assert business["context"] == {"table": 12, "po": "7"}
    assert [e["amount"] for e in logged] == [200.0, 200.0, 180.25, 180.25, 180.25]


def test_a_denial_and_an_expiry_append_their_events(venue: Venue, clock: ManualClock) -> None:
    venue.policy(agent_id=AGENT, **LIMITS)
    agent = venue.agent(AGENT)
    denied = authorize(venue, 2_000, by=agent)
    approved = authorize(venue, 50, by=agent)
    clock.advance(EXECUTE_WINDOW + 1)

    [denial] = events(venue, denied["authorization_id"])
    assert (denial["action"], denial["actor"]) == ("authorization.denied", agent.key_id)
    assert denial["context"]["denial_code"] == "max_single_amount"
    assert denial["reason"] == denied["denial_reason"]
    assert [(e["action"], e["actor"]) for e in events(venue, approved["authorization_id"])] == [
        ("authorization.approved", agent.key_id),
        ("authorization.expired", "system"),
    ]


@pytest.mark.parametrize(
    ("action", "direction", "opposite"),
    [
        ("purchase_order", "outbound", "inbound"),
        ("comp_issued", "outbound", "inbound"),
        ("order_captured", "inbound", "outbound"),
        ("price_changed", "internal", "internal"),
    ],
)
def test_reversing_an_executed_authorization_appends_a_reversal(
    venue: Venue, action: str, direction: str, opposite: str
) -> None:
    venue.policy(max_single_amount=100)
    agent = venue.agent(AGENT)
    authorization_id = authorize(venue, 80, by=agent, action=action)["authorization_id"]
    executed = venue.gateway.execute(agent, authorization_id, actual_amount=75).body

    reversed_ = venue.gateway.reverse(venue.admin, authorization_id).body

    logged = events(venue, authorization_id)
    assert [e["action"] for e in logged] == [
        "authorization.approved",
        "authorization.executed",
        action,
        "authorization.reversed",
        "reversal",
    ]
    business, reversal = logged[2], logged[4]
    assert business["direction"] == direction
    assert reversed_ == {"authorization_id": authorization_id, "status": "reversed", "event_id": reversal["id"]}
    assert (reversal["direction"], reversal["amount"], reversal["actor"]) == (opposite, 75.0, venue.admin.key_id)
    assert reversal["context"]["reverses_event_id"] == executed["event_id"]
    assert record(venue, authorization_id)["reversal_event_id"] == reversal["id"]


def test_reversing_an_approved_authorization_appends_no_reversal(venue: Venue, clock: ManualClock) -> None:
    authorization_id = in_state(venue, clock, "approved")

    answer = operate(venue, "reverse", authorization_id)

    assert answer == {"authorization_id": authorization_id, "status": "reversed", "event_id": None}
    assert [e["action"] for e in events(venue, authorization_id)] == [
        "authorization.approved",
        "authorization.reversed",
    ]


@pytest.mark.parametrize("operation", ["approve", "deny"])
def test_an_agent_key_cannot_decide_a_pending_authorization(venue: Venue, clock: ManualClock, operation: str) -> None:
    authorization_id = in_state(venue, clock, "pending")
    agent = venue.agent(AGENT)
    before, logged = record(venue, authorization_id), events(venue)

    refused = refusal(lambda: operate(venue, operation, authorization_id, by=agent))

    assert (refused.status, refused.code) == (403, "admin_required")
    assert record(venue, authorization_id) == before
    assert events(venue) == logged


@pytest.mark.parametrize(
    ("state", "operation"),
    [("approved", "execute"), ("approved", "reverse"), ("executed", "settle"), ("executed", "reverse")],
)
def test_an_agent_key_cannot_touch_another_agent_s_authorization(
    venue: Venue, clock: ManualClock, state: str, operation: str
) -> None:
    authorization_id = in_state(venue, clock, state)
    intruder = venue.agent("other-agent")
    before, logged = record(venue, authorization_id), events(venue)

    refused = refusal(lambda: operate(venue, operation, authorization_id, by=intruder))

    assert (refused.status, refused.code) == (403, "agent_mismatch")
    assert record(venue, authorization_id) == before
    assert events(venue) == logged
    if TRANSITIONS[operation].allows(state, "agent"):
        assert operate(venue, operation, authorization_id, by=venue.agent(AGENT))["status"] == LEGAL[(state, operation)]


def test_an_agent_key_cannot_authorize_for_another_agent(venue: Venue) -> None:
    venue.policy(max_single_amount=100)

    refused = refusal(lambda: authorize(venue, 1, by=venue.agent("other-agent")))

    assert (refused.status, refused.code) == (403, "agent_mismatch")
    assert venue.gateway.list_authorizations(venue.admin)["total"] == 0


def test_another_venue_s_authorization_does_not_exist(gateway: Gateway, venue: Venue, clock: ManualClock) -> None:
    authorization_id = in_state(venue, clock, "approved")
    stranger = make_venue(gateway)

    for operation in OPERATIONS:
        refused = refusal(lambda operation=operation: operate(stranger, operation, authorization_id))
        assert (refused.status, refused.code) == (404, "authorization_not_found")
    assert refusal(lambda: record(stranger, authorization_id)).status == 404
    assert record(venue, authorization_id)["status"] == "approved"


@pytest.mark.parametrize("currency", ["EUR", "JPY"])
def test_a_request_in_another_currency_is_denied(venue: Venue, currency: str) -> None:
    venue.policy(max_single_amount=100)

    decision = authorize(venue, 10, currency=currency)

    assert (decision["status"], decision["denial_code"]) == ("denied", "currency_mismatch")
    assert decision["denial_reason"] == f"This venue spends in USD; the request was in {currency}"
    assert record(venue, decision["authorization_id"])["held_amount"] == 0


def test_an_unknown_currency_is_a_validation_error(venue: Venue) -> None:
    venue.policy(max_single_amount=100)

    refused = refusal(lambda: authorize(venue, 10, currency="XYZ"))

    assert (refused.status, refused.code) == (422, "invalid_currency")
    assert venue.gateway.list_authorizations(venue.admin)["total"] == 0


def test_amounts_in_a_currency_without_decimals(gateway: Gateway) -> None:
    venue = make_venue(gateway, currency="JPY")
    venue.policy(agent_id=AGENT, max_single_amount=1_000, max_daily_spend=1_500)

    assert authorize(venue, 1_000)["status"] == "approved"
    over = authorize(venue, 1_001)
    assert over["denial_code"] == "max_single_amount"
    assert over["denial_reason"] == (
        "Amount JPY 1,001 exceeds the single-transaction limit of JPY 1,000 for agent 'voice-agent'"
    )
    assert authorize(venue, 501)["denial_code"] == "max_daily_spend"
    refused = refusal(lambda: authorize(venue, Decimal("0.5")))
    assert (refused.status, refused.code) == (422, "invalid_amount")
    assert "JPY amounts have no decimal places" in refused.message
    assert refusal(lambda: venue.policy(max_single_amount=10.5)).code == "invalid_amount"

    authorization_id = authorize(venue, 500)["authorization_id"]
    venue.gateway.execute(venue.admin, authorization_id, actual_amount=499)
    executed = record(venue, authorization_id)
    assert (executed["currency"], executed["amount"], executed["actual_amount"]) == ("JPY", 500.0, 499.0)


def test_amounts_in_a_currency_with_three_decimals(gateway: Gateway) -> None:
    venue = make_venue(gateway, currency="KWD")
    venue.policy(agent_id=AGENT, max_single_amount=Decimal("1.5"), max_daily_spend=Decimal("2.25"))

    assert authorize(venue, Decimal("1.500"))["status"] == "approved"
    over = authorize(venue, Decimal("1.501"))
    assert over["denial_code"] == "max_single_amount"
    assert over["denial_reason"] == (
        "Amount KWD 1.501 exceeds the single-transaction limit of KWD 1.500 for agent 'voice-agent'"
    )
    assert authorize(venue, Decimal("0.751"))["denial_code"] == "max_daily_spend"
    refused = refusal(lambda: authorize(venue, Decimal("0.0005")))
    assert (refused.status, refused.code) == (422, "invalid_amount")

    authorization_id = authorize(venue, Decimal("0.750"))["authorization_id"]
    assert (
        refusal(lambda: venue.gateway.execute(venue.admin, authorization_id, actual_amount=Decimal("0.751"))).code
        == "amount_exceeds_authorization"
    )
    venue.gateway.execute(venue.admin, authorization_id, actual_amount=Decimal("0.749"))
    assert record(venue, authorization_id)["actual_amount"] == 0.749
    assert authorize(venue, Decimal("0.001"))["status"] == "approved"
    assert authorize(venue, Decimal("0.001"))["denial_code"] == "max_daily_spend"
