"""Approvals: who may approve, the two-person rule, single-use atomic claims bound to tool and argument
digest, expiry, and an audit record for every decision (committed with it)."""

from __future__ import annotations

import multiprocessing
import re
from pathlib import Path
from typing import Any

import pytest

from server.governance.approvals import ApprovalError, ApprovalStore
from server.governance.audit import AuditLog, AuditUnavailable
from server.governance.canonical import args_digest
from server.governance.keys import SigningKey
from server.governance.policy import Policy, parse_policy
from tests.governance.helpers import RICH_POLICY, FakeClock, claim_worker

KEY = SigningKey(bytes(range(32)), "tests")
ARGS = {"user": "sam@example.com", "group": "Marketing"}
TOOL = "add_user_to_group"


@pytest.fixture
def store(store_path: Path, clock: FakeClock) -> ApprovalStore:
    return ApprovalStore.open(store_path, key=KEY, clock=clock)


@pytest.fixture
def one_approver(rich_policy: Policy) -> Policy:
    return parse_policy(RICH_POLICY.replace("required_approvals: 2", "required_approvals: 1"))


def kinds(store: ApprovalStore) -> list[str]:
    return [r.kind for r in store.audit.records()]


def refusal(excinfo: pytest.ExceptionInfo[ApprovalError]) -> str:
    return excinfo.value.code


def test_create_binds_tool_arguments_requester_and_preview(store: ApprovalStore, clock: FakeClock) -> None:
    request = store.create(
        TOOL,
        ARGS,
        "alice",
        "sam is not in Marketing (12 members); approving adds them.",
        3600,
        required_approvals=2,
        call_id="call_1",
        policy_hash="ph",
    )
    assert re.fullmatch(r"apr_[A-Za-z0-9_-]{24}", request.id)
    assert request.status == "pending" and request.requester == "alice" and dict(request.arguments) == ARGS
    assert request.args_digest == args_digest(ARGS)
    assert (request.expires_at - request.created_at).total_seconds() == 3600
    assert store.get(request.id) == request and store.get("apr_nope") is None
    assert [r.id for r in store.list("pending")] == [request.id] and store.list("approved") == []
    created = store.audit.records()[-1]
    assert created.kind == "approval.created" and created.fields["approval_id"] == request.id
    assert created.fields["args_digest"] == request.args_digest and created.fields["call_id"] == "call_1"
    ids = {store.create(TOOL, {**ARGS, "n": i}, "alice", "p", 60).id for i in range(20)}
    assert len(ids) == 20
    # The same live request asked again is the same request (the assistant retrying must not pile up work).
    assert store.create(TOOL, {**ARGS, "n": 3}, "alice", "p", 60).id in ids and len(store.list()) == 21


def test_requester_never_approves_its_own_request(store: ApprovalStore, rich_policy: Policy) -> None:
    request = store.create(TOOL, ARGS, "bob", "preview", 3600)  # bob is an approver, but asked for it
    with pytest.raises(ApprovalError) as info:
        store.approve(request.id, "bob", "looks fine", rich_policy)
    assert refusal(info) == "self_approval"
    assert store.get(request.id).status == "pending" and store.get(request.id).decisions == ()
    refused = store.audit.records()[-1]
    assert (
        refused.kind == "approval.refused"
        and refused.fields["actor"] == "bob"
        and refused.fields["code"] == "self_approval"
    )


def test_only_approvers_named_by_the_policy_approve(store: ApprovalStore, rich_policy: Policy) -> None:
    request = store.create(TOOL, ARGS, "alice", "preview", 3600)
    for who in ("dave", "erin", "somebody"):
        with pytest.raises(ApprovalError) as info:
            store.approve(request.id, who, None, rich_policy)
        assert refusal(info) == "not_approver"
    assert store.get(request.id).status == "pending"


def test_two_person_rule(store: ApprovalStore, rich_policy: Policy) -> None:
    assert rich_policy.required_approvals == 2
    request = store.create(TOOL, ARGS, "alice", "preview", 3600, required_approvals=2)
    after_one = store.approve(request.id, "bob", "ok", rich_policy)
    assert after_one.status == "pending" and after_one.approvers == ("bob",)
    with pytest.raises(ApprovalError) as info:
        store.approve(request.id, "bob", "again", rich_policy)
    assert refusal(info) == "duplicate_approver"
    with pytest.raises(ApprovalError):
        store.claim_for_execution(request.id, TOOL, request.args_digest, policy=rich_policy)  # not approved yet
    done = store.approve(request.id, "carol", "ok too", rich_policy)
    assert done.status == "approved" and set(done.approvers) == {"bob", "carol"}
    with pytest.raises(ApprovalError) as info:
        store.approve(request.id, "carol", "third", rich_policy)
    assert refusal(info) == "used"
    records = [r for r in store.audit.records() if r.kind == "approval.approved"]
    assert [(r.fields["approvals"], r.fields["complete"]) for r in records] == [(1, False), (2, True)]


