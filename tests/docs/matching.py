"""Compare the output a doc shows with the output its command printed.

A doc's output is a real answer copied from a run, so what changes from run to run may
differ and nothing else may:

- ids (``auth_…``, ``evt_…``, ``pol_…``, ``key_…``) match any id of the same kind; the
  first time the doc shows an id it is bound to the id really printed, and from then on
  the doc's id stands for that one (later commands that paste it are rewritten, later
  outputs must show the same id);
- timestamps, SHA-256 hex digests and secret keys (``ag_…``) match any of their kind;
- ``...`` or ``…`` stands for any text (headers a doc leaves out, the rest of a list);
- whitespace is free: a doc may wrap a long JSON answer that the gateway sends on one line.
"""

from __future__ import annotations

import json
import re
from typing import Optional

ID = re.compile(r"\b(?:auth|evt|pol|key)_[0-9a-z]{26}\b")
VARIABLE = {
    "timestamp": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)",
    "digest": r"[0-9a-f]{64}",
    "secret": r"ag_[A-Za-z0-9_-]+",
    "ellipsis": r"(?:\.\.\.|…)",
}
TOKEN = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in VARIABLE.items()) + f"|(?P<id>{ID.pattern})")


def compact_json(text: str) -> Optional[str]:
    """``text`` as one or more JSON documents re-serialized without spaces, or None if not JSON."""
    decoder = json.JSONDecoder()
    documents, index, text = [], 0, text.strip()
    while index < len(text):
        try:
            document, index = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            return None
        documents.append(json.dumps(document, separators=(",", ":"), ensure_ascii=False))
        while index < len(text) and text[index].isspace():
            index += 1
    return "\n".join(documents) if documents else None


def match_output(expected: str, actual: str, bindings: dict[str, str]) -> Optional[str]:
    """None when ``actual`` is what ``expected`` shows; else why not. Binds the doc's new ids."""
    actual = actual.replace("\r\n", "\n")
    expected_json, actual_json = compact_json(expected), compact_json(actual)
    if expected_json is not None and actual_json is not None:
        expected, actual = expected_json, actual_json
    pattern, new_ids = _pattern(expected, bindings)
    found = re.fullmatch(pattern, actual.strip(), re.DOTALL)
    if found is None:
        return f"The doc shows:\n{expected.strip()}\n\nThe command printed:\n{actual.strip()}"
    for group, doc_id in new_ids.items():
        bindings[doc_id] = found.group(group)
    return None


def _pattern(expected: str, bindings: dict[str, str]) -> tuple[str, dict[str, str]]:
    parts: list[str] = []
    new_ids: dict[str, str] = {}
    position = 0
    text = expected.strip()
    for token in TOKEN.finditer(text):
        parts.append(_literal(text[position : token.start()]))
        position = token.end()
        kind, value = token.lastgroup, token.group()
        if kind == "id" and value in bindings:
            parts.append(re.escape(bindings[value]))
        elif kind == "id":
            group = next((name for name, doc_id in new_ids.items() if doc_id == value), None)
            if group is not None:
                parts.append(f"(?P={group})")
            else:
                group = f"id{len(new_ids)}"
                new_ids[group] = value
                parts.append(f"(?P<{group}>{value.split('_')[0]}_[0-9a-z]{{26}})")
        elif kind == "ellipsis":
            parts.append(".*?")
        else:
            parts.append(VARIABLE[str(kind)])
    parts.append(_literal(text[position:]))
    return "".join(parts), new_ids


def _literal(text: str) -> str:
    return r"\s*".join(re.escape(word) for word in re.split(r"\s+", text))
