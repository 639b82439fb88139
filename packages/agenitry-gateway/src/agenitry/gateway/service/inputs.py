"""Checks on what callers send, shared by the HTTP API, the CLI and embedded clients.

Each raises :class:`Unprocessable` with a sentence a person understands; none changes state.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Optional

from agenitry import (
    ACTION_PATTERN,
    DIRECTIONS,
    RESERVED_ACTION_PREFIXES,
    RESERVED_ACTIONS,
    canonical_json,
    is_reserved_action,
)
from agenitry.gateway._clock import DAY, iso, parse_iso
from agenitry.gateway._money import MoneyError, check_currency, to_minor
from agenitry.gateway.errors import Unprocessable

AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")
VENUE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_CONTEXT_BYTES = 16 * 1024
MAX_CONTEXT_DEPTH = 16
MAX_TEXT = 2_000
MAX_NAME = 200
#: How far ahead of the gateway's clock a client's clock may run when it stamps an event. Wide on
#: purpose: a refused event is a lost one, so only a clock broken by more than a day is refused;
#: ``occurred_at`` is the client's word, ``created_at`` the gateway's.
MAX_CLOCK_AHEAD = DAY
#: No agent logged anything before 2000-01-01T00:00:00Z: an earlier time is a broken clock.
EARLIEST_OCCURRED_AT = 946_684_800_000
_SURROGATE = re.compile("[\ud800-\udfff]")
UNSTORABLE = "must not contain NUL characters or unpaired surrogates"


def storable(value: str) -> bool:
    """PostgreSQL text cannot hold NUL, and no store can encode an unpaired surrogate."""
    return "\x00" not in value and not _SURROGATE.search(value)


def action(value: Any, *, field: str = "action") -> str:
    # fullmatch: with match, "$" would also accept a name followed by a newline.
    if not isinstance(value, str) or not ACTION_PATTERN.fullmatch(value):
        raise Unprocessable(
            f"{field} must be a lower-case name such as 'order_captured' (letters, digits, _ . : -;"
            " at most 64 characters)",
            code="invalid_action",
        )
    return value


def caller_action(value: Any) -> str:
    """An action a caller may log or authorize: not one the gateway writes itself."""
    name = action(value)
    if is_reserved_action(name):
        raise Unprocessable(
            f"The action '{name}' is written by the gateway itself (reserved: {', '.join(RESERVED_ACTIONS)}"
            f" and any name starting with {', '.join(RESERVED_ACTION_PREFIXES)}); choose another name",
            code="reserved_action",
        )
    return name


def agent_id(value: Any) -> str:
    if not isinstance(value, str) or not AGENT_ID.fullmatch(value):
        raise Unprocessable(
            "agent_id must be 1-128 characters: letters, digits and _ . : @ -",
            code="invalid_agent_id",
        )
    return value


def venue_id(value: Any) -> str:
    if not isinstance(value, str) or not VENUE_ID.fullmatch(value):
        raise Unprocessable(
            "A venue id is 1-64 lower-case letters, digits, _ and -, such as 'nobo-downtown'",
            code="invalid_venue_id",
        )
    return value


def direction(value: Any) -> Optional[str]:
    if value is None:
        return None
    if value not in DIRECTIONS:
        raise Unprocessable("direction must be inbound, outbound or internal", code="invalid_direction")
    return str(value)


def currency(value: Any) -> str:
    try:
        return check_currency(value)
    except MoneyError as exc:
        raise Unprocessable(str(exc), code="invalid_currency") from None


def amount(value: Any, currency_code: str, *, field: str = "amount") -> int:
    """A JSON number in major units → integer minor units of ``currency_code``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise Unprocessable(f"{field} must be a number", code="invalid_amount")
    try:
        return to_minor(Decimal(repr(value)) if isinstance(value, float) else value, currency_code)
    except MoneyError as exc:
        raise Unprocessable(f"{field}: {exc}", code="invalid_amount") from None


def occurred_at(value: Any, now: int) -> Optional[int]:
    """When the client says it logged the event, as ``2026-12-02T07:05:00.123Z``, in milliseconds.

    Not more than :data:`MAX_CLOCK_AHEAD` past ``now`` (the gateway's clock), so a client
    cannot date an event in the future; not before 2000.
    """
    if value is None:
        return None
    moment = parse_iso(value) if isinstance(value, str) else None
    if moment is None:
        raise Unprocessable(
            "occurred_at must be a UTC time to the millisecond, such as '2026-12-02T07:05:00.123Z'",
            code="invalid_occurred_at",
        )
    if moment > now + MAX_CLOCK_AHEAD:
        raise Unprocessable(
            f"occurred_at {value} is more than a day after the gateway's clock"
            f" ({iso(now)}): check the clock of the machine that logged it",
            code="invalid_occurred_at",
        )
    if moment < EARLIEST_OCCURRED_AT:
        raise Unprocessable(
            f"occurred_at {value} is before 2000-01-01: check the clock of the machine that logged it",
            code="invalid_occurred_at",
        )
    return moment


