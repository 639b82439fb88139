"""Strict function schemas: from a Python function's type hints or a pydantic model.

OpenAI's strict mode (``"strict": true``) accepts a subset of JSON Schema: every object
lists all its properties in ``required`` and says ``additionalProperties: false``; an
optional value is a nullable one (``"type": ["string", "null"]``); free-form objects
(``dict[str, Any]``) are refused. :func:`strict_schema` rewrites pydantic's schema into
that subset (or raises :class:`StrictSchemaError` for what cannot be expressed), and
:func:`strict_problems` checks any schema against the rules.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Callable, Optional, Union

import pydantic

#: Keywords strict mode accepts; anything else pydantic emits (title, default, minLength...) is dropped.
ALLOWED_KEYWORDS = frozenset(
    {
        "type",
        "description",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
    }
)
STRING_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
MAX_DEPTH = 10
MAX_PROPERTIES = 5000

#: Parameters a tool function may take that are not the model's to fill.
SKIPPED_PARAMETERS = ("self", "cls")

Target = Union[Callable[..., Any], type[pydantic.BaseModel]]


class StrictSchemaError(TypeError):
    """The function or model has a type strict mode cannot express (a free-form dict, a recursive model)."""


def is_model(target: Any) -> bool:
    return isinstance(target, type) and issubclass(target, pydantic.BaseModel)


def arguments_model(target: Target, name: Optional[str] = None) -> type[pydantic.BaseModel]:
    """The pydantic model of a tool's arguments: the model itself, or one built from the signature.

    Unknown arguments are refused, so a model's misspelt field is an error it can correct.
    """
    if isinstance(target, type) and issubclass(target, pydantic.BaseModel):
        return target
    fn: Callable[..., Any] = target
    hints = _type_hints(fn)
    documented = argument_docs(fn)
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.name in SKIPPED_PARAMETERS or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = hints.get(parameter.name, Any)
        default = ... if parameter.default is parameter.empty else parameter.default
        text = documented.get(parameter.name)
        fields[parameter.name] = (annotation, pydantic.Field(default, description=text) if text else default)
    model_name = "".join(part.title() for part in (name or fn.__name__).split("_")) + "Arguments"
    config = pydantic.ConfigDict(extra="forbid")
    return pydantic.create_model(model_name, __config__=config, **fields)


def argument_docs(fn: Callable[..., Any]) -> dict[str, str]:
    """Descriptions of arguments from a Google-style ``Args:`` section of the docstring."""
    docs: dict[str, str] = {}
    lines = (inspect.getdoc(fn) or "").splitlines()
    inside = False
    current: Optional[str] = None
    for line in lines:
        stripped = line.strip()
        if stripped in ("Args:", "Arguments:", "Parameters:"):
            inside = True
            continue
        if not inside:
            continue
        if not stripped or (not line.startswith(" ") and stripped.endswith(":")):
            break
        name, sep, text = stripped.partition(":")
        name = name.split(" ")[0].strip("*")
        if sep and name.isidentifier() and line.startswith(("    ", "\t")) and not line.startswith("        "):
            current = name
            docs[name] = text.strip()
        elif current is not None:
            docs[current] = f"{docs[current]} {stripped}".strip()
    return docs


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(fn)
    except Exception:  # an unresolvable forward reference: fall back to the raw annotations
        return dict(getattr(fn, "__annotations__", {}))


def describe(target: Target) -> str:
    doc = inspect.getdoc(target) or ""
    if is_model(target) and doc.startswith("Usage docs:"):
        doc = ""
    # The first paragraph: the rest of a docstring is for people (Args:, examples).
    return doc.split("\n\n")[0].strip()


def strict_schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """A model's JSON schema rewritten for strict mode (references inlined)."""
    raw = model.model_json_schema()
    definitions = raw.pop("$defs", {})
    schema = _strict(raw, definitions, depth=0, seen=())
    if schema.get("type") != "object":
        raise StrictSchemaError("the parameters of a function must be an object")
    return schema


def _strict(node: dict[str, Any], definitions: dict[str, Any], *, depth: int, seen: tuple[str, ...]) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise StrictSchemaError(f"nested more than {MAX_DEPTH} levels deep")
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is not None:
        key = ref.rsplit("/", 1)[-1]
        if key in seen:
            raise StrictSchemaError(f"recursive model {key!r} is not supported")
        merged = {**copy.deepcopy(definitions[key]), **node}
        return _strict(merged, definitions, depth=depth, seen=(*seen, key))
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = {**node.pop("allOf")[0], **node}
        return _strict(merged, definitions, depth=depth, seen=seen)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in ALLOWED_KEYWORDS:
            continue
        if key == "format" and value not in STRING_FORMATS:
            continue
        out[key] = value
    is_object = out.get("type") == "object" or "properties" in out
    if is_object:
        properties = out.get("properties", {})
        extra = node.get("additionalProperties")
        if not properties and extra not in (None, False):
            raise StrictSchemaError("free-form objects (dict fields) are not allowed in strict mode")
        if extra not in (None, False):
            raise StrictSchemaError("objects with extra keys (dict fields) are not allowed in strict mode")
        if not properties and "properties" not in node:
            raise StrictSchemaError("free-form objects (dict fields) are not allowed in strict mode")
        out["type"] = "object"
        out["properties"] = {
            name: _strict(value, definitions, depth=depth + 1, seen=seen) for name, value in properties.items()
        }
        out["required"] = list(out["properties"])
        out["additionalProperties"] = False
    if "items" in out:
        if not isinstance(out["items"], dict):
            raise StrictSchemaError("tuple types are not supported in strict mode")
        out["items"] = _strict(out["items"], definitions, depth=depth + 1, seen=seen)
    if "anyOf" in out:
        variants = [_strict(v, definitions, depth=depth + 1, seen=seen) for v in out["anyOf"]]
        out.pop("anyOf")
        out.update(_union(variants))
    if out.get("type") is None and "enum" not in out and "const" not in out and "anyOf" not in out:
        raise StrictSchemaError(f"a value of any type is not allowed in strict mode: {node!r}")
    return out


