"""Gating and recording against the real gateway, over HTTP and embedded, sync and async.

``spend`` authorizes, runs the block, then executes with the actual amount (and settles
when asked); an exception reverses and is re-raised; a denial raises SpendDenied before
the block runs; pending raises ApprovalRequired, or waits (polling with backoff) until a
person decides or the deadline passes. ``guard`` does the same around a function and
keeps its signature and docstring; ``record_tool_call`` and ``logged`` log tool calls
with secrets redacted and long values cut short.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import typing
from typing import Any, Callable

import pytest

from agenitry import Agenitry, ApprovalRequired, AsyncAgenitry, SpendDenied, _gate, _gating

pytestmark = pytest.mark.anyio


@pytest.fixture
def store() -> str:
    """SQLite only: the answers are the gateway's, the same on every store (its own suite runs both);
    PostgreSQL is covered here by test_embedded, test_faults and test_delivery."""
    return "sqlite"


async def spend(agent: Any, body: Callable[[Any], None], *args: Any, **kwargs: Any) -> Any:
    """Run ``body(auth)`` inside ``with`` or ``async with agent.spend(...)``, as the client needs."""
    if agent.is_async:
        async with agent.spend(*args, **kwargs) as auth:
            body(auth)
    else:
        with agent.spend(*args, **kwargs) as auth:
            body(auth)
    return auth


def record_actual(amount: float) -> Callable[[Any], None]:
    def body(auth: Any) -> None:
        auth.actual_amount = amount

    return body


async def test_approved_spend_runs_then_executes_with_the_actual_amount_and_settles(connect: Any) -> None:
    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(max_single_amount=500)
        auth = await spend(agent, record_actual(112.40), "purchase_order", 120, settle=True)
        assert auth.authorization["status"] == "approved"
        assert auth.executed["status"] == "executed" and auth.settled["status"] == "settled"
        record = await agent.get_authorization(auth.authorization_id)
        assert (record["status"], record["amount"], record["actual_amount"]) == ("settled", 120.0, 112.4)
        plain = await spend(agent, lambda auth: None, "purchase_order", 50)
        assert (await agent.get_authorization(plain.authorization_id))["status"] == "executed"
        assert (await agent.get_authorization(plain.authorization_id))["actual_amount"] == 50.0


async def test_an_exception_inside_reverses_and_is_raised_again(connect: Any) -> None:
    def fail(auth: Any) -> None:
        raise RuntimeError("the supplier hung up")

    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(max_single_amount=500)
        with pytest.raises(RuntimeError, match="supplier hung up"):
            await spend(agent, fail, "purchase_order", 80)
        [record] = (await agent.authorizations())["authorizations"]
        assert record["status"] == "reversed" and record["held_amount"] == 0.0


async def test_a_denial_raises_before_the_block_runs(connect: Any) -> None:
    ran = []
    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(max_single_amount=500)
        with pytest.raises(SpendDenied) as denied:
            await spend(agent, ran.append, "purchase_order", 36_000)
        assert ran == []
        assert denied.value.denial_code == "max_single_amount"
        assert denied.value.reason and "single-transaction limit of $500.00" in denied.value.reason
        assert denied.value.authorization["status"] == "denied" and denied.value.authorization_id


async def test_pending_raises_approval_required_with_the_authorization_id(connect: Any) -> None:
    ran = []
    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(require_approval_above=200)
        with pytest.raises(ApprovalRequired) as pending:
            await spend(agent, ran.append, "purchase_order", 340)
        assert ran == []
        record = await agent.get_authorization(pending.value.authorization_id)
        assert record["status"] == "pending" and record["amount"] == 340.0


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_gate, "APPROVAL_POLL_INITIAL", 0.02)
    monkeypatch.setattr(_gate, "APPROVAL_POLL_MAX", 0.05)


async def decide_later(agent: Any, decision: str, **kwargs: Any) -> Any:
    """Approve or deny the agent's pending authorization once it shows up, from another thread or task."""

    async def decide() -> None:
        for _ in range(500):
            listing = await agent.authorizations(status="pending")
            if listing["authorizations"]:
                await getattr(agent, decision)(listing["authorizations"][0]["id"], **kwargs)
                return
            await asyncio.sleep(0.01)

    if agent.is_async:
        return asyncio.ensure_future(decide())
    thread = threading.Thread(target=lambda: asyncio.run(decide()))
    thread.start()
    return thread


