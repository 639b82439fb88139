"""``agenitry mcp serve``'s tools in memory, through the real ``mcp`` client, on a live gateway."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import mcp_types as types
import pytest
from mcp import Client as MCPClient

from agenitry import AsyncAgenitry
from agenitry.mcp import build_server, is_admin
from support.live import LiveServer
from support.mcp_proxy import AGENT, authorizations
from support.venues import Venue

pytestmark = pytest.mark.anyio


@pytest.fixture
async def session(agent: AsyncAgenitry) -> AsyncIterator[MCPClient]:
    async with MCPClient(build_server(agent, admin=await is_admin(agent))) as client:
        yield client


@pytest.fixture
async def owner(venue: Venue, live: LiveServer) -> AsyncIterator[AsyncAgenitry]:
    client = AsyncAgenitry(venue.admin_key, venue.id, base_url=live.url)
    yield client
    await client.close()


def text(result: types.CallToolResult) -> str:
    return " ".join(block.text for block in result.content if isinstance(block, types.TextContent))


async def test_an_agent_key_gets_the_agent_tools_and_an_admin_key_also_set_policy(
    session: MCPClient, owner: AsyncAgenitry
) -> None:
    tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert sorted(tools) == ["authorization_status", "authorize", "execute", "log_event"]
    authorize = tools["authorize"]
    assert authorize.input_schema["properties"]["amount"]["type"] == "number"
    assert set(authorize.input_schema["required"]) == {"action", "amount"}
    assert authorize.output_schema is not None and "authorization_id" in authorize.output_schema["properties"]
    assert await is_admin(owner)
    async with MCPClient(build_server(owner, admin=True)) as admin:
        assert "set_policy" in {tool.name for tool in (await admin.list_tools()).tools}


async def test_authorize_approved_then_execute_records_the_actual_amount(session: MCPClient, venue: Venue) -> None:
    result = await session.call_tool("authorize", {"action": "purchase_order", "amount": 42.5, "reason": "salmon"})
    decided = result.structured_content
    assert not result.is_error and decided is not None
    assert (decided["status"], decided["approved"], decided["agent_id"]) == ("approved", True, AGENT)
    assert text(result).startswith("APPROVED: purchase_order of 42.50 USD")
    executed = await session.call_tool(
        "execute", {"authorization_id": decided["authorization_id"], "actual_amount": 40}
    )
    assert not executed.is_error and executed.structured_content["status"] == "executed"
    record = venue.gateway.get_authorization(venue.admin, decided["authorization_id"])
    assert (record["status"], Decimal(str(record["actual_amount"]))) == ("executed", Decimal("40"))


async def test_pending_names_the_console_page_and_the_status_follows_the_owner(
    session: MCPClient, venue: Venue, live: LiveServer
) -> None:
    pending = (await session.call_tool("authorize", {"action": "purchase_order", "amount": 250})).structured_content
    assert pending is not None and (pending["status"], pending["approved"]) == ("pending", False)
    assert pending["console_url"] == f"{live.url}/console/authorizations/{pending['authorization_id']}"
    assert pending["console_url"] in pending["message"]
    venue.gateway.approve(venue.admin, pending["authorization_id"])
    status = await session.call_tool("authorization_status", {"authorization_id": pending["authorization_id"]})
    assert status.structured_content is not None and status.structured_content["approved"] is True


async def test_a_denial_says_why(session: MCPClient) -> None:
    result = await session.call_tool("authorize", {"action": "purchase_order", "amount": 900})
    denied = result.structured_content
    assert denied is not None and (denied["status"], denied["denial_code"]) == ("denied", "max_single_amount")
    assert denied["denial_reason"] in text(result)


@pytest.mark.parametrize("amount", [True, "450", "1e3", math.nan, -1, None, 1.005, 1e13], ids=repr)
async def test_a_bad_amount_is_an_error_and_nothing_is_authorized(
    session: MCPClient, venue: Venue, amount: Any
) -> None:
    result = await session.call_tool("authorize", {"action": "purchase_order", "amount": amount, "currency": "USD"})
    assert result.is_error
    assert "amount" in text(result)
    assert authorizations(venue) == []


async def test_the_gateways_refusals_are_errors_the_model_reads(session: MCPClient) -> None:
    missing = await session.call_tool("authorization_status", {"authorization_id": "auth_nope"})
    assert missing.is_error and "not found" in text(missing).lower()
    approved = (await session.call_tool("authorize", {"action": "purchase_order", "amount": 10})).structured_content
    assert approved is not None
    over = await session.call_tool("execute", {"authorization_id": approved["authorization_id"], "actual_amount": 11})
    assert over.is_error and "above the authorized amount" in text(over)


async def test_log_event_returns_at_once_with_its_verify_link(
    session: MCPClient, agent: AsyncAgenitry, venue: Venue
) -> None:
    result = await session.call_tool(
        "log_event", {"action": "order_captured", "amount": 127.5, "direction": "inbound", "context": {"table": 4}}
    )
    logged = result.structured_content
    assert logged is not None and logged["verify_url"].endswith(logged["event_id"])
    assert await agent.flush(10)
    [event] = venue.gateway.list_events(venue.admin, venue.id, action="order_captured")["events"]
    assert (event["id"], event["agent_id"], event["context"]) == (logged["event_id"], AGENT, {"table": 4})


async def test_an_admin_sets_a_policy_the_agent_is_then_held_to(owner: AsyncAgenitry, session: MCPClient) -> None:
    async with MCPClient(build_server(owner, admin=True)) as admin:
        saved = await admin.call_tool("set_policy", {"agent_id": AGENT, "max_single_amount": 20})
        assert not saved.is_error and saved.structured_content["max_single_amount"] == 20
        assert "at most 20 a spend" in text(saved)
        refused = await admin.call_tool("set_policy", {"agent_id": AGENT, "max_daily_spend": "100"})
        assert refused.is_error
    result = await session.call_tool("authorize", {"action": "purchase_order", "amount": 30})
    assert result.structured_content is not None and result.structured_content["status"] == "denied"
