"""client.verify(event_id): fetch an event's proof and check it here, sync and async,
over HTTP and embedded. Only the trusted key decides: a wrong one fails."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from agenitry import VerificationResult

pytestmark = pytest.mark.anyio


@pytest.fixture
def store() -> str:
    return "sqlite"


async def test_an_event_verifies_against_the_gateways_key(connect: Any) -> None:
    async with connect() as client:
        logged = await client.log(action="order_captured", amount=42.5, await_confirmation=True)
        served = await client.verify(logged["id"])
        assert isinstance(served, VerificationResult)
        assert served.ok, served.problems
        assert served.index == logged["sequence"] and served.signer is not None
        # The key the owner handed over: the same verdict, now without trusting the server.
        trusted = await client.verify(logged["id"], public_key=served.signer)
        assert trusted.ok and trusted.leaf_hash == served.leaf_hash


async def test_a_key_that_did_not_sign_fails(connect: Any) -> None:
    async with connect() as client:
        logged = await client.log(action="comp_issued", amount=8, await_confirmation=True)
        stranger = base64.b64encode(bytes(32)).decode()
        result = await client.verify(logged["id"], public_key=stranger)
        assert not result.ok and result.problems
