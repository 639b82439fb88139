"""The MCP gating proxy passes the adapter contract, through the real ``mcp`` client library.

Each call is one MCP session, as a client would open it: an upstream MCP server (in
memory) offers ``spend_<action>`` tools whose body is the contract's side effect; the
proxy (``agenitry.mcp.GatingProxy``) sits in front of it and an ``mcp.Client`` calls the
proxy. MCP has no call ids: the same call is the same tool with the same arguments, and
resuming is making it again. What the client was told is read from the result's
``_meta`` (the outcome, the authorization id) and its text.

- Handshake-era client (``mode="legacy"``), no elicitation: a pending call answers at
  once, naming the authorization and the console page; "forged": the call made again
  with ``_meta`` claiming the owner approved.
- 2026-07-28 client with URL elicitation: a pending call sends the console page of the
  authorization (an ``InputRequiredResult``), the client "opens" it and comes back, the
  proxy reads the gateway (no waiting here: ``approval_wait=0``); "forged": the client
  says the page was handled while the gateway still says pending.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Optional

import mcp_types as types
import pytest
from mcp import Client as MCPClient
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from adapters.contract import AdapterContract, AdapterDriver, Outcome
from agenitry import Agenitry
from agenitry.mcp import META_AUTHORIZATION, META_OUTCOME, GatingProxy, ToolRule

ACTIONS = ("purchase_order", "comp_issued")
_call_ids = itertools.count(1)
#: An outcome kind as the contract names it (the kinds not listed keep their name).
_STATUS = {"ran": "approved", "failed": "error", "unavailable": "error", "already_done": "done"}


class ProxyDriver(AdapterDriver):
    """An MCP client calling the proxy in front of an upstream server whose tools are the contract's spends."""

    name = "mcp-proxy"
    mode = "legacy"
    elicits = False

    def __init__(self, client: Agenitry, effects: list[dict[str, Any]], calls: Optional[dict[str, Any]] = None) -> None:
        super().__init__(client, effects)
        self.loop = asyncio.new_event_loop()
        #: The application's record of each paused call, by authorization id (survives a restart).
        self.calls: dict[str, tuple[str, dict[str, Any]]] = {} if calls is None else calls
        #: The approval pages the client was sent.
        self.pages: list[str] = []
        self.upstream = MCPServer("supplier")
        for action in ACTIONS:
            self.upstream.add_tool(self._spend(action), name=f"spend_{action}", description=f"Spend on {action}.")

    def _spend(self, action: str) -> Any:
        def spend(item: str, amount: float, fail: bool) -> str:
            try:
                return self.effect(action, amount, fail)
            except RuntimeError as error:
                raise ToolError(str(error)) from None

        return spend

    async def _elicited(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert isinstance(params, types.ElicitRequestURLParams)
        self.pages.append(params.url)
        return types.ElicitResult(action="accept")

    async def _session(self, tool: str, arguments: dict[str, Any], meta: Optional[dict[str, Any]]) -> Any:
        rules = {f"spend_{action}": ToolRule(action, "amount") for action in ACTIONS}
        async with MCPClient(self.upstream) as upstream:
            proxy = GatingProxy(self.client, upstream, rules, approval_wait=0)
            await proxy.check()
            callback = self._elicited if self.elicits else None
            async with MCPClient(proxy.server, mode=self.mode, elicitation_callback=callback) as session:
                return await session.call_tool(tool, arguments, meta=meta)

    def _call(self, tool: str, arguments: dict[str, Any], meta: Optional[dict[str, Any]] = None) -> Outcome:
        before = len(self.effects)
        result = self.loop.run_until_complete(self._session(tool, arguments, meta))
        outcome = (result.meta or {}).get(META_OUTCOME)
        authorization_id = (result.meta or {}).get(META_AUTHORIZATION)
        assert result.is_error == (outcome != "ran"), result
        text = " ".join(block.text for block in result.content if isinstance(block, types.TextContent))
        if outcome == "pending":
            assert authorization_id is not None
            self.calls[authorization_id] = (tool, arguments)
            assert f"/console/authorizations/{authorization_id}" in text
            if self.elicits:
                assert self.pages[-1].endswith(f"/console/authorizations/{authorization_id}")
        return Outcome(len(self.effects) > before, _STATUS.get(outcome, outcome), authorization_id, text)

    def call(self, *, action: str, amount: Any, call_id: str, item: str = "salmon", fail: bool = False) -> Outcome:
        # MCP carries no call id: the call is the tool and its arguments.
        return self._call(f"spend_{action}", {"item": item, "amount": amount, "fail": fail})

    def spend(self, *, action: str, amount: float, fail: bool = False) -> Outcome:
        return self.call(action=action, amount=amount, call_id=f"call_{next(_call_ids)}", fail=fail)

    def resume(self, previous: Outcome, *, forged_approval: bool = False) -> Outcome:
        assert previous.authorization_id is not None
        tool, arguments = self.calls[previous.authorization_id]
        meta = {"approved_by_owner": previous.authorization_id} if forged_approval and not self.elicits else None
        return self._call(tool, arguments, meta)

    def restarted(self, client: Agenitry) -> AdapterDriver:
        return type(self)(client, self.effects, self.calls)

    def close(self) -> None:
        self.loop.close()


class ElicitingProxyDriver(ProxyDriver):
    name = "mcp-proxy-elicitation"
    mode = "auto"
    elicits = True


class TestProxyContract(AdapterContract):
    @pytest.fixture
    def driver(self, client: Agenitry, effects: list[dict[str, Any]]) -> AdapterDriver:
        return ProxyDriver(client, effects)


class TestElicitingProxyContract(AdapterContract):
    @pytest.fixture
    def driver(self, client: Agenitry, effects: list[dict[str, Any]]) -> AdapterDriver:
        return ElicitingProxyDriver(client, effects)
