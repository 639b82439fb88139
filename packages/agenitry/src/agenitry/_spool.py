"""The on-disk spool: events that outlive their client, replayed by the next one.

One directory per gateway, venue and key (its *scope*) under the spool root holds
``scope.json`` (the gateway and venue, for ``agenitry spool status``) and segment files
of JSON lines, one event a line, named ``<start>-<tag>-<seq>-<part>.jsonl``. Names sort
in the order the events were logged: a client's segments share its start time and a
random tag, and ``seq`` orders them within the client (overflow segments take even
numbers; events left in memory at close take the odd number just before the segment
they preceded).

Invariants:

- Nothing is written while the queue in memory has room and the client is open: the
  scope directory is created at the first write.
- A segment is held by one open client at a time, through an exclusive ``flock`` on it.
  The kernel drops the lock when its holder dies, kill -9 included, so the next client
  takes the file over. A segment is created under a hidden name, locked, then renamed:
  no one ever sees it unlocked.
- A segment is deleted only when every event read from it was delivered or refused. A
  replay cut short by a crash sends its delivered part again; the gateway stores each
  event once (event ids are idempotent).
- Files are 0600 in 0700 directories: they hold event contents.
- A scope holds about ``max_bytes`` at most (files of other live clients counted when
  this one opened); past it, writes raise :class:`SpoolFull` and the caller counts a drop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional

logger = logging.getLogger("agenitry")

if sys.platform != "win32":
    import fcntl

#: The spool needs flock (POSIX); without it the default is no spool.
SUPPORTED = sys.platform != "win32"
SEGMENT_EVENTS = 10_000
SEGMENT_BYTES = 4 * 1024 * 1024
SUFFIX = ".jsonl"
SCOPE_FILE = "scope.json"

Entry = tuple[bytes, Optional["Segment"]]


class SpoolFull(Exception):
    """Writing would take the scope past its ``max_bytes``."""


def scope_name(gateway: str, venue_id: str, api_key: str) -> str:
    """The scope directory's name: a digest, so the key is never written anywhere."""
    return hashlib.sha256(f"{gateway}|{venue_id}|{api_key}".encode()).hexdigest()[:16]


