"""Time as integer milliseconds since the Unix epoch, from an injectable clock."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timezone
from typing import Callable

#: A clock returns the current time in milliseconds since the epoch.
Clock = Callable[[], int]

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def system_clock() -> int:
    return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to; tests use it to stand on a window's edge."""

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:  # 2026-01-01T00:00Z
        self._now = start_ms
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self._now

    def advance(self, ms: int) -> int:
        with self._lock:
            self._now += ms
            return self._now

    def set(self, ms: int) -> None:
        with self._lock:
            self._now = ms


def iso(ms: int | None) -> str | None:
    """Render milliseconds as ISO 8601 UTC with milliseconds: 2026-01-01T00:00:00.000Z."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def parse_iso(text: str) -> int | None:
    """The milliseconds :func:`iso` renders as ``text``, or None for any other text.

    >>> parse_iso("2026-01-01T00:00:00.000Z"), parse_iso("2026-01-01T00:00:00Z")
    (1767225600000, None)
    """
    if not _ISO.fullmatch(text):
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:  # a day or an hour that does not exist
        return None
    return int(moment.timestamp()) * SECOND + int(text[20:23])


def start_of_utc_day(ms: int) -> int:
    return ms - ms % DAY
