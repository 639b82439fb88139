"""Errors raised by the Agenitry client.

AgenitryError                      status, body, code (NETWORK | TIMEOUT | API)
 ├── APIStatusError                the gateway answered 4xx/5xx           code API
 │    ├── BadRequestError          400
 │    ├── AuthenticationError      401  invalid_api_key
 │    ├── PermissionDeniedError    403  admin_required, agent_mismatch
 │    ├── NotFoundError            404
 │    ├── ConflictError            409  invalid_transition, amount_exceeds_authorization
 │    ├── UnprocessableEntityError 422  validation errors, idempotency_key_reused
 │    ├── RateLimitError           429
 │    └── InternalServerError      5xx
 ├── APIConnectionError            no answer: refused, reset, unreachable  code NETWORK
 │    └── APITimeoutError          no answer in time                       code TIMEOUT
 ├── SpendDenied                   the gateway said no (authorization, reason, denial_code)
 └── ApprovalRequired              a person must decide first (authorization_id)

A garbled answer (HTML from a proxy, cut-off JSON) is an AgenitryError too, with the
status and a readable message, never a JSON traceback. Dropped events are not errors:
they are counted on the client and announced with :class:`EventsDroppedWarning`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Optional

ErrorCode = Literal["NETWORK", "TIMEOUT", "API"]


class AgenitryError(Exception):
    """An Agenitry call failed.

    ``status`` is the HTTP status (0 when no answer came back), ``body`` the parsed
    answer when there was one, and ``code`` says which kind of failure it was.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        body: Optional[dict[str, Any]] = None,
        code: ErrorCode = "API",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.code = code

    @property
    def error_code(self) -> Optional[str]:
        """The gateway's machine-readable code (``"max_daily_spend"``...), if any."""
        if isinstance(self.body, dict):
            value = self.body.get("code")
            return value if isinstance(value, str) else None
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status}, code={self.code!r})"


class APIStatusError(AgenitryError):
    """The gateway answered with an error status; ``headers`` are the answer's (lower-case names)."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: Optional[dict[str, Any]] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__(message, status=status, body=body, code="API")
        self.headers: Mapping[str, str] = headers or {}


class BadRequestError(APIStatusError):
    """400: the request could not be read (for instance, not JSON)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, unknown or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this (an agent key changing a policy, or acting for another agent)."""


class NotFoundError(APIStatusError):
    """404: no such object in this key's venue."""


class ConflictError(APIStatusError):
    """409: the authorization is not in a state that allows this step."""


class UnprocessableEntityError(APIStatusError):
    """422: a field was refused; ``message`` names it."""


class RateLimitError(APIStatusError):
    """429: too many requests; retried automatically, honouring Retry-After."""


class InternalServerError(APIStatusError):
    """5xx: the gateway (or a proxy in front of it) failed; retried automatically."""


class APIConnectionError(AgenitryError):
    """No answer came back: the connection was refused, reset or never made."""

    def __init__(self, message: str = "Could not reach the Agenitry gateway", *, code: ErrorCode = "NETWORK") -> None:
        super().__init__(message, status=0, body=None, code=code)


class APITimeoutError(APIConnectionError):
    """No answer came back within the timeout."""

    def __init__(self, message: str = "The Agenitry gateway did not answer in time") -> None:
        super().__init__(message, code="TIMEOUT")


class SpendDenied(AgenitryError):
    """The gateway refused the spend (or the owner denied it, or it expired while waiting).

    ``authorization`` is the gateway's answer, ``reason`` its sentence for a person and
    ``denial_code`` its machine code (``max_single_amount``, ``no_policy``...).
    """

    def __init__(self, authorization: dict[str, Any]) -> None:
        self.authorization = authorization
        self.authorization_id: Optional[str] = authorization.get("authorization_id") or authorization.get("id")
        self.reason: Optional[str] = authorization.get("denial_reason") or authorization.get("message")
        self.denial_code: Optional[str] = authorization.get("denial_code")
        status = authorization.get("status", "denied")
        message = f"Spend {status}: {self.reason}" if self.reason else f"Spend {status} ({self.authorization_id})"
        super().__init__(message, status=200, body=authorization, code="API")


class ApprovalRequired(AgenitryError):
    """The spend waits for a person's approval; ``authorization_id`` is what they decide on.

    Poll it with ``client.wait_for_approval(authorization_id, timeout=...)`` or resume later.
    """

    def __init__(self, authorization: dict[str, Any]) -> None:
        self.authorization = authorization
        self.authorization_id: str = str(authorization.get("authorization_id") or authorization.get("id"))
        self.expires_at: Optional[str] = authorization.get("expires_at")
        super().__init__(
            f"Authorization {self.authorization_id} is waiting for owner approval",
            status=200,
            body=authorization,
            code="API",
        )


class EventsDroppedWarning(UserWarning):
    """Events were dropped (queue full without a spool, refused by the gateway, or undelivered at exit)."""


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error(
    message: str, *, status: int, body: Optional[dict[str, Any]], headers: Optional[Mapping[str, str]] = None
) -> APIStatusError:
    """The exception class for an error status: one per status, 5xx together."""
    kind = InternalServerError if status >= 500 else _STATUS_ERRORS.get(status, APIStatusError)
    return kind(message, status=status, body=body, headers=headers)
