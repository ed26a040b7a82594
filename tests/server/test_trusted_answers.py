"""Answers an assistant can trust (issue 11): strict inputs, names that always work, complete job records,
schedules and whoami, all through a real `mcp.Client` and checked against the emulated site's state."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from emulator import model as m
from tests.server.conftest import Steward, error_text, structured
from tools.common import page_window
from tools.registry import TOOLS

pytestmark = pytest.mark.anyio

UNFILTERABLE = re.compile(r"[,&\[\]]")
LEAKS = ("pydantic", "errors.pydantic.dev", "Traceback", "Internal server error", "validation error for")


def _week(state: m.SiteState, since: dict[str, Any] | None = None, **match: Any) -> list[m.Job]:
    """The jobs list_jobs covers by default; `since` is a list_jobs result, whose window is used exactly."""
    start = datetime.fromisoformat(since["window_start"]) if since else datetime.now(UTC) - timedelta(days=7)
    return [
        j for j in state.jobs.values()
        if j.created_at >= start and all(getattr(j, k) == v for k, v in match.items())
    ]


# -- strict, forgiving inputs ----------------------------------------------------------------------


async def test_an_unknown_argument_on_every_tool_names_the_right_one(steward: Steward) -> None:
    async with steward.client() as client:
        for spec in TOOLS:
            fields = list(spec.input_model.model_fields)
            for field in fields:
                text = error_text(await client.call_tool(spec.name, {field + "s": "x"}))
                assert f"unknown argument '{field}s'; did you mean '{field}'?" in text, (spec.name, text)
                assert all(f in text for f in fields), text
            text = error_text(await client.call_tool(spec.name, {"zzqx": 1}))
            assert "unknown argument 'zzqx'" in text, (spec.name, text)


async def test_the_issues_dropped_arguments_are_now_errors(steward: Steward) -> None:
    async with steward.client() as client:
        role = error_text(await client.call_tool("list_users", {"role": "Unlicensed"}))
        state = error_text(await client.call_tool("list_jobs", {"state": "Failed"}))
    assert "unknown argument 'role'; did you mean 'site_role'?" in role
    assert "unknown argument 'state'; did you mean 'status'?" in state


async def test_choices_are_normalised_where_unambiguous_and_listed_otherwise(steward: Steward) -> None:
    state = steward.state
    unlicensed = {u.id for u in state.users.values() if u.site_role == "Unlicensed"}
    async with steward.client() as client:
        plural = structured(await client.call_tool("list_content", {"kind": "Workbooks", "limit": 1}))
        spaced = structured(await client.call_tool("list_content", {"kind": "data sources", "limit": 1}))
        role = structured(await client.call_tool("list_users", {"site_role": "unlicensed", "limit": 500}))
        status = structured(await client.call_tool("list_jobs", {"status": "failed", "include_failure_reasons": False}))
        wrong = error_text(await client.call_tool("list_content", {"kind": "dashboards"}))
    assert plural["kind"] == "workbook" and spaced["kind"] == "datasource"
    assert {u["id"] for u in role["users"]} == unlicensed
    assert status["total"] == len(_week(state, status, status="Failed"))
    assert "'kind' must be one of: workbook, view, datasource, flow, project (got 'dashboards')" in wrong


async def test_empty_names_contradictory_ranges_and_malformed_dates_are_clear_errors(steward: Steward) -> None:
    async with steward.client() as client:
        empty = error_text(await client.call_tool("inspect_permissions", {"kind": "workbook", "target": "  "}))
        swapped = error_text(
            await client.call_tool("list_jobs", {"created_after": "2026-02-01", "created_before": "2026-01-01"})
        )
        malformed = error_text(await client.call_tool("list_users", {"last_login_before": "last tuesday"}))
    assert "'target' is empty" in empty
    assert "'created_before'" in swapped and "not later than 'created_after'" in swapped
    assert "'last_login_before' must be an ISO 8601 date" in malformed and "'last tuesday'" in malformed


def _junk_for(annotation: Any) -> list[Any]:
    return [5, -1, 1e30, True, "junk", "", [1, 2], {"a": 1}, None, "x" * 5000, "2026-13-45T99:00:00"]


async def test_no_error_text_carries_pydantic_internals_whatever_the_arguments(steward: Steward) -> None:
    """Fuzz every tool's arguments with wrong types and junk: errors stay plain text."""
    seen = 0
    async with steward.client() as client:
        for spec in TOOLS:
            if spec.is_write:
                continue  # their bodies run on valid junk; the parser they share is fuzzed through the reads
            for field, info in spec.input_model.model_fields.items():
                for junk in _junk_for(info.annotation):
                    result = await client.call_tool(spec.name, {field: junk})
                    if result.is_error:
                        seen += 1
                        text = result.content[0].text
                        assert not any(leak in text for leak in LEAKS), (spec.name, field, junk, text)
        for spec in (s for s in TOOLS if s.is_write):
            for junk in ([1], {"k": "v"}, 7, ""):
                result = await client.call_tool(spec.name, dict.fromkeys(spec.input_model.model_fields, junk))
                text = error_text(result)
                assert not any(leak in text for leak in LEAKS), (spec.name, junk, text)
    assert seen > 100


