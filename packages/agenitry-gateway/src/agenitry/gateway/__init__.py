"""The Agenitry gateway: policy engine, authorization lifecycle, audit log and HTTP API.

>>> from agenitry.gateway import Database, Gateway, create_app
"""

from agenitry.gateway._clock import ManualClock
from agenitry.gateway.api.app import create_app
from agenitry.gateway.errors import GatewayError
from agenitry.gateway.service.access import Principal
from agenitry.gateway.service.gateway import Gateway, Idempotency, Outcome
from agenitry.gateway.settings import Settings
from agenitry.gateway.store.database import Database

__all__ = [
    "Database",
    "Gateway",
    "GatewayError",
    "Idempotency",
    "ManualClock",
    "Outcome",
    "Principal",
    "Settings",
    "create_app",
]
