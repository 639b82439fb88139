"""The seed's LangChain tools and ``gate_tool``: real StructuredTools on a real gateway.

Pins down: the seed's keyword signatures (plus ``client=``); pydantic argument schemas;
answers the model can act on (APPROVED / PENDING / DENIED with the reason, a verify link);
failures (a denial, bad arguments, a refused key, an unreachable gateway) come back as
tool errors and never raise into the agent; sync and async. ``gate_tool`` runs the tool
only when the spend is approved, executes with the actual amount, reverses on failure.
"""

from __future__ import annotations

import inspect
import socket
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, StructuredTool, tool

from agenitry import Agenitry
from agenitry.langchain import create_authorize_tool, create_log_event_tool, create_set_policy_tool, gate_tool
from support.live import LiveServer
from support.venues import Venue

FACTORIES = [create_authorize_tool, create_log_event_tool, create_set_policy_tool]


def as_call(tool_: BaseTool, args: dict[str, Any], call_id: str = "call_1") -> ToolMessage:
    message = tool_.invoke({"type": "tool_call", "id": call_id, "name": tool_.name, "args": args})
    assert isinstance(message, ToolMessage)
    return message


@pytest.mark.parametrize("factory", FACTORIES)
def test_the_seeds_keyword_signature_and_client(factory: Any) -> None:
    parameters = inspect.signature(factory).parameters
    assert list(parameters)[:4] == ["api_key", "venue_id", "agent_id", "base_url"]
    assert all(parameters[name].default is None for name in ["api_key", "venue_id", "agent_id", "base_url"])
    assert parameters["client"].kind is inspect.Parameter.KEYWORD_ONLY


@pytest.mark.parametrize("factory", FACTORIES)
def test_every_tool_is_structured_with_a_schema(factory: Any, client: Agenitry) -> None:
    made = factory(client=client)
    assert isinstance(made, StructuredTool)
    assert made.coroutine is not None and made.func is not None
    assert made.description
    schema = made.tool_call_schema.model_json_schema()
    assert schema["properties"]


def test_authorize_names_the_action_amount_currency_and_authorization(client: Agenitry) -> None:
    approved = create_authorize_tool(client=client).invoke({"action": "order_captured", "amount": 24.5})
    [record] = client.authorizations(agent_id=None)["authorizations"]
    assert approved == (
        f"APPROVED: order_captured of 24.50 USD for voice-agent may go ahead "
        f"(authorization {record['authorization_id']}, valid until {record['expires_at']})."
    )


@pytest.mark.parametrize("amount", [True, "450"], ids=repr)
def test_authorize_refuses_an_amount_that_is_not_a_number(client: Agenitry, amount: Any) -> None:
    message = as_call(create_authorize_tool(client=client), {"action": "order_captured", "amount": amount})
    assert message.status == "error"
    assert client.authorizations(agent_id=None)["authorizations"] == []


def test_authorize_answers_approved_pending_and_denied(client: Agenitry) -> None:
    authorize = create_authorize_tool(client=client)
    approved = authorize.invoke({"action": "order_captured", "amount": 24.5})
    pending = authorize.invoke({"action": "order_captured", "amount": 450})
    denied = as_call(authorize, {"action": "comp_issued", "amount": 30})
    statuses = [a["status"] for a in client.authorizations(agent_id=None)["authorizations"]]
    assert sorted(statuses) == ["approved", "denied", "pending"]
    records = {a["status"]: a for a in client.authorizations(agent_id=None)["authorizations"]}
    assert approved.startswith("APPROVED: order_captured of 24.50 USD for voice-agent may go ahead")
    assert pending == (
        "PENDING: Waiting for the owner's approval: order_captured of 450.00 USD "
        f"(authorization {records['pending']['authorization_id']}). "
        "Nothing was done yet; do not ask again, tell the user it needs approval."
    )
    # A denial is an answer, not a failure of the tool: the model reads the reason.
    assert denied.status == "success"
    assert denied.content == (
        f"DENIED: Not authorized (denied): {records['denied']['denial_reason']}. Nothing was done "
        f"(authorization {records['denied']['authorization_id']}). Do not retry this spend."
    )


