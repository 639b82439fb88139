"""Every decision the sync and async clients share; they differ only in how they wait and send.

A call is a *flow*: a generator that yields what it needs done (a :class:`Request` to send,
a :class:`Sleep`) and receives the result. It builds the request once (so the
Idempotency-Key is made once per logical call, before any retry), decides after each
attempt whether to retry and how long to wait (full-jitter exponential backoff, or the
server's Retry-After, capped), and turns the final answer into a dict or an exception.
:func:`drive` runs a flow with blocking I/O, :func:`adrive` with ``await``; the same
drivers run the gating flows of ``_gating``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Generator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union
from urllib.parse import quote, urlencode

from agenitry._config import MAX_RETRY_AFTER, MAX_RETRY_DELAY, ClientConfig
from agenitry._exceptions import AgenitryError, APIConnectionError, APIStatusError, status_error
from agenitry._http import AsyncTransport, Request, Response, Transport
from agenitry._types import ACTION_PATTERN, DIRECTIONS, is_reserved_action
from agenitry._verify import Keys, VerificationResult, verify_event
from agenitry._version import __version__

if TYPE_CHECKING:
    from agenitry._delivery import Delivery, DeliveryStats

logger = logging.getLogger("agenitry")

#: What the 0.2.0 SDK sends as agent_id when neither the call nor the client names one.
DEFAULT_AGENT = "default"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRY_STATUSES = frozenset({408, 429})
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
# Two base32 characters per lookup: an event id costs a few microseconds on the caller's thread.
_BASE32_PAIRS = [first + second for first in _BASE32 for second in _BASE32]
_SHIFTS = tuple(range(0, 130, 10))
# Patched by the retry-maths tests; the jitter needs no cryptographic strength. A generator of
# its own: background retries must not move the random module's shared state under the
# program (a test's seeded generator, say).
_jitter: Callable[[], float] = random.Random().random  # noqa: S311 - a delay, not a secret
_wall_clock: Callable[[], float] = time.time

T = TypeVar("T")
Answer = dict[str, Any]


class NotGiven:
    """Marks an argument the caller did not pass, where ``None`` means something else.

    ``set_policy(agent_id=None)`` is the venue-wide policy; leaving agent_id out means
    the client's default agent.
    """

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotGiven()


class NoLimit:
    """Removes a limit in ``set_policy`` (the gateway gets ``null``).

    A limit left at ``None``, the default, is not sent, so the gateway keeps the stored
    one: a limit left out never loosens a policy, and only this deliberate value does.

    >>> agent.set_policy(agent_id="voice-agent", max_daily_spend=NO_LIMIT)  # doctest: +SKIP
    """

    def __repr__(self) -> str:
        return "NO_LIMIT"


NO_LIMIT = NoLimit()


@dataclass(frozen=True)
class Sleep:
    """A flow asks its driver to wait this many seconds."""

    seconds: float


@dataclass(frozen=True)
class RequestSpec:
    """What one method sends: the rest (headers, key, retries) is the same for all."""

    method: str
    path: str
    params: Optional[Mapping[str, Any]] = None
    json: Any = None
    content: Optional[bytes] = None
    idempotency_key: Optional[str] = None


Flow = Generator[Any, Any, T]


def drive(flow: Flow[T], perform: Callable[[Any], Any]) -> T:
    """Run a flow, doing each step with blocking ``perform``; a step's exception is thrown into the flow."""
    try:
        step = next(flow)
        while True:
            try:
                result = perform(step)
            except Exception as exc:  # the flow decides what it can handle
                step = flow.throw(exc)
            else:
                step = flow.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def adrive(flow: Flow[T], perform: Callable[[Any], Awaitable[Any]]) -> T:
    """:func:`drive` for async code: each step is awaited."""
    try:
        step = next(flow)
        while True:
            try:
                result = await perform(step)
            except Exception as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def send_blocking(transport: Transport, step: Union[Request, Sleep]) -> Optional[Response]:
    """A request flow's step done with blocking I/O."""
    if isinstance(step, Sleep):
        time.sleep(step.seconds)
        return None
    return transport.send(step)


