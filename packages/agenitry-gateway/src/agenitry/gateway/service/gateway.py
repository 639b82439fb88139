"""The gateway's service: every operation of the wire protocol, with its checks.

The HTTP routes, the CLI and the embedded client all call this one class, so a decision
is made in one place whichever way a request arrives. Each write runs in one transaction
on its venue (see :mod:`agenitry.gateway.store.database`), so a decision, its hold, its
audit event and its idempotency record commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from agenitry import AUTHORIZATION_STATUSES, DEFAULT_DIRECTIONS, RESERVED_ACTION_PREFIXES, canonical_json
from agenitry.gateway._clock import DAY, SECOND, Clock, iso, start_of_utc_day, system_clock
from agenitry.gateway._ids import CLIENT_EVENT_ID, digest, new_api_key, new_id
from agenitry.gateway._money import display, to_number
from agenitry.gateway.errors import Conflict, NotFound, Unauthenticated, Unprocessable
from agenitry.gateway.service import events, inputs, ledger, lifecycle, records
from agenitry.gateway.service.access import ROLES, Principal
from agenitry.gateway.service.audit import AuditTrail, redact, redacted_keys
from agenitry.gateway.service.checkpoints import Checkpointer, origin_prefix
from agenitry.gateway.service.events import NewEvent, admin_event
from agenitry.gateway.service.group_commit import GroupCommit
from agenitry.gateway.service.key_cache import DEFAULT_SIZE, KeyCache
from agenitry.gateway.service.lifecycle import Tx
from agenitry.gateway.service.records import Values
from agenitry.gateway.service.signing import SigningKey
from agenitry.gateway.service.webhooks import WebhookService
from agenitry.gateway.store.database import Database
from agenitry.gateway.store.schema import (
    api_keys,
    authorizations,
    idempotency_keys,
    policies,
    venues,
)
from agenitry.gateway.store.schema import (
    events as events_table,
)
from agenitry.gateway.store.sums import joined, split_sum

_PERIOD_SPANS = {"today": None, "7d": 7 * DAY, "30d": 30 * DAY, "all": None}
MAX_BATCH = 1_000
#: Idempotency records are kept at least this long (the protocol promises 24 hours).
IDEMPOTENCY_TTL = 2 * DAY
#: Gateway-written actions, left out of the business totals of stats.
_SYSTEM_ACTIONS = tuple(f"{prefix}%" for prefix in RESERVED_ACTION_PREFIXES)
# Built once, as each runs on most requests: building one cost more than running it.
# The key and its venue's keys version in one statement: one snapshot, so the key was valid at that version.
_PRESENTED_KEY = (
    select(api_keys.c.id, api_keys.c.venue_id, api_keys.c.role, api_keys.c.agent_id, venues.c.keys_version)
    .join(venues, venues.c.id == api_keys.c.venue_id)
    .where(api_keys.c.digest == bindparam("digest"), api_keys.c.revoked_at.is_(None))
)
_STORED_ANSWER = select(idempotency_keys.c.fingerprint, idempotency_keys.c.body).where(
    idempotency_keys.c.venue_id == bindparam("venue_id"), idempotency_keys.c.key == bindparam("key")
)


@dataclass(frozen=True)
class Idempotency:
    """A caller's Idempotency-Key and the fingerprint of the request it came with."""

    key: str
    fingerprint: str

    @classmethod
    def of(cls, key: str, principal: Principal, method: str, path: str, body: Any) -> Idempotency:
        if not key or len(key) > 255:
            raise Unprocessable("Idempotency-Key must be 1-255 characters", code="invalid_idempotency_key")
        request = {"key": principal.key_id, "method": method, "path": path, "body": body}
        try:
            return cls(key, hashlib.sha256(canonical_json(request)).hexdigest())
        except UnicodeEncodeError:
            # An unpaired surrogate (a JSON "\ud800" escape) is no text and has no UTF-8 form.
            raise Unprocessable(f"The request {inputs.UNSTORABLE}", code="invalid_text") from None


@dataclass(frozen=True)
class Outcome:
    """What a write answered; ``replayed`` when it is the stored answer of a repeat."""

    body: dict[str, Any]
    replayed: bool = False


