"""One gated call, written once: decide, claim, run, then execute or release.

Invariants, whoever drives the flow (``run_gated``, ``arun_gated``, ``client.spend``,
``@client.guard``, every adapter):

- The body runs only while this run holds the authorization's claim, so one approval has
  at most one side effect, across threads and processes: a second run of the same call
  gets ``in_progress`` (claimed) or ``already_done`` (executed), never a second run.
- The decision is the gateway's record as it is now; a replayed answer to a repeated
  call (the same :func:`call_key`) is read again, since the owner may have decided since.
- An amount is checked (:func:`~agenitry.check_amount`) before anything is asked, so a
  model's ``"450"`` or ``true`` is ``invalid`` and nothing is authorized.
- A model-caused problem never raises: it is an outcome with a true sentence for the
  model. Only what the developer must fix raises (a key the gateway refuses: 401/403).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from agenitry import _texts
from agenitry._base import Flow, Sleep, is_retryable
from agenitry._config import APPROVAL_POLL_INITIAL, APPROVAL_POLL_MAX
from agenitry._exceptions import (
    AgenitryError,
    ApprovalRequired,
    AuthenticationError,
    ConflictError,
    PermissionDeniedError,
    SpendDenied,
)
from agenitry._lifecycle import APPROVED_STATUSES, SPENT_STATUSES
from agenitry._models import Authorization, Claim, GateOutcome
from agenitry._money import InvalidAmount, check_amount, resolve_amount
from agenitry._recording import record_tool_call, summarize_arguments
from agenitry._runners import RUN_BODY, AsyncRunner, Body, BodyResult, Call, SyncRunner

if TYPE_CHECKING:
    from agenitry._async_client import AsyncAgenitry
    from agenitry._client import Agenitry

logger = logging.getLogger("agenitry")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def call_key(scope: Optional[str], call_id: Optional[str], tool: str, arguments: Mapping[str, Any]) -> Optional[str]:
    """The Idempotency-Key of one tool call: the same call repeated continues its authorization.

    ``scope`` is what makes a call id unique (a thread, a run; None if the id is unique
    alone). The arguments are part of the key, so the same call id with other arguments
    (an edited call) is a new decision, never a replay of the first one's approval.
    None without a call id: nothing can repeat the call.

    >>> call_key("thread-1", "call_7", "order", {"total": 42.5})[:9]
    'agenitry-'
    >>> call_key("thread-1", None, "order", {}) is None
    True
    """
    if not call_id:
        return None
    canonical = json.dumps(dict(arguments), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
    text = "\x00".join((scope or "", call_id, tool, canonical))
    return "agenitry-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:48]


@dataclass(frozen=True)
class GatedCall:
    """One spending call to gate: what it spends, and how to find its authorization again.

    ``amount``: with ``arguments`` (a tool call), an argument's name, a function of the
    arguments, or a number; without, the amount itself. Either way it must pass
    :func:`~agenitry.check_amount`. ``key``: the Idempotency-Key of the authorize request
    (:func:`call_key`). ``authorization_id``: continue this authorization (after a pause)
    instead of asking. ``wait``: seconds to wait for the owner's decision when pending.
    ``actual``: the amount really spent, from the body's result. ``tool`` and
    ``arguments`` name the call in the authorization's context and in its ``tool_call``
    record (``record=False``: the adapter records calls another way); ``extra`` adds
    framework ids to that record.
    """

    action: str
    amount: Any
    arguments: Optional[Mapping[str, Any]] = None
    tool: Optional[str] = None
    currency: Optional[str] = None
    agent_id: Optional[str] = None
    context: Optional[Mapping[str, Any]] = None
    reason: Optional[str] = None
    settle: bool = False
    key: Optional[str] = None
    authorization_id: Optional[str] = None
    wait: Optional[float] = None
    actual: Optional[Callable[[Any], Any]] = None
    record: bool = True
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def name(self) -> str:
        """The call's name in sentences and records: the tool, else the action."""
        return self.tool or self.action

    def checked_amount(self) -> Decimal:
        """The amount, resolved against the arguments and checked; :class:`InvalidAmount` if wrong."""
        if self.arguments is None:
            return check_amount(self.amount, self.currency)
        return resolve_amount(self.amount, self.arguments, self.name, self.currency)

    def authorization_context(self) -> Optional[dict[str, Any]]:
        """What the authorization records about the call: tool, summarized arguments, ``context``."""
        standard: dict[str, Any] = {}
        if self.tool is not None:
            standard["tool"] = self.tool
        if self.arguments is not None:
            standard["arguments"] = summarize_arguments(self.arguments)
        merged = {**standard, **(self.context or {})}
        return merged or None


