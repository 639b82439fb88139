"""``agenitry mcp serve``: the venue's spend authority as MCP tools an agent can call.

Tools: ``authorize``, ``authorization_status``, ``execute``, ``log_event``, and for an
admin key ``set_policy``. Each takes typed arguments and answers structured content (its
output schema) with a sentence the model reads first. An amount is checked by core's own
rule before it is sent: a JSON number only (``"450"``, ``true``, NaN or a negative amount
is refused, never coerced). What the gateway refuses comes back as an ``is_error``
result saying why.
"""

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal, Optional, TypeVar

import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, BeforeValidator, Field

from agenitry import AgenitryError, InvalidAmount, check_amount
from agenitry.integration import (
    Authorization,
    Client,
    decision_text,
    describe_error,
    logged_text,
    policy_text,
    ran_text,
)

from ._client import ask, console_base, console_link

T = TypeVar("T")


def _strict_amount(value: Any) -> Any:
    """The gateway's amount rule before pydantic sees the value: never coerce ``"450"`` or ``true``."""
    if value is None:
        return None
    try:
        check_amount(value)
    except InvalidAmount as error:
        raise ValueError(str(error)) from None
    return value


#: An amount as a JSON number, checked by core's rule (the currency's places are checked in the tool).
Amount = Annotated[float, BeforeValidator(_strict_amount), Field(description="A JSON number, e.g. 127.5")]
OptionalAmount = Annotated[Optional[float], BeforeValidator(_strict_amount)]
Direction = Literal["inbound", "outbound", "internal"]


class AuthorizationView(BaseModel):
    """One authorization: its decision or current status, and the sentence for the model."""

    authorization_id: str
    status: str = Field(description="approved, pending, denied, executed, settled, expired or reversed")
    approved: bool = Field(description="Whether the spend may go ahead now")
    action: Optional[str] = None
    amount: Optional[float] = None
    actual_amount: Optional[float] = None
    currency: Optional[str] = None
    agent_id: Optional[str] = None
    expires_at: Optional[str] = None
    denial_code: Optional[str] = None
    denial_reason: Optional[str] = None
    console_url: Optional[str] = Field(None, description="Where the owner approves or denies a pending request")
    message: str


class ExecutedView(BaseModel):
    """An authorization carried out (and settled, when asked)."""

    authorization_id: str
    status: str
    event_id: Optional[str] = None
    executed_at: Optional[str] = None
    settled_at: Optional[str] = None
    message: str


class LoggedView(BaseModel):
    """An event queued for the venue's audit log."""

    event_id: str
    status: str
    verify_url: Optional[str] = None
    message: str


class PolicyView(BaseModel):
    """A policy as saved."""

    policy_id: str
    agent_id: Optional[str] = None
    max_single_amount: Optional[float] = None
    max_daily_spend: Optional[float] = None
    max_monthly_spend: Optional[float] = None
    require_approval_above: Optional[float] = None
    allowed_actions: Optional[list[str]] = None
    message: str


def _result(view: BaseModel) -> types.CallToolResult:
    """The view as structured content, with its sentence as the text the model reads."""
    data = view.model_dump(mode="json")
    return types.CallToolResult(content=[types.TextContent(type="text", text=data["message"])], structured_content=data)


async def _asked(run: Awaitable[T]) -> T:
    """The gateway's answer, or its refusal as a tool error the model reads."""
    try:
        return await run
    except AgenitryError as error:
        raise ToolError(error.message) from error
    except ValueError as error:  # refused before sending (an action name, an amount)
        raise ToolError(describe_error(str(error)) or "invalid arguments") from error


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool) else None


def _checked(value: Optional[float], currency: Optional[str], name: str) -> Optional[Decimal]:
    if value is None:
        return None
    try:
        return check_amount(value, currency, name=name)
    except InvalidAmount as error:
        raise ToolError(str(error)) from None


