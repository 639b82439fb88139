"""The authorization lifecycle inside one venue-locked transaction.

Which operation may start from which status is :data:`agenitry.TRANSITIONS`; this module
carries the transitions out. Every transition updates the holds and appends one event
naming its actor; execute and the reversal of an executed authorization also append the
business event.

A claim makes "one approval, at most one side effect" hold across threads, processes and
gateway instances: it is taken under the venue's lock like any transition, so of many
concurrent claimers exactly one gets the token, and while its lease runs only that token
executes (or, for an agent, reverses) the authorization.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from sqlalchemy import Connection, bindparam, select, update

from agenitry import DEFAULT_DIRECTIONS, SPENT_STATUSES, TRANSITIONS
from agenitry.gateway._clock import SECOND, iso
from agenitry.gateway._ids import digest, new_id
from agenitry.gateway.errors import Conflict, NotFound
from agenitry.gateway.service import events, inputs, ledger, log
from agenitry.gateway.service.events import NewEvent
from agenitry.gateway.service.policy import Decision, Policy, evaluate, windows_limited
from agenitry.gateway.service.records import Values
from agenitry.gateway.service.writes import Writes
from agenitry.gateway.store import driver
from agenitry.gateway.store.driver import Sql
from agenitry.gateway.store.schema import authorizations, log_nodes, policies, venues
from agenitry.gateway.store.schema import events as events_table
from agenitry.transparency import Node

#: The one actor that is no key: expiry.
SYSTEM = "system"
#: The statuses whose authorizations expire when their window ends.
EXPIRING = tuple(TRANSITIONS["expire"].sources)
OPPOSITE = {"inbound": "outbound", "outbound": "inbound", "internal": "internal"}

# The statements of every decision, built once with bound parameters: building one cost
# several times what running it did.
# Every decision reads them: plain SQL on the driver, prepared on PostgreSQL (a look-up of
# the unique (venue, scope)).
_POLICY_ROWS = driver.Rows(policies)
_COVERING = Sql(
    f"SELECT {_POLICY_ROWS.columns} FROM policies"  # noqa: S608 - no value in it
    f" WHERE venue_id = :venue_id AND scope IN ('{ledger.VENUE_SCOPE}', :agent_id)",
    prepared=True,
)
_IS_DUE = (
    authorizations.c.venue_id == bindparam("venue_id"),
    authorizations.c.status.in_(EXPIRING),
    authorizations.c.expires_at < bindparam("now"),
)
# Run on every write and read: plain SQL on the driver, prepared on PostgreSQL (each part
# is the first entry of the index on (venue, status, expires_at), whatever the data). The
# soonest expiry, not whether one is due: the answer does not depend on the time, so it can
# be read with the venue's lock, before the transaction's time is taken.
_SOONEST_OF_EACH = " UNION ALL ".join(
    "SELECT min(expires_at) AS expires_at FROM authorizations"  # noqa: S608 - the statuses are constants
    f" WHERE venue_id = :venue_id AND status = '{status}'"
    for status in EXPIRING
)
_NEXT_EXPIRY = Sql(f"SELECT min(expires_at) FROM ({_SOONEST_OF_EACH}) AS soonest", prepared=True)  # noqa: S608
_DUE = select(authorizations).where(*_IS_DUE).order_by(authorizations.c.expires_at, authorizations.c.id)
_VENUE = select(venues).where(venues.c.id == bindparam("venue_id"))
#: A write's stored answer under its Idempotency-Key: plain SQL on the driver, prepared on
#: PostgreSQL (a primary-key look-up).
STORED_ANSWER = Sql(
    "SELECT fingerprint, body FROM idempotency_keys WHERE venue_id = :venue_id AND key = :key", prepared=True
)
#: Every column of an authorization, unset: what a new row holds beyond the values written.
_UNSET = dict.fromkeys(authorizations.c.keys())


@dataclass
class ReadAhead:
    """What a write reads first, read with its venue's lock, in the same round trip on
    PostgreSQL (:meth:`statements`): none of it depends on the time, which is taken once
    the lock is held. The writes after the first of a batch read theirs as they start,
    with their savepoint: they may see what the ones before them changed."""

    #: The agent whose covering policies are read.
    agent_id: Optional[str] = None
    #: The Idempotency-Key whose stored answer is read.
    idempotency_key: Optional[str] = None
    policies: Optional[list[Policy]] = None
    #: The stored answer, read: ``(fingerprint, body)``, or None if the key is new.
    answer: Optional[tuple[str, str]] = None

    def statements(self, venue_id: str) -> list[tuple[Sql, dict[str, Any]]]:
        """The statements to send with the lock's; their cursors go to :meth:`found`."""
        statements: list[tuple[Sql, dict[str, Any]]] = []
        if self.agent_id is not None:
            statements.append((_COVERING, {"venue_id": venue_id, "agent_id": self.agent_id}))
        if self.idempotency_key is not None:
            statements.append((STORED_ANSWER, {"venue_id": venue_id, "key": self.idempotency_key}))
        return statements

    def found(self, conn: Connection, cursors: list[Any]) -> None:
        """Keep what the cursors of :meth:`statements` read."""
        found = iter(cursors)
        if self.agent_id is not None:
            self.policies = _policies(_POLICY_ROWS.all(conn, next(found)))
        if self.idempotency_key is not None:
            self.answer = next(found).fetchone()


