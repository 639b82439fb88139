"""The public side of the audit log: checkpoints, proofs, exports and audits of a venue.

Nothing here needs a key. A proof document (``GET /v1/verify/{venue}/{event}``) carries
the event, its canonical entry, the inclusion proof against a signed checkpoint and the
same as a ``.tlog-proof``; when no checkpoint covers the event yet, one is signed on the
spot, so every answer can be verified offline at once.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Optional

from sqlalchemy import Connection, select

from agenitry.gateway._clock import Clock, iso
from agenitry.gateway.errors import NotFound
from agenitry.gateway.service import checkpoints, log
from agenitry.gateway.service.checkpoints import Checkpointer, StoredCheckpoint
from agenitry.gateway.service.events import entry
from agenitry.gateway.service.lifecycle import Tx
from agenitry.gateway.store.database import Database
from agenitry.gateway.store.schema import events, venues
from agenitry.transparency import (
    EXPORT_FORMAT,
    Finding,
    LogReport,
    TlogProof,
    TrustedKey,
    VerificationResult,
    b64encode,
    canonical_json,
    verify_event,
    verify_log,
)

#: Context keys never shown on public pages (matched anywhere in a key, any case, at any depth).
DEFAULT_REDACTED = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "credential",
    "private_key",
    "card",
    "cvv",
    "cvc",
    "iban",
    "ssn",
    "email",
    "phone",
)
_CHUNK = 1_000


def redact(value: Any, keys: Sequence[str]) -> Any:
    """``value`` without the object keys that contain one of ``keys`` (case-insensitive).

    >>> redact({"table": 7, "guest_email": "a@b.c", "items": [{"card_last4": "4242"}]}, ["email", "card"])
    {'table': 7, 'items': [{}]}
    """
    lowered = [key.lower() for key in keys]
    if isinstance(value, dict):
        return {
            name: redact(item, keys)
            for name, item in value.items()
            if not any(key in str(name).lower() for key in lowered)
        }
    if isinstance(value, list):
        return [redact(item, keys) for item in value]
    return value


def redacted_keys(venue: Any) -> list[str]:
    """The venue's own redacted keys, then the defaults."""
    return [*(venue.redacted_keys or []), *DEFAULT_REDACTED]


