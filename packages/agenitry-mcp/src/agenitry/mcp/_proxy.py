"""The gating proxy: an upstream MCP server's tools, re-exposed unchanged, the spending ones gated.

Invariants:

- Every upstream tool is listed as the upstream lists it (name, description, schemas,
  annotations). A tool named in the rules is a spending tool; every other call is passed
  through as is. Every call, gated or not, is recorded as a ``tool_call`` event, queued
  without waiting on the network.
- A gated call is core's one gated call (:func:`~agenitry.integration.arun_gated`): the
  amount is checked as the client sent it, then the arguments against the tool's input
  schema, before anything is authorized; the upstream is called only while this proxy
  holds the approved authorization's claim, so one approval is at most one upstream call,
  across processes; an upstream error releases the hold.
- MCP has no call ids: a call is its tool and its arguments (for this agent, venue and
  upstream). The same call repeated continues its authorization (:func:`call_key`), also
  after a restart: pending stays pending, approved runs once, executed answers "already
  done". Only a released authorization (the upstream failed, nothing was spent) makes the
  same call a new request, so a retry after a failure is asked anew.
- Pending: a client that takes URL elicitations is sent the console's page of the request
  and, once it opened it, the proxy waits (at most ``approval_wait`` seconds) for the owner;
  otherwise the answer says who decides and where, and the same call repeated continues.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Optional, Union

import jsonschema  # type: ignore[import-untyped]
import mcp_types as types
from mcp import Client as MCPClient
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from agenitry import AuthenticationError, PermissionDeniedError
from agenitry.integration import (
    Authorization,
    Client,
    GatedCall,
    GateOutcome,
    InvalidAmount,
    adecide,
    arun_gated,
    call_key,
    describe_error,
    invalid_text,
    record_tool_call,
)

from ._client import console_base, console_link
from ._config import DEFAULT_APPROVAL_WAIT, ConfigError, ToolRule

logger = logging.getLogger("agenitry")

#: Keys of the ``_meta`` the proxy adds to a gated call's result: what came of it, under which authorization.
META_OUTCOME = "agenitry/outcome"
META_AUTHORIZATION = "agenitry/authorization_id"
META_CONSOLE = "agenitry/console_url"
#: The key of the approval page in an InputRequiredResult (2026-07-28 clients).
APPROVAL_INPUT = "agenitry-approval"
#: How many attempts of one call (each after a released one) are asked before the answer is the last one.
MAX_ATTEMPTS_OF_A_CALL = 20
#: What the proxy adds to the upstream's instructions for the model.
_INSTRUCTIONS = "Spending tools need the owner's spending policy to allow them; a refused call says why."
#: The prefix of the ``_meta`` keys the MCP SDK stamps on every answer (the server's identity...).
_PROTOCOL_META = "io.modelcontextprotocol/"


class UpstreamError(Exception):
    """The upstream tool answered with an error result (or failed): nothing was done there."""


def _text(result: types.CallToolResult) -> str:
    texts = [block.text for block in result.content if isinstance(block, types.TextContent)]
    return " ".join(texts) or "the tool reported an error"


def _own(result: types.CallToolResult, meta: Optional[Mapping[str, Any]] = None) -> types.CallToolResult:
    """The upstream's result as the proxy's: without the upstream's protocol stamps (the client
    talks to the proxy, which stamps its own), with ``meta`` added."""
    kept = {key: value for key, value in (result.meta or {}).items() if not key.startswith(_PROTOCOL_META)}
    merged = {**kept, **(meta or {})}
    return result.model_copy(update={"meta": merged or None})


def _error(text: str, meta: Optional[dict[str, Any]] = None) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True, _meta=meta)


class GatingProxy:
    """An MCP server in front of ``upstream`` (an open :class:`mcp.Client`), gating the tools in ``rules``.

    ``scope`` names the upstream in call keys (default: the name it gave itself), so two
    upstreams' tools of one name never share authorizations. ``console_url`` is where the
    owner's console is (default: the gateway the client talks to).

    >>> async with mcp.Client(StdioServerParameters(command="supplier-mcp")) as upstream:  # doctest: +SKIP
    ...     proxy = GatingProxy(agent, upstream, {"place_order": ToolRule("purchase_order", "total")})
    ...     await proxy.check()
    ...     async with mcp.Client(proxy.server) as client:
    ...         await client.call_tool("place_order", {"item": "salmon", "total": 42.5})
    """

    def __init__(
        self,
        client: Client,
        upstream: MCPClient,
        rules: Mapping[str, ToolRule],
        *,
        agent_id: Optional[str] = None,
        scope: Optional[str] = None,
        approval_wait: float = DEFAULT_APPROVAL_WAIT,
        console_url: Optional[str] = None,
        name: Optional[str] = None,
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.rules = dict(rules)
        self.agent_id = agent_id
        self.approval_wait = approval_wait
        self.console = console_base(client, console_url)
        info = upstream.server_info
        self.scope = scope or (info.name if info is not None else None) or "upstream"
        #: The upstream's tools by name, as last listed.
        self.tools: dict[str, types.Tool] = {}
        self.server: Server[Any] = Server(
            name or f"agenitry-proxy ({self.scope})",
            version=info.version if info is not None else "",
            instructions="\n\n".join(part for part in (upstream.instructions, _INSTRUCTIONS) if part),
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    # -- tools -----------------------------------------------------------------------------------

    async def check(self) -> None:
        """List the upstream's tools and refuse rules that name a tool (or an amount argument) it lacks:
        a typo must never leave a spending tool ungated."""
        cursor: Optional[str] = None
        while True:
            page = await self.upstream.list_tools(cursor=cursor)
            self.tools.update({tool.name: tool for tool in page.tools})
            cursor = page.next_cursor
            if cursor is None:
                break
        for name, rule in self.rules.items():
            tool = self.tools.get(name)
            if tool is None:
                known = ", ".join(sorted(self.tools)) or "none"
                raise ConfigError(f"[tools.{name}]: the upstream has no tool named {name!r} (its tools: {known})")
            properties = tool.input_schema.get("properties") or {}
            if isinstance(rule.amount, str) and rule.amount not in properties:
                raise ConfigError(
                    f"tools.{name}.amount: {name} has no argument {rule.amount!r}"
                    f" (its arguments: {', '.join(sorted(properties)) or 'none'})"
                )

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: Optional[types.PaginatedRequestParams]
    ) -> types.ListToolsResult:
        page = await self.upstream.list_tools(cursor=params.cursor if params is not None else None)
        self.tools.update({tool.name: tool for tool in page.tools})
        return types.ListToolsResult(tools=page.tools, next_cursor=page.next_cursor)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> Union[types.CallToolResult, types.InputRequiredResult]:
        arguments = dict(params.arguments or {})
        rule = self.rules.get(params.name)
        if rule is None:
            return await self._passed_through(params.name, arguments)
        try:
            return await self._gated(ctx, params, rule, arguments)
        except (AuthenticationError, PermissionDeniedError) as error:
            # The owner's mistake, not the model's: said to both, and nothing was spent.
            logger.error("The gateway refused the proxy's key: %s", error.message)
            text = (
                f"{params.name} was not run: the spending gateway refused this proxy's key ({error.message})."
                " Nothing was spent; the owner must fix the proxy's configuration."
            )
            return _error(text, {META_OUTCOME: "unavailable"})

    # -- every call is recorded ----------------------------------------------------------------

    def _record(self, name: str, arguments: Mapping[str, Any], started: float, outcome: str, error: Any = None) -> None:
        try:
            record_tool_call(
                self.client,
                name,
                arguments,
                (time.perf_counter() - started) * 1000,
                outcome,
                error,
                self.agent_id,
                extra={"mcp_server": self.scope},
            )
        except Exception:  # a record that cannot be queued never changes what the call did
            logger.warning("Could not record the call of %s", name, exc_info=True)

    async def _passed_through(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        started = time.perf_counter()
        try:
            result = await self.upstream.call_tool(name, arguments)
        except BaseException as error:
            self._record(name, arguments, started, "error" if isinstance(error, Exception) else "cancelled", error)
            raise
        self._record(
            name, arguments, started, "error" if result.is_error else "ok", _text(result) if result.is_error else None
        )
        return _own(result)

    # -- a spending call -------------------------------------------------------------------------

    def _request(self, rule: ToolRule, name: str, arguments: dict[str, Any], attempt: int = 0) -> GatedCall:
        scope = f"mcp/{self.client.venue_id}/{self.agent_id or self.client.agent_id or ''}/{self.scope}"
        actual = rule.actual
        return GatedCall(
            rule.action,
            rule.amount,
            arguments,
            tool=name,
            currency=rule.currency,
            agent_id=self.agent_id,
            reason=rule.reason,
            settle=rule.settle,
            key=call_key(scope, f"attempt-{attempt}", name, arguments),
            actual=None if actual is None else (lambda result: (result.structured_content or {}).get(actual)),
            extra={"mcp_server": self.scope},
        )

    def _invalid_arguments(self, name: str, arguments: dict[str, Any]) -> Optional[str]:
        """Why the arguments do not fit the tool's input schema (None when they do)."""
        tool = self.tools.get(name)
        if tool is None:
            return None
        validator = jsonschema.validators.validator_for(tool.input_schema, jsonschema.Draft202012Validator)
        error = jsonschema.exceptions.best_match(validator(tool.input_schema).iter_errors(arguments))
        if error is None:
            return None
        where = ".".join(str(part) for part in error.absolute_path) or "arguments"
        return f"the arguments do not fit its input schema ({where}: {error.message})"

    async def _current(self, rule: ToolRule, name: str, arguments: dict[str, Any]) -> tuple[GatedCall, GateOutcome]:
        """The call's authorization as the gateway has it now, past the released ones (a released
        authorization spent nothing: the same call repeated after it is asked anew)."""
        for attempt in range(MAX_ATTEMPTS_OF_A_CALL):
            request = self._request(rule, name, arguments, attempt)
            decision = await adecide(self.client, request)
            released = decision.authorization is not None and decision.authorization.status == "reversed"
            if decision.kind != "denied" or not released:
                break
        return request, decision

    async def _gated(
        self,
        ctx: ServerRequestContext[Any],
        params: types.CallToolRequestParams,
        rule: ToolRule,
        arguments: dict[str, Any],
    ) -> Union[types.CallToolResult, types.InputRequiredResult]:
        name = params.name
        started = time.perf_counter()
        request = self._request(rule, name, arguments)

        async def body() -> types.CallToolResult:
            result = await self.upstream.call_tool(name, arguments)
            if result.is_error:
                raise UpstreamError(_text(result))
            return result

        try:
            request.checked_amount()
        except InvalidAmount:
            # The flow answers a bad amount itself (invalid, nothing authorized) and records it.
            return self._answer(name, await arun_gated(self.client, request, body))
        problem = self._invalid_arguments(name, arguments)
        if problem is not None:
            text = invalid_text(name, problem)
            self._record(name, arguments, started, "invalid", problem)
            return _error(text, {META_OUTCOME: "invalid"})
        if params.request_state is not None:
            # The client comes back from the approval page (2026-07-28): wait for the owner, once.
            response = (params.input_responses or {}).get(APPROVAL_INPUT)
            opened = isinstance(response, types.ElicitResult) and response.action == "accept"
            request, _ = await self._current(rule, name, arguments)
            outcome = await arun_gated(self.client, replace(request, wait=self.approval_wait if opened else None), body)
            return self._answer(name, outcome)
        request, decision = await self._current(rule, name, arguments)
        if decision.kind == "pending" and decision.authorization is not None and _takes_url_elicitation(ctx):
            page = console_link(self.console, decision.authorization.id)
            ask = _approval_message(name, decision.authorization)
            if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                elicitation = types.ElicitRequest(params=types.ElicitRequestURLParams(message=ask, url=page))
                return types.InputRequiredResult(
                    input_requests={APPROVAL_INPUT: elicitation}, request_state=decision.authorization.id
                )
            elicitation_id = f"{decision.authorization.id}-{uuid.uuid4().hex[:12]}"
            if await _opened(ctx, ask, page, elicitation_id):
                outcome = await arun_gated(self.client, replace(request, wait=self.approval_wait), body)
                if outcome.kind != "pending":
                    await _completed(ctx, elicitation_id)
                return self._answer(name, outcome)
        return self._answer(name, await arun_gated(self.client, request, body))

    def _answer(self, name: str, outcome: GateOutcome) -> types.CallToolResult:
        """A gated call's outcome as the tool's result: the upstream's own when it ran, else a sentence."""
        meta: dict[str, Any] = {META_OUTCOME: outcome.kind}
        if outcome.authorization_id is not None:
            meta[META_AUTHORIZATION] = outcome.authorization_id
        if outcome.kind == "ran":
            return _own(outcome.result, meta)
        text = outcome.message
        if outcome.kind == "pending" and outcome.authorization_id is not None:
            page = console_link(self.console, outcome.authorization_id)
            meta[META_CONSOLE] = page
            text = (
                f"{text} The owner approves or denies it at {page}. Once decided, the same call"
                f" ({name} with the same arguments) continues this authorization."
            )
        return _error(text, meta)


