"""The public surface: ``agenitry.__all__`` pinned, the seed's signatures and defaults kept,
and ``AsyncAgenitry`` mirroring ``Agenitry`` method for method, argument for argument."""

from __future__ import annotations

import inspect

import pytest

import agenitry
from agenitry import (
    Agenitry,
    AgenitryError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ApprovalRequired,
    AsyncAgenitry,
    InternalServerError,
    SpendDenied,
)

PUBLIC = [
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


def test_the_public_surface_is_pinned() -> None:
    assert agenitry.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(agenitry, name) is not None


def defaults(function: object) -> dict[str, object]:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()  # type: ignore[arg-type]
        if name != "self"
    }


@pytest.mark.parametrize(
    ("method", "seed"),
    [
        (
            "__init__",
            {
                "api_key": None,
                "venue_id": None,
                "agent_id": None,
                "base_url": None,
                "max_retries": 3,
                "retry_base_delay": 0.5,
            },
        ),
        (
            "log",
            {
                "action": inspect.Parameter.empty,
                "amount": None,
                "currency": None,
                "direction": None,
                "agent_id": None,
                "context": None,
                "reason": None,
                "await_confirmation": False,
            },
        ),
        ("events", {"agent_id": agenitry.NOT_GIVEN, "action": None, "context": None, "limit": 50, "offset": 0}),
        ("stats", {"period": "today"}),
        (
            "authorize",
            {
                "action": inspect.Parameter.empty,
                "amount": inspect.Parameter.empty,
                "agent_id": None,
                "currency": None,
                "context": None,
                "reason": None,
            },
        ),
        ("execute", {"authorization_id": inspect.Parameter.empty, "actual_amount": None, "context": None}),
        ("settle", {"authorization_id": inspect.Parameter.empty, "context": None}),
        ("reverse", {"authorization_id": inspect.Parameter.empty}),
        (
            "authorizations",
            {"agent_id": agenitry.NOT_GIVEN, "action": None, "status": None, "limit": 50, "offset": 0},
        ),
        ("get_authorization", {"authorization_id": inspect.Parameter.empty}),
        (
            "set_policy",
            {
                "agent_id": agenitry.NOT_GIVEN,
                "max_single_amount": None,
                "max_daily_spend": None,
                "max_monthly_spend": None,
                "require_approval_above": None,
                "allowed_actions": None,
            },
        ),
        ("get_policies", {}),
        ("delete_policy", {"policy_id": inspect.Parameter.empty}),
    ],
)
def test_the_seeds_arguments_and_defaults_are_kept(method: str, seed: dict[str, object]) -> None:
    found = defaults(getattr(Agenitry, method))
    assert {name: found[name] for name in seed} == seed
    assert list(found)[: len(seed)] == list(seed), "the seed's arguments come first, in its order"


def public_methods(kind: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(kind, callable)
        if not name.startswith("_") or name == "__init__"
    }


def test_the_async_client_mirrors_the_sync_one() -> None:
    sync, asynchronous = public_methods(Agenitry), public_methods(AsyncAgenitry)
    assert set(sync) == set(asynchronous)
    for name, signature in sync.items():
        theirs = asynchronous[name]
        assert [(p.name, p.kind, p.default) for p in signature.parameters.values() if p.name != "transport"] == [
            (p.name, p.kind, p.default) for p in theirs.parameters.values() if p.name != "transport"
        ], name
    plain = {"embedded", "guard", "logged", "spend", "verify_url", "delivery_stats", "__init__"}
    for name in set(sync) - plain:
        assert inspect.iscoroutinefunction(getattr(AsyncAgenitry, name)), name
        assert not inspect.iscoroutinefunction(getattr(Agenitry, name)), name


def test_the_error_tree() -> None:
    assert issubclass(APITimeoutError, APIConnectionError) and issubclass(APIConnectionError, AgenitryError)
    assert issubclass(InternalServerError, APIStatusError) and issubclass(APIStatusError, AgenitryError)
    assert issubclass(SpendDenied, AgenitryError) and issubclass(ApprovalRequired, AgenitryError)
    assert (APIConnectionError().code, APITimeoutError().code) == ("NETWORK", "TIMEOUT")
    denied = SpendDenied(
        {"authorization_id": "auth_1", "status": "denied", "denial_code": "no_policy", "denial_reason": "No policy"}
    )
    assert (denied.authorization_id, denied.reason, denied.denial_code) == ("auth_1", "No policy", "no_policy")
    assert str(denied) == "Spend denied: No policy"
    waiting = ApprovalRequired(
        {"authorization_id": "auth_2", "status": "pending", "expires_at": "2026-01-02T00:00:00.000Z"}
    )
    assert (waiting.authorization_id, waiting.expires_at) == ("auth_2", "2026-01-02T00:00:00.000Z")
    assert repr(AgenitryError("boom", status=0, code="NETWORK")) == "AgenitryError('boom', status=0, code='NETWORK')"