def build_server(
    client: Client, *, admin: bool = False, console_url: Optional[str] = None, name: str = "agenitry"
) -> MCPServer:
    """The MCP server of the venue ``client`` works in; ``admin``: also offer ``set_policy``.

    >>> server = build_server(Agenitry(api_key="ag_...", venue_id="nobo-downtown", agent_id="buyer"))  # doctest: +SKIP
    >>> server.run()  # stdio  # doctest: +SKIP
    """
    server = MCPServer(
        name,
        instructions=(
            "Ask `authorize` before spending money; go ahead only when it is approved, then `execute` it."
            " A pending request waits for the owner: check it with `authorization_status`."
        ),
    )
    console = console_base(client, console_url)

    def view(record: Mapping[str, Any]) -> AuthorizationView:
        authorization = Authorization.from_answer(record)
        text = decision_text(authorization) if authorization.status in ("approved", "pending", "denied") else None
        page = console_link(console, authorization.id) if authorization.status == "pending" else None
        if page is not None:
            text = f"{text} The owner approves or denies it at {page}; then check authorization_status."
        return AuthorizationView(
            authorization_id=authorization.id,
            status=authorization.status,
            approved=authorization.status == "approved",
            action=authorization.action,
            amount=_number(record.get("amount")),
            actual_amount=_number(record.get("actual_amount")),
            currency=authorization.currency,
            agent_id=authorization.agent_id,
            expires_at=authorization.expires_at,
            denial_code=authorization.denial_code,
            denial_reason=authorization.denial_reason,
            console_url=page,
            message=text or _status_text(authorization),
        )

    async def authorize(
        action: Annotated[str, Field(description="What the money is for, e.g. purchase_order")],
        amount: Amount,
        currency: Annotated[Optional[str], Field(description="ISO 4217, e.g. USD (default: the venue's)")] = None,
        reason: Annotated[Optional[str], Field(description="Why, in a sentence the owner reads")] = None,
        context: Annotated[Optional[dict[str, Any]], Field(description="Details kept with the request")] = None,
    ) -> Annotated[types.CallToolResult, AuthorizationView]:
        """Ask the owner's spending policy before spending money: approved, denied, or pending the owner."""
        exact = _checked(amount, currency, "amount")
        decided = await _asked(
            ask(client, "authorize", action, exact, currency=currency, reason=reason, context=context)
        )
        record = await _asked(ask(client, "get_authorization", Authorization.from_answer(decided).id))
        return _result(view(record))

    async def authorization_status(
        authorization_id: Annotated[str, Field(description="The id authorize answered, auth_...")],
    ) -> Annotated[types.CallToolResult, AuthorizationView]:
        """Where a spend stands now: pending, approved (go ahead), denied, executed, expired..."""
        return _result(view(await _asked(ask(client, "get_authorization", authorization_id))))

    async def execute(
        authorization_id: Annotated[str, Field(description="An approved authorization, auth_...")],
        actual_amount: Annotated[
            OptionalAmount, Field(description="The amount really spent, if less than authorized")
        ] = None,
        settle: Annotated[bool, Field(description="Also settle it (the payment is confirmed)")] = False,
    ) -> Annotated[types.CallToolResult, ExecutedView]:
        """Record that an approved spend was carried out (after doing it), with the amount really spent."""
        exact = _checked(actual_amount, None, "actual_amount")
        executed = await _asked(ask(client, "execute", authorization_id, actual_amount=exact))
        settled = await _asked(ask(client, "settle", authorization_id)) if settle else {}
        record = Authorization.from_answer(await _asked(ask(client, "get_authorization", authorization_id)))
        return _result(
            ExecutedView(
                authorization_id=authorization_id,
                status=record.status,
                event_id=executed.get("event_id"),
                executed_at=executed.get("executed_at"),
                settled_at=settled.get("settled_at"),
                message=ran_text(record),
            )
        )

    async def log_event(
        action: Annotated[str, Field(description="What happened, e.g. order_captured")],
        amount: Annotated[OptionalAmount, Field(description="Money involved, if any")] = None,
        currency: Optional[str] = None,
        direction: Optional[Direction] = None,
        reason: Optional[str] = None,
        context: Optional[dict[str, Any]] = None,
    ) -> Annotated[types.CallToolResult, LoggedView]:
        """Record something that happened in the venue's verifiable audit log (returns at once)."""
        exact = _checked(amount, currency, "amount")
        event = await _asked(
            ask(
                client,
                "log",
                action,
                amount=exact,
                currency=currency,
                direction=direction,
                reason=reason,
                context=context,
            )
        )
        return _result(
            LoggedView(
                event_id=event["id"],
                status=event.get("status", "queued"),
                verify_url=event.get("verify_url"),
                message=logged_text(action, event),
            )
        )

    async def set_policy(
        agent_id: Annotated[Optional[str], Field(description="The agent it is for; null: the whole venue")] = None,
        max_single_amount: OptionalAmount = None,
        max_daily_spend: OptionalAmount = None,
        max_monthly_spend: OptionalAmount = None,
        require_approval_above: OptionalAmount = None,
        allowed_actions: Optional[list[str]] = None,
    ) -> Annotated[types.CallToolResult, PolicyView]:
        """Create or update a spending policy (admin keys only): a limit left null keeps its value."""
        limits = {
            "max_single_amount": max_single_amount,
            "max_daily_spend": max_daily_spend,
            "max_monthly_spend": max_monthly_spend,
            "require_approval_above": require_approval_above,
        }
        exact = {key: _checked(value, None, key) for key, value in limits.items()}
        policy = await _asked(ask(client, "set_policy", agent_id=agent_id, allowed_actions=allowed_actions, **exact))
        return _result(
            PolicyView(
                policy_id=policy["id"],
                agent_id=policy.get("agent_id"),
                allowed_actions=policy.get("allowed_actions"),
                message=policy_text(policy),
                **{key: _number(policy.get(key)) for key in limits},
            )
        )

    tools: list[tuple[Callable[..., Any], types.ToolAnnotations]] = [
        (authorize, types.ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)),
        (authorization_status, types.ToolAnnotations(read_only_hint=True, open_world_hint=False)),
        (execute, types.ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)),
        (log_event, types.ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)),
    ]
    if admin:
        tools.append(
            (
                set_policy,
                types.ToolAnnotations(
                    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
                ),
            )
        )
    for fn, annotations in tools:
        server.add_tool(fn, annotations=annotations, structured_output=True)
    return server


def _status_text(authorization: Authorization) -> str:
    """A sentence for an authorization past its decision (executed, settled, expired, reversed)."""
    if authorization.status in ("executed", "settled"):
        return ran_text(authorization)
    return decision_text(authorization)
