"""The command line of the standalone verifier, ``python3 agenitry-verify.py``.

It takes what ``agenitry verify`` takes for a link or a file, prints the same verdict and
exits with the same code (0 verified, 1 not verified, 2 could not check). Standard library
only, Python 3.9+: :mod:`agenitry.gateway.verify_bundle` ships it, after the modules it
uses, as one file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from agenitry.gateway.cli_verify import VerifyUsageError, check_target, trusted


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Check a verify link, a .tlog-proof or an export file; print the verdict; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="agenitry-verify.py",
        description="Verify an Agenitry audit record (a verify link or a .tlog-proof) or a whole log (an export).",
    )
    parser.add_argument("target", help="a verify link, a .tlog-proof file, or an agenitry export file")
    parser.add_argument(
        "--key",
        "--public-key",
        dest="keys",
        action="append",
        default=[],
        metavar="KEY",
        help="a trusted key (base64, hex, vkey, or a file holding one); repeat for rotated keys",
    )
    parser.add_argument(
        "--entry", type=Path, help="the event's entry JSON (or its verify document), with a .tlog-proof"
    )
    parser.add_argument("--json", dest="as_json", action="store_true", help="print the verdict as JSON")
    args = parser.parse_args(argv)
    try:
        verdict = check_target(args.target, trusted(args.keys), args.entry, _warn)
    except (VerifyUsageError, OSError) as exc:
        _warn(f"error: {exc}")
        return 2
    sys.stdout.write(verdict.output(args.as_json) + "\n")
    return 0 if verdict.ok else 1


def _warn(line: str) -> None:
    sys.stderr.write(line + "\n")
