"""No distribution but core imports core's private modules (``agenitry._*``).

What the gateway and the adapters use of core is public: named in ``agenitry.__all__`` or
in a public module such as ``agenitry.transparency``. A private module may then change
without breaking another distribution released on its own schedule. The check reads the
source (ast), so it sees every import, including ones inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parents[1] / "packages"
CORE = "agenitry"
DISTRIBUTIONS = sorted(
    path.name for path in PACKAGES.iterdir() if (path / "pyproject.toml").exists() and path.name != CORE
)


def _is_private_core(module: str) -> bool:
    """``agenitry._x`` or below it; dunders such as ``agenitry.__version__`` are public."""
    parts = module.split(".")
    return len(parts) > 1 and parts[0] == CORE and parts[1].startswith("_") and not parts[1].endswith("__")


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from`` import names, with relative imports resolved from ``package``."""
    if node.level == 0:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def private_imports(source: str, package: str) -> list[tuple[int, str]]:
    """(line, imported name) of every import of a private core module in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if _is_private_core(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            if _is_private_core(module):
                found.append((node.lineno, module))
            else:
                names = (f"{module}.{alias.name}" for alias in node.names)
                found += [(node.lineno, name) for name in names if _is_private_core(name)]
    return found


def violations(distribution: str) -> list[str]:
    src = PACKAGES / distribution / "src"
    found = []
    for path in sorted(src.rglob("*.py")):
        package = ".".join(path.relative_to(src).parent.parts)
        for line, name in private_imports(path.read_text(encoding="utf-8"), package):
            found.append(f"{path.relative_to(PACKAGES.parent)}:{line}: imports {name}")
    return found


def test_every_distribution_is_checked() -> None:
    assert "agenitry-gateway" in DISTRIBUTIONS and CORE not in DISTRIBUTIONS


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_only_the_public_api_of_core_is_imported(distribution: str) -> None:
    found = violations(distribution)
    assert not found, "private core modules imported (use agenitry's public API):\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "private"),
    [
        ("import agenitry._base", ["agenitry._base"]),
        ("import agenitry._base as base", ["agenitry._base"]),
        ("from agenitry._gating import Spend", ["agenitry._gating"]),
        ("from agenitry._merkle.deep import x", ["agenitry._merkle.deep"]),
        ("from agenitry import _tlog, Agenitry", ["agenitry._tlog"]),
        ("from .. import _verify", ["agenitry._verify"]),
        ("from .._types import DIRECTIONS", ["agenitry._types"]),
        ("def f():\n    from agenitry._tlog import b64encode", ["agenitry._tlog"]),
        ("from agenitry import Agenitry, __version__", []),
        ("from agenitry.transparency import CompactTree", []),
        ("from agenitry.gateway._clock import iso", []),
        ("from . import _gate", []),
        ("import agenitry", []),
    ],
)
def test_the_check_sees_every_form_of_import(source: str, private: list[str]) -> None:
    assert [name for _, name in private_imports(source, "agenitry.langchain")] == private
