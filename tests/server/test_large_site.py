"""Every tool on the large emulated site (20,000 workbooks, 10,000 users) with the default limits:
results fit an assistant's context, totals are honest, and listings cost pages, not per-item requests.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from emulator import model as m
from emulator.testing import start_emulator
from tests.server.conftest import OPEN_POLICY, Steward, site_copy, structured, write_policy
from tools.registry import TOOLS

pytestmark = pytest.mark.anyio

MAX_TEXT = 25_000  # characters of a result's text content
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
PER_ITEM = re.compile(rf"/(workbooks|views|datasources|flows|projects|users|groups|jobs)/{UUID}$")
GLOB_CHARS = set("*?[]")


@dataclass
class Large:
    steward: Steward
    gated_group: str  # add_user_to_group into this group needs approval (so get_request has a request)

    @property
    def state(self) -> m.SiteState:
        return self.steward.state


def unique_group(state: m.SiteState, *, exclude: set[str] = frozenset()) -> m.Group:
    names = Counter(g.name for g in state.groups.values())
    return next(
        g
        for g in sorted(state.groups.values(), key=lambda g: g.name)
        if names[g.name] == 1
        and g.name not in exclude
        and g.name != "All Users"
        and "admin" not in g.name.lower()
        and not GLOB_CHARS & set(g.name)
        and g.member_ids
    )


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory):
    site = site_copy("large")
    gated = unique_group(site)
    # OPEN_POLICY plus one gate, so a pending approval request exists for get_request.
    policy = textwrap.dedent(OPEN_POLICY).replace(
        "rules:\n",
        "rules:\n"
        "  - id: gate-one-group\n"
        "    tools: [add_user_to_group]\n"
        "    roles: [admin]\n"
        "    effect: require_approval\n"
        f'    when: {{group_name: ["{gated.name}"]}}\n',
    )
    with start_emulator(site, job_speed=500) as emu:
        yield Large(
            Steward(emulator=emu, policy_path=write_policy(tmp_path_factory.mktemp("large"), policy)),
            gated.name,
        )


def fits(result: Any) -> dict[str, Any]:
    text = result.content[0].text
    assert len(text) < MAX_TEXT, f"{len(text)} characters"
    return structured(result)


def honest_page(body: dict[str, Any], key: str, total: int) -> None:
    assert body[key], "a first page of a non-empty listing is not empty"
    assert len(body[key]) <= total
    assert (body["next_cursor"] is not None) == (len(body[key]) < total)


def owned(state: m.SiteState) -> Counter[str]:
    counts: Counter[str] = Counter()
    for collection in (state.workbooks, state.datasources, state.flows, state.projects):
        counts.update(item.owner_id for item in collection.values())
    return counts


def unique_top_project(state: m.SiteState) -> m.Project:
    names = Counter(p.name for p in state.projects.values())
    return next(p for p in state.projects.values() if p.parent_id is None and names[p.name] == 1)


def refreshable_datasource(state: m.SiteState) -> m.Datasource:
    keys = Counter((d.name, d.project_id) for d in state.datasources.values())
    busy = {j.target_id for j in state.jobs.values() if j.completed_at is None}
    return next(
        d
        for d in state.datasources.values()
        if d.has_extracts and not d.refresh_failure and d.id not in busy and keys[(d.name, d.project_id)] == 1
    )


def addable_user(state: m.SiteState, group: m.Group) -> m.User:
    return next(
        u
        for u in state.users.values()
        if u.id not in group.member_ids and u.site_role != "Unlicensed" and "admin" not in u.site_role.lower()
    )


# -- one case per tool: makes the call(s), checks honesty, returns every result for the size check ------


async def case_list_content(client, large: Large) -> list[Any]:
    result = await client.call_tool("list_content", {})
    body = fits(result)
    assert body["kind"] == "workbook" and body["total"] == len(large.state.workbooks)
    honest_page(body, "items", body["total"])
    assert {i["id"] for i in body["items"]} <= set(large.state.workbooks)
    return [result]


async def case_find_owners(client, large: Large) -> list[Any]:
    result = await client.call_tool("find_owners", {})
    body = fits(result)
    counts = owned(large.state)
    assert body["total_owners"] == len(counts)
    assert body["total_items"] == sum(counts.values())
    honest_page(body, "owners", body["total_owners"])
    for owner in body["owners"]:
        assert owner["item_count"] == counts[owner["user_id"]]
    return [result]


async def case_list_users(client, large: Large) -> list[Any]:
    result = await client.call_tool("list_users", {})
    body = fits(result)
    assert body["total"] == len(large.state.users)
    honest_page(body, "users", body["total"])
    return [result]


async def case_list_groups(client, large: Large) -> list[Any]:
    result = await client.call_tool("list_groups", {})
    body = fits(result)
    assert body["total"] == len(large.state.groups)
    honest_page(body, "groups", body["total"])
    for group in body["groups"]:
        assert group["member_count"] == len(large.state.groups[group["id"]].member_ids)
    return [result]


async def case_inspect_permissions(client, large: Large) -> list[Any]:
    project = unique_top_project(large.state)
    plain = await client.call_tool("inspect_permissions", {"kind": "project", "target": project.name})
    body = fits(plain)
    assert body["id"] == project.id
    # "Who can view it?" expands groups: on this site that is hundreds of users, so it must page.
    who = await client.call_tool(
        "inspect_permissions", {"kind": "project", "target": project.name, "capability": "View"}
    )
    holders = fits(who)["who_has"]
    admins = sum(1 for u in large.state.users.values() if "Administrator" in u.site_role)
    assert holders["total"] >= admins  # administrators can always view
    assert len(holders["holders"]) <= min(50, holders["total"])
    return [plain, who]


async def case_list_jobs(client, large: Large) -> list[Any]:
    result = await client.call_tool("list_jobs", {})
    body = fits(result)
    start = datetime.fromisoformat(body["window_start"])
    assert body["total"] == sum(1 for j in large.state.jobs.values() if j.created_at >= start)
    honest_page(body, "jobs", body["total"])
    return [result]


async def case_get_job(client, large: Large) -> list[Any]:
    job = max((j for j in large.state.jobs.values() if j.status == "Failed"), key=lambda j: j.created_at)
    result = await client.call_tool("get_job", {"job_id": job.id})
    body = fits(result)
    assert body["id"] == job.id and body["status"] == "Failed"
    return [result]


async def case_refresh_and_wait(client, large: Large) -> list[Any]:
    state = large.state
    item = refreshable_datasource(state)
    result = await client.call_tool(
        "refresh_and_wait",
        {"kind": "datasource", "target": item.name, "project": state.project_path(item.project_id)},
    )
    outcome = fits(result)["result"]
    assert outcome["outcome"] == "succeeded", outcome
    assert state.jobs[outcome["job_id"]].target_id == item.id
    return [result]


async def case_add_user_to_group(client, large: Large) -> list[Any]:
    state = large.state
    group = unique_group(state, exclude={large.gated_group})
    user = addable_user(state, group)
    before = len(group.member_ids)
    result = await client.call_tool("add_user_to_group", {"user": user.name, "group": group.name})
    body = fits(result)
    assert body["result"]["status"] == "added", body
    assert body["result"]["membership"]["group_member_count"] == before + 1 == len(group.member_ids)
    return [result]


async def case_get_request(client, large: Large) -> list[Any]:
    state = large.state
    group = next(g for g in state.groups.values() if g.name == large.gated_group)
    user = addable_user(state, group)
    pending = await client.call_tool("add_user_to_group", {"user": user.name, "group": group.name})
    approval = fits(pending)
    assert approval["status"] == "pending_approval", approval
    request_id = approval["approval"]["request_id"]
    result = await client.call_tool("get_request", {"request_id": request_id})
    body = fits(result)
    assert body["status"] == "pending" and body["request_id"] == request_id
    assert user.id not in group.member_ids
    return [pending, result]


async def case_cancel_request(client, large: Large) -> list[Any]:
    state = large.state
    group = next(g for g in state.groups.values() if g.name == large.gated_group)
    user = addable_user(state, group)
    pending = fits(await client.call_tool("add_user_to_group", {"user": user.name, "group": group.name}))
    request_id = pending["approval"]["request_id"]
    result = await client.call_tool("cancel_request", {"request_id": request_id, "reason": "large-site check"})
    body = fits(result)
    assert body["status"] == "done" and body["result"] == {
        "request_id": request_id, "status": "denied",
        "message": "Withdrawn: nothing was changed, and no approver can approve it any more.",
    }
    assert user.id not in group.member_ids
    return [result]


async def case_list_refresh_tasks(client, large: Large) -> list[Any]:
    state = large.state
    failing = structured(await client.call_tool("list_refresh_tasks", {"min_consecutive_failures": 1}))
    assert failing["total"] == sum(1 for t in state.tasks.values() if t.consecutive_failed_count >= 1)
    honest_page(failing, "tasks", failing["total"])
    soonest = await client.call_tool("list_refresh_tasks", {})
    body = fits(soonest)
    assert body["total"] == len(state.tasks)
    runs = [t["next_run_at"] for t in body["tasks"] if t["next_run_at"]]
    assert runs == sorted(runs)
    return [soonest]


async def case_whoami(client, large: Large) -> list[Any]:
    result = await client.call_tool("whoami", {})
    body = fits(result)
    assert body["site_content_url"] == large.state.content_url and body["principal"] == "tester"
    return [result]


async def case_remove_user_from_group(client, large: Large) -> list[Any]:
    state = large.state
    group = unique_group(state, exclude={large.gated_group})
    user = next(state.users[u] for u in sorted(group.member_ids))
    before = len(group.member_ids)
    body = fits(result := await client.call_tool("remove_user_from_group", {"user": user.id, "group": group.name}))
    assert body["result"]["status"] == "removed", body
    assert body["result"]["membership"]["group_member_count"] == before - 1 == len(group.member_ids)
    return [result]


async def case_create_user(client, large: Large) -> list[Any]:
    group = unique_group(large.state, exclude={large.gated_group})
    arguments = {"name": "large.new.hire@example.com", "site_role": "Explorer", "groups": [group.name]}
    body = fits(result := await client.call_tool("create_user", arguments))
    assert body["result"]["status"] == "created" and body["result"]["groups_joined"] == [group.name], body
    assert large.state.user_by_name("large.new.hire@example.com").id in group.member_ids
    return [result]


async def case_update_user_site_role(client, large: Large) -> list[Any]:
    state = large.state
    user = next(u for u in state.users.values() if u.site_role == "Creator")
    owned = sum(1 for wb in state.workbooks.values() if wb.owner_id == user.id)
    body = fits(result := await client.call_tool("update_user_site_role", {"user": user.id, "site_role": "Viewer"}))
    assert body["result"]["status"] == "updated" and body["result"]["owned"]["workbook"] == owned, body
    assert state.users[user.id].site_role == "Viewer"
    return [result]


async def case_cancel_job(client, large: Large) -> list[Any]:
    job = next(j for j in large.state.jobs.values() if j.status == "Success")
    body = fits(result := await client.call_tool("cancel_job", {"job_id": job.id}))
    assert body["result"]["status"] == "already_finished" and body["result"]["job"]["status"] == "Success", body
    return [result]


async def case_sync_group_members(client, large: Large) -> list[Any]:
    state = large.state
    group = unique_group(state, exclude={large.gated_group})
    outsiders = sorted(u.name for u in state.users.values()
                       if u.id not in group.member_ids and u.site_role in ("Explorer", "Creator"))[:2]
    before = set(group.member_ids)
    members = [state.users[u].name for u in sorted(before)] + outsiders + ["nobody@example.invalid"]
    body = fits(result := await client.call_tool("sync_group_members", {"groups": [{"group": group.name, "members": members}]}))
    assert body["result"]["added"] == 2 and body["result"]["groups"][0]["unknown"] == ["nobody@example.invalid"], body
    assert group.member_ids == before | {state.user_by_name(n).id for n in outsiders}
    return [result]


async def case_transfer_content_ownership(client, large: Large) -> list[Any]:
    state = large.state
    heir = min((u for u in state.users.values() if u.site_role == "Creator"), key=lambda u: u.name)
    chosen = sorted(wb.id for wb in state.workbooks.values() if wb.owner_id != heir.id)[:30]
    arguments = {"kind": "workbook", "item_ids": chosen, "new_owner": heir.name}
    body = fits(result := await client.call_tool("transfer_content_ownership", arguments))
    assert (body["result"]["moved"], body["result"]["results_total"]) == (30, 30), body
    assert all(state.workbooks[i].owner_id == heir.id for i in chosen)
    return [result]


CASES: dict[str, Callable[[Any, Large], Awaitable[list[Any]]]] = {
    "list_content": case_list_content,
    "find_owners": case_find_owners,
    "list_users": case_list_users,
    "list_groups": case_list_groups,
    "inspect_permissions": case_inspect_permissions,
    "list_jobs": case_list_jobs,
    "get_job": case_get_job,
    "refresh_and_wait": case_refresh_and_wait,
    "add_user_to_group": case_add_user_to_group,
    "remove_user_from_group": case_remove_user_from_group,
    "create_user": case_create_user,
    "update_user_site_role": case_update_user_site_role,
    "cancel_job": case_cancel_job,
    "sync_group_members": case_sync_group_members,
    "transfer_content_ownership": case_transfer_content_ownership,
    "get_request": case_get_request,
    "cancel_request": case_cancel_request,
    "list_refresh_tasks": case_list_refresh_tasks,
    "whoami": case_whoami,
}


def test_every_registered_tool_has_a_large_site_case() -> None:
    assert set(CASES) == {spec.name for spec in TOOLS}


@pytest.mark.parametrize("tool", [spec.name for spec in TOOLS])
async def test_every_tool_fits_and_is_honest_on_the_large_site(tool: str, large: Large) -> None:
    async with large.steward.client() as client:
        results = await CASES[tool](client, large)
    for result in results:
        assert len(result.content[0].text) < MAX_TEXT


async def test_listings_cost_pages_not_per_item_requests(large: Large) -> None:
    state = large.state
    steward = large.steward
    costs: dict[str, list[str]] = {}
    async with steward.client() as client:  # a fresh client: nothing cached yet
        for tool in ("list_users", "list_content", "find_owners"):
            mark = len(steward.emulator.request_log)
            fits(await client.call_tool(tool, {}))
            costs[tool] = [e.path for e in steward.requests_since(mark)]

    for tool, paths in costs.items():
        assert [p for p in paths if PER_ITEM.search(p)] == [], tool

    def pages(tool: str, collection: str) -> int:
        return sum(1 for p in costs[tool] if p.endswith(f"/{collection}"))

    assert pages("list_users", "users") == math.ceil(len(state.users) / 1000)
    # A page of workbooks is one page request: Tableau sorts and pages them (tests/server/test_large_site_paging.py).
    assert pages("list_content", "workbooks") == 1
    # find_owners needs every item: ceil(20000/1000) page requests, once per call.
    assert pages("find_owners", "workbooks") == math.ceil(len(state.workbooks) / 1000)
    assert pages("find_owners", "datasources") == math.ceil(len(state.datasources) / 1000)
    assert pages("find_owners", "flows") == math.ceil(len(state.flows) / 1000)


async def test_failed_jobs_with_reasons_fit_on_the_large_site(large: Large) -> None:
    async with large.steward.client() as client:
        result = await client.call_tool("list_jobs", {"status": "Failed"})
    body = fits(result)
    assert all(j["notes"] for j in body["jobs"])
    honest_page(body, "jobs", body["total"])
