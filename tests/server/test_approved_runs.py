"""Approved work runs on its own: woken by the decision, side by side, and get_request only reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from emulator.testing import start_emulator
from server import pipeline
from server.governance import AuditLog
from tests.server.conftest import Steward, error_text, settled, site_copy, structured, write_policy
from tests.server.test_binding import refresh_posts
from tests.server.test_governance_flow import GATED_POLICY, approvals_cli, membership_posts
from tests.server.test_sealed_approvals import request_membership

pytestmark = pytest.mark.anyio


@pytest.fixture
def slow_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Steward]:
    """Refresh jobs that take a few real seconds, and no poll: only the approval's wake-up runs anything."""
    monkeypatch.setattr(pipeline, "APPROVAL_POLL_SECONDS", 3600)
    with start_emulator(site_copy(), job_speed=8) as emu:
        yield Steward(emulator=emu, policy_path=write_policy(tmp_path, GATED_POLICY.format(ttl="1h")))


def extract_sources(steward: Steward, count: int) -> list[Any]:
    found = [d for d in steward.state.datasources.values() if d.has_extracts and not d.refresh_failure]
    names = [d.name for d in found]
    return [d for d in found if names.count(d.name) == 1][:count]


async def request_refresh(client: Any, item: Any) -> str:
    pending = structured(await client.call_tool("refresh_and_wait", {"kind": "datasource", "target": item.name}))
    assert pending["status"] == "pending_approval", pending
    return pending["approval"]["request_id"]


def job_reads(steward: Steward, job_id: str) -> list[int]:
    """Positions in the emulator's request log of every read of job `job_id`."""
    return [i for i, e in enumerate(steward.emulator.request_log) if e.method == "GET" and e.path.endswith(f"/jobs/{job_id}")]


async def test_two_approved_refreshes_run_side_by_side(slow_jobs: Steward) -> None:
    first, second = extract_sources(slow_jobs, 2)
    async with slow_jobs.client() as client:
        ids = [await request_refresh(client, item) for item in (first, second)]
        for request_id in ids:
            assert await approvals_cli(slow_jobs, "approve", request_id) == 0
        done = [await settled(client, request_id) for request_id in ids]
    assert [d["status"] for d in done] == ["executed", "executed"], done
    jobs = [d["result"]["output"]["job_id"] for d in done]
    log = slow_jobs.emulator.request_log
    second_post = next(i for i, e in enumerate(log) if e.method == "POST" and e.path.endswith(f"/{second.id}/refresh"))
    # Run one after the other, every read of the first job would come before the second refresh starts.
    assert job_reads(slow_jobs, jobs[0])[-1] > second_post, "the second refresh waited for the first"
    job_a, job_b = (slow_jobs.state.jobs[j] for j in jobs)
    assert job_b.created_at < job_a.completed_at and job_a.created_at < job_b.completed_at  # the emulator agrees
    assert len(refresh_posts(slow_jobs, first.id)) == len(refresh_posts(slow_jobs, second.id)) == 1


async def test_get_request_reads_a_running_refresh_without_waiting(slow_jobs: Steward) -> None:
    (item,) = extract_sources(slow_jobs, 1)
    async with slow_jobs.client() as client:
        request_id = await request_refresh(client, item)
        assert await approvals_cli(slow_jobs, "approve", request_id) == 0
        with anyio.fail_after(30):
            while (view := structured(await client.call_tool("get_request", {"request_id": request_id})))["job"] is None:
                assert view["status"] in ("approved", "executing"), view
                await anyio.sleep(0.05)
        job = slow_jobs.state.jobs[view["job"]["job_id"]]
        assert job.completed_at is None, "get_request answered while the job was still running"
        assert view["status"] == "executing" and 0 <= view["job"]["progress"] <= 100 and view["job"]["status"]
        done = await settled(client, request_id)
    assert done["status"] == "executed" and done["job"] is None and done["result"]["output"]["job_id"] == job.id


async def test_the_requester_withdraws_a_pending_request_and_a_later_approval_is_refused(steward: Steward, tmp_path: Path) -> None:
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))
    async with steward.client() as client:
        request_id, user, group = await request_membership(client, steward)
        withdrawn = structured(await client.call_tool("cancel_request", {"request_id": request_id, "reason": "wrong group"}))
        assert withdrawn["status"] == "done" and withdrawn["result"]["status"] == "denied", withdrawn
        assert await approvals_cli(steward, "approve", request_id) != 0
        view = structured(await client.call_tool("get_request", {"request_id": request_id}))
        again = error_text(await client.call_tool("cancel_request", {"request_id": request_id}))
        unknown = error_text(await client.call_tool("cancel_request", {"request_id": "apr_not-a-real-request"}))
    assert view["status"] == "denied" and view["message"] == "You withdrew it; nothing was changed."
    assert view["decisions"] == [{"approver": "assistant-user", "decision": "denied",
                                  "reason": "withdrawn by the requester: wrong group", "at": view["decisions"][0]["at"]}]
    assert "is denied and can no longer be withdrawn" in again and "of yours exists" in unknown
    assert user.id not in steward.state.groups[group.id].member_ids and membership_posts(steward, group.id) == []
    log = AuditLog.open(steward.policy_path.parent / "audit.sqlite", readonly=True)
    try:
        kinds = [(r.kind, r.fields.get("approver") or r.fields.get("actor")) for r in log.records()
                 if r.fields.get("approval_id") == request_id]
    finally:
        log.close()
    assert ("approval.denied", "assistant-user") in kinds and ("approval.refused", "site-admin") in kinds
    assert ("approval.approved", "site-admin") not in kinds


async def test_a_listening_requester_hears_its_request_decided_and_done(steward: Steward, tmp_path: Path) -> None:
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))
    async with steward.client() as client:
        request_id, _user, group = await request_membership(client, steward)
        uri = f"steward://requests/{request_id}"
        seen = []
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            assert await approvals_cli(steward, "approve", request_id) == 0
            with anyio.fail_after(30):
                async for event in subscription:  # each event says: read it again
                    seen.append(event.uri)
                    view = structured(await client.call_tool("get_request", {"request_id": request_id}))
                    if view["status"] == "executed":
                        break
    assert seen and set(seen) == {uri}
    assert view["result"]["ok"] and len(membership_posts(steward, group.id)) == 1
