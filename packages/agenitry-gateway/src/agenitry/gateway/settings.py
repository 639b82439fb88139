"""The gateway's settings: command-line options, or AGENITRY_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from agenitry.gateway.store.database import default_sqlite_url


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
        if problems:
            raise ValueError("Invalid gateway settings: " + "; ".join(problems))

    @property
    def verify_base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from AGENITRY_DATABASE_URL, AGENITRY_PORT and the like, then ``overrides``."""
        values: dict[str, object] = {}
        for item in fields(cls):
            raw = os.environ.get(f"AGENITRY_{item.name.upper()}")
            if raw is not None:
                kind = {"int": int, "float": float}.get(str(item.type), str)
                try:
                    values[item.name] = kind(raw)
                except ValueError:
                    raise ValueError(f"AGENITRY_{item.name.upper()}={raw!r} is not a valid {item.type}") from None
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)  # type: ignore[arg-type]