@pytest.mark.anyio
async def test_async_tools_on_the_async_and_the_sync_client(aclient: Any, client: Agenitry) -> None:
    for holder in (aclient, client):
        authorize = create_authorize_tool(client=holder)
        answer = await authorize.ainvoke({"action": "reservation_booked", "amount": 10})
        assert answer.startswith("APPROVED")
        logged = await create_log_event_tool(client=holder).ainvoke({"action": "item_86d", "reason": "out of uni"})
        assert "/verify/" in logged
    assert len(client.authorizations(agent_id=None)["authorizations"]) == 2


@pytest.mark.anyio
async def test_an_async_only_client_is_a_tool_error_under_invoke(aclient: Any) -> None:
    message = as_call(create_authorize_tool(client=aclient), {"action": "order_captured", "amount": 1})
    assert message.status == "error" and "ainvoke" in message.content


def test_log_event_answers_with_the_verify_link_and_stores_the_event(client: Agenitry) -> None:
    answer = create_log_event_tool(client=client).invoke(
        {"action": "order_captured", "amount": 42.5, "direction": "inbound", "context": {"table": 7}}
    )
    assert client.flush(timeout=10)
    [event] = client.events(agent_id=None, action="order_captured")["events"]
    assert answer == (
        f"Logged order_captured as event {event['id']}; anyone with this link can verify it: "
        f"{client.verify_url(event['id'])}."
    )
    assert event["context"] == {"table": 7} and event["agent_id"] == "voice-agent"


def test_bad_arguments_are_tool_errors(client: Agenitry) -> None:
    bad_action = as_call(create_log_event_tool(client=client), {"action": "Not An Action!"})
    negative = as_call(create_authorize_tool(client=client), {"action": "order_captured", "amount": -5})
    assert bad_action.status == "error" and negative.status == "error"
    assert client.authorizations(agent_id=None)["authorizations"] == []


def test_set_policy_with_an_admin_key_and_refused_for_an_agent_key(
    venue: Venue, live: LiveServer, request: pytest.FixtureRequest
) -> None:
    admin = create_set_policy_tool(api_key=venue.admin_key, venue_id=venue.id, base_url=live.url)
    request.addfinalizer(admin.metadata["agenitry_client"].close)
    answer = admin.invoke({"agent_id": "voice-agent", "max_single_amount": 300, "allowed_actions": ["order_captured"]})
    [policy] = venue.gateway.list_policies(venue.admin)["policies"]
    assert answer == f"Policy {policy['id']} saved for agent voice-agent: at most 300 a spend; only order_captured."
    assert policy["agent_id"] == "voice-agent"
    agent = create_set_policy_tool(
        api_key=venue.agent_key("voice-agent"), venue_id=venue.id, agent_id="voice-agent", base_url=live.url
    )
    request.addfinalizer(agent.metadata["agenitry_client"].close)
    refused = as_call(agent, {"max_single_amount": 1_000_000})
    assert refused.status == "error"
    [unchanged] = venue.gateway.list_policies(venue.admin)["policies"]
    assert unchanged["max_single_amount"] == policy["max_single_amount"]


@pytest.mark.parametrize("limit", ["450", True])
def test_a_limit_that_is_not_a_number_is_a_tool_error_and_changes_nothing(
    venue: Venue, live: LiveServer, request: pytest.FixtureRequest, limit: object
) -> None:
    venue.policy(max_single_amount=100)
    admin = create_set_policy_tool(api_key=venue.admin_key, venue_id=venue.id, base_url=live.url)
    request.addfinalizer(admin.metadata["agenitry_client"].close)
    refused = as_call(admin, {"max_single_amount": limit})
    assert refused.status == "error"
    [unchanged] = venue.gateway.list_policies(venue.admin)["policies"]
    assert unchanged["max_single_amount"] == 100


def test_the_seed_arguments_reach_the_gateway_over_http(venue: Venue, live: LiveServer) -> None:
    venue.policy(max_single_amount=100)
    authorize = create_authorize_tool(
        api_key=venue.agent_key("voice-agent"), venue_id=venue.id, agent_id="voice-agent", base_url=live.url
    )
    assert isinstance(authorize.metadata, dict)
    with authorize.metadata["agenitry_client"]:
        assert authorize.invoke({"action": "order_captured", "amount": 50}).startswith("APPROVED")
    [record] = venue.gateway.list_authorizations(venue.admin)["authorizations"]
    assert record["agent_id"] == "voice-agent"


