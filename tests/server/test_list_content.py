"""list_content through a real MCP client against the demo site, checked against the emulator's state:
filters Tableau applies (has_extracts, lock mode, subtree), views by workbook, usage and size sorts,
cursors over every page, the result budget and the long-string marker."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from emulator import model as m
from tests.server.conftest import error_text, structured

pytestmark = pytest.mark.anyio


def in_subtree(state: m.SiteState, project_id: str | None, path: str) -> bool:
    have = state.project_path(project_id) if project_id else ""
    return have == path or have.startswith(path + "/")


async def every_page(client: Any, args: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """All items over all pages of one query, and each page's body."""
    items: list[dict[str, Any]] = []
    bodies = []
    cursor = None
    while True:
        body = structured(await client.call_tool("list_content", {**args, **({"cursor": cursor} if cursor else {})}))
        bodies.append(body)
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items, bodies


async def test_has_extracts_filters_workbooks_and_datasources(steward) -> None:
    state = steward.state
    async with steward.client() as client:
        for kind, collection in (("workbook", state.workbooks), ("datasource", state.datasources)):
            for wanted in (True, False):
                items, bodies = await every_page(client, {"kind": kind, "has_extracts": wanted, "limit": 10})
                expected = {i.id for i in collection.values() if i.has_extracts == wanted}
                assert {i["id"] for i in items} == expected and len(items) == len(expected)
                assert all(b["total"] == len(expected) for b in bodies)
                assert all(i["has_extracts"] is wanted for i in items)
        refused = await client.call_tool("list_content", {"kind": "view", "has_extracts": True})
    assert "has_extracts" in error_text(refused) and "workbook" in error_text(refused)


async def test_lock_mode_selects_projects_and_the_content_inside_them(steward) -> None:
    state = steward.state
    async with steward.client() as client:
        for mode in ("LockedToProject", "ManagedByOwner", "LockedToProjectWithoutNested"):
            projects = structured(await client.call_tool("list_content", {"kind": "project", "lock_mode": mode}))
            expected = {p.id for p in state.projects.values() if p.content_permissions == mode}
            assert {i["id"] for i in projects["items"]} == expected and projects["total"] == len(expected)
            assert all(i["lock_mode"] == mode for i in projects["items"])
            workbooks, _ = await every_page(client, {"kind": "workbook", "lock_mode": mode, "limit": 20})
            inside = {w.id for w in state.workbooks.values() if state.projects[w.project_id].content_permissions == mode}
            assert {i["id"] for i in workbooks} == inside


async def test_views_by_workbook_with_usage_from_the_site(steward) -> None:
    state = steward.state
    workbook = max(state.workbooks.values(), key=lambda w: len(w.view_ids))
    async with steward.client() as client:
        mark = len(steward.emulator.request_log)
        body = structured(
            await client.call_tool(
                "list_content",
                {"kind": "view", "workbook": workbook.name, "sort_by": "total_views", "descending": True},
            )
        )
        requests = steward.requests_since(mark)
        by_id = structured(await client.call_tool("list_content", {"kind": "view", "workbook": workbook.id}))
        wrong_kind = await client.call_tool("list_content", {"kind": "workbook", "workbook": workbook.name})
    assert [i["id"] for i in body["items"]] == sorted(
        workbook.view_ids, key=lambda v: (state.views[v].total_view_count, state.views[v].name.lower()), reverse=True
    )
    assert body["total"] == len(workbook.view_ids)
    for item in body["items"]:
        view = state.views[item["id"]]
        assert item["total_views"] == view.total_view_count and item["workbook"] == workbook.name
        assert item["project_path"] == state.project_path(workbook.project_id)
        assert item["owner"] == state.users[workbook.owner_id].name
    assert {i["id"] for i in by_id["items"]} == set(workbook.view_ids)
    # The workbook's lookup, then one request for its views: the site's views are not listed.
    assert [e.path.rsplit("/", 1)[-1] for e in requests if "/projects" not in e.path] == ["workbooks", "views"]
    assert requests[-1].path.endswith(f"/workbooks/{workbook.id}/views")
    assert "kind 'view'" in error_text(wrong_kind)


