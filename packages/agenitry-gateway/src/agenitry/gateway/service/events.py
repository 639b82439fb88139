"""The append-only event log: sequence numbers, canonical entries and their leaf hashes."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import Connection, and_, case, exists, func, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from agenitry import canonical_json, leaf_hash
from agenitry.gateway._clock import iso
from agenitry.gateway._ids import new_id
from agenitry.gateway._money import decimal_string
from agenitry.gateway.errors import Unprocessable
from agenitry.gateway.service import log
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.records import Values
from agenitry.gateway.store.schema import events
from agenitry.transparency import Node

#: Bumped only with a migration that keeps old entries verifiable.
ENTRY_VERSION = 1
#: The agent id of an owner's entry that concerns no one agent (a venue-wide policy, say).
ALL_AGENTS = "*"


@dataclass(frozen=True)
class NewEvent:
    """An event to append; ``amount`` is in minor units of ``currency``."""

    id: str
    agent_id: str
    action: str
    actor: str
    amount: Optional[int] = None
    currency: Optional[str] = None
    direction: Optional[str] = None
    context: Optional[dict[str, Any]] = None
    reason: Optional[str] = None
    authorization_id: Optional[str] = None
    #: The salt of the context digest; a fresh one when not given.
    context_salt: Optional[str] = None
    #: When the client logged it (ms), if it said; events the gateway writes have none.
    occurred_at: Optional[int] = None

    def same_as(self, row: Any) -> bool:
        """True when a stored event says exactly what this one says (a re-send)."""
        return bool(
            row.agent_id == self.agent_id
            and row.action == self.action
            and row.amount == self.amount
            and row.currency == self.currency
            and row.direction == self.direction
            and row.context == self.context
            and row.reason == self.reason
            and row.occurred_at == self.occurred_at
        )


def admin_event(action: str, principal: Principal, agent_id: Optional[str], details: dict[str, Any]) -> NewEvent:
    """The log entry of an owner's act (``key.created``, ``policy.updated``, ``webhook.added``...)."""
    return NewEvent(
        id=new_id("evt"),
        agent_id=agent_id or ALL_AGENTS,
        action=action,
        actor=principal.key_id,
        direction="internal",
        context=details,
    )


def new_salt() -> str:
    """Random bytes (hex) for a context digest, so that a small context cannot be guessed from it."""
    return secrets.token_hex(16)


def context_digest(context: Optional[dict[str, Any]], salt: Optional[str]) -> Optional[str]:
    """SHA-256 of the salt and the canonical context, hex (None without a context)."""
    if context is None or salt is None:
        return None
    return hashlib.sha256(bytes.fromhex(salt) + canonical_json(context)).hexdigest()


def entry(row: Any) -> dict[str, Any]:
    """The canonical entry of a stored event: what its leaf hash commits to.

    The context itself is not in the entry, only a salted digest of it, so an event can
    be proven to anyone without showing its context. ``occurred_at`` is there only when
    the event has one, so entries written before it existed hash as they always did.
    """
    fields = {
        "v": ENTRY_VERSION,
        "id": row.id,
        "venue_id": row.venue_id,
        "sequence": row.sequence,
        "created_at": iso(row.created_at),
        "agent_id": row.agent_id,
        "action": row.action,
        "amount": decimal_string(row.amount, row.currency) if row.amount is not None else None,
        "currency": row.currency,
        "direction": row.direction,
        "reason": row.reason,
        "authorization_id": row.authorization_id,
        "actor": row.actor,
        "context_digest": context_digest(row.context, row.context_salt),
    }
    if row.occurred_at is not None:
        fields["occurred_at"] = iso(row.occurred_at)
    return fields