class Gateway:
    """The service behind every route.

    >>> gateway = Gateway(Database("sqlite:///agenitry.db"))  # doctest: +SKIP
    >>> gateway.migrate()  # doctest: +SKIP
    """

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock = system_clock,
        execute_window: float = 300.0,
        approval_window: float = 86_400.0,
        public_url: str = "http://127.0.0.1:8700",
        signing_key: Optional[SigningKey] = None,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 60.0,
        log_origin: str = "",
        key_cache_ttl: float = 5.0,
        key_cache_size: int = DEFAULT_SIZE,
    ) -> None:
        """Without ``signing_key``, checkpoints are signed by a key made for this instance
        alone (see :mod:`agenitry.gateway.service.signing` for keys that last). A key is
        trusted from memory for ``key_cache_ttl`` seconds (0: read on every request) by
        ``authenticate(..., cached=True)``; writes re-check it on a revocation."""
        self.db = database
        self.keys = KeyCache(int(key_cache_ttl * SECOND), key_cache_size)
        self.clock = clock
        self.execute_window = int(execute_window * SECOND)
        self.approval_window = int(approval_window * SECOND)
        self.public_url = public_url.rstrip("/")
        self.checkpointer = Checkpointer(
            signing_key or SigningKey.generate(),
            prefix=log_origin or origin_prefix(self.public_url),
            every=checkpoint_every,
            interval_ms=int(checkpoint_interval * SECOND),
        )
        self.audit = AuditTrail(self.db, self.checkpointer, self._venue_tx, clock)
        self.webhooks = WebhookService(self.db, self._transact, clock=clock, public_url=self.public_url)
        self.commits = GroupCommit(self._venue_tx, wait_s=database.busy_timeout_s)

    def migrate(self) -> None:
        self.db.migrate()

    # -- transactions ----------------------------------------------------------------

    @contextmanager
    def _venue_tx(self, venue_id: str) -> Iterator[Tx]:
        queued = 0
        with self.db.write() as conn:
            venue = self.db.lock_venue(conn, venue_id)
            tx = Tx(conn, venue, self.clock())
            lifecycle.expire_due(tx)
            yield tx
            if tx.appended:
                size = tx.appended[-1]["sequence"] + 1
                self.checkpointer.after_append(conn, tx.venue_id, venue.event_count, size, tx.now)
                # The webhooks of what was decided commit with the decision, or not at all.
                queued = self.webhooks.enqueue(tx)
        if queued:
            self.webhooks.wake()

    def _transact(
        self,
        principal: Principal,
        idempotency: Optional[Idempotency],
        work: Callable[[Tx], dict[str, Any]],
        *,
        shown_once: Optional[str] = None,
        replay: Optional[Callable[[Tx, dict[str, Any]], dict[str, Any]]] = None,
    ) -> Outcome:
        """Run ``work`` in the venue's transaction, once per Idempotency-Key, batched with
        the venue's concurrent writes (:mod:`~agenitry.gateway.service.group_commit`).

        The answer's field ``shown_once`` is stored as null (only its digest is kept), so a
        repeat gets the stored answer through ``replay``, which may issue the secret anew.
        """

        def once(tx: Tx) -> Outcome:
            self.keys.confirm(tx.conn, tx.venue, principal)
            if idempotency is not None:
                stored = tx.conn.execute(
                    _STORED_ANSWER, {"venue_id": principal.venue_id, "key": idempotency.key}
                ).first()
                if stored is not None:
                    if stored.fingerprint != idempotency.fingerprint:
                        raise Unprocessable(
                            "This Idempotency-Key was already used with a different request",
                            code="idempotency_key_reused",
                        )
                    answered = json.loads(stored.body)
                    return Outcome(replay(tx, answered) if replay else answered, replayed=True)
            body = work(tx)
            if idempotency is not None:
                tx.conn.execute(
                    idempotency_keys.insert(),
                    {
                        "venue_id": principal.venue_id,
                        "key": idempotency.key,
                        "fingerprint": idempotency.fingerprint,
                        "body": json.dumps({**body, shown_once: None} if shown_once else body, ensure_ascii=False),
                        "created_at": tx.now,
                    },
                )
            return Outcome(body)

        return self.commits.run(principal.venue_id, once)

    @contextmanager
    def _read(self, venue_id: str) -> Iterator[Connection]:
        """A read of one venue, after any expiry that is due has been applied."""
        now = self.clock()
        with self.db.read() as conn:
            due = lifecycle.any_due(conn, venue_id, now)
        if due:
            with self._venue_tx(venue_id):
                pass
        with self.db.read() as conn:
            yield conn

    # -- venues and keys ---------------------------------------------------------------

    def create_venue(
        self,
        venue_id: str,
        *,
        name: Optional[str] = None,
        currency: str = "USD",
        public_context: bool = False,
        redacted_keys: Optional[Sequence[str]] = None,
    ) -> dict[str, Any]:
        """Create a venue. With ``public_context`` its verify pages show event context,
        without the keys in ``redacted_keys`` and the default ones (passwords, tokens, cards...)."""
        row = {
            "id": inputs.venue_id(venue_id),
            "name": inputs.text(name, "name", limit=inputs.MAX_NAME) or venue_id,
            "currency": inputs.currency(currency),
            "public_context": public_context,
            "event_count": 0,
            "created_at": self.clock(),
            "redacted_keys": [inputs.text(key, "redacted key", limit=64) for key in redacted_keys or []] or None,
        }
        try:
            with self.db.write() as conn:
                conn.execute(venues.insert().values(row))
        except IntegrityError:
            raise Conflict(f"Venue '{venue_id}' already exists", code="venue_exists") from None
        return records.venue(Values(row))

    def get_venue(self, venue_id: str) -> dict[str, Any]:
        with self.db.read() as conn:
            row = conn.execute(select(venues).where(venues.c.id == venue_id)).first()
        if row is None:
            raise NotFound(f"Venue '{venue_id}' not found", code="venue_not_found")
        return records.venue(row)

    def list_venues(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return [records.venue(row) for row in conn.execute(select(venues).order_by(venues.c.id))]

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

        outcome = self._transact(principal, idempotency, work)
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

        outcome = self._transact(principal, idempotency, work)
        self.keys.forget(key_id)
        return outcome

    def authenticate(self, secret: Optional[str], *, cached: bool = False) -> Principal:
        """The principal of a presented key; :class:`Unauthenticated` if it is unknown or revoked.

        ``cached`` answers from :attr:`keys` a key read less than ``key_cache_ttl`` ago, with
        no transaction: a revocation on another instance reaches such a read only when the
        entry lapses, and a write always (:meth:`KeyCache.confirm`). Without it the key is read.
        """
        if not secret or not secret.startswith("ag_") or len(secret) > 200:
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

    # -- events ------------------------------------------------------------------------

    def log_event(
        self, principal: Principal, fields: dict[str, Any], *, idempotency: Optional[Idempotency] = None
    ) -> Outcome:
        """POST /v1/events: append one event (a re-sent client id is stored once)."""
        _require_named_venue(principal, fields)

        def work(tx: Tx) -> dict[str, Any]:
            [row] = self._append_client_events(tx, principal, [fields])
            return records.logged(Values(row), self.public_url)

        return self._transact(principal, idempotency, work)

    def log_events(
        self, principal: Principal, batch: Sequence[dict[str, Any]], *, idempotency: Optional[Idempotency] = None
    ) -> Outcome:
        """POST /v1/events/batch: append up to 1,000 events, all or none."""
        if not 1 <= len(batch) <= MAX_BATCH:
            raise Unprocessable(f"A batch holds 1 to {MAX_BATCH} events", code="invalid_batch")
        for fields in batch:
            _require_named_venue(principal, fields)

        def work(tx: Tx) -> dict[str, Any]:
            rows = self._append_client_events(tx, principal, batch)
            return {"accepted": len(rows), "ids": [row["id"] for row in rows]}

        return self._transact(principal, idempotency, work)

    def _append_client_events(
        self, tx: Tx, principal: Principal, batch: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        wanted = [self._client_event(tx, principal, index, fields, len(batch)) for index, fields in enumerate(batch)]
        existing = events.find(tx.conn, tx.venue_id, [new.id for new in wanted])
        fresh: dict[str, NewEvent] = {}
        answers: list[Any] = []
        for new in wanted:
            earlier = existing.get(new.id) or fresh.get(new.id)
            if earlier is None:
                fresh[new.id] = new
                answers.append(new.id)
            elif (isinstance(earlier, NewEvent) and earlier == new) or (
                not isinstance(earlier, NewEvent) and new.same_as(earlier)
            ):
                answers.append(new.id)
            else:
                raise Conflict(f"Event id '{new.id}' was already used for a different event", code="event_id_conflict")
        stored = {row["id"]: row for row in tx.log(*fresh.values())}
        stored.update({key: row._asdict() for key, row in existing.items()})
        return [stored[event_id] for event_id in answers]

    def _client_event(self, tx: Tx, principal: Principal, index: int, fields: dict[str, Any], size: int) -> NewEvent:
        try:
            action = inputs.caller_action(fields.get("action"))
            currency = inputs.currency(_given(fields, "currency", tx.venue.currency))
            amount = fields.get("amount")
            event_id = fields.get("id")
            if event_id is not None and (not isinstance(event_id, str) or not CLIENT_EVENT_ID.fullmatch(event_id)):
                raise Unprocessable("An event id is 'evt_' and 16-64 letters, digits, _ or -", code="invalid_event_id")
            return NewEvent(
                id=event_id or new_id("evt"),
                agent_id=inputs.agent_id(principal.acting_for(fields.get("agent_id"))),
                action=action,
                actor=principal.key_id,
                amount=inputs.amount(amount, currency) if amount is not None else None,
                currency=currency if amount is not None else None,
                direction=inputs.direction(fields.get("direction")) or DEFAULT_DIRECTIONS.get(action, "internal"),
                context=inputs.context(fields.get("context")),
                reason=inputs.text(fields.get("reason"), "reason"),
                occurred_at=inputs.occurred_at(fields.get("occurred_at"), tx.now),
            )
        except Unprocessable as exc:
            if size > 1:
                exc.message = f"events[{index}]: {exc.message}"
                exc.extra["index"] = index
            raise

    def list_events(
        self,
        principal: Principal,
        venue_id: str,
        *,
        agent_id: Optional[str] = None,
        action: Optional[str] = None,
        context: Optional[dict[str, Any]] = None,
        limit: int = 50,
        offset: int = 0,
        created: tuple[Optional[int], Optional[int]] = (None, None),
        render: Optional[Callable[[Any], dict[str, Any]]] = None,
    ) -> dict[str, Any]:
        """GET /v1/events/{venue_id}, newest first; ``created`` bounds the events' times
        (ms, from inclusive, to exclusive; None leaves that side open). ``render`` turns a
        stored row into what the page lists (by default the wire protocol's event)."""
        principal.require_venue(venue_id)
        e = events_table.c
        with self._read(venue_id) as conn:
            where = [e.venue_id == venue_id, *_created_between(e.created_at, created)]
            if agent_id is not None:
                where.append(e.agent_id == agent_id)
            if action is not None:
                where.append(e.action == action)
            if context:
                where.append(events.context_filter(conn, context))
            total = conn.execute(select(func.count()).select_from(events_table).where(*where)).scalar_one()
            rows = conn.execute(
                select(events_table).where(*where).order_by(e.sequence.desc()).limit(limit).offset(offset)
            ).all()
        render = render or (lambda row: records.event(row, self.public_url))
        return _page(venue_id, total, limit, offset, "events", [render(row) for row in rows])

    def stats(self, principal: Principal, venue_id: str, *, period: str = "today") -> dict[str, Any]:
        """Business totals: the gateway's own authorization, policy and key events are left out."""
        principal.require_venue(venue_id)
        if period not in _PERIOD_SPANS:
            raise Unprocessable("period must be today, 7d, 30d or all", code="invalid_period")
        now = self.clock()
        span = _PERIOD_SPANS[period]
        since = start_of_utc_day(now) if period == "today" else (now - span if span else None)
        e = events_table.c
        with self._read(venue_id) as conn:
            currency = _venue_currency(conn, venue_id)
            query = (
                select(e.agent_id, e.direction, e.currency, func.count(), *split_sum(e.amount))
                .where(e.venue_id == venue_id, *[e.action.not_like(p) for p in _SYSTEM_ACTIONS])
                .group_by(e.agent_id, e.direction, e.currency)
            )
            if since is not None:
                query = query.where(e.created_at >= since)
            groups = conn.execute(query).all()
        by_agent: dict[str, dict[str, Any]] = {}
        totals = {"inbound": 0, "outbound": 0}
        count = 0
        for agent, direction, event_currency, n, high, low in groups:
            entry = by_agent.setdefault(agent, {"events": 0, "inbound": 0, "outbound": 0})
            entry["events"] += n
            count += n
            if direction in totals and event_currency == currency:
                amount = joined(high, low)
                entry[direction] += amount
                totals[direction] += amount
        for entry in by_agent.values():
            entry["inbound"] = to_number(entry["inbound"], currency)
            entry["outbound"] = to_number(entry["outbound"], currency)
        return {
            "venue_id": venue_id,
            "period": period,
            "currency": currency,
            "total_inbound": to_number(totals["inbound"], currency),
            "total_outbound": to_number(totals["outbound"], currency),
            "event_count": count,
            "by_agent": by_agent,
        }

    # -- authorizations ------------------------------------------------------------------

    def authorize(
        self, principal: Principal, fields: dict[str, Any], *, idempotency: Optional[Idempotency] = None
    ) -> Outcome:
        """POST /v1/authorize: decide a spend request; a denial or pending is an answer, not an error."""
        _require_named_venue(principal, fields)
        agent_id = inputs.agent_id(principal.acting_for(fields.get("agent_id")))
        action = inputs.caller_action(fields.get("action"))
        if fields.get("amount") is None:
            raise Unprocessable("amount is required", code="invalid_amount")
        context = inputs.context(fields.get("context"))
        reason = inputs.text(fields.get("reason"), "reason")

        def work(tx: Tx) -> dict[str, Any]:
            currency = inputs.currency(_given(fields, "currency", tx.venue.currency))
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

        return self._transact(principal, idempotency, work)

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

        return self._transact(principal, idempotency, work, **options)

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
        with self._read(principal.venue_id) as conn:
            row = conn.execute(
                select(authorizations).where(
                    authorizations.c.id == authorization_id, authorizations.c.venue_id == principal.venue_id
                )
            ).first()
        if row is None:
            raise NotFound(f"Authorization '{authorization_id}' not found", code="authorization_not_found")
        return records.authorization(row)

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
        """GET /v1/authorize, newest first; ``created`` and ``render`` as in :meth:`list_events`."""
        if status is not None and status not in AUTHORIZATION_STATUSES:
            raise Unprocessable(f"status must be one of {', '.join(AUTHORIZATION_STATUSES)}", code="invalid_status")
        a = authorizations.c
        where = [a.venue_id == principal.venue_id, *_created_between(a.created_at, created)]
        for column, value in ((a.agent_id, agent_id), (a.action, action), (a.status, status)):
            if value is not None:
                where.append(column == value)
        with self._read(principal.venue_id) as conn:
            total = conn.execute(select(func.count()).select_from(authorizations).where(*where)).scalar_one()
            rows = conn.execute(
                select(authorizations).where(*where).order_by(a.created_at.desc(), a.id).limit(limit).offset(offset)
            ).all()
        return _page(principal.venue_id, total, limit, offset, "authorizations", [render(row) for row in rows])

    # -- policies --------------------------------------------------------------------------

    def put_policy(
        self, principal: Principal, fields: dict[str, Any], *, idempotency: Optional[Idempotency] = None
    ) -> Outcome:
        """PUT /v1/policies: create the policy of one scope (the agent's, or the venue's
        without ``agent_id``) or update it.

        ``fields`` holds only what the caller sent: a limit sent replaces the stored one,
        one not sent keeps it (none on create) and ``None`` removes it, so a forgotten or
        misspelt field never loosens a policy.
        """
        _require_named_venue(principal, fields)
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

        return self._transact(principal, idempotency, work)

    def list_policies(self, principal: Principal) -> dict[str, Any]:
        with self.db.read() as conn:
            currency = _venue_currency(conn, principal.venue_id)
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

        return self._transact(principal, idempotency, work)

    # -- public and housekeeping -------------------------------------------------------------

    def public_event(self, venue_id: str, event_id: str) -> dict[str, Any]:
        """An event as anyone holding its verify link may see it (no key needed)."""
        with self._read(venue_id) as conn:
            venue = conn.execute(select(venues).where(venues.c.id == venue_id)).first()
            row = conn.execute(
                select(events_table).where(events_table.c.venue_id == venue_id, events_table.c.id == event_id)
            ).first()
            if venue is None or row is None:
                raise NotFound("No such event", code="event_not_found")
            status = None
            if row.authorization_id is not None:
                status = conn.execute(
                    select(authorizations.c.status).where(authorizations.c.id == row.authorization_id)
                ).scalar()
        event = records.event(row, self.public_url)
        if not venue.public_context:
            event["context"] = None
        elif event["context"] is not None:
            event["context"] = redact(event["context"], redacted_keys(venue))
        event["authorization_status"] = status
        event["venue_name"] = venue.name
        event["amount_display"] = display(row.amount, row.currency) if row.amount is not None else None
        event["entry"] = events.entry(row)
        return event

    def sweep(self) -> int:
        """Expire what is due in every venue and drop records no one can need; returns
        how many authorizations expired. ``agenitry serve`` runs it periodically."""
        now = self.clock()
        with self.db.read() as conn:
            due = (
                conn.execute(
                    select(authorizations.c.venue_id)
                    .where(authorizations.c.status.in_(lifecycle.EXPIRING), authorizations.c.expires_at < now)
                    .distinct()
                )
                .scalars()
                .all()
            )
        expired = 0
        for venue_id in due:
            with self._venue_tx(venue_id) as tx:
                expired += len([row for row in tx.appended if row["action"] == "authorization.expired"])
        with self.db.write() as conn:
            conn.execute(idempotency_keys.delete().where(idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL))
            ledger.prune_buckets(conn, now - 30 * DAY)
        with self.db.read() as conn:
            due_checkpoints = self.checkpointer.due(conn, now)
        for venue_id in due_checkpoints:
            # Re-checked under the lock: another instance may have signed meanwhile.
            with self._venue_tx(venue_id) as tx:
                if self.checkpointer.due(tx.conn, tx.now, venue_id=venue_id):
                    self.checkpointer.sign(tx.conn, venue_id, tx.now)
        return expired


def _require_named_venue(principal: Principal, fields: dict[str, Any]) -> None:
    """A body may name its venue: another venue, like its objects, does not exist for this key."""
    named = fields.get("venue_id")
    if named is not None:
        principal.require_venue(named)


def _created_between(column: Any, created: tuple[Optional[int], Optional[int]]) -> list[Any]:
    since, until = created
    return [*([column >= since] if since is not None else []), *([column < until] if until is not None else [])]


def _given(fields: dict[str, Any], name: str, default: Any) -> Any:
    """The field's value, or ``default`` when it was not sent (an empty string was sent)."""
    value = fields.get(name)
    return default if value is None else value


def _claimed(row: Any, token: str) -> dict[str, Any]:
    return {
        "authorization_id": row.id,
        "status": row.status,
        "claim_token": token,
        "claimed_until": iso(row.claimed_until),
        "claimed_by": row.claimed_by,
    }


def _venue_currency(conn: Connection, venue_id: str) -> str:
    currency = conn.execute(select(venues.c.currency).where(venues.c.id == venue_id)).scalar()
    if currency is None:
        raise NotFound(f"Venue '{venue_id}' not found", code="venue_not_found")
    return str(currency)


def _page(venue_id: str, total: int, limit: int, offset: int, name: str, items: list[Any]) -> dict[str, Any]:
    return {
        "venue_id": venue_id,
        "total": total,
        "limit": limit,
        "offset": offset,
        "has_more": offset + len(items) < total,
        name: items,
    }
