"""list_content on the large emulated site (20,000 workbooks, ~70,000 views) costs pages, not the site.

Requests are counted in the emulator's request log: a first page and a cursor page each cost at most
3 requests beyond the cached lookups (the project listing, and the user list when filtering by owner),
and a project subtree costs exactly the narrowest `projectName:in:[…]` listing.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any
from urllib.parse import unquote_plus

import pytest

from emulator import model as m
from emulator.testing import start_emulator
from tests.server.conftest import Steward, site_copy, structured, write_policy

pytestmark = pytest.mark.anyio

CACHED_LOOKUPS = ("/projects", "/users")
BUDGET = 3


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory):
    with start_emulator(site_copy("large"), job_speed=500) as emu:
        yield Steward(emulator=emu, policy_path=write_policy(tmp_path_factory.mktemp("paging")))


async def call(steward: Steward, client: Any, args: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The result body and the requests the call made, without the cached lookups."""
    mark = len(steward.emulator.request_log)
    body = structured(await client.call_tool("list_content", args))
    requests = [e for e in steward.requests_since(mark) if not e.path.endswith(CACHED_LOOKUPS)]
    return body, requests


@pytest.mark.parametrize(
    "args",
    [
        {"kind": "workbook"},
        {"kind": "view"},
        {"kind": "view", "sort_by": "total_views", "descending": True, "limit": 20},
        {"kind": "workbook", "sort_by": "size", "descending": True, "has_extracts": True},
        {"kind": "datasource", "sort_by": "updated_at"},
    ],
    ids=["workbooks", "views", "views-by-usage", "workbooks-with-extracts-by-size", "datasources"],
)
async def test_a_first_page_and_a_cursor_page_cost_at_most_three_requests(large: Steward, args) -> None:
    state = large.state
    async with large.client() as client:  # a fresh client: nothing cached yet
        first, first_requests = await call(large, client, args)
        second, second_requests = await call(large, client, {**args, "cursor": first["next_cursor"]})
    assert 1 <= len(first_requests) <= BUDGET and 1 <= len(second_requests) <= BUDGET
    collection = {"workbook": state.workbooks, "view": state.views, "datasource": state.datasources}[args["kind"]]
    matching = [i for i in collection.values() if "has_extracts" not in args or i.has_extracts == args["has_extracts"]]
    assert first["total"] == second["total"] == len(matching) > 1000
    first_ids, second_ids = [i["id"] for i in first["items"]], [i["id"] for i in second["items"]]
    assert not set(first_ids) & set(second_ids)
    assert set(first_ids) | set(second_ids) <= {i.id for i in matching}
    assert first["budget_cut"] + len(first_ids) == args.get("limit", 30)
    if args.get("sort_by") in ("total_views", "size"):
        value = {"total_views": "total_view_count", "size": "size"}[args["sort_by"]]
        key = {"total_views": "total_views", "size": "size_mb"}[args["sort_by"]]
        top = sorted((getattr(i, value) for i in matching), reverse=True)
        assert [i[key] for i in first["items"] + second["items"]] == top[: len(first_ids) + len(second_ids)]


def in_subtree(state: m.SiteState, project_id: str | None, path: str) -> bool:
    have = state.project_path(project_id) if project_id else ""
    return have == path or have.startswith(path + "/")


async def test_a_project_subtree_costs_the_narrowest_project_name_listing(large: Steward) -> None:
    state = large.state
    def subtree_names(top: m.Project) -> set[str]:
        return {p.name for p in state.projects.values() if in_subtree(state, p.id, state.project_path(top.id))}

    # The largest subtree whose names Tableau's filter syntax can hold (one `in` list, no wildcards).
    top = max(
        (p for p in state.projects.values() if p.parent_id is None and not set("".join(subtree_names(p))) & set(",&[]:")),
        key=lambda p: len(subtree_names(p)),
    )
    path, names = state.project_path(top.id), subtree_names(top)
    assert Counter(p.name for p in state.projects.values() if p.name in names).total() > len(
        [p for p in state.projects.values() if in_subtree(state, p.id, path)]
    ), "the subtree's project names recur elsewhere, so Tableau alone cannot select it"
    async with large.client() as client:
        first, requests = await call(large, client, {"project": path, "limit": 25})
        second, again = await call(large, client, {"project": path, "limit": 25, "cursor": first["next_cursor"]})
    inside = {w.id for w in state.workbooks.values() if in_subtree(state, w.project_id, path)}
    assert first["total"] == second["total"] == len(inside)
    assert {i["id"] for i in first["items"] + second["items"]} <= inside
    # One listing of `projectName:in:[the subtree's names]`: ⌈its matches ÷ 1000⌉ requests for the first
    # page; the cursor page pages through what the first page read.
    named = sum(1 for w in state.workbooks.values() if state.projects[w.project_id].name in names)
    assert len(requests) == math.ceil(named / 1000) < math.ceil(len(state.workbooks) / 1000)
    assert all("projectName:in:[" in unquote_plus(e.query) for e in requests)
    assert again == []


async def test_find_owners_reads_only_the_fields_an_ownership_count_needs(large: Steward) -> None:
    state = large.state
    async with large.client() as client:
        mark = len(large.emulator.request_log)
        body = structured(await client.call_tool("find_owners", {"kind": "workbook", "limit": 200}))
        pages = [e for e in large.requests_since(mark) if e.path.endswith("/workbooks")]
    assert len(pages) == math.ceil(len(state.workbooks) / 1000)
    assert all("fields=id,name,updatedAt,project.id,owner.id" in unquote_plus(e.query) for e in pages)
    counts = Counter(w.owner_id for w in state.workbooks.values())
    assert body["total_owners"] == len(counts) and body["total_items"] == len(state.workbooks)
    for owner in body["owners"]:
        assert owner["item_count"] == counts[owner["user_id"]]
        assert all(example.startswith("workbook: ") and "/" in example for example in owner["examples"])