async def finish(waiter: Any) -> None:
    if isinstance(waiter, threading.Thread):
        waiter.join(10)
    else:
        await waiter


@pytest.mark.usefixtures("fast_polls")
async def test_wait_polls_until_the_owner_approves_then_proceeds(connect: Any) -> None:
    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(require_approval_above=200)
        approver = await decide_later(agent, "approve", note="fine")
        auth = await spend(agent, record_actual(300), "purchase_order", 340, wait=30)
        await finish(approver)
        assert auth.authorization["status"] == "approved" and auth.authorization["note"] == "fine"
        assert (await agent.get_authorization(auth.authorization_id))["actual_amount"] == 300.0


@pytest.mark.usefixtures("fast_polls")
async def test_wait_ends_in_spend_denied_when_the_owner_denies(connect: Any) -> None:
    ran = []
    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(require_approval_above=200)
        denier = await decide_later(agent, "deny", reason="not this week")
        with pytest.raises(SpendDenied) as denied:
            await spend(agent, ran.append, "purchase_order", 340, wait=30)
        await finish(denier)
        assert ran == [] and denied.value.authorization["status"] == "denied"


@pytest.mark.usefixtures("fast_polls")
async def test_wait_gives_up_at_the_deadline(connect: Any) -> None:
    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(require_approval_above=200)
        with pytest.raises(ApprovalRequired) as still_pending:
            await spend(agent, lambda auth: None, "purchase_order", 340, wait=0.1)
        assert still_pending.value.authorization["status"] == "pending"
        with pytest.raises(ApprovalRequired):
            await agent.wait_for_approval(still_pending.value.authorization_id, timeout=0.05)
        await agent.approve(still_pending.value.authorization_id)
        record = await agent.wait_for_approval(still_pending.value.authorization_id, timeout=5)
        assert record["status"] == "approved"


async def test_guard_gates_a_function_and_keeps_its_signature(connect: Any) -> None:
    calls = []
    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(max_single_amount=500)

        if agent.is_async:

            @agent.guard(action="purchase_order", amount="total", settle=True, actual=lambda r: r["charged"])
            async def order_salmon(pounds: int, total: float, supplier_token: str = "tok_x") -> dict[str, Any]:  # noqa: S107
                """Order salmon from the supplier."""
                calls.append((pounds, total))
                return {"charged": total - 5}

            assert inspect.iscoroutinefunction(order_salmon)
            result = await order_salmon(50, 320.0)
            with pytest.raises(SpendDenied):
                await order_salmon(500, 3200.0)
        else:

            @agent.guard(action="purchase_order", amount="total", settle=True, actual=lambda r: r["charged"])
            def order_salmon(pounds: int, total: float, supplier_token: str = "tok_x") -> dict[str, Any]:  # noqa: S107
                """Order salmon from the supplier."""
                calls.append((pounds, total))
                return {"charged": total - 5}

            result = order_salmon(50, 320.0)
            with pytest.raises(SpendDenied):
                order_salmon(500, 3200.0)

        assert result == {"charged": 315.0} and calls == [(50, 320.0)]
        assert order_salmon.__doc__ == "Order salmon from the supplier."
        assert order_salmon.__name__ == "order_salmon"
        assert list(inspect.signature(order_salmon).parameters) == ["pounds", "total", "supplier_token"]
        assert typing.get_type_hints(order_salmon)["total"] is float
        listing = (await agent.authorizations(status="settled"))["authorizations"]
        [record] = listing
        assert (record["amount"], record["actual_amount"]) == (320.0, 315.0)
        assert record["context"] == {
            "tool": "order_salmon",
            "arguments": {"pounds": 50, "total": 320.0, "supplier_token": "[redacted]"},
        }


async def test_guard_amount_as_a_function_or_a_number(connect: Any) -> None:
    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(max_single_amount=500)
        by_arguments = agent.guard(action="comp_issued", amount=lambda args: args["guests"] * 12.5)
        fixed = agent.guard(action="comp_issued", amount=20)
        if agent.is_async:

            async def comp(guests: int) -> int:
                return guests

            assert await by_arguments(comp)(guests=4) == 4
            assert await fixed(comp)(1) == 1
        else:

            def comp(guests: int) -> int:
                return guests

            assert by_arguments(comp)(guests=4) == 4
            assert fixed(comp)(1) == 1
        amounts = sorted(a["amount"] for a in (await agent.authorizations(status="executed"))["authorizations"])
        assert amounts == [20.0, 50.0]


