"""Delivery of logged events in the background, so ``log()`` never waits on the network.

``log()`` serializes the event on the caller's thread and appends it to a bounded queue;
one worker thread per client sends the queue in order, in batches (at most
``MAX_BATCH_EVENTS``) to ``POST /v1/events/batch``, each batch with its own
Idempotency-Key. Through an outage the worker retries the same batch with capped,
jittered backoff; every event carries a client-made id, so the gateway stores each one
once however often it is sent.

The on-disk spool (:mod:`agenitry._spool`, on by default) is written only when the queue
is full, or for events still undelivered when the client closes (or the interpreter exits
after ``exit_timeout``); while the queue has room, nothing touches the disk. Spooled
events keep their order: once the queue is full, new events go to the spool until the
worker has read it back. A new client first replays what earlier clients of its scope
left, before its own events, and deletes a spool file only once all of it was delivered.
With the spool off, full or unwritable, events are dropped: every dropped event is
counted (``client.dropped_events``), logged, and announced with one
:class:`EventsDroppedWarning` per burst on the caller's thread, never silently.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import warnings
import weakref
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from agenitry._base import backoff_delay, is_retryable, new_idempotency_key, next_delay
from agenitry._config import DELIVERY_MAX_DELAY, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, ClientConfig
from agenitry._exceptions import AgenitryError, EventsDroppedWarning
from agenitry._spool import Entry, Spool, SpoolFull, scope_name

logger = logging.getLogger("agenitry")

#: While someone waits in flush(), a retry through an outage waits at most this long.
FLUSH_RETRY_DELAY = 0.25
#: After close() asked the worker to stop, how long to wait for its current attempt.
STOP_GRACE = 1.0
#: Statuses that refuse something in the batch (not the key): halve it to find the event refused.
SPLIT_STATUSES = frozenset({400, 409, 413, 422})
#: Events read back from the spool at a time.
SPOOL_READ = 4 * MAX_BATCH_EVENTS

Send = Callable[[list[bytes], str], None]


@dataclass(frozen=True)
class DeliveryStats:
    """Where a client's logged events are: ``dropped`` events will never be stored."""

    #: In memory, waiting (events read back from the spool included).
    queued: int
    in_flight: int
    #: On disk, not yet read back: left by an earlier client of this scope, or spilled by this one.
    spooled: int
    delivered: int
    dropped: int
    last_error: Optional[str]


