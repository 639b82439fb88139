"""What the listings share: the range of creation times they keep and the page they answer."""

from __future__ import annotations

from typing import Any, Optional


def created_between(column: Any, created: tuple[Optional[int], Optional[int]]) -> list[Any]:
    since, until = created
    return [*([column >= since] if since is not None else []), *([column < until] if until is not None else [])]


def page(venue_id: str, total: int, limit: int, offset: int, name: str, items: list[Any]) -> dict[str, Any]:
    return {
        "venue_id": venue_id,
        "total": total,
        "limit": limit,
        "offset": offset,
        "has_more": offset + len(items) < total,
        name: items,
    }
