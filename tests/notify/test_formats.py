"""Payload shapes: generic webhook JSON, Slack Block Kit, Teams Adaptive Card (as Slack and Microsoft document them)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from server.notify import EVENT_KINDS, EventTarget, slack_message, teams_message, webhook_body
from server.notify.formats import APPROVE_ACTION, CONSOLE_ACTION, DENY_ACTION, payload_bytes
from tests.notify.helpers import CONSOLE, event

SLACK_BLOCK_TYPES = {"header", "section", "context", "actions", "divider"}


def assert_slack_shape(message: dict[str, Any]) -> None:
    """Block Kit limits from Slack's reference: <= 50 blocks; header plain_text <= 150; section text <= 3000;
    <= 10 fields of <= 2000; actions <= 25 elements; button text plain_text <= 75, action_id <= 255,
    value <= 2000; block_id <= 255."""
    assert isinstance(message["text"], str) and message["text"]
    blocks = message["blocks"]
    assert 0 < len(blocks) <= 50
    for block in blocks:
        assert block["type"] in SLACK_BLOCK_TYPES
        assert len(block.get("block_id", "")) <= 255
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text" and len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert block["text"]["type"] == "mrkdwn" and len(block["text"]["text"]) <= 3000
            fields = block.get("fields", [])
            assert len(fields) <= 10 and all(len(f["text"]) <= 2000 for f in fields)
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
        if block["type"] == "actions":
            assert 0 < len(block["elements"]) <= 25
            for button in block["elements"]:
                assert button["type"] == "button"
                assert button["text"]["type"] == "plain_text" and len(button["text"]["text"]) <= 75
                assert len(button["action_id"]) <= 255 and len(button.get("value", "")) <= 2000
                assert button.get("style") in (None, "primary", "danger")


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    return {e["action_id"]: e for block in actions for e in block["elements"]}


def test_a_new_request_in_slack_shows_preview_targets_requester_and_approve_deny_buttons() -> None:
    message = slack_message(event("created"))
    assert_slack_shape(message)
    assert [b["type"] for b in message["blocks"]] == [
        "header",
        "section",
        "section",
        "section",
        "context",
        "actions",
    ]
    text = json.dumps(message)
    assert "Add user bob@example.com (Explorer) to group 'Sales EMEA'" in text  # the preview
    assert "group Sales EMEA (g-1)" in text and "user bob@example.com (u-1)" in text  # the resolved targets
    assert "*Requested by*\\nalice" in text and "*Approvals*\\n0 of 2" in text
    found = buttons(message)
    assert found[APPROVE_ACTION]["value"] == found[DENY_ACTION]["value"] == "apr_TESTREQUEST0001"
    assert (found[APPROVE_ACTION]["style"], found[DENY_ACTION]["style"]) == ("primary", "danger")
    assert found[CONSOLE_ACTION]["url"] == CONSOLE


@pytest.mark.parametrize("kind", [k for k in EVENT_KINDS if k != "created"])
def test_later_events_in_slack_have_no_decision_buttons(kind: str) -> None:
    message = slack_message(event(kind))
    assert_slack_shape(message)
    assert set(buttons(message)) == {CONSOLE_ACTION}


def test_slack_text_is_escaped_and_capped() -> None:
    e = event(
        "executed",
        requester="<!channel> & <https://evil.example|click>",
        preview="x" * 10_000,
        result="```" + "y" * 5000,
        targets=tuple(EventTarget("user", f"u{i}") for i in range(30)),
    )
    message = slack_message(e)
    assert_slack_shape(message)
    text = json.dumps(message, ensure_ascii=False)
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text
    assert "more characters; see the console" in text
    assert "… and 10 more" in text and "u19" in text and "u20" not in text


def test_teams_gets_an_adaptive_card_in_the_incoming_webhook_envelope() -> None:
    message = teams_message(event("created"))
    assert message["type"] == "message"
    (attachment,) = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert {b["type"] for b in card["body"]} == {"TextBlock", "FactSet"}
    facts = {f["title"]: f["value"] for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]}
    assert facts["Requested by"] == "alice" and facts["Approvals"] == "0 of 2"
    assert facts["Request"] == "apr_TESTREQUEST0001"
    texts = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    assert any("Sales EMEA" in t for t in texts) and any(t.startswith("Add user bob") for t in texts)
    # incoming webhooks cannot call back: the only action opens the console
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open the console", "url": CONSOLE}]
    assert len(payload_bytes("teams", event("created"))) < 28_000  # Teams' message size limit


def test_teams_text_cannot_carry_a_markdown_link() -> None:
    e = event(
        "created",
        requester="[Approve here](https://evil.example)",
        targets=(EventTarget("group", "[Open the console](https://evil.example/login)"),),
    )
    card = teams_message(e)["attachments"][0]["content"]
    text = json.dumps(card["body"], ensure_ascii=False)
    assert "](https://evil" not in text and "]\u2060(https://evil.example" in text


def test_the_generic_webhook_body_is_the_event_as_json() -> None:
    body = json.loads(webhook_body(event("approved")))
    assert body["schema"] == "steward.notification.v1" and body["event"] == "request.approved"
    assert body["request_id"] == "apr_TESTREQUEST0001" and body["status"] == "approved"
    assert body["targets"][1] == {"kind": "group", "name": "Sales EMEA", "id": "g-1"}
    assert body["approvals"] == {"given": 2, "required": 2}
    assert (body["actor"], body["reason"]) == ("site-admin", "ticket OPS-42")
    assert body["occurred_at"] == "2026-12-01T12:01:00Z" and body["console_url"] == CONSOLE


def test_events_scrub_credentials_and_refuse_unknown_kinds() -> None:
    e = event("failed", result="Authorization: Bearer abcdefghijklmnop1234 refused")
    assert "abcdefghijklmnop1234" not in webhook_body(e).decode()
    with pytest.raises(ValueError, match="unknown event kind 'approve'"):
        dataclasses.replace(event("created"), kind="approve")
