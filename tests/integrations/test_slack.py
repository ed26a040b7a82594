"""Slack interactive approvals: requests signed exactly as Slack signs them, refused for every documented reason."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest

from server.integrations.slack import (
    ReplayGuard,
    SlackInteractionVerifier,
    SlackRequestRefused,
    outcome_message,
    refusal_message,
    verifier_from_spec,
)
from server.notify import NotificationsError, parse_notifications
from server.notify.formats import APPROVE_ACTION, CONSOLE_ACTION, DENY_ACTION, slack_message
from tests.notify.helpers import event

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_764_590_400
APPROVERS = {"U0APPROVER": "site-admin"}
REQUEST = "apr_TESTREQUEST0001"
RESPONSE_URL = "https://hooks.slack.com/actions/T0TEAM/1234567890/abcdefghijklmnop"


def click(
    action_id: str = APPROVE_ACTION,
    *,
    user: str = "U0APPROVER",
    team: str = "T0TEAM",
    value: str = REQUEST,
    response_url: str = RESPONSE_URL,
) -> dict:
    """A block_actions payload as Slack sends it when a button of our notification is clicked."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "sam", "name": "sam", "team_id": team},
        "api_app_id": "A0APP",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": "1764590000.000100",
            "channel_id": "C0CHAN",
            "is_ephemeral": False,
        },
        "trigger_id": "123.456.abc",
        "team": {"id": team, "domain": "acme"},
        "channel": {"id": "C0CHAN", "name": "approvals"},
        "message": {"type": "message", "ts": "1764590000.000100", "blocks": slack_message(event())["blocks"]},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"steward:{REQUEST}",
                "value": value,
                "type": "button",
                "action_ts": "1764590400.123456",
                "text": {"type": "plain_text", "text": "Approve"},
            }
        ],
    }


