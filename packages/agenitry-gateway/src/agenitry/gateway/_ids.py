"""Random, unguessable identifiers: a prefix and 26 base32 characters (130 bits)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lower case


def new_id(prefix: str) -> str:
    """A new identifier such as ``evt_4k9x...``; 130 random bits.

    >>> new_id("auth").startswith("auth_")
    True
    """
    number = secrets.randbits(130)
    chars = []
    for _ in range(26):
        number, digit = divmod(number, 32)
        chars.append(_ALPHABET[digit])
    return f"{prefix}_{''.join(chars)}"


def new_api_key() -> str:
    """A new API key: ``ag_`` and 32 random bytes (256 bits), URL-safe."""
    return "ag_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def digest(secret: str) -> str:
    """The SHA-256 (hex) a secret is stored as: API keys and claim tokens are shown once, never kept."""
    return hashlib.sha256(secret.encode()).hexdigest()


#: Ids that a client makes for its own events (so a re-sent event is stored once).
CLIENT_EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_-]{16,64}$")
