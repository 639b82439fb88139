"""The tool-call runner on the real gateway: gating, logging, outputs the model can read and correct.

Chat Completions messages and Responses outputs (the SDK's own types), sync and async
clients. Pinned: outputs come back in order with the right shape and call id; a denied or
pending spend never runs the function; the same call run again (same message, or a fresh
runner after a restart) continues its authorization and spends once; an amount the model
wrote wrong (``true``, ``"450"``) is invalid and never coerced; malformed arguments,
unknown tools and a failing tool become error outputs (a failing spend is released);
every call is recorded as a ``tool_call`` event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Optional

import pytest
from openai.types.chat import ChatCompletionMessage
from openai.types.responses import Response
from pydantic import BaseModel

from agenitry import Agenitry, AsyncAgenitry
from agenitry.openai import ToolRunner
from support.live import LiveServer
from support.venues import Venue


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def agent(venue: Venue, live: LiveServer) -> Iterator[Agenitry]:
    venue.policy(max_single_amount=500, require_approval_above=200)
    with Agenitry(venue.agent_key("buyer"), venue.id, base_url=live.url, max_retries=0) as client:
        yield client


class Supplier:
    def __init__(self) -> None:
        self.orders: list[tuple[str, float]] = []

    def order(self, item: str, total: float) -> dict[str, Any]:
        """Order from the supplier."""
        if item == "broken":
            raise RuntimeError("supplier API is down")
        self.orders.append((item, total))
        return {"item": item, "charged": round(total * 0.9, 2)}


def check_stock(item: str) -> int:
    """Pounds in the walk-in."""
    return {"salmon": 4}.get(item, 0)


def message(*calls: tuple[str, str, Any]) -> ChatCompletionMessage:
    return ChatCompletionMessage.model_validate(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
                }
                for call_id, name, args in calls
            ],
        }
    )


def response(*calls: tuple[str, str, Any]) -> Response:
    return Response.model_validate(
        {
            "id": "resp_1",
            "object": "response",
            "created_at": 1764331200,
            "model": "gpt-4o-mini",
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "output": [
                {
                    "type": "function_call",
                    "id": f"fc_{call_id}",
                    "call_id": call_id,
                    "name": name,
                    "arguments": json.dumps(args),
                    "status": "completed",
                }
                for call_id, name, args in calls
            ],
        }
    )


def runner_for(client: Any, supplier: Supplier, scope: Optional[str] = None) -> ToolRunner:
    runner = ToolRunner(client, tools=[check_stock], scope=scope)
    runner.add(supplier.order, name="order", action="purchase_order", amount="total", actual=lambda r: r["charged"])
    return runner


def tool_calls(venue: Venue, client: Agenitry) -> list[dict[str, Any]]:
    client.flush()
    events = venue.gateway.list_events(venue.admin, venue.id, action="tool_call", limit=100)["events"]
    return [e["context"] for e in sorted(events, key=lambda e: e["sequence"])]


def authorizations(venue: Venue) -> list[dict[str, Any]]:
    return venue.gateway.list_authorizations(venue.admin)["authorizations"]


def test_chat_message_calls_run_in_order_and_answer_with_tool_messages(agent: Agenitry, venue: Venue) -> None:
    supplier = Supplier()
    runner = runner_for(agent, supplier)
    outputs = runner.run(
        message(("call_a", "check_stock", {"item": "salmon"}), ("call_b", "order", {"item": "salmon", "total": 120}))
    )
    assert outputs == [
        {"role": "tool", "tool_call_id": "call_a", "content": "4"},
        {"role": "tool", "tool_call_id": "call_b", "content": '{"item": "salmon", "charged": 108.0}'},
    ]
    assert supplier.orders == [("salmon", 120)]
    [record] = authorizations(venue)
    assert record["status"] == "executed"
    assert Decimal(str(record["actual_amount"])) == Decimal("108")
    assert record["context"]["tool"] == "order"
    logged = tool_calls(venue, agent)
    assert [(c["tool"], c["outcome"], c["arguments"]) for c in logged] == [
        ("check_stock", "ok", {"item": "salmon"}),
        ("order", "ran", {"item": "salmon", "total": 120}),
    ]


def test_denied_spend_never_runs_and_the_model_reads_why(agent: Agenitry, venue: Venue) -> None:
    supplier = Supplier()
    [output] = runner_for(agent, supplier).run(message(("call_w", "order", {"item": "wagyu", "total": 3600})))
    assert output["tool_call_id"] == "call_w"
    assert output["content"].startswith(
        "Not authorized (denied): Amount $3,600.00 exceeds the single-transaction limit of $500.00"
    )
    assert supplier.orders == []
    assert [c["outcome"] for c in tool_calls(venue, agent)] == ["denied"]


def test_pending_names_its_authorization_and_the_same_call_run_again_continues_it(
    agent: Agenitry, venue: Venue
) -> None:
    supplier = Supplier()
    runner = runner_for(agent, supplier)
    tuna = message(("call_1", "order", {"item": "tuna", "total": 340}))
    [first] = runner.run_calls(tuna)
    assert first.status == "pending"
    assert first.authorization_id is not None
    assert f"(authorization {first.authorization_id})" in first.content
    assert first.content.startswith("Waiting for the owner's approval: purchase_order of 340.00 USD")
    # The same message run again before the owner decided: the same authorization, still pending.
    [again] = runner.run_calls(tuna)
    assert (again.status, again.authorization_id) == ("pending", first.authorization_id)
    assert len(authorizations(venue)) == 1
    assert supplier.orders == []

    venue.gateway.approve(venue.admin, first.authorization_id)
    [done] = runner.run_calls(tuna)
    assert (done.status, done.authorization_id) == ("approved", first.authorization_id)
    assert done.message() == {"role": "tool", "tool_call_id": "call_1", "content": done.content}
    [repeated] = runner.run_calls(tuna)
    assert (repeated.status, repeated.authorization_id) == ("done", first.authorization_id)
    assert repeated.content.startswith(
        f"Already done: this call was carried out under authorization {done.authorization_id}"
    )
    assert supplier.orders == [("tuna", 340)]
    assert [a["status"] for a in authorizations(venue)] == ["executed"]
    # Another call id is another call: the owner decides it.
    [other] = runner.run_calls(message(("call_2", "order", {"item": "tuna", "total": 340})))
    assert other.status == "pending" and other.authorization_id != first.authorization_id


def test_the_same_assistant_message_run_again_spends_once(agent: Agenitry, venue: Venue) -> None:
    supplier = Supplier()
    runner = runner_for(agent, supplier)
    salmon = message(("call_s", "order", {"item": "salmon", "total": 120}))
    [ran] = runner.run_calls(salmon)
    [again] = runner.run_calls(salmon)
    assert (ran.status, again.status) == ("approved", "done")
    assert again.authorization_id == ran.authorization_id
    assert f"authorization {ran.authorization_id}" in again.content
    assert "it is not repeated" in again.content
    assert supplier.orders == [("salmon", 120)]
    assert [a["status"] for a in authorizations(venue)] == ["executed"]
    assert [c["outcome"] for c in tool_calls(venue, agent)] == ["ran", "already_done"]


def test_resume_runs_a_pending_call_once_the_owner_approved(agent: Agenitry, venue: Venue) -> None:
    supplier = Supplier()
    runner = runner_for(agent, supplier)
    [pending] = runner.run_calls(message(("call_1", "order", {"item": "tuna", "total": 340})))
    assert pending.authorization_id is not None
    assert runner.pending[pending.authorization_id].id == "call_1"
    assert runner.resume(pending.authorization_id).status == "pending"
    venue.gateway.approve(venue.admin, pending.authorization_id)
    resumed = runner.resume(pending.authorization_id)
    assert resumed.status == "approved"
    assert resumed.message()["tool_call_id"] == "call_1"
    assert runner.pending == {}
    assert supplier.orders == [("tuna", 340)]
    with pytest.raises(KeyError):
        runner.resume(pending.authorization_id)  # no longer pending: run the call again to read its outcome
    with pytest.raises(KeyError):
        runner.resume("auth_unknown")


def test_a_restarted_runner_continues_the_same_call_on_its_authorization(venue: Venue, live: LiveServer) -> None:
    """A new process: a fresh client and runner with the same scope run the call the conversation holds."""
    venue.policy(max_single_amount=500, require_approval_above=200)
    supplier = Supplier()
    tuna = message(("call_1", "order", {"item": "tuna", "total": 340}))
    with Agenitry(venue.agent_key("buyer"), venue.id, base_url=live.url, max_retries=0) as before:
        [pending] = runner_for(before, supplier, scope="conversation-7").run_calls(tuna)
    assert pending.status == "pending"
    venue.gateway.approve(venue.admin, pending.authorization_id)

    with Agenitry(venue.agent_key("buyer"), venue.id, base_url=live.url, max_retries=0) as after:
        runner = runner_for(after, supplier, scope="conversation-7")
        [resumed] = runner.run_calls(tuna)
        [again] = runner.run_calls(tuna)
        # The same call id in another conversation is another call.
        [elsewhere] = runner_for(after, supplier, scope="conversation-8").run_calls(tuna)
    assert (resumed.status, resumed.authorization_id) == ("approved", pending.authorization_id)
    assert (again.status, again.authorization_id) == ("done", pending.authorization_id)
    assert elsewhere.status == "pending" and elsewhere.authorization_id != pending.authorization_id
    assert supplier.orders == [("tuna", 340)]


@pytest.mark.parametrize("total", [True, "450", None, -5, 1.005], ids=repr)
def test_an_amount_the_model_wrote_wrong_is_invalid_and_never_coerced(
    agent: Agenitry, venue: Venue, total: Any
) -> None:
    supplier = Supplier()
    [result] = runner_for(agent, supplier).run_calls(message(("call_x", "order", {"item": "salmon", "total": total})))
    assert result.status == "invalid"
    assert result.content.startswith("order was not run: ")
    assert result.content.endswith("Nothing was authorized; call it again with corrected arguments.")
    assert supplier.orders == []
    assert authorizations(venue) == []
    assert [c["outcome"] for c in tool_calls(venue, agent)] == ["invalid"]


def test_a_wrong_type_is_an_error_and_never_coerced(agent: Agenitry) -> None:
    weighed: list[int] = []

    def weigh(pounds: int) -> int:
        """Weigh the delivery."""
        weighed.append(pounds)
        return pounds

    [result] = ToolRunner(agent, tools=[weigh]).run_calls(message(("call_w", "weigh", {"pounds": "5"})))
    assert (result.status, result.content) == (
        "error",
        "error: invalid arguments for weigh: pounds: Input should be a valid integer. "
        "Call it again with corrected arguments.",
    )
    assert weighed == []


@pytest.mark.parametrize(
    ("arguments", "status", "expected"),
    [
        ('{"item": "salmon", "total": ', "error", "are not valid JSON"),
        ('["salmon", 12]', "error", "must be a JSON object"),
        ({"item": "salmon", "total": "a lot"}, "invalid", "total must be a JSON number such as 127.5"),
        ({"item": "salmon"}, "invalid", "order was called without its amount argument 'total'"),
        ({"item": 12, "total": 12}, "error", "item: Input should be a valid string"),
        ({"item": "salmon", "total": 12, "approved": True}, "error", "approved: Extra inputs are not permitted"),
    ],
    ids=["truncated-json", "not-an-object", "wrong-amount", "missing-amount", "wrong-type", "extra-field"],
)
def test_malformed_arguments_become_an_error_the_model_can_correct(
    agent: Agenitry, venue: Venue, arguments: Any, status: str, expected: str
) -> None:
    supplier = Supplier()
    [result] = runner_for(agent, supplier).run_calls(message(("call_x", "order", arguments)))
    assert result.status == status
    assert expected in result.content
    assert "again" in result.content
    assert supplier.orders == []
    assert authorizations(venue) == []
    assert [c["outcome"] for c in tool_calls(venue, agent)] == [status]


def test_an_unknown_tool_is_an_error_output(agent: Agenitry) -> None:
    [output] = runner_for(agent, Supplier()).run(message(("call_u", "refund", {"amount": 5})))
    assert output["content"] == "error: there is no tool named 'refund' (tools: check_stock, order)."


def test_a_failing_spending_tool_is_released_and_reported(agent: Agenitry, venue: Venue) -> None:
    [result] = runner_for(agent, Supplier()).run_calls(message(("call_f", "order", {"item": "broken", "total": 50})))
    assert result.status == "error"
    assert result.content.startswith("order failed: RuntimeError: supplier API is down.")
    assert f"Authorization {result.authorization_id} was released; nothing was spent." in result.content
    assert [a["status"] for a in authorizations(venue)] == ["reversed"]


def test_an_unreachable_gateway_is_an_error_and_nothing_runs(venue: Venue) -> None:
    supplier = Supplier()
    offline = Agenitry(venue.agent_key("buyer"), venue.id, base_url="http://127.0.0.1:9", max_retries=0)
    [result] = runner_for(offline, supplier).run_calls(message(("call_o", "order", {"item": "salmon", "total": 5})))
    # The call's own record cannot be delivered either: the spool keeps it for the next client.
    assert offline.pending_events == 1
    offline.close(timeout=0.5)
    assert offline.dropped_events == 0
    assert result.status == "error"
    assert result.content.startswith("order was not run: the spending gateway could not be reached")
    assert result.content.endswith("Nothing was spent.")
    assert supplier.orders == []


@pytest.mark.anyio
async def test_responses_output_runs_async_with_the_async_client(venue: Venue, live: LiveServer) -> None:
    venue.policy(max_single_amount=500, require_approval_above=200)
    supplier = Supplier()

    async def order(item: str, total: float) -> str:
        """Order, asynchronously."""
        supplier.orders.append((item, total))
        return f"ordered {item}"

    async with AsyncAgenitry(venue.agent_key("buyer"), venue.id, base_url=live.url, max_retries=0) as client:
        runner = ToolRunner(client, tools=[check_stock])
        runner.add(order, action="purchase_order", amount="total")
        outputs = await runner.arun(
            response(
                ("call_1", "check_stock", {"item": "salmon"}),
                ("call_2", "order", {"item": "salmon", "total": 90}),
                ("call_3", "order", {"item": "tuna", "total": 340}),
            )
        )
        assert outputs[0] == {"type": "function_call_output", "call_id": "call_1", "output": "4"}
        assert outputs[1] == {"type": "function_call_output", "call_id": "call_2", "output": "ordered salmon"}
        assert outputs[2]["call_id"] == "call_3"
        assert outputs[2]["output"].startswith("Waiting for the owner's approval: purchase_order of 340.00 USD")
        with pytest.raises(TypeError, match="arun"):
            runner.run(response(("call_4", "check_stock", {"item": "salmon"})))
        [pending_id] = list(runner.pending)
        venue.gateway.approve(venue.admin, pending_id)
        resumed = await runner.aresume(pending_id)
        assert resumed.message() == {"type": "function_call_output", "call_id": "call_3", "output": "ordered tuna"}
        await client.flush()
    assert supplier.orders == [("salmon", 90), ("tuna", 340)]
    statuses = sorted(a["status"] for a in authorizations(venue))
    assert statuses == ["executed", "executed"]


def test_agenitry_tools_answer_the_model(venue: Venue, live: LiveServer) -> None:
    with Agenitry(venue.admin_key, venue.id, base_url=live.url, agent_id="buyer", max_retries=0) as admin:
        runner = ToolRunner(admin, agenitry_tools=True)
        assert [t["function"]["name"] for t in runner.chat_tools()] == ["authorize_spend", "log_event", "set_policy"]
        policy, first, logged = runner.run_calls(
            message(
                (
                    "c1",
                    "set_policy",
                    {
                        "agent_id": None,
                        "max_single_amount": 100,
                        "max_daily_spend": None,
                        "max_monthly_spend": None,
                        "require_approval_above": None,
                        "allowed_actions": None,
                    },
                ),
                ("c2", "authorize_spend", {"action": "comp_issued", "amount": 150, "reason": "cold soup"}),
                ("c3", "log_event", {"action": "item_86d", "amount": None, "direction": None, "reason": "out of tuna"}),
            )
        )
        admin.flush()
    [saved] = venue.gateway.list_policies(venue.admin)["policies"]
    assert policy.content == f"Policy {saved['id']} saved for the whole venue: at most 100 a spend."
    [denied] = authorizations(venue)
    assert first.content == (
        "DENIED: Not authorized (denied): Amount $150.00 exceeds the single-transaction limit of $100.00 for the "
        f"venue. Nothing was done (authorization {denied['id']}). Do not retry this spend."
    )
    [item] = venue.gateway.list_events(venue.admin, venue.id, action="item_86d")["events"]
    assert item["reason"] == "out of tuna"
    assert logged.content == (
        f"Logged item_86d as event {item['id']}; anyone with this link can verify it: "
        f"{live.url}/verify/{venue.id}/{item['id']}."
    )


class Line(BaseModel):
    item: str
    pounds: int


class Order(BaseModel):
    """An order to the fishmonger."""

    lines: list[Line]
    rush: Optional[bool]


def test_a_pydantic_model_tool_receives_one_validated_instance(agent: Agenitry, venue: Venue) -> None:
    received: list[Order] = []

    def place(order: Order) -> str:
        received.append(order)
        return f"{len(order.lines)} lines"

    runner = ToolRunner(agent)
    runner.add(place, arguments=Order, action="purchase_order", amount=lambda args: 10 * len(args["lines"]))
    [schema] = runner.chat_tools()
    assert schema["function"]["description"] == "An order to the fishmonger."
    assert schema["function"]["parameters"]["required"] == ["lines", "rush"]
    arguments = {"lines": [{"item": "salmon", "pounds": 5}, {"item": "tuna", "pounds": 2}], "rush": None}
    [ok] = runner.run_calls(message(("c1", "place", arguments)))
    assert (ok.status, ok.content) == ("approved", "2 lines")
    assert received == [Order.model_validate(arguments)]
    [record] = authorizations(venue)
    assert record["amount"] == 20.0
    [bad] = runner.run_calls(message(("c2", "place", {"lines": [{"item": "salmon"}], "rush": False})))
    assert bad.status == "error" and "lines.0.pounds: Field required" in bad.content
    assert len(received) == 1
