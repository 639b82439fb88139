"""Stored rows rendered as the wire protocol's objects (the same for HTTP and embedded)."""

from __future__ import annotations

from typing import Any, Optional

from agenitry import APPROVED_STATUSES
from agenitry.gateway._clock import iso
from agenitry.gateway._money import to_number

#: Statuses in which an authorization lets the agent go ahead (or already went ahead).


def _money(minor: Optional[int], currency: Optional[str]) -> Optional[float]:
    return to_number(minor, currency) if minor is not None and currency else None


def verify_url(public_url: str, venue_id: str, event_id: str) -> str:
    return f"{public_url.rstrip('/')}/verify/{venue_id}/{event_id}"


def event(row: Any, public_url: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "venue_id": row.venue_id,
        "sequence": row.sequence,
        "agent_id": row.agent_id,
        "action": row.action,
        "amount": _money(row.amount, row.currency),
        "currency": row.currency,
        "direction": row.direction,
        "context": row.context,
        "reason": row.reason,
        "authorization_id": row.authorization_id,
        "actor": row.actor,
        "created_at": iso(row.created_at),
        "occurred_at": iso(row.occurred_at),
        "leaf_hash": row.leaf_hash,
        "verify_url": verify_url(public_url, row.venue_id, row.id),
    }


def logged(row: Any, public_url: str) -> dict[str, Any]:
    """The answer to POST /v1/events."""
    return {
        "id": row.id,
        "status": "logged",
        "created_at": iso(row.created_at),
        "sequence": row.sequence,
        "verify_url": verify_url(public_url, row.venue_id, row.id),
    }


def decision(row: Any) -> dict[str, Any]:
    """The answer to POST /v1/authorize."""
    answer: dict[str, Any] = {
        "approved": row.status == "approved",
        "status": row.status,
        "authorization_id": row.id,
        "created_at": iso(row.created_at),
    }
    if row.expires_at is not None:
        answer["expires_at"] = iso(row.expires_at)
    for field in ("denial_reason", "denial_code", "message"):
        if getattr(row, field) is not None:
            answer[field] = getattr(row, field)
    return answer


def authorization(row: Any) -> dict[str, Any]:
    """The full authorization record."""
    return {
        "id": row.id,
        "authorization_id": row.id,
        "venue_id": row.venue_id,
        "agent_id": row.agent_id,
        "action": row.action,
        "amount": _money(row.amount, row.currency),
        "actual_amount": _money(row.actual_amount, row.currency),
        "held_amount": _money(row.hold, row.currency),
        "currency": row.currency,
        "status": row.status,
        "approved": row.status in APPROVED_STATUSES,
        "denial_code": row.denial_code,
        "denial_reason": row.denial_reason,
        "message": row.message,
        "note": row.note,
        "context": row.context,
        "reason": row.reason,
        "created_at": iso(row.created_at),
        "expires_at": iso(row.expires_at),
        "approved_at": iso(row.approved_at),
        "denied_at": iso(row.denied_at),
        "executed_at": iso(row.executed_at),
        "settled_at": iso(row.settled_at),
        "reversed_at": iso(row.reversed_at),
        "expired_at": iso(row.expired_at),
        "requested_by": row.requested_by,
        "decided_by": row.decided_by,
        "event_id": row.event_id,
        "reversal_event_id": row.reversal_event_id,
    }


def policy(row: Any, currency: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "venue_id": row.venue_id,
        "agent_id": row.agent_id,
        "max_single_amount": _money(row.max_single_amount, currency),
        "max_daily_spend": _money(row.max_daily_spend, currency),
        "max_monthly_spend": _money(row.max_monthly_spend, currency),
        "require_approval_above": _money(row.require_approval_above, currency),
        "allowed_actions": row.allowed_actions,
        "currency": currency,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def api_key(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "venue_id": row.venue_id,
        "role": row.role,
        "agent_id": row.agent_id,
        "name": row.name,
        "prefix": row.prefix,
        "created_at": iso(row.created_at),
        "revoked_at": iso(row.revoked_at),
    }


def venue(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "currency": row.currency,
        "public_context": row.public_context,
        "event_count": row.event_count,
        "created_at": iso(row.created_at),
    }


class Values:
    """Attribute access over a dict of column values, so new and stored rows read alike."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