async def test_prompts_validate_their_arguments_like_tools(steward: Steward) -> None:
    async with steward.client() as client:
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("audit_project_ownership", {})
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("failed_refreshes", {"dayz": "3"})
        with pytest.raises(MCPError) as wrong:
            await client.get_prompt("failed_refreshes", {"days": "soon"})
        fine = await client.get_prompt("why_cannot_user_access", {"user": "a", "item": "b", "kind": "Data Sources"})
    assert "missing required argument 'project'" in missing.value.message
    assert "unknown argument 'dayz'; did you mean 'days'?" in unknown.value.message
    assert "'days' must be a whole number" in wrong.value.message
    for error in (missing, unknown, wrong):
        assert "Internal" not in error.value.message and "pydantic" not in error.value.message
    assert "kind='datasource'" in fine.messages[0].content.text


async def test_prompt_errors_stay_plain_whatever_the_arguments(steward: Steward) -> None:
    from server.resources import PROMPT_ARGUMENTS

    refused = 0
    async with steward.client() as client:
        for name, model in PROMPT_ARGUMENTS.items():
            for field in model.model_fields:
                for junk in ("", "x" * 3000, "-5", "[1]", "{}", "null"):
                    try:
                        await client.get_prompt(name, {**dict.fromkeys(model.model_fields, "a"), field: junk})
                    except MCPError as exc:
                        refused += 1
                        assert not any(leak in exc.error.message for leak in LEAKS), (name, field, junk, exc)
    assert refused >= 20


# -- names that always work ------------------------------------------------------------------------


def _named_targets(state: m.SiteState) -> list[tuple[str, Any, dict[str, str]]]:
    """Every demo item whose name Tableau's filter syntax cannot express, with what picks it out."""
    found = []
    for kind, items in (("workbook", state.workbooks), ("view", state.views), ("datasource", state.datasources),
                        ("flow", state.flows), ("project", state.projects)):
        for item in items.values():
            if UNFILTERABLE.search(item.name):
                extra = {"workbook": state.workbooks[item.workbook_id].name} if kind == "view" else {}
                found.append((kind, item, extra))
    return found


async def test_every_name_with_unfilterable_characters_works_as_a_target(steward: Steward) -> None:
    state = steward.state
    targets = _named_targets(state)
    assert len(targets) >= 4, "the demo site has such names (issue 11 counts four)"
    async with steward.client() as client:
        for kind, item, extra in targets:
            body = structured(
                await client.call_tool("inspect_permissions", {"kind": kind, "target": item.name, **extra})
            )
            assert body["id"] == item.id and body["name"] == item.name
        warehouse = next(w for w in state.workbooks.values() if w.name == "Warehouse Usage & Cost")
        jobs = structured(await client.call_tool("list_jobs", {"target": warehouse.name, "limit": 200}))
        refresh = structured(
            await client.call_tool("refresh_and_wait", {"kind": "workbook", "target": warehouse.name, "timeout_seconds": 60})
        )
    refreshed = refresh["result"]["job_id"]
    expected = [j for j in _week(state, jobs) if j.target_name == warehouse.name and j.id != refreshed]
    assert expected and jobs["total"] == len(expected)
    assert {j["id"] for j in jobs["jobs"]} == {j.id for j in expected}
    assert all(j["target_id"] == warehouse.id and j["target_kind"] == "workbook" for j in jobs["jobs"])
    assert refresh["status"] == "done" and refresh["result"]["target_id"] == warehouse.id
    assert state.jobs[refresh["result"]["job_id"]].target_id == warehouse.id


async def test_content_names_match_ignoring_case_after_exact(steward: Steward) -> None:
    state = steward.state
    workbook = next(w for w in state.workbooks.values() if w.name == "Quarterly P&L")
    datasource = next(iter(sorted(state.datasources.values(), key=lambda d: d.name)))
    async with steward.client() as client:
        upper = structured(await client.call_tool("inspect_permissions", {"kind": "workbook", "target": "QUARTERLY p&l"}))
        lower = structured(
            await client.call_tool("inspect_permissions", {"kind": "datasource", "target": datasource.name.lower()})
        )
    assert upper["id"] == workbook.id and lower["id"] == datasource.id


async def test_a_name_of_another_kind_says_which_kind(steward: Steward) -> None:
    assert any(d.name == "General Ledger" for d in steward.state.datasources.values())
    assert not any(w.name == "General Ledger" for w in steward.state.workbooks.values())
    async with steward.client() as client:
        text = error_text(await client.call_tool("inspect_permissions", {"kind": "workbook", "target": "General Ledger"}))
    assert "'General Ledger' is a data source: use kind 'datasource'" in text


async def test_an_ambiguous_view_lists_ids_and_names_the_workbook_argument(steward: Steward) -> None:
    state = steward.state
    views = [v for v in state.views.values() if v.name == "P&L Summary"]
    assert len(views) == 2
    async with steward.client() as client:
        text = error_text(await client.call_tool("inspect_permissions", {"kind": "view", "target": "P&L Summary"}))
    assert "Pass `workbook`" in text and "`project`" not in text
    assert all(v.id in text for v in views)


# -- complete job records --------------------------------------------------------------------------


def test_page_window_holds_any_cursor_window_in_one_tableau_page() -> None:
    for limit in (1, 7, 30, 50, 200):
        for offset in range(0, 5000, 37):
            number, size, skip = page_window(offset, limit)
            assert limit <= size <= 1000 and (number - 1) * size + skip == offset
            assert skip + limit <= size, (offset, limit, size)


def sharing(state: m.SiteState, job: m.Job) -> int:
    """How many items a job's target name could be (Query Jobs names a target but gives no id)."""
    if job.job_type == "run_flow":
        return sum(1 for f in state.flows.values() if f.name == job.target_name)
    return sum(1 for items in (state.workbooks, state.datasources) for i in items.values()
               if i.has_extracts and i.name == job.target_name)


def _assert_complete(job: dict[str, Any], model: m.Job, state: m.SiteState | None = None) -> None:
    if state is not None and job["target_id"] is None:  # a shared name: said so, never guessed
        assert job["target_matches"] == sharing(state, model) > 1, job
    else:
        assert job["target_kind"] == model.target_kind and job["target_id"] == model.target_id, job
    assert job["target_name"] == model.target_name and job["job_type"] == model.job_type
    assert job["created_at"] and job["status"] == model.status
    if model.completed_at is not None:
        assert job["completed_at"] and job["finish_code"] == model.finish_code


async def test_flow_jobs_carry_their_names_in_lists_and_by_id(steward: Steward) -> None:
    state = steward.state
    flows = _week(state, job_type="run_flow")
    assert flows
    async with steward.client() as client:
        listed = structured(await client.call_tool("list_jobs", {"job_type": "RunFlow", "limit": 200}))
        one = structured(await client.call_tool("get_job", {"job_id": flows[0].id}))
    assert listed["total"] == len(_week(state, listed, job_type="run_flow"))
    for job in listed["jobs"]:
        _assert_complete(job, state.jobs[job["id"]], state)
    _assert_complete(one, flows[0])


async def test_a_tableau_job_type_spelling_finds_the_jobs(steward: Steward) -> None:
    state = steward.state
    async with steward.client() as client:
        body = structured(
            await client.call_tool("list_jobs", {"job_type": "RefreshExtract", "limit": 200, "include_failure_reasons": False})
        )
    refreshes = _week(state, body, job_type="refresh_extracts")
    assert body["total"] == len(refreshes) > 0
    for job in body["jobs"]:
        _assert_complete(job, state.jobs[job["id"]], state)


