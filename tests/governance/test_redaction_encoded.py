"""Secret-looking values in audited query strings and free text are redacted, even percent-encoded."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from server.governance.audit import AuditLog
from server.governance.canonical import REDACTED, scrub_text
from tests.governance.helpers import stored_bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pageSize=100&api_key=AKIA1234&x=1", f"pageSize=100&api_key={REDACTED}&x=1"),
        ("%74oken=abcdef123&a=1", f"token={REDACTED}&a=1"),  # the name itself encoded
        ("q=Bearer%20abcdefgh12345678", f"q=Bearer {REDACTED}"),
        ("next=https%3A%2F%2Fx.example%2F%3Fsession_id%3Dzz9912", f"next=https://x.example/?session_id={REDACTED}"),
        ("a=password%253Dhunter2x", f"a=password={REDACTED}"),  # encoded twice
        ("note: see password=hunter2x", f"note: see password={REDACTED}"),
    ],
)
def test_secret_parameters_are_redacted_encoded_or_not(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@pytest.mark.parametrize(
    "text",
    ["pageSize=1000&filter=name:eq:Sales%20Report", "fields=_default_,userCount", "a=b=c", "token=", "100%"],
)
def test_ordinary_text_is_left_exactly_as_it_was(text: str) -> None:
    assert scrub_text(text) == text


def test_an_audited_tableau_request_never_stores_an_encoded_secret(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    event = SimpleNamespace(
        method="GET", path="/api/3.24/sites/x/users", query="pageSize=100&X-Tableau-Auth=c2VjcmV0LXNlc3Npb24%3D",
        status=200, duration_ms=1.0, attempt=1, operation_id="call_1", error=None,
    )
    record = log.record_tableau_request(event)
    assert record.fields["query"] == f"pageSize=100&X-Tableau-Auth={REDACTED}"
    log.close()
    raw = stored_bytes(store_path)
    assert b"c2VjcmV0LXNlc3Npb24" not in raw
