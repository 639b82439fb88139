"""Agenitry for the OpenAI SDKs: strict tool schemas, and a runner that gates and logs tool calls.

>>> from agenitry.openai import ToolRunner, tool_schemas  # doctest: +SKIP

The openai-agents bridge is :mod:`agenitry.openai.agents` (it needs the ``agents`` extra: ``openai-agents``).
"""

from ._runner import ToolCall, ToolResult, ToolRunner, tool_calls
from ._schema import (
    StrictSchemaError,
    arguments_model,
    chat_tool,
    responses_tool,
    strict_problems,
    strict_schema,
)
from ._tools import chat_completions_schemas, responses_schemas, tool_schemas

__all__ = [
    "StrictSchemaError",
    "ToolCall",
    "ToolResult",
    "ToolRunner",
    "arguments_model",
    "chat_completions_schemas",
    "chat_tool",
    "responses_schemas",
    "responses_tool",
    "strict_problems",
    "strict_schema",
    "tool_calls",
    "tool_schemas",
]
