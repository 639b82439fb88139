"""The canonical bytes of an audit-log entry and its RFC 9162 leaf hash.

Anyone verifying the log recomputes these bytes from an event, so the rules are few and
fixed: object keys sorted by code point, no insignificant white space, UTF-8, no NaN or
Infinity. Amounts are carried as decimal strings ("127.00"), never as JSON numbers, so
that no float ever enters a hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Serialize ``value`` to its canonical JSON bytes.

    >>> canonical_json({"b": 1, "a": "é"})
    b'{"a":"\\xc3\\xa9","b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def leaf_hash(entry: bytes) -> bytes:
    """The Merkle leaf hash of an entry: SHA-256(0x00 || entry), as RFC 9162 defines it."""
    return hashlib.sha256(b"\x00" + entry).digest()
