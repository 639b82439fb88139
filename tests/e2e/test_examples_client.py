"""The core client's example runs offline (embedded gateway) and does what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_custom_tool_decorator_gates_a_plain_function(repo_root: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error", "examples/custom_tool_decorator.py", "--dir", str(tmp_path)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert (
        "Tool: order_supplies(item: 'str', pounds: 'int', total: 'float', supplier_api_key: 'str' = 'sk-demo')" in out
    )
    assert "salmon $180.00: approved, executed and settled for $174.60" in out
    assert "wagyu $3,600.00: denied — Amount $3,600.00 exceeds the single-transaction limit of $500.00" in out
    assert "tuna $340.00: pending — auth_" in out
    assert "tuna $340.00: approved by the owner, executed for $329.80" in out
    trail = out.split("Audit trail")[1]
    assert trail.count("purchase_order") == 2 and trail.count("tool_call") == 1
    assert trail.count("/verify/nobo-downtown/evt_") == 12  # the salmon order claims its approval (#3)
    assert (tmp_path / "agenitry.db").exists()
