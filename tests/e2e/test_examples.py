"""Every example runs offline and does what it says."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_gateway_demo_plays_the_whole_lifecycle(repo_root: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "examples/gateway_demo.py", "--once", "--dir", str(tmp_path), "--port", str(_free_port())],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "$127.00: approved" in out and "then settled" in out
    assert "$36,000.00: denied — Amount $36,000.00 exceeds the single-transaction limit of $500.00" in out
    assert "$340.00: pending" in out and "is approved" in out and "executed for $338.50" in out
    assert out.count("/verify/nobo-downtown/evt_") == 13
