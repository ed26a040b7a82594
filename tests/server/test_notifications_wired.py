"""The running server sends notifications: every event once, signed; a receiver that is down changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from server.governance import AuditLog
from server.notify import verify_signature
from tests.notify.receiver import Receiver, local_receiver, refused_url
from tests.notify.test_formats import assert_slack_shape
from tests.server.conftest import Steward, settled, structured, write_policy
from tests.server.test_governance_flow import GATED_POLICY, approvals_cli, candidate, membership_posts

pytestmark = pytest.mark.anyio

SECRET = "whsec-wired-test-0123456789abcdef"


def notifying_policy(tmp_path: Path, targets: str, ttl: str = "1h", max_attempts: int = 6) -> Path:
    section = f"notifications:\n  console_url: https://steward.example.com/console/\n  max_attempts: {max_attempts}\n"
    return write_policy(tmp_path, GATED_POLICY.format(ttl=ttl) + section + "  targets:\n" + targets)


def webhook_target(name: str, env: str, events: str = "[created, approved, denied, executed, failed, expired]") -> str:
    return (f"    - {{name: {name}, format: webhook, url_env: {env}_URL, secret_env: {env}_SECRET, "
            f"events: {events}}}\n")


async def until(check: Callable[[], bool]) -> None:
    """Wait (bounded) for the background delivery to reach the receiver."""
    with anyio.fail_after(20):
        while not check():
            await anyio.sleep(0.05)


def events_received(receiver: Receiver) -> list[str]:
    return [r.headers["X-Steward-Event"] for r in receiver.received]


def store_records(steward: Steward, kind: str) -> list[dict[str, Any]]:
    log = AuditLog.open(steward.policy_path.parent / "audit.sqlite", readonly=True)
    try:
        assert log.verify().ok
        return [r.fields for r in log.records() if r.kind == kind]
    finally:
        log.close()


def store_text(steward: Steward) -> bytes:
    return (steward.policy_path.parent / "audit.sqlite").read_bytes()


async def test_every_event_reaches_every_format_once_signed(
    steward: Steward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_receiver() as hook, local_receiver(path="/services/T0/B0/slacktoken123456abc") as slack, \
            local_receiver(path="/webhookb2/teams") as teams:
        monkeypatch.setenv("OPS_URL", hook.url)
        monkeypatch.setenv("OPS_SECRET", SECRET)
        monkeypatch.setenv("SLACK_URL", slack.url)
        monkeypatch.setenv("TEAMS_URL", teams.url)
        steward.policy_path = notifying_policy(
            tmp_path,
            webhook_target("ops", "OPS")
            + "    - {name: approvers, format: slack, url_env: SLACK_URL, events: [created, executed]}\n"
            + "    - {name: managers, format: teams, url_env: TEAMS_URL, events: [created]}\n",
        )
        user, group = candidate(steward)
        async with steward.client() as client:
            pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
            approved_id = pending["approval"]["request_id"]
            assert await approvals_cli(steward, "approve", approved_id, "--reason", "ticket 7") == 0
            assert (await settled(client, approved_id))["status"] == "executed"
            other = next(g for g in steward.state.groups.values() if g.id != group.id and g.name != "Administrators"
                         and user.id not in g.member_ids)
            pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": other.name}))
            denied_id = pending["approval"]["request_id"]
            assert await approvals_cli(steward, "deny", denied_id, "--reason", "not now") == 0
            await until(lambda: len(hook.received) >= 5 and len(slack.received) >= 3 and len(teams.received) >= 2)
            await anyio.sleep(0.3)  # anything sent twice would arrive in this time
    assert sorted(events_received(hook)) == sorted(
        ["request.created", "request.approved", "request.executed", "request.created", "request.denied"]
    )
    for delivery in hook.received:
        verify_signature(SECRET, delivery.headers["X-Steward-Timestamp"], delivery.headers["X-Steward-Signature"],
                         delivery.body)
    bodies = [json.loads(d.body) for d in hook.received]
    assert {(b["request_id"], b["event"]) for b in bodies} >= {(approved_id, "request.executed"),
                                                              (denied_id, "request.denied")}
    approved = next(b for b in bodies if b["event"] == "request.approved")
    assert approved["actor"] == "site-admin" and approved["reason"] == "ticket 7"
    assert approved["console_url"] == f"https://steward.example.com/console/requests/{approved_id}"
    assert len({d.headers["X-Steward-Delivery"] for d in hook.received}) == 5
    # Slack: created and executed only, Block Kit within Slack's limits, buttons on `created` alone.
    assert sorted(events_received(slack)) == sorted(["request.created", "request.executed", "request.created"])
    for delivery in slack.received:
        message = json.loads(delivery.body)
        assert_slack_shape(message)
        has_buttons = any(b["type"] == "actions" and any(e.get("action_id") == "steward_approve" for e in b["elements"])
                          for b in message["blocks"])
        assert has_buttons == (delivery.headers["X-Steward-Event"] == "request.created")
    for delivery in teams.received:
        card = json.loads(delivery.body)["attachments"][0]
        assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert card["content"]["type"] == "AdaptiveCard" and card["content"]["version"] == "1.4"
    attempts = store_records(steward, "notification.attempt")
    assert len(attempts) == 10 and {a["outcome"] for a in attempts} == {"delivered"}
    slack_endpoints = {a["endpoint"] for a in attempts if a["target"] == "approvers"}
    assert slack_endpoints == {slack.url.split("/services/")[0] + "/services/T0/B0/[REDACTED]"}
    assert SECRET.encode() not in store_text(steward) and b"slacktoken123456abc" not in store_text(steward)
    assert len(membership_posts(steward, group.id)) == 1


async def test_a_receiver_that_is_down_gets_retries_then_a_give_up_and_the_approval_runs(
    steward: Steward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOWN_URL", refused_url())
    monkeypatch.setenv("DOWN_SECRET", SECRET)
    steward.policy_path = notifying_policy(tmp_path, webhook_target("down", "DOWN", "[approved]"), max_attempts=2)
    user, group = candidate(steward)
    async with steward.client() as client:
        pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
        request_id = pending["approval"]["request_id"]
        assert await approvals_cli(steward, "approve", request_id) == 0
        assert (await settled(client, request_id))["status"] == "executed"
        await until(lambda: any(a["outcome"] == "gave_up" for a in store_records(steward, "notification.attempt")))
    attempts = store_records(steward, "notification.attempt")
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "retrying"), (2, "gave_up")]
    assert all(a["request_id"] == request_id and a["event"] == "request.approved" for a in attempts)
    assert attempts[0]["error"] == "ConnectError" and attempts[0]["retry_in"] > 0
    assert user.id in steward.state.groups[group.id].member_ids and len(membership_posts(steward, group.id)) == 1


async def test_a_lapsed_request_is_swept_and_its_expiry_sent_once(
    steward: Steward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with local_receiver() as hook:
        monkeypatch.setenv("OPS_URL", hook.url)
        monkeypatch.setenv("OPS_SECRET", SECRET)
        steward.policy_path = notifying_policy(tmp_path, webhook_target("ops", "OPS", "[expired]"), ttl="1s")
        user, group = candidate(steward)
        async with steward.client() as client:
            pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
            request_id = pending["approval"]["request_id"]
            await until(lambda: len(hook.received) >= 1)
            await anyio.sleep(1.5)  # more sweeps pass: none may send it again
    assert events_received(hook) == ["request.expired"]
    assert json.loads(hook.received[0].body)["request_id"] == request_id
    assert [r["approval_id"] for r in store_records(steward, "approval.expired")] == [request_id]
