"""Who may do what: one place decides for every route, the CLI and embedded clients.

admin  everything in its venue: policies, approve/deny, keys, and all an agent may do.
agent  bound to one agent id: log, authorize, claim, execute, settle for that agent, and
       reverse an approved authorization it has not executed; read its venue's events,
       authorizations and policies. Never a policy change or an approval, so an agent
       cannot raise its own limit or approve itself, nor give back budget it spent.

Who may take which step of an authorization's lifecycle is :data:`agenitry.TRANSITIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from agenitry import TRANSITIONS
from agenitry.gateway.errors import Forbidden, NotFound

Role = Literal["admin", "agent"]
ROLES: tuple[Role, ...] = ("admin", "agent")
#: What the 0.2.0 SDK sends as agent_id when its caller gave none.
DEFAULT_AGENT = "default"


@dataclass(frozen=True)
class Principal:
    """The caller: the key it presented, its venue and role.

    ``keys_version`` is the venue's keys version read together with the key: a write
    re-checks the key when a revocation has raised it since (see
    :mod:`agenitry.gateway.service.key_cache`). None when no key stands behind the caller
    (the CLI's operator, an embedded client).
    """

    key_id: str
    venue_id: str
    role: Role
    agent_id: Optional[str] = None
    keys_version: Optional[int] = field(default=None, compare=False)

    @classmethod
    def operator(cls, venue_id: str) -> Principal:
        """The venue's owner acting through the CLI (recorded as actor ``cli``)."""
        return cls(key_id="cli", venue_id=venue_id, role="admin")

    def acting_for(self, requested: Optional[str]) -> str:
        """The agent a call acts for. An agent key acts only for its own agent; the
        0.2.0 SDK's ``"default"`` (or nothing) means that agent."""
        if self.role == "agent":
            own = self.agent_id or DEFAULT_AGENT
            if requested in (None, DEFAULT_AGENT, own):
                return own
            raise Forbidden(
                f"This key acts for agent '{self.agent_id}' and cannot act for '{requested}'",
                code="agent_mismatch",
            )
        return DEFAULT_AGENT if requested is None else requested

    def require_admin(self, doing: str) -> None:
        if self.role != "admin":
            raise Forbidden(f"Only an admin key can {doing}; this key belongs to an agent", code="admin_required")

    def require_step(self, operation: str, status: Optional[str] = None) -> None:
        """Refuse a lifecycle step this role may not take: from any status when ``status`` is
        None, else from ``status`` (a status the step cannot start from is the lifecycle's 409)."""
        transition = TRANSITIONS[operation]
        if status is None:
            if self.role not in transition.actors:
                self.require_admin(f"{operation} an authorization")
            return
        step = transition.sources.get(status)
        if step is not None and self.role not in step.by:
            raise Forbidden(
                step.refusal or f"Only an admin key can {operation} an authorization that is {status}",
                code="admin_required",
            )

    def require_agent(self, agent_id: str) -> None:
        """Refuse an agent key acting on another agent's authorization."""
        if self.role == "agent" and agent_id != self.agent_id:
            raise Forbidden(
                f"This key acts for agent '{self.agent_id}'; the authorization belongs to '{agent_id}'",
                code="agent_mismatch",
            )

    def require_venue(self, venue_id: str) -> None:
        """Another venue's objects do not exist for this key."""
        if venue_id != self.venue_id:
            raise NotFound(f"Venue '{venue_id}' not found", code="venue_not_found")
