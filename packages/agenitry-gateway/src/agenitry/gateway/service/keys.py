"""API keys: created for a role, shown once, listed by prefix, revocable; and the
authentication of a presented key, from the key cache when the caller allows it."""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import bindparam, select, update

from agenitry.gateway._ids import digest, new_api_key, new_id
from agenitry.gateway.errors import NotFound, Unauthenticated, Unprocessable
from agenitry.gateway.service import inputs, records
from agenitry.gateway.service.access import ROLES, Principal
from agenitry.gateway.service.events import admin_event
from agenitry.gateway.service.key_cache import well_formed
from agenitry.gateway.service.lifecycle import Tx
from agenitry.gateway.service.records import Values
from agenitry.gateway.service.transactions import Idempotency, Outcome, Transactions
from agenitry.gateway.store.schema import api_keys, venues

# Built once, as it runs on most requests: building it cost more than running it.
# The key and its venue's keys version in one statement: one snapshot, so the key was valid at that version.
_PRESENTED_KEY = (
    select(api_keys.c.id, api_keys.c.venue_id, api_keys.c.role, api_keys.c.agent_id, venues.c.keys_version)
    .join(venues, venues.c.id == api_keys.c.venue_id)
    .where(api_keys.c.digest == bindparam("digest"), api_keys.c.revoked_at.is_(None))
)


class ApiKeys:
    """A venue's API keys (admin keys only) and who a presented key is."""

    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions
        self.db = transactions.db
        self.clock = transactions.clock
        self.keys = transactions.keys

    def create_key(
        self,
        principal: Principal,
        *,
        role: str,
        agent_id: Optional[str] = None,
        name: Optional[str] = None,
        idempotency: Optional[Idempotency] = None,
    ) -> tuple[dict[str, Any], Optional[str]]:
        """Create an API key; returns the key's record and its secret, shown only here.

        A repeat under the same Idempotency-Key creates nothing and gets the record
        without the secret (``None``): only its digest was ever stored.
        """
        principal.require_admin("create keys")
        if role not in ROLES:
            raise Unprocessable("role must be admin or agent", code="invalid_role")
        if role == "agent":
            agent_id = inputs.agent_id(agent_id)
        elif agent_id is not None:
            raise Unprocessable("An admin key acts for the whole venue: give no agent_id", code="invalid_agent_id")
        secret = new_api_key()

        def work(tx: Tx) -> dict[str, Any]:
            row = {
                "id": new_id("key"),
                "venue_id": tx.venue_id,
                "role": role,
                "agent_id": agent_id,
                "name": inputs.text(name, "name", limit=inputs.MAX_NAME),
                "prefix": secret[:11],
                "digest": digest(secret),
                "created_at": tx.now,
                "revoked_at": None,
            }
            tx.conn.execute(api_keys.insert().values(row))
            tx.log(admin_event("key.created", principal, agent_id, {"key_id": row["id"], "role": role}))
            return records.api_key(Values(row))

        outcome = self.transactions.transact(principal, idempotency, work)
        return outcome.body, None if outcome.replayed else secret

    def list_keys(self, principal: Principal) -> dict[str, Any]:
        principal.require_admin("list keys")
        with self.db.read() as conn:
            rows = conn.execute(
                select(api_keys).where(api_keys.c.venue_id == principal.venue_id).order_by(api_keys.c.created_at)
            )
            return {"venue_id": principal.venue_id, "keys": [records.api_key(row) for row in rows]}

    def revoke_key(self, principal: Principal, key_id: str, *, idempotency: Optional[Idempotency] = None) -> Outcome:
        principal.require_admin("revoke keys")

        def work(tx: Tx) -> dict[str, Any]:
            row = tx.conn.execute(
                select(api_keys).where(api_keys.c.id == key_id, api_keys.c.venue_id == tx.venue_id)
            ).first()
            if row is None:
                raise NotFound(f"Key '{key_id}' not found", code="key_not_found")
            if row.revoked_at is None:
                tx.conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=tx.now))
                # Every instance's next write with a cached key of this venue reads it again.
                tx.conn.execute(
                    update(venues).where(venues.c.id == tx.venue_id).values(keys_version=venues.c.keys_version + 1)
                )
                tx.venue_changed()
                tx.log(admin_event("key.revoked", principal, row.agent_id, {"key_id": key_id}))
            revoked = tx.conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one()
            return records.api_key(revoked)

        outcome = self.transactions.transact(principal, idempotency, work)
        self.keys.forget(key_id)
        return outcome

    def authenticate(self, secret: Optional[str], *, cached: bool = False) -> Principal:
        """The principal of a presented key; :class:`Unauthenticated` if it is unknown or revoked.

        ``cached`` answers from :attr:`keys` a key read less than ``key_cache_ttl`` ago, with
        no transaction: a revocation on another instance reaches such a read only when the
        entry lapses, and a write always (:meth:`KeyCache.confirm`). Without it the key is read.
        """
        if not well_formed(secret):
            raise Unauthenticated()
        key_digest = digest(secret)
        now = self.clock()
        if cached:
            known = self.keys.get(key_digest, now)
            if known is not None:
                return known
        epoch = self.keys.epoch
        with self.db.read() as conn:
            row = conn.execute(_PRESENTED_KEY, {"digest": key_digest}).first()
        if row is None:
            raise Unauthenticated()
        principal = Principal(
            key_id=row.id, venue_id=row.venue_id, role=row.role, agent_id=row.agent_id, keys_version=row.keys_version
        )
        self.keys.put(key_digest, principal, now, epoch)
        return principal
