"""What ``agenitry verify`` and ``agenitry export`` do, apart from parsing their options.

Every check is the core package's (:mod:`agenitry.transparency`); this module only fetches
documents, reads files and prints verdicts. It uses the standard library only, because the
standalone verifier (:mod:`agenitry.gateway.verify_bundle`) carries it too.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from agenitry.transparency import (
    EXPORT_FORMAT,
    PROOF_HEADER,
    LogFormatError,
    LogReport,
    TrustedKey,
    VerificationResult,
    verify_event,
    verify_log,
    verify_proof,
)

Echo = Callable[[str], None]


class VerifyUsageError(Exception):
    """The verification could not even start: a bad argument, file or address."""


def trusted(values: Sequence[str]) -> list[TrustedKey]:
    """Keys from ``--public-key`` values: the key itself, or a file holding it."""
    keys = []
    for value in values:
        path = Path(value)
        text = path.read_text().strip() if len(value) < 4096 and path.is_file() else value
        try:
            keys.append(TrustedKey.parse(text))
        except LogFormatError as exc:
            raise VerifyUsageError(f"--public-key {value[:60]!r}: {exc}") from None
    return keys


def fetch_json(url: str) -> dict[str, Any]:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise VerifyUsageError(f"not an http(s) address: {url}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - checked above
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:  # noqa: S310 - checked above
            body: dict[str, Any] = json.loads(answer.read().decode("utf-8"))
            return body
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:200]
        raise VerifyUsageError(f"{url} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise VerifyUsageError(f"could not fetch {url}: {exc}") from None


def document_url(url: str) -> tuple[str, str]:
    """The JSON address of a verify link (a page or JSON link) and the server's base address."""
    parts = urllib.parse.urlsplit(url)
    segments = parts.path.rstrip("/").split("/")
    if len(segments) < 3 or segments[-3] != "verify":
        raise VerifyUsageError(f"not a verify link (…/verify/<venue>/<event>): {url}")
    prefix = "/".join(segments[:-3])
    if prefix.endswith("/v1"):
        prefix = prefix[: -len("/v1")]
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, prefix, "", ""))
    return f"{base}/v1/verify/{segments[-2]}/{segments[-1]}", base


def check_url(url: str, keys: list[TrustedKey], echo: Echo) -> VerificationResult:
    json_url, base = document_url(url)
    if not keys:
        listed = fetch_json(f"{base}/v1/log/public-key")
        keys = [TrustedKey.parse(key["public_key"]) for key in listed.get("keys", [])]
        echo(f"warning: no --public-key given; trusting the keys {base} lists, which proves little")
    return verify_event(fetch_json(json_url), keys)


def check_proof_file(path: Path, entry_path: Optional[Path], keys: list[TrustedKey]) -> VerificationResult:
    if not keys:
        raise VerifyUsageError("checking a .tlog-proof needs the log's public key: --public-key")
    entry = None
    if entry_path is not None:
        try:
            given = json.loads(entry_path.read_text())
        except ValueError as exc:
            raise VerifyUsageError(f"{entry_path} is not JSON: {exc}") from None
        # The entry alone, or a whole verify document holding it.
        entry = given.get("entry", given) if isinstance(given, dict) else None
    return verify_proof(path.read_text(), keys, entry=entry)


def kind_of(path: Path) -> str:
    """'proof' for a .tlog-proof, 'export' for an ``agenitry export`` file."""
    with path.open(encoding="utf-8") as source:
        first = source.readline().rstrip("\n")
    if first == PROOF_HEADER:
        return "proof"
    try:
        header = json.loads(first)
    except ValueError:
        header = None
    if isinstance(header, dict) and header.get("format") == EXPORT_FORMAT:
        return "export"
    raise VerifyUsageError(f"{path} is neither a .tlog-proof nor an agenitry export")


def check_export(path: Path, keys: list[TrustedKey]) -> LogReport:
    """Verify an export file, in two passes (the entries are streamed in the second)."""
    header, leaves, notes = None, [], []
    for line in _lines(path):
        if header is None:
            header = line
        elif "entry" in line:
            leaf = line.get("leaf_hash")
            leaves.append(bytes.fromhex(leaf) if isinstance(leaf, str) else None)
        elif "checkpoint" in line:
            notes.append(str(line["checkpoint"]))
    if header is None:
        raise VerifyUsageError(f"{path} is empty")
    if not keys:
        keys = [TrustedKey.parse(key) for key in header.get("public_keys", [])]
        if not keys:
            raise VerifyUsageError("the export lists no public key: give --public-key")
    entries = (line["entry"] for line in _lines(path) if isinstance(line.get("entry"), dict))
    return verify_log(str(header["venue_id"]), entries, notes, keys, tree_leaves=leaves, origin=header.get("origin"))


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as source:
        for number, text in enumerate(source, 1):
            try:
                line = json.loads(text)
            except ValueError:
                raise VerifyUsageError(f"{path}:{number} is not JSON") from None
            if not isinstance(line, dict):
                raise VerifyUsageError(f"{path}:{number} is not a JSON object")
            yield line


@dataclass(frozen=True)
class Verdict:
    """What a check found, as text lines and as JSON; ``ok`` decides the exit code."""

    ok: bool
    lines: list[str]
    data: dict[str, Any]

    @classmethod
    def of_report(cls, report: LogReport) -> Verdict:
        return cls(report.ok, report_text(report), report_json(report))

    def output(self, as_json: bool) -> str:
        """What ``agenitry verify`` prints: the lines, or with ``--json`` the JSON."""
        return json.dumps(self.data, indent=2, sort_keys=True) if as_json else "\n".join(self.lines)


def check_target(target: str, keys: list[TrustedKey], entry: Optional[Path], warn: Echo) -> Verdict:
    """Check a verify link, a .tlog-proof file or an export file, as ``agenitry verify`` does."""
    if target.startswith(("http://", "https://")):
        result = check_url(target, keys, warn)
    elif kind_of(Path(target)) == "proof":
        result = check_proof_file(Path(target), entry, keys)
    else:
        return Verdict.of_report(check_export(Path(target), keys))
    return Verdict(result.ok, result_text(result, target), result_json(result))


def result_text(result: VerificationResult, what: str) -> list[str]:
    if result.ok:
        return [
            f"verified: {what} is entry #{result.index} of log {result.origin}, unchanged",
            f"  checkpoint of {result.tree_size} entries signed by {result.signer}",
        ]
    return [f"NOT VERIFIED: {what}", *(f"  {problem}" for problem in result.problems)]


def report_text(report: LogReport) -> list[str]:
    summary = f"venue {report.venue_id}: {report.entries} entries, {report.checkpoints} signed checkpoints"
    lines = [f"verified: {summary}, every one holds" if report.ok else f"NOT VERIFIED: {summary}"]
    if report.first is not None:
        lines.append(f"  first problem: {report.first}")
        lines.extend(f"  also: {finding}" for finding in report.findings[1:])
    lines.extend(f"note: {note}" for note in report.notes)
    return lines


def report_json(report: LogReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "venue_id": report.venue_id,
        "entries": report.entries,
        "checkpoints": report.checkpoints,
        "signed_size": report.signed_size,
        "findings": [
            {"kind": finding.kind, "sequence": finding.sequence, "message": finding.message}
            for finding in report.findings
        ],
        "notes": list(report.notes),
    }


def result_json(result: VerificationResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "problems": list(result.problems),
        "index": result.index,
        "tree_size": result.tree_size,
        "origin": result.origin,
        "signer": result.signer,
    }
