"""Rate limits: token buckets per client address (the public routes) and per API key
(every keyed route), so that one runaway agent cannot starve the others.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; a request
takes one, and one that finds too few answers 429 with ``Retry-After``. A request that logs
events costs more, by its size (:func:`charge_key`); one that costs more than the bucket
can ever hold answers 413, since waiting would never help. Buckets live in this process's
memory, so each gateway instance limits on its own. At most ``max_clients`` buckets are
kept: the least recently seen go first, which only forgets a client's debt.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agenitry.gateway.errors import GatewayError, PayloadTooLarge


class RateLimited(GatewayError):
    """429 with ``Retry-After``: the whole seconds until the request would be served."""

    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: float, source: str = "this client") -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(self.sentence(source), retry_after=self.retry_after)

    def sentence(self, source: str) -> str:
        return f"Too many requests from {source}: retry in {self.retry_after} s"


class TokenBuckets:
    """One token bucket per key.

    >>> buckets = TokenBuckets(rate=1.0, burst=2, clock=lambda: 0.0)
    >>> [buckets.take("10.0.0.1") for _ in range(3)]
    [0.0, 0.0, 1.0]
    """

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic, max_clients: int = 100_000
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens: 0.0 when granted, else the seconds until they would be
        (``math.inf`` when ``cost`` is more than the bucket holds)."""
        return self.take_all({key: cost})

    def take_all(self, costs: Mapping[str, float]) -> float:
        """Take each key's cost from its bucket, all or none: 0.0 when granted, else the
        seconds until every one would be (``math.inf`` if never)."""
        with self._lock:
            now = self.clock()
            tokens = {key: self._tokens(key, now) for key in costs}
            wait = max((self._wait(tokens[key], cost) for key, cost in costs.items()), default=0.0)
            for key, cost in costs.items():
                self._buckets.pop(key, None)
                self._buckets[key] = (tokens[key] - cost if wait == 0 else tokens[key], now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def _wait(self, tokens: float, cost: float) -> float:
        if cost > self.burst:
            return math.inf
        return max(0.0, (cost - tokens) / self.rate)

    def check(self, key: str, source: str = "this client") -> None:
        """Take one token or raise :class:`RateLimited` (naming ``source`` to the caller)."""
        wait = self.take(key)
        if wait > 0:
            raise RateLimited(wait, source)


def client_address(request: Request) -> str:
    """The caller's address (uvicorn puts a trusted proxy's X-Forwarded-For here)."""
    return request.client.host if request.client is not None else "unknown"


def limit_public(request: Request) -> None:
    """Dependency of the public routes: limits each client address."""
    buckets: Optional[TokenBuckets] = getattr(request.app.state, "public_limit", None)
    if buckets is not None:
        buckets.check(client_address(request), "this address")


def limit_key(request: Request, key_id: str) -> None:
    """Called once a keyed request's key is known: limits each API key."""
    buckets: Optional[TokenBuckets] = getattr(request.app.state, "key_limit", None)
    if buckets is not None:
        buckets.check(key_id, "this API key")


def charge_key(request: Request, key_id: str, cost: float) -> None:
    """Charge a keyed request that costs ``cost`` tokens in all: the rest of it, beyond
    the token :func:`limit_key` took. Refused with 413 when the key's bucket can never
    hold that much, else with 429 while it does not yet."""
    buckets: Optional[TokenBuckets] = getattr(request.app.state, "key_limit", None)
    if buckets is None or cost <= 1:
        return
    if cost > buckets.burst:
        raise PayloadTooLarge(
            f"This request costs {math.ceil(cost)} tokens of this API key's rate limit, more than the "
            f"{buckets.burst} it can ever hold: send fewer or smaller events at a time",
            code="batch_too_large",
        )
    wait = buckets.take(key_id, cost - 1)
    if wait > 0:
        raise RateLimited(wait, "this API key")


async def _rate_limited(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)  # noqa: S101 - registered for this type only
    return JSONResponse(exc.body(), status_code=exc.status, headers={"Retry-After": str(exc.retry_after)})


def install(app: FastAPI, *, public: tuple[float, int], keys: tuple[float, int]) -> None:
    """Limit ``app``'s public routes per address and its keyed routes per API key, each to
    a (rate a second, burst) pair; a rate of 0 turns that limit off."""
    app.state.public_limit = TokenBuckets(*public) if public[0] > 0 else None
    app.state.key_limit = TokenBuckets(*keys) if keys[0] > 0 else None
    app.add_exception_handler(RateLimited, _rate_limited)
