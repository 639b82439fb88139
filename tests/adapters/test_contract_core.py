"""The reference driver passes the adapter contract: the core client's gated call without a framework."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.contract import AdapterContract, AdapterDriver, CoreDriver
from agenitry import Agenitry


class TestCoreContract(AdapterContract):
    @pytest.fixture
    def driver(self, client: Agenitry, effects: list[dict[str, Any]]) -> AdapterDriver:
        return CoreDriver(client, effects)
