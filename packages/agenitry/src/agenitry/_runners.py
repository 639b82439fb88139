"""Runners: do a gating flow's steps on one client, blocking or awaited.

A gating flow (``_gate``) yields :class:`Call` (a client method by name),
:class:`~agenitry._base.Sleep`, or :data:`RUN_BODY` (run the caller's code and send back
a :class:`BodyResult`). The sync client's calls block, or run in a thread under asyncio;
the async client's are awaited. That is the only difference: the flow is written once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, TypeVar, Union

from agenitry._base import Flow, Sleep, adrive, drive

T = TypeVar("T")
#: The caller's code a gated flow runs once the call is claimed (async: may return an awaitable).
Body = Callable[[], Any]


@dataclass(frozen=True)
class Call:
    """A flow asks its runner to call ``client.<method>(*args, **kwargs)``."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


class RunBody:
    """A flow asks its runner to run the body now; the runner sends back a :class:`BodyResult`."""

    def __repr__(self) -> str:
        return "RUN_BODY"


RUN_BODY = RunBody()


@dataclass(frozen=True)
class BodyResult:
    """What the body did: returned ``value``, or raised ``error`` (any BaseException: a
    cancelled body must release its claim too)."""

    value: Any = None
    error: Optional[BaseException] = None


Step = Union[Call, Sleep, RunBody]


def _no_body() -> Any:
    raise TypeError("this flow runs no body")


def _body(body: Body) -> BodyResult:
    try:
        return BodyResult(body())
    except BaseException as error:  # handed to the flow, which releases and re-raises
        return BodyResult(error=error)


async def _abody(body: Body) -> BodyResult:
    try:
        value = body()
        return BodyResult(await value if inspect.isawaitable(value) else value)
    except BaseException as error:
        return BodyResult(error=error)


class Runner(Protocol):
    """Does a flow's steps on one client: blocking in ``run``, awaited in ``arun``."""

    supports_sync: bool

    def run(self, flow: Flow[T], body: Body = _no_body) -> T: ...

    async def arun(self, flow: Flow[T], body: Body = _no_body) -> T: ...


class SyncRunner:
    """For :class:`~agenitry.Agenitry`; from async code its blocking calls run in a thread."""

    supports_sync = True

    def __init__(self, client: Any) -> None:
        self._client = client

    def run(self, flow: Flow[T], body: Body = _no_body) -> T:
        return drive(flow, functools.partial(self._perform, body))

    async def arun(self, flow: Flow[T], body: Body = _no_body) -> T:
        return await adrive(flow, functools.partial(self._aperform, body))

    def _perform(self, body: Body, step: Step) -> Any:
        if isinstance(step, RunBody):
            return _body(body)
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        return getattr(self._client, step.method)(*step.args, **step.kwargs)

    async def _aperform(self, body: Body, step: Step) -> Any:
        if isinstance(step, RunBody):
            return await _abody(body)
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        method = functools.partial(getattr(self._client, step.method), *step.args, **step.kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, method)


class AsyncRunner:
    """For :class:`~agenitry.AsyncAgenitry`: every call is awaited."""

    supports_sync = False

    def __init__(self, client: Any) -> None:
        self._client = client

    def run(self, flow: Flow[T], body: Body = _no_body) -> T:
        flow.close()
        raise TypeError("AsyncAgenitry gates async code: use 'async with client.spend(...)' or an async function")

    async def arun(self, flow: Flow[T], body: Body = _no_body) -> T:
        return await adrive(flow, functools.partial(self._aperform, body))

    async def _aperform(self, body: Body, step: Step) -> Any:
        if isinstance(step, RunBody):
            return await _abody(body)
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        return await getattr(self._client, step.method)(*step.args, **step.kwargs)