def test_the_stricter_of_request_and_policy_counts(
    store: ApprovalStore, rich_policy: Policy, one_approver: Policy
) -> None:
    # created under a two-person policy; a later relaxed policy does not lower the bar
    request = store.create(TOOL, ARGS, "alice", "preview", 3600, required_approvals=2)
    assert store.approve(request.id, "bob", None, one_approver).status == "pending"
    # created under a relaxed policy; a stricter policy at approval time raises it
    other = store.create(TOOL, {**ARGS, "n": 1}, "alice", "preview", 3600, required_approvals=1)
    assert store.approve(other.id, "bob", None, rich_policy).status == "pending"


def test_claim_is_single_use_and_bound_to_tool_and_arguments(
    store: ApprovalStore, one_approver: Policy
) -> None:
    request = store.create(TOOL, ARGS, "alice", "preview", 3600)
    store.approve(request.id, "bob", "ok", one_approver)
    changed = {**ARGS, "group": "Administrators"}
    with pytest.raises(ApprovalError) as info:
        store.claim_for_execution(request.id, TOOL, args_digest(changed), policy=one_approver)
    assert refusal(info) == "mismatch" and "does not match what was approved" in str(info.value)
    with pytest.raises(ApprovalError) as info:
        store.claim_for_execution(request.id, "refresh_and_wait", request.args_digest, policy=one_approver)
    assert refusal(info) == "mismatch"
    with pytest.raises(ApprovalError) as info:
        store.claim_for_execution(request.id, TOOL, request.args_digest, requester="mallory", policy=one_approver)
    assert refusal(info) == "mismatch"
    assert store.get(request.id).status == "approved"  # refusals changed nothing
    claimed = store.claim_for_execution(request.id, TOOL, request.args_digest, requester="alice", policy=one_approver)
    assert claimed.status == "executing"
    with pytest.raises(ApprovalError) as info:  # replay while running
        store.claim_for_execution(request.id, TOOL, request.args_digest, policy=one_approver)
    assert refusal(info) == "used"
    finished = store.record_result(request.id, True, "sam added to Marketing")
    assert finished.status == "executed" and finished.result == "sam added to Marketing"
    with pytest.raises(ApprovalError) as info:  # replay after it ran
        store.claim_for_execution(request.id, TOOL, request.args_digest, policy=one_approver)
    assert refusal(info) == "used"
    with pytest.raises(ApprovalError):
        store.record_result(request.id, True, "twice")
    with pytest.raises(ApprovalError) as info:
        store.claim_for_execution("apr_unknown", TOOL, request.args_digest, policy=one_approver)
    assert refusal(info) == "not_found"
    assert kinds(store).count("approval.refused") == 6
    assert kinds(store)[-3:] == ["approval.executed", "approval.refused", "approval.refused"]


def test_failed_execution_is_recorded(store: ApprovalStore, one_approver: Policy) -> None:
    request = store.create(TOOL, ARGS, "alice", "preview", 3600)
    store.approve(request.id, "bob", None, one_approver)
    store.claim_for_execution(request.id, TOOL, request.args_digest, policy=one_approver)
    failed = store.record_result(
        request.id, False, "Tableau said 409 with token eyJhbGciOiJI.eyJzdWIiOiJ4.c2ln"
    )
    assert failed.status == "failed" and "eyJ" not in failed.result
    assert store.audit.records()[-1].kind == "approval.failed"


def test_expiry(store: ApprovalStore, clock: FakeClock, one_approver: Policy) -> None:
    pending = store.create(TOOL, ARGS, "alice", "preview", 600)
    approved = store.create(TOOL, ARGS, "alice", "preview", 600)
    store.approve(approved.id, "bob", None, one_approver)
    clock.advance(601)
    assert store.get(pending.id).status == "expired" and store.get(approved.id).status == "expired"
    assert (
        store.list("approved") == [] and store.list("pending") == []
    )  # the server's poll skips lapsed approvals
    assert {r.id for r in store.list("expired")} == {pending.id, approved.id}
    with pytest.raises(ApprovalError) as info:
        store.approve(pending.id, "bob", None, one_approver)
    assert refusal(info) == "expired"
    with pytest.raises(ApprovalError) as info:
        store.claim_for_execution(approved.id, TOOL, approved.args_digest, policy=one_approver)
    assert refusal(info) == "expired"
    assert {r.fields["approval_id"] for r in store.audit.records() if r.kind == "approval.expired"} == {
        pending.id,
        approved.id,
    }
    late = store.create(TOOL, ARGS, "alice", "preview", 60)
    clock.advance(61)
    assert store.expire_due() == [late.id] and store.list("expired")[0].id == late.id


