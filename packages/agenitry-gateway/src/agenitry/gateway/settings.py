"""The gateway's settings: command-line options, or AGENITRY_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from agenitry.gateway.service.gateway import Gateway
from agenitry.gateway.service.signing import SigningKey
from agenitry.gateway.store.database import Database, default_sqlite_url
from agenitry.transparency import LogFormatError, check_key_name


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=default_sqlite_url)
    host: str = "127.0.0.1"
    port: int = 8700
    #: Seconds an approved authorization may wait to be executed.
    execute_window: float = 300.0
    #: Seconds a pending authorization may wait for the owner.
    approval_window: float = 86_400.0
    #: Where verify links point; by default this gateway's own address.
    public_url: str = ""
    #: Requests with a larger body are refused with 413.
    max_body_bytes: int = 1_048_576
    #: Seconds between sweeps that expire lapsed authorizations (0 turns it off).
    sweep_interval: float = 5.0
    #: Seconds a request waits for the database (SQLite's write lock, a pooled PostgreSQL
    #: connection) before it is answered 503 ``storage_unavailable``.
    busy_timeout: float = 30.0
    #: The key that signs checkpoints: a file (generated at first start, mode 0600) or
    #: ``base64:<seed>``; empty: ``agenitry-signing.key`` beside a SQLite database file.
    signing_key: str = ""
    #: A venue's log gets a checkpoint when it crosses a multiple of this many entries (0: never)...
    checkpoint_every: int = 1000
    #: ...and, through the sweep, once entries have waited this many seconds (0: never).
    checkpoint_interval: float = 60.0
    #: The start of every venue's log origin; by default the public URL's host and ``/agenitry``.
    log_origin: str = ""
    #: Requests a second each client address may make to the public verify and log routes (0: no limit)...
    public_rate_limit: float = 10.0
    #: ...and how many it may make at once.
    public_rate_burst: int = 60
    #: Requests a second each API key may make to the keyed routes (0: no limit)...
    key_rate_limit: float = 50.0
    #: ...and how many it may make at once.
    key_rate_burst: int = 200
    #: Events each agent may log per quota window (0: no quota)...
    agent_event_quota: int = 10_000
    #: ...bytes of events it may log per window (0: no quota)...
    agent_byte_quota: int = 10_485_760
    #: ...and the window, in seconds.
    agent_quota_window: float = 3600.0
    #: Seconds a client has to send a whole request head, from its connection or its first byte.
    header_timeout: float = 10.0
    #: Seconds an idle connection is kept open after an answer.
    keep_alive_timeout: float = 5.0
    #: Connections (and requests in progress) at once; past that, requests answer 503.
    max_connections: int = 1000
    #: Serve /docs, a page listing the API's operations (/openapi.json is always served).
    api_docs: bool = False
    #: Send the webhook outbox from this process (instances on one database share the work).
    webhook_delivery: bool = True
    #: Seconds a key, once read, is trusted from memory (0: read on every request). A write
    #: re-checks it in its own transaction on a revocation; a read may be served this long.
    key_cache_ttl: float = 5.0

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.port < 65536:
            problems.append(f"port must be 1-65535, got {self.port}")
        for name in ("execute_window", "approval_window"):
            if not 1 <= getattr(self, name) <= 365 * 86_400:
                problems.append(f"{name} must be between 1 second and 365 days")
        if self.max_body_bytes < 1024:
            problems.append("max_body_bytes must be at least 1024")
        if self.sweep_interval < 0:
            problems.append("sweep_interval must not be negative")
        if not 0 <= self.key_cache_ttl <= 3600:
            problems.append("key_cache_ttl must be between 0 and 3600 seconds")
        if not 0 < self.busy_timeout <= 3600:
            problems.append("busy_timeout must be more than 0 and at most 3600 seconds")
        for name in (
            "checkpoint_every",
            "checkpoint_interval",
            "public_rate_limit",
            "key_rate_limit",
            "agent_event_quota",
            "agent_byte_quota",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        for name in ("public_rate_burst", "key_rate_burst", "max_connections"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        for name in ("agent_quota_window", "header_timeout", "keep_alive_timeout"):
            if not 0 < getattr(self, name) <= 86_400:
                problems.append(f"{name} must be more than 0 and at most 86400 seconds")
        if self.log_origin:
            try:
                check_key_name(self.log_origin)
            except LogFormatError:
                problems.append("log_origin must not contain spaces or '+'")
        if problems:
            raise ValueError("Invalid gateway settings: " + "; ".join(problems))

    @property
    def verify_base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    def gateway(self, *, serving: bool = True) -> Gateway:
        """A gateway on these settings. Only a serving gateway creates a missing signing
        key; the other commands sign nothing when there is none (a server will)."""
        key = SigningKey.from_setting(self.signing_key, self.database_url, create=serving)
        return Gateway(
            Database(self.database_url, busy_timeout_s=self.busy_timeout),
            execute_window=self.execute_window,
            approval_window=self.approval_window,
            public_url=self.verify_base_url,
            signing_key=key,
            checkpoint_every=self.checkpoint_every if key is not None else 0,
            checkpoint_interval=self.checkpoint_interval,
            log_origin=self.log_origin,
            key_cache_ttl=self.key_cache_ttl,
        )

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from AGENITRY_DATABASE_URL, AGENITRY_PORT and the like, then ``overrides``."""
        values: dict[str, object] = {}
        for item in fields(cls):
            raw = os.environ.get(f"AGENITRY_{item.name.upper()}")
            if raw is not None:
                kind: Callable[[str], object] = _PARSERS.get(str(item.type), str)
                try:
                    values[item.name] = kind(raw)
                except ValueError:
                    raise ValueError(f"AGENITRY_{item.name.upper()}={raw!r} is not a valid {item.type}") from None
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)  # type: ignore[arg-type]


def _flag(raw: str) -> bool:
    """An environment variable's yes or no."""
    value = raw.strip().lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError(raw)
    return value in ("1", "true", "yes", "on")


_PARSERS: dict[str, Callable[[str], object]] = {"int": int, "float": float, "bool": _flag}
