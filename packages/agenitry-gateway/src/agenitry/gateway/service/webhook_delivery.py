"""Sending the outbox: signing, claiming, attempts and the retry schedule.

A :class:`Deliverer` claims due messages for a lease longer than an attempt can take: on
PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so instances on one database claim disjoint
rows; on SQLite the one writer serializes the claims. It sends each claimed message outside
any transaction and records the attempt. Only an attempt whose answer is lost (a receiver
that took the message and then timed out, an instance killed mid-attempt) leads to a second
delivery: delivery is at least once, and receivers drop a repeated ``webhook-id``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import logging
import queue
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from sqlalchemy import case, or_, select, update

from agenitry import __version__
from agenitry.gateway._clock import HOUR, MINUTE, SECOND, Clock
from agenitry.gateway.store.schema import webhook_attempts, webhook_endpoints, webhook_messages

if TYPE_CHECKING:
    from agenitry.gateway.service.webhooks import WebhookService

logger = logging.getLogger("agenitry.gateway")

#: The wait before each retry, after the first attempt: about 27.6 hours in all, so a
#: receiver that is down for a day still gets every message. Then the message is failed.
RETRY_SCHEDULE: tuple[int, ...] = (5 * SECOND, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR)
#: Each wait is lengthened by up to this fraction, so that the retries of many messages
#: to a receiver that was down do not all arrive in the same second.
JITTER = 0.1
#: Seconds an attempt may wait for the receiver (to connect, and for each read).
REQUEST_TIMEOUT = 10.0
#: A claim outlasts the request timeout by this much, so only a stalled instance loses it.
LEASE_MARGIN = 20 * SECOND
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix Standard Webhooks gives every secret, not a secret
USER_AGENT = f"Agenitry-Webhooks/{__version__}"


def new_secret() -> str:
    """A new signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` header of one attempt, as Standard Webhooks defines it.

    ``timestamp`` is the attempt's time in whole seconds (its ``webhook-timestamp``); the
    HMAC-SHA256 key is the secret's base64 part, decoded.
    """
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


@dataclass(frozen=True)
class Attempt:
    """What one POST to a receiver came to: its HTTP status, or why there was none."""

    status_code: Optional[int]
    error: Optional[str]
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class _Claimed:
    id: str
    url: str
    secret: str
    body: str
    #: The end of this instance's claim, as written: cleared after the attempt only if still ours.
    lease: int


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed attempt: the signed body goes only where the owner said."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post(url: str, message_id: str, secret: str, body: str, timestamp: int, *, timeout: float) -> Attempt:
    """POST ``body`` to ``url`` signed for ``timestamp`` (seconds); never raises for the receiver's failures."""
    request = urllib.request.Request(  # noqa: S310 - the URL's scheme was checked to be http(s) when it was added
        url,
        data=body.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body),
        },
    )
    opener = urllib.request.build_opener(_NoRedirects)
    started = time.monotonic()
    status: Optional[int] = None
    error: Optional[str] = None
    try:
        with opener.open(request, timeout=timeout) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        if 300 <= exc.code < 400:
            error = f"The receiver redirected to {exc.headers.get('Location', '?')[:200]}; redirects are not followed"
        exc.close()
    except urllib.error.URLError as exc:
        error = f"No answer: {exc.reason}"[:500]
    except (OSError, ValueError, http.client.HTTPException) as exc:  # a timeout, a broken connection, a bad answer
        error = f"No answer: {type(exc).__name__}: {exc}"[:500]
    return Attempt(status, error, int((time.monotonic() - started) * 1000))


def retry_delay(attempt: int, jitter: float = 0.0) -> Optional[int]:
    """Milliseconds to wait after failed attempt number ``attempt`` (1 is the first), or None
    when the schedule is over; ``jitter``, a draw from 0 to 1, says how much of :data:`JITTER`
    lengthens the wait.

    >>> retry_delay(1), retry_delay(2, jitter=0.5), retry_delay(8)
    (5000, 315000, None)
    """
    if attempt > len(RETRY_SCHEDULE):
        return None
    return int(RETRY_SCHEDULE[attempt - 1] * (1 + JITTER * jitter))


class Deliverer:
    """Sends the outbox: claims due messages, POSTs each outside any transaction, records the attempt.

    :meth:`run_once` does one round and waits for it (tests step with it); :meth:`start`
    runs rounds in a daemon thread until :meth:`stop`, woken at once when a commit wrote
    messages in this process and every ``poll_interval`` seconds otherwise (for retries that
    come due, and messages other processes wrote). Sends run on ``workers`` threads, so a
    slow receiver holds up one of them, not the others.
    """

    def __init__(
        self,
        service: WebhookService,
        *,
        clock: Optional[Clock] = None,
        workers: int = 4,
        timeout: float = REQUEST_TIMEOUT,
        poll_interval: float = 1.0,
        jitter: Optional[Callable[[], float]] = None,
    ) -> None:
        self.service = service
        self.db = service.db
        self.clock = clock or service.clock
        self.workers = workers
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.lease = int(timeout * SECOND) + LEASE_MARGIN
        # A generator of its own: this thread must not move the random module's shared state.
        self._jitter = jitter or random.Random().random  # noqa: S311 - a delay, not a secret
        self._jobs: queue.SimpleQueue[Optional[tuple[_Claimed, Future[Attempt]]]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._loop: Optional[threading.Thread] = None

    def run_once(self, now: Optional[int] = None, *, limit: int = 100) -> int:
        """Claim the messages due at ``now`` (default: the clock's time), send them, and wait
        for their answers; how many were sent. Each attempt is stamped and signed with the
        clock's time when it is made."""
        claimed = self._claim(self.clock() if now is None else now, limit)
        for future in [self._submit(message) for message in claimed]:
            future.result()
        return len(claimed)

    def start(self) -> Deliverer:
        self._stopping.clear()
        self.service._listen(self._wake, True)
        self._loop = threading.Thread(target=self._run, name="agenitry-webhooks", daemon=True)
        self._loop.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming; sends under way finish in their own threads (a lost one is sent again later)."""
        self._stopping.set()
        self._wake.set()
        self.service._listen(self._wake, False)
        if self._loop is not None:
            self._loop.join(timeout)
            self._loop = None
        with self._lock:
            for _ in self._threads:
                self._jobs.put(None)
            self._threads.clear()

    # -- rounds ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            with self._lock:
                free = self.workers - self._busy
            claimed: list[_Claimed] = []
            if free > 0:
                try:
                    claimed = self._claim(self.clock(), free)
                except Exception:  # the database is away: try again at the next poll
                    logger.exception("Could not claim webhook messages")
            for message in claimed:
                self._submit(message)
            if len(claimed) < free or free <= 0:
                self._wake.wait(self.poll_interval)

    def _claim(self, now: int, limit: int) -> list[_Claimed]:
        m = webhook_messages.c
        due = (m.status == "pending", m.next_attempt_at <= now, or_(m.claimed_until.is_(None), m.claimed_until < now))
        # A read first: most rounds find nothing, and need not wait for a writer.
        with self.db.read() as conn:
            if conn.execute(select(m.id).where(*due).limit(1)).first() is None:
                return []
        lease = now + self.lease
        with self.db.write() as conn:
            ids = (
                conn.execute(
                    select(m.id).where(*due).order_by(m.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            conn.execute(update(webhook_messages).where(m.id.in_(ids)).values(claimed_until=lease))
            e = webhook_endpoints.c
            rows = conn.execute(
                select(m.id, m.body, e.url, e.secret)
                .join_from(webhook_messages, webhook_endpoints, e.id == m.endpoint_id)
                .where(m.id.in_(ids))
                .order_by(m.next_attempt_at)
            ).all()
        return [_Claimed(row.id, row.url, row.secret, row.body, lease) for row in rows]

    def _submit(self, message: _Claimed) -> Future[Attempt]:
        future: Future[Attempt] = Future()
        with self._lock:
            self._busy += 1
            if len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name="agenitry-webhook-sender", daemon=True)
                self._threads.append(thread)
                thread.start()
        self._jobs.put((message, future))
        return future

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            message, future = job
            try:
                future.set_result(self._deliver(message))
            except BaseException as exc:  # recorded nowhere: the claim lapses and the message is sent again
                logger.exception("Webhook message %s: the attempt could not be recorded", message.id)
                future.set_exception(exc)
            finally:
                with self._lock:
                    self._busy -= 1
                self._wake.set()

    def _deliver(self, message: _Claimed) -> Attempt:
        at = self.clock()
        attempt = post(message.url, message.id, message.secret, message.body, at // SECOND, timeout=self.timeout)
        self._record(message, at, attempt)
        return attempt

    def _record(self, message: _Claimed, at: int, attempt: Attempt) -> None:
        m = webhook_messages.c
        with self.db.write() as conn:
            row = conn.execute(select(m.status, m.attempts).where(m.id == message.id).with_for_update()).one()
            number = row.attempts + 1
            conn.execute(
                webhook_attempts.insert().values(
                    message_id=message.id,
                    number=number,
                    attempted_at=at,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    duration_ms=attempt.duration_ms,
                )
            )
            values: dict[str, Any] = {
                "attempts": number,
                "last_status": attempt.status_code,
                "last_error": attempt.error,
                "claimed_until": case((m.claimed_until == message.lease, None), else_=m.claimed_until),
            }
            if attempt.delivered:
                values.update(status="delivered", delivered_at=at)
            elif row.status == "pending":
                delay = retry_delay(number, self._jitter())
                if delay is None:
                    values["status"] = "failed"
                    logger.warning("Webhook message %s failed after %d attempts: %s", message.id, number, attempt)
                else:
                    values["next_attempt_at"] = at + delay
            conn.execute(update(webhook_messages).where(m.id == message.id).values(**values))
