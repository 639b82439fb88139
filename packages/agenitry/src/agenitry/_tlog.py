"""The text formats of a transparency log: C2SP signed notes, checkpoints and tlog-proofs.

    signed note      text ending in "\\n", a blank line, then one line per signature:
                     "— <key name> <base64(4-byte key id || Ed25519 signature)>\\n"
    checkpoint       a signed note whose text is: origin, tree size, base64 root hash
    .tlog-proof      "c2sp.org/tlog-proof@v1", optional "extra <base64>", "index <n>",
                     one base64 hash per line, a blank line, then the checkpoint verbatim

Specifications: c2sp.org/signed-note, c2sp.org/tlog-checkpoint, c2sp.org/tlog-proof.
Parsing is strict (canonical base64, no leading zeros, no stray control characters), so
two different texts never pass for the same statement. Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from agenitry._ed25519 import verify as ed25519_verify
from agenitry._merkle import HASH_SIZE

#: The signature type of Ed25519 in signed notes (and in key ids).
ED25519 = b"\x01"
PROOF_HEADER = "c2sp.org/tlog-proof@v1"
#: A note with more signature lines than this is refused (the spec asks for at least 16).
MAX_SIGNATURES = 64
_DASH = "\u2014"
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class LogFormatError(ValueError):
    """A note, checkpoint, proof or key that is not well formed, or not signed by a trusted key."""


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, size: Optional[int] = None, what: str = "value") -> bytes:
    """Strict standard base64: canonical padding, no white space, the given length."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise LogFormatError(f"the {what} is not base64: {text[:60]!r}") from None
    if b64encode(data) != text or (size is not None and len(data) != size):
        raise LogFormatError(f"the {what} is not {size or 'canonical'} bytes of base64: {text[:60]!r}")
    return data


# -- keys ----------------------------------------------------------------------------------


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id of an Ed25519 key under ``name``: SHA-256(name || "\\n" || 0x01 || key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519 + public_key).digest()[:4]


def check_key_name(name: str) -> str:
    if not name or any(char.isspace() or char == "+" for char in name) or _CONTROL.search(name):
        raise LogFormatError(f"a key name must be non-empty, without spaces or '+': {name!r}")
    return name


def verifier_key(name: str, public_key: bytes) -> str:
    """The note verifier key ("vkey") of Go's sumdb/note: name+hex key id+base64(0x01 || key).

    >>> verifier_key("example.com/log", bytes(32)).startswith("example.com/log+")
    True
    """
    return f"{check_key_name(name)}+{key_id(name, public_key).hex()}+{b64encode(ED25519 + public_key)}"


@dataclass(frozen=True)
class TrustedKey:
    """An Ed25519 public key a verifier trusts; ``name`` pins the key name when set."""

    public_key: bytes
    name: Optional[str] = None

    @classmethod
    def parse(cls, text: str) -> TrustedKey:
        """A key as people pass it around: base64 of the 32 bytes, 64 hex digits, or a vkey.

        >>> TrustedKey.parse("A" * 43 + "=").public_key == bytes(32)
        True
        """
        text = text.strip()
        if re.fullmatch(r"[A-Za-z0-9+/]{43}=", text):
            return cls(b64decode(text, size=32, what="public key"))
        if re.fullmatch(r"[0-9a-fA-F]{64}", text):
            return cls(bytes.fromhex(text))
        if text.count("+") < 2:
            raise LogFormatError("a public key is base64 of 32 bytes, 64 hex digits, or name+id+key")
        name, hex_id, material = text.split("+", 2)
        data = b64decode(material, size=33, what="verifier key")
        if data[:1] != ED25519:
            raise LogFormatError("the verifier key is not an Ed25519 key (type 0x01)")
        if key_id(check_key_name(name), data[1:]).hex() != hex_id.lower():
            raise LogFormatError("the verifier key's id does not match its name and key")
        return cls(data[1:], name)

    def matches(self, name: str, kid: bytes) -> bool:
        return (self.name is None or self.name == name) and key_id(name, self.public_key) == kid

    def __str__(self) -> str:
        return b64encode(self.public_key)


