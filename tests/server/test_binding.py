"""A request is bound to what the approver saw: the resolved ids, the Tableau site, the requester.

Through a real `mcp.Client` on emulated sites: a rename between approval and execution acts on the approved
id (or is refused when the policy now says no), a target that is gone is refused, a request made on another
site is refused there and runs on its own, and asking twice for the same change gives one request.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from emulator.generator import build_site
from emulator.testing import add_admin_pat, start_emulator
from server.governance import AuditLog
from tests.server.conftest import Steward, structured
from tests.server.test_governance_flow import approvals_cli, candidate, membership_posts
from tests.server.test_sealed_approvals import held

pytestmark = pytest.mark.anyio


@pytest.fixture
def gated(steward: Steward, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Steward:
    return held(steward, tmp_path, monkeypatch)


def refresh_posts(steward: Steward, item_id: str) -> list[Any]:
    return [e for e in steward.emulator.request_log if e.method == "POST" and e.path.endswith(f"/{item_id}/refresh")]


def extract_item(steward: Steward) -> Any:
    return next(d for d in steward.state.datasources.values() if d.has_extracts and not d.refresh_failure)


async def approved_refresh(client: Any, steward: Steward, item: Any) -> str:
    pending = structured(await client.call_tool("refresh_and_wait", {"kind": "datasource", "target": item.name}))
    request_id = pending["approval"]["request_id"]
    shown = structured(await client.call_tool("get_request", {"request_id": request_id}))  # still pending
    assert [(t["id"], t["name"]) for t in shown["targets"]] == [(item.id, item.name)]
    assert await approvals_cli(steward, "approve", request_id) == 0
    return request_id


async def test_a_renamed_target_is_refreshed_by_its_approved_id(gated: Steward) -> None:
    item = extract_item(gated)
    old_name = item.name
    async with gated.client() as client:
        request_id = await approved_refresh(client, gated, item)
        # Someone renames it, and gives its old name to another data source: replaying the name would
        # refresh the decoy.
        decoy = next(d for d in gated.state.datasources.values() if d.id != item.id and d.has_extracts)
        item.name, decoy.name = f"{old_name} (renamed)", old_name
        done = await gated.run_held(client, request_id)
    assert done["status"] == "executed", done
    note = done["result"]["note"]
    assert f"name '{old_name}' is now '{old_name} (renamed)'" in note
    assert "the approved id was acted on" in note and item.id in note
    assert done["result"]["ok"] and done["result"]["output"]["outcome"] == "succeeded", done
    assert len(refresh_posts(gated, item.id)) == 1 and refresh_posts(gated, decoy.id) == []


async def test_a_target_renamed_into_a_denied_group_is_refused(gated: Steward) -> None:
    """The policy is checked again on the group's current name: renamed to 'Site Admins', the deny holds."""
    user, group = candidate(gated)
    async with gated.client() as client:
        pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
        request_id = pending["approval"]["request_id"]
        assert await approvals_cli(gated, "approve", request_id) == 0
        gated.state.groups[group.id].name = "Site Admins"
        done = await gated.run_held(client, request_id)
    assert done["status"] == "failed", done
    error = done["result"]["error"]
    assert "name 'Marketing' is now 'Site Admins'" in error
    assert "The policy now denies this call" in error and "nothing was changed" in error
    assert user.id not in gated.state.groups[group.id].member_ids and membership_posts(gated, group.id) == []


async def test_a_target_that_no_longer_exists_is_refused(gated: Steward) -> None:
    item = extract_item(gated)
    async with gated.client() as client:
        request_id = await approved_refresh(client, gated, item)
        del gated.state.datasources[item.id]
        done = await gated.run_held(client, request_id)
    assert done["status"] == "failed" and "no longer exists" in done["result"]["error"], done
    assert item.id in done["result"]["error"]
    assert refresh_posts(gated, item.id) == []


async def test_the_same_change_asked_twice_is_one_request(gated: Steward) -> None:
    user, group = candidate(gated)
    async with gated.client() as client:
        first = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
        # By id this time: the same resolved targets, so the same request.
        second = structured(await client.call_tool("add_user_to_group", {"user": user.id, "group": group.id}))
        other = next(u for u in gated.state.users.values()
                     if u.id not in group.member_ids and u.site_role == "Explorer" and u.id != user.id)
        third = structured(await client.call_tool("add_user_to_group", {"user": other.email, "group": group.name}))
    assert second["approval"]["request_id"] == first["approval"]["request_id"]
    assert "already pending" in second["approval"]["message"]
    assert third["approval"]["request_id"] != first["approval"]["request_id"]


async def test_a_request_made_on_another_site_is_refused_there(gated: Steward) -> None:
    """Two servers on two sites share one store (and key), as `make demo` and a stdio demo once did."""
    other_site = build_site(size="demo", seed=8, content_url="other")
    add_admin_pat(other_site)
    item = extract_item(gated)
    with start_emulator(copy.deepcopy(other_site), job_speed=200) as other_emulator:
        other = Steward(emulator=other_emulator, policy_path=gated.policy_path)
        async with gated.client() as here, other.client() as there:
            request_id = await approved_refresh(here, gated, item)
            mark = len(other.emulator.request_log)
            seen_there = await other.run_held(there, request_id)
            assert seen_there["status"] == "approved", "the other site's server must leave it alone"
            assert [e for e in other.requests_since(mark) if e.method == "POST"] == []
            done = await gated.run_held(here, request_id)
    assert done["status"] == "executed" and len(refresh_posts(gated, item.id)) == 1
    log = AuditLog.open(Path(gated.policy_path).parent / "audit.sqlite", readonly=True)
    try:
        refused = [r.fields for r in log.records() if r.kind == "approval.refused" and r.fields["approval_id"] == request_id]
    finally:
        log.close()
    assert [r["code"] for r in refused] == ["other_site"]
    assert "another Tableau server or site" in refused[0]["reason"]
