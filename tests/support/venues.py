"""A fresh venue with keys, for tests that need one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from agenitry.gateway import Gateway, Principal


@dataclass
class Venue:
    """A fresh venue with an admin key; :meth:`agent` makes agent keys."""

    gateway: Gateway
    id: str
    admin: Principal
    admin_key: str
    agent_keys: dict[str, tuple[Principal, str]] = field(default_factory=dict)

    def agent(self, agent_id: str = "voice-agent") -> Principal:
        return self._agent(agent_id)[0]

    def agent_key(self, agent_id: str = "voice-agent") -> str:
        return self._agent(agent_id)[1]

    def _agent(self, agent_id: str) -> tuple[Principal, str]:
        if agent_id not in self.agent_keys:
            _, secret = self.gateway.create_key(self.admin, role="agent", agent_id=agent_id)
            self.agent_keys[agent_id] = (self.gateway.authenticate(secret), secret)
        return self.agent_keys[agent_id]

    def policy(self, **fields: Any) -> dict[str, Any]:
        return self.gateway.put_policy(self.admin, fields).body


def make_venue(gateway: Gateway, currency: str = "USD") -> Venue:
    venue_id = f"v-{uuid.uuid4().hex[:16]}"
    gateway.create_venue(venue_id, currency=currency)
    _, secret = gateway.create_key(Principal.operator(venue_id), role="admin")
    return Venue(gateway, venue_id, gateway.authenticate(secret), secret)
