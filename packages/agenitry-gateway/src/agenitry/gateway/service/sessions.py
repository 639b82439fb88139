"""Console sessions: an owner signs in once with an admin key and gets a session.

The browser keeps only the session's token (in an HttpOnly cookie), never the key; the
store keeps only the token's SHA-256. A session acts as the key it signed in with, so every
decision made in the console is recorded with that key's id, and it ends at sign-out, at
its expiry, or as soon as that key is revoked. Each session has its own token for forms
(cross-site request forgery): a form posted without it changes nothing.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from sqlalchemy import select, update

from agenitry.gateway._clock import DAY, HOUR
from agenitry.gateway._ids import digest
from agenitry.gateway.errors import Forbidden
from agenitry.gateway.service.access import Principal
from agenitry.gateway.store.schema import api_keys, console_sessions, venues

if TYPE_CHECKING:
    from agenitry.gateway.service.gateway import Gateway

#: How long a console session lasts from sign-in.
SESSION_TTL = 12 * HOUR
#: Ended and lapsed sessions are deleted this long after their end.
_KEPT = DAY


@dataclass(frozen=True)
class Session:
    """A signed-in owner: the admin key it acts as, and the token its forms must carry."""

    principal: Principal
    csrf_token: str
    expires_at: int

    def accepts(self, csrf_token: Optional[str]) -> bool:
        """Whether a form came from a page of this session."""
        return bool(csrf_token) and hmac.compare_digest(self.csrf_token, str(csrf_token))


class Sessions:
    """Sign in, look up and sign out console sessions in the gateway's store."""

    def __init__(self, gateway: Gateway, ttl: int = SESSION_TTL) -> None:
        self.gateway = gateway
        self.ttl = ttl

    def sign_in(self, secret: str) -> tuple[str, Session]:
        """A new session for an admin key; returns the token for the cookie and the session.

        An unknown or revoked key raises :class:`Unauthenticated`; an agent key raises
        :class:`Forbidden`: the console is the owner's.
        """
        principal = self.gateway.authenticate(secret.strip())
        if principal.role != "admin":
            raise Forbidden(
                "This is an agent's key: an agent cannot sign in to the console. Sign in with an admin key"
                " of the venue (agenitry keys create --role admin).",
                code="admin_required",
            )
        token = secrets.token_urlsafe(32)
        now = self.gateway.clock()
        session = Session(principal, secrets.token_urlsafe(32), now + self.ttl)
        with self.gateway.db.write() as conn:
            conn.execute(
                console_sessions.delete().where(
                    console_sessions.c.expires_at < now - _KEPT,
                )
            )
            conn.execute(
                console_sessions.insert().values(
                    digest=digest(token),
                    venue_id=principal.venue_id,
                    key_id=principal.key_id,
                    csrf_token=session.csrf_token,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )
        return token, session

    def find(self, token: Optional[str]) -> Optional[Session]:
        """The live session of a cookie's token: None once it ended, lapsed, or its key was revoked."""
        if not token or len(token) > 200:
            return None
        s, k = console_sessions.c, api_keys.c
        # With the venue's keys version, so that a write of the session re-checks its key
        # in its own transaction when a key of the venue is revoked meanwhile.
        query = (
            select(s.venue_id, s.key_id, s.csrf_token, s.expires_at, k.role, k.agent_id, venues.c.keys_version)
            .join(api_keys, k.id == s.key_id)
            .join(venues, venues.c.id == s.venue_id)
            .where(
                s.digest == digest(token),
                s.ended_at.is_(None),
                s.expires_at > self.gateway.clock(),
                k.revoked_at.is_(None),
            )
        )
        with self.gateway.db.read() as conn:
            row = conn.execute(query).first()
        if row is None or row.role != "admin":
            return None
        principal = Principal(
            key_id=row.key_id, venue_id=row.venue_id, role="admin", agent_id=row.agent_id, keys_version=row.keys_version
        )
        return Session(principal, row.csrf_token, row.expires_at)

    def sign_out(self, token: Optional[str]) -> None:
        """End the session of ``token`` on the server: the cookie, if kept, opens nothing."""
        if not token or len(token) > 200:
            return
        with self.gateway.db.write() as conn:
            conn.execute(
                update(console_sessions)
                .where(console_sessions.c.digest == digest(token), console_sessions.c.ended_at.is_(None))
                .values(ended_at=self.gateway.clock())
            )