@dataclass(frozen=True)
class Held:
    """A claimed authorization: this run alone may now run the body, then execute or release it."""

    authorization: Authorization
    claim: Claim


@dataclass(frozen=True)
class Finished:
    """The end of a gated call, with the gateway's answers to each closing step."""

    outcome: GateOutcome
    executed: Optional[dict[str, Any]] = None
    settled: Optional[dict[str, Any]] = None
    reversed: Optional[dict[str, Any]] = None


# -- what an error means ------------------------------------------------------------------


def _unusable(request: GatedCall, error: AgenitryError, authorization: Optional[Authorization]) -> GateOutcome:
    """An AgenitryError as an outcome: the gateway out of reach → unavailable; a key it refuses raises."""
    if isinstance(error, (AuthenticationError, PermissionDeniedError)) or not is_retryable(error):
        raise error
    return GateOutcome("unavailable", _texts.unavailable_text(request.name, error), authorization, error=error)


def _refused(authorization: Authorization) -> Optional[GateOutcome]:
    """The outcome of an authorization that cannot run now; None when it is approved."""
    status = authorization.status
    if status == "approved":
        return None
    if status == "pending":
        return GateOutcome("pending", _texts.pending_text(authorization), authorization)
    if status in SPENT_STATUSES:
        return GateOutcome("already_done", _texts.already_done_text(authorization), authorization)
    return GateOutcome("denied", _texts.denied_text(authorization), authorization)


# -- the flows ------------------------------------------------------------------------------