async def send_async(transport: AsyncTransport, step: Union[Request, Sleep]) -> Optional[Response]:
    """A request flow's step done with ``await``."""
    if isinstance(step, Sleep):
        await asyncio.sleep(step.seconds)
        return None
    return await transport.send(step)


# -- pure decisions -----------------------------------------------------------------------


def new_event_id() -> str:
    """A client-made event id: ``evt_`` and 26 base32 characters (130 random bits).

    >>> len(new_event_id()), new_event_id()[:4]
    (30, 'evt_')
    """
    number = int.from_bytes(secrets.token_bytes(17), "big")
    return "evt_" + "".join([_BASE32_PAIRS[(number >> shift) & 1023] for shift in _SHIFTS])


def utc_timestamp(seconds: float) -> str:
    """A moment as the gateway writes times: ISO 8601 UTC to the millisecond.

    >>> utc_timestamp(1_796_195_100.123)
    '2026-12-02T07:05:00.123Z'
    """
    ms = int(seconds * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def new_idempotency_key() -> str:
    return f"agenitry-{uuid.uuid4()}"


def is_retryable(outcome: Union[Response, AgenitryError]) -> bool:
    """Connection errors, timeouts, 408, 409 idempotency_key_in_use, 429 and 5xx are worth another try."""
    if isinstance(outcome, APIConnectionError):
        return True
    status = outcome.status
    if status in RETRY_STATUSES or status >= 500:
        return True
    if status == 409:
        if isinstance(outcome, AgenitryError):
            return outcome.error_code == "idempotency_key_in_use"
        return b"idempotency_key_in_use" in outcome.body
    return False


def backoff_delay(attempt: int, base_delay: float, cap: float = MAX_RETRY_DELAY) -> float:
    """Full jitter: a random wait between 0 and ``min(cap, base * 2**attempt)``.

    >>> 0 <= backoff_delay(3, 0.5) <= 4.0
    True
    """
    return _jitter() * min(cap, base_delay * 2.0 ** min(attempt, 32))


def parse_retry_after(value: Optional[str], cap: float = MAX_RETRY_AFTER) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), at most ``cap``.

    >>> parse_retry_after("2.5"), parse_retry_after("9999"), parse_retry_after("soon")
    (2.5, 60.0, None)
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:
            return None
        seconds = moment.timestamp() - _wall_clock()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), cap)


def retry_after_of(outcome: Union[Response, AgenitryError]) -> Optional[float]:
    if isinstance(outcome, Response):
        return parse_retry_after(outcome.headers.get("retry-after"))
    if isinstance(outcome, APIStatusError):
        return parse_retry_after(outcome.headers.get("retry-after"))
    return None


def next_delay(outcome: Union[Response, AgenitryError], attempt: int, base_delay: float) -> float:
    """How long to wait before attempt ``attempt + 1``: the server's word if it gave one."""
    after = retry_after_of(outcome)
    return after if after is not None else backoff_delay(attempt, base_delay)


_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]*>", re.DOTALL | re.IGNORECASE)