def prepare(
    conn: Connection,
    venue_id: str,
    now: int,
    first: int,
    batch: Sequence[NewEvent],
    siblings: Optional[Mapping[Node, bytes]] = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of ``batch`` appended in order at sequence ``first`` on, and the Merkle
    nodes they complete (reading the stored siblings they merge with, unless ``siblings``
    holds them): what an append writes. The caller holds the venue's lock, and writes both
    in its transaction."""
    rows: list[dict[str, Any]] = []
    for offset, new in enumerate(batch):
        row = {
            "venue_id": venue_id,
            "sequence": first + offset,
            "id": new.id,
            "agent_id": new.agent_id,
            "action": new.action,
            "amount": new.amount,
            "currency": new.currency if new.amount is not None else None,
            "direction": new.direction,
            "context": new.context,
            "context_salt": (new.context_salt or new_salt()) if new.context is not None else None,
            "reason": new.reason,
            "authorization_id": new.authorization_id,
            "actor": new.actor,
            "created_at": now,
            "occurred_at": new.occurred_at,
        }
        row["leaf_hash"] = leaf_hash(canonical_json(entry(Values(row)))).hex()
        rows.append(row)
    # The Merkle tree grows in the same transaction: no event is ever outside the log.
    nodes = log.new_nodes(conn, venue_id, first, [bytes.fromhex(row["leaf_hash"]) for row in rows], siblings)
    return rows, nodes


def find(conn: Connection, venue_id: str, ids: Sequence[str]) -> dict[str, Any]:
    if not ids:
        return {}
    query = select(events).where(events.c.venue_id == venue_id, events.c.id.in_(list(ids)))
    return {row.id: row for row in conn.execute(query)}


def context_filter(conn: Connection, wanted: dict[str, Any]) -> ColumnElement[bool]:
    """Events whose context contains ``wanted`` (JSONB ``@>`` semantics)."""
    if conn.dialect.name == "postgresql":
        # The column is JSONB there; saying so gives SQLAlchemy the @> operator it lacks on JSON.
        return type_coerce(events.c.context, JSONB()).contains(wanted)
    context = events.c.context
    return and_(*_sqlite_containment(wanted, context, func.json_type(context)))


def _sqlite_containment(wanted: Any, value: Any, json_type: Any) -> list[ColumnElement[bool]]:
    # SQLite has no containment operator: an object is matched key by key, an array
    # element by element, a scalar by type and value. Keys are compared as values, taken
    # from json_each, never written into a JSON path: SQLite's paths cannot quote every
    # key (one with a '"' in it), and compare a key as the stored text has it escaped.
    # json_each reads a value only of the type wanted: a text is no JSON to parse.
    if isinstance(wanted, dict):
        clauses: list[ColumnElement[bool]] = [json_type == "object"]
        for key, item in wanted.items():
            member = func.json_each(case((json_type == "object", value))).table_valued("key", "value", "type")
            match = and_(member.c.key == key, *_sqlite_containment(item, member.c.value, member.c.type))
            clauses.append(exists(select(1).select_from(member).where(match)))
        return clauses
    if isinstance(wanted, list):
        clauses = [json_type == "array"]
        for item in wanted:
            if isinstance(item, (dict, list)):
                raise Unprocessable(
                    "On SQLite a context filter can match arrays of plain values only",
                    code="invalid_context_filter",
                )
            element = func.json_each(case((json_type == "array", value))).table_valued("value", "type")
            match = and_(element.c.type.in_(_json_types(item)), element.c.value == _sqlite_scalar(item))
            clauses.append(exists(select(1).select_from(element).where(match)))
        return clauses
    clause = json_type.in_(_json_types(wanted))
    if wanted is None or isinstance(wanted, bool):
        return [clause]
    return [and_(clause, value == _sqlite_scalar(wanted))]


def _sqlite_scalar(value: Any) -> Any:
    # SQLite integers are 64-bit and it reads larger JSON integers as REAL; so must we.
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        return float(value)
    return value


def _json_types(value: Any) -> tuple[str, ...]:
    """The names SQLite's json_type gives to values equal to ``value``."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("true",) if value else ("false",)
    if isinstance(value, (int, float)):
        return ("integer", "real")
    return ("text",)