def test_an_unreachable_gateway_is_a_tool_error_not_an_exception() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Agenitry("ag_x", "nowhere", base_url=f"http://127.0.0.1:{port}", max_retries=0) as offline:
        message = as_call(create_authorize_tool(client=offline), {"action": "order_captured", "amount": 5})
    assert message.status == "error"


# -- gate_tool ------------------------------------------------------------------------------------


class Supplier:
    def __init__(self) -> None:
        self.orders: list[dict[str, Any]] = []
        self.down = False

        @tool
        def order_fish(pounds: int, total: float) -> str:
            """Order fish from the supplier."""
            if self.down:
                raise RuntimeError("supplier API is down")
            self.orders.append({"pounds": pounds, "total": total})
            return f"{pounds} lb ordered, charged {total * 0.9:.2f}"

        self.tool = order_fish


@pytest.fixture
def supplier() -> Supplier:
    return Supplier()


def test_gate_tool_keeps_the_tool_and_runs_it_when_approved(client: Agenitry, supplier: Supplier) -> None:
    gated = gate_tool(
        supplier.tool,
        action="order_captured",
        amount="total",
        client=client,
        settle=True,
        actual=lambda text: float(text.rsplit(" ", 1)[1]),
    )
    assert (gated.name, gated.description) == (supplier.tool.name, supplier.tool.description)
    assert gated.tool_call_schema.model_json_schema() == supplier.tool.tool_call_schema.model_json_schema()
    assert gated.invoke({"pounds": 5, "total": 50}) == "5 lb ordered, charged 45.00"
    assert supplier.orders == [{"pounds": 5, "total": 50}]
    [record] = client.authorizations(agent_id=None)["authorizations"]
    assert record["status"] == "settled" and float(record["actual_amount"]) == 45.0
    assert record["context"]["tool"] == "order_fish"


@pytest.mark.parametrize("total", [True, "450", -5, 12.345], ids=repr)
def test_gate_tool_checks_the_amount_the_model_sent_not_the_schemas_coercion(
    client: Agenitry, supplier: Supplier, total: Any
) -> None:
    gated = gate_tool(supplier.tool, action="order_captured", amount="total", client=client)
    message = as_call(gated, {"pounds": 5, "total": total})
    assert message.status == "error"
    assert message.content.startswith("order_fish was not run: ") and "Nothing was authorized" in message.content
    assert supplier.orders == []
    assert client.authorizations(agent_id=None)["authorizations"] == []


@pytest.mark.parametrize(("total", "status"), [(450, "pending"), (5000, "denied")])
def test_gate_tool_never_runs_when_pending_or_denied(
    client: Agenitry, supplier: Supplier, total: float, status: str
) -> None:
    gated = gate_tool(supplier.tool, action="order_captured", amount=lambda args: args["total"], client=client)
    message = as_call(gated, {"pounds": 50, "total": total})
    assert supplier.orders == []
    [record] = client.authorizations(agent_id=None)["authorizations"]
    assert record["status"] == status
    assert message.status == "error" and record["authorization_id"] in message.content


def test_gate_tool_reverses_when_the_tool_fails(client: Agenitry, supplier: Supplier) -> None:
    supplier.down = True
    gated = gate_tool(supplier.tool, action="order_captured", amount="total", client=client)
    message = as_call(gated, {"pounds": 5, "total": 50})
    [record] = client.authorizations(agent_id=None)["authorizations"]
    assert record["status"] == "reversed"
    assert message.status == "error" and message.content == (
        "order_fish failed: RuntimeError: supplier API is down. "
        f"Authorization {record['authorization_id']} was released; nothing was spent."
    )


@pytest.mark.anyio
async def test_gate_tool_async_with_the_async_client(aclient: Any, supplier: Supplier) -> None:
    gated = gate_tool(supplier.tool, action="order_captured", amount="total", client=aclient)
    assert (await gated.ainvoke({"pounds": 2, "total": 20})).startswith("2 lb ordered")
    denied = await gated.ainvoke(
        {"type": "tool_call", "id": "c2", "name": gated.name, "args": {"pounds": 1, "total": 9999}}
    )
    assert denied.status == "error"
    assert supplier.orders == [{"pounds": 2, "total": 20}]
    statuses = sorted(a["status"] for a in (await aclient.authorizations(agent_id=None))["authorizations"])
    assert statuses == ["denied", "executed"]