def _snippet(body: bytes, limit: int = 160) -> str:
    text = body[:4096].decode("utf-8", "replace")
    text = " ".join(_TAGS.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _decode(response: Response) -> tuple[Optional[Answer], str]:
    """The answer's JSON object, or None and a description of what came instead."""
    kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    if not response.body:
        return None, f"an empty body ({kind})"
    try:
        value = json.loads(response.body)
    except (ValueError, RecursionError):
        snippet = _snippet(response.body)
        return None, f"{kind} instead of JSON" + (f": {snippet!r}" if snippet else "")
    if not isinstance(value, dict):
        return None, f"JSON that is not an object: {_snippet(response.body)!r}"
    return value, ""


def error_from_response(response: Response) -> AgenitryError:
    """The exception for an error answer: its class from the status, its message from the body."""
    body, problem = _decode(response)
    headline = f"HTTP {response.status}" + (f" {response.reason}" if response.reason else "")
    if body is not None:
        error = body.get("error")
        message = error if isinstance(error, str) and error else f"{headline}: {_snippet(response.body)}"
    else:
        message = f"The gateway answered {headline} with {problem}"
    return status_error(message, status=response.status, body=body, headers=response.headers)


def parse_answer(response: Response) -> Answer:
    """A 2xx answer's JSON object; anything else raises a readable :class:`AgenitryError`."""
    if not 200 <= response.status < 300:
        raise error_from_response(response)
    body, problem = _decode(response)
    if body is None:
        raise AgenitryError(f"The gateway answered HTTP {response.status} with {problem}", status=response.status)
    return body


def _number(value: Any) -> Any:
    """Decimals travel as JSON numbers (integral ones as integers, so nothing is rounded)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _compact(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _number(value) for name, value in fields.items() if value is not None}


def _check_event(
    action: Any, amount: Any, direction: Any, context: Any, currency: Any, reason: Any, agent_id: Any
) -> None:
    """Refuse at once, on the caller's thread, an event the gateway would refuse later in the background."""
    if not isinstance(action, str) or not ACTION_PATTERN.match(action):
        raise ValueError(f"action must be a lower-case name such as 'order_captured', got {action!r}")
    if is_reserved_action(action):
        raise ValueError(f"action {action!r} is written by the gateway itself; choose another name")
    if amount is not None and (
        isinstance(amount, bool)
        or not isinstance(amount, (int, float, Decimal))
        or not math.isfinite(amount)
        or amount < 0
    ):
        raise ValueError(f"amount must be a finite number >= 0, got {amount!r}")
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if context is not None and not isinstance(context, dict):
        raise ValueError(f"context must be a dict, got {type(context).__name__}")
    for name, value in (("currency", currency), ("reason", reason), ("agent_id", agent_id)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {type(value).__name__}")


def encode_event(event: Mapping[str, Any]) -> bytes:
    """An event's JSON, made on the caller's thread so later changes to its context cannot leak in."""
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"The event cannot be sent as JSON: {exc}") from None


class BaseClient:
    """Configuration, request building and the retry flow, shared by both clients."""

    _delivery: Delivery

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        origin = config.origin
        default_port = 443 if origin.scheme == "https" else 80
        host = f"[{origin.host}]" if ":" in origin.host else origin.host
        self._headers = {
            "Host": host if origin.port == default_port else f"{host}:{origin.port}",
            "Authorization": f"Bearer {config.api_key}",
            "User-Agent": f"agenitry-python/{__version__}",
            "Accept": "application/json",
        }
        self._venue_path = quote(config.venue_id, safe="")

    @property
    def venue_id(self) -> str:
        return self._config.venue_id

    @property
    def agent_id(self) -> Optional[str]:
        """The agent every call acts for unless it names another."""
        return self._config.agent_id

    @property
    def base_url(self) -> str:
        return self._config.origin.url

    def verify_url(self, event_id: str) -> str:
        """The public page of an event: anyone holding the link can check what happened.

        >>> client.verify_url("evt_4k9x...")  # doctest: +SKIP
        'http://127.0.0.1:8700/verify/nobo-downtown/evt_4k9x...'
        """
        return f"{self._config.verify_base_url}/verify/{self._venue_path}/{quote(event_id, safe='')}"

    @property
    def dropped_events(self) -> int:
        """Events logged with ``log()`` that will never be stored (each was also warned about)."""
        return self._delivery.dropped

    @property
    def pending_events(self) -> int:
        """Events logged with ``log()`` and not delivered yet: in memory and in this client's spool.

        >>> client.pending_events  # doctest: +SKIP
        0
        """
        return self._delivery.pending

    def delivery_stats(self) -> DeliveryStats:
        """Where logged events are: queued, in flight, spooled, delivered, dropped, and the last error."""
        return self._delivery.stats()

    def _enqueue(self, event: Answer) -> Answer:
        status = self._delivery.put(encode_event(event))
        return {"id": event["id"], "status": status, "verify_url": self.verify_url(event["id"])}

    # -- the request flow ---------------------------------------------------------------

    def _build_request(self, spec: RequestSpec) -> Request:
        headers = dict(self._headers)
        body = spec.content
        if body is None and spec.json is not None:
            body = json.dumps(spec.json, separators=(",", ":"), allow_nan=False).encode("utf-8")
        if body is not None:
            headers["Content-Type"] = "application/json"
        if spec.method in WRITE_METHODS:
            headers["Idempotency-Key"] = spec.idempotency_key or new_idempotency_key()
        target = self._config.origin.prefix + spec.path
        query = {name: value for name, value in (spec.params or {}).items() if value is not None}
        if query:
            target += "?" + urlencode(query)
        return Request(spec.method, target, headers, body)

    def _flow(self, spec: RequestSpec, max_retries: Optional[int] = None) -> Flow[Answer]:
        request = self._build_request(spec)
        retries = self._config.max_retries if max_retries is None else max_retries
        attempt = 0
        while True:
            outcome: Union[Response, AgenitryError]
            try:
                outcome = yield request
            except APIConnectionError as exc:
                outcome = exc
            if not is_retryable(outcome):
                return _settle(outcome)
            if attempt >= retries:
                logger.debug(
                    "Not retrying %s %s: %s after %d attempt(s)",
                    request.method,
                    request.target,
                    _outcome_text(outcome),
                    attempt + 1,
                )
                return _settle(outcome)
            delay = next_delay(outcome, attempt, self._config.retry_base_delay)
            logger.debug(
                "Retrying %s %s in %.3f s (retry %d of %d, Idempotency-Key %s): %s",
                request.method,
                request.target,
                delay,
                attempt + 1,
                retries,
                request.headers.get("Idempotency-Key", "-"),
                _outcome_text(outcome),
            )
            yield Sleep(delay)
            attempt += 1

    # -- one request spec per method ----------------------------------------------------------

    def _agent(self, agent_id: Optional[str]) -> str:
        return agent_id or self._config.agent_id or DEFAULT_AGENT

    def _agent_filter(self, agent_id: Union[str, NotGiven, None]) -> Optional[str]:
        return self._config.agent_id if isinstance(agent_id, NotGiven) else agent_id

    def _new_event(
        self,
        action: str,
        *,
        amount: Any,
        currency: Optional[str],
        direction: Optional[str],
        agent_id: Optional[str],
        context: Optional[dict[str, Any]],
        reason: Optional[str],
    ) -> Answer:
        _check_event(action, amount, direction, context, currency, reason, agent_id)
        return {
            "id": new_event_id(),
            "venue_id": self._config.venue_id,
            "agent_id": self._agent(agent_id),
            "action": action,
            # Stamped now, on the caller's thread: a spooled event delivered hours later keeps it.
            "occurred_at": utc_timestamp(_wall_clock()),
            **_compact(
                {"amount": amount, "currency": currency, "direction": direction, "context": context, "reason": reason}
            ),
        }

    def _log_spec(self, event: Answer) -> RequestSpec:
        return RequestSpec("POST", "/v1/events", json=event)

    def _batch_spec(self, items: list[bytes], key: str) -> RequestSpec:
        return RequestSpec(
            "POST", "/v1/events/batch", content=b'{"events":[' + b",".join(items) + b"]}", idempotency_key=key
        )

    def _events_spec(
        self,
        agent_id: Union[str, NotGiven, None],
        action: Optional[str],
        context: Optional[dict[str, Any]],
        limit: int,
        offset: int,
    ) -> RequestSpec:
        params = {
            "agent_id": self._agent_filter(agent_id),
            "action": action,
            "context": json.dumps(context, separators=(",", ":")) if context is not None else None,
            "limit": limit,
            "offset": offset,
        }
        return RequestSpec("GET", f"/v1/events/{self._venue_path}", params=params)

    def _stats_spec(self, period: str) -> RequestSpec:
        return RequestSpec("GET", f"/v1/events/{self._venue_path}/stats", params={"period": period})

    def _authorize_spec(
        self,
        action: str,
        amount: Any,
        agent_id: Optional[str],
        currency: Optional[str],
        context: Optional[dict[str, Any]],
        reason: Optional[str],
        idempotency_key: Optional[str] = None,
    ) -> RequestSpec:
        body = {
            "agent_id": self._agent(agent_id),
            "action": action,
            "amount": _number(amount),
            **_compact({"currency": currency, "context": context, "reason": reason}),
        }
        return RequestSpec("POST", "/v1/authorize", json=body, idempotency_key=idempotency_key)

    def _step_spec(
        self, authorization_id: str, step: str, idempotency_key: Optional[str] = None, **fields: Any
    ) -> RequestSpec:
        """One lifecycle step; fields left None are not sent, so a step without them sends ``{}``."""
        path = f"/v1/authorize/{quote(authorization_id, safe='')}/{step}"
        return RequestSpec("POST", path, json=_compact(fields), idempotency_key=idempotency_key)

    def _authorizations_spec(
        self,
        agent_id: Union[str, NotGiven, None],
        action: Optional[str],
        status: Optional[str],
        limit: int,
        offset: int,
    ) -> RequestSpec:
        params = {
            "agent_id": self._agent_filter(agent_id),
            "action": action,
            "status": status,
            "limit": limit,
            "offset": offset,
        }
        return RequestSpec("GET", "/v1/authorize", params=params)

    def _verify_spec(self, event_id: str) -> RequestSpec:
        return RequestSpec("GET", f"/v1/verify/{self._venue_path}/{quote(event_id, safe='')}")

    def _public_keys_spec(self) -> RequestSpec:
        return RequestSpec("GET", "/v1/log/public-key")

    @staticmethod
    def _check_proof(document: Answer, public_key: Optional[Keys], served_keys: Optional[Answer]) -> VerificationResult:
        """Check a fetched proof here; without a trusted key, against the keys the gateway serves."""
        if public_key is None:
            listed = (served_keys or {}).get("keys") or []
            public_key = [str(key["public_key"]) for key in listed if isinstance(key, dict) and key.get("public_key")]
        return verify_event(document, public_key)

    def _get_authorization_spec(self, authorization_id: str) -> RequestSpec:
        return RequestSpec("GET", f"/v1/authorize/{quote(authorization_id, safe='')}")

    def _set_policy_spec(self, agent_id: Union[str, NotGiven, None], limits: Mapping[str, Any]) -> RequestSpec:
        # None is left out (the gateway keeps that limit); NO_LIMIT is sent as null (it removes it).
        sent = _compact({"agent_id": self._agent_filter(agent_id), **limits})
        body = {name: None if isinstance(value, NoLimit) else value for name, value in sent.items()}
        return RequestSpec("PUT", "/v1/policies", json=body)

    def _get_policies_spec(self) -> RequestSpec:
        return RequestSpec("GET", "/v1/policies")

    def _delete_policy_spec(self, policy_id: str) -> RequestSpec:
        return RequestSpec("DELETE", f"/v1/policies/{quote(policy_id, safe='')}")


def _settle(outcome: Union[Response, AgenitryError]) -> Answer:
    if isinstance(outcome, AgenitryError):
        raise outcome
    return parse_answer(outcome)


def _outcome_text(outcome: Union[Response, AgenitryError]) -> str:
    if isinstance(outcome, Response):
        return f"HTTP {outcome.status}"
    return f"{type(outcome).__name__}: {outcome.message}"
