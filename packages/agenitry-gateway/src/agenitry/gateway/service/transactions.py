"""The venue transaction every write of the service runs in, once per Idempotency-Key.

Each write runs in one transaction on its venue (see :mod:`agenitry.gateway.store.database`),
so a decision, its hold, its audit event, its webhooks and its idempotency record commit
together or not at all. A read first applies the expiry that is due, so no answer shows an
authorization alive past its ``expires_at``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import Connection

from agenitry import canonical_json
from agenitry.gateway._clock import DAY, Clock
from agenitry.gateway.errors import Unprocessable
from agenitry.gateway.service import inputs, ledger, lifecycle
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.checkpoints import Checkpointer
from agenitry.gateway.service.group_commit import GroupCommit
from agenitry.gateway.service.key_cache import KeyCache
from agenitry.gateway.service.lifecycle import ReadAhead, Tx
from agenitry.gateway.service.webhooks import WebhookService
from agenitry.gateway.store import driver
from agenitry.gateway.store.database import Database
from agenitry.gateway.store.schema import idempotency_keys

#: Idempotency records are kept at least this long (the protocol promises 24 hours).
IDEMPOTENCY_TTL = 2 * DAY


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


class Transactions:
    """The venue transaction, the idempotent write and the read after due expiry, shared
    by every part of the service.

    It owns the webhooks and the group commit: a decision's webhooks are queued in its
    transaction, and every write of a venue goes through that venue's group commit.
    """

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock,
        keys: KeyCache,
        checkpointer: Checkpointer,
        public_url: str,
    ) -> None:
        self.db = database
        self.clock = clock
        self.keys = keys
        self.checkpointer = checkpointer
        self.webhooks = WebhookService(database, self.transact, clock=clock, public_url=public_url)
        self.commits = GroupCommit(self.venue_tx, wait_s=database.busy_timeout_s)

    @contextmanager
    def venue_tx(self, venue_id: str, ahead: Optional[ReadAhead] = None) -> Iterator[Tx]:
        """The venue's write transaction: locked, with the expiry that is due applied.

        The lock, the soonest expiry and what ``ahead`` names are read together (one round
        trip on PostgreSQL, its ``BEGIN`` included); the transaction's time is taken once
        they are in, so it is never before the lock was held.
        """
        queued = 0
        # A hold the ledger refuses fails its statement, which may be sent with the COMMIT.
        with ledger.capacity_guard(), self.db.write() as conn:
            statements = [self.db.locking(venue_id), lifecycle.next_expiry(venue_id)]
            if ahead is not None:
                statements += ahead.statements(venue_id)
            locked, soonest, *found = driver.together(conn, statements)
            venue = self.db.locked(conn, venue_id, locked.fetchone())
            if ahead is not None:
                ahead.found(conn, found)
            tx = Tx(conn, venue, self.clock(), ahead=ahead)
            lifecycle.expire_due(tx, soonest.fetchone()[0])
            yield tx
            size = tx.next_sequence
            signs = self.checkpointer.signs_after(venue.event_count, size)
            if tx.writes:  # rows left to write: the last append's, an idempotency record
                left = None if signs or tx.venue.webhooks else tx.writes.taken(conn, tx.venue_id)
                if left is None:  # what follows reads the tables (or this is SQLite): now
                    tx.send()
                else:  # with the COMMIT, in its round trip
                    self.db.send_with_commit(conn, left)
            if tx.appended:
                if signs:
                    self.checkpointer.sign(conn, tx.venue_id, tx.now)
                # The webhooks of what was decided commit with the decision, or not at all.
                queued = self.webhooks.enqueue(tx)
        if queued:
            self.webhooks.wake()

    def transact(
        self,
        principal: Principal,
        idempotency: Optional[Idempotency],
        work: Callable[[Tx], dict[str, Any]],
        *,
        shown_once: Optional[str] = None,
        replay: Optional[Callable[[Tx, dict[str, Any]], dict[str, Any]]] = None,
        agent_id: Optional[str] = None,
    ) -> Outcome:
        """Run ``work`` in the venue's transaction, once per Idempotency-Key, batched with
        the venue's concurrent writes (:mod:`~agenitry.gateway.service.group_commit`).

        The answer's field ``shown_once`` is stored as null (only its digest is kept), so a
        repeat gets the stored answer through ``replay``, which may issue the secret anew.
        ``agent_id`` names the agent whose policies ``work`` decides with: they are read
        with the venue's lock, as its stored answer is.
        """

        def once(tx: Tx) -> Outcome:
            self.keys.confirm(tx.conn, tx.venue, principal)
            if idempotency is not None:
                # Read with the lock when this write's key was named ahead (ReadAhead.found).
                if tx.ahead is not None and tx.ahead.idempotency_key == idempotency.key:
                    stored = tx.ahead.answer
                else:
                    stored = driver.first(
                        tx.conn, lifecycle.STORED_ANSWER, {"venue_id": tx.venue_id, "key": idempotency.key}
                    )
                if stored is not None:
                    fingerprint, stored_body = stored
                    if fingerprint != idempotency.fingerprint:
                        raise Unprocessable(
                            "This Idempotency-Key was already used with a different request",
                            code="idempotency_key_reused",
                        )
                    answered = json.loads(stored_body)
                    return Outcome(replay(tx, answered) if replay else answered, replayed=True)
            body = work(tx)
            if idempotency is not None:
                # Written with what follows, or with the COMMIT: nothing reads it before.
                kept = {**body, shown_once: None} if shown_once else body
                row = {
                    "venue_id": tx.venue_id,
                    "key": idempotency.key,
                    "fingerprint": idempotency.fingerprint,
                    "body": json.dumps(kept, ensure_ascii=False),
                    "created_at": tx.now,
                }
                tx.writes.insert(idempotency_keys, [row])
            return Outcome(body)

        ahead = ReadAhead(agent_id=agent_id, idempotency_key=idempotency.key if idempotency is not None else None)
        return self.commits.run(principal.venue_id, once, ahead)

    @contextmanager
    def read(self, venue_id: str) -> Iterator[Connection]:
        """A read of one venue, after any expiry that is due has been applied."""
        now = self.clock()
        with self.db.read() as conn:
            due = lifecycle.any_due(conn, venue_id, now)
        if due:
            with self.venue_tx(venue_id):
                pass
        with self.db.read() as conn:
            yield conn