@dataclass
class Tx:
    """One write transaction on one venue, at one instant.

    ``venue`` is the venue's row as read under its lock: its ``event_count`` is the first
    sequence number this transaction appends at.
    """

    #: The transaction's connection: use :attr:`conn`, which first sends the rows an
    #: append left waiting (:meth:`log`).
    connection: Connection
    venue: Any
    now: int
    appended: list[dict[str, Any]] = field(default_factory=list)
    #: Rows to write with the next event append (see :meth:`log`).
    writes: Writes = field(default_factory=Writes)
    #: What the transaction's first write reads first, read with the venue's lock; None after it.
    ahead: Optional[ReadAhead] = None
    #: Stored Merkle nodes read ahead of the next append (see :meth:`log`).
    siblings: Optional[dict[Node, bytes]] = None

    def __post_init__(self) -> None:
        self._first_sequence = int(self.venue.event_count)
        self._waiting = False

    @property
    def conn(self) -> Connection:
        """The connection, once the rows an append left waiting are sent: whatever runs on
        it sees them."""
        if self._waiting:
            self.send()
        return self.connection

    def send(self, *after: tuple[Sql, dict[str, Any]]) -> None:
        """Send the rows waiting in :attr:`writes` now, then ``after`` (on PostgreSQL, all
        in one round trip)."""
        self._waiting = False
        with ledger.capacity_guard():
            self.writes.flush(self.connection, self.venue_id, *after)

    @property
    def venue_id(self) -> str:
        return str(self.venue.id)

    @property
    def next_sequence(self) -> int:
        """The sequence number the next event appended takes."""
        return self._first_sequence + len(self.appended)

    def covering(self, agent_id: str) -> list[Policy]:
        """The policies covering ``agent_id``: as read with the lock, or read now."""
        if self.ahead is not None and self.ahead.agent_id == agent_id and self.ahead.policies is not None:
            return self.ahead.policies
        return covering_policies(self.conn, self.venue_id, agent_id)

    def log(self, *batch: NewEvent, last: bool = False) -> list[dict[str, Any]]:
        """Append ``batch`` to the venue's log, writing with it the rows waiting in
        :attr:`writes` (on PostgreSQL, all in one statement).

        ``last``: nothing the write does after reads the database, so the rows may wait to
        go with the ``COMMIT`` (one round trip fewer on PostgreSQL); anything that uses
        :attr:`conn` before sends them first.
        """
        if not batch:
            return []
        first = self.next_sequence
        siblings, self.siblings = self.siblings, None
        rows, nodes = events.prepare(self.conn, self.venue_id, self.now, first, batch, siblings)
        self.writes.insert(events_table, rows)
        self.writes.insert(log_nodes, nodes)
        self.writes.events += len(rows)
        if last:
            self._waiting = True
        else:
            self.send()
        self.appended.extend(rows)
        return rows

    def venue_changed(self) -> None:
        """Read the venue's row again after a write to it (its keys version, its webhooks),
        so that what follows in this transaction sees it (a batch's later writes do)."""
        self.venue = self.conn.execute(_VENUE, {"venue_id": self.venue_id}).one()


