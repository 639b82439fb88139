"""The policy engine on its own (no database): the five checks, their order and both scopes.

Pins down DESIGN §4: equal to a limit passes and one minor unit over fails; the checks run
in the published order and the first failure decides; the venue-wide policy and the
agent's policy both apply, each counted over its own scope, and within one check the venue
is asked first; no covering policy denies (fail closed); check 5 only makes a request
pending once checks 1-4 pass, and an owner's approval re-runs checks 1-4 alone. The
denial reasons are sentences a person reads, so their wording is pinned too.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest

from agenitry.gateway.service.policy import DAILY_WINDOW, MONTHLY_WINDOW, Decision, Policy, evaluate

AGENT = "voice-agent"
DAY = DAILY_WINDOW
MONTH = MONTHLY_WINDOW


def policy(agent_id: Optional[str] = None, **limits: Any) -> Policy:
    """A policy whose limits are given in minor units; anything not given is unlimited."""
    actions = limits.pop("allowed_actions", None)
    return Policy(
        id=f"pol_{agent_id or 'venue'}",
        venue_id="v-test",
        agent_id=agent_id,
        max_single_amount=limits.pop("max_single_amount", None),
        max_daily_spend=limits.pop("max_daily_spend", None),
        max_monthly_spend=limits.pop("max_monthly_spend", None),
        require_approval_above=limits.pop("require_approval_above", None),
        allowed_actions=tuple(actions) if actions is not None else None,
        created_at=0,
        updated_at=0,
    )


class Held:
    """What each scope holds in each window, and which (scope, window) pairs were asked."""

    def __init__(self, amounts: Optional[dict[tuple[str, int], int]] = None) -> None:
        self.amounts = amounts or {}
        self.asked: list[tuple[str, int]] = []

    def __call__(self, policy: Policy, window: int) -> int:
        self.asked.append((policy.scope, window))
        return self.amounts.get((policy.scope, window), 0)


def decide(
    policies: list[Policy],
    amount: int,
    *,
    action: str = "purchase_order",
    currency: str = "USD",
    held: Optional[Held] = None,
    approval_check: bool = True,
) -> Decision:
    return evaluate(
        policies,
        action=action,
        amount=amount,
        currency=currency,
        held=held or Held(),
        approval_check=approval_check,
    )


# (limits of the agent's policy, what the agent already holds, amount, status, denial_code)
BOUNDARIES = [
    pytest.param({"max_single_amount": 50_000}, {}, 50_000, "approved", None, id="single-equal"),
    pytest.param({"max_single_amount": 50_000}, {}, 50_001, "denied", "max_single_amount", id="single-over"),
    pytest.param({"max_single_amount": 0}, {}, 0, "approved", None, id="single-zero-equal"),
    pytest.param({"max_single_amount": 0}, {}, 1, "denied", "max_single_amount", id="single-zero-over"),
    pytest.param({"max_daily_spend": 100_000}, {DAY: 60_000}, 40_000, "approved", None, id="daily-equal"),
    pytest.param({"max_daily_spend": 100_000}, {DAY: 60_000}, 40_001, "denied", "max_daily_spend", id="daily-over"),
    pytest.param({"max_daily_spend": 100_000}, {DAY: 100_000}, 0, "approved", None, id="daily-full-zero"),
    pytest.param({"max_daily_spend": 100_000}, {DAY: 100_000}, 1, "denied", "max_daily_spend", id="daily-full"),
    pytest.param(
        {"max_daily_spend": 100_000}, {MONTH: 10**9}, 100_000, "approved", None, id="daily-ignores-month-held"
    ),
    pytest.param({"max_monthly_spend": 300_000}, {MONTH: 250_000}, 50_000, "approved", None, id="monthly-equal"),
    pytest.param(
        {"max_monthly_spend": 300_000}, {MONTH: 250_000}, 50_001, "denied", "max_monthly_spend", id="monthly-over"
    ),
    pytest.param(
        {"max_monthly_spend": 300_000}, {DAY: 10**9}, 300_000, "approved", None, id="monthly-ignores-day-held"
    ),
    pytest.param({"require_approval_above": 20_000}, {}, 20_000, "approved", None, id="approval-equal"),
    pytest.param({"require_approval_above": 20_000}, {}, 20_001, "pending", None, id="approval-over"),
    pytest.param({"require_approval_above": 0}, {}, 1, "pending", None, id="approval-above-zero"),
]


@pytest.mark.parametrize(("limits", "held", "amount", "status", "code"), BOUNDARIES)
def test_each_check_passes_at_its_limit_and_fails_one_minor_unit_over(
    limits: dict[str, int], held: dict[int, int], amount: int, status: str, code: Optional[str]
) -> None:
    decision = decide([policy(AGENT, **limits)], amount, held=Held({(AGENT, w): v for w, v in held.items()}))

    assert (decision.status, decision.denial_code) == (status, code)
    assert (decision.denial_reason is not None) == (status == "denied")
    assert (decision.message is not None) == (status == "pending")


@pytest.mark.parametrize(
    ("allowed", "action", "status"),
    [
        pytest.param(["purchase_order", "comp_issued"], "comp_issued", "approved", id="listed"),
        pytest.param(["purchase_order"], "comp_issued", "denied", id="not-listed"),
        pytest.param(["purchase_order"], "purchase_order.bulk", "denied", id="prefix-is-not-enough"),
        pytest.param([], "purchase_order", "denied", id="empty-list-allows-nothing"),
        pytest.param(None, "any.custom:action", "approved", id="unset-allows-everything"),
    ],
)
def test_allowed_actions(allowed: Optional[list[str]], action: str, status: str) -> None:
    decision = decide([policy(AGENT, allowed_actions=allowed)], 100, action=action)

    assert decision.status == status
    assert decision.denial_code == ("action_not_allowed" if status == "denied" else None)


# Every limit set so that the request fails exactly the checks named; the first decides.
ORDER = [
    pytest.param(("single", "action", "daily", "monthly", "approval"), "max_single_amount", id="all-fail"),
    pytest.param(("action", "daily", "monthly", "approval"), "action_not_allowed", id="action-before-windows"),
    pytest.param(("daily", "monthly", "approval"), "max_daily_spend", id="daily-before-monthly"),
    pytest.param(("monthly", "approval"), "max_monthly_spend", id="monthly-before-approval"),
    pytest.param(("single", "monthly"), "max_single_amount", id="single-before-monthly"),
    pytest.param(("approval",), None, id="only-approval"),
    pytest.param((), None, id="none-fail"),
]


@pytest.mark.parametrize(("failing", "code"), ORDER)
def test_checks_run_in_the_published_order_and_the_first_failure_decides(
    failing: tuple[str, ...], code: Optional[str]
) -> None:
    amount = 10_000
    limits = {
        "max_single_amount": amount - 1 if "single" in failing else amount,
        "allowed_actions": ["comp_issued"] if "action" in failing else ["purchase_order"],
        "max_daily_spend": amount if "daily" in failing else 2 * amount,
        "max_monthly_spend": amount if "monthly" in failing else 2 * amount,
        "require_approval_above": amount - 1 if "approval" in failing else amount,
    }
    held = Held({(AGENT, DAY): 1, (AGENT, MONTH): 1})

    decision = decide([policy(AGENT, **limits)], amount, held=held)

    expected = "denied" if code else ("pending" if failing else "approved")
    assert (decision.status, decision.denial_code) == (expected, code)


def test_a_failed_check_stops_evaluation_before_the_windows_are_counted() -> None:
    held = Held()

    decide([policy(AGENT, max_single_amount=10, max_daily_spend=100, max_monthly_spend=100)], 11, held=held)

    assert held.asked == []


# (venue-wide limits, agent limits, what each scope holds, amount, status, code, whose limit decided)
SCOPES = [
    pytest.param(
        {"max_single_amount": 500},
        {"max_single_amount": 1_000},
        {},
        600,
        "denied",
        "max_single_amount",
        "the venue",
        id="venue-single-stricter",
    ),
    pytest.param(
        {"max_single_amount": 1_000},
        {"max_single_amount": 500},
        {},
        600,
        "denied",
        "max_single_amount",
        f"agent '{AGENT}'",
        id="agent-single-stricter",
    ),
    pytest.param(
        {"max_single_amount": 500},
        {"max_single_amount": 500},
        {},
        501,
        "denied",
        "max_single_amount",
        "the venue",
        id="both-fail-venue-asked-first",
    ),
    pytest.param(
        {"allowed_actions": ["comp_issued"]},
        {"allowed_actions": ["purchase_order"]},
        {},
        1,
        "denied",
        "action_not_allowed",
        "the venue",
        id="venue-actions-apply-too",
    ),
    pytest.param(
        {"max_daily_spend": 1_000},
        {"max_daily_spend": 5_000},
        {("", DAY): 900, (AGENT, DAY): 0},
        101,
        "denied",
        "max_daily_spend",
        "the venue",
        id="venue-daily-counted-over-venue",
    ),
    pytest.param(
        {"max_daily_spend": 5_000},
        {"max_daily_spend": 1_000},
        {("", DAY): 4_000, (AGENT, DAY): 900},
        101,
        "denied",
        "max_daily_spend",
        f"agent '{AGENT}'",
        id="agent-daily-counted-over-agent",
    ),
    pytest.param(
        {"max_daily_spend": 5_000},
        {"max_daily_spend": 1_000},
        {("", DAY): 4_000, (AGENT, DAY): 900},
        100,
        "approved",
        None,
        None,
        id="both-daily-at-limit",
    ),
    pytest.param(
        {"max_monthly_spend": 1_000},
        {"max_daily_spend": 10},
        {("", MONTH): 0, (AGENT, DAY): 0},
        11,
        "denied",
        "max_daily_spend",
        f"agent '{AGENT}'",
        id="agent-daily-before-venue-monthly",
    ),
    pytest.param(
        {"max_daily_spend": 100},
        {"max_single_amount": 50},
        {("", DAY): 0},
        60,
        "denied",
        "max_single_amount",
        f"agent '{AGENT}'",
        id="agent-check-1-before-venue-check-3",
    ),
    pytest.param(
        {"require_approval_above": 1_000},
        {"require_approval_above": 100},
        {},
        101,
        "pending",
        None,
        f"agent '{AGENT}'",
        id="agent-approval-threshold-stricter",
    ),
    pytest.param(
        {"require_approval_above": 100},
        {"max_single_amount": 1_000},
        {},
        101,
        "pending",
        None,
        "the venue",
        id="venue-approval-threshold-applies",
    ),
]


@pytest.mark.parametrize(("venue_limits", "agent_limits", "held", "amount", "status", "code", "decider"), SCOPES)
def test_both_scopes_apply_and_the_stricter_wins(
    venue_limits: dict[str, Any],
    agent_limits: dict[str, Any],
    held: dict[tuple[str, int], int],
    amount: int,
    status: str,
    code: Optional[str],
    decider: Optional[str],
) -> None:
    decision = decide([policy(None, **venue_limits), policy(AGENT, **agent_limits)], amount, held=Held(held))

    assert (decision.status, decision.denial_code) == (status, code)
    sentence = decision.denial_reason or decision.message
    if decider is None:
        assert sentence is None
    else:
        assert sentence is not None and f"for {decider}" in sentence


def test_each_policy_counts_its_windows_over_its_own_scope() -> None:
    held = Held()

    decide(
        [policy(None, max_daily_spend=10**6, max_monthly_spend=10**6), policy(AGENT, max_daily_spend=10**6)],
        1,
        held=held,
    )
    assert held.asked == [("", DAY), (AGENT, DAY), ("", MONTH)]


@pytest.mark.parametrize(
    "policies",
    [
        pytest.param([policy(None)], id="venue-only"),
        pytest.param([policy(AGENT)], id="agent-only"),
    ],
)
def test_a_policy_without_limits_covers_and_approves(policies: list[Policy]) -> None:
    assert decide(policies, 10**14).status == "approved"


def test_no_policy_fails_closed() -> None:
    decision = decide([], 1)

    assert (decision.status, decision.denial_code) == ("denied", "no_policy")
    assert decision.denial_reason == (
        "No spend policy covers this agent; the owner must set a venue-wide or agent policy first"
    )


def test_no_policy_denies_even_a_zero_amount() -> None:
    assert decide([], 0, approval_check=False).denial_code == "no_policy"


@pytest.mark.parametrize(
    ("limits", "held", "code"),
    [
        pytest.param({"max_single_amount": 500}, 0, "max_single_amount", id="single"),
        pytest.param({"allowed_actions": ["comp_issued"]}, 0, "action_not_allowed", id="action"),
        pytest.param({"max_daily_spend": 1_000}, 600, "max_daily_spend", id="daily"),
        pytest.param({"max_monthly_spend": 1_000}, 600, "max_monthly_spend", id="monthly"),
    ],
)
@pytest.mark.parametrize("approval_check", [True, False])
def test_a_request_above_the_approval_threshold_is_denied_not_pending_when_checks_1_to_4_fail(
    limits: dict[str, Any], held: int, code: str, approval_check: bool
) -> None:
    amount = 501
    decision = decide(
        [policy(AGENT, require_approval_above=100, **limits)],
        amount,
        held=Held({(AGENT, DAY): held, (AGENT, MONTH): held}),
        approval_check=approval_check,
    )

    assert (decision.status, decision.denial_code) == ("denied", code)


def test_without_the_approval_check_a_request_above_the_threshold_is_approved() -> None:
    policies = [policy(None, require_approval_above=100), policy(AGENT, require_approval_above=50)]

    assert decide(policies, 101).status == "pending"
    assert decide(policies, 101, approval_check=False) == Decision("approved")


REASONS = [
    pytest.param(
        [policy(AGENT, max_single_amount=50_000)],
        3_600_000,
        "USD",
        "purchase_order",
        Held(),
        "Amount $36,000.00 exceeds the single-transaction limit of $500.00 for agent 'voice-agent'",
        id="single-agent",
    ),
    pytest.param(
        [policy(None, max_single_amount=50_000)],
        50_001,
        "USD",
        "purchase_order",
        Held(),
        "Amount $500.01 exceeds the single-transaction limit of $500.00 for the venue",
        id="single-venue",
    ),
    pytest.param(
        [policy(AGENT, allowed_actions=["order_captured", "comp_issued"])],
        100,
        "USD",
        "purchase_order",
        Held(),
        "Action 'purchase_order' is not allowed for agent 'voice-agent' (allowed: order_captured, comp_issued)",
        id="action",
    ),
    pytest.param(
        [policy(None, allowed_actions=[])],
        100,
        "USD",
        "purchase_order",
        Held(),
        "Action 'purchase_order' is not allowed for the venue (allowed: none)",
        id="action-none",
    ),
    pytest.param(
        [policy(None, max_daily_spend=10_000)],
        4_001,
        "USD",
        "purchase_order",
        Held({("", DAY): 6_000}),
        "Amount $40.01 would bring spend in the last 24 hours to $100.01, above the daily limit of $100.00"
        " for the venue ($60.00 already held)",
        id="daily",
    ),
    pytest.param(
        [policy(AGENT, max_monthly_spend=500_000_00)],
        1_00,
        "USD",
        "purchase_order",
        Held({(AGENT, MONTH): 500_000_00}),
        "Amount $1.00 would bring spend in the last 30 days to $500,001.00, above the monthly limit of"
        " $500,000.00 for agent 'voice-agent' ($500,000.00 already held)",
        id="monthly",
    ),
    pytest.param(
        [policy(AGENT, max_single_amount=1_000)],
        1_001,
        "JPY",
        "purchase_order",
        Held(),
        "Amount JPY 1,001 exceeds the single-transaction limit of JPY 1,000 for agent 'voice-agent'",
        id="jpy",
    ),
    pytest.param(
        [policy(None, max_daily_spend=1_500)],
        1,
        "KWD",
        "purchase_order",
        Held({("", DAY): 1_500}),
        "Amount KWD 0.001 would bring spend in the last 24 hours to KWD 1.501, above the daily limit of"
        " KWD 1.500 for the venue (KWD 1.500 already held)",
        id="kwd",
    ),
]


@pytest.mark.parametrize(("policies", "amount", "currency", "action", "held", "reason"), REASONS)
def test_denial_reasons_are_sentences(
    policies: list[Policy], amount: int, currency: str, action: str, held: Held, reason: str
) -> None:
    decision = decide(policies, amount, action=action, currency=currency, held=held)

    assert decision.status == "denied"
    assert decision.denial_reason == reason


def test_a_pending_decision_says_why_it_waits() -> None:
    decision = decide([policy(AGENT, require_approval_above=20_000)], 25_000)

    assert decision == Decision(
        "pending",
        message="Amount $250.00 is above the approval threshold of $200.00 for agent 'voice-agent':"
        " waiting for the owner's approval",
    )
