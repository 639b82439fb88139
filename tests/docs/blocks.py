"""The blocks of a doc page that run, found and run with Sybil.

- A fenced block tagged ``python``, ``sh``/``bash`` or ``console`` runs, in page order, in
  the page's world (world.py). Untagged and ``json`` blocks are output, drawings or
  formats, never run.
- An output block (untagged, ``json``, ``text`` or ``output``) right after a block that
  runs is what that block prints on stdout (notes on stderr are not the answer): it is
  checked with matching.py. In a ``console`` block, each ``$ `` line is a command and the
  lines after it are its stdout.
- HTML comments steer a page without showing anything to its reader:

  ``<!-- doc: gateway -->``     start what the quickstart leaves (world.Page.start_gateway)
  ``<!-- doc: background -->``  the next shell block serves until Ctrl-C: start it, wait for the gateway
  ``<!-- doc: interrupt -->``   press Ctrl-C in the blocks serving in the background
  ``<!-- doc: python sdk/bin/python -->``  the next Python block runs with that interpreter
  ``<!-- invisible-code-block: python ... -->``  setup a reader need not see (a scripted model, say)
  ``<!-- skip: next "why" -->``  Sybil's own skip, for a block that cannot run here (keep them rare)
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from contextlib import redirect_stdout
from dataclasses import dataclass
from typing import Any, Callable, Optional

from sybil import Document, Example, Region
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer, FencedCodeBlockLexer

from docs.matching import match_output
from docs.world import Page

SHELL = {"sh", "bash"}
RUNS = {"python", "console", *SHELL}
OUTPUT = {"", "json", "text", "output"}


@dataclass(frozen=True)
class Block:
    """A block that runs, and the output the doc shows for it (None: none shown)."""

    language: str
    source: str
    expected: Optional[str] = None


class BlockParser:
    """Sybil parser: each runnable block (visible or invisible) with its output block."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.fenced = FencedCodeBlockLexer(language=r"[\w-]*", mapping={"language": "language", "source": "source"})
        self.invisible = DirectiveInHTMLCommentLexer(directive="invisible-code-block", arguments=r"[\w-]+")

    def __call__(self, document: Document) -> Iterable[Region]:
        fenced = sorted(self.fenced(document), key=lambda region: region.start)
        for region, following in zip(fenced, [*fenced[1:], None]):
            language = region.lexemes["language"]
            if language not in RUNS:
                continue
            block, end = Block(language, region.lexemes["source"]), region.end
            if (
                following is not None
                and following.lexemes["language"] in OUTPUT
                and not document.text[region.end : following.start].strip()
            ):
                block, end = Block(language, block.source, following.lexemes["source"]), following.end
            yield Region(region.start, end, block, self.evaluate)
        for region in self.invisible(document):
            block = Block(region.lexemes["arguments"], region.lexemes["source"])
            yield Region(region.start, region.end, block, self.evaluate)

    def evaluate(self, example: Example) -> None:
        block: Block = example.parsed
        page = self.page
        source = page.localize(block.source)
        if block.language == "console":
            for command, expected in console_commands(source):
                self.check(expected, page.run_shell(command))
        elif block.language in SHELL and page.next_block_in_background:
            page.next_block_in_background = False
            self.check(block.expected, page.start_in_background(source))
        elif block.language in SHELL:
            self.check(block.expected, page.run_shell(source))
        elif block.language == "python" and page.next_python_interpreter:
            interpreter, page.next_python_interpreter = page.next_python_interpreter, None
            self.check(block.expected, page.run_elsewhere(interpreter, source))
        elif block.language == "python":
            self.check(block.expected, run_python(page, source, example))
        else:
            raise ValueError(f"A block in {block.language!r} cannot run: tag it python, sh, bash or console")

    def check(self, expected: Optional[str], actual: str) -> None:
        if expected is not None and expected.strip():
            problem = match_output(expected.replace("127.0.0.1:8700", self.page.address), actual, self.page.ids)
            if problem is not None:
                raise AssertionError(problem)


class DirectiveParser:
    """Sybil parser for ``<!-- doc: gateway | background | interrupt | python PATH -->``."""

    def __init__(self, page: Page) -> None:
        self.lexer = DirectiveInHTMLCommentLexer(directive="doc", arguments=r"[a-z-]+(?:[ \t]+[^\s-]\S*)?")
        self.actions: dict[str, Callable[..., None]] = {
            "gateway": page.start_gateway,
            "background": lambda: setattr(page, "next_block_in_background", True),
            "interrupt": page.interrupt,
            "python": lambda interpreter: setattr(page, "next_python_interpreter", interpreter),
        }

    def __call__(self, document: Document) -> Iterable[Region]:
        for region in self.lexer(document):
            action, *arguments = region.lexemes["arguments"].split()
            if action not in self.actions:
                raise ValueError(f"Unknown directive 'doc: {action}' (known: {', '.join(self.actions)})")
            yield Region(region.start, region.end, (action, arguments), self.evaluate)

    def evaluate(self, example: Example) -> None:
        action, arguments = example.parsed
        self.actions[action](*arguments)


def run_python(page: Page, source: str, example: Example) -> str:
    """Run a Python block in the page's namespace, directory and environment; what it printed."""
    code = compile("\n" * example.line + source, example.path, "exec", dont_inherit=True)
    printed = io.StringIO()
    namespace: dict[str, Any] = example.namespace
    with page.active(), redirect_stdout(printed):
        exec(code, namespace)  # noqa: S102 - running the docs' code is the point
    namespace.pop("__builtins__", None)
    return printed.getvalue()


def console_commands(source: str) -> Iterable[tuple[str, str]]:
    """``$ command`` lines (continued by a trailing backslash) and the output after each."""
    commands: list[tuple[list[str], list[str]]] = []
    continued = False
    for line in source.splitlines():
        if continued or line.startswith("$ "):
            if not continued:
                commands.append(([], []))
            commands[-1][0].append(line if continued else line[2:])
            continued = line.endswith("\\")
        elif commands:
            commands[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"A console block starts with '$ command', not {line!r}")
    return [("\n".join(command), "\n".join(output)) for command, output in commands]
