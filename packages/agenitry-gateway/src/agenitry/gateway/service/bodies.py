"""What the bodies of the writes share: the venue a body may name, the fields it may leave out."""

from __future__ import annotations

from typing import Any

from agenitry.gateway.service.access import Principal


def require_named_venue(principal: Principal, fields: dict[str, Any]) -> None:
    """A body may name its venue: another venue, like its objects, does not exist for this key."""
    named = fields.get("venue_id")
    if named is not None:
        principal.require_venue(named)


def given(fields: dict[str, Any], name: str, default: Any) -> Any:
    """The field's value, or ``default`` when it was not sent (an empty string was sent)."""
    value = fields.get(name)
    return default if value is None else value
