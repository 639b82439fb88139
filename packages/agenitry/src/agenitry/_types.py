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

CANONICAL_ACTIONS: tuple[str, ...] = get_args(EventAction)
DIRECTIONS: tuple[str, ...] = get_args(EventDirection)
STATS_PERIODS: tuple[str, ...] = get_args(StatsPeriod)

#: Custom actions are allowed too, as long as they match this pattern.
ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_.:-]{0,63}$")

#: Actions only the gateway writes: its lifecycle and audit entries (``authorization.*``,
#: ``policy.*``, ``key.*``, ``webhook.*``) and the business event that reverses an executed
#: authorization.
#: A caller that logged one could pass its event off as the gateway's own.
RESERVED_ACTIONS: tuple[str, ...] = ("reversal",)
RESERVED_ACTION_PREFIXES: tuple[str, ...] = ("authorization.", "policy.", "key.", "webhook.")


def is_reserved_action(action: str) -> bool:
    """Whether only the gateway may write ``action``.

    >>> is_reserved_action("reversal"), is_reserved_action("authorization.settled"), is_reserved_action("refund")
    (True, True, False)
    """
    return action in RESERVED_ACTIONS or action.startswith(RESERVED_ACTION_PREFIXES)


#: The direction an event takes when the caller gives none.
DEFAULT_DIRECTIONS: dict[str, EventDirection] = {
    "order_captured": "inbound",
    "reservation_booked": "inbound",
    "comp_issued": "outbound",
    "purchase_order": "outbound",
    "price_changed": "internal",
    "item_86d": "internal",
}
