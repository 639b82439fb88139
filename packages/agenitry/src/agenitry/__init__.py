__path__ = __import__("pkgutil").extend_path(__path__, __name__)
# Agenitry: spend authority and a verifiable audit trail for AI agents. The core
# distribution alone owns this root module (so `from agenitry import X` works next to
# editable installs); the gateway and the adapters live beside it in their own
# distributions and are never imported from here.

from agenitry._canonical import canonical_json, leaf_hash
from agenitry._exceptions import AgenitryError
from agenitry._types import (
    ACTION_PATTERN,
    CANONICAL_ACTIONS,
    DEFAULT_DIRECTIONS,
    AuthorizationStatus,
    EventAction,
    EventDirection,
    StatsPeriod,
)
from agenitry._version import __version__

__all__ = [
    "ACTION_PATTERN",
    "CANONICAL_ACTIONS",
    "DEFAULT_DIRECTIONS",
    "AgenitryError",
    "AuthorizationStatus",
    "EventAction",
    "EventDirection",
    "StatsPeriod",
    "__version__",
    "canonical_json",
    "leaf_hash",
]
