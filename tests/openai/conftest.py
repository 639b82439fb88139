"""The adapter's tests run on SQLite only: they pin the adapter's behaviour, which does not depend on
the store; the gateway's own suite runs every decision on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)
