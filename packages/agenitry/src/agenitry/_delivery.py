"""Delivery of logged events in the background, so ``log()`` never waits on the network.

``log()`` serializes the event on the caller's thread and appends it to a bounded queue;
one worker thread per client sends the queue in order, in batches (at most
``MAX_BATCH_EVENTS``) to ``POST /v1/events/batch``, each batch with its own
Idempotency-Key. Through an outage the worker retries the same batch with capped,
jittered backoff; every event carries a client-made id, so the gateway stores each one
once however often it is sent.

When the queue is full, events go to the optional on-disk spool (JSON lines) and keep
going there until the worker has read the spool back, which keeps the order. Events
still undelivered when the client closes, or the interpreter exits after
``exit_timeout``, are written to the spool and sent by the next client on the same
spool directory. Without a spool they are dropped: every dropped event is counted
(``client.dropped_events``), logged, and announced with one :class:`EventsDroppedWarning`
per burst on the caller's thread, never silently.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Optional

from agenitry._base import backoff_delay, is_retryable, new_idempotency_key, next_delay
from agenitry._config import DELIVERY_MAX_DELAY, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, ClientConfig
from agenitry._exceptions import AgenitryError, EventsDroppedWarning

logger = logging.getLogger("agenitry")

#: While someone waits in flush(), a retry through an outage waits at most this long.
FLUSH_RETRY_DELAY = 0.25
#: After close() asked the worker to stop, how long to wait for its current attempt.
STOP_GRACE = 1.0
#: Statuses that refuse something in the batch (not the key): halve it to find the event refused.
SPLIT_STATUSES = frozenset({400, 409, 413, 422})
SEGMENT_EVENTS = 10_000

Send = Callable[[list[bytes], str], None]


@dataclass(frozen=True)
class DeliveryStats:
    """Where a client's logged events are: ``dropped`` events will never be stored."""

    queued: int
    in_flight: int
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
        if self._spooling:
            with self._cond:
                self._start_worker_locked()  # what an earlier run left in the spool goes first, now

    @classmethod
    def for_client(cls, config: ClientConfig, send: Send) -> Delivery:
        spool = None
        if config.spool_dir is not None:
            scope = f"{config.origin.url}|{config.venue_id}|{config.api_key}".encode()
            spool = Spool(Path(config.spool_dir) / hashlib.sha256(scope).hexdigest()[:16])
        return cls(
            send,
            max_queue=config.max_queue,
            base_delay=config.retry_base_delay,
            exit_timeout=config.exit_timeout,
            spool=spool,
        )

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[bytes] = deque()
        self._in_flight: list[bytes] = []
        self._worker: Optional[threading.Thread] = None
        self._stop = False
        self._flushers = 0
        self._worker_idle = False
        self._spooling = self._spool is not None and self._spool.pending > 0
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
            self._queue.append(item)
            return "queued"
        if self._spool is not None:
            try:
                self._spool.append(item)
            except OSError as exc:
                self._drop_locked(1, f"the queue is full and the spool could not be written ({exc})")
                return "dropped"
            self._spooling = True
            return "queued"
        self._drop_locked(1, f"the queue is full (max_queue={self._max_queue}) and no spool_dir is set")
        return "dropped"

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until the queue is empty: True when everything was delivered, False if ``timeout``
        ran out first or the gateway refused (dropped) some of it meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            dropped_before = self._dropped
            self._flushers += 1
            self._cond.notify_all()
            try:
                while self._queue or self._in_flight or self._spooling:
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
            leftover = self._in_flight + list(self._queue)
            self._in_flight = []
            self._queue.clear()
            if leftover and self._spool is not None:
                try:
                    self._spool.prepend(leftover)
                    leftover = []
                except OSError as exc:
                    logger.warning("Could not spool %d undelivered events: %s", len(leftover), exc)
            if leftover:
                self._in_burst = False  # losing events at close is news even in the middle of a burst
                self._drop_locked(
                    len(leftover),
                    "they were still undelivered when the client closed"
                    + (f" (last error: {self._last_error})" if self._last_error else ""),
                )
            if self._spool is not None:
                self._spool.close()
        return done

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
                queued=len(self._queue),
                in_flight=len(self._in_flight),
                spooled=self._spool.pending if self._spool is not None else 0,
                delivered=self._delivered,
                dropped=self._dropped,
                last_error=self._last_error,
            )

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
                f"agenitry dropped events because {reason}; {self._dropped} dropped so far "
                "(see client.dropped_events; set spool_dir=... to keep them on disk)"
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
                if self._spooling and len(self._queue) < self._max_queue // 2 + 1:
                    self._refill_locked()
                if self._queue:
                    break
                self._worker_idle = True
                try:
                    self._cond.wait()
                finally:
                    self._worker_idle = False
            batch: list[bytes] = []
            size = 0
            while self._queue and len(batch) < MAX_BATCH_EVENTS:
                item = self._queue[0]
                if batch and size + len(item) > MAX_BATCH_BYTES:
                    break
                batch.append(self._queue.popleft())
                size += len(item) + 1
            self._in_flight = list(batch)
            return batch

    def _refill_locked(self) -> None:
        assert self._spool is not None  # noqa: S101 - spooling implies a spool
        room = min(self._max_queue - len(self._queue), 4 * MAX_BATCH_EVENTS)
        try:
            self._queue.extend(self._spool.read(room))
        except OSError as exc:
            logger.warning("Could not read the spool %s: %s", self._spool.directory, exc)
        if self._spool.pending == 0:
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
            del self._in_flight[:count]
            if refused is None:
                self._delivered += count
                self._last_error = None
                if not self._queue and not self._in_flight:
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


