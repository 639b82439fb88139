"""The doc runner itself: a page that drifted fails, a page that runs passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from docs.matching import match_output
from docs.test_docs import run_page
from docs.world import Page

FENCE = "```"


def page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text.replace("'''", FENCE))
    return path


def test_shell_and_python_blocks_share_the_page(tmp_path: Path) -> None:
    path = page(
        tmp_path,
        """
'''sh
GREETING=$(echo hello)
PLACE=world
export GREETING
'''
'''python
import os

print(os.environ["GREETING"], os.environ.get("PLACE", "not exported"))
'''
'''
hello not exported
'''
<!-- skip: next "shown, never run" -->
'''sh
exit 1
'''
'''console
$ echo "$GREETING" \\
    "$PLACE"
hello world
'''
""",
    )
    assert run_page(path, tmp_path / "world") == 3


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("'''sh\necho '{\"status\": \"approved\"}'\n'''\n'''json\n{\"status\": \"denied\"}\n'''", "The doc shows"),
        ("'''python\nundefined_name\n'''", "name 'undefined_name' is not defined"),
        ("'''sh\nfalse\necho never\n'''", "exited with 1"),
        ("'''console\n$ echo one\ntwo\n'''", "The doc shows"),
    ],
)
def test_a_drifted_block_fails_at_its_line(tmp_path: Path, block: str, problem: str) -> None:
    with pytest.raises(Exception, match=problem) as failure:
        run_page(page(tmp_path, "# A page\n\n" + block), tmp_path / "world")
    assert "page.md, line 3" in "".join(failure.value.__notes__)


def test_ids_bind_to_the_ids_really_printed() -> None:
    ids: dict[str, str] = {}
    doc = '{"authorization_id": "auth_9zn1gjxrbvf4mmr0h9rb42szjf", "created_at": "2026-11-28T14:57:27.676Z", ...}'
    real = '{"authorization_id":"auth_0000000000000000000000000a","created_at":"2031-01-01T00:00:00.000Z","x":1}'
    assert match_output(doc, real, ids) is None
    assert ids == {"auth_9zn1gjxrbvf4mmr0h9rb42szjf": "auth_0000000000000000000000000a"}
    again = '{"authorization_id": "auth_9zn1gjxrbvf4mmr0h9rb42szjf"}'
    assert match_output(again, '{"authorization_id": "auth_1111111111111111111111111b"}', ids) is not None
    assert match_output(again, '{"authorization_id": "auth_0000000000000000000000000a"}', ids) is None


def test_json_is_compared_whole_but_wrapped_freely() -> None:
    doc = '{"error": "Invalid API key",\n "code": "invalid_api_key"}'
    assert match_output(doc, '{"error":"Invalid API key","code":"invalid_api_key"}', {}) is None
    assert match_output(doc, '{"error":"Invalid API key","code":"invalid_api_key","extra":1}', {}) is not None


def test_the_placeholder_key_is_the_agent_key_of_the_pages_gateway(tmp_path: Path) -> None:
    world = Page(tmp_path)
    assert world.localize('Agenitry(api_key="ag_...")') == 'Agenitry(api_key="ag_...")'  # no gateway yet
    world.env["AGENT_KEY"] = "ag_real"
    assert world.localize('Agenitry(api_key="ag_...", base_url="http://127.0.0.1:8700")') == (
        f"Agenitry(api_key='ag_real', base_url=\"http://{world.address}\")"
    )