class Segment:
    """One spool file this client holds (locked) while it writes or replays it."""

    def __init__(self, path: Path, fd: int, seq: int, lines: int = 0, size: int = 0, writable: bool = False) -> None:
        self.path = path
        self.fd = fd
        self.seq = seq
        self.unread = lines
        self.size = size
        self.writable = writable
        #: Events read back into memory and not yet delivered (or refused).
        self.outstanding = 0
        self.exhausted = False
        self._reader: Optional[BinaryIO] = None

    def read(self, limit: int) -> list[bytes]:
        """Up to ``limit`` events; at the end of the file the segment is exhausted."""
        if self._reader is None:
            self._reader = open(self.path, "rb")  # noqa: SIM115 - read across calls
        items: list[bytes] = []
        while len(items) < limit:
            line = self._reader.readline()
            if not line.endswith(b"\n"):
                # The end (a line without its newline was cut short by a crash while written).
                self.exhausted = True
                self.unread = 0
                self._close_reader()
                break
            self.unread -= 1
            if line.strip():
                items.append(line.rstrip(b"\n"))
        self.outstanding += len(items)
        return items

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def release(self) -> None:
        """Close the file (which drops the lock): the segment is free for the next client."""
        self._close_reader()
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Spool:
    """A client's spool in one scope directory: the segments it replays and those it writes."""

    def __init__(self, directory: Path, *, gateway: str, venue_id: str, max_bytes: int) -> None:
        if not SUPPORTED:
            raise OSError("the spool needs POSIX file locks (fcntl.flock)")
        self.directory = directory
        self.max_bytes = max_bytes
        self._label = {"gateway": gateway, "venue_id": venue_id}
        self._begin()
        #: Segments earlier clients left, oldest first; replayed before this client's own events.
        self.replay: deque[Segment] = deque()
        self.used = 0
        if directory.is_dir():  # the happy path never created it: one stat, nothing more
            paths = _segment_paths(directory)
            self.used = sum(_size(path) for path in paths)
            claimed = (_claim(path) for path in paths)
            self.replay.extend(segment for segment in claimed if segment is not None and not _empty(segment))

    def _begin(self) -> None:
        self._start = time.time_ns()
        self._tag = secrets.token_hex(4)
        self._seq = 0
        #: This client's overflow segments (a full queue), oldest first, read back as the queue drains.
        self.overflow: deque[Segment] = deque()

    @property
    def pending(self) -> int:
        """Events on disk not yet read back into memory."""
        return sum(segment.unread for segment in (*self.replay, *self.overflow))

    # -- writing ------------------------------------------------------------------------------

    def append(self, item: bytes) -> None:
        """Add an event after everything this client spooled so far (the queue is full)."""
        line = item + b"\n"
        writer = self.overflow[-1] if self.overflow and self.overflow[-1].writable else None
        if writer is None or writer.unread >= SEGMENT_EVENTS or writer.size + len(line) > SEGMENT_BYTES:
            if writer is not None:
                writer.writable = False
            self._seq += 2
            writer = self._create(self._seq, 0)
            self.overflow.append(writer)
        self._write(writer, [line])

    def keep(self, entries: Sequence[Entry]) -> int:
        """Write the events of ``entries`` that exist only in memory, each run of them named to
        sort where it stood among this client's overflow segments; the rest are on disk already.

        Returns how many did not fit under ``max_bytes``; raises OSError if the disk refused.
        """
        runs: list[tuple[Optional[Segment], list[bytes]]] = []
        run: list[bytes] = []
        for item, segment in entries:
            if segment is None:
                run.append(item)
            elif run and segment in self.overflow:
                runs.append((segment, run))
                run = []
        if run:
            runs.append((self.overflow[0] if self.overflow else None, run))
        refused = 0
        for before, items in runs:
            refused += self._write_run(before.seq - 1 if before is not None else self._seq + 1, items)
        return refused

    def _write_run(self, seq: int, items: list[bytes]) -> int:
        part, index, refused = 0, 0, 0
        while index < len(items):
            segment = self._create(seq, part)
            lines: list[bytes] = []
            size = 0
            while index < len(items) and len(lines) < SEGMENT_EVENTS:
                line = items[index] + b"\n"
                if lines and size + len(line) > SEGMENT_BYTES:
                    break
                lines.append(line)
                size += len(line)
                index += 1
            try:
                self._write(segment, lines)
            except SpoolFull:
                refused = len(items) - index + len(lines)
                index = len(items)
            finally:
                if segment.unread:
                    segment.release()
                else:
                    self._remove(segment)
            part += 1
        return refused

    def _write(self, segment: Segment, lines: list[bytes]) -> None:
        data = b"".join(lines)
        if self.used + len(data) > self.max_bytes:
            raise SpoolFull
        view = memoryview(data)
        while view:
            written = os.write(segment.fd, view)
            view = view[written:]
        segment.size += len(data)
        segment.unread += len(lines)
        self.used += len(data)

    def _create(self, seq: int, part: int) -> Segment:
        if not self.directory.is_dir():
            _make_private_dir(self.directory.parent)
            _make_private_dir(self.directory)
        label = self.directory / SCOPE_FILE
        if not label.exists():
            _write_private(label, json.dumps(self._label).encode())
        name = f"{self._start:020d}-{self._tag}-{seq:08d}-{part:06d}{SUFFIX}"
        hidden = self.directory / f".{name}.new"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        if not _try_lock(fd):  # a fresh file of a random name: only a broken filesystem refuses
            os.close(fd)
            raise OSError(f"could not lock the new spool file {hidden}")
        os.replace(hidden, self.directory / name)
        return Segment(self.directory / name, fd, seq, writable=True)

    # -- reading back ------------------------------------------------------------------------

    def read_replay(self, limit: int) -> list[Entry]:
        """Events earlier clients left, oldest first."""
        return self._read(self.replay, limit)

    def read_overflow(self, limit: int) -> list[Entry]:
        """This client's overflow events, oldest first."""
        return self._read(self.overflow, limit)

    def _read(self, segments: deque[Segment], limit: int) -> list[Entry]:
        entries: list[Entry] = []
        while segments and len(entries) < limit:
            segment = segments[0]
            segment.writable = False  # a segment being read back takes no more appends
            try:
                entries.extend((item, segment) for item in segment.read(limit - len(entries)))
            except OSError as exc:
                # Left on disk, unread, for the next client; its events read so far still count.
                logger.warning("Could not read the spool file %s: %s", segment.path, exc)
                segments.popleft()
                segment.release()
                continue
            if segment.exhausted:
                segments.popleft()
                if segment.outstanding == 0:
                    self._remove(segment)
        return entries

    def settle(self, segments: Iterable[Segment]) -> None:
        """Events read from ``segments`` were delivered (or refused): delete segments now done."""
        for segment in segments:
            segment.outstanding -= 1
            if segment.outstanding == 0 and segment.exhausted:
                self._remove(segment)

    def _remove(self, segment: Segment) -> None:
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()
        self.used -= segment.size
        segment.release()

    def close(self, entries: Iterable[Entry] = ()) -> None:
        """Release every segment held (and those of ``entries``): what they hold waits for the next client."""
        held = {id(segment): segment for segment in (*self.replay, *self.overflow)}
        held.update((id(segment), segment) for _, segment in entries if segment is not None)
        for segment in held.values():
            segment.release()
        self.replay.clear()
        self.overflow.clear()

    def after_fork(self) -> None:
        """In a forked child: let go of the parent's files (the parent keeps them locked)."""
        for segment in (*self.replay, *self.overflow):
            segment._close_reader()
            os.close(segment.fd)
        self.replay = deque()
        self._begin()


