"""The standalone verifier: one Python file, assembled from the modules that verify.

``GET /agenitry-verify.py`` serves it so that anyone can check a record or a log with
Python 3.9+ and nothing installed. It is not a copy: it is core's verifier
(:data:`BUNDLED`: canonical JSON, Ed25519, Merkle maths, signed notes, the checks), then
``agenitry verify``'s file handling and a command line, each module's source as it is,
joined in order with the imports of one another removed. A change to any of them is in
the next file served.

Joining modules into one namespace is only sound when no name means two things, so the
build refuses (:class:`BundleError`) a module that imports an ``agenitry`` name no earlier
module defines, binds a name another module binds differently, or hides bindings in
statements it cannot follow.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
from collections.abc import Sequence

from agenitry import __version__

#: The modules in the file, each after every module it imports from.
BUNDLED = (
    "agenitry._canonical",
    "agenitry._ed25519",
    "agenitry._merkle",
    "agenitry._tlog",
    "agenitry._verify",
    "agenitry.gateway.cli_verify",
    "agenitry.gateway.verify_script",
)

_HEADER = '''#!/usr/bin/env python3
"""agenitry-verify.py: check Agenitry audit records offline, with Python 3.9+ and nothing else.

    python3 agenitry-verify.py EVENT.tlog-proof --key PUBLIC_KEY
    python3 agenitry-verify.py https://GATEWAY/verify/VENUE/EVENT --key PUBLIC_KEY
    python3 agenitry-verify.py EXPORT.jsonl --key PUBLIC_KEY

The same checks, output and exit codes as `agenitry verify` (0 verified, 1 not verified,
2 could not check). This file is the verifier of agenitry {version}: the modules {modules}
and {last}, joined in this order with their imports of one another removed. Read it
before you run it.
"""

from __future__ import annotations
'''

_FOOTER = """

if __name__ == "__main__":
    raise SystemExit(main())
"""

#: Top-level statements whose bindings the build follows; anything else is refused.
_PLAIN = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign, ast.Expr)


class BundleError(RuntimeError):
    """The modules cannot be joined into one file without changing what a name means."""


@functools.cache
def standalone_verifier() -> str:
    """The text of ``agenitry-verify.py`` (built once per process)."""
    return build(BUNDLED)


def build(modules: Sequence[str]) -> str:
    """Join ``modules`` into one runnable file whose last module defines ``main()``."""
    bindings: dict[str, tuple[str, str]] = {}
    sections = [_section(name, inspect.getsource(importlib.import_module(name)), bindings) for name in modules]
    if bindings.get("main", ("", ""))[0] != modules[-1]:
        raise BundleError(f"the last module, {modules[-1]}, must define main()")
    header = _HEADER.format(version=__version__, modules=", ".join(modules[:-1]), last=modules[-1])
    return header + "".join(sections) + _FOOTER


def _section(module: str, source: str, bindings: dict[str, tuple[str, str]]) -> str:
    """``source`` without its imports of ``agenitry``; records what its top-level names bind."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    nested = [node for node in imports if _is_ours(node) and node not in tree.body]
    if nested:
        raise BundleError(f"{module} imports agenitry inside a block (line {nested[0].lineno})")
    for node in reversed(tree.body):
        if isinstance(node, ast.Import) and _is_ours(node):
            raise BundleError(f"{module} line {node.lineno}: only 'from agenitry... import name' can be joined")
        if isinstance(node, ast.ImportFrom) and (_is_ours(node) or node.module == "__future__"):
            lines[node.lineno - 1 : node.end_lineno] = _aliases(module, node, bindings)
    for node in tree.body:
        for name, meaning in _binds(module, node, bindings):
            if bindings.setdefault(name, meaning) != meaning:
                raise BundleError(f"{name!r} of {module} is also {bindings[name]} in the same file")
    return f"\n\n# ---- {module} " + "-" * max(0, 70 - len(module)) + "\n\n" + "".join(lines).strip() + "\n"


def _is_ours(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "agenitry"
    return isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "agenitry" for alias in node.names)


def _aliases(module: str, node: ast.ImportFrom, bindings: dict[str, tuple[str, str]]) -> list[str]:
    """The lines that replace an import of ours: ``alias = name`` where it renames."""
    if node.module == "__future__":
        return []
    missing = [alias.name for alias in node.names if alias.name not in bindings]
    if missing:
        raise BundleError(f"{module} imports {', '.join(missing)} from {node.module}, which no earlier module defines")
    return [f"{alias} = {name}\n" for alias, name in _renames(node)]


def _renames(node: ast.ImportFrom) -> list[tuple[str, str]]:
    """(alias, name) of each name the import binds under another name."""
    return [(alias.asname, alias.name) for alias in node.names if alias.asname and alias.asname != alias.name]


def _binds(module: str, node: ast.stmt, bindings: dict[str, tuple[str, str]]) -> list[tuple[str, tuple[str, str]]]:
    """Each top-level name ``node`` binds, with what it means: (defining module, name)."""
    if isinstance(node, ast.ImportFrom):
        if _is_ours(node):
            return [(alias, bindings[name]) for alias, name in _renames(node)]
        return [(alias.asname or alias.name, (node.module or "", alias.name)) for alias in node.names]
    if isinstance(node, ast.Import):
        # "import urllib.parse" binds the package urllib; "import x.y as z" binds x.y.
        return [
            (alias.asname, (alias.name, ""))
            if alias.asname
            else (alias.name.split(".")[0], (alias.name.split(".")[0], ""))
            for alias in node.names
        ]
    if not isinstance(node, _PLAIN):
        raise BundleError(f"{module} line {node.lineno}: a top-level {type(node).__name__} cannot be joined safely")
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [(node.name, (module, node.name))]
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    names = [name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)]
    return [(name, (module, name)) for name in names]
