"""Verify the audit log offline, with nothing but a public key: one event, or a whole venue.

One event (:func:`verify_event`, :func:`verify_proof`): its canonical entry hashes to a
leaf; the .tlog-proof's inclusion proof takes that leaf at its index to the root of a
checkpoint; the checkpoint is signed by a key you trust and names the venue's log.

A whole venue (:func:`verify_log`): every entry is recomputed and compared, position by
position, with the leaf the log's tree holds for it; the recomputed tree must reproduce the
root of every signed checkpoint; consecutive checkpoints must be consistent. The first
entry that was changed, removed, inserted or reordered is named.

Standard library only (Ed25519 through ``cryptography`` when installed, else plain
Python); nothing here talks to a server.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Optional, Union

from agenitry._canonical import canonical_json, leaf_hash
from agenitry._merkle import consistency_ranges, fold, node_hash, subtrees, verify_consistency, verify_inclusion
from agenitry._tlog import Checkpoint, LogFormatError, TlogProof, TrustedKey, open_checkpoint

#: A key as :func:`verify_event` takes it: a :class:`TrustedKey`, its text (base64, hex or
#: vkey), its 32 bytes, or several of these (old keys stay valid after a rotation).
Keys = Union[TrustedKey, str, bytes, Sequence[Union[TrustedKey, str, bytes]]]

#: The first line of an ``agenitry export`` file names this format; a verifier reads it back.
EXPORT_FORMAT = "agenitry-log-export/v1"

#: Event fields that must say what the signed entry says (a field an entry lacks reads None).
_SAME_FIELDS = (
    "id",
    "venue_id",
    "sequence",
    "agent_id",
    "action",
    "currency",
    "direction",
    "reason",
    "authorization_id",
    "actor",
    "created_at",
    "occurred_at",
)


def trusted_keys(keys: Keys) -> list[TrustedKey]:
    """Normalize the ways a caller may give keys."""
    if isinstance(keys, (TrustedKey, str, bytes)):
        keys = [keys]
    result = []
    for key in keys:
        if isinstance(key, TrustedKey):
            result.append(key)
        elif isinstance(key, bytes):
            result.append(TrustedKey(key))
        else:
            result.append(TrustedKey.parse(key))
    if not result:
        raise LogFormatError("no public key to verify against")
    return result


def log_of(origin: str) -> str:
    """The venue a log origin names: its last path segment (``host/agenitry/<venue>``)."""
    return origin.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class VerificationResult:
    """What checking one event's proof found. True when everything holds.

    >>> result = verify_event(document, public_key)  # doctest: +SKIP
    >>> result.ok, result.problems  # doctest: +SKIP
    (True, ())
    """

    ok: bool
    problems: tuple[str, ...] = ()
    index: Optional[int] = None
    tree_size: Optional[int] = None
    origin: Optional[str] = None
    root_hash: Optional[bytes] = None
    leaf_hash: Optional[bytes] = None
    #: The trusted key (base64) that signed the checkpoint.
    signer: Optional[str] = None

    def __bool__(self) -> bool:
        return self.ok


def verify_event(document: Mapping[str, Any], public_key: Keys) -> VerificationResult:
    """Check a verify document (the JSON of ``GET /v1/verify/{venue}/{event}``) offline.

    Its ``entry`` must hash to its ``leaf_hash``, be included at its sequence number in
    the checkpoint of its ``tlog_proof``, whose signature must be ``public_key``'s; and
    its ``event`` (what a page shows) must say what the entry says.
    """
    proof = document.get("tlog_proof")
    if not isinstance(proof, str):
        return VerificationResult(False, ("the document carries no tlog_proof: the gateway signed nothing yet",))
    entry = document.get("entry")
    return verify_proof(
        proof,
        public_key,
        entry=entry if isinstance(entry, Mapping) else None,
        event=document.get("event"),
        leaf_hash_hex=document.get("leaf_hash"),
    )


def verify_proof(
    proof_text: str,
    public_key: Keys,
    *,
    entry: Optional[Mapping[str, Any]] = None,
    event: Optional[Mapping[str, Any]] = None,
    leaf_hash_hex: Optional[str] = None,
) -> VerificationResult:
    """Check a ``.tlog-proof`` for one entry (taken from the proof's extra line if not given)."""
    try:
        keys = trusted_keys(public_key)
        proof = TlogProof.parse(proof_text)
        checkpoint, signer = open_checkpoint(proof.checkpoint, keys)
    except LogFormatError as exc:
        return VerificationResult(False, (str(exc),))
    problems: list[str] = []
    if proof.extra is not None:
        try:
            carried = json.loads(proof.extra.decode("utf-8"))
        except ValueError:
            return VerificationResult(False, ("the proof's extra line is not an entry",))
        if entry is None:
            entry = carried
        elif canonical_json(entry) != proof.extra:
            problems.append("the entry given is not the entry the proof carries")
    if not isinstance(entry, Mapping):
        return VerificationResult(False, ("no entry to verify: give the event's entry JSON",))
    leaf = leaf_hash(canonical_json(entry))
    if leaf_hash_hex is not None and leaf_hash_hex != leaf.hex():
        problems.append(f"the leaf hash {leaf_hash_hex} is not the hash of the entry ({leaf.hex()})")
    if entry.get("sequence") != proof.index:
        problems.append(f"the entry is #{entry.get('sequence')} but the proof is for index {proof.index}")
    if log_of(checkpoint.origin) != entry.get("venue_id"):
        problems.append(f"the checkpoint is of log {checkpoint.origin!r}, not of venue {entry.get('venue_id')!r}")
    if not verify_inclusion(leaf, proof.index, checkpoint.size, proof.hashes, checkpoint.root):
        problems.append(f"the inclusion proof does not lead from entry #{proof.index} to the checkpoint's root")
    if event is not None:
        problems.extend(_event_differences(event, entry))
    return VerificationResult(
        not problems,
        tuple(problems),
        index=proof.index,
        tree_size=checkpoint.size,
        origin=checkpoint.origin,
        root_hash=checkpoint.root,
        leaf_hash=leaf,
        signer=str(signer),
    )


def _event_differences(event: Mapping[str, Any], entry: Mapping[str, Any]) -> list[str]:
    # A page could show one amount while the proof covers another: the shown event must agree.
    problems = [
        f"the event's {name} ({event.get(name)!r}) is not the entry's ({entry.get(name)!r})"
        for name in _SAME_FIELDS
        if name in event and event.get(name) != entry.get(name)
    ]
    if "amount" in event and not _same_amount(event.get("amount"), entry.get("amount")):
        problems.append(f"the event's amount ({event.get('amount')!r}) is not the entry's ({entry.get('amount')!r})")
    return problems


def _same_amount(shown: Any, signed: Any) -> bool:
    if shown is None or signed is None:
        return shown is None and signed is None
    try:
        return Decimal(str(shown)) == Decimal(str(signed))
    except InvalidOperation:
        return False


# -- a whole venue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """Something that does not hold. ``sequence`` is the first entry concerned, if one is."""

    kind: str  # changed, removed, inserted, reordered, unsigned, signature, checkpoint, consistency
    sequence: Optional[int]
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class LogReport:
    """The verdict on a whole venue's log. True when nothing was found."""

    venue_id: str
    entries: int
    checkpoints: int
    #: How many entries the largest trusted checkpoint covers.
    signed_size: int
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Optional[Finding]:
        """The finding about the earliest entry (or about the log as a whole)."""
        return self.findings[0] if self.findings else None

    def __bool__(self) -> bool:
        return self.ok


class _Tree:
    """Every perfect subtree of a list of leaves, for roots and proofs of any size."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])

    def node(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int) -> bytes:
        return fold([self.node(level, index) for level, index in subtrees(0, size)])

    def consistency(self, first: int, second: int) -> list[bytes]:
        return [
            fold([self.node(level, index) for level, index in subtrees(start, end)])
            for start, end in consistency_ranges(first, second)
        ]


def verify_log(
    venue_id: str,
    entries: Iterable[Mapping[str, Any]],
    checkpoints: Iterable[str],
    public_key: Keys,
    *,
    tree_leaves: Optional[Sequence[Optional[bytes]]] = None,
    stored_leaves: Optional[Iterable[Optional[bytes]]] = None,
    origin: Optional[str] = None,
) -> LogReport:
    """Verify a venue's whole log.

    ``entries`` are the canonical entries as the store lists them (by sequence), read
    once; ``checkpoints`` the signed notes, oldest first; ``tree_leaves`` the leaf the
    log's tree holds at each index, and ``stored_leaves`` the leaf hash each listed row
    claims (both optional: they locate a change to its entry, even before it is signed).
    """
    keys = trusted_keys(public_key)
    findings: list[Finding] = []
    notes: list[str] = []
    signed = _trusted_checkpoints(venue_id, list(checkpoints), keys, origin, findings)
    scan = _Scan(venue_id, tree_leaves)
    claims = iter(stored_leaves) if stored_leaves is not None else None
    for entry in entries:
        scan.add(entry, next(claims, None) if claims is not None else None)
    count = len(scan.leaves)
    located = scan.first_problem()
    if located is not None:
        findings.append(located)
    _check_roots(signed, _Tree(scan.leaves), count, located.sequence if located else None, findings)
    _check_consistency(signed, scan.leaves, tree_leaves, findings)
    signed_size = max((checkpoint.size for _, checkpoint in signed), default=0)
    if not signed and count:
        findings.append(Finding("unsigned", None, "No checkpoint signed by a trusted key covers this log"))
    elif count > signed_size:
        against = "the log's stored tree only" if tree_leaves is not None else "nothing"
        notes.append(
            f"Entries #{signed_size} to #{count - 1} are not covered by a signed checkpoint yet;"
            f" they were checked against {against}."
        )
    findings.sort(key=lambda finding: (finding.sequence is None, finding.sequence or 0))
    return LogReport(venue_id, count, len(signed), signed_size, tuple(findings), tuple(notes))


def _trusted_checkpoints(
    venue_id: str, notes: list[str], keys: list[TrustedKey], origin: Optional[str], findings: list[Finding]
) -> list[tuple[int, Checkpoint]]:
    signed: list[tuple[int, Checkpoint]] = []
    for number, note in enumerate(notes, 1):
        try:
            checkpoint, _ = open_checkpoint(note, keys)
        except LogFormatError as exc:
            findings.append(Finding("signature", None, f"Checkpoint {number} does not verify: {exc}"))
            continue
        expected = origin or (signed[0][1].origin if signed else None)
        if (expected is not None and checkpoint.origin != expected) or log_of(checkpoint.origin) != venue_id:
            findings.append(
                Finding("checkpoint", None, f"Checkpoint {number} is of log {checkpoint.origin!r}, not this venue's")
            )
            continue
        if signed:
            number_before, before = signed[-1]
            if checkpoint.size < before.size:
                findings.append(
                    Finding(
                        "checkpoint",
                        checkpoint.size,
                        f"Checkpoint {number} (size {checkpoint.size}) is smaller than checkpoint {number_before}"
                        f" (size {before.size}): the log was cut back and signed again",
                    )
                )
        signed.append((number, checkpoint))
    return signed


class _Scan:
    """One pass over the listed entries: their leaves, and the first one out of place or changed.

    Holds the leaves and the sequence numbers, not the entries, so a venue of millions of
    events can be checked from a stream.
    """

    def __init__(self, venue_id: str, tree: Optional[Sequence[Optional[bytes]]]) -> None:
        self.venue_id = venue_id
        self.tree = tree
        self.in_tree = {digest: index for index, digest in enumerate(tree or ()) if digest is not None}
        self.leaves: list[bytes] = []
        self.sequences = array("q")
        self.foreign: Optional[Finding] = None
        self.misplaced: Optional[tuple[int, Any, Any]] = None  # position, its sequence, its id
        self.changed: Optional[Finding] = None

    def add(self, entry: Mapping[str, Any], claimed: Optional[bytes]) -> None:
        position = len(self.leaves)
        leaf = leaf_hash(canonical_json(entry))
        self.leaves.append(leaf)
        sequence, name = entry.get("sequence"), f"({entry.get('id')})"
        number = sequence if type(sequence) is int and 0 <= sequence < 2**63 else -1
        self.sequences.append(number)
        if self.foreign is None and entry.get("venue_id") != self.venue_id:
            self.foreign = Finding("inserted", position, f"Entry #{position} {name} is of another venue: inserted")
        if self.misplaced is None and number != position:
            self.misplaced = (position, sequence, entry.get("id"))
        if self.changed is None and self.tree is not None:
            self.changed = self._compare(self.tree, position, entry, leaf, claimed, name)

    def _compare(
        self,
        tree: Sequence[Optional[bytes]],
        position: int,
        entry: Mapping[str, Any],
        leaf: bytes,
        claimed: Optional[bytes],
        name: str,
    ) -> Optional[Finding]:
        expected = tree[position] if position < len(tree) else None
        if expected is None:
            return Finding("inserted", position, f"Entry #{position} {name} is not in the log's tree: inserted")
        if leaf == expected:
            return None
        # A row that moved keeps the leaf hash it was logged with: find where that leaf sits.
        origin = self.in_tree.get(claimed) if claimed is not None else None
        moved = origin is not None and origin != position
        if moved and leaf_hash(canonical_json(dict(entry, sequence=origin))) == tree[origin or 0]:
            return Finding("reordered", position, f"Entry #{position} holds the event logged as #{origin} {name}")
        return Finding("changed", position, f"Entry #{position} {name} was changed: it no longer matches its leaf")

    def first_problem(self) -> Optional[Finding]:
        found = [finding for finding in (self.foreign, self._misplaced(), self.changed) if finding is not None]
        count = len(self.leaves)
        if self.tree is not None and len(self.tree) > count:
            found.append(
                Finding(
                    "removed",
                    count,
                    f"Entries from #{count} on were removed: the log's tree has {len(self.tree)} leaves,"
                    f" the listing {count} entries",
                )
            )
        return min(found, key=lambda finding: finding.sequence or 0) if found else None

    def _misplaced(self) -> Optional[Finding]:
        if self.misplaced is None:
            return None
        position, sequence, event_id = self.misplaced
        name = f"({event_id})"
        number = self.sequences[position]
        if number > position:
            if position in self.sequences[position + 1 :]:
                return Finding("reordered", position, f"Entry #{number} {name} comes before entry #{position}")
            return Finding("removed", position, f"Entry #{position} was removed: the log goes on at #{number}")
        return Finding("inserted", position, f"An entry claiming #{sequence} {name} was inserted at #{position}")


def _check_roots(
    signed: list[tuple[int, Checkpoint]], tree: _Tree, count: int, located: Optional[int], findings: list[Finding]
) -> None:
    """Every trusted checkpoint's root must be the recomputed tree's root at its size."""
    reproduced = 0
    for number, checkpoint in sorted(signed, key=lambda item: item[1].size):
        if checkpoint.size > count:
            if located is None or located > count:
                findings.append(
                    Finding(
                        "removed",
                        count,
                        f"Entries from #{count} on were removed: the log holds {count} entries,"
                        f" but signed checkpoint {number} covers {checkpoint.size}",
                    )
                )
            return
        if tree.root(checkpoint.size) != checkpoint.root:
            if located is None or located >= checkpoint.size:
                findings.append(
                    Finding(
                        "changed",
                        reproduced,
                        f"The entries do not reproduce signed checkpoint {number} (size {checkpoint.size}):"
                        f" an entry from #{reproduced} to #{checkpoint.size - 1} was changed, removed, inserted"
                        " or reordered, and the log's stored hashes were rewritten to match",
                    )
                )
            return
        reproduced = checkpoint.size


def _check_consistency(
    signed: list[tuple[int, Checkpoint]],
    recomputed: list[bytes],
    tree_leaves: Optional[Sequence[Optional[bytes]]],
    findings: list[Finding],
) -> None:
    """Each checkpoint must extend the one before (RFC 9162 consistency proofs, built from
    the log's stored tree when there is one, else from the entries)."""
    leaves = recomputed
    if tree_leaves is not None and all(leaf is not None for leaf in tree_leaves):
        leaves = [leaf for leaf in tree_leaves if leaf is not None]
    tree = _Tree(leaves)
    for (first_number, first), (second_number, second) in zip(signed, signed[1:]):
        low, high = (first, second) if first.size <= second.size else (second, first)
        if high.size > len(leaves):
            continue
        proof = tree.consistency(low.size, high.size)
        if not verify_consistency(low.size, high.size, low.root, high.root, proof):
            findings.append(
                Finding(
                    "consistency",
                    None,
                    f"Checkpoints {first_number} and {second_number} are not consistent"
                    f" (sizes {first.size} and {second.size}): one of them is not a prefix of the other",
                )
            )
