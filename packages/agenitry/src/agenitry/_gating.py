"""``client.spend`` and ``@client.guard``: the gated call (``_gate``) as a context manager and a decorator.

Entering a :class:`Spend` is the flow's *begin* part (check the amount, authorize, wait
if asked, claim); leaving it is the *finish* part (execute with the actual amount and the
claim token, settle if asked; or release the claim when the block raised). What cannot
run raises: :class:`SpendDenied`, :class:`ApprovalRequired`, or the error that stopped it.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Optional, TypeVar, cast

from agenitry._base import Flow
from agenitry._exceptions import AgenitryError, ApprovalRequired, SpendDenied
from agenitry._gate import Finished, GatedCall, Held, approval_flow, begin_flow, finish_flow
from agenitry._models import GateOutcome
from agenitry._money import AmountSpec, check_amount, resolve_amount
from agenitry._recording import bound_arguments, logged, record_tool_call, summarize_arguments
from agenitry._runners import AsyncRunner, BodyResult, Runner, SyncRunner

# What the clients (_client.py, _async_client.py) reach through this module.
__all__ = [
    "AmountSpec",
    "AsyncRunner",
    "Spend",
    "SyncRunner",
    "approval_flow",
    "guard",
    "logged",
    "record_tool_call",
]

F = TypeVar("F", bound=Callable[..., Any])


def _raise(outcome: GateOutcome) -> None:
    """The exception a ``with`` block gets for a call that cannot run."""
    raw = dict(outcome.authorization.raw) if outcome.authorization is not None else {}
    if outcome.kind == "pending":
        raise ApprovalRequired(raw)
    if outcome.kind in ("denied", "already_done"):
        raise SpendDenied(raw)
    # in_progress, invalid and unavailable carry their cause
    raise outcome.error or AgenitryError(outcome.message)


class Spend:
    """One gated spend: use it with ``with`` (or ``async with``); it is also the handle inside.

    >>> with client.spend("purchase_order", 120.0) as auth:  # doctest: +SKIP
    ...     receipt = supplier.order(salmon_lbs=50)
    ...     auth.actual_amount = receipt.total
    """

    def __init__(
        self,
        runner: Runner,
        action: str,
        amount: Any,
        *,
        agent_id: Optional[str] = None,
        currency: Optional[str] = None,
        context: Optional[dict[str, Any]] = None,
        reason: Optional[str] = None,
        settle: bool = False,
        wait: Optional[float] = None,
        idempotency_key: Optional[str] = None,
        authorization_id: Optional[str] = None,
    ) -> None:
        self._runner = runner
        self.request = GatedCall(
            action,
            amount,
            currency=currency,
            agent_id=agent_id,
            context=context,
            reason=reason,
            settle=settle,
            key=idempotency_key,
            authorization_id=authorization_id,
            wait=wait,
            record=False,
        )
        self._held: Optional[Held] = None
        #: The gateway's decision (after waiting, the approved authorization record).
        self.authorization: Optional[dict[str, Any]] = None
        self.authorization_id: Optional[str] = authorization_id
        #: What was really spent; execute() sends it (None: the authorized amount).
        self.actual_amount: Optional[Any] = None
        self.executed: Optional[dict[str, Any]] = None
        self.settled: Optional[dict[str, Any]] = None
        self.reversed: Optional[dict[str, Any]] = None
        #: How the spend ended, once the block is left.
        self.outcome: Optional[GateOutcome] = None

    @property
    def action(self) -> str:
        return self.request.action

    @property
    def amount(self) -> Any:
        return self.request.amount

    @property
    def context(self) -> Optional[dict[str, Any]]:
        return self.request.authorization_context()

    def _enter(self) -> Flow[Spend]:
        began = yield from begin_flow(self.request)
        if isinstance(began, GateOutcome):
            if began.authorization is not None:
                self.authorization = dict(began.authorization.raw)
                self.authorization_id = began.authorization.id
            _raise(began)
        else:
            self._held = began
            self.authorization = dict(began.authorization.raw)
            self.authorization_id = began.authorization.id
        return self

    def _exit(self, error: Optional[BaseException]) -> Flow[None]:
        if self._held is None:  # only a successful __enter__ holds a claim
            return
        actual = None
        if error is None and self.actual_amount is not None:
            actual = check_amount(self.actual_amount, self.request.currency, name="actual_amount")
        finished: Finished = yield from finish_flow(self.request, self._held, BodyResult(error=error), actual)
        self.outcome = finished.outcome
        self.executed, self.settled, self.reversed = finished.executed, finished.settled, finished.reversed
        if finished.outcome.kind == "ran" and finished.outcome.error is not None:
            raise finished.outcome.error

    def __enter__(self) -> Spend:
        return self._runner.run(self._enter())

    def __exit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException], tb: Any) -> None:
        self._runner.run(self._exit(error))

    async def __aenter__(self) -> Spend:
        return await self._runner.arun(self._enter())

    async def __aexit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException], tb: Any) -> None:
        await self._runner.arun(self._exit(error))

    def __repr__(self) -> str:
        return f"Spend({self.action!r}, {self.amount!r}, authorization_id={self.authorization_id!r})"


def guard(
    runner: Runner,
    *,
    action: str,
    amount: AmountSpec,
    settle: bool = False,
    actual: Optional[Callable[[Any], Any]] = None,
    agent_id: Optional[str] = None,
    currency: Optional[str] = None,
    reason: Optional[str] = None,
    wait: Optional[float] = None,
) -> Callable[[F], F]:
    """The decorator behind ``client.guard``: the function runs only once the spend is approved."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)
        if isinstance(amount, str) and amount not in signature.parameters:
            raise TypeError(f"guard(amount={amount!r}): {fn.__name__}() has no argument named {amount!r}")
        tool = getattr(fn, "__name__", "tool")

        def spend(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Spend:
            arguments = bound_arguments(signature, args, kwargs)
            return Spend(
                runner,
                action,
                resolve_amount(amount, arguments, tool, currency),
                agent_id=agent_id,
                currency=currency,
                context={"tool": tool, "arguments": summarize_arguments(arguments)},
                reason=reason,
                settle=settle,
                wait=wait,
            )

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def gated_async(*args: Any, **kwargs: Any) -> Any:
                async with spend(args, kwargs) as auth:
                    result = await fn(*args, **kwargs)
                    if actual is not None:
                        auth.actual_amount = actual(result)
                    return result

            return cast(F, gated_async)

        if not runner.supports_sync:
            raise TypeError(f"AsyncAgenitry.guard wraps async functions; {tool}() is sync: use Agenitry.guard")

        @functools.wraps(fn)
        def gated(*args: Any, **kwargs: Any) -> Any:
            with spend(args, kwargs) as auth:
                result = fn(*args, **kwargs)
                if actual is not None:
                    auth.actual_amount = actual(result)
                return result

        return cast(F, gated)

    return decorate
