"""The gateway's answers as frozen, typed objects, parsed once where they arrive.

The client's methods keep answering dicts (the 0.2.0 SDK's contract); the gated-call
flow and the adapters read these instead, so ``answer.get("authorization_id") or
answer.get("id")`` is written here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, Optional

from agenitry._money import currency_exponent

#: What came of one gated call (see :class:`GateOutcome`).
OutcomeKind = Literal[
    "ran", "approved", "denied", "pending", "already_done", "in_progress", "failed", "invalid", "unavailable"
]
#: Outcomes the model should read as an error (nothing it asked for happened, or it failed).
ERROR_KINDS: frozenset[str] = frozenset({"denied", "pending", "in_progress", "failed", "invalid", "unavailable"})

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _decimal(value: Any) -> Optional[Decimal]:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Authorization:
    """One authorization as the gateway last described it (a decision or a full record).

    ``raw`` keeps the answer as it came, for fields this class does not name.
    """

    id: str
    status: str
    agent_id: Optional[str] = None
    action: Optional[str] = None
    amount: Optional[Decimal] = None
    actual_amount: Optional[Decimal] = None
    currency: Optional[str] = None
    expires_at: Optional[str] = None
    denial_code: Optional[str] = None
    denial_reason: Optional[str] = None
    message: Optional[str] = None
    created_at: Optional[str] = None
    raw: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, repr=False, compare=False)

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any]) -> Authorization:
        """Parse ``POST /v1/authorize``'s decision or ``GET /v1/authorize/{id}``'s record.

        >>> Authorization.from_answer({"authorization_id": "auth_1", "status": "approved", "amount": 12.5}).amount
        Decimal('12.5')
        """
        ident = answer.get("authorization_id") or answer.get("id")
        status = answer.get("status")
        if not isinstance(ident, str) or not isinstance(status, str):
            raise ValueError(f"not an authorization (no id or status): {dict(answer)!r}")
        return cls(
            id=ident,
            status=status,
            agent_id=_text(answer.get("agent_id")),
            action=_text(answer.get("action")),
            amount=_decimal(answer.get("amount")),
            actual_amount=_decimal(answer.get("actual_amount")),
            currency=_text(answer.get("currency")),
            expires_at=_text(answer.get("expires_at")),
            denial_code=_text(answer.get("denial_code")),
            denial_reason=_text(answer.get("denial_reason")),
            message=_text(answer.get("message")),
            created_at=_text(answer.get("created_at")),
            raw=MappingProxyType(dict(answer)),
        )

    @property
    def reason(self) -> Optional[str]:
        """Why it was refused, in the gateway's words (``denial_reason``, else its ``message``)."""
        return self.denial_reason or self.message

    @property
    def money(self) -> str:
        """The amount with its currency, to the currency's minor unit: ``"250.00 USD"``, ``"1200 JPY"``."""
        return " ".join(part for part in (_plain(self.amount, self.currency), self.currency) if part)


def _plain(amount: Optional[Decimal], currency: Optional[str]) -> str:
    if amount is None:
        return ""
    if currency is None:
        return f"{amount.normalize():f}"
    return f"{amount.quantize(Decimal(1).scaleb(-currency_exponent(currency))):f}"


@dataclass(frozen=True)
class Claim:
    """The one right to run an approved authorization's side effect, for a lease.

    Only the holder of ``token`` may execute the authorization or release it (reverse).
    """

    authorization_id: str
    token: str
    claimed_until: Optional[str] = None
    claimed_by: Optional[str] = None

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any]) -> Claim:
        """Parse the answer of ``client.claim(...)``."""
        token = answer.get("claim_token")
        ident = answer.get("authorization_id") or answer.get("id")
        if not isinstance(token, str) or not isinstance(ident, str):
            raise ValueError(f"not a claim (no authorization_id or claim_token): {dict(answer)!r}")
        return cls(ident, token, _text(answer.get("claimed_until")), _text(answer.get("claimed_by")))


@dataclass(frozen=True)
class GateOutcome:
    """The outcome of one gated call: what happened, and the sentence the model reads.

    ``kind``:

    - ``ran``: approved; the body ran and the authorization was executed (``result`` holds
      what the body returned; ``error`` an AgenitryError if executing it failed afterwards)
    - ``approved``: from :func:`decide` only: approved, nothing ran yet
    - ``denied``: refused by the policy or the owner, expired, or reversed; nothing ran
    - ``pending``: waits for the owner's decision; nothing ran
    - ``already_done``: this call already ran under its authorization; not repeated
    - ``in_progress``: another run holds the authorization's claim and is running it now
    - ``failed``: the body raised (``error``); the authorization was released
    - ``invalid``: the call's amount or arguments are wrong; nothing was authorized
    - ``unavailable``: the gateway could not be reached (or kept failing); nothing ran
    """

    kind: OutcomeKind
    message: str
    authorization: Optional[Authorization] = None
    result: Any = None
    error: Optional[BaseException] = None

    @property
    def is_error(self) -> bool:
        """Whether the model should read this as a tool error (everything but ran, approved, already_done)."""
        return self.kind in ERROR_KINDS

    @property
    def authorization_id(self) -> Optional[str]:
        return self.authorization.id if self.authorization is not None else None
