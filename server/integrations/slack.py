"""Slack interactive approvals: verify a request from Slack, parse the button click, map the user.

Verification follows Slack's "Verifying requests from Slack" exactly:

1. read `X-Slack-Request-Timestamp`; refuse it when it is more than 5 minutes from this clock;
2. build the base string `v0:{timestamp}:{raw body}` (the raw bytes, before any form decoding);
3. HMAC-SHA256 it with the app's signing secret; `"v0=" + hexdigest` must equal `X-Slack-Signature`,
   compared in constant time.

On top of Slack's scheme a `ReplayGuard` remembers every accepted signature until its timestamp leaves
the window, so the same signed request cannot be played twice (bounded memory: when full of live
entries it refuses, it never forgets a live one).

The body of an interaction is form-encoded, `payload=<JSON>`; a click on the Approve or Deny button of
a notification (server/notify/formats.py) is a `block_actions` payload whose action has `action_id`
`steward_approve` / `steward_deny` and the request id as `value`. The Slack user id is mapped to an
approver principal by the policy's mapping; an unmapped user (or a team other than the configured one)
is refused. `verify_interaction` returns a typed `SlackInteraction` or raises `SlackRequestRefused`
with a `reason` (for the audit record) and an HTTP status for the route to answer with.

What is NOT checked here, because it needs the approval store: that the principal is not the request's
requester and may approve it. The store refuses both (`self_approval`, `not_approver`).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import SecretStr

from server.notify.config import NotificationsError, SlackInteractionsSpec, read_secret
from server.notify.events import NotificationEvent
from server.notify.formats import (
    APPROVE_ACTION,
    CONSOLE_ACTION,
    DENY_ACTION,
    slack_blocks,
    slack_escape,
    summary,
)

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ReplayGuard",
    "SlackInteraction",
    "SlackInteractionVerifier",
    "SlackRequestRefused",
    "outcome_message",
    "refusal_message",
    "slack_signature",
    "verifier_from_spec",
]

TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
WINDOW_SECONDS = 300
MAX_BODY = 64 * 1024  # interaction payloads for one button are a few kB; refuse anything far larger
REQUEST_ID = re.compile(r"^apr_[A-Za-z0-9_-]{8,64}$")
UNIX_TIME = re.compile(r"^[0-9]{1,12}$")
SLACK_ID = re.compile(r"^[A-Z0-9]{2,32}$")
DECISIONS = {APPROVE_ACTION: "approve", DENY_ACTION: "deny"}
RESPONSE_URL_HOST = "hooks.slack.com"

Reason = Literal[
    "missing_headers",
    "stale_timestamp",
    "bad_signature",
    "replay",
    "overloaded",
    "bad_payload",
    "not_a_decision",
    "wrong_team",
    "unknown_user",
]
# The HTTP status the route answers with: 401 for anything not proven to come from Slack; 200 for a click
# on the console link (Slack posts those too, and wants them acknowledged).
STATUS_FOR: dict[str, int] = {
    "missing_headers": 401,
    "stale_timestamp": 401,
    "bad_signature": 401,
    "replay": 401,
    "overloaded": 503,
    "bad_payload": 400,
    "not_a_decision": 200,
    "wrong_team": 403,
    "unknown_user": 403,
}


class SlackRequestRefused(Exception):
    """A request to the interactions endpoint was refused. `reason` is one of `Reason`; the message is safe
    to show and to audit (it never quotes the signature, the secret or the payload)."""

    def __init__(self, reason: Reason, message: str, *, slack_user_id: str | None = None) -> None:
        self.reason = reason
        self.status_code = STATUS_FOR[reason]
        self.slack_user_id = slack_user_id
        super().__init__(message)


def slack_signature(signing_secret: str | bytes, timestamp: str, body: bytes) -> str:
    """'v0=' + hex HMAC-SHA256 of b'v0:{timestamp}:' + body, keyed by the signing secret (Slack's scheme)."""
    key = signing_secret.encode("utf-8") if isinstance(signing_secret, str) else signing_secret
    return "v0=" + hmac.new(key, b"v0:" + timestamp.encode("ascii") + b":" + body, hashlib.sha256).hexdigest()


class ReplayGuard:
    """The signatures accepted within the window. Memory is bounded by `capacity`; entries leave when
    their timestamp is older than the window (Slack would refuse them as stale by then anyway)."""

    def __init__(self, *, window: float = WINDOW_SECONDS, capacity: int = 10_000) -> None:
        self.window, self.capacity = window, capacity
        self._seen: set[str] = set()
        self._expiry: list[tuple[float, str]] = []  # heap of (drop after, signature)

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_remember(self, signature: str, timestamp: float, now: float) -> None:
        while self._expiry and self._expiry[0][0] < now:
            self._seen.discard(heapq.heappop(self._expiry)[1])
        if signature in self._seen:
            raise SlackRequestRefused("replay", "this Slack request was already received (a replay)")
        if len(self._seen) >= self.capacity:
            # Forgetting a live signature would let its request be replayed: refuse instead.
            raise SlackRequestRefused(
                "overloaded", "too many Slack requests in the last 5 minutes; retry later"
            )
        self._seen.add(signature)
        heapq.heappush(self._expiry, (timestamp + self.window, signature))


@dataclass(frozen=True)
class SlackInteraction:
    """A verified Approve/Deny click by a known approver."""

    decision: Literal["approve", "deny"]
    request_id: str
    principal: str
    slack_user_id: str
    slack_user_name: str | None
    team_id: str | None
    channel_id: str | None
    message_ts: str | None
    action_ts: str | None
    # A capability URL (valid 30 minutes, 5 uses): kept out of reprs and logs.
    response_url: str | None = field(default=None, repr=False)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _bad(message: str, user: str | None = None) -> SlackRequestRefused:
    return SlackRequestRefused("bad_payload", message, slack_user_id=user)


def _payload(body: bytes) -> dict[str, Any]:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=20)
        raw = form["payload"]
    except (UnicodeDecodeError, ValueError, KeyError):
        raise _bad("expected a form-encoded body with a 'payload' field") from None
    if len(raw) != 1:
        raise _bad("expected exactly one 'payload' field")
    try:
        payload = json.loads(raw[0])
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        raise _bad("the 'payload' field is not JSON") from None
    if not isinstance(payload, dict):
        raise _bad("the 'payload' field is not a JSON object")
    return payload


