"""Human approval for LangGraph: pause the graph while an authorization is pending.

The graph goes on only when the gateway says so. A resume value, whatever it claims, is
only a signal to look again: the authorization is read from the gateway after every
resume, and a still-pending one pauses the graph again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

from agenitry import SPENT_STATUSES, AsyncAgenitry, ConflictError, SpendDenied, integration
from agenitry.langchain import INTERRUPT_TYPE
from langgraph.types import interrupt

Authorization = Union[str, Mapping[str, Any]]
#: ``execute(state, auth)``: the side effect, run only under an approved authorization.
Execute = Callable[[Any, Any], Any]


def _ident(authorization: Authorization) -> str:
    if isinstance(authorization, str):
        return authorization
    ident = authorization.get("authorization_id") or authorization.get("id")
    if not ident:
        raise ValueError("the authorization has no authorization_id")
    return str(ident)


def _payload(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": INTERRUPT_TYPE,
        "authorization_id": record.get("authorization_id") or record.get("id"),
        "status": record.get("status"),
        "action": record.get("action"),
        "amount": record.get("amount"),
        "currency": record.get("currency"),
        "expires_at": record.get("expires_at"),
        "message": integration.pending_text(integration.Authorization.from_answer(record)),
    }


def wait_for_approval(client: Any, authorization: Authorization) -> dict[str, Any]:
    """Inside a node: the authorization's record once it is no longer pending.

    While the gateway says pending, the graph pauses (``interrupt()`` with the
    authorization); resume it with any ``Command(resume=...)`` after the owner decides.
    The answer's ``status`` is approved (go on and execute), or denied or expired (tell
    the model). Needs a checkpointer, like every interrupt. ``client``: a sync ``Agenitry``.
    """
    ident = _ident(authorization)
    while True:
        record: dict[str, Any] = client.get_authorization(ident)
        if record.get("status") != "pending":
            return record
        interrupt(_payload(record))  # what a resume passes back is ignored on purpose


async def await_approval(client: Any, authorization: Authorization) -> dict[str, Any]:
    """:func:`wait_for_approval` for async nodes; ``client`` is an ``AsyncAgenitry`` or an ``Agenitry``."""
    ident = _ident(authorization)
    while True:
        if isinstance(client, AsyncAgenitry):
            record: dict[str, Any] = await client.get_authorization(ident)
        else:
            record = await asyncio.to_thread(client.get_authorization, ident)
        if record.get("status") != "pending":
            return record
        interrupt(_payload(record))


def _message(record: Mapping[str, Any]) -> str:
    authorization = integration.Authorization.from_answer(record)
    if authorization.status in SPENT_STATUSES:
        return integration.already_done_text(authorization)
    if authorization.status == "approved":  # claimed: another run is carrying it out
        return integration.in_progress_text(authorization)
    return integration.denied_text(authorization)


#: What the gateway answers a claim that another run already holds or has used.
_TAKEN = ("already_claimed", "already_executed")


def approval_node(
    client: Any,
    *,
    key: str = "authorization",
    execute: Optional[Execute] = None,
    settle: bool = False,
) -> Callable[[Any], Any]:
    """A node that waits for the owner on ``state[key]`` (an authorization record or id).

    Pending → the graph pauses. Approved → ``execute(state, auth)`` runs (if given) and the
    authorization is executed (and settled with ``settle=True``), or reversed if it raises;
    the node writes ``{key: record, key + "_result": what execute returned}``. Denied or
    expired → ``{key: record}`` with ``record["message"]`` saying why, for the model. A
    re-run never executes twice: an authorization already executed is left alone. The node
    is async when ``client`` is an ``AsyncAgenitry``.
    """

    def finish(record: dict[str, Any], result: Any = None, ran: bool = False, taken: bool = False) -> dict[str, Any]:
        """``taken``: another run (a second resume of the same pause) holds or used the claim."""
        update: dict[str, Any] = {key: record}
        if ran:
            update[f"{key}_result"] = result
        elif taken or record.get("status") != "approved":
            record["message"] = _message(record)
        return update

    def node(state: Any) -> dict[str, Any]:
        authorization = state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)
        if not authorization:
            return {}
        record = wait_for_approval(client, authorization)
        if record.get("status") != "approved" or execute is None:
            return finish(record)
        ident = _ident(record)
        try:
            with client.spend(record["action"], record["amount"], authorization_id=ident, settle=settle) as auth:
                result = execute(state, auth)
        except SpendDenied as denied:  # expired between the read and the spend
            return finish(dict(denied.authorization))
        except ConflictError as conflict:
            if conflict.error_code not in _TAKEN:
                raise
            return finish(client.get_authorization(ident), taken=True)
        return finish(client.get_authorization(ident), result, ran=True)

    async def anode(state: Any) -> dict[str, Any]:
        authorization = state.get(key) if isinstance(state, Mapping) else getattr(state, key, None)
        if not authorization:
            return {}
        record = await await_approval(client, authorization)
        if record.get("status") != "approved" or execute is None:
            return finish(record)
        ident = _ident(record)
        try:
            async with client.spend(record["action"], record["amount"], authorization_id=ident, settle=settle) as auth:
                result = execute(state, auth)
                if asyncio.iscoroutine(result):
                    result = await result
        except SpendDenied as denied:
            return finish(dict(denied.authorization))
        except ConflictError as conflict:
            if conflict.error_code not in _TAKEN:
                raise
            return finish(await client.get_authorization(ident), taken=True)
        return finish(await client.get_authorization(ident), result, ran=True)

    return anode if isinstance(client, AsyncAgenitry) else node
