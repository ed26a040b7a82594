"""How Tableau Steward signs generic webhook deliveries, and how a receiver checks them.

Every delivery carries::

    X-Steward-Timestamp: 1764619200                 # Unix seconds when this attempt was sent
    X-Steward-Signature: v1=<hex HMAC-SHA256>       # over the bytes  "v1:" + timestamp + ":" + raw body
    X-Steward-Event:     request.approved
    X-Steward-Delivery:  dlv_...                    # one event to one target: the same on every retry, from every server

A receiver recomputes the HMAC with the shared secret over the raw body it received, compares in
constant time, refuses a timestamp more than 5 minutes from its clock (a captured request cannot be
replayed later) and remembers the delivery ids it accepted within that window (a retry of a
delivery it already processed, or a replay inside the window, is acknowledged and ignored).

Each retry is signed afresh with its own timestamp, so a delivery retried after minutes is not stale.
This module uses only the standard library: receivers may copy `verify_signature` as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_VERSION = "v1"
TIMESTAMP_HEADER = "X-Steward-Timestamp"
SIGNATURE_HEADER = "X-Steward-Signature"
EVENT_HEADER = "X-Steward-Event"
DELIVERY_HEADER = "X-Steward-Delivery"
TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The delivery is not authentic or not fresh. `reason`: missing, bad_timestamp, stale, bad_signature."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def compute_signature(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """'v1=<hex>': HMAC-SHA256 keyed by `secret` over b'v1:{timestamp}:' + body."""
    message = f"{SIGNATURE_VERSION}:{timestamp}:".encode("ascii") + body
    return f"{SIGNATURE_VERSION}=" + hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def signature_headers(secret: str | bytes, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The timestamp and signature headers for one attempt at sending `body`."""
    timestamp = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: compute_signature(secret, timestamp, body)}


def verify_signature(
    secret: str | bytes,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> None:
    """Raise SignatureError unless `signature` (the X-Steward-Signature header) signs `body` at `timestamp`
    (the X-Steward-Timestamp header) with `secret`, and `timestamp` is within `tolerance` seconds of now.

    The header may list several comma-separated 'v1=' values (a sender rotating its secret); one match is
    enough. `body` must be the raw bytes received, before any JSON parsing.
    """
    if not timestamp or not signature:
        raise SignatureError("missing", f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):  # not ' 1', '+1' or '١'
        raise SignatureError("bad_timestamp", f"{TIMESTAMP_HEADER} is not a Unix time in seconds")
    sent_at = int(timestamp)
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        raise SignatureError("stale", f"{TIMESTAMP_HEADER} is more than {tolerance:g} s from this clock")
    expected = compute_signature(secret, timestamp, body)
    candidates = [part.strip() for part in signature.split(",")]
    # compare_digest on every candidate (no early exit on the first mismatch's position).
    if not any([hmac.compare_digest(expected.encode(), c.encode()) for c in candidates]):  # noqa: C419
        raise SignatureError("bad_signature", f"{SIGNATURE_HEADER} does not match the body")