def covering_policies(conn: Connection, venue_id: str, agent_id: str) -> list[Policy]:
    """The venue-wide policy first, then the agent's, whichever exist."""
    return _policies(_POLICY_ROWS.all(conn, driver.run(conn, _COVERING, {"venue_id": venue_id, "agent_id": agent_id})))


def _policies(rows: list[Any]) -> list[Policy]:
    return sorted((Policy.from_row(row) for row in rows), key=lambda p: p.scope != "")


def decide(
    tx: Tx,
    *,
    agent_id: str,
    action: str,
    amount: int,
    currency: str,
    approval_check: bool = True,
    exclude: Optional[Any] = None,
    held_amounts: Optional[dict[tuple[str, int], int]] = None,
) -> Decision:
    """Run the policy engine with the windows counted as of ``tx.now``.

    ``exclude`` is an authorization whose own hold must not count against itself
    (an owner approving a pending request). ``held_amounts`` are the windows' amounts,
    if already read (:func:`windows_asked`).
    """
    if currency != tx.venue.currency:
        return Decision(
            "denied",
            "currency_mismatch",
            f"This venue spends in {tx.venue.currency}; the request was in {currency}",
        )

    covering = tx.covering(agent_id)
    read: dict[tuple[str, int], int] = dict(held_amounts or {})

    def held(policy: Policy, window: int) -> int:
        if not read:
            # Every window the evaluation may ask, in one statement, when it first asks.
            asked = windows_asked(covering)
            amounts = ledger.held_in(tx.conn, tx.venue_id, [(scope, tx.now - span) for scope, span in asked])
            read.update(zip(asked, amounts))
        start = tx.now - window
        amount_held = read[policy.scope, window]
        if exclude is not None and exclude.created_at >= start and policy.scope in ("", exclude.agent_id):
            amount_held -= exclude.hold
        return amount_held

    return evaluate(
        covering,
        action=action,
        amount=amount,
        currency=currency,
        held=held,
        approval_check=approval_check,
    )


def windows_asked(covering: list[Policy]) -> list[tuple[str, int]]:
    """Every (scope, window) whose held amount the evaluation of ``covering`` may ask."""
    return [(limited.scope, span) for limited, span in windows_limited(covering)]


def load(tx: Tx, authorization_id: str) -> Any:
    return find(tx.conn, tx.venue_id, authorization_id)


def find(conn: Connection, venue_id: str, authorization_id: str) -> Any:
    """The venue's authorization of that id; :class:`NotFound` when the venue has none
    (another venue's is not found either)."""
    row = conn.execute(
        select(authorizations).where(authorizations.c.id == authorization_id, authorizations.c.venue_id == venue_id)
    ).first()
    if row is None:
        raise NotFound(f"Authorization '{authorization_id}' not found", code="authorization_not_found")
    return row


def transition(
    tx: Tx,
    row: Any,
    status: str,
    actor: str,
    *,
    hold: Optional[int] = None,
    committed_context: Optional[dict[str, Any]] = None,
    **values: Any,
) -> Any:
    """Move ``row`` to ``status``, adjust its hold and log the transition; returns the new row.

    ``committed_context`` is a context the transition brings in (execute's merged one,
    settle's new one): its entry commits to it (:func:`transition_event`).
    """
    new_hold = row.hold if hold is None else hold
    _change_hold(tx, row.agent_id, row.created_at, new_hold - row.hold)
    tx.conn.execute(
        update(authorizations).where(authorizations.c.id == row.id).values(status=status, hold=new_hold, **values)
    )
    updated = tx.conn.execute(select(authorizations).where(authorizations.c.id == row.id)).one()
    tx.log(transition_event(updated, actor, committed_context))
    return updated