async def test_views_sorted_by_usage_and_content_by_size_match_the_site(steward) -> None:
    state = steward.state
    async with steward.client() as client:
        views = structured(
            await client.call_tool("list_content", {"kind": "view", "sort_by": "total_views", "descending": True,
                                                    "limit": 15})
        )
        sizes = structured(await client.call_tool("list_content", {"kind": "datasource", "sort_by": "size",
                                                                     "limit": 15}))
        refused = await client.call_tool("list_content", {"kind": "workbook", "sort_by": "total_views"})
        flows_by_size = await client.call_tool("list_content", {"kind": "flow", "sort_by": "size"})
    counts = sorted((v.total_view_count for v in state.views.values()), reverse=True)
    assert [i["total_views"] for i in views["items"]] == counts[:15]
    assert views["total"] == len(state.views)
    assert [i["size_mb"] for i in sizes["items"]] == sorted(d.size for d in state.datasources.values())[:15]
    assert "views" in error_text(refused) and "size" in error_text(flows_by_size)


async def test_cursor_walks_every_page_once_in_order(steward) -> None:
    state = steward.state
    async with steward.client() as client:
        items, bodies = await every_page(client, {"kind": "view", "sort_by": "updated_at", "limit": 40})
        restarted = await client.call_tool(
            "list_content", {"kind": "view", "sort_by": "name", "limit": 40, "cursor": bodies[0]["next_cursor"]}
        )
    assert len(items) == len(state.views) == len({i["id"] for i in items})
    assert [i["updated_at"] for i in items] == sorted(i["updated_at"] for i in items)
    assert len(bodies) >= len(state.views) // 40
    assert all(b["total"] == len(state.views) for b in bodies)
    assert "different query" in error_text(restarted)


async def test_a_project_subtree_counts_and_pages_only_its_content(steward) -> None:
    state = steward.state
    top = next(p for p in state.projects.values() if p.parent_id is None and
               any(q.parent_id == p.id for q in state.projects.values()))
    async with steward.client() as client:
        mark = len(steward.emulator.request_log)
        first = structured(await client.call_tool("list_content", {"project": top.name, "limit": 4}))
        requests = [e for e in steward.requests_since(mark) if e.path.endswith("/workbooks")]
        items, _ = await every_page(client, {"project": top.name, "limit": 4})
    expected = {w.id for w in state.workbooks.values() if in_subtree(state, w.project_id, top.name)}
    assert first["total"] == len(expected) and {i["id"] for i in items} == expected
    # The demo site's project names are unique, so Tableau filters the subtree itself: one request.
    assert len(requests) == 1 and "projectName:in:[" in requests[0].query.replace("%3A", ":").replace("%5B", "[")


async def test_names_tableau_cannot_filter_on_still_match_exactly(steward) -> None:
    state = steward.state
    special = [w for w in state.workbooks.values() if set(w.name) & set(",&[]")]
    assert special
    async with steward.client() as client:
        for workbook in special:
            body = structured(
                await client.call_tool("list_content", {"name": workbook.name, "name_match": "exact"})
            )
            assert [i["id"] for i in body["items"]] == [workbook.id] and body["total"] == 1


async def test_the_budget_cut_is_reported_and_the_next_page_continues(steward) -> None:
    state = steward.state
    async with steward.client() as client:
        items, bodies = await every_page(client, {"kind": "workbook", "limit": 500})
    first = bodies[0]
    assert len(first["items"]) < len(state.workbooks)  # 67 workbooks do not fit 20,000 characters
    assert first["budget_cut"] == len(state.workbooks) - len(first["items"])
    assert "budget" in first["note"] and "next_cursor" in first["note"]
    assert {i["id"] for i in items} == set(state.workbooks) and len(items) == len(state.workbooks)
    assert bodies[-1]["budget_cut"] == 0 and bodies[-1]["note"] is None


