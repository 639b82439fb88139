"""Agenitry for LlamaIndex: tools, spend gating, human approval in workflow agents, tool-call logging.

>>> from agenitry.llama_index import create_authorize_tool, gate_tool, instrument  # doctest: +SKIP
"""

from ._gate import ApprovalRequestEvent, Decision, GatedOutput, GatedTool, SpendRefused, gate_tool, pending_approvals
from ._instrumentation import AgenitrySpanHandler, instrument, uninstrument
from ._tools import create_authorize_tool, create_log_event_tool, create_set_policy_tool

__all__ = [
    "AgenitrySpanHandler",
    "ApprovalRequestEvent",
    "Decision",
    "GatedOutput",
    "GatedTool",
    "SpendRefused",
    "create_authorize_tool",
    "create_log_event_tool",
    "create_set_policy_tool",
    "gate_tool",
    "instrument",
    "pending_approvals",
    "uninstrument",
]
