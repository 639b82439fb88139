"""Request and answer shapes of wire protocol v1, for parsing and for /openapi.json.

Amounts are JSON numbers; the service turns them into exact minor units and refuses
anything negative, not finite, above 10^12 or more precise than the currency allows.
Strings are never taken for numbers, nor numbers for strings.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, model_validator
from pydantic_core import PydanticCustomError


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a JSON number, such as 127.5")
    return value


Amount = Annotated[Union[int, float], BeforeValidator(_number)]
Context = dict[str, Any]


#: The error type (and the answer's ``code``) of a field a write body does not have.
UNKNOWN_FIELD = "unknown_field"


def unknown_field_sentence(name: str, known: list[str]) -> str:
    """What to tell a caller who sent ``name``, naming the known field it most likely meant.

    >>> unknown_field_sentence("max_daily_limit", ["agent_id", "max_daily_spend"])
    "Unknown field 'max_daily_limit'; did you mean 'max_daily_spend'?"
    """
    close = difflib.get_close_matches(name[:100], known, n=1)
    return f"Unknown field '{_shortened(name)}'" + (f"; did you mean '{close[0]}'?" if close else "")


def _shortened(name: str) -> str:
    # A field name is the caller's to choose, up to the whole body: echo a bounded part.
    return name if len(name) <= 64 else name[:61] + "..."


class _In(BaseModel):
    """A write body: strict, so a misspelt field fails closed instead of being dropped (a
    dropped limit would mean no limit). The published 0.2.0 SDK sends only fields of the
    protocol, so it needs no exception."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, data: Any) -> Any:
        # Checked here rather than by extra="forbid" alone, which only says "Extra inputs
        # are not permitted": the model knows its fields, so it can name the one meant.
        if isinstance(data, dict) and not data.keys() <= cls.model_fields.keys():
            known = list(cls.model_fields)
            unknown = [(_shortened(name), unknown_field_sentence(name, known)) for name in data if name not in known]
            more = f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else ""
            # "sentence" last: the template's placeholders are filled in order, so a field
            # named like a placeholder is never filled in itself.
            context = {"unknown": unknown, "sentence": unknown[0][1] + more}
            raise PydanticCustomError(UNKNOWN_FIELD, "{sentence}", context)
        return data


class NoFieldsIn(_In):
    """The body of a write that takes no fields (a DELETE): any field is unknown."""


#: A body may name its venue; any but the key's own answers 404, as its objects do.
VenueId = Annotated[Optional[StrictStr], Field(None, description="The key's venue, if given (another answers 404)")]


class EventIn(_In):
    venue_id: VenueId = None
    agent_id: Optional[StrictStr] = None
    action: StrictStr
    amount: Optional[Amount] = None
    currency: Optional[StrictStr] = None
    direction: Optional[StrictStr] = Field(None, description="inbound, outbound or internal")
    context: Optional[Context] = None
    reason: Optional[StrictStr] = None
    id: Optional[StrictStr] = Field(None, description="A client-made id (evt_...): a re-sent event is stored once")
    occurred_at: Optional[StrictStr] = Field(
        None,
        description="When the client logged it, UTC to the millisecond (2026-12-02T07:05:00.123Z);"
        " at most a day past the gateway's clock",
    )


class EventBatchIn(_In):
    events: list[EventIn] = Field(..., min_length=1, max_length=1000)


class AuthorizeIn(_In):
    venue_id: VenueId = None
    agent_id: Optional[StrictStr] = None
    action: StrictStr
    amount: Amount
    currency: Optional[StrictStr] = None
    context: Optional[Context] = None
    reason: Optional[StrictStr] = None


ClaimToken = Annotated[
    Optional[StrictStr],
    Field(None, max_length=200, description="The token of this authorization's claim (needed while it is claimed)"),
]


class ClaimIn(_In):
    lease_seconds: Optional[StrictInt] = Field(
        None, ge=1, description="How long the claim holds (never past the execute window, which it holds without)"
    )


class ExecuteIn(_In):
    actual_amount: Optional[Amount] = None
    context: Optional[Context] = None
    claim_token: ClaimToken = None


class ReverseIn(_In):
    claim_token: ClaimToken = None


class SettleIn(_In):
    context: Optional[Context] = None


class ApproveIn(_In):
    note: Optional[StrictStr] = None


class DenyIn(_In):
    reason: Optional[StrictStr] = None


class PolicyIn(_In):
    """A field not sent keeps its value (none on create); ``null`` removes that limit."""

    venue_id: VenueId = None
    agent_id: Optional[StrictStr] = Field(None, description="None: the venue-wide policy")
    max_single_amount: Optional[Amount] = None
    max_daily_spend: Optional[Amount] = None
    max_monthly_spend: Optional[Amount] = None
    require_approval_above: Optional[Amount] = None
    allowed_actions: Optional[list[StrictStr]] = None


class KeyIn(_In):
    role: Literal["admin", "agent"]
    agent_id: Optional[StrictStr] = None
    name: Optional[StrictStr] = None