# -- signed notes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_DASH} {self.name} {b64encode(self.key_id + self.signature)}\n"


def format_note(text: str, signatures: Sequence[NoteSignature]) -> str:
    """A signed note: the text, a blank line, the signature lines."""
    return text + "\n" + "".join(signature.line() for signature in signatures)


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """The text of a signed note and its signatures, unverified."""
    if _CONTROL.search(note) or not note.endswith("\n"):
        raise LogFormatError("a signed note ends with a newline and holds no control characters")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise LogFormatError("a signed note needs a blank line before its signatures")
    text, lines = note[: cut + 1], note[cut + 2 :].split("\n")[:-1]
    if not lines or len(lines) > MAX_SIGNATURES:
        raise LogFormatError(f"a signed note has 1 to {MAX_SIGNATURES} signature lines")
    signatures = []
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise LogFormatError(f"not a signature line: {line[:80]!r}")
        blob = b64decode(parts[2], what="signature")
        if len(blob) < 5:
            raise LogFormatError("a signature is a 4-byte key id and the signature")
        signatures.append(NoteSignature(check_key_name(parts[1]), blob[:4], blob[4:]))
    return text, signatures


def open_note(note: str, keys: Sequence[TrustedKey]) -> tuple[str, TrustedKey]:
    """The text of ``note`` and the trusted key that signed it.

    As the signed-note spec says: signatures of unknown keys are ignored, a bad signature
    of a known key rejects the note, and at least one known key must have signed.
    """
    text, signatures = split_note(note)
    signer = None
    for signature in signatures:
        for key in keys:
            if key.matches(signature.name, signature.key_id):
                if not ed25519_verify(key.public_key, text.encode("utf-8"), signature.signature):
                    raise LogFormatError(f"the signature of {signature.name} does not verify")
                signer = signer or key
    if signer is None:
        raise LogFormatError("the note is not signed by any trusted key")
    return text, signer


# -- checkpoints ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed statement: the tree of ``origin`` has ``size`` leaves and ``root``."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The note text: origin, size and base64 root, one a line."""
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), b64encode(self.root), *self.extensions))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """A checkpoint from its note text (see :func:`open_note` for the signatures)."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise LogFormatError("a checkpoint is at least three non-empty lines")
        origin, size, root = lines[0], lines[1], lines[2]
        if not _DECIMAL.fullmatch(size):
            raise LogFormatError(f"a checkpoint's size is a decimal without leading zeros: {size!r}")
        return cls(origin, int(size), b64decode(root, size=HASH_SIZE, what="root hash"), tuple(lines[3:-1]))


def open_checkpoint(note: str, keys: Sequence[TrustedKey]) -> tuple[Checkpoint, TrustedKey]:
    """Verify a signed checkpoint; returns it and the key that signed it."""
    text, signer = open_note(note, keys)
    return Checkpoint.parse(text), signer


# -- tlog proofs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlogProof:
    """An offline proof that the entry at ``index`` is in the checkpointed tree."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: Optional[bytes] = None

    def text(self) -> str:
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64encode(digest) for digest in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def parse(cls, text: str) -> TlogProof:
        lines = text.split("\n")
        if lines[0] != PROOF_HEADER:
            raise LogFormatError(f"a tlog-proof starts with {PROOF_HEADER!r}")
        at, extra = 1, None
        if len(lines) > at and lines[at].startswith("extra "):
            extra = b64decode(lines[at][6:], what="extra data")
            at += 1
        match = re.fullmatch(r"index (0|[1-9][0-9]{0,18})", lines[at] if len(lines) > at else "")
        if match is None:
            raise LogFormatError("a tlog-proof names its entry's index")
        rest = lines[at + 1 :]
        if "" not in rest:
            raise LogFormatError("a tlog-proof ends with a blank line and the checkpoint")
        blank = rest.index("")
        hashes = tuple(b64decode(line, size=HASH_SIZE, what="proof hash") for line in rest[:blank])
        return cls(int(match.group(1)), hashes, "\n".join(rest[blank + 1 :]), extra)
