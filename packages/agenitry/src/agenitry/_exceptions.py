"""Errors raised by the Agenitry client.

AgenitryError            status, body, code (NETWORK | TIMEOUT | API)
"""

from __future__ import annotations

from typing import Any, Literal, Optional

ErrorCode = Literal["NETWORK", "TIMEOUT", "API"]


class AgenitryError(Exception):
    """An Agenitry call failed.

    ``status`` is the HTTP status (0 when no answer came back), ``body`` the parsed
    answer when there was one, and ``code`` says which kind of failure it was.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        body: Optional[dict[str, Any]] = None,
        code: ErrorCode = "API",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.code = code

    @property
    def error_code(self) -> Optional[str]:
        """The gateway's machine-readable code (``"max_daily_spend"``...), if any."""
        if isinstance(self.body, dict):
            value = self.body.get("code")
            return value if isinstance(value, str) else None
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status}, code={self.code!r})"
