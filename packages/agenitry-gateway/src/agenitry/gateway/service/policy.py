"""The policy engine: pure evaluation of the five checks over both scopes.

A venue may have a venue-wide policy and one policy per agent. A request must pass every
check of both, each counted over its own scope, so the stricter limit wins. The checks
run in the published order and the first failure decides; within one check the venue's
policy is asked first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional

from agenitry.gateway._clock import DAY
from agenitry.gateway._money import display

DAILY_WINDOW = DAY
MONTHLY_WINDOW = 30 * DAY

#: Given a policy and a window length, the amount its scope holds in that window.
HeldInWindow = Callable[["Policy", int], int]
#: The checks over rolling windows, in the published order: the policy's limit, its
#: window, and how a denial names them.
WINDOW_CHECKS = (
    ("max_daily_spend", DAILY_WINDOW, "the last 24 hours", "daily"),
    ("max_monthly_spend", MONTHLY_WINDOW, "the last 30 days", "monthly"),
)


@dataclass(frozen=True)
class Policy:
    id: str
    venue_id: str
    agent_id: Optional[str]
    max_single_amount: Optional[int]
    max_daily_spend: Optional[int]
    max_monthly_spend: Optional[int]
    require_approval_above: Optional[int]
    allowed_actions: Optional[tuple[str, ...]]
    created_at: int
    updated_at: int

    @property
    def scope(self) -> str:
        return self.agent_id or ""

    def describe(self) -> str:
        return f"agent '{self.agent_id}'" if self.agent_id else "the venue"

    @classmethod
    def from_row(cls, row: Any) -> Policy:
        actions = row.allowed_actions
        return cls(
            id=row.id,
            venue_id=row.venue_id,
            agent_id=row.agent_id,
            max_single_amount=row.max_single_amount,
            max_daily_spend=row.max_daily_spend,
            max_monthly_spend=row.max_monthly_spend,
            require_approval_above=row.require_approval_above,
            allowed_actions=tuple(actions) if actions is not None else None,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def windows_limited(policies: Sequence[Policy]) -> list[tuple[Policy, int]]:
    """Each policy and window with a limit: every held amount :func:`evaluate` may ask
    for, in the order it asks, so that a caller can read them all at once."""
    return [
        (policy, window)
        for field, window, *_ in WINDOW_CHECKS
        for policy in policies
        if getattr(policy, field) is not None
    ]


@dataclass(frozen=True)
class Decision:
    status: Literal["approved", "denied", "pending"]
    denial_code: Optional[str] = None
    denial_reason: Optional[str] = None
    message: Optional[str] = None


def evaluate(
    policies: Sequence[Policy],
    *,
    action: str,
    amount: int,
    currency: str,
    held: HeldInWindow,
    approval_check: bool = True,
) -> Decision:
    """Decide a request of ``amount`` (minor units) for ``action`` under ``policies``.

    ``policies`` are the venue-wide policy and the agent's, whichever exist. With none
    the answer is a denial (``no_policy``): a gateway fails closed. ``approval_check``
    is false when an owner approves a pending request, since checks 1-4 alone re-run.
    """
    if not policies:
        return Decision(
            "denied",
            "no_policy",
            "No spend policy covers this agent; the owner must set a venue-wide or agent policy first",
        )

    def money(minor: int) -> str:
        return display(minor, currency)

    for policy in policies:
        limit = policy.max_single_amount
        if limit is not None and amount > limit:
            return Decision(
                "denied",
                "max_single_amount",
                f"Amount {money(amount)} exceeds the single-transaction limit of {money(limit)}"
                f" for {policy.describe()}",
            )
    for policy in policies:
        allowed = policy.allowed_actions
        if allowed is not None and action not in allowed:
            listed = ", ".join(allowed) if allowed else "none"
            return Decision(
                "denied",
                "action_not_allowed",
                f"Action '{action}' is not allowed for {policy.describe()} (allowed: {listed})",
            )
    for field, window, span, name in WINDOW_CHECKS:
        for policy in policies:
            limit = getattr(policy, field)
            if limit is None:
                continue
            already = held(policy, window)
            if already + amount > limit:
                return Decision(
                    "denied",
                    field,
                    f"Amount {money(amount)} would bring spend in {span} to"
                    f" {money(already + amount)}, above the {name} limit of {money(limit)}"
                    f" for {policy.describe()} ({money(already)} already held)",
                )
    if approval_check:
        for policy in policies:
            threshold = policy.require_approval_above
            if threshold is not None and amount > threshold:
                return Decision(
                    "pending",
                    message=f"Amount {money(amount)} is above the approval threshold of"
                    f" {money(threshold)} for {policy.describe()}: waiting for the owner's approval",
                )
    return Decision("approved")
