"""Signed checkpoints: the gateway's signed statement of each venue's tree size and root.

A checkpoint is a C2SP signed note (c2sp.org/tlog-checkpoint):

    verify.example/agenitry/nobo-downtown      origin: the venue's log
    40                                          tree size
    hSLQ9GTl...=                                base64 root hash
                                                blank line
    — verify.example/agenitry/nobo-downtown AbCd...   key name = origin, base64(key id || signature)

A venue gets one when its log crosses a multiple of ``every`` entries (in the appending
transaction), when the sweep finds its newest one ``interval`` old while entries wait,
and on demand when a proof is asked for an entry no checkpoint covers yet. Every
checkpoint is kept. All signing happens under the venue's lock, so a venue's checkpoints
are numbered in order and each extends the one before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from agenitry.gateway._clock import iso
from agenitry.gateway.service import log
from agenitry.gateway.service.signing import SigningKey
from agenitry.gateway.store.schema import checkpoints, log_keys, venues
from agenitry.transparency import Checkpoint, NoteSignature, b64decode, b64encode, format_note, key_id, verifier_key


def origin_prefix(public_url: str) -> str:
    """The default start of every log origin: the public address's host, then ``/agenitry``.

    >>> origin_prefix("https://verify.example")
    'verify.example/agenitry'
    """
    host = urlsplit(public_url).netloc or "localhost"
    return f"{host}/agenitry"


@dataclass(frozen=True)
class StoredCheckpoint:
    venue_id: str
    number: int
    size: int
    root: bytes
    public_key: str
    signed_at: int
    note: str

    @classmethod
    def of(cls, row: Any) -> StoredCheckpoint:
        return cls(row.venue_id, row.number, row.size, bytes(row.root_hash), row.public_key, row.signed_at, row.note)

    @property
    def origin(self) -> str:
        return self.note.split("\n", 1)[0]

    def wire(self) -> dict[str, Any]:
        """The checkpoint as the API shows it."""
        return {
            "venue_id": self.venue_id,
            "number": self.number,
            "origin": self.origin,
            "size": self.size,
            "root_hash": b64encode(self.root),
            "signed_at": iso(self.signed_at),
            "public_key": self.public_key,
            "verifier_key": verifier_key(self.origin, b64decode(self.public_key, size=32)),
            "checkpoint": self.note,
        }


def latest(conn: Connection, venue_id: str) -> Optional[StoredCheckpoint]:
    row = conn.execute(
        select(checkpoints).where(checkpoints.c.venue_id == venue_id).order_by(checkpoints.c.number.desc()).limit(1)
    ).first()
    return StoredCheckpoint.of(row) if row is not None else None


def every_checkpoint(conn: Connection, venue_id: str) -> list[StoredCheckpoint]:
    rows = conn.execute(select(checkpoints).where(checkpoints.c.venue_id == venue_id).order_by(checkpoints.c.number))
    return [StoredCheckpoint.of(row) for row in rows]


class Checkpointer:
    """Signs and stores checkpoints with one key, by the gateway's rules."""

    def __init__(self, key: SigningKey, *, prefix: str, every: int = 1000, interval_ms: int = 60_000) -> None:
        self.key = key
        self.prefix = prefix.rstrip("/")
        self.every = every
        self.interval_ms = interval_ms

    def origin(self, venue: Any) -> str:
        """A venue's log origin; the first checkpoint fixes it, so a new public URL changes nothing."""
        return str(venue.log_origin or f"{self.prefix}/{venue.id}")

    def sign(self, conn: Connection, venue_id: str, now: int) -> StoredCheckpoint:
        """Sign the venue's tree as it is now (the caller holds the venue's lock).

        A venue whose newest checkpoint already covers its whole tree, under this key, keeps it.
        """
        venue = conn.execute(select(venues).where(venues.c.id == venue_id)).one()
        size = int(venue.event_count)
        newest = latest(conn, venue_id)
        if newest is not None and newest.size == size and newest.public_key == self.key.public_key_b64:
            return newest
        origin = self.origin(venue)
        body = Checkpoint(origin, size, log.root(conn, venue_id, size)).body()
        signature = NoteSignature(origin, key_id(origin, self.key.public_key), self.key.sign(body.encode("utf-8")))
        stored = StoredCheckpoint(
            venue_id=venue_id,
            number=newest.number + 1 if newest is not None else 0,
            size=size,
            root=Checkpoint.parse(body).root,
            public_key=self.key.public_key_b64,
            signed_at=now,
            note=format_note(body, [signature]),
        )
        self._register_key(conn, now)
        conn.execute(
            checkpoints.insert().values(
                venue_id=venue_id,
                number=stored.number,
                size=size,
                root_hash=stored.root,
                public_key=stored.public_key,
                signed_at=now,
                note=stored.note,
            )
        )
        conn.execute(
            update(venues)
            .where(venues.c.id == venue_id)
            .values(checkpoint_size=size, checkpointed_at=now, log_origin=origin)
        )
        return stored

    def signs_after(self, before: int, after: int) -> bool:
        """Whether an append that took the log from ``before`` to ``after`` entries crossed a
        multiple of ``every``: then the writing transaction signs a checkpoint."""
        return bool(self.every) and after // self.every > before // self.every

    def covering(self, conn: Connection, venue_id: str, index: int, now: int) -> StoredCheckpoint:
        """The newest checkpoint, signed afresh if it does not yet cover entry ``index``."""
        newest = latest(conn, venue_id)
        if newest is not None and newest.size > index:
            return newest
        return self.sign(conn, venue_id, now)

    def due(self, conn: Connection, now: int, *, venue_id: Optional[str] = None) -> list[str]:
        """Venues (or just ``venue_id``) whose entries have waited ``interval`` or longer for a checkpoint."""
        if not self.interval_ms:
            return []
        v = venues.c
        query = select(v.id).where(
            v.event_count > v.checkpoint_size,
            (v.checkpointed_at.is_(None)) | (v.checkpointed_at <= now - self.interval_ms),
        )
        if venue_id is not None:
            query = query.where(v.id == venue_id)
        return [str(found) for found in conn.execute(query).scalars()]

    def _register_key(self, conn: Connection, now: int) -> None:
        # In the signing transaction, every time: a flag could outlive a rolled-back one.
        values = {"public_key": self.key.public_key_b64, "created_at": now}
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert(log_keys).values(values).on_conflict_do_nothing(index_elements=["public_key"]))


def public_keys(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(log_keys).order_by(log_keys.c.created_at, log_keys.c.public_key))
    return [{"public_key": row.public_key, "created_at": iso(row.created_at)} for row in rows]
