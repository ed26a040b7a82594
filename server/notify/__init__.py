"""Notifications about approval requests: typed events, three payload formats, signed delivery with retries.

- `events`: `NotificationEvent` (created, approved, denied, executed, failed, expired).
- `config`: the `notifications:` policy section (`parse_notifications`) and its secrets (`resolve_targets`).
- `formats`: generic JSON webhook, Slack Block Kit, Teams Adaptive Card.
- `signing`: the `X-Steward-Signature` scheme and `verify_signature` for receivers.
- `delivery`: `NotificationDispatcher`, the non-blocking, retrying, audited delivery worker.

See docs/GOVERNANCE.md, "Notifications".
"""

from server.notify.config import (
    DeliveryTarget,
    NotificationsError,
    NotificationsSpec,
    NotificationTargetSpec,
    parse_notifications,
    redact_url,
    resolve_targets,
)
from server.notify.delivery import AttemptRecord, NotificationDispatcher, RetryPolicy
from server.notify.events import EVENT_KINDS, EventTarget, NotificationEvent
from server.notify.formats import slack_message, teams_message, webhook_body
from server.notify.signing import SignatureError, compute_signature, signature_headers, verify_signature

__all__ = [
    "EVENT_KINDS",
    "AttemptRecord",
    "DeliveryTarget",
    "EventTarget",
    "NotificationDispatcher",
    "NotificationEvent",
    "NotificationTargetSpec",
    "NotificationsError",
    "NotificationsSpec",
    "RetryPolicy",
    "SignatureError",
    "compute_signature",
    "parse_notifications",
    "redact_url",
    "resolve_targets",
    "signature_headers",
    "slack_message",
    "teams_message",
    "verify_signature",
    "webhook_body",
]
