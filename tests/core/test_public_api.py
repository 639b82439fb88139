"""The public surface: ``agenitry.__all__`` pinned, the seed's signatures and defaults kept,
and ``AsyncAgenitry`` mirroring ``Agenitry`` method for method, argument for argument."""

from __future__ import annotations

import inspect

import pytest

import agenitry
import agenitry.integration
import agenitry.spool
import agenitry.transparency
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


def test_the_public_surface_is_pinned() -> None:
    assert agenitry.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(agenitry, name) is not None


INTEGRATION = [
    "AmountSpec",
    "AsyncAgenitry",
    "Agenitry",
    "Authorization",
    "Claim",
    "Client",
    "GateOutcome",
    "GatedCall",
    "InvalidAmount",
    "OutcomeKind",
    "adecide",
    "already_done_text",
    "approved_text",
    "arun_gated",
    "call_key",
    "check_amount",
    "decide",
    "decision_text",
    "denied_text",
    "describe_error",
    "failed_text",
    "in_progress_text",
    "invalid_text",
    "logged_text",
    "pending_text",
    "policy_text",
    "ran_text",
    "record_tool_call",
    "resolve_amount",
    "run_gated",
    "summarize_arguments",
    "tool_call_context",
    "unavailable_text",
]


def test_the_integration_surface_is_pinned() -> None:
    """What adapters build on: a change here is a change to every adapter."""
    assert agenitry.integration.__all__ == INTEGRATION
    for name in INTEGRATION:
        assert getattr(agenitry.integration, name) is not None


TRANSPARENCY = [
    "EMPTY_ROOT",
    "EXPORT_FORMAT",
    "HASH_SIZE",
    "PROOF_HEADER",
    "Checkpoint",
    "CompactTree",
    "Finding",
    "Keys",
    "LogFormatError",
    "LogReport",
    "Node",
    "NoteSignature",
    "Range",
    "TlogProof",
    "TrustedKey",
    "VerificationResult",
    "b64decode",
    "b64encode",
    "canonical_json",
    "check_key_name",
    "consistency_ranges",
    "fold",
    "format_note",
    "inclusion_ranges",
    "key_id",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "root_of",
    "subtrees",
    "verifier_key",
    "verify_consistency",
    "verify_event",
    "verify_inclusion",
    "verify_log",
    "verify_proof",
]


def test_the_transparency_surface_is_pinned() -> None:
    assert agenitry.transparency.__all__ == TRANSPARENCY
    for name in TRANSPARENCY:
        assert getattr(agenitry.transparency, name) is not None
    # The same objects as the root's, not copies: one verifier, however it is imported.
    for name in set(TRANSPARENCY) & set(PUBLIC):
        assert getattr(agenitry.transparency, name) is getattr(agenitry, name)


def test_the_spool_surface_is_pinned() -> None:
    assert agenitry.spool.__all__ == ["ScopeSummary", "default_spool_dir", "summaries"]


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
