"""The gateway's Ed25519 key that signs every venue's checkpoints.

Where it comes from (the ``signing_key`` setting, AGENITRY_SIGNING_KEY):

- ``base64:<32-byte seed>``: the key itself, e.g. from a secret store. Several gateway
  instances on one PostgreSQL must share one key this way (or through one file).
- a file path: the file holds the base64 seed; if it does not exist, a new key is
  generated into it at first start, readable by its owner only (mode 0600).
- empty (the default): ``agenitry-signing.key`` next to a SQLite database file. With
  PostgreSQL or an in-memory database there is no safe shared place, so the key lives
  only as long as the process (logged as a warning): set the setting there.

Only the seed is secret. Whoever holds it can sign checkpoints, so it must not live in the
database it vouches for. Rotation: point the setting at a new key; new checkpoints are
signed by it, and every key that ever signed stays listed (``log_keys``), so older
checkpoints stay verifiable. See docs/audit-log.md.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Optional

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import make_url

from agenitry.transparency import b64encode

logger = logging.getLogger("agenitry.gateway")

SEED_PREFIX = "base64:"
DEFAULT_FILE = "agenitry-signing.key"


class SigningKey:
    """An Ed25519 private key and where it came from.

    >>> key = SigningKey.generate()
    >>> len(key.public_key)
    32
    """

    def __init__(self, seed: bytes, *, source: str = "memory") -> None:
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key = self._private.public_key().public_bytes_raw()
        self.source = source

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(secrets.token_bytes(32))

    @property
    def public_key_b64(self) -> str:
        return b64encode(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def seed_b64(self) -> str:
        return b64encode(self._private.private_bytes_raw())

    @classmethod
    def from_setting(cls, setting: str, database_url: str, *, create: bool = True) -> Optional[SigningKey]:
        """The key a setting names (see the module's docstring).

        With ``create=False`` a missing file gives None instead of a new key: commands
        other than ``serve`` never make keys.
        """
        if setting.startswith(SEED_PREFIX):
            return cls(_decode_seed(setting[len(SEED_PREFIX) :], "the signing_key setting"), source="setting")
        path = Path(setting) if setting else default_path(database_url)
        if path is None:
            if not create:
                return None
            logger.warning(
                "No signing key is configured: checkpoints are signed with a key that lives only as long as "
                "this process. Set AGENITRY_SIGNING_KEY (a file, or base64:<seed>) shared by every instance."
            )
            return cls.generate()
        if path.exists():
            return cls.load(path)
        if not create:
            return None
        return cls.create(path)

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        mode = path.stat().st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning("The signing key %s is readable by others (mode %o): chmod 600 it", path, mode & 0o777)
        return cls(_decode_seed(path.read_text().strip(), str(path)), source=str(path))

    @classmethod
    def create(cls, path: Path) -> SigningKey:
        """Generate a key into ``path`` (mode 0600); if another process made it first, use theirs."""
        key = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as sink:
                sink.write(key.seed_b64() + "\n")
            # A hard link never replaces an existing file: instances starting together agree on one key.
            os.link(draft, path)
        except FileExistsError:
            return cls.load(path)
        finally:
            draft.unlink(missing_ok=True)
        logger.warning("Generated a new checkpoint signing key in %s (public key %s)", path, key.public_key_b64)
        return cls(key._private.private_bytes_raw(), source=str(path))


def default_path(database_url: str) -> Optional[Path]:
    """``agenitry-signing.key`` beside a SQLite database file; None for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve().with_name(DEFAULT_FILE)


def _decode_seed(text: str, where: str) -> bytes:
    try:
        seed = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where} does not hold a base64 Ed25519 seed") from None
    if len(seed) != 32:
        raise ValueError(f"{where} does not hold a 32-byte Ed25519 seed")
    return seed