class Spool:
    """Events on disk, oldest first: JSON lines in segment files ``<start>-<seq>.<pid>.jsonl``.

    Segments whose writing process is gone are claimed (renamed to our pid) when the
    next client opens the directory, and replayed ahead of its own events. Files are
    written unbuffered, so a crash loses at most the line being written, and a fork
    leaves nothing half-buffered to write twice.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._begin()
        self._segments: deque[Path] = deque(self._claim_orphans())
        self.pending = sum(_count_lines(path) for path in self._segments)

    def _begin(self) -> None:
        self._pid = os.getpid()
        self._start = time.time_ns()
        self._seq = 0
        self._writer: Optional[BinaryIO] = None
        self._writing: Optional[Path] = None
        self._written = 0
        self._reader: Optional[BinaryIO] = None

    def _claim_orphans(self) -> list[Path]:
        claimed = []
        with _held_lock:
            for path in sorted(self.directory.glob("*.jsonl")):
                stem, _, owner = path.name[: -len(".jsonl")].rpartition(".")
                if not owner.isdigit() or path in _held:
                    continue
                if int(owner) != self._pid:
                    if _alive(int(owner)):
                        continue
                    target = path.with_name(f"{stem}.{self._pid}.jsonl")
                    try:
                        path.rename(target)
                    except OSError:
                        continue  # another process claimed it first
                    path = target
                _held.add(path)
                claimed.append(path)
        return sorted(claimed)

    def _segment(self, key: str) -> Path:
        return self.directory / f"{key}.{self._pid}.jsonl"

    def append(self, item: bytes) -> None:
        if self._writer is None:
            self._seq += 1
            self._writing = self._segment(f"{self._start:020d}-{self._seq:06d}")
            self._writer = open(self._writing, "ab", buffering=0)  # noqa: SIM115 - kept open across appends
            self._segments.append(self._writing)
            _hold(self._writing)
            self._written = 0
        self._writer.write(item + b"\n")
        self.pending += 1
        self._written += 1
        if self._written >= SEGMENT_EVENTS:
            self._close_writer()

    def prepend(self, items: list[bytes]) -> None:
        """Write events older than everything spooled so far (undelivered at close)."""
        self._close_writer()
        first = self._segments[0].name.split("-")[0] if self._segments else f"{self._start:020d}"
        path = self._segment(f"{int(first) - 1:020d}-000000")
        with open(path, "ab", buffering=0) as handle:
            handle.write(b"".join(item + b"\n" for item in items))
        self._segments.appendleft(path)
        _hold(path)
        self.pending += len(items)

    def read(self, limit: int) -> list[bytes]:
        items: list[bytes] = []
        while len(items) < limit and self._segments:
            if self._reader is None:
                if self._segments[0] == self._writing:
                    self._close_writer()
                self._reader = open(self._segments[0], "rb")  # noqa: SIM115 - read across calls
            line = self._reader.readline()
            if line.endswith(b"\n"):
                self.pending -= 1
                if line.strip():
                    items.append(line.rstrip(b"\n"))
                continue
            # The end of the segment (a line without its newline was cut off by a crash).
            self._reader.close()
            self._reader = None
            done = self._segments.popleft()
            done.unlink(missing_ok=True)
            _release([done])
        if not self._segments:
            self.pending = 0
        return items

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._writing = None

    def close(self) -> None:
        """Close the files; what is still spooled is left for the next client on this directory."""
        self._close_writer()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        _release(self._segments)

    def after_fork(self) -> None:
        # The parent keeps its segments; the child writes (and reads) only its own.
        self.close()
        self._begin()
        self._segments = deque()
        self.pending = 0


# Segments an open spool of this process holds; any other file of ours is a closed client's, free to replay.
_held: set[Path] = set()
_held_lock = threading.Lock()


def _hold(path: Path) -> None:
    with _held_lock:
        _held.add(path)


def _release(paths: Iterable[Path]) -> None:
    with _held_lock:
        _held.difference_update(paths)


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 16), b""))
    except OSError:
        return 0


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would end the process there; a pid file lock is not worth it
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_deliveries: weakref.WeakSet[Delivery] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    for delivery in list(_deliveries):
        try:
            delivery.close()
            delivery.announce(stacklevel=2)
        except Exception:  # one client's failure must not stop the others' flush at exit
            logger.exception("Could not flush agenitry events at exit")


def _reset_in_child() -> None:
    global _held_lock
    _held_lock = threading.Lock()
    for delivery in list(_deliveries):
        delivery._after_fork()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