def _str(obj: Any, key: str) -> str | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


def loopback_prefix(value: str | None) -> str | None:
    """`value` when it is an http(s) URL on this machine (the tests' stand-in for hooks.slack.com), else None."""
    if not value:
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.hostname in ("127.0.0.1", "::1") else None


def _response_url(value: str | None, test_prefix: str | None = None) -> str | None:
    """Only Slack's own hooks host: the server later POSTs to this URL, so it must not point elsewhere.
    `test_prefix` (a loopback URL, tests only) is also allowed: the emulated Slack of the tests."""
    if value is None:
        return None
    if test_prefix is not None and value.startswith(test_prefix):
        return value
    parts = urlsplit(value)
    if parts.scheme != "https" or (parts.hostname or "").lower() != RESPONSE_URL_HOST:
        raise _bad("response_url is not a https://hooks.slack.com/ URL")
    return value


class SlackInteractionVerifier:
    """Verifies requests to `/integrations/slack/interactions` and turns clicks into `SlackInteraction`s.

    `approvers` maps Slack user ids ('U012ABCDEF') to approver principal names from the policy.
    `team_id`, when set, is the only Slack workspace whose clicks are accepted.
    """

    def __init__(
        self,
        signing_secret: SecretStr | str,
        approvers: Mapping[str, str],
        *,
        team_id: str | None = None,
        window: float = WINDOW_SECONDS,
        replay_guard: ReplayGuard | None = None,
        clock: Callable[[], float] = time.time,
        test_response_url_prefix: str | None = None,
    ) -> None:
        secret = (
            signing_secret.get_secret_value() if isinstance(signing_secret, SecretStr) else signing_secret
        )
        if not secret:
            raise ValueError("the Slack signing secret is empty")
        self._secret = SecretStr(secret)
        self.approvers = dict(approvers)
        self.team_id, self.window, self.clock = team_id, window, clock
        self.replay_guard = replay_guard or ReplayGuard(window=window)
        # Tests only: response_urls under this loopback prefix are accepted besides hooks.slack.com.
        self.test_response_url_prefix = loopback_prefix(test_response_url_prefix)

    def verify_signature(self, headers: Mapping[str, str], body: bytes) -> None:
        """Slack's check (timestamp window, then signature), then the replay guard."""
        timestamp = _header(headers, TIMESTAMP_HEADER)
        signature = _header(headers, SIGNATURE_HEADER)
        if not timestamp or not signature:
            raise SlackRequestRefused("missing_headers", f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
        now = self.clock()
        if not UNIX_TIME.match(timestamp):  # ASCII digits only: int() would also take ' 1', '+1' or '١'
            raise SlackRequestRefused("stale_timestamp", f"{TIMESTAMP_HEADER} is not a Unix time")
        sent_at = int(timestamp)
        if abs(now - sent_at) > self.window:
            raise SlackRequestRefused("stale_timestamp", "the request is more than 5 minutes old (or ahead)")
        expected = slack_signature(self._secret.get_secret_value(), timestamp, body)
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
            raise SlackRequestRefused("bad_signature", "the Slack signature does not match the request")
        self.replay_guard.check_and_remember(signature, sent_at, now)

    def verify_interaction(self, headers: Mapping[str, str], body: bytes) -> SlackInteraction:
        """A verified Approve/Deny click, or SlackRequestRefused."""
        if len(body) > MAX_BODY:
            raise _bad(f"the request body is larger than {MAX_BODY} bytes")
        self.verify_signature(headers, body)
        return self.parse(_payload(body))

    def parse(self, payload: Mapping[str, Any]) -> SlackInteraction:
        if payload.get("type") != "block_actions":
            raise _bad(
                f"unsupported interaction type {str(payload.get('type'))[:40]!r} (expected block_actions)"
            )
        user = payload.get("user")
        user_id = _str(user, "id")
        if not user_id or not SLACK_ID.match(user_id):
            raise _bad("the payload has no valid user id")
        team_id = _str(payload.get("team"), "id") or _str(user, "team_id")
        actions = payload.get("actions")
        if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
            raise _bad("expected exactly one action", user_id)
        action = actions[0]
        action_id = _str(action, "action_id")
        if action_id == CONSOLE_ACTION:
            raise SlackRequestRefused(
                "not_a_decision", "a link to the console, nothing to decide", slack_user_id=user_id
            )
        if action_id not in DECISIONS:
            raise _bad("the action is neither Approve nor Deny", user_id)
        request_id = _str(action, "value")
        if not request_id or not REQUEST_ID.match(request_id):
            raise _bad("the action carries no valid request id", user_id)
        if self.team_id is not None and team_id != self.team_id:
            raise SlackRequestRefused(
                "wrong_team", "this Slack workspace may not decide requests", slack_user_id=user_id
            )
        principal = self.approvers.get(user_id)
        if principal is None:
            raise SlackRequestRefused(
                "unknown_user",
                "this Slack user is not mapped to an approver in the policy",
                slack_user_id=user_id,
            )
        return SlackInteraction(
            decision=DECISIONS[action_id],  # type: ignore[arg-type]
            request_id=request_id,
            principal=principal,
            slack_user_id=user_id,
            slack_user_name=_str(user, "username") or _str(user, "name"),
            team_id=team_id,
            channel_id=_str(payload.get("channel"), "id") or _str(payload.get("container"), "channel_id"),
            message_ts=_str(payload.get("container"), "message_ts") or _str(payload.get("message"), "ts"),
            action_ts=_str(action, "action_ts"),
            response_url=_response_url(_str(payload, "response_url"), self.test_response_url_prefix),
        )


def verifier_from_spec(
    spec: SlackInteractionsSpec,
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    test_response_url_prefix: str | None = None,
) -> SlackInteractionVerifier:
    """The verifier for the policy's `notifications.slack_interactions`, its signing secret read from the
    environment or a file (relative to `base_dir`). NotificationsError, never showing the secret."""
    problems: list[str] = []
    secret = read_secret(
        "signing secret",
        spec.signing_secret_env,
        spec.signing_secret_file,
        os.environ if environ is None else environ,
        base_dir or Path.cwd(),
        problems,
        "slack_interactions",
    )
    if secret is None:
        raise NotificationsError(problems)
    return SlackInteractionVerifier(
        secret, spec.users, team_id=spec.team_id, clock=clock, test_response_url_prefix=test_response_url_prefix
    )


# -- messages sent back through response_url ----------------------------------------------------------


def outcome_message(event: NotificationEvent, interaction: SlackInteraction | None = None) -> dict[str, Any]:
    """The message that replaces the notification once the request moved on (approved, denied, executed...):
    the same blocks without the Approve/Deny buttons, plus who clicked."""
    blocks = slack_blocks(event, with_buttons=False)
    if interaction is not None:
        verb = "Approved" if interaction.decision == "approve" else "Denied"
        who = f"<@{interaction.slack_user_id}> as {slack_escape(interaction.principal)}"
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{verb} in Slack by {who}"}]}
        )
    return {"replace_original": True, "text": slack_escape(summary(event)), "blocks": blocks}


def refusal_message(text: str) -> dict[str, Any]:
    """An answer only the clicking user sees ("you cannot approve your own request"); the original stays."""
    return {"response_type": "ephemeral", "replace_original": False, "text": text[:2900]}
