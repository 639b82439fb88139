"""Agenitry's own tools for a model: authorize a spend, log an event, set a policy.

The functions below are the tools' signatures (their type hints make the strict
schemas); :func:`bind` gives implementations on a client. Every answer is a short text
the model can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Literal, Optional

from agenitry.integration import Agenitry, AsyncAgenitry, Authorization, decision_text, logged_text, policy_text

from ._schema import chat_tool, responses_tool

Direction = Literal["inbound", "outbound", "internal"]


def authorize_spend(action: str, amount: float, reason: Optional[str]) -> str:
    """Ask the owner's spending policy before spending money; the answer is approved, denied or pending.

    Args:
        action: What the money is for, e.g. purchase_order or comp_issued.
        amount: The amount, in the venue's currency.
        reason: Why, in a sentence the owner will read (or null).
    """
    raise NotImplementedError  # a signature only; see bind()


def log_event(action: str, amount: Optional[float], direction: Optional[Direction], reason: Optional[str]) -> str:
    """Record something that happened in the venue's verifiable audit log."""
    raise NotImplementedError


def set_policy(
    agent_id: Optional[str],
    max_single_amount: Optional[float],
    max_daily_spend: Optional[float],
    max_monthly_spend: Optional[float],
    require_approval_above: Optional[float],
    allowed_actions: Optional[list[str]],
) -> str:
    """Create or update a spending policy (admin keys only): a limit left null keeps its value."""
    raise NotImplementedError


SIGNATURES: tuple[Callable[..., str], ...] = (authorize_spend, log_event, set_policy)


def chat_completions_schemas() -> list[dict[str, Any]]:
    """Agenitry's tools as strict Chat Completions tools (``tools=`` of ``chat.completions.create``)."""
    return [chat_tool(fn) for fn in SIGNATURES]


def responses_schemas() -> list[dict[str, Any]]:
    """Agenitry's tools as strict Responses API tools (``tools=`` of ``responses.create``)."""
    return [responses_tool(fn) for fn in SIGNATURES]


def tool_schemas() -> list[dict[str, Any]]:
    """Agenitry's tools in the Chat Completions shape (the common one)."""
    return chat_completions_schemas()


def _decided(record: Mapping[str, Any]) -> str:
    """What the model reads about a spend it asked about, from the authorization's full record
    (the decision itself names no action, amount or currency)."""
    return decision_text(Authorization.from_answer(record))


def bind(client: Agenitry) -> dict[str, Callable[..., str]]:
    """Implementations of the tools on a sync client."""

    def authorize(action: str, amount: float, reason: Optional[str] = None) -> str:
        return _decided(client.get_authorization(client.authorize(action, amount, reason=reason)["authorization_id"]))

    def log(
        action: str, amount: Optional[float] = None, direction: Optional[str] = None, reason: Optional[str] = None
    ) -> str:
        event = client.log(action, amount=amount, direction=direction, reason=reason)
        return logged_text(action, event)

    def policy(agent_id: Optional[str] = None, **limits: Any) -> str:
        return policy_text(client.set_policy(agent_id=agent_id, **limits))

    return {"authorize_spend": authorize, "log_event": log, "set_policy": policy}


def abind(client: AsyncAgenitry) -> dict[str, Callable[..., Any]]:
    """Implementations of the tools on an async client."""

    async def authorize(action: str, amount: float, reason: Optional[str] = None) -> str:
        answer = await client.authorize(action, amount, reason=reason)
        return _decided(await client.get_authorization(answer["authorization_id"]))

    async def log(
        action: str, amount: Optional[float] = None, direction: Optional[str] = None, reason: Optional[str] = None
    ) -> str:
        event = await client.log(action, amount=amount, direction=direction, reason=reason)
        return logged_text(action, event)

    async def policy(agent_id: Optional[str] = None, **limits: Any) -> str:
        return policy_text(await client.set_policy(agent_id=agent_id, **limits))

    return {"authorize_spend": authorize, "log_event": log, "set_policy": policy}