def signed(
    payload: dict, *, timestamp: int = NOW, secret: str = SIGNING_SECRET
) -> tuple[dict[str, str], bytes]:
    """Headers and raw body built the way Slack builds them: form-encoded payload=, v0 HMAC over the raw body."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    base = b"v0:" + str(timestamp).encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    headers = {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return headers, body


def verifier(now: float = NOW, **kwargs) -> SlackInteractionVerifier:
    return SlackInteractionVerifier(SIGNING_SECRET, APPROVERS, clock=lambda: now, **kwargs)


def refused(v: SlackInteractionVerifier, headers: dict[str, str], body: bytes) -> SlackRequestRefused:
    with pytest.raises(SlackRequestRefused) as info:
        v.verify_interaction(headers, body)
    return info.value


def test_a_correctly_signed_approve_click_by_a_mapped_user_is_accepted() -> None:
    interaction = verifier(now=NOW + 299).verify_interaction(*signed(click()))
    assert (interaction.decision, interaction.request_id, interaction.principal) == (
        "approve",
        REQUEST,
        "site-admin",
    )
    assert (interaction.slack_user_id, interaction.team_id, interaction.channel_id) == (
        "U0APPROVER",
        "T0TEAM",
        "C0CHAN",
    )
    assert interaction.message_ts == "1764590000.000100" and interaction.response_url == RESPONSE_URL
    assert RESPONSE_URL not in repr(interaction)


def test_deny_and_lowercase_header_names_work_too() -> None:
    headers, body = signed(click(DENY_ACTION))
    interaction = verifier().verify_interaction({k.lower(): v for k, v in headers.items()}, body)
    assert interaction.decision == "deny"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace(b"U0APPROVER", b"U0OTHERUSR")),  # body changed after signing
        lambda h, b: ({**h, "X-Slack-Signature": h["X-Slack-Signature"][:-1] + "0"}, b),
        lambda h, b: ({**h, "X-Slack-Signature": h["X-Slack-Signature"].replace("v0=", "v1=")}, b),
        lambda h, b: signed(click(), secret="another-apps-secret"),
        lambda h, b: ({**h, "X-Slack-Request-Timestamp": str(NOW + 1)}, b),  # timestamp is signed too
    ],
)
def test_a_bad_signature_is_refused(tamper) -> None:
    headers, body = tamper(*signed(click()))
    error = refused(verifier(), headers, body)
    assert (error.reason, error.status_code) == ("bad_signature", 401)
    assert SIGNING_SECRET not in str(error)


@pytest.mark.parametrize("age", [301, -301, 3600])
def test_a_stale_timestamp_is_refused_even_with_a_valid_signature(age: int) -> None:
    error = refused(verifier(now=NOW + age), *signed(click()))
    assert (error.reason, error.status_code) == ("stale_timestamp", 401)


@pytest.mark.parametrize("timestamp", ["\u0661\u0662\u0663", f" {NOW}", f"+{NOW}", "1e9", ""])
def test_a_timestamp_that_is_not_plain_digits_is_refused_cleanly(timestamp: str) -> None:
    headers, body = signed(click())
    error = refused(verifier(), {**headers, "X-Slack-Request-Timestamp": timestamp}, body)
    assert error.reason in ("stale_timestamp", "missing_headers") and error.status_code == 401


def test_missing_headers_are_refused() -> None:
    headers, body = signed(click())
    del headers["X-Slack-Signature"]
    assert refused(verifier(), headers, body).reason == "missing_headers"


def test_a_replay_within_the_window_is_refused() -> None:
    v = verifier()
    headers, body = signed(click())
    v.verify_interaction(headers, body)
    error = refused(v, headers, body)
    assert (error.reason, error.status_code) == ("replay", 401)
    # a new click (new timestamp, so a new signature) is fine
    assert v.verify_interaction(*signed(click(), timestamp=NOW + 1)).decision == "approve"


def test_an_unknown_slack_user_is_refused_with_their_id_for_the_audit_record() -> None:
    error = refused(verifier(), *signed(click(user="U0STRANGER")))
    assert (error.reason, error.status_code, error.slack_user_id) == ("unknown_user", 403, "U0STRANGER")


def test_another_workspace_is_refused_when_a_team_is_configured() -> None:
    error = refused(verifier(team_id="T0TEAM"), *signed(click(team="T0OTHER")))
    assert error.reason == "wrong_team"
    assert verifier(team_id="T0TEAM").verify_interaction(*signed(click())).team_id == "T0TEAM"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (click(CONSOLE_ACTION), "not_a_decision"),
        (click("some_other_action"), "bad_payload"),
        (click(value="'; DROP TABLE"), "bad_payload"),
        (click(response_url="https://evil.example/collect"), "bad_payload"),
        ({**click(), "type": "view_submission"}, "bad_payload"),
        ({**click(), "actions": []}, "bad_payload"),
        ({**click(), "user": {"id": "not an id"}}, "bad_payload"),
    ],
)
def test_payloads_that_are_not_a_decision_we_sent_are_refused(payload: dict, reason: str) -> None:
    assert refused(verifier(), *signed(payload)).reason == reason


@pytest.mark.parametrize("body", [b'{"payload": "json, not a form"}', b"payload=" + b"%5B" * 20_000])
def test_a_body_that_is_not_a_form_payload_is_refused_after_the_signature_check(body: bytes) -> None:
    timestamp = str(NOW)
    signature = (
        "v0="
        + hmac.new(SIGNING_SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    )
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
    assert refused(verifier(), headers, body).reason == "bad_payload"


def test_the_replay_guard_forgets_only_expired_signatures_and_refuses_when_full() -> None:
    guard = ReplayGuard(window=300, capacity=2)
    guard.check_and_remember("a", NOW, now=NOW)
    guard.check_and_remember("b", NOW + 10, now=NOW + 10)
    with pytest.raises(SlackRequestRefused) as info:
        guard.check_and_remember("c", NOW + 20, now=NOW + 20)
    assert info.value.reason == "overloaded"  # never forgets a live one to make room
    guard.check_and_remember("c", NOW + 301, now=NOW + 301)  # 'a' expired: room again
    assert len(guard) == 2
    with pytest.raises(SlackRequestRefused):
        guard.check_and_remember("b", NOW + 10, now=NOW + 302)


def test_the_outcome_replaces_the_message_without_buttons() -> None:
    interaction = verifier().verify_interaction(*signed(click()))
    message = outcome_message(event("approved"), interaction)
    assert message["replace_original"] is True
    assert not [
        b
        for b in message["blocks"]
        if b["type"] == "actions" and {e["action_id"] for e in b["elements"]} & {APPROVE_ACTION, DENY_ACTION}
    ]
    assert message["blocks"][-1]["elements"][0]["text"] == "Approved in Slack by <@U0APPROVER> as site-admin"
    assert refusal_message("You cannot approve your own request.") == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": "You cannot approve your own request.",
    }


def test_the_policy_section_builds_a_verifier_with_the_secret_from_the_environment_or_a_file(
    tmp_path,
) -> None:
    section = {"signing_secret_env": "SLACK_SIGNING_SECRET", "team_id": "T0TEAM", "users": APPROVERS}
    spec = parse_notifications({"slack_interactions": section}).slack_interactions
    v = verifier_from_spec(spec, environ={"SLACK_SIGNING_SECRET": SIGNING_SECRET}, clock=lambda: NOW)
    assert v.verify_interaction(*signed(click())).principal == "site-admin"
    assert refused(v, *signed(click(team="T0OTHER"))).reason == "wrong_team"

    (tmp_path / "slack.secret").write_text(SIGNING_SECRET + "\n")
    from_file = parse_notifications(
        {"slack_interactions": {"signing_secret_file": "slack.secret", "users": APPROVERS}}
    ).slack_interactions
    v = verifier_from_spec(from_file, base_dir=tmp_path, clock=lambda: NOW)
    assert v.verify_interaction(*signed(click(DENY_ACTION))).decision == "deny"

    with pytest.raises(NotificationsError, match="environment variable SLACK_SIGNING_SECRET"):
        verifier_from_spec(spec, environ={})


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            {"signing_secret": SIGNING_SECRET, "users": APPROVERS},
            "a literal 'signing_secret:' is not allowed",
        ),
        ({"users": APPROVERS}, "exactly one of signing_secret_env or signing_secret_file"),
        ({"signing_secret_env": "S", "users": {}}, "maps no Slack user"),
        (
            {"signing_secret_env": "S", "users": {"alice": "site-admin"}},
            "notifications.slack_interactions.users",
        ),
        ({"signing_secret_env": "S", "team_id": "acme", "users": APPROVERS}, "slack_interactions.team_id"),
    ],
)
def test_the_policy_section_is_strict_and_never_echoes_the_secret(section: dict, expected: str) -> None:
    with pytest.raises(NotificationsError) as info:
        parse_notifications({"slack_interactions": section})
    assert expected in str(info.value) and SIGNING_SECRET not in str(info.value)
