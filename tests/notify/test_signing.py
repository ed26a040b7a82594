"""The X-Steward-Signature scheme, checked the way a receiver would check it."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from server.notify import SignatureError, compute_signature, signature_headers, verify_signature
from server.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER

SECRET = "whsec-0123456789"
BODY = b'{"event":"request.created"}'
NOW = 1_764_590_400


def test_the_signature_is_hmac_sha256_of_v1_timestamp_body() -> None:
    expected = hmac.new(SECRET.encode(), b"v1:" + str(NOW).encode() + b":" + BODY, hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, NOW, BODY) == f"v1={expected}"
    headers = signature_headers(SECRET, BODY, now=NOW)
    assert headers == {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: f"v1={expected}"}
    verify_signature(SECRET, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], BODY, now=NOW + 299)


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "now", "reason"),
    [
        (None, "v1=00", BODY, NOW, "missing"),
        (str(NOW), "", BODY, NOW, "missing"),
        ("yesterday", "v1=00", BODY, NOW, "bad_timestamp"),
        ("\u0661\u0662", "v1=00", BODY, NOW, "bad_timestamp"),  # digits int() accepts, not ASCII
        (f" {NOW}", "v1=00", BODY, NOW, "bad_timestamp"),
        (str(NOW), None, BODY, NOW + 301, "missing"),
        (str(NOW), "sig", BODY, NOW + 301, "stale"),
        (str(NOW), "sig", BODY, NOW - 301, "stale"),
        (str(NOW), "sig", BODY + b" ", NOW, "bad_signature"),
    ],
)
def test_receivers_refuse_what_is_missing_stale_or_forged(timestamp, signature, body, now, reason) -> None:
    if signature == "sig":
        signature = compute_signature(SECRET, NOW, BODY)
    with pytest.raises(SignatureError) as info:
        verify_signature(SECRET, timestamp, signature, body, now=now)
    assert info.value.reason == reason


def test_a_signature_made_with_another_secret_or_timestamp_fails() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, str(NOW), compute_signature("other", NOW, BODY), BODY, now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(SECRET, str(NOW + 1), compute_signature(SECRET, NOW, BODY), BODY, now=NOW)


def test_one_matching_value_among_several_is_enough_for_secret_rotation() -> None:
    header = f"{compute_signature('old-secret', NOW, BODY)}, {compute_signature(SECRET, NOW, BODY)}"
    verify_signature(SECRET, str(NOW), header, BODY, now=NOW)
