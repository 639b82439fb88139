__path__ = __import__("pkgutil").extend_path(__path__, __name__)
# Agenitry: spend authority and a verifiable audit trail for AI agents. The core
# distribution alone owns this root module (so `from agenitry import X` works next to
# editable installs); the gateway and the adapters live beside it in their own
# distributions and are never imported from here.

from agenitry._async_client import AsyncAgenitry
from agenitry._base import NO_LIMIT, NOT_GIVEN, NoLimit, NotGiven
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
from agenitry._lifecycle import (
    APPROVED_STATUSES,
    AUTHORIZATION_STATUSES,
    HOLDING_STATUSES,
    SPENT_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    AuthorizationStatus,
    Step,
    Transition,
)
from agenitry._money import CURRENCIES, MAX_AMOUNT, InvalidAmount, check_amount, currency_exponent
from agenitry._types import (
    ACTION_PATTERN,
    CANONICAL_ACTIONS,
    DEFAULT_DIRECTIONS,
    DIRECTIONS,
    RESERVED_ACTION_PREFIXES,
    RESERVED_ACTIONS,
    EventAction,
    EventDirection,
    StatsPeriod,
    is_reserved_action,
)
from agenitry._verify import VerificationResult, verify_event
from agenitry._version import __version__

__all__ = [
    "ACTION_PATTERN",
    "APPROVED_STATUSES",
    "AUTHORIZATION_STATUSES",
    "CANONICAL_ACTIONS",
    "CURRENCIES",
    "DEFAULT_DIRECTIONS",
    "DIRECTIONS",
    "HOLDING_STATUSES",
    "MAX_AMOUNT",
    "NOT_GIVEN",
    "NO_LIMIT",
    "RESERVED_ACTIONS",
    "RESERVED_ACTION_PREFIXES",
    "SPENT_STATUSES",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
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
    "InvalidAmount",
    "InternalServerError",
    "NoLimit",
    "NotFoundError",
    "NotGiven",
    "PermissionDeniedError",
    "RateLimitError",
    "Spend",
    "SpendDenied",
    "StatsPeriod",
    "Step",
    "Transition",
    "UnprocessableEntityError",
    "VerificationResult",
    "__version__",
    "canonical_json",
    "check_amount",
    "create_agenitry",
    "currency_exponent",
    "is_reserved_action",
    "leaf_hash",
    "verify_event",
]