class Delivery:
    """A bounded queue of serialized events and the worker thread that sends them in order."""

    def __init__(
        self, send: Send, *, max_queue: int, base_delay: float, exit_timeout: float, spool: Optional[Spool] = None
    ) -> None:
        self._send = send
        self._max_queue = max_queue
        self._base_delay = base_delay or 0.1
        self.exit_timeout = exit_timeout
        self._spool = spool
        self._closed = False
        self._reset()
        _deliveries.add(self)
        if spool is not None and spool.replay:
            with self._cond:
                self._start_worker_locked()  # what earlier clients left goes first, now

    @classmethod
    def for_client(cls, config: ClientConfig, send: Send, gateway: Optional[str] = None) -> Delivery:
        """The delivery of a client; ``gateway`` names where it sends (an embedded client's database)."""
        gateway = gateway or config.origin.url
        spool = None
        if config.spool_dir is not None:
            directory = Path(config.spool_dir) / scope_name(gateway, config.venue_id, config.api_key)
            label = _without_credentials(gateway)
            try:
                spool = Spool(directory, gateway=label, venue_id=config.venue_id, max_bytes=config.spool_max_bytes)
            except OSError as exc:
                logger.warning(
                    "The spool %s cannot be used (%s); events that cannot wait in memory are dropped", directory, exc
                )
        return cls(
            send,
            max_queue=config.max_queue,
            base_delay=config.retry_base_delay,
            exit_timeout=config.exit_timeout,
            spool=spool,
        )

    def _reset(self) -> None:
        self._cond = threading.Condition()
        #: Events of this client, oldest first; an entry names the spool segment it was read from.
        self._queue: deque[Entry] = deque()
        #: Events read back from segments earlier clients left: delivered before ``_queue``.
        self._replay: deque[Entry] = deque()
        self._in_flight: list[Entry] = []
        self._worker: Optional[threading.Thread] = None
        self._stop = False
        self._flushers = 0
        self._worker_idle = False
        #: The queue overflowed to the spool: new events go there too until it is read back.
        self._spooling = False
        self._delivered = 0
        self._dropped = 0
        self._in_burst = False
        self._announcements: list[str] = []
        self._last_error: Optional[str] = None

    # -- the caller's side ------------------------------------------------------------------

    def put(self, item: bytes) -> str:
        """Queue one serialized event; ``"queued"`` (in memory or spooled) or ``"dropped"``."""
        with self._cond:
            if self._closed:
                raise AgenitryError("This Agenitry client is closed; create a new one to log events")
            status = self._put_locked(item)
            self._start_worker_locked()
            if self._worker_idle:
                # Only an idle worker needs waking; one pausing between retries must not be woken per event.
                self._cond.notify_all()
        self.announce(stacklevel=5)
        return status

    def _put_locked(self, item: bytes) -> str:
        if not self._spooling and len(self._queue) < self._max_queue:
            self._queue.append((item, None))
            return "queued"
        full = f"the queue is full (max_queue={self._max_queue})"
        if self._spool is None:
            self._drop_locked(1, f"{full} and the spool is off")
            return "dropped"
        try:
            self._spool.append(item)
        except SpoolFull:
            self._drop_locked(1, f"{full} and the spool is full (spool_max_bytes={self._spool.max_bytes})")
            return "dropped"
        except OSError as exc:
            self._drop_locked(1, f"{full} and the spool could not be written ({exc})")
            return "dropped"
        self._spooling = True
        return "queued"

    def _waiting_locked(self) -> bool:
        """Anything left to deliver: in memory, in flight, or on disk in this client's spool."""
        if self._queue or self._replay or self._in_flight or self._spooling:
            return True
        return self._spool is not None and bool(self._spool.replay)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until the queue is empty: True when everything was delivered, False if ``timeout``
        ran out first or the gateway refused (dropped) some of it meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            dropped_before = self._dropped
            self._flushers += 1
            self._cond.notify_all()
            try:
                while self._waiting_locked():
                    if self._worker is None or not self._worker.is_alive():
                        self._start_worker_locked()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return self._dropped == dropped_before
            finally:
                self._flushers -= 1

    def close(self, timeout: Optional[float] = None) -> bool:
        """Deliver what is queued (up to ``timeout``), stop the worker, and spool or drop the rest."""
        if self._closed:
            return True
        done = self.flush(self.exit_timeout if timeout is None else timeout)
        with self._cond:
            self._closed = True
            self._stop = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(STOP_GRACE)
        with self._cond:
            leftover = self._in_flight + list(self._replay) + list(self._queue)
            self._in_flight = []
            self._replay.clear()
            self._queue.clear()
            lost, why = self._keep_locked(leftover)
            if lost:
                self._in_burst = False  # losing events at close is news even in the middle of a burst
                self._drop_locked(
                    lost,
                    f"they were still undelivered when the client closed ({why})"
                    + (f" (last error: {self._last_error})" if self._last_error else ""),
                )
        return done

    def _keep_locked(self, leftover: list[Entry]) -> tuple[int, str]:
        """Spool the events only memory holds and release the spool; (how many are lost, why)."""
        in_memory = sum(1 for _, segment in leftover if segment is None)
        if self._spool is None:
            return in_memory, "the spool is off"
        try:
            lost = self._spool.keep(leftover)
            why = f"the spool is full (spool_max_bytes={self._spool.max_bytes})"
        except OSError as exc:
            lost, why = in_memory, f"the spool could not be written: {exc}"
        self._spool.close(leftover)
        return lost, why

    def announce(self, stacklevel: int = 3) -> None:
        """Warn, on the caller's thread, about drops not announced yet (one warning per burst)."""
        if not self._announcements:
            return
        with self._cond:
            messages, self._announcements = self._announcements, []
        for message in messages:
            warnings.warn(message, EventsDroppedWarning, stacklevel=stacklevel)

    def stats(self) -> DeliveryStats:
        with self._cond:
            return DeliveryStats(
                queued=len(self._queue) + len(self._replay),
                in_flight=len(self._in_flight),
                spooled=self._spool.pending if self._spool is not None else 0,
                delivered=self._delivered,
                dropped=self._dropped,
                last_error=self._last_error,
            )

    @property
    def pending(self) -> int:
        """Events not delivered yet: in memory, in flight, and in this client's spool."""
        stats = self.stats()
        return stats.queued + stats.in_flight + stats.spooled

    @property
    def dropped(self) -> int:
        return self._dropped

    def _drop_locked(self, count: int, reason: str) -> None:
        # A burst of drops lasts until the backlog has cleared: one warning for it, not one per event.
        self._dropped += count
        if self._in_burst:
            logger.debug("agenitry dropped %d event(s): %s", count, reason)
        else:
            self._in_burst = True
            logger.warning("agenitry dropped %d event(s): %s (further drops are counted)", count, reason)
            self._announcements.append(
                f"agenitry dropped events because {reason}; {self._dropped} dropped so far (see client.dropped_events)"
            )

    # -- the worker --------------------------------------------------------------------------

    def _start_worker_locked(self) -> None:
        if self._stop or (self._worker is not None and self._worker.is_alive()):
            return
        worker = threading.Thread(target=self._run, name="agenitry-delivery", daemon=True)
        try:
            worker.start()
        except RuntimeError:
            # The interpreter is shutting down: no new threads. close() spools or counts what is left.
            return
        self._worker = worker

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._deliver(batch)

    def _next_batch(self) -> Optional[list[bytes]]:
        with self._cond:
            while True:
                if self._stop:
                    return None  # close() spools or counts whatever is left
                if not self._replay and self._spool is not None and self._spool.replay:
                    self._replay.extend(self._spool.read_replay(SPOOL_READ))
                if self._spooling and len(self._queue) < self._max_queue // 2 + 1:
                    self._refill_locked()
                source = self._replay or self._queue
                if source:
                    break
                self._worker_idle = True
                # Nothing is left to send: a flush waiting for that must hear it (reading the
                # spool's last, already sent, file to its end changes what it waits for).
                self._cond.notify_all()
                try:
                    self._cond.wait()
                finally:
                    self._worker_idle = False
            batch: list[Entry] = []
            size = 0
            while source and len(batch) < MAX_BATCH_EVENTS:
                item = source[0][0]
                if batch and size + len(item) > MAX_BATCH_BYTES:
                    break
                batch.append(source.popleft())
                size += len(item) + 1
            self._in_flight = batch
            return [item for item, _ in batch]

    def _refill_locked(self) -> None:
        assert self._spool is not None  # noqa: S101 - spooling implies a spool
        self._queue.extend(self._spool.read_overflow(SPOOL_READ))
        if not self._spool.overflow:
            self._spooling = False

    def _deliver(self, batch: list[bytes]) -> None:
        """Send one batch until it is stored (or refused), retrying through outages."""
        parts = [batch]
        key = new_idempotency_key()
        attempt = 0
        while parts:
            part = parts[0]
            try:
                self._send(part, key)
            except AgenitryError as exc:
                if is_retryable(exc):
                    if not self._retry_later(exc, next_delay(exc, attempt, self._base_delay)):
                        return
                    attempt += 1
                    continue
                if exc.status in SPLIT_STATUSES and len(part) > 1:
                    middle = len(part) // 2
                    parts[0:1] = [part[:middle], part[middle:]]
                else:
                    self._settle(len(part), refused=f"the gateway refused them: {exc.message}")
                    parts.pop(0)
            except Exception as exc:  # a bug must not kill the worker, nor lose what it holds: log, wait, retry
                if attempt == 0:
                    logger.exception("Unexpected error while delivering events; retrying")
                if not self._retry_later(exc, backoff_delay(attempt, self._base_delay)):
                    return
                attempt += 1
                continue
            else:
                self._settle(len(part))
                parts.pop(0)
            key = new_idempotency_key()
            attempt = 0

    def _retry_later(self, error: Exception, delay: float) -> bool:
        delay = min(delay, DELIVERY_MAX_DELAY)
        with self._cond:
            self._last_error = str(error)
        logger.debug("Delivery failed (%s); retrying in %.3f s", error, delay)
        return self._pause(delay)

    def _settle(self, count: int, refused: Optional[str] = None) -> None:
        with self._cond:
            settled = self._in_flight[:count]
            del self._in_flight[:count]
            if self._spool is not None:
                self._spool.settle(segment for _, segment in settled if segment is not None)
            if refused is None:
                self._delivered += count
                self._last_error = None
                if not self._queue and not self._replay and not self._in_flight:
                    self._in_burst = False
            else:
                self._drop_locked(count, refused)
            self._cond.notify_all()

    def _pause(self, delay: float) -> bool:
        """Wait before a retry; shorter while someone flushes. False when the client is closing."""
        start = time.monotonic()
        with self._cond:
            while not self._stop:
                wait = min(delay, FLUSH_RETRY_DELAY) if self._flushers else delay
                remaining = start + wait - time.monotonic()
                if remaining <= 0:
                    return True
                self._cond.wait(remaining)
            return False

    def _after_fork(self) -> None:
        # The parent's queue, worker and locks stay with the parent; the child starts empty.
        if self._spool is not None:
            self._spool.after_fork()
        self._reset()


_deliveries: weakref.WeakSet[Delivery] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    for delivery in list(_deliveries):
        try:
            delivery.close()
            delivery.announce(stacklevel=2)
        except Exception:  # one client's failure must not stop the others' flush at exit
            logger.exception("Could not flush agenitry events at exit")


def _without_credentials(url: str) -> str:
    """A gateway's address as shown in ``scope.json``: a database URL's password left out."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep and "@" in rest.split("/", 1)[0] else url


def _reset_in_child() -> None:
    for delivery in list(_deliveries):
        delivery._after_fork()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
