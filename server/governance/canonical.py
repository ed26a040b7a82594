"""Canonical JSON, digests and secret redaction shared by the policy, the audit log and approvals.

Canonical JSON is `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`
of JSON-native values (dict with str keys, list/tuple, str, int, float, bool, None). Anything else is a
`TypeError`: callers convert datetimes, models, ... before hashing, so a digest never depends on `repr`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

REDACTED = "[REDACTED]"

# Substrings that make an argument/field name secret-looking (compared on the lower-cased name with
# every non-alphanumeric character removed, so `api-key`, `API_KEY` and `apiKey` all match `apikey`).
SECRET_NAME_PARTS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "jwt",
    "authorization",
    "apikey",
    "credential",
    "cookie",
    "privatekey",
    "sessionid",
    "signature",
)
# Names that are secret only when they are the whole (normalised) name or its suffix: `auth`, `pat`, ...
SECRET_NAME_SUFFIXES: tuple[str, ...] = ("auth", "pat", "pwd", "bearer", "session")

# Values that look like credentials wherever they appear in a string.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
# `name=value` pairs sit between these in query strings and free text; a name is the run of these
# characters just before its '='.
_PARAM_SEPARATORS = re.compile(r"([&;?#\s])")
_PARAM_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]*$")
MAX_DECODE_ROUNDS = 3  # percent-decoding rounds tried, for values encoded twice or three times


def canonical_json(value: Any) -> str:
    """The canonical JSON text of `value` (sorted keys, compact, UTF-8, no NaN)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def args_digest(arguments: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of a call's arguments: binds approvals and audit records to a call."""
    return sha256_hex(canonical_json(dict(arguments)))


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def is_secret_name(name: str, extra: Iterable[str] = ()) -> bool:
    """True when an argument or field called `name` must never be stored in clear."""
    norm = _normalise(name)
    if not norm:
        return False
    if any(part in norm for part in SECRET_NAME_PARTS):
        return True
    if any(norm == s or norm.endswith(s) for s in SECRET_NAME_SUFFIXES):
        return True
    return norm in {_normalise(e) for e in extra}


def _scrub_plain(text: str) -> str:
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return _scrub_params(text) if "=" in text else text


def _scrub_params(text: str) -> str:
    """Redact the value after every secret-looking `name=` ('a=password=x' too, as a decoded value can be)."""
    pieces = _PARAM_SEPARATORS.split(text)
    for index, piece in enumerate(pieces):
        if "=" not in piece:
            continue
        parts = piece.split("=")
        for i in range(len(parts) - 1):
            name = _PARAM_NAME.search(parts[i]).group(0)  # type: ignore[union-attr]  (always matches)
            if name and is_secret_name(name) and any(parts[i + 1 :]):
                parts[i + 1 :] = [REDACTED]  # the whole value, base64 padding ('abc==') included
                break
        pieces[index] = "=".join(parts)
    return "".join(pieces)


def scrub_text(text: str) -> str:
    """Replace JWTs, bearer/basic credentials, user:password@ in URLs and secret-looking `name=value`
    parameters inside free text and query strings, also when they are percent-encoded (once or more).

    Text whose decoded form hides a secret is stored decoded and scrubbed; other text is left as it was.
    """
    scrubbed = _scrub_plain(text)
    decoded = text
    for _ in range(MAX_DECODE_ROUNDS):
        if "%" not in decoded:
            break
        decoded = unquote(decoded)
        clean = _scrub_plain(decoded)
        if clean != decoded:
            return clean
    return scrubbed


class Redactor:
    """Redacts secret-looking keys (built-in list plus `extra_names`) and scrubs credential-like values.

    `redact(value)` returns a new JSON-native structure; the input is never modified.
    """

    def __init__(self, extra_names: Iterable[str] = ()) -> None:
        self.extra = frozenset(_normalise(n) for n in extra_names if _normalise(n))

    def is_secret(self, name: str) -> bool:
        return is_secret_name(name) or _normalise(name) in self.extra

    def redact(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                str(k): (REDACTED if self.is_secret(str(k)) and v is not None else self.redact(v))
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.redact(v) for v in value]
        if isinstance(value, str):
            return scrub_text(value)
        return value


def redact(value: Any, extra_names: Iterable[str] = ()) -> Any:
    """One-off redaction; use a `Redactor` on hot paths."""
    return Redactor(extra_names).redact(value)
