"""Agenitry for LangGraph: spending tools that wait for the owner, with the graph paused meanwhile.

- ``GatedToolNode``: a ToolNode that logs every call and gates spending tools.
- ``wait_for_approval`` / ``await_approval``: inside a node, pause while an authorization is pending.
- ``approval_node``: a node that waits for the owner, then executes (or reports the denial).

Approval state always comes from the gateway; a resume value is never taken as approval.
"""

from agenitry.langchain._gate import INTERRUPT_TYPE, Gate
from agenitry.langgraph._approval import approval_node, await_approval, wait_for_approval
from agenitry.langgraph._tool_node import GatedToolNode

__all__ = ["INTERRUPT_TYPE", "Gate", "GatedToolNode", "approval_node", "await_approval", "wait_for_approval"]
