"""The notification event: one thing that happened to an approval request, as receivers see it.

Events are built by the approvals integration (never by tools) from the stored request, so the
targets, preview and status are those the approvers decide on. Free text is scrubbed of credentials
and capped, so an event never carries a secret and never grows without bound.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from server.governance.canonical import scrub_text

EventKind = Literal["created", "approved", "denied", "executed", "failed", "expired"]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
# Longest preview/result text an event carries; receivers get the full text from the console.
MAX_TEXT = 8000
TRUNCATED = "\n… ({n} more characters; see the console)"


def cap_text(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """`text` scrubbed of credentials and cut to `limit` characters, saying how much was cut."""
    if text is None:
        return None
    text = scrub_text(text)
    if len(text) <= limit:
        return text
    keep = max(0, limit - len(TRUNCATED.format(n=len(text))))  # the marker's longest form fits
    return text[:keep] + TRUNCATED.format(n=len(text) - keep)


def _now() -> datetime:
    return datetime.now(tz=UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class EventTarget:
    """One object the request acts on, as resolved from the site: ('group', 'Sales', '<luid>')."""

    kind: str
    name: str
    id: str | None = None

    def label(self) -> str:
        return f"{self.kind} {self.name}" + (f" ({self.id})" if self.id else "")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "id": self.id}


@dataclass(frozen=True)
class NotificationEvent:
    """Request `request_id` was created, approved, denied, executed, failed or expired.

    `actor`/`reason` say who decided and why (approved, denied); `result` is the execution's
    summary (executed, failed); `console_url` links to the request in the approval console.
    """

    kind: EventKind
    request_id: str
    tool: str
    requester: str
    status: str
    preview: str
    targets: tuple[EventTarget, ...] = ()
    console_url: str | None = None
    actor: str | None = None
    reason: str | None = None
    result: str | None = None
    approvals: int = 0
    required_approvals: int = 1
    expires_at: datetime | None = None
    occurred_at: datetime = field(default_factory=_now)
    # Default: derived from the request and the kind. A request has at most one event of each kind, so two
    # server processes reporting the same transition send the same id, and receivers can deduplicate.
    event_id: str = ""

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; known: {', '.join(EVENT_KINDS)}")
        if not self.request_id or not self.tool or not self.requester:
            raise ValueError("an event needs a request id, a tool and a requester")
        # Frozen dataclass: normalise the free text once, here, so every format sends the same text.
        object.__setattr__(self, "targets", tuple(self.targets))
        if not self.event_id:
            digest = hashlib.sha256(f"{self.request_id}:{self.kind}".encode()).hexdigest()
            object.__setattr__(self, "event_id", "evt_" + digest[:24])
        object.__setattr__(self, "preview", cap_text(self.preview) or "")
        object.__setattr__(self, "reason", cap_text(self.reason, 2000))
        object.__setattr__(self, "result", cap_text(self.result))

    @property
    def name(self) -> str:
        """The event's type as receivers see it: 'request.created', 'request.approved', ..."""
        return f"request.{self.kind}"

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of a generic webhook delivery (schema 'steward.notification.v1')."""
        return {
            "schema": "steward.notification.v1",
            "event": self.name,
            "event_id": self.event_id,
            "occurred_at": iso(self.occurred_at),
            "request_id": self.request_id,
            "tool": self.tool,
            "requester": self.requester,
            "status": self.status,
            "targets": [t.as_dict() for t in self.targets],
            "preview": self.preview,
            "approvals": {"given": self.approvals, "required": self.required_approvals},
            "expires_at": iso(self.expires_at),
            "actor": self.actor,
            "reason": self.reason,
            "result": self.result,
            "console_url": self.console_url,
        }
