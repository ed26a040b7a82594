"""Tampering with the approval store never gets a change executed.

Each test makes a real gated request through an in-process `mcp.Client` on an emulated site, approves it
(or not) through the admin API with the CLI, then edits the store (SQLite, then PostgreSQL) the way someone with write access
to the file (but not the signing key) could: arguments, status, an inserted decision, an inserted request,
and a decision sealed by a process that loaded a forged policy. The server must refuse to run it, record
the refusal, and send nothing to Tableau.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from server import pipeline
from server.governance import ApprovalStore, AuditLog, args_digest
from server.governance.policy import STORE_URL_ENV
from server.governed import Governance, signing_key_for
from tests.governance.helpers import raw_store
from tests.server.conftest import Steward, structured, write_policy
from tests.server.test_governance_flow import GATED_POLICY, approvals_cli, candidate, membership_posts
from tests.server.test_transports import REPO

pytestmark = pytest.mark.anyio


def held(steward: Steward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Steward:
    """The gated policy, and no background runs: no wake-up on approval, no poll; the test runs an approved
    request with `steward.run_held`, so whatever it does between the approval and then happens before."""
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))
    monkeypatch.setattr(pipeline, "APPROVAL_POLL_SECONDS", 3600)
    # On PostgreSQL an approval's NOTIFY would wake the runner at once: hold it to the (hour-long) poll too.
    monkeypatch.setattr(Governance, "approval_wakeup", lambda _self, seconds: anyio.sleep(seconds))
    monkeypatch.setattr(pipeline, "WAKE_ON_DECISION", False)
    return steward


@pytest.fixture(params=["sqlite", "postgresql"])
def gated(steward: Steward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Steward:
    """The held server on either store: its SQLite file, or a fresh database (STEWARD_STORE_URL)."""
    if request.param == "postgresql":
        monkeypatch.setenv(STORE_URL_ENV, request.getfixturevalue("postgres_cluster").new_database())
    return held(steward, tmp_path, monkeypatch)


def store_file(steward: Steward) -> Path | str:
    return os.environ.get(STORE_URL_ENV) or steward.policy_path.parent / "audit.sqlite"


def edit(steward: Steward, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Write the store directly, as anyone with write access to it (not the key) can."""
    conn = raw_store(store_file(steward))
    try:
        conn.execute(sql, params)
    finally:
        conn.close()


def set_approved_by_hand(steward: Steward, request_id: str) -> None:
    edit(steward, "UPDATE approval_requests SET status = 'approved', result = NULL WHERE id = ?", (request_id,))


def refusals(steward: Steward, request_id: str) -> list[dict[str, Any]]:
    log = AuditLog.open(store_file(steward), readonly=True)
    try:
        assert log.verify().ok  # the log itself was not altered: the refusal is on a valid chain
        return [
            r.to_dict()
            for r in log.records()
            if r.kind == "approval.refused" and r.fields.get("approval_id") == request_id
        ]
    finally:
        log.close()


async def request_membership(client: Any, steward: Steward) -> tuple[str, Any, Any]:
    user, group = candidate(steward)
    pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
    assert pending["status"] == "pending_approval"
    return pending["approval"]["request_id"], user, group


async def assert_refused_and_nothing_changed(
    client: Any, steward: Steward, request_id: str, user: Any, group: Any, code: str
) -> dict[str, Any]:
    view = await steward.run_held(client, request_id)
    assert view["status"] == "refused", view
    assert user.id not in steward.state.groups[group.id].member_ids
    assert membership_posts(steward, group.id) == [], "nothing may reach Tableau"
    assert [r["code"] for r in refusals(steward, request_id)] == [code]
    # Refused once and for all: asking again neither runs it nor piles up records.
    again = await steward.run_held(client, request_id)
    assert again["status"] == "refused" and membership_posts(steward, group.id) == []
    return view


async def test_arguments_edited_after_approval_are_refused(gated: Steward) -> None:
    async with gated.client() as client:
        request_id, user, group = await request_membership(client, gated)
        assert await approvals_cli(gated, "approve", request_id) == 0
        forged = {"user": user.email, "group": "Administrators"}
        edit(gated, "UPDATE approval_requests SET arguments = ?, args_digest = ? WHERE id = ?",
             (json.dumps(forged), args_digest(forged), request_id))
        view = await assert_refused_and_nothing_changed(client, gated, request_id, user, group, "tampered")
    assert "does not match its seal" in view["result"]["error"]
    verify = await anyio.run_process(
        [sys.executable, "-m", "server.cli", "audit", "verify", "--policy", str(gated.policy_path)],
        check=False, cwd=REPO,
    )
    assert verify.returncode == 1 and f"TAMPERED approval request {request_id}".encode() in verify.stdout
    admins = next(g for g in gated.state.groups.values() if g.name == "Administrators")
    assert user.id not in admins.member_ids and membership_posts(gated, admins.id) == []


