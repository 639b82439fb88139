"""Group commit: the concurrent writes of one venue share a transaction and its commit.

A venue's writes serialize on its lock (see :mod:`agenitry.gateway.store.database`), so
under load they queue, and each paid a transaction of its own: a ``BEGIN``, the venue's
lock, the expiry check and a commit (an fsync on SQLite, a round trip on PostgreSQL) for
one decision. Here the writes that queued meanwhile run one after another in one
transaction and are committed together:

* each is decided exactly as if it were alone, in the order it arrived: it runs on the
  same connection after the ones before it, so it sees their holds, idempotency records
  and events;
* one that fails (bad input, a conflict, a bug) is rolled back to a savepoint taken just
  before it, and the others go on: its caller gets its error, and nothing it wrote;
* each caller is answered only after the commit that holds its write; a commit that fails
  fails every write of its batch (with the storage's error: the outcome is unknown);
* a lone write does not wait for anyone: the first to arrive at an idle venue runs at
  once, and takes with it only the writes that queued while the previous batch ran.

The caller that arrives at an idle venue leads: it runs batches until its own write is
done, then hands the lead to the oldest write still queued, so no caller runs the batches
of others for long, and no thread is kept for the purpose.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, Optional, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from agenitry.gateway.errors import StorageBusy
from agenitry.gateway.service.lifecycle import ReadAhead, Tx
from agenitry.gateway.service.writes import Writes
from agenitry.gateway.store import driver
from agenitry.gateway.store.driver import Sql

_T = TypeVar("_T")

#: At most this many writes share one transaction: a longer batch holds the venue's lock
#: longer, and answers its first writes later, for little more saved.
MAX_BATCH = 64


class _Write(Generic[_T]):
    """One caller's write, waiting in its venue's queue."""

    __slots__ = ("_wake", "ahead", "error", "finished", "leads", "result", "taken", "work")

    def __init__(self, work: Callable[[Tx], _T], ahead: Optional[ReadAhead]) -> None:
        self.work = work
        self.ahead = ahead
        self.result: Optional[_T] = None
        self.error: Optional[BaseException] = None
        self.taken = False  # in a batch that has begun: it will be answered
        self.finished = False
        self.leads = False  # handed the lead by the previous leader
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def wait(self, timeout: Optional[float]) -> bool:
        woken = self._wake.wait(timeout)
        self._wake.clear()
        return woken

    def answer(self) -> _T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class _Venue:
    __slots__ = ("led", "queue")

    def __init__(self) -> None:
        self.queue: deque[_Write[Any]] = deque()
        self.led = False


class GroupCommit:
    """Runs writes in their venue's transaction, batching the ones that arrive together.

    ``transaction(venue_id, ahead)`` opens the venue's write transaction (locked, expiry
    applied, ``ahead`` read with the lock for the batch's first write) and commits it on a
    normal exit.
    """

    def __init__(
        self,
        transaction: Callable[[str, Optional[ReadAhead]], AbstractContextManager[Tx]],
        *,
        wait_s: float,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._transaction = transaction
        self._wait_s = wait_s
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._venues: dict[str, _Venue] = {}
        #: Batches run, and writes in them (for the benchmarks and tests).
        self.batches = 0
        self.writes = 0

    def queued(self, venue_id: str) -> int:
        """How many writes of the venue wait for a batch (not those of the batch running)."""
        with self._lock:
            venue = self._venues.get(venue_id)
            return len(venue.queue) if venue is not None else 0

    def run(self, venue_id: str, work: Callable[[Tx], _T], ahead: Optional[ReadAhead] = None) -> _T:
        """``work(tx)`` in a transaction of the venue, committed before this returns;
        ``ahead``: what it reads first, read with the lock if it is the batch's first."""
        write = _Write(work, ahead)
        with self._lock:
            venue = self._venues.get(venue_id)
            if venue is None:
                venue = self._venues[venue_id] = _Venue()
            venue.queue.append(write)
            leads = not venue.led
            venue.led = True
        if not leads:
            self._await_turn(venue, write)
            if write.finished:
                return write.answer()
        self._lead(venue_id, venue, write)
        return write.answer()

    def _await_turn(self, venue: _Venue, write: _Write[Any]) -> None:
        """Wait until ``write`` is answered or handed the lead."""
        while not (write.finished or write.leads):
            if write.wait(self._wait_s) or write.finished or write.leads:
                continue
            with self._lock:
                if not write.taken and not write.leads:
                    # The writes ahead held the venue all this while: give up before starting.
                    venue.queue.remove(write)
                    raise StorageBusy(
                        "The gateway's database stayed busy with other writes; nothing was changed. Retry shortly."
                    )
            # Taken into a running batch: it ends within the storage's own deadlines.

    def _lead(self, venue_id: str, venue: _Venue, own: _Write[Any]) -> None:
        while not own.finished:
            with self._lock:
                batch = [venue.queue.popleft() for _ in range(min(self._max_batch, len(venue.queue)))]
                for write in batch:
                    write.taken = True
            self._run(venue_id, batch)
        with self._lock:
            if venue.queue:
                heir = venue.queue[0]
                heir.leads = True
                heir.wake()
            else:
                venue.led = False
                if self._venues.get(venue_id) is venue:
                    del self._venues[venue_id]

    def _run(self, venue_id: str, batch: list[_Write[Any]]) -> None:
        failed: Optional[BaseException] = None
        try:
            with self._transaction(venue_id, batch[0].ahead) as tx:
                if len(batch) == 1:
                    batch[0].result = batch[0].work(tx)
                else:
                    for n, write in enumerate(batch):
                        # The first's reads came with the lock; each later one reads its own.
                        _run_alone(tx, write, None if n == 0 else write.ahead)
        except BaseException as exc:  # the batch's transaction is rolled back: no write of it happened
            failed = exc
        with self._lock:
            self.batches += 1
            self.writes += len(batch)
        for write in batch:
            if failed is not None and write.error is None:
                write.error = failed
                write.result = None
            write.finished = True
            write.wake()


