"""Slack interactive approvals against the real server over HTTP, with requests signed exactly as Slack signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx2
import pytest

from server.governance import AuditLog, hash_token
from tests.notify.receiver import local_receiver
from tests.server.conftest import Steward, settled, structured, write_policy
from tests.server.test_admin_api import MCP_TOKEN, http_server
from tests.server.test_governance_flow import GATED_POLICY, candidate, membership_posts
from tests.server.test_transports import bearer_client

pytestmark = pytest.mark.anyio

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
USERS = {"U0APPROVER": "site-admin", "U0REQUESTER": "assistant-user"}


def slack_policy(steward: Steward, tmp_path: Path) -> None:
    # The requester is an approver too (of other people's requests), so Slack may map a user to them.
    text = GATED_POLICY.format(ttl="1h").replace("roles: [analyst]}", "roles: [analyst, approver]}", 1)
    text += f"    - {{hash: '{hash_token(MCP_TOKEN)}', principal: assistant-user}}\n"
    users = ", ".join(f"{k}: {v}" for k, v in USERS.items())
    text += f"notifications:\n  slack_interactions:\n    signing_secret_env: SLACK_SIGNING_SECRET\n    users: {{{users}}}\n"
    steward.policy_path = write_policy(tmp_path, text)


def click(request_id: str, user: str, response_url: str, action: str = "steward_approve") -> bytes:
    """The form body Slack posts for a click on a block_actions button."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM", "domain": "example"},
        "container": {"type": "message", "message_ts": "1764619200.000100", "channel_id": "C0APPROVALS"},
        "channel": {"id": "C0APPROVALS", "name": "approvals"},
        "response_url": response_url,
        "actions": [{"type": "button", "action_id": action, "block_id": "decide", "value": request_id,
                     "action_ts": "1764619201.000200"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(body: bytes, *, secret: str = SIGNING_SECRET, at: int | None = None) -> dict[str, str]:
    """Slack's headers: v0= HMAC-SHA256 of 'v0:{timestamp}:{raw body}' with the signing secret."""
    timestamp = str(int(time.time()) if at is None else at)
    base = b"v0:" + timestamp.encode() + b":" + body
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def records(steward: Steward, kind: str) -> list[dict[str, Any]]:
    log = AuditLog.open(steward.policy_path.parent / "audit.sqlite", readonly=True)
    try:
        return [r.fields for r in log.records() if r.kind == kind]
    finally:
        log.close()


async def test_a_signed_click_approves_once_and_every_bad_one_is_refused_and_audited(
    steward: Steward, tmp_path: Path
) -> None:
    slack_policy(steward, tmp_path)
    user, group = candidate(steward)
    with local_receiver(path="/actions/T0TEAM/1234/response") as slack:
        base = slack.url.split("/actions/")[0] + "/"
        env = {"SLACK_SIGNING_SECRET": SIGNING_SECRET, "STEWARD_TEST_SLACK_RESPONSE_URL": base}
        with http_server(steward, tmp_path, **env) as server:
            endpoint = server.url.removesuffix("/mcp") + "/integrations/slack/interactions"
            async with bearer_client(server.url, MCP_TOKEN) as client, httpx2.AsyncClient(timeout=10) as http:
                pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
                request_id = pending["approval"]["request_id"]

                async def post(body: bytes, headers: dict[str, str]) -> int:
                    return (await http.post(endpoint, content=body, headers=headers)).status_code

                good = click(request_id, "U0APPROVER", slack.url)
                assert await post(good, signed(good, secret="not-the-signing-secret")) == 401
                assert await post(good, signed(good, at=int(time.time()) - 400)) == 401
                tampered = click(request_id, "U0APPROVER", slack.url, action="steward_deny")
                assert await post(tampered, signed(good)) == 401  # signature of another body
                stranger = click(request_id, "U0STRANGER", slack.url)
                assert await post(stranger, signed(stranger)) == 403
                own = click(request_id, "U0REQUESTER", slack.url)
                assert await post(own, signed(own)) == 200  # Slack is answered; the decision is refused
                assert structured(await client.call_tool("get_request", {"request_id": request_id}))["status"] == "pending"
                assert membership_posts(steward, group.id) == []

                headers = signed(good)
                assert await post(good, headers) == 200
                assert await post(good, headers) == 401  # the same signed request again: a replay
                done = await settled(client, request_id)
                with anyio.fail_after(10):
                    while len(slack.received) < 2:
                        await anyio.sleep(0.05)
    assert done["status"] == "executed" and done["decisions"][0]["approver"] == "site-admin"
    assert "in Slack by u0approver (U0APPROVER)" in done["decisions"][0]["reason"]
    assert user.id in steward.state.groups[group.id].member_ids
    assert len(membership_posts(steward, group.id)) == 1, "the emulated site changed exactly once"
    refused = [(r["reason"], r.get("slack_user_id")) for r in records(steward, "slack.refused")]
    assert refused == [("bad_signature", None), ("stale_timestamp", None), ("bad_signature", None),
                       ("unknown_user", "U0STRANGER"), ("self_approval", "U0REQUESTER"), ("replay", None)]
    store_refusals = [r for r in records(steward, "approval.refused") if r["approval_id"] == request_id]
    assert [(r["actor"], r["code"]) for r in store_refusals] == [("assistant-user", "self_approval")]
    # What the clickers saw: a private note for the requester, then the outcome replacing the message.
    sent = [json.loads(r.body) for r in slack.received]
    (note,) = [m for m in sent if m.get("response_type") == "ephemeral"]
    (outcome,) = [m for m in sent if m.get("response_type") != "ephemeral"]
    assert "cannot approve" in note["text"] or "own request" in note["text"], note["text"]
    assert note["response_type"] == "ephemeral" and note["replace_original"] is False
    assert outcome["replace_original"] is True
    assert not any(b["type"] == "actions" for b in outcome["blocks"]), "no buttons once decided"
    assert "Approved in Slack by <@U0APPROVER> as site-admin" in json.dumps(outcome)
    assert SIGNING_SECRET.encode() not in (steward.policy_path.parent / "audit.sqlite").read_bytes()
