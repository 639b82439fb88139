"""FunctionTool factories for Agenitry's own tools: authorize a spend, log an event, set a policy.

Each factory takes the seed's ``api_key``/``venue_id``/``agent_id`` (or ``client=``, a sync
or async client) and returns a ``FunctionTool`` with a sync and an async implementation
(only the async one on an :class:`~agenitry.AsyncAgenitry`). Answers are short texts a
model can act on; a gateway error is an error output, never an exception in the agent.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any, Literal, Optional, cast

from llama_index.core.tools import FunctionTool
from pydantic import BaseModel, Field

from agenitry import AgenitryError
from agenitry.integration import (
    Agenitry,
    AsyncAgenitry,
    Authorization,
    Client,
    decision_text,
    logged_text,
    policy_text,
)

Direction = Literal["inbound", "outbound", "internal"]


def resolve_client(
    client: Optional[Client],
    api_key: Optional[str],
    venue_id: Optional[str],
    agent_id: Optional[str],
    base_url: Optional[str],
) -> Client:
    """The client given, or a new sync one from the seed's arguments (and the AGENITRY_* environment)."""
    if client is not None:
        return client
    return Agenitry(api_key, venue_id, agent_id=agent_id, base_url=base_url)


def _decided(record: Mapping[str, Any]) -> str:
    """What the model reads about an authorization it asked for, from its full record."""
    return decision_text(Authorization.from_answer(record))


class AuthorizeArgs(BaseModel):
    action: str = Field(description="What the money is for, e.g. purchase_order or comp_issued.")
    amount: float = Field(description="The amount, in the venue's currency.")
    reason: Optional[str] = Field(default=None, description="Why, in a sentence the owner will read.")


class LogEventArgs(BaseModel):
    action: str = Field(description="What happened, e.g. order_captured or item_86d.")
    amount: Optional[float] = Field(default=None, description="The amount involved, if any.")
    direction: Optional[Direction] = Field(default=None, description="inbound, outbound or internal.")
    reason: Optional[str] = Field(default=None, description="Why, in a sentence.")


class SetPolicyArgs(BaseModel):
    agent_id: Optional[str] = Field(default=None, description="The agent; null for the venue-wide policy.")
    max_single_amount: Optional[float] = None
    max_daily_spend: Optional[float] = None
    max_monthly_spend: Optional[float] = None
    require_approval_above: Optional[float] = None
    allowed_actions: Optional[list[str]] = None


def _sync(client: Client) -> Agenitry:
    """The client of a tool's sync implementation, which a tool has only on a sync client."""
    return cast(Agenitry, client)


def _with_client(tool: FunctionTool, client: Client) -> FunctionTool:
    """Keep the client on the tool (``tool.agenitry``): one made from ``api_key=`` is yours to close."""
    tool.agenitry = client  # type: ignore[attr-defined]
    return tool


def _error(exc: AgenitryError) -> str:
    return f"error: the Agenitry gateway refused or could not be reached ({exc}); nothing was done."


def create_authorize_tool(
    api_key: Optional[str] = None,
    venue_id: Optional[str] = None,
    agent_id: Optional[str] = None,
    *,
    client: Optional[Client] = None,
    base_url: Optional[str] = None,
    name: str = "authorize_spend",
) -> FunctionTool:
    """A tool the agent calls before spending: the answer says approved, denied (why) or pending (which id)."""
    agent = resolve_client(client, api_key, venue_id, agent_id, base_url)
    description = (
        "Ask the owner's spending policy before spending money. "
        "Answers approved (go ahead), denied (do not spend) or pending (wait for the owner)."
    )

    async def aauthorize(action: str, amount: float, reason: Optional[str] = None) -> str:
        try:
            if isinstance(agent, AsyncAgenitry):
                answer = await agent.authorize(action, amount, reason=reason)
                # The decision names no action, amount or currency: the record does.
                return _decided(await agent.get_authorization(answer["authorization_id"]))
            return await asyncio.to_thread(authorize, action, amount, reason)
        except AgenitryError as exc:
            return _error(exc)

    def authorize(action: str, amount: float, reason: Optional[str] = None) -> str:
        try:
            sync = _sync(agent)
            return _decided(sync.get_authorization(sync.authorize(action, amount, reason=reason)["authorization_id"]))
        except AgenitryError as exc:
            return _error(exc)

    return _with_client(
        FunctionTool.from_defaults(
            fn=None if isinstance(agent, AsyncAgenitry) else authorize,
            async_fn=aauthorize,
            name=name,
            description=description,
            fn_schema=AuthorizeArgs,
        ),
        agent,
    )


def create_log_event_tool(
    api_key: Optional[str] = None,
    venue_id: Optional[str] = None,
    agent_id: Optional[str] = None,
    *,
    client: Optional[Client] = None,
    base_url: Optional[str] = None,
    name: str = "log_event",
) -> FunctionTool:
    """A tool that records an event in the venue's verifiable audit log (delivered in the background)."""
    agent = resolve_client(client, api_key, venue_id, agent_id, base_url)

    def log(
        action: str, amount: Optional[float] = None, direction: Optional[str] = None, reason: Optional[str] = None
    ) -> str:
        try:
            event = _sync(agent).log(action, amount=amount, direction=direction, reason=reason)
        except (AgenitryError, ValueError) as exc:
            return f"error: {exc}"
        return logged_text(action, event)

    async def alog(
        action: str, amount: Optional[float] = None, direction: Optional[str] = None, reason: Optional[str] = None
    ) -> str:
        if not isinstance(agent, AsyncAgenitry):
            return await asyncio.to_thread(log, action, amount, direction, reason)
        try:
            event = await agent.log(action, amount=amount, direction=direction, reason=reason)
        except (AgenitryError, ValueError) as exc:
            return f"error: {exc}"
        return logged_text(action, event)

    return _with_client(
        FunctionTool.from_defaults(
            fn=None if isinstance(agent, AsyncAgenitry) else log,
            async_fn=alog,
            name=name,
            description="Record something that happened in the venue's verifiable audit log.",
            fn_schema=LogEventArgs,
        ),
        agent,
    )


def create_set_policy_tool(
    api_key: Optional[str] = None,
    venue_id: Optional[str] = None,
    agent_id: Optional[str] = None,
    *,
    client: Optional[Client] = None,
    base_url: Optional[str] = None,
    name: str = "set_policy",
) -> FunctionTool:
    """A tool that creates or updates a spending policy (admin keys only; an agent key is refused by the gateway)."""
    agent = resolve_client(client, api_key, venue_id, agent_id, base_url)

    def set_policy(agent_id: Optional[str] = None, **limits: Any) -> str:
        try:
            return policy_text(_sync(agent).set_policy(agent_id=agent_id, **limits))
        except AgenitryError as exc:
            return _error(exc)

    async def aset_policy(agent_id: Optional[str] = None, **limits: Any) -> str:
        if not isinstance(agent, AsyncAgenitry):
            return await asyncio.to_thread(functools.partial(set_policy, agent_id, **limits))
        try:
            return policy_text(await agent.set_policy(agent_id=agent_id, **limits))
        except AgenitryError as exc:
            return _error(exc)

    return _with_client(
        FunctionTool.from_defaults(
            fn=None if isinstance(agent, AsyncAgenitry) else set_policy,
            async_fn=aset_policy,
            name=name,
            description="Create or update a spending policy (admin only). Limits left out keep their value.",
            fn_schema=SetPolicyArgs,
        ),
        agent,
    )
