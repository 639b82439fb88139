"""The offline verifier in the core package: signed notes, checkpoints, .tlog-proofs, one
event, a whole log. Standard library only, so it is checked here with and without
``cryptography``.

Signed notes follow C2SP byte for byte (Go's sumdb/note example verifies and is
reproduced), round-trip, and are refused under a wrong key. A whole log that was changed,
cut, extended, reordered or re-hashed is refused, naming the first entry concerned.
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agenitry import canonical_json, leaf_hash
from agenitry._ed25519 import verify, verify_pure
from agenitry._merkle import CompactTree, fold, inclusion_ranges, root_of, subtrees
from agenitry._tlog import (
    Checkpoint,
    LogFormatError,
    NoteSignature,
    TlogProof,
    TrustedKey,
    format_note,
    key_id,
    open_checkpoint,
    open_note,
    verifier_key,
)
from agenitry._verify import verify_log, verify_proof

CORE = Path(__file__).resolve().parents[2] / "packages" / "agenitry" / "src" / "agenitry"

# golang.org/x/mod/sumdb/note's example: an independent implementation of signed notes.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

# RFC 8032 §7.1 tests 1-3: secret key, public key, message, signature.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]
ORDER = 2**252 + 27742317777372353535851937790883648493
VENUE = "nobo-downtown"
ORIGIN = f"verify.example/agenitry/{VENUE}"


class Signer:
    """A log key, signing checkpoints the way the gateway does."""

    def __init__(self, seed: bytes = b"\x07" * 32) -> None:
        self.private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self.private.public_key().public_bytes_raw()
        self.key = TrustedKey(self.public)

    def note(self, text: str, name: str = ORIGIN) -> str:
        signature = NoteSignature(name, key_id(name, self.public), self.private.sign(text.encode()))
        return format_note(text, [signature])

    def checkpoint(self, leaves: list[bytes], size: int, origin: str = ORIGIN) -> str:
        return self.note(Checkpoint(origin, size, root_of(leaves[:size])).body(), origin)


def entries(count: int) -> list[dict[str, Any]]:
    return [
        {"v": 1, "id": f"evt_{i:026d}", "venue_id": VENUE, "sequence": i, "action": "item_86d", "amount": f"{i}.00"}
        for i in range(count)
    ]


def leaves_of(listed: list[dict[str, Any]]) -> list[bytes]:
    return [leaf_hash(canonical_json(entry)) for entry in listed]


def proof_text(listed: list[dict[str, Any]], index: int, size: int, signer: Signer, origin: str = ORIGIN) -> str:
    leaves = leaves_of(listed)
    hashes = tuple(root_of(leaves[start:end]) for start, end in inclusion_ranges(index, size))
    return TlogProof(index, hashes, signer.checkpoint(leaves, size, origin), canonical_json(listed[index])).text()


# -- Ed25519 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032)
def test_the_rfc_8032_vectors_verify_with_and_without_cryptography(
    secret: str, public: str, message: str, signature: str
) -> None:
    key, data, signed = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
    assert Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret)).sign(data) == signed
    assert verify_pure(key, data, signed) and verify(key, data, signed)
    assert not verify_pure(key, data + b"!", signed)
    assert not verify_pure(key, data, signed[:-1] + bytes([signed[-1] ^ 1]))


def test_the_pure_verifier_agrees_with_cryptography_and_refuses_malleated_signatures() -> None:
    for size in (0, 1, 33, 200):
        private = Ed25519PrivateKey.generate()
        public, message = private.public_key().public_bytes_raw(), os.urandom(size)
        signature = private.sign(message)
        assert verify_pure(public, message, signature)
        assert not verify_pure(Ed25519PrivateKey.generate().public_key().public_bytes_raw(), message, signature)
        # S + L is the same scalar, but not the canonical signature: RFC 8032 refuses it.
        s = int.from_bytes(signature[32:], "little") + ORDER
        assert not verify_pure(public, message, signature[:32] + s.to_bytes(32, "little"))
        assert not verify(public, message, signature[:32] + s.to_bytes(32, "little"))
    assert not verify_pure(b"\xff" * 32, b"", bytes(64))  # not a point
    assert not verify_pure(bytes(31), b"", bytes(64))


def test_without_cryptography_verify_falls_back_to_plain_python(monkeypatch: pytest.MonkeyPatch) -> None:
    _secret, public, message, signature = (bytes.fromhex(part) for part in RFC8032[1])
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric.ed25519", None)
    with pytest.raises(ImportError):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: F401
    assert verify(public, message, signature)
    assert not verify(public, message + b"x", signature)
    note = Signer().note("hello\n")
    assert open_note(note, [Signer().key])[0] == "hello\n"


# -- signed notes and keys ---------------------------------------------------------------------


def test_gos_signed_note_example_verifies_and_is_reproduced_byte_for_byte() -> None:
    vkey = TrustedKey.parse(GO_VKEY)
    assert (vkey.name, key_id("PeterNeumann", vkey.public_key).hex()) == ("PeterNeumann", "c74f20a3")
    assert open_note(GO_NOTE, [vkey]) == (GO_TEXT, vkey)
    seed = base64.b64decode(GO_SKEY.split("+", 4)[4])[1:]
    assert Signer(seed).note(GO_TEXT, "PeterNeumann") == GO_NOTE
    assert verifier_key("PeterNeumann", vkey.public_key) == GO_VKEY
    with pytest.raises(LogFormatError, match="does not verify"):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), [vkey])


def test_a_note_round_trips_and_is_refused_under_a_wrong_key() -> None:
    signer, stranger = Signer(), Signer(b"\x09" * 32)
    note = signer.note("line one\nline two\n")
    assert open_note(note, [signer.key]) == ("line one\nline two\n", signer.key)
    with pytest.raises(LogFormatError, match="not signed by any trusted key"):
        open_note(note, [stranger.key])
    # A known key that signed badly rejects the note, even next to a good signature.
    bad = NoteSignature(ORIGIN, key_id(ORIGIN, signer.public), bytes(64))
    with pytest.raises(LogFormatError, match="does not verify"):
        open_note(note + bad.line(), [signer.key])
    # Unknown signers (witnesses, say) are ignored.
    witnessed = note + stranger.note("line one\nline two\n", "witness.example").split("\n\n", 1)[1]
    assert open_note(witnessed, [signer.key])[1] == signer.key
    # A pinned name must match the signature line's name.
    with pytest.raises(LogFormatError):
        open_note(note, [TrustedKey(signer.public, "another.example/log")])


@pytest.mark.parametrize(
    "note",
    [
        "text\n— name AAAA\n",  # no blank line
        "text\n\n— name c2ln\n",  # signature shorter than a key id
        "text\n\n- name AAAAAAAA\n",  # not an em dash
        "text\n\n— name AAAAAAAA",  # no final newline
        "te\x00xt\n\n— name AAAAAAAA\n",  # a control character
        "text\n\n— na me AAAAAAAA\n",  # a space in the name
        "text\n\n— name AAAAAAA=\n",  # not canonical base64
        "text\n\n",  # no signature
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(LogFormatError):
        open_note(note, [Signer().key])


def test_keys_are_read_as_base64_hex_or_verifier_keys() -> None:
    signer = Signer()
    assert TrustedKey.parse(base64.b64encode(signer.public).decode()) == signer.key
    assert TrustedKey.parse(signer.public.hex()) == signer.key
    vkey = verifier_key(ORIGIN, signer.public)
    assert TrustedKey.parse(vkey) == TrustedKey(signer.public, ORIGIN)
    for bad in ("", "abc", base64.b64encode(bytes(31)).decode(), vkey.replace("+", "+0", 1), "x+00000000+AAAA"):
        with pytest.raises(LogFormatError):
            TrustedKey.parse(bad)


# -- checkpoints and proofs ----------------------------------------------------------------------


def test_a_checkpoint_round_trips_and_its_text_is_strict() -> None:
    checkpoint = Checkpoint(ORIGIN, 40, bytes(range(32)))
    assert Checkpoint.parse(checkpoint.body()) == checkpoint
    signer = Signer()
    assert open_checkpoint(signer.note(checkpoint.body()), [signer.key]) == (checkpoint, signer.key)
    root = base64.b64encode(bytes(32)).decode()
    for text in (f"{ORIGIN}\n040\n{root}\n", f"{ORIGIN}\n40\n{root[:-4]}\n", f"{ORIGIN}\n40\n", f"\n40\n{root}\n"):
        with pytest.raises(LogFormatError):
            Checkpoint.parse(text)
    extended = Checkpoint.parse(f"{ORIGIN}\n4\n{root}\nextension\n")
    assert extended.extensions == ("extension",)


def test_a_tlog_proof_round_trips_and_malformed_ones_are_refused() -> None:
    proof = TlogProof(
        7, (bytes(32), bytes(range(32))), "origin\n1\n" + base64.b64encode(bytes(32)).decode() + "\n", b"{}"
    )
    assert TlogProof.parse(proof.text()) == proof
    bare = dataclasses.replace(proof, extra=None, hashes=())
    assert bare.text().startswith("c2sp.org/tlog-proof@v1\nindex 7\n\n")
    assert TlogProof.parse(bare.text()) == bare
    for text in (
        "c2sp.org/tlog-proof@v2\nindex 1\n\nx",
        "c2sp.org/tlog-proof@v1\nindex 01\n\nx",
        "c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx",
    ):
        with pytest.raises(LogFormatError):
            TlogProof.parse(text)


def test_an_event_proof_verifies_offline_and_what_breaks_it() -> None:
    signer, listed = Signer(), entries(11)
    text = proof_text(listed, 6, 11, signer)
    result = verify_proof(text, signer.key)
    assert result.ok and (result.index, result.tree_size, result.origin) == (6, 11, ORIGIN)
    assert verify_proof(text, signer.key, entry=listed[6]).ok
    assert not verify_proof(text, Signer(b"\x01" * 32).key).ok
    changed = dict(listed[6], amount="600.00")
    assert "not the entry the proof carries" in verify_proof(text, signer.key, entry=changed).problems[0]
    forged = TlogProof.parse(text)
    forged = dataclasses.replace(forged, extra=canonical_json(changed))
    assert any("inclusion proof" in problem for problem in verify_proof(forged.text(), signer.key).problems)
    # A proof from another venue's log, however valid, does not prove this entry.
    elsewhere = proof_text(listed, 6, 11, signer, origin="verify.example/agenitry/another-venue")
    assert any("not of venue" in problem for problem in verify_proof(elsewhere, signer.key).problems)
    shown = dict(listed[6], amount=6.0)
    assert verify_proof(text, signer.key, event=shown).ok
    assert not verify_proof(text, signer.key, event=dict(shown, amount=60.0)).ok


def test_the_shown_occurred_at_must_be_the_entrys_and_none_is_absent() -> None:
    signer, listed = Signer(), entries(4)
    listed[2]["occurred_at"] = "2026-12-02T07:05:00.123Z"
    without, with_time = proof_text(listed, 1, 4, signer), proof_text(listed, 2, 4, signer)
    assert verify_proof(without, signer.key, event={"occurred_at": None}).ok
    assert verify_proof(with_time, signer.key, event={"occurred_at": "2026-12-02T07:05:00.123Z"}).ok
    for text, shown in (
        (without, "2026-12-02T07:05:00.123Z"),
        (with_time, "2026-12-02T07:05:00.124Z"),
        (with_time, None),
    ):
        [problem] = verify_proof(text, signer.key, event={"occurred_at": shown}).problems
        assert problem.startswith(f"the event's occurred_at ({shown!r}) is not the entry's")


# -- a whole log ---------------------------------------------------------------------------------------


def whole_log(count: int = 12, signed_at: tuple[int, ...] = (5, 10)) -> tuple[list[dict[str, Any]], list[str], Signer]:
    signer, listed = Signer(), entries(count)
    leaves = leaves_of(listed)
    return listed, [signer.checkpoint(leaves, size) for size in signed_at], signer


def check(listed: list[dict[str, Any]], notes: list[str], signer: Signer, tree: bool = True) -> tuple[str, Any]:
    original = leaves_of(entries(12))
    report = verify_log(VENUE, listed, notes, signer.key, tree_leaves=original if tree else None)
    assert not report.ok and report.first is not None
    return report.first.kind, report.first.sequence


def test_an_untouched_log_verifies_and_says_what_is_not_signed_yet() -> None:
    listed, notes, signer = whole_log()
    report = verify_log(VENUE, listed, notes, signer.key, tree_leaves=leaves_of(listed))
    assert report.ok and (report.entries, report.checkpoints, report.signed_size) == (12, 2, 10)
    [note] = report.notes
    assert note.startswith("Entries #10 to #11 are not covered by a signed checkpoint yet")
    assert note.endswith("checked against the log's stored tree only.")
    assert verify_log(VENUE, [], [], signer.key).ok


def test_each_kind_of_tampering_is_named_at_its_first_entry() -> None:
    listed, notes, signer = whole_log()
    changed = [dict(entry, amount="999.00") if entry["sequence"] == 3 else entry for entry in listed]
    assert check(changed, notes, signer) == ("changed", 3)
    assert check(listed[:3] + listed[4:], notes, signer) == ("removed", 3)
    swapped = [*listed[:4], listed[6], listed[5], listed[4], *listed[7:]]
    assert check(swapped, notes, signer) == ("reordered", 4)
    assert check([*listed[:5], listed[2], *listed[5:]], notes, signer) == ("inserted", 5)
    assert check(listed[:8], notes, signer) == ("removed", 8)
    foreign = dict(listed[2], venue_id="another-venue")
    assert check([*listed[:2], foreign, *listed[3:]], notes, signer) == ("inserted", 2)


def test_without_the_stored_tree_the_signed_checkpoints_still_locate_a_change() -> None:
    listed, notes, signer = whole_log()
    changed = [dict(entry, amount="999.00") if entry["sequence"] == 7 else entry for entry in listed]
    report = verify_log(VENUE, changed, notes, signer.key)
    assert report.first is not None and (report.first.kind, report.first.sequence) == ("changed", 5)
    assert "from #5 to #9" in report.first.message
    assert check(listed[:8], notes, signer, tree=False) == ("removed", 8)
    # A change after the newest checkpoint cannot be seen without the tree: the report says so.
    late = [dict(entry, amount="999.00") if entry["sequence"] == 11 else entry for entry in listed]
    quiet = verify_log(VENUE, late, notes, signer.key)
    assert quiet.ok and "checked against nothing" in quiet.notes[0]


def test_checkpoints_that_do_not_hold_are_findings() -> None:
    listed, notes, signer = whole_log()
    assert check(listed, [], signer) == ("unsigned", None)
    stranger = Signer(b"\x02" * 32)
    report = verify_log(VENUE, listed, notes, [stranger.key, signer.key])
    assert report.ok  # an unknown key among the trusted ones changes nothing
    alien = verify_log(VENUE, listed, [*notes, stranger.checkpoint(leaves_of(listed), 12)], signer.key)
    assert [finding.kind for finding in alien.findings] == ["signature"]
    other = verify_log(
        VENUE, listed, [*notes, signer.checkpoint(leaves_of(listed), 12, "x.example/log/other")], signer.key
    )
    assert [finding.kind for finding in other.findings] == ["checkpoint"]
    rolled_back = verify_log(VENUE, listed, [notes[1], notes[0]], signer.key)
    assert [finding.kind for finding in rolled_back.findings] == ["checkpoint"]
    assert "cut back" in rolled_back.findings[0].message


def test_the_core_verifier_is_python_3_9_and_standard_library_only() -> None:
    allowed = {"__future__", "array", "base64", "binascii", "collections", "dataclasses", "decimal", "hashlib"}
    allowed |= {"json", "re", "typing", "agenitry", "cryptography"}
    for name in ("_merkle.py", "_ed25519.py", "_tlog.py", "_verify.py"):
        tree = ast.parse((CORE / name).read_text(), feature_version=(3, 9))
        imported = {
            (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) else alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        assert imported <= allowed, (name, imported - allowed)


def test_subtrees_fold_to_the_root_of_any_prefix() -> None:
    leaves = leaves_of(entries(12))
    tree = CompactTree()
    nodes = {}
    for leaf in leaves:
        nodes.update({(level, index): digest for level, index, digest in tree.append(leaf)})
    for size in range(13):
        assert fold([nodes[node] for node in subtrees(0, size)]) == root_of(leaves[:size])