def transition_event(row: Any, actor: str, committed_context: Optional[dict[str, Any]] = None) -> NewEvent:
    """The log entry of ``row``'s new status.

    With ``committed_context``, its details carry that context's digest, salted with the
    entry's own salt as an event's context is: the log then shows that the context
    changed, and commits to what it became, without showing it.
    """
    details: dict[str, Any] = {"status": row.status}
    salt = events.new_salt()
    if committed_context is not None:
        details["context_digest"] = events.context_digest(committed_context, salt)
    if row.denial_code is not None:
        details["denial_code"] = row.denial_code
    if row.status in EXPIRING:
        details["expires_at"] = iso(row.expires_at)
    # Only the decision itself has a reason; later transitions would repeat a stale one.
    reasons = {"denied": row.denial_reason, "pending": row.message}
    return NewEvent(
        id=new_id("evt"),
        agent_id=row.agent_id,
        action=f"authorization.{row.status}",
        actor=actor,
        amount=row.actual_amount if row.actual_amount is not None else row.amount,
        currency=row.currency,
        direction="internal",
        context=details,
        context_salt=salt,
        reason=reasons.get(row.status),
        authorization_id=row.id,
    )


def require_status(row: Any, operation: str) -> None:
    """Refuse (409 ``invalid_transition``) an operation the table does not allow from ``row``'s status."""
    allowed = TRANSITIONS[operation].sources
    if row.status not in allowed:
        raise Conflict(
            f"Cannot {operation} an authorization that is {row.status} (only one that is {' or '.join(allowed)})",
            code="invalid_transition",
            current_status=row.status,
        )


def claimed(row: Any, now: int) -> bool:
    """Whether ``row`` is approved and held by a claim whose lease has not ended."""
    return row.status == "approved" and row.claimed_until is not None and now <= row.claimed_until


def honour_claim(tx: Tx, row: Any, token: Optional[str], *, owner_override: bool = False) -> None:
    """Let only the claim's holder act on a claimed authorization.

    The matching token always passes. Without one, an unclaimed authorization passes as it
    always did (a client that never claims keeps working), and ``owner_override`` (an
    admin releasing a claimed one) passes too.
    """
    if token is not None and row.claim_digest == digest(token):
        return
    if claimed(row, tx.now) and not (owner_override and token is None):
        raise Conflict(
            f"Authorization {row.id} is claimed by another caller until {iso(row.claimed_until)}",
            code="claimed_by_another",
            current_status=row.status,
            claimed_until=iso(row.claimed_until),
        )
    if token is not None:
        raise Conflict(
            f"This claim token does not belong to authorization {row.id}; claim it first",
            code="claim_mismatch",
            current_status=row.status,
        )


def create(
    tx: Tx,
    *,
    agent_id: str,
    action: str,
    amount: int,
    currency: str,
    context: Optional[dict[str, Any]],
    reason: Optional[str],
    actor: str,
    execute_window: int,
    approval_window: int,
) -> Any:
    """Decide a new request and record it, with its hold, in one step.

    What the decision reads after the policies (the windows' amounts) and what its event's
    append reads (the Merkle siblings it merges with) go together: one round trip on
    PostgreSQL. Its hold and every row it writes then go in one more.
    """
    asked = windows_asked(tx.covering(agent_id)) if currency == tx.venue.currency else []
    reads = []
    if asked:
        reads.append(ledger.held_read(tx.conn, tx.venue_id, [(scope, tx.now - span) for scope, span in asked]))
    siblings = log.nodes_read(tx.conn, tx.venue_id, log.stored_siblings(tx.next_sequence, 1))
    if siblings is not None:
        reads.append(siblings)
    cursors = driver.together(tx.conn, reads)
    held_amounts = dict(zip(asked, ledger.held_amounts(cursors[0], len(asked)))) if asked else None
    if siblings is not None:
        tx.siblings = log.nodes_found(cursors[-1])
    verdict = decide(tx, agent_id=agent_id, action=action, amount=amount, currency=currency, held_amounts=held_amounts)
    windows = {"approved": execute_window, "pending": approval_window}
    authorization_id = new_id("auth")
    hold = amount if verdict.status in windows else 0
    row: dict[str, Any] = {
        "id": authorization_id,
        "venue_id": tx.venue_id,
        "agent_id": agent_id,
        "action": action,
        "currency": currency,
        "amount": amount,
        "hold": hold,
        "status": verdict.status,
        "context": context,
        "reason": reason,
        "denial_code": verdict.denial_code,
        "denial_reason": verdict.denial_reason,
        "message": verdict.message,
        "created_at": tx.now,
        "expires_at": tx.now + windows[verdict.status] if verdict.status in windows else None,
        "approved_at": tx.now if verdict.status == "approved" else None,
        "denied_at": tx.now if verdict.status == "denied" else None,
        "requested_by": actor,
        "decided_by": "policy" if verdict.status != "pending" else None,
    }
    _change_hold(tx, agent_id, tx.now, hold)
    # Written with its event, in one statement on PostgreSQL.
    tx.writes.insert(authorizations, [row])
    # The row as stored, without reading back what was just written.
    stored = Values({**_UNSET, **row})
    tx.log(transition_event(stored, actor), last=True)
    return stored


