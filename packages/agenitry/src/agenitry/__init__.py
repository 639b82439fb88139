__path__ = __import__("pkgutil").extend_path(__path__, __name__)
# Agenitry: spend authority and a verifiable audit trail for AI agents. The core
# distribution alone owns this root module (so `from agenitry import X` works next to
# editable installs); the gateway and the adapters live beside it in their own
# distributions and are never imported from here.

from agenitry._async_client import AsyncAgenitry
from agenitry._base import NOT_GIVEN, NotGiven
from agenitry._canonical import canonical_json, leaf_hash
from agenitry._client import Agenitry, create_agenitry
from agenitry._delivery import DeliveryStats
from agenitry._exceptions import (
    AgenitryError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ApprovalRequired,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    EventsDroppedWarning,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SpendDenied,
    UnprocessableEntityError,
)
from agenitry._gating import Spend
from agenitry._types import (
    ACTION_PATTERN,
    CANONICAL_ACTIONS,
    DEFAULT_DIRECTIONS,
    AuthorizationStatus,
    EventAction,
    EventDirection,
    StatsPeriod,
)
from agenitry._verify import VerificationResult, verify_event
from agenitry._version import __version__

__all__ = [
    "ACTION_PATTERN",
    "CANONICAL_ACTIONS",
    "DEFAULT_DIRECTIONS",
    "NOT_GIVEN",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Agenitry",
    "AgenitryError",
    "ApprovalRequired",
    "AsyncAgenitry",
    "AuthenticationError",
    "AuthorizationStatus",
    "BadRequestError",
    "ConflictError",
    "DeliveryStats",
    "EventAction",
    "EventDirection",
    "EventsDroppedWarning",
    "InternalServerError",
    "NotFoundError",
    "NotGiven",
    "PermissionDeniedError",
    "RateLimitError",
    "Spend",
    "SpendDenied",
    "StatsPeriod",
    "UnprocessableEntityError",
    "VerificationResult",
    "__version__",
    "canonical_json",
    "create_agenitry",
    "leaf_hash",
    "verify_event",
]
