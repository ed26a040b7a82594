"""The three payload formats: a generic signed JSON webhook, Slack Block Kit, a Teams Adaptive Card.

Slack (incoming webhook, https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks):
`{"text": <fallback>, "blocks": [header, section fields, targets, preview, context, actions]}`. A
`created` event carries Approve / Deny buttons (`action_id` APPROVE_ACTION / DENY_ACTION, `value` the
request id) that post to the app's interactivity URL (see server/integrations/slack.py), and a link
button to the console. Limits respected: header text 150, section text 3000, field 2000, button text 75.

Teams (incoming webhook or Workflows): `{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard 1.4>}]}`. Incoming webhooks cannot
call back into the server, so the card's only action opens the console.
"""

from __future__ import annotations

import json
from typing import Any

from server.notify.events import NotificationEvent, cap_text, iso

APPROVE_ACTION = "steward_approve"
DENY_ACTION = "steward_deny"
CONSOLE_ACTION = "steward_open_console"
ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
ADAPTIVE_CARD_VERSION = "1.4"
SLACK_SECTION_LIMIT = 3000
SLACK_HEADER_LIMIT = 150
MAX_TARGETS_SHOWN = 20

TITLES = {
    "created": "Approval needed",
    "approved": "Approved",
    "denied": "Denied",
    "executed": "Executed",
    "failed": "Failed",
    "expired": "Expired",
}


def title(event: NotificationEvent) -> str:
    return f"{TITLES[event.kind]}: {event.tool}"


def summary(event: NotificationEvent) -> str:
    """One plain line: the notification text of chat clients, and the fallback of rich messages."""
    line = f"{title(event)} requested by {event.requester} ({event.request_id})"
    if event.actor:
        line += f", {event.kind} by {event.actor}"
    return line


def target_lines(event: NotificationEvent) -> list[str]:
    """One line per target, at most MAX_TARGETS_SHOWN, then how many more there are."""
    lines = [t.label() for t in event.targets[:MAX_TARGETS_SHOWN]]
    if len(event.targets) > MAX_TARGETS_SHOWN:
        lines.append(f"… and {len(event.targets) - MAX_TARGETS_SHOWN} more")
    return lines or ["(none resolved)"]


def facts(event: NotificationEvent) -> list[tuple[str, str]]:
    """The (label, value) pairs every rich format shows."""
    rows = [
        ("Requested by", event.requester),
        ("Tool", event.tool),
        ("Status", event.status),
        ("Approvals", f"{event.approvals} of {event.required_approvals}"),
        ("Request", event.request_id),
    ]
    if event.expires_at is not None and event.kind == "created":
        rows.append(("Expires", iso(event.expires_at) or ""))
    if event.actor:
        rows.append(("Decided by", event.actor))
    if event.reason:
        rows.append(("Reason", event.reason))
    return rows


# -- generic webhook ----------------------------------------------------------------------------------


def _compact_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def webhook_body(event: NotificationEvent) -> bytes:
    """The exact bytes that are signed and sent (compact JSON, UTF-8)."""
    return _compact_json(event.as_dict())


# -- Slack Block Kit ------------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Slack mrkdwn control characters (&, <, >) escaped as Slack documents, so names cannot inject links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code_block(text: str, limit: int) -> str:
    body = cap_text(slack_escape(text).replace("```", "`\u200b``"), limit - 8) or ""
    return f"```{body}```"


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": False}


def slack_blocks(event: NotificationEvent, *, with_buttons: bool = True) -> list[dict[str, Any]]:
    """The Block Kit blocks for `event`. Approve/Deny buttons only while the request is pending."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(cap_text(title(event), SLACK_HEADER_LIMIT) or "")},
        {
            "type": "section",
            "fields": [_mrkdwn(f"*{label}*\n{slack_escape(value)[:1900]}") for label, value in facts(event)],
        },
        {
            "type": "section",
            "text": _mrkdwn(
                cap_text(
                    "*Targets*\n" + "\n".join(f"• {slack_escape(t)}" for t in target_lines(event)),
                    SLACK_SECTION_LIMIT,
                )
                or ""
            ),
        },
    ]
    if event.preview:
        blocks.append({"type": "section", "text": _mrkdwn("*Preview*\n" + _code_block(event.preview, 2980))})
    if event.result:
        blocks.append({"type": "section", "text": _mrkdwn("*Result*\n" + _code_block(event.result, 2980))})
    blocks.append({"type": "context", "elements": [_mrkdwn(slack_escape(summary(event))[:2900])]})
    elements: list[dict[str, Any]] = []
    if with_buttons and event.kind == "created":
        elements += [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "text": _plain("Approve"),
                "style": "primary",
                "value": event.request_id,
            },
            {
                "type": "button",
                "action_id": DENY_ACTION,
                "text": _plain("Deny"),
                "style": "danger",
                "value": event.request_id,
            },
        ]
    if event.console_url:
        elements.append(
            {
                "type": "button",
                "action_id": CONSOLE_ACTION,
                "text": _plain("Open the console"),
                "url": event.console_url,
                "value": event.request_id,
            }
        )
    if elements:
        blocks.append(
            {"type": "actions", "block_id": f"steward:{event.request_id}"[:255], "elements": elements}
        )
    return blocks


def slack_message(event: NotificationEvent) -> dict[str, Any]:
    """The incoming-webhook payload: fallback `text` plus `blocks`."""
    return {"text": slack_escape(summary(event)), "blocks": slack_blocks(event)}


# -- Teams Adaptive Card ---------------------------------------------------------------------------------


def teams_escape(text: str) -> str:
    """Adaptive Card text is markdown: break the link syntax `[label](url)` with a word joiner, so a group
    or user name cannot show a link that looks like ours."""
    return text.replace("](", "]\u2060(")


def _text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": teams_escape(text), "wrap": True, **style}


def adaptive_card(event: NotificationEvent) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        _text_block(title(event), size="Medium", weight="Bolder"),
        {
            "type": "FactSet",
            "facts": [{"title": label, "value": teams_escape(value)} for label, value in facts(event)],
        },
        _text_block("Targets", weight="Bolder"),
        _text_block("\n\n".join(target_lines(event))),
    ]
    if event.preview:
        body += [_text_block("Preview", weight="Bolder"), _text_block(event.preview, fontType="Monospace")]
    if event.result:
        body += [_text_block("Result", weight="Bolder"), _text_block(event.result, fontType="Monospace")]
    card: dict[str, Any] = {
        "$schema": ADAPTIVE_CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "fallbackText": summary(event),
        "body": body,
        "msteams": {"width": "Full"},
    }
    if event.console_url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the console", "url": event.console_url}]
    return card


def teams_message(event: NotificationEvent) -> dict[str, Any]:
    """The incoming-webhook payload: one message with the Adaptive Card as its attachment."""
    return {
        "type": "message",
        "attachments": [
            {"contentType": ADAPTIVE_CARD_CONTENT_TYPE, "contentUrl": None, "content": adaptive_card(event)}
        ],
    }


def payload_bytes(fmt: str, event: NotificationEvent) -> bytes:
    """The body sent to a target of format `fmt`."""
    if fmt == "webhook":
        return webhook_body(event)
    return _compact_json(slack_message(event) if fmt == "slack" else teams_message(event))
