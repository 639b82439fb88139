"""The public verify page in a real headless Chromium (Debian's ``chromium``), on SQLite and
PostgreSQL: what happened, that the proof verified, the checkpoint, how to check it
yourself; no script anywhere. A record whose database row was tampered with shows as not
verified. Each test takes a screenshot.

Chromium is required: ``make test`` installs it (as root) or says how. Without it these
tests fail; they never skip.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from agenitry.gateway import Gateway
from support.live import LiveServer
from support.tamper import as_owner
from support.venues import Venue

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1000,1900",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is missing: run 'apt-get install chromium' (make test does it as root)")
    return found


def render(url: str, shot: Path) -> str:
    """The page's DOM after Chromium loaded it; a screenshot of it lands at ``shot``."""
    done = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={shot.parent / 'profile'}", f"--screenshot={shot}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_verify_page_shows_the_record_and_its_verified_proof(
    live: LiveServer, venue: Venue, gateway: Gateway, tmp_path: Path
) -> None:
    venue.policy(max_single_amount=500)
    agent = venue.agent("voice-agent")
    decision = gateway.authorize(agent, {"action": "comp_issued", "amount": 18, "reason": "Cold soup"}).body
    event_id = gateway.execute(agent, decision["authorization_id"], actual_amount=17.25).body["event_id"]
    shot = tmp_path / "verified.png"
    dom = render(f"{live.url}/verify/{venue.id}/{event_id}", shot)

    for fact in ("comp_issued", "$17.25", "USD", "outbound", "voice-agent", decision["authorization_id"], event_id):
        assert fact in dom, fact
    assert '<span class="badge">executed</span>' in dom
    assert 'id="verdict" data-verified="true"' in dom and "Verified" in dom
    assert f"verify.example/agenitry/{venue.id}\n" in dom  # the checkpoint, verbatim
    assert f"agenitry verify https://verify.example/verify/{venue.id}/{event_id}" in dom
    assert gateway.checkpointer.key.public_key_b64 in dom
    assert f'href="/v1/verify/{venue.id}/{event_id}/tlog-proof"' in dom
    assert "<script" not in dom.lower()
    width, height = png_size(shot)
    assert (width, height) == (1000, 1900)
    assert shot.stat().st_size > 30_000  # a rendered page, not a blank one


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_tampered_record_shows_as_not_verified(
    live: LiveServer, venue: Venue, gateway: Gateway, tmp_path: Path
) -> None:
    event = gateway.log_event(venue.admin, {"action": "order_captured", "amount": 42.5}).body
    gateway.audit.sign(venue.id)
    with as_owner(gateway.db) as conn:
        conn.execute(
            text("UPDATE events SET amount = 425000 WHERE venue_id = :venue AND id = :id"),
            {"venue": venue.id, "id": event["id"]},
        )
    shot = tmp_path / "tampered.png"
    dom = render(f"{live.url}/verify/{venue.id}/{event['id']}", shot)
    assert 'id="verdict" data-verified="false"' in dom and "Not verified" in dom
    assert "$4,250.00" in dom  # what the tampered row says, shown as unproven
    assert "the inclusion proof does not lead from entry #1 to the checkpoint" in dom
    assert png_size(shot) == (1000, 1900)