#: The savepoint each write of a batch runs after, released when it is done (its name is
#: reused: a write begins once the one before has released its own).
_SAVEPOINT = Sql("SAVEPOINT agenitry_write")
_RELEASE = Sql("RELEASE SAVEPOINT agenitry_write")
_ROLLBACK_TO = Sql("ROLLBACK TO SAVEPOINT agenitry_write")


def _run_alone(tx: Tx, write: _Write[Any], ahead: Optional[ReadAhead]) -> None:
    """Run one write of a batch as if alone: what it does is undone if it fails.

    Its savepoint goes with what it reads first (``ahead``, unless read with the lock), and
    the rows it writes with the savepoint's release: on PostgreSQL a write of a batch costs
    the round trips of a lone one, less the ``COMMIT``.
    """
    appended = len(tx.appended)
    venue = tx.venue
    conn = tx.conn  # nothing waits to be sent: the write before released its savepoint after its rows
    statements = [(_SAVEPOINT, {}), *(ahead.statements(tx.venue_id) if ahead is not None else [])]
    _, *found = driver.together(conn, statements)
    if ahead is not None:
        ahead.found(conn, found)
        tx.ahead = ahead
    try:
        write.result = write.work(tx)
        tx.send((_RELEASE, {}))  # the next write of the batch must see all of this one
    except Exception as exc:
        if _storage_failed(exc):
            raise  # the transaction itself is lost: every write of the batch fails
        driver.together(conn, [(_ROLLBACK_TO, {}), (_RELEASE, {})])
        del tx.appended[appended:]
        tx.venue = venue
        tx.writes = Writes()  # what it left unsent goes with it
        tx.siblings = None
        write.error = exc
    finally:
        tx.ahead = None


def _storage_failed(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection or transaction is unusable, not that one write failed."""
    if isinstance(exc, StorageBusy | OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated
