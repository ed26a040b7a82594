"""list_jobs and names on the large emulated site (8,000 jobs a week, 20,000 workbooks), counted in the
emulator's request log.

A first page and a cursor page of list_jobs each cost at most 3 requests beyond the cached lookups (the
job-target index: extract-bearing workbooks and data sources, and flows), and failure reasons cost one
detail request per failed job on the page, never per job on the site. A name, whatever characters it
holds, costs one filtered listing; an ambiguous one names the project paths that separate it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from emulator.testing import start_emulator
from tests.server.conftest import Steward, error_text, site_copy, structured, write_policy
from tests.server.test_trusted_answers import sharing

pytestmark = pytest.mark.anyio

CACHED_LOOKUPS = ("/workbooks", "/datasources", "/flows")
BUDGET = 3
JOB_DETAIL = re.compile(r"/jobs/[0-9a-f-]{36}$")


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory):
    with start_emulator(site_copy("large"), job_speed=500) as emu:
        yield Steward(emulator=emu, policy_path=write_policy(tmp_path_factory.mktemp("jobs")))


async def call(steward: Steward, client: Any, args: dict[str, Any]) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """The body, the requests beyond the cached lookups, and the cached lookups themselves."""
    mark = len(steward.emulator.request_log)
    body = structured(await client.call_tool("list_jobs", args))
    made = steward.requests_since(mark)
    return body, [e for e in made if not e.path.endswith(CACHED_LOOKUPS)], [e for e in made if e.path.endswith(CACHED_LOOKUPS)]


def week(steward: Steward, since: dict[str, Any], **match: Any) -> list[Any]:
    start = datetime.fromisoformat(since["window_start"])  # the window the call used, exactly
    jobs = [j for j in steward.state.jobs.values() if j.created_at >= start and all(getattr(j, k) == v for k, v in match.items())]
    return sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True)


@pytest.mark.parametrize(
    "args",
    [{"include_failure_reasons": False}, {"status": "Success"}, {"job_type": "RefreshExtract", "status": "Success"}],
    ids=["all-without-reasons", "succeeded", "tableau-spelling"],
)
async def test_a_first_page_and_a_cursor_page_cost_at_most_three_requests(large: Steward, args) -> None:
    async with large.client() as client:  # a fresh client: the target index is loaded by the first call
        first, first_requests, lookups = await call(large, client, args)
        second, second_requests, again = await call(large, client, {**args, "cursor": first["next_cursor"]})
    expected = week(large, first, **{k: v for k, v in args.items() if k == "status"})
    if "job_type" in args:
        expected = [j for j in expected if j.job_type == "refresh_extracts"]
    assert 1 <= len(first_requests) <= BUDGET and 1 <= len(second_requests) <= BUDGET, (first_requests, second_requests)
    listings = [[e for e in made if e.path.endswith("/jobs")] for made in (first_requests, second_requests)]
    assert [len(pages) for pages in listings] == [1, 1], "one Query Jobs page each, even mid-page after a budget cut"
    assert lookups and not again, "the target index is loaded once and cached"
    assert first["total"] == second["total"] == len(expected) > 1000
    ids = [j["id"] for j in first["jobs"] + second["jobs"]]
    # Newest first, the cursor page continuing the first (jobs created in the same second tie in any order).
    created = [large.state.jobs[i].created_at for i in ids]
    assert created == [j.created_at for j in expected[: len(ids)]] and len(set(ids)) == len(ids)
    exact = 0
    for job in first["jobs"] + second["jobs"]:
        model = large.state.jobs[job["id"]]
        assert job["target_name"] == model.target_name
        if job["target_id"] is None:  # several items share the name: the answer says how many
            assert job["target_matches"] == sharing(large.state, model) > 1
        else:
            exact += 1
            assert (job["target_kind"], job["target_id"]) == (model.target_kind, model.target_id)
        assert job["finish_code"] == model.finish_code and job["completed_at"]
    assert exact > 0


async def test_exact_targets_costs_one_request_per_shared_name_on_the_page(large: Steward) -> None:
    async with large.client() as client:
        body, requests, _ = await call(large, client, {"status": "Success", "exact_targets": True, "limit": 30})
    shared = [j for j in body["jobs"] if sharing(large.state, large.state.jobs[j["id"]]) > 1]
    details = [e for e in requests if JOB_DETAIL.search(e.path)]
    assert shared and len(details) == len(shared) and len(requests) == len(details) + 1
    for job in body["jobs"]:
        model = large.state.jobs[job["id"]]
        assert (job["target_kind"], job["target_id"], job["target_name"]) == (
            model.target_kind, model.target_id, model.target_name
        )


async def test_failure_reasons_cost_one_request_per_failed_job_on_the_page(large: Steward) -> None:
    async with large.client() as client:
        body, requests, _ = await call(large, client, {"status": "Failed", "limit": 20})
    details = [e for e in requests if JOB_DETAIL.search(e.path)]
    assert len(details) == len(body["jobs"]) == 20
    assert len(requests) - len(details) == 1, "one page of Query Jobs"
    assert all(j["notes"] == large.state.jobs[j["id"]].notes for j in body["jobs"])
    assert body["total"] == len(week(large, body, status="Failed"))


def workbook_requests(steward: Steward, mark: int) -> list[Any]:
    return [e for e in steward.requests_since(mark) if e.path.endswith("/workbooks")]


async def test_a_name_tableau_cannot_filter_costs_one_listing_like_any_name(large: Steward) -> None:
    state = large.state
    workbook = min(state.workbooks.values(), key=lambda w: w.id)
    workbook.name = "R&D, Costs [FY26]: Plan"  # every character Tableau's filter syntax cannot express
    async with large.client() as client:
        mark = len(large.emulator.request_log)
        body = structured(await client.call_tool("inspect_permissions", {"kind": "workbook", "target": workbook.name}))
        requests = workbook_requests(large, mark)
        mark = len(large.emulator.request_log)
        upper = structured(
            await client.call_tool("inspect_permissions", {"kind": "workbook", "target": workbook.name.upper()})
        )
        whole_kind = workbook_requests(large, mark)
        counts = Counter(w.name.lower() for w in state.workbooks.values())
        other = min(
            (w for w in state.workbooks.values() if w.name.istitle() and " " in w.name and counts[w.name.lower()] == 1),
            key=lambda w: w.id,
        )
        mark = len(large.emulator.request_log)
        lower = structured(await client.call_tool("inspect_permissions", {"kind": "workbook", "target": other.name.lower()}))
        variants = workbook_requests(large, mark)
    assert body["id"] == workbook.id == upper["id"] and lower["id"] == other.id
    # Filter values are percent-encoded once more for Tableau's second decoding: the space goes as '+' (%2B).
    assert len(requests) == 1 and "name%3Aeq%3AR%2AD%2A%2BCosts%2B%2AFY26%2A%2BPlan" in requests[0].query, requests
    # A case-insensitive match Tableau cannot filter for costs the kind's listing; a usual capitalisation two requests.
    assert len(whole_kind) == 1 + math.ceil(len(state.workbooks) / 1000)
    assert len(variants) == 2 and "name%3Ain%3A" in variants[1].query, variants


async def test_an_ambiguous_workbook_names_the_project_paths(large: Steward) -> None:
    state = large.state
    by_name: dict[str, list[Any]] = {}
    for wb in state.workbooks.values():
        by_name.setdefault(wb.name, []).append(wb)
    name, shared = next((n, ws) for n, ws in sorted(by_name.items()) if len(ws) == 2
                        and state.project_path(ws[0].project_id) != state.project_path(ws[1].project_id))
    async with large.client() as client:
        text = error_text(await client.call_tool("inspect_permissions", {"kind": "workbook", "target": name}))
        chosen = structured(
            await client.call_tool(
                "inspect_permissions",
                {"kind": "workbook", "target": name, "project": state.project_path(shared[1].project_id)},
            )
        )
    assert "Pass `project`" in text
    for wb in shared:
        assert wb.id in text and state.project_path(wb.project_id) in text
    assert chosen["id"] == shared[1].id
