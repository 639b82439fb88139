"""Every error answers ``{"error": <sentence>, "code": <machine code>}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from agenitry.gateway.api.schemas import UNKNOWN_FIELD
from agenitry.gateway.errors import GatewayError

logger = logging.getLogger("agenitry.gateway")

_HTTP_CODES = {
    400: "bad_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def error_response(status: int, message: str, code: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, "code": code, **extra}, status_code=status)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _gateway_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)  # noqa: S101 - registered for this type only
    return JSONResponse(exc.body(), status_code=exc.status)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    problems = exc.errors()
    if any(problem.get("type") == "json_invalid" for problem in problems):
        return error_response(400, "The request body is not valid JSON", "invalid_json")
    details = [detail for problem in problems for detail in _details(problem)]
    # An unknown field comes first: it is likely a typo, and the other problems its consequence.
    details.sort(key=lambda detail: detail["type"] != UNKNOWN_FIELD)
    first = details[0] if details else {"field": "body", "message": "invalid", "type": None}
    if first["type"] == UNKNOWN_FIELD:
        message, code = str(first["message"]), UNKNOWN_FIELD
    else:
        message, code = f"{first['field']}: {first['message']}", "validation_error"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return error_response(422, message, code, details=details)


def _details(problem: Any) -> list[dict[str, Any]]:
    """The entries of ``details`` for one problem pydantic found: one per unknown field."""
    where = _location(tuple(problem.get("loc", ())))
    if problem.get("type") == UNKNOWN_FIELD:
        return [
            {"field": name if where == "body" else f"{where}.{name}", "message": sentence, "type": UNKNOWN_FIELD}
            for name, sentence in problem["ctx"]["unknown"]
        ]
    # Pydantic says "Value error, must be ..."; the prefix tells a person nothing.
    message = str(problem.get("msg", "")).removeprefix("Value error, ")
    return [{"field": where, "message": message, "type": problem.get("type")}]


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for this type only
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = "No such route"
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 400 and "parsing the body" in message:
        # Python's parser gives up on ~1,000 levels of nesting and on integers of over 4,300 digits.
        message = "The request body could not be parsed as JSON (nested too deeply, or a number too long?)"
        code = "invalid_json"
    response = error_response(exc.status_code, message, code)
    response.headers.update(exc.headers or {})
    return response


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("Unexpected error", exc_info=exc)
    return error_response(500, "The gateway failed unexpectedly; nothing was changed", "internal_error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
