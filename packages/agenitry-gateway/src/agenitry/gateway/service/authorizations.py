"""Authorizations: the decision on a spend request and every later step of its lifecycle.

Each step is one idempotent write on the venue (:mod:`~agenitry.gateway.service.transactions`):
the key's role, agent and the authorization's status are checked in the transaction that
takes the step, and :mod:`~agenitry.gateway.service.lifecycle` takes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from sqlalchemy import func, select

from agenitry import AUTHORIZATION_STATUSES
from agenitry.gateway._clock import iso
from agenitry.gateway.errors import Unprocessable
from agenitry.gateway.service import inputs, lifecycle, records
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.bodies import given, require_named_venue
from agenitry.gateway.service.lifecycle import Tx
from agenitry.gateway.service.listings import created_between, page
from agenitry.gateway.service.transactions import Idempotency, Outcome, Transactions
from agenitry.gateway.store.schema import authorizations


class Authorizations:
    """Authorize, claim, execute, settle, reverse, approve, deny, and read authorizations.

    ``execute_window`` and ``approval_window`` (ms) are how long an approved and a pending
    authorization live.
    """

    def __init__(self, transactions: Transactions, *, execute_window: int, approval_window: int) -> None:
        self.transactions = transactions
        self.execute_window = execute_window
        self.approval_window = approval_window

    def authorize(
        self, principal: Principal, fields: dict[str, Any], *, idempotency: Optional[Idempotency] = None
    ) -> Outcome:
        """POST /v1/authorize: decide a spend request; a denial or pending is an answer, not an error."""
        require_named_venue(principal, fields)
        agent_id = inputs.agent_id(principal.acting_for(fields.get("agent_id")))
        action = inputs.caller_action(fields.get("action"))
        if fields.get("amount") is None:
            raise Unprocessable("amount is required", code="invalid_amount")
        context = inputs.context(fields.get("context"))
        reason = inputs.text(fields.get("reason"), "reason")

        def work(tx: Tx) -> dict[str, Any]:
            currency = inputs.currency(given(fields, "currency", tx.venue.currency))
            row = lifecycle.create(
                tx,
                agent_id=agent_id,
                action=action,
                amount=inputs.amount(fields["amount"], currency),
                currency=currency,
                context=context,
                reason=reason,
                actor=principal.key_id,
                execute_window=self.execute_window,
                approval_window=self.approval_window,
            )
            return records.decision(row)

        return self.transactions.transact(principal, idempotency, work, agent_id=agent_id)

    def _on_authorization(
        self,
        principal: Principal,
        authorization_id: str,
        operation: str,
        idempotency: Optional[Idempotency],
        step: Callable[[Tx, Any], dict[str, Any]],
        **options: Any,
    ) -> Outcome:
        """Take ``operation`` on one authorization, once the key may (by role, agent and status)."""
        principal.require_step(operation)

        def work(tx: Tx) -> dict[str, Any]:
            row = lifecycle.load(tx, authorization_id)
            principal.require_agent(row.agent_id)
            principal.require_step(operation, row.status)
            return step(tx, row)

        return self.transactions.transact(principal, idempotency, work, **options)

    def claim(
        self,
        principal: Principal,
        authorization_id: str,
        *,
        lease_seconds: Optional[int] = None,
        idempotency: Optional[Idempotency] = None,
    ) -> Outcome:
        """POST /v1/authorize/{id}/claim: become the one caller that may execute an approved
        authorization, until the lease ends; the token is in this answer only."""
        if lease_seconds is not None and (
            isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int) or lease_seconds < 1
        ):
            raise Unprocessable("lease_seconds must be a whole number of seconds, at least 1", code="invalid_lease")

        def step(tx: Tx, row: Any) -> dict[str, Any]:
            return _claimed(*lifecycle.claim(tx, row, principal.key_id, lease_seconds))

        def replay(tx: Tx, answered: dict[str, Any]) -> dict[str, Any]:
            # The first answer was lost: the same key repeating the same claim gets a fresh
            # token for the claim it still holds (the lost one stops working).
            row = lifecycle.load(tx, authorization_id)
            if row.claimed_by != principal.key_id or not lifecycle.claimed(row, tx.now):
                return answered
            return _claimed(*lifecycle.renew_claim(tx, row))

        return self._on_authorization(
            principal, authorization_id, "claim", idempotency, step, shown_once="claim_token", replay=replay
        )

    def execute(
        self,
        principal: Principal,
        authorization_id: str,
        *,
        actual_amount: Any = None,
        context: Optional[dict[str, Any]] = None,
        claim_token: Optional[str] = None,
        idempotency: Optional[Idempotency] = None,
    ) -> Outcome:
        """POST /v1/authorize/{id}/execute; a claimed authorization needs its ``claim_token``."""
        context = inputs.context(context)

        def step(tx: Tx, row: Any) -> dict[str, Any]:
            actual = (
                inputs.amount(actual_amount, row.currency, field="actual_amount") if actual_amount is not None else None
            )
            done = lifecycle.execute(tx, row, principal.key_id, actual, context, claim_token)
            return {
                "authorization_id": done.id,
                "event_id": done.event_id,
                "status": done.status,
                "executed_at": iso(done.executed_at),
            }

        return self._on_authorization(principal, authorization_id, "execute", idempotency, step)

    def settle(
        self,
        principal: Principal,
        authorization_id: str,
        *,
        context: Optional[dict[str, Any]] = None,
        idempotency: Optional[Idempotency] = None,
    ) -> Outcome:
        context = inputs.context(context)

        def step(tx: Tx, row: Any) -> dict[str, Any]:
            done = lifecycle.settle(tx, row, principal.key_id, context)
            return {"authorization_id": done.id, "status": done.status, "settled_at": iso(done.settled_at)}

        return self._on_authorization(principal, authorization_id, "settle", idempotency, step)

    def reverse(
        self,
        principal: Principal,
        authorization_id: str,
        *,
        claim_token: Optional[str] = None,
        idempotency: Optional[Idempotency] = None,
    ) -> Outcome:
        """POST /v1/authorize/{id}/reverse: an approved one by its agent or an admin (a claimed
        one by its holder, or an admin), an executed one by an admin only."""

        def step(tx: Tx, row: Any) -> dict[str, Any]:
            owner = principal.role == "admin"
            done = lifecycle.reverse(tx, row, principal.key_id, claim_token, owner=owner)
            return {"authorization_id": done.id, "status": done.status, "event_id": done.reversal_event_id}

        return self._on_authorization(principal, authorization_id, "reverse", idempotency, step)

    def approve(
        self,
        principal: Principal,
        authorization_id: str,
        *,
        note: Optional[str] = None,
        idempotency: Optional[Idempotency] = None,
    ) -> Outcome:
        note = inputs.text(note, "note")

        def step(tx: Tx, row: Any) -> dict[str, Any]:
            return records.authorization(lifecycle.approve(tx, row, principal.key_id, note, self.execute_window))

        return self._on_authorization(principal, authorization_id, "approve", idempotency, step)

    def deny(
        self,
        principal: Principal,
        authorization_id: str,
        *,
        reason: Optional[str] = None,
        idempotency: Optional[Idempotency] = None,
    ) -> Outcome:
        reason = inputs.text(reason, "reason")

        def step(tx: Tx, row: Any) -> dict[str, Any]:
            return records.authorization(lifecycle.deny(tx, row, principal.key_id, reason))

        return self._on_authorization(principal, authorization_id, "deny", idempotency, step)

    def get_authorization(self, principal: Principal, authorization_id: str) -> dict[str, Any]:
        with self.transactions.read(principal.venue_id) as conn:
            return records.authorization(lifecycle.find(conn, principal.venue_id, authorization_id))

    def list_authorizations(
        self,
        principal: Principal,
        *,
        agent_id: Optional[str] = None,
        action: Optional[str] = None,
        status: Optional[str] = None,
        limit: int = 50,
        offset: int = 0,
        created: tuple[Optional[int], Optional[int]] = (None, None),
        render: Callable[[Any], dict[str, Any]] = records.authorization,
    ) -> dict[str, Any]:
        """GET /v1/authorize, newest first; ``created`` and ``render`` as in :meth:`Gateway.list_events`."""
        if status is not None and status not in AUTHORIZATION_STATUSES:
            raise Unprocessable(f"status must be one of {', '.join(AUTHORIZATION_STATUSES)}", code="invalid_status")
        a = authorizations.c
        where = [a.venue_id == principal.venue_id, *created_between(a.created_at, created)]
        for column, value in ((a.agent_id, agent_id), (a.action, action), (a.status, status)):
            if value is not None:
                where.append(column == value)
        with self.transactions.read(principal.venue_id) as conn:
            total = conn.execute(select(func.count()).select_from(authorizations).where(*where)).scalar_one()
            rows = conn.execute(
                select(authorizations).where(*where).order_by(a.created_at.desc(), a.id).limit(limit).offset(offset)
            ).all()
        return page(principal.venue_id, total, limit, offset, "authorizations", [render(row) for row in rows])


def _claimed(row: Any, token: str) -> dict[str, Any]:
    return {
        "authorization_id": row.id,
        "status": row.status,
        "claim_token": token,
        "claimed_until": iso(row.claimed_until),
        "claimed_by": row.claimed_by,
    }
