"""Every page of the docs runs as written: its Python, shell and console blocks, in order.

One test per page (README.md and docs/**/*.md), each on a world of its own (world.py);
blocks.py says which blocks run and how a page steers its world. A page that drifts from
the code fails here, at the line of the block that no longer runs or prints otherwise.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from unittest import SkipTest

import pytest
from sybil import Sybil
from sybil.parsers.markdown import SkipParser

from agenitry import Agenitry
from docs.blocks import Block, BlockParser, DirectiveParser
from docs.world import REPOSITORY, Page

PAGES = [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").rglob("*.md"))]


def run_page(path: Path, root: Path) -> int:
    """Run the page's blocks in order on a fresh world under ``root``; how many blocks ran."""
    page = Page(root)
    document = Sybil([DirectiveParser(page), BlockParser(page), SkipParser()]).parse(path)
    ran = 0
    try:
        for example in document.examples():
            try:
                example.evaluate()
            except SkipTest:
                continue
            except Exception as error:
                error.add_note(f"in the block at {path.name}, line {example.line}")
                raise
            ran += isinstance(example.parsed, Block)
    finally:
        close_clients(document.namespace)
        page.close()
    return ran


def close_clients(namespace: dict[str, object]) -> None:
    """Close the sync clients a page left open, while their gateway still runs (async ones close in their loop)."""
    for value in namespace.values():
        if isinstance(value, Agenitry) and not inspect.isclass(value):
            value.close(timeout=5)


# LlamaIndex's workflows read pydantic's deprecated ``__fields__`` while building an agent.
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecationWarning")
@pytest.mark.parametrize("path", PAGES, ids=[str(path.relative_to(REPOSITORY)) for path in PAGES])
def test_the_page_runs_as_written(path: Path, tmp_path: Path) -> None:
    run_page(path, tmp_path)
