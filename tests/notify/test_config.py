"""The `notifications:` section: strict, secrets only from the environment or a file, values never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.notify import NotificationsError, parse_notifications, redact_url, resolve_targets

SLACK_URL = "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/abcdefghijklmnopqrstuvwx"


def problems(raw: dict) -> str:
    with pytest.raises(NotificationsError) as info:
        parse_notifications(raw)
    return str(info.value)


def test_a_full_section_parses_with_defaults() -> None:
    spec = parse_notifications(
        {
            "console_url": "https://steward.example.com/console/",
            "targets": [
                {"name": "ops", "format": "webhook", "url_env": "OPS_URL", "secret_file": "ops.secret"},
                {"name": "chat", "format": "slack", "url_file": "/run/secrets/slack", "events": "created"},
                {"name": "teams", "format": "teams", "url_env": "TEAMS_URL", "events": ["created", "failed"]},
            ],
        }
    )
    assert [t.name for t in spec.targets] == ["ops", "chat", "teams"]
    assert spec.targets[0].events == ["created", "approved", "denied", "executed", "failed", "expired"]
    assert spec.targets[1].events == ["created"]
    assert (spec.max_attempts, spec.queue_size) == (6, 1000)
    assert parse_notifications(None).targets == []


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"format": "slack", "url": SLACK_URL}, "a slack webhook URL is its own credential"),
        (
            {"format": "teams", "url": "https://x.webhook.office.com/webhookb2/abc"},
            "a teams webhook URL is its own",
        ),
        (
            {"format": "webhook", "url": "https://r.example.com/h?token=s3cr3tvalue", "secret_env": "S"},
            "this url carries a token",
        ),
        (
            {"format": "webhook", "url": "https://user:pw1234@r.example.com/h", "secret_env": "S"},
            "this url carries a token",
        ),
        (
            {"format": "webhook", "url": "https://r.example.com/h/a1B2c3D4e5F6g7H8i9", "secret_env": "S"},
            "this url carries a token",
        ),
        (
            {"format": "webhook", "url_env": "U", "secret": "hunter2-literal-secret"},
            "a literal 'secret:' is not allowed in the policy file",
        ),
    ],
)
def test_secrets_written_in_the_policy_are_refused_without_echoing_them(target: dict, expected: str) -> None:
    text = problems({"targets": [{"name": "t", **target}]})
    assert expected in text
    assert "environment variable" in text and "a file" in text
    for value in target.values():
        if value not in ("slack", "teams", "webhook", "S", "U"):
            assert value not in text  # neither the URL nor the secret is shown back


def test_a_plain_receiver_url_is_allowed_for_signed_webhooks() -> None:
    spec = parse_notifications(
        {
            "targets": [
                {"name": "t", "format": "webhook", "url": "https://hooks.internal/steward", "secret_env": "S"}
            ]
        }
    )
    assert spec.targets[0].url == "https://hooks.internal/steward"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"targets": [{"name": "t", "format": "email", "url_env": "U"}]}, "notifications.targets[0].format"),
        (
            {"targets": [{"name": "t", "format": "slack", "url_env": "U", "events": ["created", "approve"]}]},
            "unknown events ['approve']",
        ),
        (
            {"targets": [{"name": "t", "format": "slack", "url_env": "U", "url_file": "f"}]},
            "needs exactly one of url_env, url_file or url (has url_env, url_file)",
        ),
        (
            {"targets": [{"name": "t", "format": "slack"}]},
            "needs exactly one of url_env, url_file or url (has none)",
        ),
        (
            {"targets": [{"name": "t", "format": "webhook", "url_env": "U"}]},
            "webhook target 't' needs exactly one of secret_env or secret_file",
        ),
        (
            {"targets": [{"name": "t", "format": "slack", "url_env": "U", "secret_env": "S"}]},
            "takes no secret",
        ),
        ({"targets": [{"name": "t", "format": "slack", "url_env": "not a name"}]}, "url_env must name"),
        (
            {"targets": [{"name": "t", "format": "slack", "url_env": "U", "colour": "red"}]},
            "notifications.targets[0]: unknown key 'colour'",
        ),
        (
            {"targets": [{"format": "slack", "url_env": "U"}]},
            "notifications.targets[0]: missing required key 'name'",
        ),
        ({"targets": [{"name": "t", "format": "slack", "url_env": "U"}] * 2}, "duplicate target names: t"),
        ({"max_attempts": 0}, "notifications.max_attempts"),
        (
            {"targets": [{"name": "bad name!", "format": "slack", "url_env": "U"}]},
            "notifications.targets[0].name: a target name uses letters, digits",
        ),
        ({"console_url": "javascript:alert(1)"}, "console_url must be an http(s) URL"),
    ],
)
def test_mistakes_get_a_plain_message_naming_the_place(raw: dict, expected: str) -> None:
    text = problems(raw)
    assert expected in text
    assert "pydantic" not in text and "input_value" not in text


def test_urls_and_secrets_are_read_from_the_environment_and_files(tmp_path: Path) -> None:
    (tmp_path / "slack.url").write_text(SLACK_URL + "\n")
    (tmp_path / "ops.secret").write_text("s3cret-from-file\n")
    spec = parse_notifications(
        {
            "targets": [
                {"name": "ops", "format": "webhook", "url_env": "OPS_URL", "secret_file": "ops.secret"},
                {"name": "chat", "format": "slack", "url_file": "slack.url"},
            ]
        }
    )
    ops, chat = resolve_targets(spec, base_dir=tmp_path, environ={"OPS_URL": "https://r.example.com/h"})
    assert ops.url.get_secret_value() == "https://r.example.com/h"
    assert ops.secret is not None and ops.secret.get_secret_value() == "s3cret-from-file"
    assert chat.url.get_secret_value() == SLACK_URL and chat.endpoint == "https://hooks.slack.com/[REDACTED]"
    assert "abcdefghij" not in repr(chat) and "s3cret" not in repr(ops)


def test_every_unresolvable_target_is_reported_at_once_without_values(tmp_path: Path) -> None:
    spec = parse_notifications(
        {
            "targets": [
                {"name": "a", "format": "webhook", "url_env": "MISSING_URL", "secret_file": "nope.secret"},
                {"name": "b", "format": "slack", "url_env": "PLAIN_HTTP"},
            ]
        }
    )
    with pytest.raises(NotificationsError) as info:
        resolve_targets(spec, base_dir=tmp_path, environ={"PLAIN_HTTP": "http://hooks.example.com/T1/abc"})
    text = str(info.value)
    assert "environment variable MISSING_URL (url) is not set or empty" in text
    assert "cannot read secret file 'nope.secret' (FileNotFoundError)" in text
    assert "target 'b': its url must be an https:// URL (http:// only for a receiver on this machine)" in text
    assert "hooks.example.com" not in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (SLACK_URL, "https://hooks.slack.com/[REDACTED]"),
        (
            "https://prod-12.westus.logic.azure.com:443/workflows/9f8e/triggers/manual/paths/invoke?sig=abc",
            "https://prod-12.westus.logic.azure.com:443/[REDACTED]?[REDACTED]",
        ),
        (
            "https://acme.webhook.office.com/webhookb2/1234-abcd@5678/IncomingWebhook/9abc/def0",
            "https://acme.webhook.office.com/[REDACTED]",
        ),
        (
            "https://user:pass@r.example.com/hooks/steward?key=1",
            "https://r.example.com/hooks/steward?[REDACTED]",
        ),
        ("https://r.example.com/hooks/a1b2c3d4e5f6g7h8i9j0/in", "https://r.example.com/hooks/[REDACTED]/in"),
        ("http://127.0.0.1:8123/hook", "http://127.0.0.1:8123/hook"),
    ],
)
def test_recorded_endpoints_keep_the_host_and_drop_the_credential(url: str, shown: str) -> None:
    assert redact_url(url) == shown
