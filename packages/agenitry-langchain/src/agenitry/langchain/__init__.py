"""Agenitry for LangChain: spend authority and an audit trail for LangChain agents.

- ``create_authorize_tool``, ``create_log_event_tool``, ``create_set_policy_tool``: the seed's tools.
- ``gate_tool(tool, action=..., amount=...)``: a tool that runs only once the spend is authorized.
- ``AgenitryCallbackHandler``: every tool call in the audit trail (interrupts as pauses).
- ``AgenitryMiddleware``: for ``langchain.agents.create_agent``; logs every call and gates
  spending tools, pausing the agent (``interrupt()``) while the owner decides.
"""

from agenitry.langchain._callbacks import AgenitryCallbackHandler
from agenitry.langchain._gate import INTERRUPT_TYPE, Gate, ToolCallGate
from agenitry.langchain._middleware import AgenitryMiddleware
from agenitry.langchain._tools import (
    create_authorize_tool,
    create_log_event_tool,
    create_set_policy_tool,
    gate_tool,
)

__all__ = [
    "INTERRUPT_TYPE",
    "AgenitryCallbackHandler",
    "AgenitryMiddleware",
    "Gate",
    "ToolCallGate",
    "create_authorize_tool",
    "create_log_event_tool",
    "create_set_policy_tool",
    "gate_tool",
]
