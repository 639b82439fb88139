"""Policies: the limits of a venue and of each of its agents, changed by admin keys only.

The policy engine that applies them to a request is :mod:`agenitry.gateway.service.policy`;
this module stores them. A change never loosens a limit by mistake: a field not sent keeps
its value, and only an explicit null removes a limit.
"""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import select, update

from agenitry.gateway._ids import new_id
from agenitry.gateway.errors import NotFound
from agenitry.gateway.service import inputs, records
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.bodies import require_named_venue
from agenitry.gateway.service.events import admin_event
from agenitry.gateway.service.lifecycle import Tx
from agenitry.gateway.service.transactions import Idempotency, Outcome, Transactions
from agenitry.gateway.service.venues import venue_currency
from agenitry.gateway.store.schema import policies


class Policies:
    """Put, list and delete a venue's policies."""

    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions
        self.db = transactions.db

    def put_policy(
        self, principal: Principal, fields: dict[str, Any], *, idempotency: Optional[Idempotency] = None
    ) -> Outcome:
        """PUT /v1/policies: create the policy of one scope (the agent's, or the venue's
        without ``agent_id``) or update it.

        ``fields`` holds only what the caller sent: a limit sent replaces the stored one,
        one not sent keeps it (none on create) and ``None`` removes it, so a forgotten or
        misspelt field never loosens a policy.
        """
        require_named_venue(principal, fields)
        principal.require_admin("change a policy")

        def work(tx: Tx) -> dict[str, Any]:
            agent_id, sent = inputs.policy_change(fields, tx.venue.currency)
            scope = agent_id or ""
            existing = tx.conn.execute(
                select(policies).where(policies.c.venue_id == tx.venue_id, policies.c.scope == scope)
            ).first()
            if existing is None:
                policy_id = new_id("pol")
                # A column not in ``sent`` is stored null: no limit.
                tx.conn.execute(
                    policies.insert().values(
                        id=policy_id,
                        venue_id=tx.venue_id,
                        agent_id=agent_id,
                        scope=scope,
                        created_at=tx.now,
                        updated_at=tx.now,
                        **sent,
                    )
                )
            else:
                policy_id = existing.id
                tx.conn.execute(update(policies).where(policies.c.id == policy_id).values(**sent, updated_at=tx.now))
            row = tx.conn.execute(select(policies).where(policies.c.id == policy_id)).one()
            body = records.policy(row, tx.venue.currency)
            details = {key: body[key] for key in (*inputs.POLICY_LIMITS, "allowed_actions", "id")}
            tx.log(admin_event("policy.updated", principal, agent_id, details))
            return body

        return self.transactions.transact(principal, idempotency, work)

    def list_policies(self, principal: Principal) -> dict[str, Any]:
        with self.db.read() as conn:
            currency = venue_currency(conn, principal.venue_id)
            rows = conn.execute(
                select(policies)
                .where(policies.c.venue_id == principal.venue_id)
                .order_by(policies.c.scope, policies.c.created_at)
            )
            return {"venue_id": principal.venue_id, "policies": [records.policy(row, currency) for row in rows]}

    def delete_policy(
        self, principal: Principal, policy_id: str, *, idempotency: Optional[Idempotency] = None
    ) -> Outcome:
        principal.require_admin("delete a policy")

        def work(tx: Tx) -> dict[str, Any]:
            row = tx.conn.execute(
                select(policies).where(policies.c.id == policy_id, policies.c.venue_id == tx.venue_id)
            ).first()
            if row is None:
                raise NotFound(f"Policy '{policy_id}' not found", code="policy_not_found")
            tx.conn.execute(policies.delete().where(policies.c.id == policy_id))
            tx.log(admin_event("policy.deleted", principal, row.agent_id, {"id": policy_id}))
            return {"status": "deleted", "id": policy_id}

        return self.transactions.transact(principal, idempotency, work)
