"""``GET /agenitry-verify.py``: core's verifier as one file that needs nothing installed.

The file is run as a stranger would run it: downloaded from a real server, by ``python -I
-S`` (no site-packages, so neither agenitry nor cryptography), on the same proofs,
links and exports as ``agenitry verify``, untouched and tampered with; its exit code and
output must be the CLI's, byte for byte. The file must be the modules it names, statement
for statement, so it can never drift from the verifier the gateway and the CLI run.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from agenitry.gateway import Gateway
from agenitry.gateway.cli import app
from agenitry.gateway.verify_bundle import BUNDLED, BundleError, build
from support.live import LiveServer
from support.tamper import as_owner
from support.venues import Venue

runner = CliRunner()


@pytest.fixture
def store() -> str:
    """The verifier reads files and links: which store wrote them does not matter."""
    return "sqlite"


@pytest.fixture
def script(http: httpx.Client, tmp_path: Path) -> Path:
    answer = http.get("/agenitry-verify.py")
    assert answer.status_code == 200
    path = tmp_path / "agenitry-verify.py"
    path.write_text(answer.text)
    return path


def standalone(script: Path, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(script), *args], capture_output=True, text=True, cwd=script.parent, env={}
    )
    return done.returncode, done.stdout


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", *args])
    return result.exit_code, result.stdout


def same_verdict(script: Path, target: str, key: str, *more: str) -> tuple[int, str]:
    """Both verifiers on one target, as text and as JSON; they must agree exactly. The text verdict."""
    as_json = standalone(script, target, "--key", key, *more, "--json")
    assert as_json == cli(target, "--public-key", key, *more, "--json")
    as_text = standalone(script, target, "--key", key, *more)
    assert as_text == cli(target, "--public-key", key, *more)
    return as_text


def logged(gateway: Gateway, venue: Venue, count: int) -> list[dict[str, Any]]:
    order = {"agent_id": "voice-agent", "action": "order_captured"}
    return [gateway.log_event(venue.admin, {**order, "amount": 10 + i}).body for i in range(count)]


def test_the_file_is_served_as_python_text_with_the_security_headers(http: httpx.Client) -> None:
    answer = http.get("/agenitry-verify.py")
    assert answer.headers["content-type"] == "text/x-python; charset=utf-8"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert answer.text.startswith("#!/usr/bin/env python3\n")


def test_the_file_is_the_bundled_modules_statement_for_statement(http: httpx.Client) -> None:
    served = ast.parse(http.get("/agenitry-verify.py").text).body
    expected: list[str] = []
    for name in BUNDLED:
        for node in ast.parse(inspect.getsource(importlib.import_module(name))).body:
            if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
                expected += [] if isinstance(node, ast.ImportFrom) else [ast.dump(node)]
            elif node.module and node.module.startswith("agenitry"):
                renamed = [f"{alias.asname} = {alias.name}" for alias in node.names if alias.asname]
                expected += [ast.dump(ast.parse(line).body[0]) for line in renamed]
            else:
                expected.append(ast.dump(node))
    # The file's docstring and __future__ import come first, the call of main() last.
    assert [ast.dump(node) for node in served[2:-1]] == expected
    assert ast.unparse(served[-1]) == "if __name__ == '__main__':\n    raise SystemExit(main())"


def test_a_tlog_proof_gives_the_clis_verdict_and_a_tampered_one_too(
    script: Path, http: httpx.Client, venue: Venue, gateway: Gateway, tmp_path: Path
) -> None:
    [event] = logged(gateway, venue, 1)
    document = http.get(f"/v1/verify/{venue.id}/{event['id']}").json()
    key = gateway.checkpointer.key.public_key_b64
    proof = tmp_path / f"{event['id']}.tlog-proof"
    proof.write_text(document["tlog_proof"])
    code, out = same_verdict(script, str(proof), key)
    assert code == 0 and out.startswith(f"verified: {proof} is entry #1 of log verify.example/agenitry/{venue.id}")

    entry = tmp_path / "entry.json"
    entry.write_text(json.dumps({**document["entry"], "amount": "500.00"}))
    code, out = same_verdict(script, str(proof), key, "--entry", str(entry))
    assert code == 1 and "not the entry the proof carries" in out

    lines = document["tlog_proof"].split("\n")
    assert lines[2] == "index 1"
    lines[3] = "A" * 43 + "="  # the proof's one hash (the sibling leaf) replaced by zeros
    proof.write_text("\n".join(lines))
    code, out = same_verdict(script, str(proof), key)
    assert code == 1 and "does not lead from entry #1 to the checkpoint's root" in out

    code, out = same_verdict(script, str(proof), "A" * 43 + "=")
    assert code == 1 and "not signed by any trusted key" in out


def test_a_verify_link_gives_the_clis_verdict(script: Path, live: LiveServer, venue: Venue, gateway: Gateway) -> None:
    [event] = logged(gateway, venue, 1)
    link = f"{live.url}/verify/{venue.id}/{event['id']}"
    code, out = same_verdict(script, link, gateway.checkpointer.key.public_key_b64)
    assert code == 0 and out.startswith(f"verified: {link} is entry #1")


def test_an_export_gives_the_clis_verdict_untouched_and_tampered(
    script: Path, venue: Venue, gateway: Gateway, tmp_path: Path
) -> None:
    logged(gateway, venue, 6)
    gateway.audit.sign(venue.id)
    key = gateway.checkpointer.key.public_key_b64
    export = tmp_path / "log.jsonl"

    def exported() -> str:
        result = runner.invoke(app, ["export", "--venue", venue.id, "--db", gateway.db.url, "-o", str(export)])
        assert result.exit_code == 0, result.stderr
        return str(export)

    code, out = same_verdict(script, exported(), key)
    assert code == 0 and out.startswith(f"verified: venue {venue.id}: 7 entries, 1 signed checkpoints")
    with as_owner(gateway.db) as conn:
        conn.execute(
            text("UPDATE events SET amount = 990000 WHERE venue_id = :venue AND sequence = 4"), {"venue": venue.id}
        )
    code, out = same_verdict(script, exported(), key)
    assert code == 1 and "first problem: Entry #4" in out and "was changed" in out


def test_it_runs_without_anything_installed_and_says_what_it_could_not_check(script: Path, tmp_path: Path) -> None:
    bare = subprocess.run([sys.executable, "-I", "-S", "-c", "import cryptography"], capture_output=True, env={})
    assert bare.returncode != 0, "the subprocess sees site-packages: the test proves nothing"
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    code, _ = standalone(script, str(junk), "--key", "A" * 43 + "=")
    assert code == 2 == cli(str(junk), "--public-key", "A" * 43 + "=")[0]


def test_modules_that_cannot_share_one_file_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BundleError, match=r"agenitry\._verify imports .* which no earlier module defines"):
        build(["agenitry._verify"])
    (tmp_path / "bundle_first.py").write_text("import json\n\nsize = 1\n")
    (tmp_path / "bundle_second.py").write_text("from os import path as json\n\n\ndef main() -> int:\n    return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BundleError, match="'json' of bundle_second is also"):
        build(["bundle_first", "bundle_second"])
    with pytest.raises(BundleError, match="must define main"):
        build(["bundle_first"])


def test_the_verify_page_shows_how_to_run_it_with_this_gateways_origin_and_key(
    http: httpx.Client, venue: Venue, gateway: Gateway
) -> None:
    [event] = logged(gateway, venue, 1)
    page = http.get(f"/verify/{venue.id}/{event['id']}").text
    proof = f"{event['id']}.tlog-proof"
    assert f"curl -o {proof} https://verify.example/v1/verify/{venue.id}/{event['id']}/tlog-proof\n" in page
    assert "curl -O https://verify.example/agenitry-verify.py\n" in page
    assert f"python3 agenitry-verify.py {proof} \\\n  --key {gateway.checkpointer.key.public_key_b64}</pre>" in page
    assert "pip install" not in page