def text(value: Any, field: str, *, limit: int = MAX_TEXT) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise Unprocessable(f"{field} must be text of at most {limit} characters", code="invalid_field")
    if not storable(value):
        raise Unprocessable(f"{field} {UNSTORABLE}", code="invalid_field")
    return value


def context(value: Any) -> Optional[dict[str, Any]]:
    """A JSON object of at most 16 KiB and 16 levels."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Unprocessable("context must be a JSON object", code="invalid_context")
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_CONTEXT_DEPTH:
            raise Unprocessable(f"context nests deeper than {MAX_CONTEXT_DEPTH} levels", code="invalid_context")
        children = list(item.values()) if isinstance(item, dict) else item if isinstance(item, list) else []
        names = list(item) if isinstance(item, dict) else []
        if not all(storable(text) for text in (*names, *children) if isinstance(text, str)):
            raise Unprocessable(f"context {UNSTORABLE}", code="invalid_context")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    try:
        size = len(canonical_json(value))
    except ValueError:
        raise Unprocessable("context must not contain NaN or Infinity", code="invalid_context") from None
    if size > MAX_CONTEXT_BYTES:
        raise Unprocessable(f"context is {size} bytes; at most {MAX_CONTEXT_BYTES} are kept", code="invalid_context")
    normalized: dict[str, Any] = _as_stored(value)
    return normalized


#: A policy's limits, each in minor units or None (no limit).
POLICY_LIMITS = ("max_single_amount", "max_daily_spend", "max_monthly_spend", "require_approval_above")
MAX_ALLOWED_ACTIONS = 100


def policy_change(fields: dict[str, Any], currency_code: str) -> tuple[Optional[str], dict[str, Any]]:
    """The scope a PUT /v1/policies body names (None: the venue's) and the columns it sets.

    Only what was sent is in the columns: a limit sent replaces the stored one, ``None``
    removes it, and a limit not sent is absent, so that it keeps its value.

    >>> policy_change({"max_daily_spend": 500, "max_single_amount": None}, "USD")
    (None, {'max_single_amount': None, 'max_daily_spend': 50000})
    """
    scope = fields.get("agent_id")
    if scope is not None:
        agent_id(scope)
    allowed = fields.get("allowed_actions")
    if allowed is not None:
        if not isinstance(allowed, list) or len(allowed) > MAX_ALLOWED_ACTIONS:
            raise Unprocessable(
                f"allowed_actions must be a list of at most {MAX_ALLOWED_ACTIONS} actions", code="invalid_action"
            )
        allowed = list(dict.fromkeys(action(name, field="allowed_actions") for name in allowed))
    sent: dict[str, Any] = {
        name: amount(fields[name], currency_code, field=name) if fields[name] is not None else None
        for name in POLICY_LIMITS
        if name in fields
    }
    if "allowed_actions" in fields:
        sent["allowed_actions"] = allowed
    return scope, sent


def merged_context(base: Optional[dict[str, Any]], update: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """``update``'s keys over ``base``'s, within the same 16 KiB as any context (None if empty).

    Both parts passed :func:`context`, but together they may not fit: 422 ``context_too_large``.
    """
    merged = {**(base or {}), **(update or {})}
    size = len(canonical_json(merged))
    if size > MAX_CONTEXT_BYTES:
        raise Unprocessable(
            f"The context merged with the authorization's would be {size} bytes; at most {MAX_CONTEXT_BYTES}"
            " are kept. Nothing was changed.",
            code="context_too_large",
        )
    return merged or None


def _as_stored(value: Any) -> Any:
    """The JSON value as every store gives it back, so that an event's digest and a re-sent
    event compare equal after a round trip. PostgreSQL's JSONB keeps numbers as decimals:
    it returns 1e+308 as the integer 10**308 (the same JSON number) and -0.0 as 0.0."""
    if isinstance(value, dict):
        return {key: _as_stored(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_stored(item) for item in value]
    if isinstance(value, float):
        if value == 0:
            return 0.0
        written = repr(value)
        if "e+" in written:
            return int(Decimal(written))
    return value