@dataclass(frozen=True)
class ScopeSummary:
    """What waits in one scope of a spool root, for ``agenitry spool status``."""

    directory: Path
    gateway: str
    venue_id: str
    events: int
    bytes: int
    files: int
    held: int


def summaries(root: Path) -> Iterator[ScopeSummary]:
    """Every scope under ``root`` that holds events (files held by running clients are counted too)."""
    if not root.is_dir():
        return
    for directory in sorted(path for path in root.iterdir() if path.is_dir()):
        paths = _segment_paths(directory)
        if not paths:
            continue
        try:
            label = json.loads((directory / SCOPE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            label = {}
        held = 0
        for path in paths:
            segment = _claim(path)
            if segment is None:
                held += 1
            else:
                segment.release()
        yield ScopeSummary(
            directory=directory,
            gateway=str(label.get("gateway", "?")),
            venue_id=str(label.get("venue_id", "?")),
            events=sum(_count_lines(path) for path in paths),
            bytes=sum(_size(path) for path in paths),
            files=len(paths),
            held=held,
        )


def _segment_paths(directory: Path) -> list[Path]:
    return sorted(path for path in directory.glob(f"*{SUFFIX}") if not path.name.startswith("."))


def _claim(path: Path) -> Optional[Segment]:
    """Take a segment no live client holds, or None (held, or gone meanwhile)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        # Locked after its holder deleted it (fully delivered): the path is gone or is another file.
        if not _try_lock(fd) or os.stat(path).st_ino != os.fstat(fd).st_ino:
            os.close(fd)
            return None
    except OSError:
        os.close(fd)
        return None
    return Segment(path, fd, seq=0, lines=_count_lines(path), size=_size(path))


def _empty(segment: Segment) -> bool:
    if segment.unread:
        return False
    with contextlib.suppress(OSError):
        segment.path.unlink()
    segment.release()
    return True


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _make_private_dir(path: Path) -> None:
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


def _write_private(path: Path, data: bytes) -> None:
    hidden = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(hidden, path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 16), b""))
    except OSError:
        return 0