def _union(variants: list[dict[str, Any]]) -> dict[str, Any]:
    """``anyOf`` of plain types becomes one type list (``["string", "null"]``); others stay ``anyOf``."""
    nulls = [v for v in variants if v == {"type": "null"}]
    others = [v for v in variants if v != {"type": "null"}]
    if len(others) == 1 and nulls:
        only = dict(others[0])
        kind = only.get("type")
        if isinstance(kind, str):
            only["type"] = [kind, "null"]
            if "enum" in only:
                only["enum"] = [*only["enum"], None]
            return only
        if "enum" in only and kind is None:
            return {**only, "enum": [*only["enum"], None]}
    return {"anyOf": variants}


def strict_problems(schema: dict[str, Any]) -> list[str]:
    """Every way ``schema`` breaks the strict-mode rules (an empty list: it keeps them)."""
    problems: list[str] = []
    counted = [0]

    def walk(node: Any, path: str, depth: int) -> None:
        if not isinstance(node, dict):
            problems.append(f"{path}: not a schema object")
            return
        if depth > MAX_DEPTH:
            problems.append(f"{path}: nested deeper than {MAX_DEPTH}")
        for key in node:
            if key not in ALLOWED_KEYWORDS:
                problems.append(f"{path}: keyword {key!r} is not supported in strict mode")
        if "format" in node and node["format"] not in STRING_FORMATS:
            problems.append(f"{path}: format {node['format']!r} is not supported")
        kinds = node.get("type")
        kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
        if "anyOf" in node:
            for index, variant in enumerate(node["anyOf"]):
                walk(variant, f"{path}.anyOf[{index}]", depth + 1)
        elif not kinds and "enum" not in node and "const" not in node:
            problems.append(f"{path}: no type (a value of any type)")
        if "object" in kinds or "properties" in node:
            properties = node.get("properties")
            if not isinstance(properties, dict):
                problems.append(f"{path}: an object without properties (free-form)")
                properties = {}
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: additionalProperties must be false")
            if sorted(node.get("required", [])) != sorted(properties) or len(node.get("required", [])) != len(
                properties
            ):
                problems.append(f"{path}: every property must be required")
            counted[0] += len(properties)
            for name, value in properties.items():
                walk(value, f"{path}.{name}", depth + 1)
        if "array" in kinds:
            if not isinstance(node.get("items"), dict):
                problems.append(f"{path}: an array needs one items schema")
            else:
                walk(node["items"], f"{path}[]", depth + 1)

    if schema.get("type") != "object":
        problems.append("$: the parameters must be an object")
    walk(schema, "$", 0)
    if counted[0] > MAX_PROPERTIES:
        problems.append(f"$: more than {MAX_PROPERTIES} properties")
    return problems


def parameters(target: Target, name: Optional[str] = None) -> dict[str, Any]:
    """The strict ``parameters`` schema of a function or a pydantic model."""
    return strict_schema(arguments_model(target, name))


def tool_name(target: Target, name: Optional[str] = None) -> str:
    return name or str(getattr(target, "__name__", "tool"))


def chat_tool(target: Target, *, name: Optional[str] = None, description: Optional[str] = None) -> dict[str, Any]:
    """A Chat Completions tool: ``{"type": "function", "function": {..., "strict": true}}``.

    >>> def lookup_menu(dish: str) -> str: ...
    >>> chat_tool(lookup_menu)["function"]["parameters"]["required"]
    ['dish']
    """
    function: dict[str, Any] = {"name": tool_name(target, name)}
    text = describe(target) if description is None else description
    if text:
        function["description"] = text
    function["parameters"] = parameters(target, name)
    function["strict"] = True
    return {"type": "function", "function": function}


def responses_tool(target: Target, *, name: Optional[str] = None, description: Optional[str] = None) -> dict[str, Any]:
    """A Responses API tool: ``{"type": "function", "name": ..., "parameters": ..., "strict": true}``."""
    return {"type": "function", **chat_tool(target, name=name, description=description)["function"]}
