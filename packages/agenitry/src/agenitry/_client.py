"""``Agenitry``: the sync client. Every method is one line over the shared base."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Callable, Optional, TypeVar, Union

from agenitry import _gating
from agenitry._base import NOT_GIVEN, Answer, BaseClient, NoLimit, NotGiven, RequestSpec, drive, send_blocking
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
from agenitry._embedded import EmbeddedGateway, EmbeddedTransport, open_embedded
from agenitry._http import ConnectionPool, Transport
from agenitry._types import StatsPeriod
from agenitry._verify import Keys, VerificationResult

F = TypeVar("F", bound=Callable[..., Any])


class Agenitry(BaseClient):
    """The Agenitry client: log to the audit trail, authorize spend, gate tool calls.

    >>> from agenitry import Agenitry
    >>> agent = Agenitry(api_key="ag_...", venue_id="nobo-downtown")  # doctest: +SKIP
    >>> agent.log(action="order_captured", amount=42.50, direction="inbound")  # doctest: +SKIP
    {'id': 'evt_...', 'status': 'queued', 'verify_url': 'http://127.0.0.1:8700/verify/nobo-downtown/evt_...'}

    ``api_key``, ``venue_id`` and ``base_url`` fall back to AGENITRY_API_KEY,
    AGENITRY_VENUE_ID and AGENITRY_BASE_URL. ``timeout`` bounds connecting and each
    read of one attempt; failed attempts are retried ``max_retries`` times. Close the
    client (or use it in ``with``) to deliver queued events before the process ends;
    an exit hook also flushes for up to ``exit_timeout`` seconds. What is still
    undelivered then waits in the spool (``spool_dir``, on by default) for the next client.
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
        transport: Optional[Transport] = None,
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
        self, config: ClientConfig, transport: Optional[Transport], embedded: Optional[EmbeddedGateway] = None
    ) -> None:
        super().__init__(config)
        self._transport: Transport = transport or ConnectionPool(
            config.origin, timeout=config.timeout, connect_timeout=config.connect_timeout
        )
        self._embedded = embedded
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
    ) -> Agenitry:
        """A client on a gateway running in this process (needs the agenitry-gateway package).

        >>> agent = Agenitry.embedded("sqlite:///agenitry.db", venue_id="nobo-downtown")  # doctest: +SKIP

        The venue is created (in ``currency``) if it does not exist; the client acts as its
        operator, so it may set policies and approve. Verify links point at ``public_url``.
        """
        config, gateway = open_embedded(
            database_url,
            venue_id=venue_id,
            agent_id=agent_id,
            currency=currency,
            public_url=public_url,
            options=options,
        )
        client = cls.__new__(cls)
        client._setup(config, EmbeddedTransport(gateway, timeout=config.timeout), gateway)
        return client

    # -- plumbing -------------------------------------------------------------------------

    def _request(self, spec: RequestSpec) -> Answer:
        return drive(self._flow(spec), functools.partial(send_blocking, self._transport))

    def _send_batch(self, items: list[bytes], key: str) -> None:
        drive(
            self._flow(self._batch_spec(items, key), max_retries=0), functools.partial(send_blocking, self._transport)
        )

    # -- audit trail ------------------------------------------------------------------------

    def log(
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
        """Log an event. Returns at once ``{"id", "status": "queued" | "dropped", "verify_url"}``;
        the event is delivered in the background. With ``await_confirmation=True`` it is sent
        now and the gateway's answer returned (``status: "logged"``, ``sequence``...), or
        :class:`AgenitryError` raised. An event the gateway would refuse raises ValueError at once.
        """
        event = self._new_event(
            action,
            amount=amount,
            currency=currency,
            direction=direction,
            agent_id=agent_id,
            context=context,
            reason=reason,
        )
        return self._request(self._log_spec(event)) if await_confirmation else self._enqueue(event)

    def events(
        self,
        *,
        agent_id: Union[str, NotGiven, None] = NOT_GIVEN,
        action: Optional[str] = None,
        context: Optional[dict[str, Any]] = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Answer:
        """Events of the venue, newest first. ``agent_id`` defaults to the client's agent; None lists all."""
        return self._request(self._events_spec(agent_id, action, context, limit, offset))

    def stats(self, *, period: StatsPeriod = "today") -> Answer:
        """Totals in and out, and per agent: ``period`` is today, 7d, 30d or all."""
        return self._request(self._stats_spec(period))

    # -- spend authority ---------------------------------------------------------------------

    def authorize(
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
        """Ask before spending: ``{"approved", "status": approved | denied | pending, "authorization_id", ...}``."""
        return self._request(self._authorize_spec(action, amount, agent_id, currency, context, reason, idempotency_key))

    def claim(
        self, authorization_id: str, *, lease_seconds: Optional[int] = None, idempotency_key: Optional[str] = None
    ) -> Answer:
        """Become the one caller that may execute an approved authorization, for ``lease_seconds``
        (at most, and by default, its execute window): ``{"claim_token", "claimed_until", ...}``.

        A second claim raises :class:`ConflictError` (``error_code`` ``already_claimed``, or
        ``already_executed`` once it ran): its call runs once.
        """
        return self._request(self._step_spec(authorization_id, "claim", idempotency_key, lease_seconds=lease_seconds))

    def execute(
        self,
        authorization_id: str,
        *,
        actual_amount: Optional[float] = None,
        context: Optional[dict[str, Any]] = None,
        claim_token: Optional[str] = None,
    ) -> Answer:
        """Mark an approved authorization as carried out (for ``actual_amount`` if less); a
        claimed one needs its ``claim_token``."""
        return self._request(
            self._step_spec(
                authorization_id, "execute", actual_amount=actual_amount, context=context, claim_token=claim_token
            )
        )

    def settle(self, authorization_id: str, *, context: Optional[dict[str, Any]] = None) -> Answer:
        """Close an executed authorization once payment is confirmed."""
        return self._request(self._step_spec(authorization_id, "settle", context=context))

    def reverse(self, authorization_id: str, *, claim_token: Optional[str] = None) -> Answer:
        """Cancel an approved authorization (a claimed one with its ``claim_token``), giving its
        hold back; an executed one only with an admin key (the owner's refund)."""
        return self._request(self._step_spec(authorization_id, "reverse", claim_token=claim_token))

    def approve(self, authorization_id: str, *, note: Optional[str] = None) -> Answer:
        """Approve a pending authorization (admin keys only)."""
        return self._request(self._step_spec(authorization_id, "approve", note=note))

    def deny(self, authorization_id: str, *, reason: Optional[str] = None) -> Answer:
        """Deny a pending authorization (admin keys only)."""
        return self._request(self._step_spec(authorization_id, "deny", reason=reason))

    def authorizations(
        self,
        *,
        agent_id: Union[str, NotGiven, None] = NOT_GIVEN,
        action: Optional[str] = None,
        status: Optional[str] = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Answer:
        """Authorizations, newest first. ``agent_id`` defaults to the client's agent; None lists all."""
        return self._request(self._authorizations_spec(agent_id, action, status, limit, offset))

    def get_authorization(self, authorization_id: str) -> Answer:
        """The full record of one authorization."""
        return self._request(self._get_authorization_spec(authorization_id))

    # -- the verifiable log ----------------------------------------------------------------------

    def verify(self, event_id: str, *, public_key: Optional[Keys] = None) -> VerificationResult:
        """Fetch an event's inclusion proof and signed checkpoint, and check them here.

        Pass the public key you got from the venue's owner: without one, the keys the
        gateway itself serves are used, which proves the log consistent but not who runs it.

        >>> client.verify("evt_4k9x...", public_key="base64...").ok  # doctest: +SKIP
        True
        """
        document = self._request(self._verify_spec(event_id))
        served = None if public_key is not None else self._request(self._public_keys_spec())
        return self._check_proof(document, public_key, served)

    # -- policies --------------------------------------------------------------------------------

    def set_policy(
        self,
        *,
        agent_id: Union[str, NotGiven, None] = NOT_GIVEN,
        max_single_amount: Union[float, NoLimit, None] = None,
        max_daily_spend: Union[float, NoLimit, None] = None,
        max_monthly_spend: Union[float, NoLimit, None] = None,
        require_approval_above: Union[float, NoLimit, None] = None,
        allowed_actions: Union[list[str], NoLimit, None] = None,
    ) -> Answer:
        """Create or update the policy of one agent (``agent_id=None``: the venue-wide one).

        A limit given replaces the stored one; a limit left at None keeps it (none on
        create); :data:`NO_LIMIT` removes it.

        >>> agent.set_policy(agent_id="voice-agent", max_single_amount=500, max_daily_spend=NO_LIMIT)  # doctest: +SKIP
        """
        limits = {
            "max_single_amount": max_single_amount,
            "max_daily_spend": max_daily_spend,
            "max_monthly_spend": max_monthly_spend,
            "require_approval_above": require_approval_above,
            "allowed_actions": allowed_actions,
        }
        return self._request(self._set_policy_spec(agent_id, limits))

    def get_policies(self) -> Answer:
        """Every policy of the venue: ``{"venue_id", "policies": [...]}``."""
        return self._request(self._get_policies_spec())

    def delete_policy(self, policy_id: str) -> Answer:
        return self._request(self._delete_policy_spec(policy_id))

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
        """Authorize, run the block, then execute (and settle); reverse if the block raises.

        >>> with agent.spend("purchase_order", 120.0, settle=True) as auth:  # doctest: +SKIP
        ...     auth.actual_amount = place_order()

        Denied → :class:`SpendDenied`; pending → :class:`ApprovalRequired`, or with
        ``wait=seconds`` poll until approved (then run) or the deadline.
        ``idempotency_key`` makes a repeat (a re-run after a pause) reuse the first
        authorization; ``authorization_id`` continues an existing one instead of authorizing.
        Either way the decision is the authorization's status read from the gateway now.
        """
        return _gating.Spend(
            _gating.SyncRunner(self),
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
        """Decorate a function (sync or async) so it runs only when the spend is approved.

        >>> @agent.guard(action="purchase_order", amount="total")  # doctest: +SKIP
        ... def order_salmon(pounds: int, total: float) -> str: ...

        ``amount`` is an argument's name, a function of the arguments (a dict), or a number;
        ``actual`` maps the result to the amount really spent. Signature and docstring are kept.
        """
        return _gating.guard(
            _gating.SyncRunner(self),
            action=action,
            amount=amount,
            settle=settle,
            actual=actual,
            agent_id=agent_id,
            currency=currency,
            reason=reason,
            wait=wait,
        )

    def wait_for_approval(self, authorization_id: str, *, timeout: float) -> Answer:
        """Poll a pending authorization until approved (its record), denied or expired
        (:class:`SpendDenied`), or ``timeout`` seconds (:class:`ApprovalRequired`)."""
        return _gating.SyncRunner(self).run(_gating.approval_flow(authorization_id, timeout))

    def record_tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any],
        *,
        duration_ms: float,
        outcome: str = "ok",
        error: Union[BaseException, str, None] = None,
        agent_id: Optional[str] = None,
    ) -> Answer:
        """Log a ``tool_call`` event (arguments redacted and truncated) without blocking."""
        return _gating.record_tool_call(self, name, arguments, duration_ms, outcome, error, agent_id)

    def logged(self, fn: Optional[F] = None, *, name: Optional[str] = None) -> Any:
        """Decorator: record every call of a function (sync or async) as a ``tool_call`` event.

        Use as ``@agent.logged`` or ``@agent.logged(name="lookup_menu")``.
        """
        decorate = _gating.logged(functools.partial(_gating.record_tool_call, self), name)
        return decorate(fn) if fn is not None else decorate

    # -- lifecycle -----------------------------------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until queued events are delivered; False if ``timeout`` seconds passed first."""
        done = self._delivery.flush(timeout)
        self._delivery.announce()
        return done

    def close(self, timeout: Optional[float] = None) -> None:
        """Deliver queued events (up to ``timeout``, default ``exit_timeout``), then release connections."""
        if self._closed:
            return
        self._closed = True
        self._delivery.close(timeout)
        self._transport.close()
        if self._embedded is not None:
            self._embedded.close()
        self._delivery.announce()

    def __enter__(self) -> Agenitry:
        return self

    def __exit__(
        self, kind: Optional[type[BaseException]], error: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()


def create_agenitry(api_key: Optional[str] = None, venue_id: Optional[str] = None, **kwargs: Any) -> Agenitry:
    """The seed's factory: ``Agenitry(api_key, venue_id, **kwargs)``."""
    return Agenitry(api_key, venue_id, **kwargs)
