"""The gating proxy in memory, through the real ``mcp`` client: the example supplier behind it, a live gateway.

``supplier.orders`` is what the supplier really received; the gateway's records say what
was authorized, executed or released. Both protocol eras are run where they differ: the
handshake era (``mode="legacy"``, 2025-11-25) and 2026-07-28 (``mode="auto"``).
"""

from __future__ import annotations

import math
from decimal import Decimal
from types import ModuleType
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client as MCPClient
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from agenitry import AsyncAgenitry, EventsDroppedWarning
from agenitry.mcp import META_CONSOLE, ConfigError, GatingProxy, ToolRule
from support.live import LiveServer
from support.mcp_proxy import AGENT, RULES, authorizations, proxied, read
from support.venues import Venue

pytestmark = pytest.mark.anyio
MODES = ["legacy", "auto"]
SALMON = {"item": "salmon", "pounds": 2, "total": 36.0}
TUNA = {"item": "tuna", "pounds": 20, "total": 340.0}


@pytest.mark.parametrize("mode", MODES)
async def test_the_tools_list_passes_through_unchanged(agent: AsyncAgenitry, supplier: ModuleType, mode: str) -> None:
    async with MCPClient(supplier.server, mode=mode) as direct:
        upstream = (await direct.list_tools()).tools
    async with proxied(agent, supplier.server, mode=mode) as (session, _):
        listed = (await session.list_tools()).tools
        instructions = session.instructions
    assert instructions is not None and instructions.startswith("Fresh fish, delivered next morning.")
    assert [tool.model_dump(by_alias=True) for tool in listed] == [tool.model_dump(by_alias=True) for tool in upstream]
    place_order = next(tool for tool in listed if tool.name == "place_order")
    assert place_order.annotations is not None and place_order.annotations.read_only_hint is False
    assert place_order.output_schema is not None and "charged" in place_order.output_schema["properties"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_gated_call_under_the_limit_runs_once_and_is_executed(
    agent: AsyncAgenitry, supplier: ModuleType, venue: Venue, mode: str
) -> None:
    async with proxied(agent, supplier.server, mode=mode) as (session, _):
        result = await session.call_tool("place_order", SALMON)
    outcome, authorization_id, _ = read(result)
    assert (outcome, result.is_error) == ("ran", False)
    [order] = supplier.orders.values()
    assert result.structured_content == order.model_dump()  # the supplier's own answer
    record = venue.gateway.get_authorization(venue.admin, authorization_id)
    assert (record["status"], record["agent_id"], record["action"]) == ("executed", AGENT, "purchase_order")
    assert Decimal(str(record["actual_amount"])) == Decimal("36")
    assert record["context"]["tool"] == "place_order"


async def test_the_actual_amount_is_what_the_supplier_charged(agent: AsyncAgenitry, venue: Venue) -> None:
    discounted = MCPServer("discount-supplier")

    @discounted.tool()
    def place_order(item: str, total: float) -> dict[str, Any]:
        """Order; the supplier takes 10% off."""
        return {"item": item, "charged": round(total * 0.9, 2)}

    async with proxied(agent, discounted) as (session, _):
        _, authorization_id, _ = read(await session.call_tool("place_order", {"item": "salmon", "total": 50.0}))
    record = venue.gateway.get_authorization(venue.admin, authorization_id)
    assert Decimal(str(record["actual_amount"])) == Decimal("45")


async def test_over_the_limit_is_denied_and_the_upstream_never_sees_it(
    agent: AsyncAgenitry, supplier: ModuleType, venue: Venue
) -> None:
    async with proxied(agent, supplier.server) as (session, _):
        result = await session.call_tool("place_order", {"item": "tuna", "pounds": 50, "total": 850.0})
    outcome, authorization_id, text = read(result)
    assert (outcome, result.is_error) == ("denied", True)
    assert supplier.orders == {}
    record = venue.gateway.get_authorization(venue.admin, authorization_id)
    assert record["status"] == "denied" and record["denial_reason"] in text


@pytest.mark.parametrize("mode", MODES)
async def test_pending_then_approved_in_the_gateway_the_repeated_call_runs_once(
    agent: AsyncAgenitry, supplier: ModuleType, venue: Venue, live: LiveServer, mode: str
) -> None:
    async with proxied(agent, supplier.server, mode=mode) as (session, _):
        pending = await session.call_tool("place_order", TUNA)
        outcome, authorization_id, text = read(pending)
        assert (outcome, pending.is_error, supplier.orders) == ("pending", True, {})
        page = f"{live.url}/console/authorizations/{authorization_id}"
        assert page in text and (pending.meta or {})[META_CONSOLE] == page
        assert read(await session.call_tool("place_order", TUNA))[:2] == ("pending", authorization_id)

        venue.gateway.approve(venue.admin, authorization_id)
        ran = await session.call_tool("place_order", TUNA)
        again = await session.call_tool("place_order", TUNA)
    assert read(ran)[:2] == ("ran", authorization_id)
    assert read(again)[:2] == ("already_done", authorization_id)
    assert [order.item for order in supplier.orders.values()] == ["tuna"]
    assert venue.gateway.get_authorization(venue.admin, authorization_id)["status"] == "executed"
    assert len(authorizations(venue)) == 1


async def test_an_upstream_failure_releases_the_hold_and_the_same_call_is_asked_anew(
    agent: AsyncAgenitry, venue: Venue
) -> None:
    venue.policy(max_daily_spend=100)
    flaky = MCPServer("flaky-supplier")
    attempts: list[float] = []

    @flaky.tool()
    def place_order(item: str, total: float) -> str:
        """Order; the first attempt finds the supplier's system down."""
        attempts.append(total)
        if len(attempts) == 1:
            raise ToolError("the supplier's system is down")
        return f"ordered {item}"

    order = {"item": "salmon", "total": 80.0}
    async with proxied(agent, flaky) as (session, _):
        failed = await session.call_tool("place_order", order)
        outcome, released, text = read(failed)
        assert (outcome, failed.is_error) == ("failed", True)
        assert "the supplier's system is down" in text and "released" in text
        assert venue.gateway.get_authorization(venue.admin, released)["status"] == "reversed"
        # Nothing is held: the whole daily limit is free for the same call, asked anew.
        retried = await session.call_tool("place_order", order)
    outcome, authorization_id, _ = read(retried)
    assert (outcome, retried.content[0]) == ("ran", types.TextContent(type="text", text="ordered salmon"))
    assert authorization_id != released
    assert attempts == [80.0, 80.0]
    assert sorted(a["status"] for a in authorizations(venue)) == ["executed", "reversed"]


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
async def test_concurrent_identical_calls_make_one_upstream_call(
    agent: AsyncAgenitry, venue: Venue, store: str
) -> None:
    slow = MCPServer("slow-supplier")
    answered = anyio.Event()
    received: list[str] = []

    @slow.tool()
    async def place_order(item: str, total: float) -> str:
        """Order; the supplier answers once the other call has been answered."""
        received.append(item)
        await answered.wait()
        return f"ordered {item}"

    results: list[types.CallToolResult] = []

    async def call(session: MCPClient) -> None:
        results.append(await session.call_tool("place_order", {"item": "salmon", "total": 42.0}))
        answered.set()

    async with proxied(agent, slow) as (first, _), proxied(agent, slow) as (second, _):
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(call, first)
                group.start_soon(call, second)
    assert received == ["salmon"]
    assert sorted(read(result)[0] or "" for result in results) in (["in_progress", "ran"], ["already_done", "ran"])
    assert [a["status"] for a in authorizations(venue)] == ["executed"]


@pytest.mark.parametrize("amount", [True, "1e3", math.nan, -5.0, "450", None, 1.005], ids=repr)
async def test_a_bad_amount_is_an_error_and_nothing_is_authorized(
    agent: AsyncAgenitry, supplier: ModuleType, venue: Venue, amount: Any
) -> None:
    async with proxied(agent, supplier.server) as (session, _):
        result = await session.call_tool("place_order", {"item": "salmon", "pounds": 1, "total": amount})
    outcome, authorization_id, text = read(result)
    assert (outcome, authorization_id, result.is_error) == ("invalid", None, True)
    assert "total" in text or "amount" in text
    assert supplier.orders == {}
    assert authorizations(venue) == []


async def test_arguments_that_do_not_fit_the_tool_are_refused_before_anything_is_authorized(
    agent: AsyncAgenitry, supplier: ModuleType, venue: Venue
) -> None:
    async with proxied(agent, supplier.server) as (session, _):
        result = await session.call_tool("place_order", {"item": "salmon", "pounds": "two", "total": 36.0})
    outcome, _, text = read(result)
    assert (outcome, result.is_error) == ("invalid", True)
    assert "pounds" in text and "Nothing was authorized" in text
    assert supplier.orders == {} and authorizations(venue) == []


async def test_a_restarted_proxy_continues_the_paused_call_and_runs_it_once(
    venue: Venue, live: LiveServer, supplier: ModuleType
) -> None:
    venue.policy(max_single_amount=500, require_approval_above=100)

    def new_client() -> AsyncAgenitry:
        return AsyncAgenitry(venue.agent_key(AGENT), venue.id, agent_id=AGENT, base_url=live.url)

    first = new_client()
    async with proxied(first, supplier.server) as (session, _):
        _, authorization_id, _ = read(await session.call_tool("place_order", TUNA))
    await first.close()
    venue.gateway.approve(venue.admin, authorization_id)
    # A new process: a new client, a new proxy, a new session; the client makes the same call again.
    second = new_client()
    async with proxied(second, supplier.server, mode="legacy") as (session, _):
        ran = await session.call_tool("place_order", TUNA)
        again = await session.call_tool("place_order", TUNA)
    await second.close()
    assert [read(ran)[:2], read(again)[:2]] == [("ran", authorization_id), ("already_done", authorization_id)]
    assert len(supplier.orders) == 1


async def test_every_call_is_recorded_as_a_tool_call(agent: AsyncAgenitry, supplier: ModuleType, venue: Venue) -> None:
    async with proxied(agent, supplier.server) as (session, _):
        await session.call_tool("list_products", {})
        await session.call_tool("get_order", {"order_id": "ord_404"})
        _, executed, _ = read(await session.call_tool("place_order", SALMON))
        _, denied, _ = read(await session.call_tool("place_order", {"item": "tuna", "pounds": 9, "total": 900.0}))
        await session.call_tool("place_order", {"item": "tuna", "pounds": 1, "total": "17"})
    assert await agent.flush(10)
    page = venue.gateway.list_events(venue.admin, venue.id, action="tool_call", limit=50)
    calls = sorted(page["events"], key=lambda event: event["sequence"])
    seen = [(e["context"]["tool"], e["context"]["outcome"], e["context"].get("authorization_id")) for e in calls]
    assert seen == [
        ("list_products", "ok", None),
        ("get_order", "error", None),
        ("place_order", "ran", executed),
        ("place_order", "denied", denied),
        ("place_order", "invalid", None),
    ]
    assert {e["agent_id"] for e in calls} == {AGENT}
    assert {e["context"]["mcp_server"] for e in calls} == {"north-sea-supplier"}
    assert "no order ord_404" in calls[1]["context"]["error"]


async def test_ungated_tools_pass_through_with_their_own_errors(agent: AsyncAgenitry, supplier: ModuleType) -> None:
    async with proxied(agent, supplier.server) as (session, _):
        products = await session.call_tool("list_products", {})
        missing = await session.call_tool("get_order", {"order_id": "ord_404"})
        unknown = await session.call_tool("refund", {"order_id": "ord_1"})
    async with MCPClient(supplier.server) as direct:
        assert products.structured_content == (await direct.call_tool("list_products", {})).structured_content
        assert unknown.content == (await direct.call_tool("refund", {"order_id": "ord_1"})).content
    assert missing.is_error and "no order ord_404" in read(missing)[2]
    assert unknown.is_error and read(unknown)[0] is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("decision", ["approve", "deny"])
async def test_the_owner_decides_on_the_page_the_client_opened_and_the_call_goes_on(
    agent: AsyncAgenitry, supplier: ModuleType, venue: Venue, live: LiveServer, mode: str, decision: str
) -> None:
    asked: list[types.ElicitRequestURLParams] = []

    async def owner_opens_the_page(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestURLParams)
        asked.append(params)
        authorization_id = params.url.rsplit("/", 1)[1]
        if decision == "approve":
            venue.gateway.approve(venue.admin, authorization_id)
        else:
            venue.gateway.deny(venue.admin, authorization_id, reason="not this week")
        return types.ElicitResult(action="accept")

    async with proxied(agent, supplier.server, mode=mode, elicitation=owner_opens_the_page) as (session, _):
        result = await session.call_tool("place_order", TUNA)
    outcome, authorization_id, text = read(result)
    [page] = asked
    assert page.url == f"{live.url}/console/authorizations/{authorization_id}"
    assert "340.00 USD" in page.message and authorization_id in page.message
    if decision == "approve":
        assert outcome == "ran" and [order.item for order in supplier.orders.values()] == ["tuna"]
    else:
        assert outcome == "denied" and "not this week" in text and supplier.orders == {}


@pytest.mark.parametrize("mode", MODES)
async def test_a_declined_page_answers_pending_and_the_same_call_continues(
    agent: AsyncAgenitry, supplier: ModuleType, venue: Venue, mode: str
) -> None:
    async def decline(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    async with proxied(agent, supplier.server, mode=mode, elicitation=decline) as (session, _):
        outcome, authorization_id, _ = read(await session.call_tool("place_order", TUNA))
        assert outcome == "pending" and supplier.orders == {}
        venue.gateway.approve(venue.admin, authorization_id)
        assert read(await session.call_tool("place_order", TUNA))[:2] == ("ran", authorization_id)
    assert len(supplier.orders) == 1


async def test_an_opened_page_the_owner_has_not_decided_answers_pending_after_the_wait(
    agent: AsyncAgenitry, supplier: ModuleType, venue: Venue
) -> None:
    async def opened(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept")  # the user says it is handled; the gateway says pending

    async with proxied(agent, supplier.server, elicitation=opened, approval_wait=0.2) as (session, _):
        outcome, authorization_id, _ = read(await session.call_tool("place_order", TUNA))
    assert outcome == "pending" and supplier.orders == {}
    assert venue.gateway.get_authorization(venue.admin, authorization_id)["status"] == "pending"


async def test_check_refuses_rules_the_upstream_cannot_honour(agent: AsyncAgenitry, supplier: ModuleType) -> None:
    async with MCPClient(supplier.server) as upstream:
        with pytest.raises(ConfigError, match="no tool named 'place_ordr'"):
            await GatingProxy(agent, upstream, {"place_ordr": RULES["place_order"]}).check()
        with pytest.raises(ConfigError, match="place_order has no argument 'price'"):
            await GatingProxy(agent, upstream, {"place_order": ToolRule("purchase_order", "price")}).check()
        await GatingProxy(agent, upstream, {"place_order": ToolRule("purchase_order", 25)}).check()


async def test_a_key_the_gateway_refuses_is_said_and_nothing_reaches_the_upstream(
    live: LiveServer, venue: Venue, supplier: ModuleType
) -> None:
    wrong = AsyncAgenitry("ag_not_a_key_of_this_gateway", venue.id, base_url=live.url)
    async with proxied(wrong, supplier.server) as (session, _):
        refused = await session.call_tool("place_order", SALMON)
        products = await session.call_tool("list_products", {})
    with pytest.warns(EventsDroppedWarning, match="Invalid API key"):
        await wrong.close()  # the call records, refused with the key, are counted and said
    outcome, _, text = read(refused)
    assert (outcome, refused.is_error) == ("unavailable", True)
    assert "refused this proxy's key" in text and "Invalid API key" in text
    assert supplier.orders == {} and authorizations(venue) == []
    assert not products.is_error  # the tools that are not gated still work


async def test_a_tool_with_a_fixed_price_is_gated_for_that_price(
    agent: AsyncAgenitry, supplier: ModuleType, venue: Venue
) -> None:
    rules = {"list_products": ToolRule("price_list", 2.5, "USD", settle=True)}
    async with proxied(agent, supplier.server, rules) as (session, _):
        result = await session.call_tool("list_products", {})
    outcome, authorization_id, _ = read(result)
    assert outcome == "ran" and result.structured_content is not None
    record = venue.gateway.get_authorization(venue.admin, authorization_id)
    assert (record["action"], record["status"], Decimal(str(record["amount"]))) == (
        "price_list",
        "settled",
        Decimal("2.5"),
    )
