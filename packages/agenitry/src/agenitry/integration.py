"""Everything a framework adapter needs, public and typed: adapters import this, never ``agenitry._*``.

One gated call, for every framework::

    from agenitry.integration import GatedCall, call_key, run_gated

    request = GatedCall(
        "purchase_order",
        "total",  # the amount: this argument (or a function of the arguments, or a number)
        arguments=tool_call.args,
        tool=tool_call.name,
        key=call_key(thread_id, tool_call.id, tool_call.name, tool_call.args),
    )
    outcome = run_gated(client, request, lambda: tool.invoke(tool_call.args))
    # outcome.kind: ran | denied | pending | already_done | in_progress | failed | invalid | unavailable
    reply = outcome.result if outcome.kind == "ran" else outcome.message

The flow checks the amount (:func:`check_amount`, the gateway's own rule), authorizes
with the call's Idempotency-Key (:func:`call_key`), claims the approved authorization
so that the body runs at most once across threads and processes, then executes it (or
releases it when the body raised), and records a ``tool_call`` event. An adapter only
translates: framework call → :class:`GatedCall`, :class:`GateOutcome` → framework answer.
A pause continues with ``GatedCall(..., authorization_id=...)`` (or the same ``key``);
:func:`decide` asks without running (a framework's ``needs_approval``).
"""

from __future__ import annotations

from typing import Union

from agenitry._async_client import AsyncAgenitry
from agenitry._client import Agenitry
from agenitry._gate import GatedCall, adecide, arun_gated, call_key, decide, run_gated
from agenitry._models import Authorization, Claim, GateOutcome, OutcomeKind
from agenitry._money import AmountSpec, InvalidAmount, check_amount, resolve_amount
from agenitry._recording import record_tool_call, summarize_arguments, tool_call_context
from agenitry._texts import (
    already_done_text,
    approved_text,
    decision_text,
    denied_text,
    describe_error,
    failed_text,
    in_progress_text,
    invalid_text,
    logged_text,
    pending_text,
    policy_text,
    ran_text,
    unavailable_text,
)

#: Any Agenitry client an adapter may be given.
Client = Union[Agenitry, AsyncAgenitry]

__all__ = [
    "AmountSpec",
    "AsyncAgenitry",
    "Agenitry",
    "Authorization",
    "Claim",
    "Client",
    "GateOutcome",
    "GatedCall",
    "InvalidAmount",
    "OutcomeKind",
    "adecide",
    "already_done_text",
    "approved_text",
    "arun_gated",
    "call_key",
    "check_amount",
    "decide",
    "decision_text",
    "denied_text",
    "describe_error",
    "failed_text",
    "in_progress_text",
    "invalid_text",
    "logged_text",
    "pending_text",
    "policy_text",
    "ran_text",
    "record_tool_call",
    "resolve_amount",
    "run_gated",
    "summarize_arguments",
    "tool_call_context",
    "unavailable_text",
]