def approve(tx: Tx, row: Any, actor: str, note: Optional[str], execute_window: int) -> Any:
    require_status(row, "approve")
    verdict = decide(
        tx,
        agent_id=row.agent_id,
        action=row.action,
        amount=row.amount,
        currency=row.currency,
        approval_check=False,
        exclude=row,
    )
    if verdict.status == "denied":
        raise Conflict(
            f"The current policy no longer allows this authorization: {verdict.denial_reason}."
            " It stays pending; change the policy or deny it.",
            code=verdict.denial_code or "policy_violation",
            current_status=row.status,
        )
    return transition(
        tx,
        row,
        "approved",
        actor,
        approved_at=tx.now,
        expires_at=tx.now + execute_window,
        decided_by=actor,
        note=note,
    )


def deny(tx: Tx, row: Any, actor: str, reason: Optional[str]) -> Any:
    require_status(row, "deny")
    return transition(
        tx,
        row,
        "denied",
        actor,
        hold=0,
        denied_at=tx.now,
        decided_by=actor,
        denial_code="denied_by_owner",
        denial_reason=reason or "Denied by the owner",
    )


def claim(tx: Tx, row: Any, actor: str, lease_seconds: Optional[int]) -> tuple[Any, str]:
    """Make ``actor`` the one holder of an approved authorization; returns the row and the token.

    The lease ends at ``lease_seconds`` from now, never after the execute window; without
    one it is the whole window, so nobody else runs it while it may still be executed.
    """
    if row.status in SPENT_STATUSES:
        raise Conflict(
            f"Authorization {row.id} is already {row.status}; its call ran once and does not run again",
            code="already_executed",
            current_status=row.status,
        )
    require_status(row, "claim")
    if claimed(row, tx.now):
        raise Conflict(
            f"Authorization {row.id} is already claimed until {iso(row.claimed_until)}; its call runs once",
            code="already_claimed",
            current_status=row.status,
            claimed_until=iso(row.claimed_until),
        )
    until = row.expires_at if lease_seconds is None else min(tx.now + lease_seconds * SECOND, row.expires_at)
    updated, token = _hold_claim(tx, row, claimed_by=actor, claimed_until=until)
    event = transition_event(updated, actor)
    # The token never enters the log: the entry names the holder and the lease's end.
    tx.log(
        dataclasses.replace(
            event, action="authorization.claimed", context={**(event.context or {}), "claimed_until": iso(until)}
        )
    )
    return updated, token


def renew_claim(tx: Tx, row: Any) -> tuple[Any, str]:
    """A new token for the claim ``row`` holds, the old one void: for a holder whose answer was lost."""
    return _hold_claim(tx, row)


def _hold_claim(tx: Tx, row: Any, **claim: Any) -> tuple[Any, str]:
    token = new_id("clm")
    tx.conn.execute(
        update(authorizations).where(authorizations.c.id == row.id).values(claim_digest=digest(token), **claim)
    )
    return tx.conn.execute(select(authorizations).where(authorizations.c.id == row.id)).one(), token


