"""Every tool through a real in-process `mcp.Client`, checked against what the emulated site holds."""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from emulator import model as m
from tests.server.conftest import Steward, error_text, structured

pytestmark = pytest.mark.anyio

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def path_of(state: m.SiteState, project_id: str) -> str:
    return state.project_path(project_id)


def in_tree(state: m.SiteState, project_id: str, top: str) -> bool:
    path = path_of(state, project_id)
    return path == top or path.startswith(top + "/")


def project_with_nested_workbooks(state: m.SiteState) -> str:
    """A top-level project whose sub-projects hold workbooks, so sub-project inclusion is exercised."""
    for wb in state.workbooks.values():
        project = state.projects[wb.project_id]
        if project.parent_id is not None:
            return path_of(state, project.parent_id).split("/")[0]
    raise AssertionError("the demo site has no nested project with workbooks")


async def collect_pages(client, tool: str, args: dict, key: str) -> tuple[list[dict], int]:
    items, cursor, totals = [], None, set()
    while True:
        page = structured(await client.call_tool(tool, {**args, **({"cursor": cursor} if cursor else {})}))
        items += page[key]
        totals.add(page["total"] if "total" in page else page["total_owners"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(totals) == 1, "the total must not change between pages"
    return items, totals.pop()


async def test_list_content_pages_a_project_tree_with_honest_totals(steward: Steward) -> None:
    state = steward.state
    top = project_with_nested_workbooks(state)
    expected = {wb.id: wb for wb in state.workbooks.values() if in_tree(state, wb.project_id, top)}
    async with steward.client() as client:
        items, total = await collect_pages(client, "list_content", {"kind": "workbook", "project": top, "limit": 4}, "items")
    assert total == len(expected)
    assert sorted(i["id"] for i in items) == sorted(expected)
    for item in items:
        wb = expected[item["id"]]
        assert item["project_path"] == path_of(state, wb.project_id)
        assert item["owner"] == state.users[wb.owner_id].name
        assert item["has_extracts"] == wb.has_extracts
        assert set(item["tags"]) == wb.tags


async def test_list_content_filters_by_owner_tag_and_update_time(steward: Steward) -> None:
    state = steward.state
    owner_id, _ = Counter(wb.owner_id for wb in state.workbooks.values()).most_common(1)[0]
    owner = state.users[owner_id]
    cutoff = sorted(wb.updated_at for wb in state.workbooks.values())[len(state.workbooks) // 2]
    tag = Counter(t for wb in state.workbooks.values() for t in wb.tags).most_common(1)[0][0]
    async with steward.client() as client:
        by_owner = structured(await client.call_tool("list_content", {"owner": owner.email, "limit": 500}))
        stale = structured(
            await client.call_tool("list_content", {"updated_before": cutoff.isoformat(), "limit": 500})
        )
        tagged = structured(await client.call_tool("list_content", {"tag": tag, "limit": 500}))
        views = structured(await client.call_tool("list_content", {"kind": "view", "limit": 5, "sort_by": "name"}))
    assert {i["id"] for i in by_owner["items"]} == {w.id for w in state.workbooks.values() if w.owner_id == owner_id}
    assert stale["total"] == sum(1 for w in state.workbooks.values() if w.updated_at < cutoff)
    assert tagged["total"] == sum(1 for w in state.workbooks.values() if tag in w.tags)
    assert views["total"] == len(state.views)
    assert all(i["workbook"] == state.workbooks[state.views[i["id"]].workbook_id].name for i in views["items"])


async def test_list_content_costs_no_per_item_requests(steward: Steward) -> None:
    state = steward.state
    async with steward.client() as client:
        await client.call_tool("list_users", {})  # warm the user cache the owner filter uses
        mark = len(steward.emulator.request_log)
        structured(await client.call_tool("list_content", {"kind": "workbook", "limit": 500}))
        structured(await client.call_tool("find_owners", {}))
        structured(await client.call_tool("list_users", {"limit": 500}))
    paths = [e.path for e in steward.requests_since(mark)]
    per_item = [p for p in paths if re.search(rf"/(workbooks|users|datasources|projects|flows)/{UUID}$", p)]
    assert per_item == []
    workbook_pages = [p for p in paths if p.endswith("/workbooks")]
    # list_content once and find_owners once each list every workbook: ceil(N/1000) pages apiece.
    assert len(workbook_pages) == 2 * math.ceil(len(state.workbooks) / 1000)


async def test_unknown_and_ambiguous_names_explain_what_to_do(steward: Steward) -> None:
    state = steward.state
    owner = next(iter(state.users.values()))
    async with steward.client() as client:
        typo = error_text(await client.call_tool("list_content", {"owner": owner.full_name[:-1] + "x"}))
        missing_project = error_text(await client.call_tool("list_content", {"project": "Nowhere Land"}))
        bad_cursor = error_text(await client.call_tool("list_content", {"cursor": "not-a-cursor"}))
        bad_limit = error_text(await client.call_tool("list_content", {"limit": 5000}))
    assert "No user named" in typo and owner.full_name in typo
    assert "No project with path 'Nowhere Land'" in missing_project
    assert "cursor" in bad_cursor.lower()
    assert "limit" in bad_limit


async def test_find_owners_groups_counts_and_flags_inactive_and_unlicensed(steward: Steward) -> None:
    state = steward.state
    now = datetime.now(UTC)
    owned: Counter[str] = Counter()
    for collection in (state.workbooks, state.datasources, state.flows, state.projects):
        owned.update(item.owner_id for item in collection.values())
    async with steward.client() as client:
        owners, total = await collect_pages(client, "find_owners", {"limit": 10}, "owners")
        flagged = structured(await client.call_tool("find_owners", {"only_flagged": True, "limit": 200}))
    assert total == len(owned)
    assert {o["user_id"]: o["item_count"] for o in owners} == dict(owned)
    for owner in owners:
        user = state.users.get(owner["user_id"])
        expected = set()
        if user is None:
            expected.add("deleted_user")
        else:
            if user.site_role == "Unlicensed":
                expected.add("unlicensed")
            if user.last_login is None:
                expected.add("never_signed_in")
            elif (now - user.last_login).days >= 90:
                expected.add("inactive")
        assert set(owner["flags"]) == expected, owner
    assert flagged["total_owners"] == sum(1 for o in owners if o["flags"]) > 0
    assert any("unlicensed" in o["flags"] for o in flagged["owners"])
    # Per kind, in order (most items first, then by name), and the flagged totals across all pages.
    kinds = {"workbook": state.workbooks, "datasource": state.datasources, "flow": state.flows, "project": state.projects}
    for owner in owners:
        expected_kinds = {k: sum(1 for i in c.values() if i.owner_id == owner["user_id"]) for k, c in kinds.items()}
        assert owner["counts_by_kind"] == {k: n for k, n in expected_kinds.items() if n}, owner
        assert 1 <= len(owner["examples"]) <= min(3, owner["item_count"])
    order = [(-o["item_count"], (o["name"] or "").lower()) for o in owners]
    assert order == sorted(order)
    assert flagged["items_owned_by_flagged"] == sum(o["item_count"] for o in owners if o["flags"])
    assert flagged["total_items"] == flagged["items_owned_by_flagged"]


async def test_list_users_and_groups_agree_with_the_site(steward: Steward) -> None:
    state = steward.state
    group = max(state.groups.values(), key=lambda g: 0 if g.name == "All Users" else len(g.member_ids))
    member = state.users[min(group.member_ids)]
    async with steward.client() as client:
        unlicensed = structured(await client.call_tool("list_users", {"site_role": "Unlicensed", "limit": 500}))
        members = structured(await client.call_tool("list_users", {"group": group.name, "limit": 500}))
        groups = structured(await client.call_tool("list_groups", {"limit": 500}))
        of_member = structured(await client.call_tool("list_groups", {"user": member.name}))
    assert {u["id"] for u in unlicensed["users"]} == {u.id for u in state.users.values() if u.site_role == "Unlicensed"}
    assert {u["id"] for u in members["users"]} == group.member_ids
    assert {g["name"]: g["member_count"] for g in groups["groups"]} == {
        g.name: len(g.member_ids) for g in state.groups.values()
    }
    assert {g["id"] for g in of_member["groups"]} == {g.id for g in state.groups_of(member.id)}


def refreshable(state: m.SiteState, failing: bool) -> m.Datasource | m.Workbook:
    for item in (*state.datasources.values(), *state.workbooks.values()):
        if item.has_extracts and bool(item.refresh_failure) == failing:
            return item
    raise AssertionError("the demo site lacks such an extract")


async def test_refresh_and_wait_reports_progress_and_success(steward: Steward) -> None:
    state = steward.state
    item = refreshable(state, failing=False)
    kind = "datasource" if isinstance(item, m.Datasource) else "workbook"
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with steward.client() as client:
        result = await client.call_tool(
            "refresh_and_wait",
            {"kind": kind, "target": item.name, "project": path_of(state, item.project_id)},
            progress_callback=on_progress,
        )
    body = structured(result)
    assert body["status"] == "done"
    outcome = body["result"]
    assert outcome["outcome"] == "succeeded", outcome
    assert state.jobs[outcome["job_id"]].status == "Success"
    assert outcome["target_id"] == item.id
    assert updates and updates[-1][0] == 100.0
    assert [u[0] for u in updates] == sorted(u[0] for u in updates)


async def test_refresh_and_wait_reports_tableau_failure_reason(steward: Steward) -> None:
    state = steward.state
    item = refreshable(state, failing=True)
    kind = "datasource" if isinstance(item, m.Datasource) else "workbook"
    async with steward.client() as client:
        outcome = structured(await client.call_tool("refresh_and_wait", {"kind": kind, "target": item.id}))["result"]
    assert outcome["outcome"] == "failed"
    assert item.refresh_failure and item.refresh_failure[:40] in outcome["reason"]


async def test_refresh_and_wait_attaches_to_queued_job_and_times_out(steward: Steward) -> None:
    state = steward.state
    item = refreshable(state, failing=False)
    kind = "datasource" if isinstance(item, m.Datasource) else "workbook"
    steward.emulator.control.job_speed = 0.001  # the job will not finish during the test
    async with steward.client() as client:
        first = structured(await client.call_tool("refresh_and_wait", {"kind": kind, "target": item.id, "timeout_seconds": 1}))
        second = structured(await client.call_tool("refresh_and_wait", {"kind": kind, "target": item.id, "timeout_seconds": 1}))
    assert first["result"]["outcome"] == "timed_out" and "get_job" in first["result"]["message"]
    assert second["result"]["attached_to_existing_job"] is True
    assert second["result"]["job_id"] == first["result"]["job_id"]
    live = [j for j in state.jobs.values() if j.target_id == item.id and j.completed_at is None]
    assert len(live) == 1


async def test_refresh_of_live_connection_is_a_clear_error(steward: Steward) -> None:
    state = steward.state
    live = next(d for d in state.datasources.values() if not d.has_extracts)
    async with steward.client() as client:
        text = error_text(await client.call_tool("refresh_and_wait", {"kind": "datasource", "target": live.id}))
    assert "no extract" in text


async def test_list_jobs_answers_which_refreshes_failed_and_get_job_explains(steward: Steward) -> None:
    state = steward.state
    since = datetime.now(UTC) - timedelta(days=7)
    failed = {j.id for j in state.jobs.values() if j.status == "Failed" and j.created_at >= since}
    assert failed, "the demo site should have recent failed refreshes"
    async with steward.client() as client:
        jobs, total = await collect_pages(client, "list_jobs", {"status": "Failed", "limit": 5}, "jobs")
        one = structured(await client.call_tool("get_job", {"job_id": min(failed)}))
        bad = error_text(await client.call_tool("get_job", {"job_id": "last-nights-refresh"}))
    assert {j["id"] for j in jobs} == failed and total == len(failed)
    assert all(j["notes"] for j in jobs), "failed jobs on a page carry Tableau's reason"
    assert one["status"] == "Failed" and one["notes"]
    assert "not a job id" in bad


async def test_add_user_to_group_adds_once_then_reports_no_change(steward: Steward) -> None:
    state = steward.state
    group = next(g for g in state.groups.values() if g.name not in ("All Users", "Administrators"))
    user = next(u for u in state.users.values() if u.id not in group.member_ids and u.site_role != "Unlicensed")
    before = len(group.member_ids)
    async with steward.client() as client:
        added = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
        again = structured(await client.call_tool("add_user_to_group", {"user": user.name, "group": group.id}))
        unknown = error_text(await client.call_tool("add_user_to_group", {"user": "nobody@nowhere", "group": group.name}))
    assert added["result"]["status"] == "added"
    assert user.id in state.groups[group.id].member_ids
    assert added["result"]["membership"]["group_member_count"] == before + 1
    assert again["result"]["status"] == "no_change"
    assert "No user named 'nobody@nowhere'" in unknown


async def test_site_summary_resource_and_prompts(steward: Steward) -> None:
    state = steward.state
    async with steward.client() as client:
        resource = await client.read_resource("tableau://site/summary")
        prompts = await client.list_prompts()
    import json

    summary = json.loads(resource.contents[0].text)
    assert summary["counts"]["workbooks"] == len(state.workbooks)
    assert summary["counts"]["users"] == len(state.users)
    assert summary["counts"]["groups"] == len(state.groups)
    assert {p.name for p in prompts.prompts} >= {"audit_project_ownership", "why_cannot_user_access"}


def _listings(steward: Steward, kind: str, since: int) -> list:
    return [e for e in steward.requests_since(since) if e.method == "GET" and e.path.endswith(f"/{kind}s")]


async def test_refresh_resolves_its_target_once_for_policy_and_body(steward: Steward) -> None:
    state = steward.state
    item = refreshable(state, failing=False)
    kind = "datasource" if isinstance(item, m.Datasource) else "workbook"
    async with steward.client() as client:
        await client.call_tool("list_content", {"kind": "project", "limit": 1})  # the project tree is cached now
        mark = len(steward.emulator.request_log)
        body = structured(await client.call_tool("refresh_and_wait", {"kind": kind, "target": item.name}))
    assert body["result"]["target_id"] == item.id
    # The policy's facts and the tool body share one lookup of the target by name.
    assert len(_listings(steward, kind, mark)) == 1


async def test_find_owners_of_all_kinds_lists_each_kind_once(steward: Steward) -> None:
    async with steward.client() as client:
        mark = len(steward.emulator.request_log)
        body = structured(await client.call_tool("find_owners", {}))
    listed = Counter(e.path.rsplit("/", 1)[1] for e in steward.requests_since(mark) if e.method == "GET")
    # One page each on the demo site: the projects serve the tree and the project items alike.
    assert listed["projects"] == 1
    assert listed["workbooks"] == listed["datasources"] == listed["flows"] == 1
    assert listed["users"] == 1  # USER_FACT_FIELDS only
    state = steward.state
    owned = len(state.workbooks) + len(state.datasources) + len(state.flows) + len(state.projects)
    assert body["total_items"] == owned
    # With an owner filter the full users resolve the owner and serve the facts: still one users listing.
    owner = max(state.users.values(), key=lambda u: sum(w.owner_id == u.id for w in state.workbooks.values()))
    async with steward.client() as client:
        mark = len(steward.emulator.request_log)
        mine = structured(await client.call_tool("find_owners", {"owner": owner.name, "kind": "workbook"}))
    users_pages = [e for e in steward.requests_since(mark) if e.method == "GET" and e.path.endswith("/users")]
    assert len(users_pages) == 1 and "_all_" in users_pages[0].query
    assert [o["user_id"] for o in mine["owners"]] == [owner.id]
    assert mine["owners"][0]["email"] == owner.email and mine["owners"][0]["full_name"] == owner.full_name
