"""The claim through the core client, over HTTP and embedded, sync and async.

``claim`` gives one token; a second claim raises :class:`ConflictError` with the
gateway's code; ``execute`` and ``reverse`` send ``claim_token`` only when given, so a
claimed authorization executes with its token and refuses a call without it.
"""

from __future__ import annotations

from typing import Any

import pytest

from agenitry import ConflictError

pytestmark = pytest.mark.anyio


@pytest.fixture
def store() -> str:
    """SQLite only: the gateway's own suite runs the claim on both stores."""
    return "sqlite"


async def test_claim_then_execute_with_the_token(connect: Any) -> None:
    async with connect(agent_id="voice-agent") as agent:
        await agent.set_policy(max_single_amount=500)
        auth = await agent.authorize(action="purchase_order", amount=40)
        claimed = await agent.claim(auth["authorization_id"], lease_seconds=60, idempotency_key="claim-once")
        assert claimed["status"] == "approved" and claimed["claim_token"].startswith("clm_")

        with pytest.raises(ConflictError) as second:
            await agent.claim(auth["authorization_id"])
        assert second.value.error_code == "already_claimed"
        assert second.value.body is not None and second.value.body["claimed_until"] == claimed["claimed_until"]
        with pytest.raises(ConflictError) as without:
            await agent.execute(auth["authorization_id"])
        assert without.value.error_code == "claimed_by_another"

        executed = await agent.execute(auth["authorization_id"], actual_amount=35, claim_token=claimed["claim_token"])
        assert executed["status"] == "executed"
        with pytest.raises(ConflictError) as ran:
            await agent.claim(auth["authorization_id"])
        assert ran.value.error_code == "already_executed"


async def test_reverse_with_a_stray_token_is_a_claim_mismatch(connect: Any) -> None:
    async with connect(agent_id="voice-agent") as agent:
        await agent.set_policy(max_single_amount=500)
        first = await agent.authorize(action="purchase_order", amount=10)
        second = await agent.authorize(action="purchase_order", amount=10)
        token = (await agent.claim(first["authorization_id"]))["claim_token"]

        with pytest.raises(ConflictError) as stray:
            await agent.reverse(second["authorization_id"], claim_token=token)
        assert stray.value.error_code == "claim_mismatch"

        assert (await agent.reverse(first["authorization_id"], claim_token=token))["status"] == "reversed"
        assert (await agent.reverse(second["authorization_id"]))["status"] == "reversed"
