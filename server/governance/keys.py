"""The server's signing key: seals approval records and keys the audit chain.

The key never lives in the store. It comes from ``STEWARD_SIGNING_KEY`` (hex or base64, at least 32 bytes),
or from a key file (mode 0600) that must sit outside the store's directory, so that write access to the
store alone can neither read nor forge a seal. On first start, with neither present, the key file is
created and a clear message says where; every replica that shares a store must be given the same key.

A store remembers the *id* of the key it was sealed with (`key_id`, a MAC of a fixed label, never the key),
so a replica started with another key is refused with a clear message instead of sealing a second chain.

Seals are HMAC-SHA256 over ``purpose NUL payload``: the purpose ("audit", "approval.request",
"approval.decision", ...) keeps a seal made for one kind of record from verifying as another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENV_KEY = "STEWARD_SIGNING_KEY"
ENV_KEY_FILE = "STEWARD_SIGNING_KEY_FILE"
MIN_KEY_BYTES = 32


class SigningKeyError(RuntimeError):
    """The signing key is missing, malformed, badly protected or in the wrong place. Refuse to start."""


@dataclass(frozen=True, repr=False)
class SigningKey:
    """A loaded key. Its repr never shows the key material."""

    material: bytes
    source: str  # "env" or the key file's path, for messages

    def __repr__(self) -> str:
        return f"SigningKey(id={self.key_id}, source={self.source})"

    @property
    def key_id(self) -> str:
        return seal(self, "key-id", b"tableau-steward")[:16]


def default_key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tableau-steward" / "signing.key"


def _decode(text: str, source: str) -> bytes:
    text = text.strip()
    raw: bytes | None = None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) < MIN_KEY_BYTES:
        raise SigningKeyError(
            f"the signing key from {source} must be at least {MIN_KEY_BYTES} bytes, hex or base64 encoded; "
            f"make one with: python -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return raw


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


def load_signing_key(
    store_path: Path | None,
    *,
    key_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    create: bool = True,
) -> SigningKey:
    """Load the key from the environment, else from the key file (created when `create` and missing).

    `store_path` is the SQLite store (or None for a database URL): a key file in the store's directory is
    refused, since whoever can write the store could then read the key.
    """
    env = os.environ if env is None else env
    if env.get(ENV_KEY):
        return SigningKey(_decode(env[ENV_KEY], ENV_KEY), "env")
    path = Path(key_file or env.get(ENV_KEY_FILE) or default_key_file()).expanduser()
    if store_path is not None and _inside(path, Path(store_path).parent):
        raise SigningKeyError(
            f"the signing key file {path} is in the audit store's directory; keep it elsewhere "
            f"(set {ENV_KEY_FILE} or {ENV_KEY})"
        )
    if not path.exists():
        if not create:
            raise SigningKeyError(f"no signing key: set {ENV_KEY} or {ENV_KEY_FILE} (looked for {path})")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        log.warning(
            "created a new signing key at %s (mode 0600). Every server sharing this store needs the same key: "
            "copy the file or set %s.",
            path,
            ENV_KEY,
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SigningKeyError(f"the signing key file {path} is readable by others (mode {mode:o}); chmod 600 it")
    return SigningKey(_decode(path.read_text(), str(path)), str(path))


def seal(key: SigningKey, purpose: str, payload: bytes | str) -> str:
    """Hex HMAC-SHA256 of ``purpose NUL payload``."""
    data = payload.encode() if isinstance(payload, str) else payload
    return hmac.new(key.material, purpose.encode() + b"\0" + data, hashlib.sha256).hexdigest()


def check_seal(key: SigningKey, purpose: str, payload: bytes | str, tag: str | None) -> bool:
    """Constant-time check of a seal made by `seal`."""
    return bool(tag) and hmac.compare_digest(seal(key, purpose, payload), str(tag))
