"""The authorization lifecycle as one table: every status, every operation, who may take it.

    authorize -> approved | pending | denied                       agent, admin
    pending   -> approved (approve) | denied (deny)                 admin
    approved  -> approved (claim: one holder, for a lease)          agent, admin
    approved  -> executed (execute) | reversed (reverse)            agent, admin
    executed  -> settled (settle)                                   agent, admin
    executed  -> reversed (reverse)                                 admin only
    approved | pending -> expired (time)                            system

The gateway refuses what the table does not allow (409 ``invalid_transition``, or 403
when the status allows the operation but not to this role), the client names statuses
from it, and the tests drive their models from it: one table, read by all three.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, get_args

AuthorizationStatus = Literal["pending", "approved", "denied", "expired", "reversed", "executed", "settled"]
Operation = Literal["authorize", "approve", "deny", "claim", "execute", "settle", "reverse", "expire"]
#: Who takes a step: an agent key, an admin key (the venue's owner), or the gateway's clock.
Actor = Literal["agent", "admin", "system"]

AUTHORIZATION_STATUSES: tuple[str, ...] = get_args(AuthorizationStatus)
OPERATIONS: tuple[str, ...] = get_args(Operation)
#: The statuses whose authorization counts against the spending windows.
HOLDING_STATUSES: frozenset[str] = frozenset({"pending", "approved", "executed", "settled"})
#: The statuses in which the side effect happened: the call ran under the authorization.
SPENT_STATUSES: tuple[str, ...] = ("executed", "settled")
#: The statuses of an approved authorization: the agent may go ahead, or already went ahead.
APPROVED_STATUSES: tuple[str, ...] = ("approved", *SPENT_STATUSES)
#: The statuses no operation leaves.
TERMINAL_STATUSES: frozenset[str] = frozenset({"denied", "expired", "reversed", "settled"})
#: The source of ``authorize``: there is no authorization before it.
NEW = "new"

_KEYS: frozenset[Actor] = frozenset({"agent", "admin"})
_ADMIN: frozenset[Actor] = frozenset({"admin"})
_SYSTEM: frozenset[Actor] = frozenset({"system"})


@dataclass(frozen=True)
class Step:
    """Who may take an operation from one status, and the sentence that refuses anyone else."""

    by: frozenset[Actor]
    refusal: str = ""


@dataclass(frozen=True)
class Transition:
    """One operation: the statuses it may start from (each with who may take it there)
    and the statuses it may lead to."""

    sources: Mapping[str, Step]
    targets: tuple[str, ...]

    def allows(self, status: str, actor: str) -> bool:
        """Whether ``actor`` may take this operation from ``status``.

        >>> TRANSITIONS["reverse"].allows("executed", "agent")
        False
        """
        step = self.sources.get(status)
        return step is not None and actor in step.by

    @property
    def actors(self) -> frozenset[Actor]:
        """Everyone who may take this operation from some status."""
        return frozenset().union(*(step.by for step in self.sources.values()))


def _transition(targets: tuple[str, ...], **sources: Step) -> Transition:
    return Transition(MappingProxyType(sources), targets)


TRANSITIONS: Mapping[str, Transition] = MappingProxyType(
    {
        "authorize": _transition(("approved", "pending", "denied"), new=Step(_KEYS)),
        "approve": _transition(("approved",), pending=Step(_ADMIN)),
        "deny": _transition(("denied",), pending=Step(_ADMIN)),
        # A claim keeps the status: it only names the one holder that may execute or release it.
        "claim": _transition(("approved",), approved=Step(_KEYS)),
        "execute": _transition(("executed",), approved=Step(_KEYS)),
        "settle": _transition(("settled",), executed=Step(_KEYS)),
        "reverse": _transition(
            ("reversed",),
            # Nothing was spent yet: the hold goes back, whoever asks.
            approved=Step(_KEYS),
            # Budget was spent: giving it back is the owner's refund, never the spender's.
            executed=Step(
                _ADMIN,
                "Only the venue's owner (an admin key) can reverse an executed authorization:"
                " an agent cannot give back budget it spent",
            ),
        ),
        "expire": _transition(("expired",), pending=Step(_SYSTEM), approved=Step(_SYSTEM)),
    }
)
