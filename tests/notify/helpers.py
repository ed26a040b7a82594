"""Events and targets shared by the notification tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.notify import EVENT_KINDS, EventTarget, NotificationEvent, parse_notifications, resolve_targets
from server.notify.config import DeliveryTarget

SECRET = "whsec-test-0123456789abcdef"
CONSOLE = "https://steward.example.com/console/requests/apr_TESTREQUEST0001"
STATUS_FOR_KIND = {
    "created": "pending",
    "approved": "approved",
    "denied": "denied",
    "executed": "executed",
    "failed": "failed",
    "expired": "expired",
}


def event(kind: str = "created", **overrides: object) -> NotificationEvent:
    fields: dict[str, object] = {
        "kind": kind,
        "request_id": "apr_TESTREQUEST0001",
        "tool": "add_user_to_group",
        "requester": "alice",
        "status": STATUS_FOR_KIND[kind],
        "preview": "Add user bob@example.com (Explorer) to group 'Sales EMEA' (12 members -> 13).",
        "targets": (EventTarget("user", "bob@example.com", "u-1"), EventTarget("group", "Sales EMEA", "g-1")),
        "console_url": CONSOLE,
        "required_approvals": 2,
        "expires_at": datetime(2026, 12, 2, 12, 0, tzinfo=UTC),
        "occurred_at": datetime(2026, 12, 1, 12, 0, tzinfo=UTC) + timedelta(minutes=EVENT_KINDS.index(kind)),
    }
    if kind in ("approved", "denied"):
        fields |= {
            "actor": "site-admin",
            "reason": "ticket OPS-42",
            "approvals": 2 if kind == "approved" else 0,
        }
    if kind in ("executed", "failed"):
        fields |= {
            "result": "bob@example.com added to Sales EMEA" if kind == "executed" else "HTTP 409 from Tableau"
        }
    fields |= overrides
    return NotificationEvent(**fields)  # type: ignore[arg-type]


def all_events() -> list[NotificationEvent]:
    return [event(kind) for kind in EVENT_KINDS]


def targets(*entries: tuple[str, str, str], secret: str = SECRET) -> tuple[DeliveryTarget, ...]:
    """Targets (name, format, url) through the real config path: the URL and secret come from the environment."""
    environ: dict[str, str] = {}
    raw_targets = []
    for i, (name, fmt, url) in enumerate(entries):
        environ[f"URL_{i}"] = url
        entry = {"name": name, "format": fmt, "url_env": f"URL_{i}"}
        if fmt == "webhook":
            environ[f"SECRET_{i}"] = secret
            entry["secret_env"] = f"SECRET_{i}"
        raw_targets.append(entry)
    return resolve_targets(parse_notifications({"targets": raw_targets}), environ=environ)
