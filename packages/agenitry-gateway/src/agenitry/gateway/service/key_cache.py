"""The keys this instance has recently seen, so that a request need not read its key.

A presented key's digest maps to its :class:`Principal`, which carries the venue's keys
version read in the same statement as the key. An entry is trusted for ``ttl`` (the
gateway's clock); at most ``size`` entries are kept, the least recently used going first.
Only keys found valid are kept: an unknown key is looked up every time, so a key created
on another instance works at once, and made-up keys cannot fill the memory.

Every revocation raises its venue's ``keys_version`` in its own transaction, under the
venue's lock. A write reads that row under the same lock anyway, so :meth:`KeyCache.confirm`
compares it with the version the principal was read at: equal means that no key of the
venue was revoked since, at no cost; different means the key is read again in that
transaction, and refused there if it was revoked. A write by a revoked key therefore never
commits, on any instance, whatever its cache holds. Reads trust an entry until it is
``ttl`` old (``docs/security.md`` says why); the instance that revokes a key, and any
instance whose write finds it revoked, forget it at once.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from typing import Any, Optional, TypeGuard

from sqlalchemy import Connection, bindparam, select

from agenitry.gateway._ids import digest
from agenitry.gateway.errors import Unauthenticated
from agenitry.gateway.service.access import Principal
from agenitry.gateway.store.schema import api_keys

#: Entries kept at most: about 400 bytes each.
DEFAULT_SIZE = 10_000
#: No key is longer: a longer secret is refused before it is hashed.
MAX_SECRET = 200
# Built once: it runs on a write after any revocation in its venue.
_KEY_REVOKED = select(api_keys.c.revoked_at).where(api_keys.c.id == bindparam("key_id"))


def well_formed(secret: Optional[str]) -> TypeGuard[str]:
    """Whether ``secret`` could be a key at all (else it is refused before it is hashed)."""
    return secret is not None and secret.startswith("ag_") and len(secret) <= MAX_SECRET


class KeyCache:
    """Key digests mapped to their principals, for ``ttl_ms``; ``ttl_ms`` 0 keeps nothing.

    >>> cache = KeyCache(ttl_ms=5_000)
    >>> alice = Principal("key_1", "nobo", "agent", "alice", keys_version=0)
    >>> cache.put("d1", alice, now=0, epoch=cache.epoch)
    >>> cache.get("d1", now=4_999) == alice, cache.get("d1", now=5_000)
    (True, None)
    """

    def __init__(self, ttl_ms: int, size: int = DEFAULT_SIZE) -> None:
        if ttl_ms < 0 or size < 1:
            raise ValueError("a key cache needs a TTL of at least 0 and room for at least one key")
        self.ttl_ms = ttl_ms
        self.size = size
        #: Raised by every :meth:`forget`: a look-up that began before one is not kept.
        self.epoch = 0
        self._entries: OrderedDict[str, tuple[Principal, int]] = OrderedDict()  # digest -> (principal, read at)
        self._digests: dict[str, str] = {}  # key id -> digest
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key_digest: str, now: int) -> Optional[Principal]:
        """The principal of a key read less than ``ttl_ms`` ago, else None."""
        with self._lock:
            entry = self._entries.get(key_digest)
            if entry is None:
                return None
            principal, read_at = entry
            # A clock set back makes an entry look young: it is read again instead.
            if not 0 <= now - read_at < self.ttl_ms:
                self._drop(key_digest)
                return None
            self._entries.move_to_end(key_digest)
            return principal

    def lookup(self, secret: str, now: int) -> Optional[Principal]:
        """:meth:`get` for a presented secret: None for one not held (or not a key at all).

        Memory only, so it may run on the event loop; a miss goes to ``Gateway.authenticate``.
        """
        return self.get(digest(secret), now) if well_formed(secret) else None

    def put(self, key_digest: str, principal: Principal, now: int, epoch: int) -> None:
        """Keep a key found valid by a look-up that began at ``epoch`` (:attr:`epoch` then).

        Nothing is kept when a key was forgotten meanwhile: the look-up may have read the
        key just before its revocation committed.
        """
        if self.ttl_ms == 0:
            return
        with self._lock:
            if epoch != self.epoch:
                return
            self._drop(key_digest)
            self._entries[key_digest] = (principal, now)
            self._digests[principal.key_id] = key_digest
            while len(self._entries) > self.size:
                self._drop(next(iter(self._entries)))

    def forget(self, key_id: str) -> None:
        """Drop a revoked key, and keep no look-up that was under way."""
        with self._lock:
            self.epoch += 1
            key_digest = self._digests.get(key_id)
            if key_digest is not None:
                self._drop(key_digest)

    def confirm(self, conn: Connection, venue: Any, principal: Principal) -> None:
        """Refuse, inside a write's transaction, a principal whose key has been revoked.

        ``venue`` is the venue's row, read under its lock by this transaction. A principal
        with no ``keys_version`` has no key behind it (the CLI's operator) and passes.
        """
        if principal.keys_version is None or principal.keys_version == venue.keys_version:
            return
        key = conn.execute(_KEY_REVOKED, {"key_id": principal.key_id}).first()
        if key is None or key.revoked_at is not None:
            self.forget(principal.key_id)
            raise Unauthenticated()
        # Another key was revoked: this one's entry moves to the new version, so the next
        # write of this key needs no read.
        with self._lock:
            key_digest = self._digests.get(principal.key_id)
            entry = self._entries.get(key_digest) if key_digest is not None else None
            if key_digest is not None and entry is not None and (entry[0].keys_version or 0) < venue.keys_version:
                renewed = dataclasses.replace(entry[0], keys_version=venue.keys_version)
                self._entries[key_digest] = (renewed, entry[1])

    def _drop(self, key_digest: str) -> None:
        entry = self._entries.pop(key_digest, None)
        if entry is not None:
            self._digests.pop(entry[0].key_id, None)
