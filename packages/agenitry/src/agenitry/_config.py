"""A client's settings, resolved once at construction: arguments first, then the environment.

Every client holds its own :class:`ClientConfig`; nothing here is global, so two clients
with different keys never overwrite each other. The retry and delivery defaults are named
constants so the docs, the tests and the code agree on one number.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union
from urllib.parse import urlsplit

from agenitry._exceptions import AgenitryError

DEFAULT_BASE_URL = "http://127.0.0.1:8700"
#: Seconds for connecting and for each read of an attempt.
DEFAULT_TIMEOUT = 10.0
#: Retries after the first attempt (the seed page says 3; the 0.2.0 code did 2).
DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_BASE_DELAY = 0.5
#: No backoff step is longer than this, however many attempts failed.
MAX_RETRY_DELAY = 8.0
#: A server's Retry-After is honoured up to this many seconds.
MAX_RETRY_AFTER = 60.0

#: Events held in memory for the background worker before the spool (or a drop) takes over.
DEFAULT_MAX_QUEUE = 10_000
#: The gateway takes up to 1,000 events per batch; 500 keeps each request well under its body limit.
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 512 * 1024
#: The worker's backoff through an outage never waits longer than this between attempts.
DELIVERY_MAX_DELAY = 10.0
#: Seconds close() and the interpreter-exit hook wait for queued events to be delivered.
DEFAULT_EXIT_TIMEOUT = 5.0
#: The spool of one gateway, venue and key holds at most about this many bytes.
DEFAULT_SPOOL_MAX_BYTES = 100 * 1024 * 1024

#: Polling a pending authorization: first wait, and the longest wait between two reads.
APPROVAL_POLL_INITIAL = 0.5
APPROVAL_POLL_MAX = 5.0

ENV_API_KEY = "AGENITRY_API_KEY"
ENV_VENUE_ID = "AGENITRY_VENUE_ID"
ENV_BASE_URL = "AGENITRY_BASE_URL"
ENV_SPOOL_DIR = "AGENITRY_SPOOL_DIR"
#: AGENITRY_SPOOL_DIR=off turns the spool off, as spool_dir=False does.
SPOOL_OFF = "off"

SpoolDir = Union[str, "os.PathLike[str]", bool, None]


@dataclass(frozen=True)
class Origin:
    """Where requests go: ``scheme://host:port`` and a path prefix (for gateways mounted under one)."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AgenitryError(f"base_url must be an http:// or https:// URL, got {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise AgenitryError(f"base_url has an invalid port: {url!r}") from None
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def url(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        netloc = host if self.port == default else f"{host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.prefix}"


@dataclass(frozen=True)
class ClientConfig:
    api_key: str
    venue_id: str
    agent_id: Optional[str]
    origin: Origin
    max_retries: int
    retry_base_delay: float
    timeout: float
    connect_timeout: float
    max_queue: int
    #: None when the spool is off.
    spool_dir: Optional[str]
    spool_max_bytes: int
    exit_timeout: float
    verify_base_url: str


def resolve(
    api_key: Optional[str],
    venue_id: Optional[str],
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
    require_api_key: bool = True,
) -> ClientConfig:
    """Settings from the arguments, falling back to AGENITRY_* variables; fails fast, naming what is wrong."""
    api_key = api_key or os.environ.get(ENV_API_KEY) or ""
    venue_id = venue_id or os.environ.get(ENV_VENUE_ID) or ""
    base_url = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
    if require_api_key and not api_key:
        raise AgenitryError(f"api_key is required: pass api_key=... or set {ENV_API_KEY}")
    if not venue_id:
        raise AgenitryError(f"venue_id is required: pass venue_id=... or set {ENV_VENUE_ID}")
    problems = []
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        problems.append("max_retries must be a whole number >= 0")
    for name, value in (("retry_base_delay", retry_base_delay), ("exit_timeout", exit_timeout)):
        if not isinstance(value, (int, float)) or value < 0:
            problems.append(f"{name} must be a number of seconds >= 0")
    for name, maybe in (("timeout", timeout), ("connect_timeout", connect_timeout)):
        if maybe is not None and (not isinstance(maybe, (int, float)) or maybe <= 0):
            problems.append(f"{name} must be a number of seconds > 0")
    for name, number in (("max_queue", max_queue), ("spool_max_bytes", spool_max_bytes)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            problems.append(f"{name} must be a whole number >= 1")
    if not isinstance(spool_dir, (str, os.PathLike, bool, type(None))):
        problems.append(f"spool_dir must be a directory, False (off) or None (the default), got {spool_dir!r}")
    if problems:
        raise AgenitryError("Invalid client settings: " + "; ".join(problems))
    origin = Origin.parse(base_url)
    return ClientConfig(
        api_key=api_key,
        venue_id=venue_id,
        agent_id=agent_id,
        origin=origin,
        max_retries=max_retries,
        retry_base_delay=float(retry_base_delay),
        timeout=float(timeout),
        connect_timeout=float(connect_timeout if connect_timeout is not None else timeout),
        max_queue=max_queue,
        spool_dir=resolve_spool_dir(spool_dir),
        spool_max_bytes=spool_max_bytes,
        exit_timeout=float(exit_timeout),
        verify_base_url=(verify_base_url or origin.url).rstrip("/"),
    )


def default_spool_dir() -> Optional[Path]:
    """Where the spool lives unless told: AGENITRY_SPOOL_DIR, else the user's XDG state
    directory (``$XDG_STATE_HOME/agenitry/spool``, ``~/.local/state/agenitry/spool``).

    None when the spool is off: AGENITRY_SPOOL_DIR=off, no home directory to put it in,
    or no POSIX file locks (Windows).
    """
    configured = os.environ.get(ENV_SPOOL_DIR, "").strip()
    if configured.lower() == SPOOL_OFF:
        return None
    if configured:
        return Path(configured).expanduser()
    if sys.platform == "win32":
        return None
    state = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):  # the XDG spec: a relative path is to be ignored
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state, "agenitry", "spool") if os.path.isabs(state) else None


def resolve_spool_dir(spool_dir: SpoolDir) -> Optional[str]:
    """A client's spool directory: ``False`` is off, ``None`` or ``True`` the default."""
    if spool_dir is False:
        return None
    if spool_dir is None or spool_dir is True:
        default = default_spool_dir()
        return None if default is None else str(default)
    return os.fspath(spool_dir)