def execute(
    tx: Tx,
    row: Any,
    actor: str,
    actual: Optional[int],
    context: Optional[dict[str, Any]],
    claim_token: Optional[str] = None,
) -> Any:
    require_status(row, "execute")
    honour_claim(tx, row, claim_token)
    spent = row.amount if actual is None else actual
    if spent > row.amount:
        raise Conflict(
            "The actual amount is above the authorized amount; request a new authorization",
            code="amount_exceeds_authorization",
            current_status=row.status,
        )
    merged = inputs.merged_context(row.context, context)
    event_id = new_id("evt")
    updated = transition(
        tx,
        row,
        "executed",
        actor,
        hold=spent,
        committed_context=merged,
        actual_amount=spent,
        executed_at=tx.now,
        event_id=event_id,
    )
    tx.log(
        NewEvent(
            id=event_id,
            agent_id=row.agent_id,
            action=row.action,
            actor=actor,
            amount=spent,
            currency=row.currency,
            direction=DEFAULT_DIRECTIONS.get(row.action, "outbound"),
            context=merged,
            reason=row.reason,
            authorization_id=row.id,
        )
    )
    return updated


def settle(tx: Tx, row: Any, actor: str, context: Optional[dict[str, Any]]) -> Any:
    require_status(row, "settle")
    if context:
        merged = inputs.merged_context(row.context, context)
        return transition(tx, row, "settled", actor, committed_context=merged, settled_at=tx.now, context=merged)
    return transition(tx, row, "settled", actor, settled_at=tx.now)


def reverse(tx: Tx, row: Any, actor: str, claim_token: Optional[str] = None, *, owner: bool = False) -> Any:
    """Cancel ``row``; ``owner`` (an admin key) may release a claimed one without its token."""
    require_status(row, "reverse")
    honour_claim(tx, row, claim_token, owner_override=owner)
    reversal_id = new_id("evt") if row.status == "executed" else None
    updated = transition(
        tx,
        row,
        "reversed",
        actor,
        hold=0,
        reversed_at=tx.now,
        reversal_event_id=reversal_id,
    )
    if reversal_id is not None:
        direction = DEFAULT_DIRECTIONS.get(row.action, "outbound")
        tx.log(
            NewEvent(
                id=reversal_id,
                agent_id=row.agent_id,
                action="reversal",
                actor=actor,
                amount=row.actual_amount,
                currency=row.currency,
                direction=OPPOSITE[direction],
                context={"reverses_event_id": row.event_id, "reverses_action": row.action},
                authorization_id=row.id,
            )
        )
    return updated


def _change_hold(tx: Tx, agent_id: str, created_at: int, delta: int) -> None:
    """Queue the hold's change, sent with the next append's rows (its refusal raises then)."""
    change = ledger.hold_change(tx.venue_id, agent_id, created_at, delta)
    if change is not None:
        tx.writes.first(change)


def next_expiry(venue_id: str) -> tuple[Sql, dict[str, Any]]:
    """The statement reading the soonest ``expires_at`` of the venue's expiring
    authorizations (one row, None if there is none): to send with the lock's."""
    return _NEXT_EXPIRY, {"venue_id": venue_id}


def any_due(conn: Connection, venue_id: str, now: int) -> bool:
    """Whether an authorization of the venue waits to expire at ``now``.

    Every read asks first (a write reads the soonest expiry with its lock); the answer is
    nearly always no, and one value, the soonest expiry, gives it for less than rows would.
    """
    soonest = driver.first(conn, *next_expiry(venue_id))
    return soonest is not None and soonest[0] is not None and soonest[0] < now


def expire_due(tx: Tx, soonest: Optional[int]) -> int:
    """Expire the venue's authorizations whose window has passed; returns how many.

    ``soonest`` is the soonest expiry, as read with the lock (:func:`next_expiry`).
    """
    if soonest is None or soonest >= tx.now:
        return 0
    due = tx.conn.execute(_DUE, {"venue_id": tx.venue_id, "now": tx.now}).all()
    for row in due:
        transition(tx, row, "expired", SYSTEM, hold=0, expired_at=row.expires_at)
    return len(due)
