"""Rate limits: token buckets per client address (the public routes) and per API key
(every keyed route), so that one runaway agent cannot starve the others.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; a request
takes one, and one that finds none answers 429 with ``Retry-After``. Buckets live in this
process's memory, so each gateway instance limits on its own. At most ``max_clients``
buckets are kept: the least recently seen go first, which only forgets a client's debt.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agenitry.gateway.errors import GatewayError


class RateLimited(GatewayError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: float, source: str = "this client") -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        message = f"Too many requests from {source}: retry in {self.retry_after} s"
        super().__init__(message, retry_after=self.retry_after)


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
        """Take ``cost`` tokens: 0.0 when granted, else the seconds until they would be."""
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (cost - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return wait

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


async def _rate_limited(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)  # noqa: S101 - registered for this type only
    return JSONResponse(exc.body(), status_code=exc.status, headers={"Retry-After": str(exc.retry_after)})


def install(app: FastAPI, *, public: tuple[float, int], keys: tuple[float, int]) -> None:
    """Limit ``app``'s public routes per address and its keyed routes per API key, each to
    a (rate a second, burst) pair; a rate of 0 turns that limit off."""
    app.state.public_limit = TokenBuckets(*public) if public[0] > 0 else None
    app.state.key_limit = TokenBuckets(*keys) if keys[0] > 0 else None
    app.add_exception_handler(RateLimited, _rate_limited)