class AuditTrail:
    """Checkpoints, proofs and exports of every venue's log (what needs no key)."""

    def __init__(
        self,
        db: Database,
        checkpointer: Checkpointer,
        venue_tx: Callable[[str], AbstractContextManager[Tx]],
        clock: Clock,
    ) -> None:
        self.db = db
        self.checkpointer = checkpointer
        self._venue_tx = venue_tx
        self.clock = clock

    def _venue(self, conn: Connection, venue_id: str) -> Any:
        row = conn.execute(select(venues).where(venues.c.id == venue_id)).first()
        if row is None:
            raise NotFound("No such log", code="log_not_found")
        return row

    def sign(self, venue_id: str) -> StoredCheckpoint:
        """Sign a checkpoint of the venue's tree now (kept if the newest already covers it)."""
        with self._venue_tx(venue_id) as tx:
            return self.checkpointer.sign(tx.conn, venue_id, tx.now)

    def checkpoint(self, venue_id: str) -> dict[str, Any]:
        """The venue's newest checkpoint (its first is signed on demand)."""
        with self.db.read() as conn:
            self._venue(conn, venue_id)
            newest = checkpoints.latest(conn, venue_id)
        return (newest or self.sign(venue_id)).wire()

    def consistency(self, venue_id: str, first: int, second: int) -> dict[str, Any]:
        """The proof that the tree of ``first`` entries is a prefix of the tree of ``second``."""
        with self.db.read() as conn:
            size = int(self._venue(conn, venue_id).event_count)
            hashes = log.consistency_proof(conn, venue_id, first, second, size=size)
            first_root, second_root = log.root(conn, venue_id, first), log.root(conn, venue_id, second)
        return {
            "venue_id": venue_id,
            "first": first,
            "second": second,
            "first_root": b64encode(first_root),
            "second_root": b64encode(second_root),
            "hashes": [b64encode(digest) for digest in hashes],
        }

    def public_keys(self) -> dict[str, Any]:
        """The key that signs now, and every key that ever signed (rotation keeps them valid)."""
        current = self.checkpointer.key.public_key_b64
        with self.db.read() as conn:
            known = checkpoints.public_keys(conn)
        if current not in {key["public_key"] for key in known}:
            known.append({"public_key": current, "created_at": None})
        return {
            "algorithm": "Ed25519",
            "public_key": current,
            "keys": [{**key, "current": key["public_key"] == current} for key in known],
        }

    def proof(self, event: dict[str, Any]) -> dict[str, Any]:
        """The proof parts of an event's verify document, against a checkpoint covering it."""
        venue_id, index = event["venue_id"], event["sequence"]
        with self.db.read() as conn:
            covering = checkpoints.latest(conn, venue_id)
        if covering is None or covering.size <= index:
            with self._venue_tx(venue_id) as tx:
                covering = self.checkpointer.covering(tx.conn, venue_id, index, tx.now)
        with self.db.read() as conn:
            hashes = log.inclusion_proof(conn, venue_id, index, covering.size)
        tlog = TlogProof(index, tuple(hashes), covering.note, extra=canonical_json(event["entry"]))
        return {
            "index": index,
            "proof": {
                "log_origin": covering.origin,
                "index": index,
                "tree_size": covering.size,
                "root_hash": b64encode(covering.root),
                "hashes": [b64encode(digest) for digest in hashes],
            },
            "checkpoint": covering.note,
            "checkpoint_signed_at": iso(covering.signed_at),
            "tlog_proof": tlog.text(),
            "public_key": covering.public_key,
        }

    def document(self, event: dict[str, Any]) -> dict[str, Any]:
        """The verify document of a public event (``Gateway.public_event``): the event, its
        entry and leaf hash, the proof, and whether the gateway's own check of it passed
        (with the core's offline verifier, as anyone else would check it)."""
        shown = {key: value for key, value in event.items() if key != "entry"}
        document = {"event": shown, "entry": event["entry"], "leaf_hash": event["leaf_hash"], **self.proof(event)}
        result: VerificationResult = verify_event(document, document["public_key"])
        document["verified"] = result.ok
        document["problems"] = list(result.problems)
        return document

    # -- whole venues: exports and audits ------------------------------------------------------

    def export(self, venue_id: str) -> Iterator[dict[str, Any]]:
        """A venue's log as JSON lines: a header, each entry with its tree leaf, each checkpoint.

        Read in one transaction, so the lines are one consistent state of the log.
        """
        with self.db.read() as conn:
            venue = self._venue(conn, venue_id)
            signed = checkpoints.every_checkpoint(conn, venue_id)
            tree = log.leaves(conn, venue_id)
            yield {
                "format": EXPORT_FORMAT,
                "venue_id": venue_id,
                "origin": venue.log_origin,
                "size": len(tree),
                "exported_at": iso(self.clock()),
                "public_keys": [key["public_key"] for key in checkpoints.public_keys(conn)],
            }
            for row in _rows(conn, venue_id):
                leaf = tree[row.sequence] if row.sequence < len(tree) else None
                yield {"entry": entry(row), "leaf_hash": leaf.hex() if leaf is not None else None}
            for checkpoint in signed:
                yield {"checkpoint": checkpoint.note}

    def audit(self, venue_id: str, keys: Optional[Sequence[TrustedKey]] = None) -> LogReport:
        """Verify a venue's log straight from the database (``agenitry verify --db``).

        Without ``keys`` the keys listed in the database are trusted, which an attacker
        holding the database could have added to: the report says so.
        """
        with self.db.read() as conn:
            venue = self._venue(conn, venue_id)
            tree = log.leaves(conn, venue_id)
            notes = [checkpoint.note for checkpoint in checkpoints.every_checkpoint(conn, venue_id)]
            listed = [TrustedKey.parse(key["public_key"]) for key in checkpoints.public_keys(conn)]
            trusted = list(keys) if keys else listed or [TrustedKey(self.checkpointer.key.public_key)]
            # Streamed in one pass: the entries, and in step the leaf hash each row claims.
            for_entries, for_claims = itertools.tee(_rows(conn, venue_id))
            report = verify_log(
                venue_id,
                (entry(row) for row in for_entries),
                notes,
                trusted,
                tree_leaves=tree,
                stored_leaves=(bytes.fromhex(row.leaf_hash) for row in for_claims),
                origin=venue.log_origin,
            )
            complete = [leaf for leaf in tree if leaf is not None]
            wrong = log.first_wrong_node(conn, venue_id, complete) if len(complete) == len(tree) else None
        extra_notes = [] if keys else ["Trusted the public keys listed in the database itself: pass --public-key."]
        extra = []
        if wrong is not None:
            level, index = wrong
            first, last = index << level, ((index + 1) << level) - 1
            extra.append(
                Finding(
                    "tree", None, f"The stored tree node over entries #{first} to #{last} is wrong: proofs would fail"
                )
            )
        return dataclasses.replace(
            report, findings=report.findings + tuple(extra), notes=report.notes + tuple(extra_notes)
        )


def _rows(conn: Connection, venue_id: str) -> Iterator[Any]:
    after = -1
    while True:
        chunk = conn.execute(
            select(events)
            .where(events.c.venue_id == venue_id, events.c.sequence > after)
            .order_by(events.c.sequence)
            .limit(_CHUNK)
        ).all()
        yield from chunk
        if len(chunk) < _CHUNK:
            return
        after = chunk[-1].sequence
