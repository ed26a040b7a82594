"""The user-lifecycle writes and cancel_job end to end: a real mcp.Client asks, the preview is read from the
live site, an approver decides with an admin token, the server runs the approved ids; the emulator's state and
its request log (no write beyond the change) are checked afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emulator import model as m
from emulator.testing import DEMO_PAT, signed_in_server, start_emulator
from tests.server.conftest import Steward, error_text, settled, site_copy, structured, write_policy
from tests.server.test_governance_flow import GATED_POLICY, approvals_cli
from tests.server.test_governed_resources import records

pytestmark = pytest.mark.anyio
READS = ("GET",)


@pytest.fixture
def gated(steward: Steward, tmp_path: Path) -> Steward:
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))
    return steward


def writes(steward: Steward, since: int) -> list[tuple[str, str]]:
    """The writes Tableau received since `since` as (method, path below the site), sign-in and sign-out left out."""
    return [(e.method, e.path.split("/sites/", 1)[-1].partition("/")[2]) for e in steward.requests_since(since)
            if e.method not in READS and not e.path.endswith(("/auth/signin", "/auth/signout"))]


async def request_and_approve(steward: Steward, client: Any, tool: str, arguments: dict[str, Any]) -> tuple[str, dict]:
    """Ask, check nothing was written, approve as site-admin (admin token), return (preview, finished request)."""
    mark = len(steward.emulator.request_log)
    pending = structured(await client.call_tool(tool, arguments))
    assert pending["status"] == "pending_approval", pending
    assert writes(steward, mark) == [], "asking writes nothing"
    request_id = pending["approval"]["request_id"]
    assert await approvals_cli(steward, "approve", request_id, "--reason", "ticket 77") == 0
    done = await settled(client, request_id)  # the server runs it on its own once approved
    assert done["status"] == "executed" and done["result"]["ok"], done
    return pending["approval"]["preview"], done


def member_of(state: m.SiteState, group_name: str) -> tuple[m.User, m.Group]:
    group = next(g for g in state.groups.values() if g.name == group_name)
    user = next(u for u in state.users.values() if u.id in group.member_ids and u.site_role not in m.ADMIN_ROLES)
    return user, group


# -- remove_user_from_group ---------------------------------------------------------------------------------


async def test_remove_user_from_group_previews_runs_on_approval_and_then_is_no_change(gated: Steward) -> None:
    user, group = member_of(gated.state, "Marketing")
    before = len(group.member_ids)
    async with gated.client() as client:
        mark = len(gated.emulator.request_log)
        preview, done = await request_and_approve(gated, client, "remove_user_from_group",
                                                  {"user": user.name, "group": "Marketing"})
        assert f"is in Marketing ({before} members); approving removes them ({before - 1} members after)" in preview
        assert done["status"] == "executed", done
        output = done["result"]["output"]
        assert output["status"] == "removed" and output["membership"]["group_member_count"] == before - 1
        assert user.id not in gated.state.groups[group.id].member_ids
        assert writes(gated, mark) == [("DELETE", f"groups/{group.id}/users/{user.id}")]

        mark = len(gated.emulator.request_log)
        preview, done = await request_and_approve(gated, client, "remove_user_from_group",
                                                  {"user": user.id, "group": group.id})
        assert "is not in Marketing" in preview and "approving changes nothing" in preview
        assert done["result"]["output"]["status"] == "no_change"
        assert writes(gated, mark) == [], "not a member: nothing is sent to Tableau"


async def test_nobody_leaves_all_users_and_no_request_is_made(gated: Steward) -> None:
    user, _ = member_of(gated.state, "Marketing")
    async with gated.client() as client:
        mark = len(gated.emulator.request_log)
        text = error_text(await client.call_tool("remove_user_from_group", {"user": user.name, "group": "All Users"}))
        assert "does not remove anyone from 'All Users'" in text and "Unlicensed" in text
        assert writes(gated, mark) == []
        assert gated.state.groups  # the site is unchanged: every user is still in All Users
        assert user.id in next(g for g in gated.state.groups.values() if g.name == "All Users").member_ids


def test_the_emulator_refuses_removal_from_all_users_like_tableau() -> None:
    site = site_copy()
    with start_emulator(site) as emu:
        server = signed_in_server(emu, DEMO_PAT)
        all_users = next(g for g in site.groups.values() if g.name == "All Users")
        someone = next(iter(all_users.member_ids))
        import tableauserverclient as TSC

        group = TSC.GroupItem("All Users")
        group._id = all_users.id
        with pytest.raises(TSC.ServerResponseError) as caught:
            server.groups.remove_user(group, someone)
        assert caught.value.code.startswith("403") and "All Users" in caught.value.detail
        assert someone in all_users.member_ids


# -- create_user ----------------------------------------------------------------------------------------------


async def test_create_user_with_email_and_groups_then_same_role_is_no_change(gated: Steward) -> None:
    name = "new.hire@example.com"
    async with gated.client() as client:
        mark = len(gated.emulator.request_log)
        arguments = {"name": name, "site_role": "Viewer", "email": "hire@example.org", "groups": ["Marketing", "Sales"]}
        preview, done = await request_and_approve(gated, client, "create_user", arguments)
        assert f"Creates {name} as Viewer, email hire@example.org." in preview
        assert "Joins 2 group(s): Marketing, Sales." in preview
        assert done["status"] == "executed", done
        output = done["result"]["output"]
        assert output["status"] == "created" and output["groups_joined"] == ["Marketing", "Sales"]
        user = gated.state.user_by_name(name)
        assert user is not None and user.site_role == "Viewer" and user.email == "hire@example.org"
        for group_name in ("Marketing", "Sales"):
            assert user.id in next(g for g in gated.state.groups.values() if g.name == group_name).member_ids
        groups = {g.name: g.id for g in gated.state.groups.values()}
        assert writes(gated, mark) == [("POST", "users"), ("PUT", f"users/{user.id}"),
                                       ("POST", f"groups/{groups['Marketing']}/users"),
                                       ("POST", f"groups/{groups['Sales']}/users")]

        mark = len(gated.emulator.request_log)
        preview, done = await request_and_approve(gated, client, "create_user",
                                                  {"name": name.upper(), "site_role": "Viewer", "groups": ["Marketing"]})
        assert "already exists with this role" in preview and "Approving changes nothing" in preview
        assert done["result"]["output"]["status"] == "no_change"
        assert writes(gated, mark) == []


async def test_create_user_that_exists_with_another_role_is_a_conflict(gated: Steward) -> None:
    existing = next(u for u in gated.state.users.values() if u.site_role == "Creator")
    async with gated.client() as client:
        mark = len(gated.emulator.request_log)
        text = error_text(await client.call_tool("create_user", {"name": existing.name, "site_role": "Viewer"}))
        assert "already exists with site role Creator, not Viewer" in text and "update_user_site_role" in text
        assert writes(gated, mark) == []
    assert gated.state.users[existing.id].site_role == "Creator"


async def test_create_user_rejects_unknown_groups_and_roles_before_any_request(gated: Steward) -> None:
    async with gated.client() as client:
        mark = len(gated.emulator.request_log)
        text = error_text(await client.call_tool("create_user", {"name": "x@example.com", "site_role": "Viewer",
                                                                  "groups": ["Marketting"]}))
        assert "Marketing" in text  # the closest group is suggested
        text = error_text(await client.call_tool("create_user", {"name": "x@example.com", "site_role": "Boss"}))
        assert "Viewer" in text and "pydantic" not in text.lower()
        assert writes(gated, mark) == []


# -- update_user_site_role ------------------------------------------------------------------------------------


def owner_of_content(state: m.SiteState) -> m.User:
    owners = [wb.owner_id for wb in state.workbooks.values()]
    return next(state.users[o] for o in owners if state.users[o].site_role == "Creator")


async def test_reclaiming_a_license_previews_what_they_own_and_lose(gated: Steward) -> None:
    user = owner_of_content(gated.state)
    workbooks = sum(1 for wb in gated.state.workbooks.values() if wb.owner_id == user.id)
    async with gated.client() as client:
        mark = len(gated.emulator.request_log)
        preview, done = await request_and_approve(gated, client, "update_user_site_role",
                                                  {"user": user.name, "site_role": "Unlicensed"})
        assert f"becomes Unlicensed. They own {workbooks} workbook(s)" in preview
        assert "no longer be able to: sign in" in preview and "Their license is freed" in preview
        assert done["status"] == "executed", done
        output = done["result"]["output"]
        assert output["status"] == "updated" and output["old_site_role"] == "Creator"
        assert output["site_role"] == "Unlicensed" and output["owned"]["workbook"] == workbooks
        assert "publish and own workbooks and data sources" in output["lost"]
        assert gated.state.users[user.id].site_role == "Unlicensed"
        assert writes(gated, mark) == [("PUT", f"users/{user.id}")]

        mark = len(gated.emulator.request_log)
        preview, done = await request_and_approve(gated, client, "update_user_site_role",
                                                  {"user": user.id, "site_role": "unlicensed"})
        assert "already has site role Unlicensed" in preview
        assert done["result"]["output"]["status"] == "no_change" and writes(gated, mark) == []


async def test_the_last_site_administrator_is_not_demoted(steward: Steward) -> None:
    admin = steward.state.site_admin()
    for other in steward.state.users.values():
        if other.id != admin.id and other.site_role in m.ADMIN_ROLES:
            other.site_role = "Creator"
    async with steward.client() as client:  # an open policy: the tool itself must refuse
        mark = len(steward.emulator.request_log)
        text = error_text(await client.call_tool("update_user_site_role", {"user": admin.name, "site_role": "Viewer"}))
        assert "only administrator" in text and "Make another user a site administrator first" in text
        assert writes(steward, mark) == []
    assert steward.state.users[admin.id].site_role in m.ADMIN_ROLES


def test_the_emulator_refuses_to_demote_the_last_administrator() -> None:
    site = site_copy()
    admin = site.site_admin()
    for other in site.users.values():
        if other.id != admin.id and other.site_role in m.ADMIN_ROLES:
            other.site_role = "Creator"
    with start_emulator(site) as emu:
        server = signed_in_server(emu, DEMO_PAT)
        import tableauserverclient as TSC

        body = b'<tsRequest><user siteRole="Viewer"/></tsRequest>'
        with pytest.raises(TSC.ServerResponseError) as caught:
            server.users.put_request(f"{server.users.baseurl}/{admin.id}", body)
        assert caught.value.code.startswith("409") and "only administrator" in caught.value.detail
        assert site.users[admin.id].site_role in m.ADMIN_ROLES


async def test_promotion_to_administrator_is_denied_by_the_shipped_policy(steward: Steward) -> None:
    repo_policy = Path(__file__).resolve().parents[2] / "policies.yaml"
    text = repo_policy.read_text().replace("path: .steward/audit.sqlite", "path: audit.sqlite")
    steward.policy_path = write_policy(steward.policy_path.parent, text)
    user = next(u for u in steward.state.users.values() if u.site_role == "Viewer")
    async with steward.client() as client:
        mark = len(steward.emulator.request_log)
        text = error_text(await client.call_tool("update_user_site_role",
                                                 {"user": user.name, "site_role": "SiteAdministratorCreator"}))
        assert "no-admin-site-roles" in text
        pending = structured(await client.call_tool("update_user_site_role", {"user": user.name, "site_role": "Explorer"}))
        assert pending["status"] == "pending_approval"
        assert writes(steward, mark) == []


# -- cancel_job -------------------------------------------------------------------------------------------------


@pytest.fixture
def slow_jobs(tmp_path: Path):
    site = site_copy()
    with start_emulator(site, job_speed=0.0001) as emu:
        yield Steward(emulator=emu, policy_path=write_policy(tmp_path, GATED_POLICY.format(ttl="1h")))


def queued_refresh(steward: Steward) -> str:
    server = signed_in_server(steward.emulator, DEMO_PAT)
    workbook = next(wb for wb in steward.state.workbooks.values() if wb.has_extracts and not wb.refresh_failure)
    return server.workbooks.refresh(workbook.id).id


async def test_cancel_job_cancels_a_queued_job_once_approved(slow_jobs: Steward) -> None:
    job_id = queued_refresh(slow_jobs)
    async with slow_jobs.client() as client:
        mark = len(slow_jobs.emulator.request_log)
        preview, done = await request_and_approve(slow_jobs, client, "cancel_job", {"job_id": job_id})
        assert f"job {job_id}" in preview and "approving cancels it" in preview
        assert done["status"] == "executed", done
        output = done["result"]["output"]
        assert output["status"] == "cancelled" and output["job"]["finish_code"] == 2
        assert slow_jobs.state.jobs[job_id].status == "Cancelled"
        assert writes(slow_jobs, mark) == [("PUT", f"jobs/{job_id}")]

        # Finished now: the answer is its outcome, and nothing is sent.
        mark = len(slow_jobs.emulator.request_log)
        preview, done = await request_and_approve(slow_jobs, client, "cancel_job", {"job_id": job_id})
        assert "already finished: Cancelled" in preview
        assert done["result"]["output"]["status"] == "already_finished" and writes(slow_jobs, mark) == []


def test_the_emulator_refuses_to_cancel_a_finished_job() -> None:
    site = site_copy()
    with start_emulator(site, job_speed=200) as emu:
        server = signed_in_server(emu, DEMO_PAT)
        workbook = next(wb for wb in site.workbooks.values() if wb.has_extracts and not wb.refresh_failure)
        job = server.workbooks.refresh(workbook.id)
        server.jobs.wait_for_job(job.id, timeout=30)
        import tableauserverclient as TSC

        with pytest.raises(TSC.ServerResponseError) as caught:
            server.jobs.cancel(job.id)
        assert caught.value.code.startswith("409") and "already finished" in caught.value.detail
        assert site.jobs[job.id].status == "Success"


# -- blast radius through the call path ---------------------------------------------------------------------

LIMITED_POLICY = GATED_POLICY.replace(
    "approvals: {{approvers: {{roles: [approver]}}",
    "approvals: {{approvers: {{roles: [approver], principals: [other-analyst]}}",
).replace(
    "rules:\n",
    "rules:\n  - {{id: big-needs-two, tools: [create_user], principals: ['*'], max_changes: 2,"
    " over_limit: {{require_approvals: 2}}}}\n",
)


async def test_past_max_changes_the_request_needs_two_approvers(steward: Steward, tmp_path: Path) -> None:
    steward.policy_path = write_policy(tmp_path, LIMITED_POLICY.format(ttl="1h"))
    name = "bulk.hire@example.com"
    async with steward.client() as client:
        small = structured(await client.call_tool("create_user", {"name": "one@example.com", "site_role": "Viewer"}))
        assert small["status"] == "pending_approval"
        big = structured(await client.call_tool(
            "create_user", {"name": name, "site_role": "Viewer", "groups": ["Marketing", "Sales"]}))
        request_id = big["approval"]["request_id"]
        assert "big-needs-two" in big["approval"]["message"]
        assert await approvals_cli(steward, "approve", request_id) == 0
        waiting = structured(await client.call_tool("get_request", {"request_id": request_id}))
        assert waiting["status"] == "pending" and steward.state.user_by_name(name) is None
        assert await approvals_cli(steward, "approve", request_id, token_of="other-analyst") == 0
        done = await settled(client, request_id)
        assert done["status"] == "executed", done
    assert steward.state.user_by_name(name) is not None


# -- prompts for the governance routines ----------------------------------------------------------------------


async def test_the_routine_prompts_name_the_governed_tools_and_check_their_arguments(steward: Steward) -> None:
    from mcp.shared.exceptions import MCPError

    async with steward.client() as client:
        listed = {p.name for p in (await client.list_prompts()).prompts}
        assert {"reclaim_licenses", "hand_over_content", "reconcile_group"} <= listed
        reclaim = (await client.get_prompt("reclaim_licenses", {"inactive_days": "120"})).messages[0].content.text
        assert "120 days" in reclaim and "update_user_site_role with site_role='Unlicensed'" in reclaim
        handover = (await client.get_prompt(
            "hand_over_content", {"user": "old.hand", "new_owner": "dana.ito", "project": "Finance"})).messages[0].content.text
        assert "transfer_content_ownership with owner='old.hand', new_owner='dana.ito', project='Finance'" in handover
        reconcile = (await client.get_prompt(
            "reconcile_group", {"group": "Sales", "members": "a@x.com, b@x.com", "remove_missing": "true"}
        )).messages[0].content.text
        assert '["a@x.com", "b@x.com"]' in reconcile and "remove_missing=true" in reconcile
        with pytest.raises(MCPError, match="inactive_days"):
            await client.get_prompt("reclaim_licenses", {"inactive_days": "soon"})
        with pytest.raises(MCPError, match="new_owner"):
            await client.get_prompt("hand_over_content", {"user": "old.hand"})
    audited = [r["tool"] for r in records(steward) if r["kind"] == "tool_call.outcome"]
    assert {"prompt:reclaim_licenses", "prompt:hand_over_content", "prompt:reconcile_group"} <= set(audited)

