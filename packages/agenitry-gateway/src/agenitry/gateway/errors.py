"""Errors the gateway's service raises; the HTTP layer renders each as its status.

GatewayError                 status, code, message, extra
 ├── BadRequest              400
 ├── Unauthenticated         401  invalid_api_key
 ├── Forbidden               403
 ├── NotFound                404
 ├── Conflict                409  invalid_transition, amount_exceeds_authorization, ...
 ├── PayloadTooLarge         413
 ├── Unprocessable           422  validation and money errors, idempotency_key_reused
 └── StorageBusy             503  the database could not be reached or stayed locked
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, **self.extra}


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"


class Unauthenticated(GatewayError):
    status = 401
    code = "invalid_api_key"

    def __init__(self, message: str = "Invalid API key", **extra: Any) -> None:
        super().__init__(message, **extra)


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class Conflict(GatewayError):
    status = 409
    code = "conflict"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"


class Unprocessable(GatewayError):
    status = 422
    code = "validation_error"


class StorageBusy(GatewayError):
    status = 503
    code = "storage_unavailable"