def poll_flow(authorization_id: str, timeout: float) -> Flow[dict[str, Any]]:
    """Read an authorization with capped backoff until it is not pending or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    delay = APPROVAL_POLL_INITIAL
    while True:
        record: dict[str, Any] = yield Call("get_authorization", (authorization_id,))
        remaining = deadline - time.monotonic()
        if record.get("status") != "pending" or remaining <= 0:
            return record
        yield Sleep(min(delay, remaining))
        delay = min(delay * 2, APPROVAL_POLL_MAX)


def approval_flow(authorization_id: str, timeout: float) -> Flow[dict[str, Any]]:
    """Wait for the owner: approved → its record; denied or expired → :class:`SpendDenied`;
    still pending at the deadline → :class:`ApprovalRequired`."""
    record = yield from poll_flow(authorization_id, timeout)
    if record.get("status") in APPROVED_STATUSES:
        return record
    if record.get("status") == "pending":
        raise ApprovalRequired(record)
    raise SpendDenied(record)


def decision_flow(request: GatedCall) -> Flow[Union[Authorization, GateOutcome]]:
    """The authorization as the gateway has it now (after waiting, if asked), or why there is none."""
    try:
        if request.authorization_id is not None:
            answer = yield Call("get_authorization", (request.authorization_id,))
        else:
            try:
                amount = request.checked_amount()
            except InvalidAmount as error:
                return GateOutcome("invalid", _texts.invalid_text(request.name, error), error=error)
            try:
                answer = yield Call(
                    "authorize",
                    (request.action, amount),
                    {
                        "agent_id": request.agent_id,
                        "currency": request.currency,
                        "context": request.authorization_context(),
                        "reason": request.reason,
                        "idempotency_key": request.key,
                    },
                )
            except AgenitryError as error:
                if error.status in (400, 422):  # the action, amount or currency was refused
                    return GateOutcome("invalid", _texts.invalid_text(request.name, error), error=error)
                raise
            if request.key is not None and answer.get("status") in ("pending", "approved"):
                # A repeat is answered with the first decision; the owner may have decided since.
                answer = yield Call("get_authorization", (Authorization.from_answer(answer).id,))
        authorization = Authorization.from_answer(answer)
        if authorization.status == "pending" and request.wait is not None:
            authorization = Authorization.from_answer((yield from poll_flow(authorization.id, request.wait)))
    except AgenitryError as error:
        return _unusable(request, error, None)
    return authorization


def claim_flow(request: GatedCall, authorization: Authorization) -> Flow[Union[Held, GateOutcome]]:
    """Claim an approved authorization; a run that cannot is told why (in progress, done, ...)."""
    try:
        # No Idempotency-Key of ours: two runs of one call must not share a claim. The
        # client's own key (one per call, reused on retries) recovers a lost answer.
        answer = yield Call("claim", (authorization.id,))
    except ConflictError as conflict:
        if conflict.error_code == "already_claimed":
            return GateOutcome("in_progress", _texts.in_progress_text(authorization), authorization, error=conflict)
        try:
            current = Authorization.from_answer((yield Call("get_authorization", (authorization.id,))))
        except AgenitryError as error:
            return _unusable(request, error, authorization)
        refused = _refused(current)
        # Still approved yet not claimable: someone else is at it; never run twice.
        return refused or GateOutcome("in_progress", _texts.in_progress_text(current), current, error=conflict)
    except AgenitryError as error:
        return _unusable(request, error, authorization)
    return Held(authorization, Claim.from_answer(answer))


def begin_flow(request: GatedCall) -> Flow[Union[Held, GateOutcome]]:
    """Decide and claim: a :class:`Held` authorization to run under, or the outcome that ends the call."""
    decided = yield from decision_flow(request)
    if isinstance(decided, GateOutcome):
        return decided
    refused = _refused(decided)
    if refused is not None:
        return refused
    return (yield from claim_flow(request, decided))


def finish_flow(
    request: GatedCall, held: Held, body: BodyResult, actual_amount: Optional[Decimal] = None
) -> Flow[Finished]:
    """After the body: it raised → release the claim (reverse with the token); else execute
    (for ``actual_amount``, None: the authorized amount) and settle when asked."""
    authorization, token = held.authorization, held.claim.token
    if body.error is not None:
        released: Optional[dict[str, Any]] = None
        try:
            released = yield Call("reverse", (authorization.id,), {"claim_token": token})
        except AgenitryError as error:  # the body's error matters more; the hold lapses at expiry
            logger.warning("Could not release %s after %r: %s", authorization.id, body.error, error)
        if not isinstance(body.error, Exception):
            raise body.error  # cancelled or interrupted: released, and the interruption goes on
        text = _texts.failed_text(request.name, body.error, authorization, released is not None)
        return Finished(GateOutcome("failed", text, authorization, error=body.error), reversed=released)
    executed = settled = None
    problem: Optional[AgenitryError] = None
    try:
        executed = yield Call("execute", (authorization.id,), {"actual_amount": actual_amount, "claim_token": token})
        if request.settle:
            settled = yield Call("settle", (authorization.id,))
    except (AuthenticationError, PermissionDeniedError):
        raise
    except AgenitryError as error:
        # The side effect happened: the outcome says so, with the error of recording it.
        logger.warning("%s ran under %s, but the gateway did not record it: %s", request.name, authorization.id, error)
        problem = error
    done = replace(
        authorization,
        status="settled" if settled is not None else "executed" if executed is not None else authorization.status,
        actual_amount=actual_amount if actual_amount is not None else authorization.amount,
    )
    outcome = GateOutcome("ran", _texts.ran_text(done), done, result=body.value, error=problem)
    return Finished(outcome, executed, settled)


def gated_flow(request: GatedCall) -> Flow[GateOutcome]:
    """The whole call: begin, run the body (:data:`RUN_BODY`), finish."""
    began = yield from begin_flow(request)
    if isinstance(began, GateOutcome):
        return began
    body: BodyResult = yield RUN_BODY
    actual = None
    if body.error is None and request.actual is not None:
        try:
            actual = check_amount(request.actual(body.value), request.currency, name="the actual amount")
        except Exception:  # it ran: execute for the authorized amount rather than lose the record
            logger.warning("The actual amount of %s could not be read; executing the authorized one", request.name)
    finished = yield from finish_flow(request, began, body, actual)
    return finished.outcome


def decide_flow(request: GatedCall) -> Flow[GateOutcome]:
    """Decide only, running nothing: ``approved`` or the outcome that would end the call."""
    decided = yield from decision_flow(request)
    if isinstance(decided, GateOutcome):
        return decided
    return _refused(decided) or GateOutcome("approved", _texts.approved_text(decided), decided)


# -- drivers ----------------------------------------------------------------------------------


def _record(client: Any, request: GatedCall, outcome: GateOutcome, started: float) -> None:
    if not request.record:
        return
    reason = outcome.authorization.reason if outcome.kind == "denied" and outcome.authorization else None
    extra = {**request.extra, "authorization_id": outcome.authorization_id}
    try:
        record_tool_call(
            client,
            request.name,
            request.arguments or {},
            (time.perf_counter() - started) * 1000,
            outcome.kind,
            outcome.error if outcome.error is not None else reason,
            request.agent_id,
            extra={key: value for key, value in extra.items() if value is not None},
        )
    except Exception:  # a record that cannot be queued never changes what the call did
        logger.warning("Could not record the call of %s", request.name, exc_info=True)


def _runner(client: Union[Agenitry, AsyncAgenitry]) -> Union[SyncRunner, AsyncRunner]:
    from agenitry._async_client import AsyncAgenitry  # imported late: the clients import this module

    return AsyncRunner(client) if isinstance(client, AsyncAgenitry) else SyncRunner(client)


def run_gated(client: Agenitry, request: GatedCall, body: Body) -> GateOutcome:
    """Gate one call on a sync client: ``body()`` runs only if approved and claimed.

    >>> outcome = run_gated(client, GatedCall("purchase_order", "total", {"total": 42.5}, tool="order"),
    ...                     lambda: supplier.order(total=42.5))  # doctest: +SKIP
    >>> outcome.kind, outcome.message  # doctest: +SKIP
    ('ran', 'Done: purchase_order of 42.5 USD under authorization auth_...')
    """
    started = time.perf_counter()
    outcome = SyncRunner(client).run(gated_flow(request), body)
    _record(client, request, outcome, started)
    return outcome


async def arun_gated(client: Union[Agenitry, AsyncAgenitry], request: GatedCall, body: Body) -> GateOutcome:
    """:func:`run_gated` for async code: an AsyncAgenitry's calls are awaited, an Agenitry's run
    in a thread; ``body()`` is awaited when it returns an awaitable."""
    started = time.perf_counter()
    outcome = await _runner(client).arun(gated_flow(request), body)
    _record(client, request, outcome, started)
    return outcome


def decide(client: Agenitry, request: GatedCall) -> GateOutcome:
    """Ask (or read) the decision without running anything: ``approved``, ``pending``, ``denied``,
    ``already_done``, ``invalid`` or ``unavailable``. Nothing is claimed or recorded."""
    return SyncRunner(client).run(decide_flow(request))


async def adecide(client: Union[Agenitry, AsyncAgenitry], request: GatedCall) -> GateOutcome:
    """:func:`decide` for async code."""
    return await _runner(client).arun(decide_flow(request))