def test_denied_requests_cannot_be_approved_or_run(
    store: ApprovalStore, rich_policy: Policy, one_approver: Policy
) -> None:
    request = store.create(TOOL, ARGS, "alice", "preview", 3600)
    with pytest.raises(ApprovalError) as info:
        store.deny(request.id, "bob", "  ")
    assert refusal(info) == "bad_request"
    with pytest.raises(ApprovalError) as info:
        store.deny(request.id, "erin", "no", rich_policy)
    assert refusal(info) == "not_approver"
    denied = store.deny(request.id, "bob", "not this quarter", rich_policy)
    assert denied.status == "denied" and denied.decisions[0].reason == "not this quarter"
    with pytest.raises(ApprovalError) as info:
        store.approve(request.id, "carol", None, rich_policy)
    assert refusal(info) == "denied"
    with pytest.raises(ApprovalError) as info:
        store.claim_for_execution(request.id, TOOL, request.args_digest, policy=one_approver)
    assert refusal(info) == "denied"
    # an approval that has not run yet can be revoked; the requester may withdraw its own request
    revoked = store.create(TOOL, ARGS, "alice", "preview", 3600)
    store.approve(revoked.id, "bob", None, one_approver)
    assert store.deny(revoked.id, "carol", "changed my mind", one_approver).status == "denied"
    withdrawn = store.create(TOOL, ARGS, "alice", "preview", 3600)
    assert store.deny(withdrawn.id, "alice", "not needed", rich_policy).status == "denied"


def test_secret_looking_arguments_are_never_held(store: ApprovalStore) -> None:
    with pytest.raises(ApprovalError) as info:
        store.create("refresh_and_wait", {"target": "x", "api_token": "abc123secret"}, "alice", "p", 60)
    assert refusal(info) == "bad_request" and "abc123secret" not in str(info.value)
    assert store.list() == []


def test_no_decision_without_its_audit_record(
    store_path: Path, clock: FakeClock, one_approver: Policy
) -> None:
    writable = ApprovalStore.open(store_path, key=KEY, clock=clock)
    request = writable.create(TOOL, ARGS, "alice", "preview", 3600)
    read_only = ApprovalStore(AuditLog.open(store_path, readonly=True), key=KEY, clock=clock)
    assert read_only.get(request.id).status == "pending"
    with pytest.raises(AuditUnavailable):
        read_only.approve(request.id, "bob", None, one_approver)
    with pytest.raises(AuditUnavailable):
        read_only.create(TOOL, {**ARGS, "n": 9}, "alice", "p", 60)
    assert writable.get(request.id).status == "pending" and writable.get(request.id).decisions == ()
    assert writable.audit.verify().ok


def test_a_full_flow_leaves_a_verifiable_trail(store: ApprovalStore, rich_policy: Policy) -> None:
    request = store.create(TOOL, ARGS, "alice", "preview", 3600, required_approvals=2)
    store.approve(request.id, "bob", "ok", rich_policy)
    store.approve(request.id, "carol", "ok", rich_policy)
    store.claim_for_execution(request.id, TOOL, request.args_digest, policy=rich_policy)
    store.record_result(request.id, True, "done")
    assert kinds(store) == [
        "approval.created",
        "approval.approved",
        "approval.approved",
        "approval.executing",
        "approval.executed",
    ]
    assert store.audit.verify().ok


def test_two_processes_racing_to_claim_exactly_one_wins(store_path: Path, one_approver: Policy) -> None:
    store = ApprovalStore.open(store_path, key=KEY)
    claims: list[tuple[str, str, str]] = []
    for i in range(25):
        request = store.create(TOOL, {**ARGS, "n": i}, "alice", "preview", 3600)
        store.approve(request.id, "bob", None, one_approver)
        claims.append((request.id, TOOL, request.args_digest))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    racers = [
        ctx.Process(target=claim_worker, args=(str(store_path), order, barrier, results))
        for order in (claims, list(reversed(claims)))
    ]
    for p in racers:
        p.start()
    won: list[Any] = [results.get(timeout=120) for _ in racers]
    for p in racers:
        p.join(60)
        assert p.exitcode == 0
    all_won = won[0] + won[1]
    assert sorted(all_won) == sorted(c[0] for c in claims)  # every request claimed exactly once
    assert len(set(all_won)) == len(all_won) == 25
    assert all(store.get(c[0]).status == "executing" for c in claims)
    records = store.audit.records()
    assert sum(r.kind == "approval.executing" for r in records) == 25
    assert sum(r.kind == "approval.refused" and r.fields["code"] == "used" for r in records) == 25
    assert store.audit.verify().ok