def _takes_url_elicitation(ctx: ServerRequestContext[Any]) -> bool:
    capabilities = ctx.session.client_capabilities
    return bool(capabilities and capabilities.elicitation and capabilities.elicitation.url is not None)


def _approval_message(name: str, authorization: Authorization) -> str:
    what = f"{authorization.action or 'a spend'} of {authorization.money}" if authorization.money else "a spend"
    return (
        f"{name} asks for {what}, which needs the owner's approval (authorization {authorization.id})."
        " Open the page to approve or deny it; the call goes on once it is decided."
    )


async def _opened(ctx: ServerRequestContext[Any], message: str, url: str, elicitation_id: str) -> bool:
    """Send the approval page to the client (URL elicitation): whether the user opened it."""
    try:
        answer = await ctx.session.elicit_url(message, url, elicitation_id, related_request_id=ctx.request_id)
    except Exception as error:  # the client could not ask: the answer says where to decide instead
        logger.info("The client did not take the approval page: %s", describe_error(error))
        return False
    return answer.action == "accept"


async def _completed(ctx: ServerRequestContext[Any], elicitation_id: str) -> None:
    try:
        await ctx.session.send_elicit_complete(elicitation_id, related_request_id=ctx.request_id)
    except Exception as error:  # the call's answer follows anyway
        logger.info("Could not tell the client the approval page is done: %s", describe_error(error))