async def test_the_sync_client_guards_async_functions_and_the_async_client_refuses_sync_ones(
    connect: Any,
) -> None:
    async with connect(agent_id="buyer") as agent:
        await agent.set_policy(max_single_amount=500)
        if agent.is_async:
            with pytest.raises(TypeError, match="async functions"):
                agent.guard(action="purchase_order", amount=1)(lambda: None)
            with pytest.raises(TypeError, match="async with"), agent.spend("purchase_order", 1):
                pass
            return

        @agent.guard(action="purchase_order", amount="total")
        async def order(total: float) -> str:
            await asyncio.sleep(0)
            return "ordered"

        assert await order(total=42.0) == "ordered"
        [record] = (await agent.authorizations(status="executed"))["authorizations"]
        assert record["amount"] == 42.0


def test_guard_refuses_an_amount_argument_the_function_does_not_have(tmp_path: Any) -> None:
    client = Agenitry("ag_unused", "nobo-downtown", base_url="http://127.0.0.1:9")
    try:
        with pytest.raises(TypeError, match="no argument named 'price'"):
            client.guard(action="purchase_order", amount="price")(lambda total: total)
    finally:
        client.close()


async def test_record_tool_call_and_logged_write_tool_call_events(connect: Any) -> None:
    async with connect(agent_id="voice-agent") as agent:
        answer = await agent.record_tool_call(
            "lookup_guest",
            {"phone": "555-0100", "api_key": "sk-live-123", "notes": "x" * 1000},
            duration_ms=12.5,
            outcome="ok",
        )
        assert answer["status"] == "queued"

        @agent.logged
        def lookup_menu(day: str, password: str = "hunter2") -> list[str]:  # noqa: S107
            return ["omakase"]

        @agent.logged(name="charge_card")
        async def charge(card_number: str, amount: float) -> None:
            raise ValueError("card declined")

        assert lookup_menu("friday") == ["omakase"]
        with pytest.raises(ValueError, match="declined"):
            await charge("4242424242424242", amount=20.0)
        assert await agent.flush(30)
        events = (await agent.events(action="tool_call"))["events"]
        by_tool = {event["context"]["tool"]: event["context"] for event in events}
        assert by_tool["lookup_guest"]["arguments"]["api_key"] == "[redacted]"
        assert by_tool["lookup_guest"]["arguments"]["notes"].startswith("x" * 256 + "…(+744 chars)")
        assert by_tool["lookup_guest"]["duration_ms"] == 12.5
        assert by_tool["lookup_menu"]["arguments"] == {"day": "friday", "password": "[redacted]"}
        assert by_tool["lookup_menu"]["outcome"] == "ok" and "error" not in by_tool["lookup_menu"]
        assert by_tool["charge_card"]["outcome"] == "error"
        assert by_tool["charge_card"]["error"] == "ValueError: card declined"
        assert by_tool["charge_card"]["arguments"] == {"card_number": "[redacted]", "amount": 20.0}
        assert {event["agent_id"] for event in events} == {"voice-agent"}
        assert {event["direction"] for event in events} == {"internal"}


def test_arguments_are_summarized_for_the_log() -> None:
    summary = _gating.summarize_arguments(
        {
            "Authorization": "Bearer ag_x",
            "nested": {"client_secret": "s", "items": list(range(30)), "blob": b"\x00" * 10},
            "deep": {"a": {"b": {"c": {"d": 1}}}},
            "when": float("inf"),
            "thing": object.__new__(AsyncAgenitry),
        }
    )
    assert summary["Authorization"] == "[redacted]"
    assert summary["nested"]["client_secret"] == "[redacted]"
    assert summary["nested"]["items"][-1] == "…(+10 more)" and len(summary["nested"]["items"]) == 21
    assert summary["nested"]["blob"] == "<10 bytes>"
    assert summary["deep"] == {"a": {"b": {"c": "…"}}}
    assert summary["when"] == "inf" and summary["thing"].startswith("<agenitry._async_client.AsyncAgenitry")
