"""The pure decisions of every call: when to retry, how long to wait, what an answer means.

Table-driven, with the jitter and the wall clock patched: full-jitter exponential backoff
capped at MAX_RETRY_DELAY; Retry-After as seconds or an HTTP date, capped at
MAX_RETRY_AFTER; which outcomes are retried; which exception class each status maps to;
garbage and HTML answers as readable errors. The request flow is driven with scripted
outcomes to pin the whole loop: one Idempotency-Key per logical call, reused on every
retry, and one debug line per retry decision.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any, Optional, Union

import pytest

from agenitry import (
    AgenitryError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
    _base,
)
from agenitry._base import RequestSpec, Sleep, backoff_delay, drive, is_retryable, parse_answer, parse_retry_after
from agenitry._config import MAX_RETRY_AFTER, MAX_RETRY_DELAY, resolve
from agenitry._http import Request, Response

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_base, "_wall_clock", lambda: NOW)


def http_date(offset: float) -> str:
    return format_datetime(datetime.fromtimestamp(NOW + offset, tz=timezone.utc), usegmt=True)


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [
        (0, 1.0, 0.5),
        (1, 1.0, 1.0),
        (2, 1.0, 2.0),
        (3, 1.0, 4.0),
        (4, 1.0, MAX_RETRY_DELAY),
        (10, 1.0, MAX_RETRY_DELAY),
        (500, 1.0, MAX_RETRY_DELAY),
        (3, 0.5, 2.0),
        (3, 0.0, 0.0),
    ],
)
def test_backoff_is_full_jitter_exponential_and_capped(
    monkeypatch: pytest.MonkeyPatch, attempt: int, jitter: float, expected: float
) -> None:
    monkeypatch.setattr(_base, "_jitter", lambda: jitter)
    assert backoff_delay(attempt, 0.5) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("2", 2.0),
        ("2.5", 2.5),
        (" 7 ", 7.0),
        ("-3", 0.0),
        ("120", MAX_RETRY_AFTER),
        ("soon", None),
        ("nan", None),
        ("", None),
        (http_date(30), 30.0),
        (http_date(-30), 0.0),
        (http_date(3600), MAX_RETRY_AFTER),
    ],
)
def test_retry_after_is_seconds_or_an_http_date_capped(header: Optional[str], expected: Optional[float]) -> None:
    assert parse_retry_after(header) == (pytest.approx(expected) if expected is not None else None)


def answer(status: int, body: bytes = b"{}", content_type: str = "application/json", **headers: str) -> Response:
    return Response(status, {"content-type": content_type, **headers}, body, "")


@pytest.mark.parametrize(
    ("outcome", "retried"),
    [
        (answer(200), False),
        (answer(400), False),
        (answer(401), False),
        (answer(403), False),
        (answer(404), False),
        (answer(408), True),
        (answer(409, b'{"error":"busy","code":"idempotency_key_in_use"}'), True),
        (answer(409, b'{"error":"no","code":"invalid_transition"}'), False),
        (answer(422), False),
        (answer(429), True),
        (answer(500), True),
        (answer(502, b"<html>Bad Gateway</html>", "text/html"), True),
        (answer(503), True),
        (answer(504), True),
        (APIConnectionError("refused"), True),
        (APITimeoutError(), True),
        (ConflictError("in use", status=409, body={"code": "idempotency_key_in_use"}), True),
        (ConflictError("no", status=409, body={"code": "invalid_transition"}), False),
    ],
)
def test_which_outcomes_are_retried(outcome: Union[Response, AgenitryError], retried: bool) -> None:
    assert is_retryable(outcome) is retried


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (405, APIStatusError),
        (409, ConflictError),
        (413, APIStatusError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, InternalServerError),
        (502, InternalServerError),
        (503, InternalServerError),
    ],
)
def test_each_status_maps_to_its_class_with_the_gateways_message(status: int, kind: type[APIStatusError]) -> None:
    body = b'{"error": "Amount must be a number", "code": "invalid_amount"}'
    with pytest.raises(kind) as raised:
        parse_answer(answer(status, body))
    error = raised.value
    assert type(error) is kind and isinstance(error, AgenitryError)
    assert (error.status, error.code, error.message, error.error_code) == (
        status,
        "API",
        "Amount must be a number",
        "invalid_amount",
    )


@pytest.mark.parametrize(
    ("response", "kind", "message"),
    [
        (
            Response(
                502,
                {"content-type": "text/html"},
                b"<html><title>502 Bad Gateway</title><h1>nginx</h1></html>",
                "Bad Gateway",
            ),
            InternalServerError,
            "The gateway answered HTTP 502 Bad Gateway with text/html instead of JSON: '502 Bad Gateway nginx'",
        ),
        (
            Response(
                200, {"content-type": "text/html"}, b"<html><body>Welcome to the captive portal</body></html>", "OK"
            ),
            AgenitryError,
            "The gateway answered HTTP 200 with text/html instead of JSON: 'Welcome to the captive portal'",
        ),
        (
            Response(200, {"content-type": "application/json"}, b'{"approved": tr', "OK"),
            AgenitryError,
            "The gateway answered HTTP 200 with application/json instead of JSON: '{\"approved\": tr'",
        ),
        (
            Response(503, {}, b"", "Service Unavailable"),
            InternalServerError,
            "The gateway answered HTTP 503 Service Unavailable with an empty body (no content type)",
        ),
        (
            Response(200, {"content-type": "application/json"}, b"[1, 2]", "OK"),
            AgenitryError,
            "The gateway answered HTTP 200 with JSON that is not an object: '[1, 2]'",
        ),
    ],
)
def test_garbage_and_html_answers_become_readable_errors(
    response: Response, kind: type[AgenitryError], message: str
) -> None:
    with pytest.raises(kind) as raised:
        parse_answer(response)
    assert type(raised.value) is kind
    assert raised.value.message == message and raised.value.status == response.status
    assert raised.value.body is None


class Script:
    """Plays scripted outcomes to a request flow, recording what it was asked to do."""

    def __init__(self, *outcomes: Union[Response, Exception]) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[Request] = []
        self.sleeps: list[float] = []

    def __call__(self, step: Union[Request, Sleep]) -> Any:
        if isinstance(step, Sleep):
            self.sleeps.append(step.seconds)
            return None
        self.requests.append(step)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
def client() -> _base.BaseClient:
    return _base.BaseClient(resolve("ag_test", "nobo-downtown", max_retries=3, retry_base_delay=0.5))


def authorize_spec(client: _base.BaseClient) -> RequestSpec:
    return client._authorize_spec("order_captured", 127.0, None, None, None, None)


@pytest.mark.parametrize(
    ("outcomes", "sleeps"),
    [
        ([answer(200, b'{"approved": true}')], []),
        ([answer(503), answer(200, b'{"approved": true}')], [0.5]),
        ([answer(503), answer(502), answer(500), answer(200, b'{"approved": true}')], [0.5, 1.0, 2.0]),
        ([APIConnectionError("refused"), APITimeoutError(), answer(200, b'{"approved": true}')], [0.5, 1.0]),
        ([answer(429, **{"retry-after": "3"}), answer(200, b'{"approved": true}')], [3.0]),
        ([answer(429, **{"retry-after": "3600"}), answer(200, b'{"approved": true}')], [MAX_RETRY_AFTER]),
        ([answer(503, **{"retry-after": http_date(12)}), answer(200, b'{"approved": true}')], [12.0]),
        ([answer(409, b'{"code":"idempotency_key_in_use"}'), answer(200, b'{"approved": true}')], [0.5]),
    ],
)
def test_the_flow_retries_with_one_idempotency_key(
    monkeypatch: pytest.MonkeyPatch, client: _base.BaseClient, outcomes: list[Any], sleeps: list[float]
) -> None:
    monkeypatch.setattr(_base, "_jitter", lambda: 1.0)
    script = Script(*outcomes)
    assert drive(client._flow(authorize_spec(client)), script) == {"approved": True}
    assert script.sleeps == pytest.approx(sleeps)
    keys = {request.headers["Idempotency-Key"] for request in script.requests}
    assert len(script.requests) == len(outcomes) and len(keys) == 1
    assert {request.body for request in script.requests} == {
        b'{"agent_id":"default","action":"order_captured","amount":127.0}'
    }


def test_two_logical_calls_get_two_keys_and_reads_get_none(client: _base.BaseClient) -> None:
    script = Script(answer(200), answer(200), answer(200))
    drive(client._flow(authorize_spec(client)), script)
    drive(client._flow(authorize_spec(client)), script)
    drive(client._flow(client._get_policies_spec()), script)
    first, second, read = script.requests
    assert first.headers["Idempotency-Key"] != second.headers["Idempotency-Key"]
    assert "Idempotency-Key" not in read.headers
    assert first.headers["Authorization"] == "Bearer ag_test" and first.headers["Content-Type"] == "application/json"
    assert (first.method, first.target, read.method, read.target) == ("POST", "/v1/authorize", "GET", "/v1/policies")


def test_retries_stop_after_max_retries_with_the_last_error(
    monkeypatch: pytest.MonkeyPatch, client: _base.BaseClient, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_base, "_jitter", lambda: 1.0)
    script = Script(*[answer(502, b"<html>Bad Gateway</html>", "text/html")] * 4)
    with caplog.at_level(logging.DEBUG, logger="agenitry"), pytest.raises(InternalServerError) as raised:
        drive(client._flow(authorize_spec(client)), script)
    assert raised.value.status == 502 and "Bad Gateway" in raised.value.message
    assert len(script.requests) == 4 and script.sleeps == [0.5, 1.0, 2.0]
    decisions = [record.getMessage() for record in caplog.records if record.name == "agenitry"]
    assert len(decisions) == 4
    assert decisions[0].startswith("Retrying POST /v1/authorize in 0.500 s (retry 1 of 3, Idempotency-Key agenitry-")
    assert decisions[-1] == "Not retrying POST /v1/authorize: HTTP 502 after 4 attempt(s)"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(client: _base.BaseClient, status: int) -> None:
    script = Script(answer(status, b'{"error": "no", "code": "x"}'))
    with pytest.raises(APIStatusError):
        drive(client._flow(authorize_spec(client)), script)
    assert len(script.requests) == 1 and script.sleeps == []


def test_query_strings_and_paths_are_encoded(client: _base.BaseClient) -> None:
    spec = client._events_spec(None, "order_captured", {"table": 7}, 10, 0)
    request = client._build_request(spec)
    assert request.target == (
        "/v1/events/nobo-downtown?action=order_captured&context=%7B%22table%22%3A7%7D&limit=10&offset=0"
    )
    weird = client._build_request(client._get_authorization_spec("auth/../x?y"))
    assert weird.target == "/v1/authorize/auth%2F..%2Fx%3Fy"
    prefixed = _base.BaseClient(resolve("ag_k", "v", base_url="https://gw.example.com:8443/agenitry/"))
    assert prefixed._build_request(prefixed._get_policies_spec()).target == "/agenitry/v1/policies"
    assert prefixed._build_request(prefixed._get_policies_spec()).headers["Host"] == "gw.example.com:8443"
    assert prefixed.verify_url("evt_1") == "https://gw.example.com:8443/agenitry/verify/v/evt_1"