class WebhookIn(_In):
    url: StrictStr = Field(..., description="Where the gateway POSTs each message: an http or https URL")
    events: Optional[list[StrictStr]] = Field(
        None, description="The event types it receives (authorization.pending, ...); left out: every type"
    )
    format: StrictStr = Field("json", description="json (signed Standard Webhooks payload) or slack ({text})")
    description: Optional[StrictStr] = None


# -- answers (documentation; the service renders them) -------------------------------


class ErrorOut(BaseModel):
    error: str = Field(..., description="A sentence a person can read")
    code: str = Field(..., description="A stable machine-readable code")


def _errors(descriptions: dict[int, str]) -> dict[Union[int, str], dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, each answered as an :class:`ErrorOut`."""
    return {status: {"model": ErrorOut, "description": description} for status, description in descriptions.items()}


_UNAVAILABLE = "The database is unavailable or busy; retry (storage_unavailable)"

#: The errors any keyed route may answer, documented so that clients (and fuzzers) know them.
KEYED_ERRORS = _errors(
    {
        400: "The body is not JSON (invalid_json)",
        401: "Missing, unknown or revoked key (invalid_api_key)",
        403: "The key's role or agent may not do this",
        404: "No such object in the key's venue",
        409: "Not possible in the object's current status, or an Idempotency-Key still in use",
        413: "The body is larger than the gateway takes (payload_too_large)",
        422: "A field or parameter is invalid; ``details`` lists each problem",
        429: "The key made more requests than its rate limit allows; retry after Retry-After seconds (rate_limited)",
        503: _UNAVAILABLE,
    }
)

#: The errors the public verify and log routes may answer (they take no key).
PUBLIC_ERRORS = _errors(
    {
        404: "No such venue, event or checkpoint (venue_not_found, event_not_found, ...)",
        422: "A parameter is invalid (a tree size out of range, a NUL in the path)",
        429: "This address made more requests than the public limit allows; retry after Retry-After seconds",
        503: _UNAVAILABLE,
    }
)


class LoggedOut(BaseModel):
    id: str
    status: Literal["logged"]
    created_at: str
    sequence: int
    verify_url: str


class BatchOut(BaseModel):
    accepted: int
    ids: list[str]


class EventOut(BaseModel):
    id: str
    venue_id: str
    sequence: int
    agent_id: str
    action: str
    amount: Optional[float]
    currency: Optional[str]
    direction: Optional[str]
    context: Optional[Context]
    reason: Optional[str]
    authorization_id: Optional[str]
    actor: str
    created_at: str
    occurred_at: Optional[str] = Field(None, description="When the client logged it, if it said (else null)")
    leaf_hash: str
    verify_url: str


class _Page(BaseModel):
    venue_id: str
    total: int
    limit: int
    offset: int
    has_more: bool


class EventPage(_Page):
    events: list[EventOut]


class AgentStats(BaseModel):
    events: int
    inbound: float
    outbound: float


class StatsOut(BaseModel):
    venue_id: str
    period: Literal["today", "7d", "30d", "all"]
    currency: str
    total_inbound: float
    total_outbound: float
    event_count: int
    by_agent: dict[str, AgentStats]


class DecisionOut(BaseModel):
    approved: bool
    status: Literal["approved", "denied", "pending"]
    authorization_id: str
    expires_at: Optional[str] = None
    denial_reason: Optional[str] = None
    denial_code: Optional[str] = None
    message: Optional[str] = None
    created_at: str


class ClaimedOut(BaseModel):
    authorization_id: str
    status: Literal["approved"]
    claim_token: Optional[str] = Field(
        ...,
        description="clm_...: shown only here; execute (or release) with it. A replay of a claim the same key"
        " still holds issues a new one; otherwise null (only its digest was stored)",
    )
    claimed_until: str = Field(..., description="When the lease ends; at the latest, the execute window's end")
    claimed_by: str = Field(..., description="The key id that holds the claim")


class ExecutedOut(BaseModel):
    authorization_id: str
    event_id: str
    status: Literal["executed"]
    executed_at: str


class SettledOut(BaseModel):
    authorization_id: str
    status: Literal["settled"]
    settled_at: str


class ReversedOut(BaseModel):
    authorization_id: str
    status: Literal["reversed"]
    event_id: Optional[str]


class AuthorizationOut(BaseModel):
    id: str
    authorization_id: str
    venue_id: str
    agent_id: str
    action: str
    amount: float
    actual_amount: Optional[float]
    held_amount: float
    currency: str
    status: Literal["pending", "approved", "denied", "expired", "reversed", "executed", "settled"]
    approved: bool
    denial_code: Optional[str]
    denial_reason: Optional[str]
    message: Optional[str]
    note: Optional[str]
    context: Optional[Context]
    reason: Optional[str]
    created_at: str
    expires_at: Optional[str]
    approved_at: Optional[str]
    denied_at: Optional[str]
    executed_at: Optional[str]
    settled_at: Optional[str]
    reversed_at: Optional[str]
    expired_at: Optional[str]
    requested_by: str
    decided_by: Optional[str]
    event_id: Optional[str]
    reversal_event_id: Optional[str]


class AuthorizationPage(_Page):
    authorizations: list[AuthorizationOut]


class PolicyOut(BaseModel):
    id: str
    venue_id: str
    agent_id: Optional[str]
    max_single_amount: Optional[float]
    max_daily_spend: Optional[float]
    max_monthly_spend: Optional[float]
    require_approval_above: Optional[float]
    allowed_actions: Optional[list[str]]
    currency: str
    created_at: str
    updated_at: str


class PolicyList(BaseModel):
    venue_id: str
    policies: list[PolicyOut]


class DeletedOut(BaseModel):
    status: Literal["deleted"]
    id: str


class KeyOut(BaseModel):
    id: str
    venue_id: str
    role: Literal["admin", "agent"]
    agent_id: Optional[str]
    name: Optional[str]
    prefix: str
    created_at: str
    revoked_at: Optional[str]


class NewKeyOut(KeyOut):
    key: Optional[str] = Field(
        ..., description="The secret, shown only in this answer (null in a replay: it was never stored)"
    )


class KeyList(BaseModel):
    venue_id: str
    keys: list[KeyOut]


class WebhookOut(BaseModel):
    id: str
    venue_id: str
    url: str
    format: Literal["json", "slack"]
    events: Optional[list[str]] = Field(..., description="The event types it receives; null: every type")
    description: Optional[str]
    created_at: str
    created_by: str = Field(..., description="The key id (or cli) that added it")
    removed_at: Optional[str]


class NewWebhookOut(WebhookOut):
    secret: Optional[str] = Field(
        ...,
        description="whsec_...: the signing secret, shown only in this answer (null in a replay); receivers"
        " verify every message's webhook-signature with it",
    )


class WebhookList(BaseModel):
    venue_id: str
    webhooks: list[WebhookOut]


class WebhookAttemptOut(BaseModel):
    number: int
    attempted_at: str
    status_code: Optional[int] = Field(..., description="The receiver's HTTP status; null when it gave none")
    error: Optional[str] = Field(..., description="Why there was no answer, or why it was not taken")
    duration_ms: int


class WebhookMessageOut(BaseModel):
    id: str = Field(..., description="msg_...: the webhook-id of every attempt")
    webhook_id: str
    venue_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempt_count: int
    next_attempt_at: Optional[str] = Field(..., description="When a pending message is sent next")
    created_at: str
    delivered_at: Optional[str]
    last_status: Optional[int]
    last_error: Optional[str]
    payload: dict[str, Any] = Field(..., description="The body sent, parsed")
    attempts: list[WebhookAttemptOut]


class WebhookDeliveries(BaseModel):
    webhook: WebhookOut
    deliveries: list[WebhookMessageOut] = Field(..., description="The newest messages first")


class InclusionProof(BaseModel):
    log_origin: str
    index: int = Field(..., description="The entry's leaf index: its sequence number")
    tree_size: int = Field(..., description="The size of the checkpointed tree the proof leads to")
    root_hash: str = Field(..., description="The checkpoint's root hash, base64")
    hashes: list[str] = Field(..., description="RFC 9162 inclusion proof, base64, from the leaf's sibling up")


class VerifyOut(BaseModel):
    event: dict[str, Any]
    entry: dict[str, Any] = Field(..., description="The canonical entry the leaf hash commits to")
    leaf_hash: str = Field(..., description="SHA-256(0x00 || canonical_json(entry)), hex")
    index: int
    proof: InclusionProof
    checkpoint: str = Field(..., description="The signed checkpoint (C2SP signed note) the proof leads to")
    checkpoint_signed_at: str
    tlog_proof: str = Field(..., description="The same proof as a C2SP .tlog-proof (the entry in its extra line)")
    public_key: str = Field(..., description="The Ed25519 key (base64) that signed the checkpoint")
    verified: bool = Field(..., description="Whether the gateway's own check of this proof passed")
    problems: list[str] = Field(..., description="What the gateway's own check found wrong, if anything")


class CheckpointOut(BaseModel):
    venue_id: str
    number: int = Field(..., description="0 for the venue's first checkpoint, then 1, 2, ...")
    origin: str
    size: int
    root_hash: str = Field(..., description="base64")
    signed_at: str
    public_key: str = Field(..., description="The Ed25519 key (base64) that signed it")
    verifier_key: str = Field(..., description="The same key as a signed-note verifier key: origin+id+key")
    checkpoint: str = Field(..., description="The signed note, verbatim")


class ConsistencyOut(BaseModel):
    venue_id: str
    first: int
    second: int
    first_root: str = Field(..., description="base64")
    second_root: str = Field(..., description="base64")
    hashes: list[str] = Field(..., description="RFC 9162 consistency proof, base64")


class LogKeyOut(BaseModel):
    public_key: str
    created_at: Optional[str]
    current: bool


class PublicKeysOut(BaseModel):
    algorithm: Literal["Ed25519"]
    public_key: str = Field(..., description="The key that signs checkpoints now (base64)")
    keys: list[LogKeyOut] = Field(..., description="Every key that ever signed; older checkpoints use these")


class HealthOut(BaseModel):
    status: Literal["ok"]
    database: str
