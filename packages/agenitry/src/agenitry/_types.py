"""The vocabulary shared by the client, the gateway and every adapter."""

from __future__ import annotations

import re
from typing import Literal, get_args

EventAction = Literal[
    "order_captured",
    "reservation_booked",
    "price_changed",
    "item_86d",
    "comp_issued",
    "purchase_order",
]
EventDirection = Literal["inbound", "outbound", "internal"]
StatsPeriod = Literal["today", "7d", "30d", "all"]
AuthorizationStatus = Literal["pending", "approved", "denied", "expired", "reversed", "executed", "settled"]

CANONICAL_ACTIONS: tuple[str, ...] = get_args(EventAction)
DIRECTIONS: tuple[str, ...] = get_args(EventDirection)
STATS_PERIODS: tuple[str, ...] = get_args(StatsPeriod)
AUTHORIZATION_STATUSES: tuple[str, ...] = get_args(AuthorizationStatus)

#: Custom actions are allowed too, as long as they match this pattern.
ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")

#: The direction an event takes when the caller gives none.
DEFAULT_DIRECTIONS: dict[str, EventDirection] = {
    "order_captured": "inbound",
    "reservation_booked": "inbound",
    "comp_issued": "outbound",
    "purchase_order": "outbound",
    "price_changed": "internal",
    "item_86d": "internal",
}