async def test_one_huge_name_is_cut_with_a_marker_in_every_tool(steward) -> None:
    state = steward.state
    workbook = next(iter(state.workbooks.values()))
    workbook.name = "Huge " + "x" * 100_000
    user = next(u for u in state.users.values() if u.site_role != "Unlicensed")
    user.full_name = "Long " + "y" * 100_000
    async with steward.client() as client:
        listed = await client.call_tool("list_content", {"name": "Huge ", "limit": 5})
        users = await client.call_tool("list_users", {"name": user.name})
    body = structured(listed)
    assert len(listed.content[0].text) < 5_000 and body["total"] == 1
    assert body["items"][0]["name"].startswith("Huge xxx")
    assert body["items"][0]["name"].endswith("… [99,005 more characters cut]")
    assert len(users.content[0].text) < 5_000
    assert "more characters cut]" in json.dumps(structured(users))


async def test_owner_tag_time_and_name_filters_combine_like_the_site(steward) -> None:
    state = steward.state
    owner_id, _ = Counter(w.owner_id for w in state.workbooks.values()).most_common(1)[0]
    owner = state.users[owner_id]
    tag = Counter(t for w in state.workbooks.values() for t in w.tags).most_common(1)[0][0]
    middle = sorted(w.updated_at for w in state.workbooks.values())[len(state.workbooks) // 2]
    cases = [
        ({"owner": owner.email}, lambda w: w.owner_id == owner_id),
        ({"tag": tag}, lambda w: tag in w.tags),
        ({"updated_after": middle.isoformat()}, lambda w: w.updated_at >= middle),
        ({"updated_before": middle.isoformat(), "tag": tag}, lambda w: w.updated_at < middle and tag in w.tags),
        ({"name": "sales"}, lambda w: "sales" in w.name.lower()),  # 'contains' is matched here, ignoring case
    ]
    async with steward.client() as client:
        for args, keep in cases:
            items, bodies = await every_page(client, {**args, "limit": 25})
            expected = {w.id for w in state.workbooks.values() if keep(w)}
            assert expected and {i["id"] for i in items} == expected, args
            assert bodies[0]["total"] == len(expected), args


async def test_a_cursor_past_the_end_of_a_shrunken_site_is_an_empty_last_page(steward) -> None:
    state = steward.state
    async with steward.client() as client:
        first = structured(await client.call_tool("list_content", {"limit": 30}))
        for workbook_id in sorted(state.workbooks)[: len(state.workbooks) - 20]:
            del state.workbooks[workbook_id]  # the site loses workbooks between two pages
        after = structured(await client.call_tool("list_content", {"limit": 30, "cursor": first["next_cursor"]}))
    assert after["items"] == [] and after["next_cursor"] is None and after["total"] == len(state.workbooks) == 20


async def test_every_tool_description_states_the_output_budget(steward) -> None:
    async with steward.client() as client:
        listed = await client.list_tools()
    for tool in listed.tools:
        assert "more characters cut]" in tool.description, tool.name
        if "next_cursor" in (tool.output_schema or {}).get("properties", {}):  # a paged tool
            assert "20,000 characters" in tool.description, tool.name
    content = next(t for t in listed.tools if t.name == "list_content")
    assert "`budget_cut`" in content.description and "⌈matches ÷ 1000⌉" in content.description



async def test_empty_filters_are_errors_not_silent_matches(steward) -> None:
    async with steward.client() as client:
        for name in ("project", "owner", "tag", "name"):
            assert f"'{name}' is empty" in error_text(await client.call_tool("list_content", {name: "  "}))
        empty_workbook = await client.call_tool("list_content", {"kind": "view", "workbook": ""})
    assert "'workbook' is empty" in error_text(empty_workbook)