async def test_list_jobs_pages_in_tableau_with_honest_totals(steward: Steward) -> None:
    state = steward.state
    expected: list[m.Job] = []
    seen: list[str] = []
    cursor = None
    async with steward.client() as client:
        while True:
            page = structured(
                await client.call_tool(
                    "list_jobs", {"limit": 7, "exact_targets": True, **({"cursor": cursor} if cursor else {})}
                )
            )
            expected = expected or _week(state, page)
            assert page["total"] == len(expected)
            seen += [j["id"] for j in page["jobs"]]
            for job in page["jobs"]:
                _assert_complete(job, state.jobs[job["id"]])
                if job["status"] == "Failed":
                    assert job["notes"], job
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert sorted(seen) == sorted(j.id for j in expected) and len(seen) == len(set(seen))


# -- schedules and whoami --------------------------------------------------------------------------


async def test_refresh_tasks_answer_when_what_fails_and_what_runs_tonight(steward: Steward) -> None:
    state = steward.state
    async with steward.client() as client:
        warehouse = structured(await client.call_tool("list_refresh_tasks", {"target": "Warehouse Usage & Cost"}))
        failing = structured(
            await client.call_tool("list_refresh_tasks", {"min_consecutive_failures": 2, "sort_by": "consecutive_failures"})
        )
        now = datetime.now(UTC)
        tonight = structured(
            await client.call_tool(
                "list_refresh_tasks",
                {"runs_after": now.isoformat(), "runs_before": (now + timedelta(hours=12)).isoformat(), "limit": 200},
            )
        )
    wb = next(w for w in state.workbooks.values() if w.name == "Warehouse Usage & Cost")
    expected = [t for t in state.tasks.values() if t.target_id == wb.id]
    assert {t["task_id"] for t in warehouse["tasks"]} == {t.id for t in expected} != set()
    for task in warehouse["tasks"]:
        model = state.tasks[task["task_id"]]
        schedule = state.schedules[model.schedule_id]
        assert task["schedule"]["name"] == schedule.name and task["target_id"] == wb.id
        assert datetime.fromisoformat(task["next_run_at"]) == schedule.next_run_at.replace(microsecond=0)
    keep_failing = [t for t in state.tasks.values() if t.consecutive_failed_count >= 2]
    assert failing["total"] == len(keep_failing) > 0
    counts = [t["consecutive_failures"] for t in failing["tasks"]]
    assert counts == sorted(counts, reverse=True) and all(t["last_outcome"] == "failed" for t in failing["tasks"])
    runs_tonight = [
        t for t in state.tasks.values()
        if now < state.schedules[t.schedule_id].next_run_at.replace(microsecond=0) < now + timedelta(hours=12)
    ]
    assert tonight["total"] == len(runs_tonight)


async def test_whoami_says_who_as_whom_and_what_the_policy_allows(steward: Steward) -> None:
    state = steward.state
    async with steward.client() as client:
        body = structured(await client.call_tool("whoami", {}))
    admin = next(u for u in state.users.values() if u.id == body["tableau_user_id"])
    assert body["tableau_user"] == admin.name and body["tableau_site_role"] == admin.site_role
    assert body["site_content_url"] == state.content_url and body["site_name"] == state.name
    assert body["principal"] == "tester" and body["policy_mode"] == "read-write"
    assert set(body["tools_you_can_use"]) == {spec.name for spec in TOOLS}
    assert [r["id"] for r in body["rules"]] == ["everything"]


# -- result shape ----------------------------------------------------------------------------------


async def test_items_leave_out_fields_that_never_apply_to_their_kind(steward: Steward) -> None:
    state = steward.state
    async with steward.client() as client:
        workbooks = structured(await client.call_tool("list_content", {"kind": "workbook", "limit": 5}))
        views = structured(await client.call_tool("list_content", {"kind": "view", "limit": 5}))
        projects = structured(await client.call_tool("list_content", {"kind": "project", "limit": 5}))
    for item in workbooks["items"]:
        assert not {"workbook", "total_views", "lock_mode", "datasource_type"} & set(item), item
        assert item["has_extracts"] == state.workbooks[item["id"]].has_extracts
    for item in views["items"]:
        assert not {"size_mb", "has_extracts", "lock_mode", "sheet_count"} & set(item), item
        assert item["workbook"] == state.workbooks[state.views[item["id"]].workbook_id].name
    for item in projects["items"]:
        assert not {"workbook", "size_mb", "has_extracts", "total_views"} & set(item), item
        assert "lock_mode" in item and "owner" in item  # fields that apply stay, null or not
