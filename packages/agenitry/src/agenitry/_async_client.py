"""``AsyncAgenitry``: the async client, method for method the sync one, over the same base.

Awaited calls go through an asyncio HTTP client (or the embedded app on the caller's
loop). Logged events use the same background worker thread as the sync client, with a
blocking transport of its own, so ``await client.log(...)`` returns at once too.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Callable, Optional, TypeVar, Union

from agenitry import _gating
from agenitry._base import (
    NOT_GIVEN,
    Answer,
    BaseClient,
    NoLimit,
    NotGiven,
    RequestSpec,
    adrive,
    drive,
    send_async,
    send_blocking,
)
from agenitry._config import (
    DEFAULT_EXIT_TIMEOUT,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BASE_DELAY,
    DEFAULT_SPOOL_MAX_BYTES,
    DEFAULT_TIMEOUT,
    ClientConfig,
    SpoolDir,
    resolve,
)
from agenitry._delivery import Delivery
from agenitry._embedded import AsyncEmbeddedTransport, EmbeddedGateway, EmbeddedTransport, open_embedded
from agenitry._http import AsyncConnectionPool, AsyncTransport, ConnectionPool, Transport
from agenitry._types import StatsPeriod
from agenitry._verify import Keys, VerificationResult

F = TypeVar("F", bound=Callable[..., Any])


class AsyncAgenitry(BaseClient):
    """The Agenitry client for asyncio code; the same arguments and answers as :class:`Agenitry`.

    >>> async with AsyncAgenitry(api_key="ag_...", venue_id="nobo-downtown") as agent:  # doctest: +SKIP
    ...     decision = await agent.authorize("order_captured", 127.00)
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        venue_id: Optional[str] = None,
        *,
        agent_id: Optional[str] = None,
        base_url: Optional[str] = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_base_delay: float = DEFAULT_RETRY_BASE_DELAY,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: Optional[float] = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        spool_dir: SpoolDir = None,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT,
        verify_base_url: Optional[str] = None,
        transport: Optional[AsyncTransport] = None,
    ) -> None:
        config = resolve(
            api_key,
            venue_id,
            agent_id=agent_id,
            base_url=base_url,
            max_retries=max_retries,
            retry_base_delay=retry_base_delay,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_queue=max_queue,
            spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes,
            exit_timeout=exit_timeout,
            verify_base_url=verify_base_url,
        )
        self._setup(config, transport)

    def _setup(
        self, config: ClientConfig, transport: Optional[AsyncTransport], embedded: Optional[EmbeddedGateway] = None
    ) -> None:
        super().__init__(config)
        self._transport: AsyncTransport = transport or AsyncConnectionPool(
            config.origin, timeout=config.timeout, connect_timeout=config.connect_timeout
        )
        self._embedded = embedded
        self._worker_transport: Optional[Transport] = None
        self._worker_lock = threading.Lock()
        # An embedded client's spool belongs to its database, not to the unused base_url.
        gateway = embedded.database.url if embedded is not None else None
        self._delivery = Delivery.for_client(config, self._send_batch, gateway)
        self._closed = False

    @classmethod
    def embedded(
        cls,
        database_url: str = "sqlite:///agenitry.db",
        *,
        venue_id: Optional[str] = None,
        agent_id: Optional[str] = None,
        currency: str = "USD",
        public_url: Optional[str] = None,
        **options: Any,
    ) -> AsyncAgenitry:
        """An async client on a gateway running in this process; see :meth:`Agenitry.embedded`."""
        config, gateway = open_embedded(
            database_url,
            venue_id=venue_id,
            agent_id=agent_id,
            currency=currency,
            public_url=public_url,
            options=options,
        )
        client = cls.__new__(cls)
        client._setup(config, AsyncEmbeddedTransport(gateway, timeout=config.timeout), gateway)
        return client

    # -- plumbing -------------------------------------------------------------------------

    async def _request(self, spec: RequestSpec) -> Answer:
        return await adrive(self._flow(spec), functools.partial(send_async, self._transport))

    def _send_batch(self, items: list[bytes], key: str) -> None:
        # Runs on the delivery worker thread, which has no event loop: a blocking transport of its own.
        with self._worker_lock:
            if self._worker_transport is None:
                config = self._config
                self._worker_transport = (
                    EmbeddedTransport(self._embedded, timeout=config.timeout)
                    if self._embedded is not None
                    else ConnectionPool(config.origin, timeout=config.timeout, connect_timeout=config.connect_timeout)
                )
            transport = self._worker_transport
        drive(self._flow(self._batch_spec(items, key), max_retries=0), functools.partial(send_blocking, transport))

    # -- audit trail ------------------------------------------------------------------------

    async def log(
        self,
        action: str,
        *,
        amount: Optional[float] = None,
        currency: Optional[str] = None,
        direction: Optional[str] = None,
        agent_id: Optional[str] = None,
        context: Optional[dict[str, Any]] = None,
        reason: Optional[str] = None,
        await_confirmation: bool = False,
    ) -> Answer:
        """Log an event; see :meth:`Agenitry.log`. Without ``await_confirmation`` nothing is awaited."""
        event = self._new_event(
            action,
            amount=amount,
            currency=currency,
            direction=direction,
            agent_id=agent_id,
            context=context,
            reason=reason,
        )
        return await self._request(self._log_spec(event)) if await_confirmation else self._enqueue(event)

    async def events(
        self,
        *,
        agent_id: Union[str, NotGiven, None] = NOT_GIVEN,
        action: Optional[str] = None,
        context: Optional[dict[str, Any]] = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Answer:
        return await self._request(self._events_spec(agent_id, action, context, limit, offset))

    async def stats(self, *, period: StatsPeriod = "today") -> Answer:
        return await self._request(self._stats_spec(period))

    # -- spend authority ---------------------------------------------------------------------

    async def authorize(
        self,
        action: str,
        amount: float,
        *,
        agent_id: Optional[str] = None,
        currency: Optional[str] = None,
        context: Optional[dict[str, Any]] = None,
        reason: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> Answer:
        return await self._request(
            self._authorize_spec(action, amount, agent_id, currency, context, reason, idempotency_key)
        )

    async def claim(
        self, authorization_id: str, *, lease_seconds: Optional[int] = None, idempotency_key: Optional[str] = None
    ) -> Answer:
        return await self._request(
            self._step_spec(authorization_id, "claim", idempotency_key, lease_seconds=lease_seconds)
        )

    async def execute(
        self,
        authorization_id: str,
        *,
        actual_amount: Optional[float] = None,
        context: Optional[dict[str, Any]] = None,
        claim_token: Optional[str] = None,
    ) -> Answer:
        return await self._request(
            self._step_spec(
                authorization_id, "execute", actual_amount=actual_amount, context=context, claim_token=claim_token
            )
        )

    async def settle(self, authorization_id: str, *, context: Optional[dict[str, Any]] = None) -> Answer:
        return await self._request(self._step_spec(authorization_id, "settle", context=context))

    async def reverse(self, authorization_id: str, *, claim_token: Optional[str] = None) -> Answer:
        return await self._request(self._step_spec(authorization_id, "reverse", claim_token=claim_token))

    async def approve(self, authorization_id: str, *, note: Optional[str] = None) -> Answer:
        return await self._request(self._step_spec(authorization_id, "approve", note=note))

    async def deny(self, authorization_id: str, *, reason: Optional[str] = None) -> Answer:
        return await self._request(self._step_spec(authorization_id, "deny", reason=reason))

    async def authorizations(
        self,
        *,
        agent_id: Union[str, NotGiven, None] = NOT_GIVEN,
        action: Optional[str] = None,
        status: Optional[str] = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Answer:
        return await self._request(self._authorizations_spec(agent_id, action, status, limit, offset))

    async def get_authorization(self, authorization_id: str) -> Answer:
        return await self._request(self._get_authorization_spec(authorization_id))

    # -- the verifiable log ----------------------------------------------------------------------

    async def verify(self, event_id: str, *, public_key: Optional[Keys] = None) -> VerificationResult:
        """Fetch an event's proof and check it here (see :meth:`Agenitry.verify`)."""
        document = await self._request(self._verify_spec(event_id))
        served = None if public_key is not None else await self._request(self._public_keys_spec())
        return self._check_proof(document, public_key, served)

    # -- policies --------------------------------------------------------------------------------

    async def set_policy(
        self,
        *,
        agent_id: Union[str, NotGiven, None] = NOT_GIVEN,
        max_single_amount: Union[float, NoLimit, None] = None,
        max_daily_spend: Union[float, NoLimit, None] = None,
        max_monthly_spend: Union[float, NoLimit, None] = None,
        require_approval_above: Union[float, NoLimit, None] = None,
        allowed_actions: Union[list[str], NoLimit, None] = None,
    ) -> Answer:
        limits = {
            "max_single_amount": max_single_amount,
            "max_daily_spend": max_daily_spend,
            "max_monthly_spend": max_monthly_spend,
            "require_approval_above": require_approval_above,
            "allowed_actions": allowed_actions,
        }
        return await self._request(self._set_policy_spec(agent_id, limits))

    async def get_policies(self) -> Answer:
        return await self._request(self._get_policies_spec())

    async def delete_policy(self, policy_id: str) -> Answer:
        return await self._request(self._delete_policy_spec(policy_id))

    # -- gating -------------------------------------------------------------------------------------

    def spend(
        self,
        action: str,
        amount: float,
        *,
        agent_id: Optional[str] = None,
        currency: Optional[str] = None,
        context: Optional[dict[str, Any]] = None,
        reason: Optional[str] = None,
        settle: bool = False,
        wait: Optional[float] = None,
        idempotency_key: Optional[str] = None,
        authorization_id: Optional[str] = None,
    ) -> _gating.Spend:
        """``async with client.spend(...) as auth:``; see :meth:`Agenitry.spend`."""
        return _gating.Spend(
            _gating.AsyncRunner(self),
            action,
            amount,
            agent_id=agent_id,
            currency=currency,
            context=context,
            reason=reason,
            settle=settle,
            wait=wait,
            idempotency_key=idempotency_key,
            authorization_id=authorization_id,
        )

    def guard(
        self,
        *,
        action: str,
        amount: _gating.AmountSpec,
        settle: bool = False,
        actual: Optional[Callable[[Any], Any]] = None,
        agent_id: Optional[str] = None,
        currency: Optional[str] = None,
        reason: Optional[str] = None,
        wait: Optional[float] = None,
    ) -> Callable[[F], F]:
        """Gate an async function; see :meth:`Agenitry.guard`."""
        return _gating.guard(
            _gating.AsyncRunner(self),
            action=action,
            amount=amount,
            settle=settle,
            actual=actual,
            agent_id=agent_id,
            currency=currency,
            reason=reason,
            wait=wait,
        )

    async def wait_for_approval(self, authorization_id: str, *, timeout: float) -> Answer:
        return await _gating.AsyncRunner(self).arun(_gating.approval_flow(authorization_id, timeout))

    async def record_tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        duration_ms: float,
        outcome: str = "ok",
        error: Union[BaseException, str, None] = None,
        agent_id: Optional[str] = None,
    ) -> Answer:
        return _gating.record_tool_call(self, name, arguments, duration_ms, outcome, error, agent_id)

    def logged(self, fn: Optional[F] = None, *, name: Optional[str] = None) -> Any:
        """Decorator: record every call of a function as a ``tool_call`` event (never awaits the network)."""
        decorate = _gating.logged(functools.partial(_gating.record_tool_call, self), name)
        return decorate(fn) if fn is not None else decorate

    # -- lifecycle -----------------------------------------------------------------------------------

    async def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait (without blocking the loop) until queued events are delivered; False on timeout."""
        done = await asyncio.get_running_loop().run_in_executor(None, self._delivery.flush, timeout)
        self._delivery.announce()
        return done

    async def close(self, timeout: Optional[float] = None) -> None:
        """Deliver queued events (up to ``timeout``, default ``exit_timeout``), then release connections."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._delivery.close, timeout)
        await self._transport.close()
        worker_transport = self._worker_transport
        if worker_transport is not None:
            await loop.run_in_executor(None, worker_transport.close)
        if self._embedded is not None:
            self._embedded.close()
        self._delivery.announce()

    async def __aenter__(self) -> AsyncAgenitry:
        return self

    async def __aexit__(
        self, kind: Optional[type[BaseException]], error: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.close()