async def test_a_status_set_by_hand_is_refused(gated: Steward) -> None:
    async with gated.client() as client:
        request_id, user, group = await request_membership(client, gated)
        set_approved_by_hand(gated, request_id)
        view = await assert_refused_and_nothing_changed(client, gated, request_id, user, group, "tampered")
    assert "only 0 of 1 sealed approvals" in view["result"]["error"]


async def test_an_executed_request_set_back_to_approved_does_not_run_again(gated: Steward) -> None:
    async with gated.client() as client:
        request_id, user, group = await request_membership(client, gated)
        assert await approvals_cli(gated, "approve", request_id) == 0
        done = await gated.run_held(client, request_id)
        assert done["status"] == "executed" and len(membership_posts(gated, group.id)) == 1
        gated.state.groups[group.id].member_ids.discard(user.id)  # so a second run would show
        set_approved_by_hand(gated, request_id)
        again = await gated.run_held(client, request_id)
    assert again["status"] == "refused" and "already ran" in again["result"]["error"]
    assert len(membership_posts(gated, group.id)) == 1 and user.id not in gated.state.groups[group.id].member_ids
    assert [r["code"] for r in refusals(gated, request_id)] == ["tampered"]


async def test_a_revoked_approval_set_back_to_approved_does_not_run(gated: Steward) -> None:
    async with gated.client() as client:
        request_id, user, group = await request_membership(client, gated)
        assert await approvals_cli(gated, "approve", request_id) == 0
        assert await approvals_cli(gated, "deny", request_id, "--reason", "wrong group after all") == 0
        set_approved_by_hand(gated, request_id)
        view = await assert_refused_and_nothing_changed(client, gated, request_id, user, group, "tampered")
    assert "was denied by site-admin" in view["result"]["error"]


async def test_an_inserted_decision_row_is_refused(gated: Steward) -> None:
    async with gated.client() as client:
        request_id, user, group = await request_membership(client, gated)
        edit(gated, "INSERT INTO approval_decisions (request_id, approver, decision, reason, at, seal) "
             "VALUES (?, 'site-admin', 'approved', 'looks fine', 1e9, ?)", (request_id, "0" * 64))
        set_approved_by_hand(gated, request_id)
        view = await assert_refused_and_nothing_changed(client, gated, request_id, user, group, "tampered")
    assert "approved decision by site-admin does not match its seal" in view["result"]["error"]


async def test_an_inserted_request_is_refused(gated: Steward) -> None:
    """A request row copied from a real one (seal and all) under a new id, with a copied decision."""
    async with gated.client() as client:
        genuine, user, group = await request_membership(client, gated)
        assert await approvals_cli(gated, "deny", genuine, "--reason", "not this one") == 0
        forged_id = "apr_forged-by-someone-with-the-file"
        columns = ("tool, arguments, args_digest, requester, preview, created_at, expires_at, updated_at, "
                   "required_approvals, call_id, policy_hash, targets, site, binding, created_seq, seal")
        edit(gated, f"INSERT INTO approval_requests (id, status, {columns}) SELECT ?, 'approved', {columns} "
             "FROM approval_requests WHERE id = ?", (forged_id, genuine))
        edit(gated, "INSERT INTO approval_decisions (request_id, approver, decision, reason, at, policy_hash, seal) "
             "SELECT ?, approver, 'approved', reason, at, policy_hash, seal FROM approval_decisions WHERE request_id = ?",
             (forged_id, genuine))
        view = await assert_refused_and_nothing_changed(client, gated, forged_id, user, group, "tampered")
    assert "the request does not match its seal" in view["result"]["error"]


async def test_a_decision_made_under_a_forged_policy_is_refused(gated: Steward, tmp_path: Path) -> None:
    """Someone with the store AND the key runs a second process whose policy makes mallory an approver:
    the seal is genuine, but the server checks each decider against the policy IT has loaded."""
    forged_path = tmp_path / "forged" / "policies.yaml"
    forged_path.parent.mkdir()
    forged_path.write_text(
        GATED_POLICY.format(ttl="1h").replace("other-analyst: {roles: [analyst]}", "mallory: {roles: [approver]}")
        .replace("path: audit.sqlite", f"path: {gated.policy_path.parent / 'audit.sqlite'}")
    )  # the forged process shares the store: that file, or the database STEWARD_STORE_URL names
    forged = Governance.load(forged_path)
    async with gated.client() as client:
        request_id, user, group = await request_membership(client, gated)
        store = ApprovalStore(AuditLog.open(store_file(gated), key=signing_key_for(forged)))
        try:
            assert store.approve(request_id, "mallory", "trust me", forged).status == "approved"
        finally:
            store.audit.close()
        view = await assert_refused_and_nothing_changed(client, gated, request_id, user, group, "not_approved")
    assert "mallory is not an approver under it" in view["result"]["error"]
