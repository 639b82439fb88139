"""Every error answers ``{"error": <sentence>, "code": <machine code>}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

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
    # Pydantic says "Value error, must be ..."; the prefix tells a person nothing.
    if any(problem.get("type") == "json_invalid" for problem in problems):
        return error_response(400, "The request body is not valid JSON", "invalid_json")
    details = [
        {
            "field": _location(tuple(problem.get("loc", ()))),
            "message": str(problem.get("msg", "")).removeprefix("Value error, "),
            "type": problem.get("type"),
        }
        for problem in problems
    ]
    first = details[0] if details else {"field": "body", "message": "invalid"}
    message = f"{first['field']}: {first['message']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return error_response(422, message, "validation_error", details=details)


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
    return error_response(exc.status_code, message, code)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("Unexpected error", exc_info=exc)
    return error_response(500, "The gateway failed unexpectedly; nothing was changed", "internal_error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
