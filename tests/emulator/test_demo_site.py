"""The generated demo site served end to end: every list, item and rule read must be XSD-valid.

Uses the `emulator` / `tsc_server` fixtures (generator-built site, XSD checked at teardown).
"""

from __future__ import annotations

import pytest
import tableauserverclient as TSC

pytest.importorskip("emulator.generator")


def test_every_list_endpoint_pages_through(emulator, tsc_server):
    state = emulator.state
    opts = TSC.RequestOptions(pagesize=7)
    assert len(list(TSC.Pager(tsc_server.users, opts))) == len(state.users)
    assert len(list(TSC.Pager(tsc_server.groups, opts))) == len(state.groups)
    assert len(list(TSC.Pager(tsc_server.projects, opts))) == len(state.projects)
    assert len(list(TSC.Pager(tsc_server.workbooks, opts))) == len(state.workbooks)
    assert len(list(TSC.Pager(tsc_server.views, opts))) == len(state.views)
    assert len(list(TSC.Pager(tsc_server.datasources, opts))) == len(state.datasources)
    assert len(list(TSC.Pager(tsc_server.flows, opts))) == len(state.flows)
    assert len(list(TSC.Pager(tsc_server.jobs, opts))) == len(state.jobs)
    assert len(list(TSC.Pager(tsc_server.schedules, opts))) == len(state.schedules)
    assert len(tsc_server.tasks.get()[0]) == len(state.tasks)


def test_items_and_rules_read_back(emulator, tsc_server):
    state = emulator.state
    for job_id in list(state.jobs)[:10]:
        assert tsc_server.jobs.get_by_id(job_id).id == job_id
    for task_id in list(state.tasks)[:5]:
        assert tsc_server.tasks.get_by_id(task_id).id == task_id
    for (resource, item_id), rules in list(state.permissions.items())[:25]:
        endpoint = getattr(tsc_server, resource)
        item = endpoint.get_by_id(item_id)
        endpoint.populate_permissions(item)
        got = {(r.grantee.tag_name, r.grantee.id): r.capabilities for r in item.permissions}
        assert got == {k: v for k, v in rules.items() if v}
    for wb_id in list(state.workbooks)[:5]:
        wb = tsc_server.workbooks.get_by_id(wb_id)
        tsc_server.workbooks.populate_views(wb, usage=True)
        tsc_server.workbooks.populate_connections(wb)
        assert len(wb.views) == len(state.workbooks[wb_id].view_ids)
    dp = tsc_server.projects._default_permissions
    for (project_id, content_type), rules in list(state.default_permissions.items())[:10]:
        project = tsc_server.projects.get_by_id(project_id)
        singular = {"lenses": "lens"}.get(content_type, content_type[:-1])
        got = dp._get_default_permissions(project, singular)
        assert {(r.grantee.tag_name, r.grantee.id): r.capabilities for r in got} == {
            k: v for k, v in rules.items() if v
        }


def test_a_refresh_on_the_demo_site(emulator, tsc_server):
    state = emulator.state
    busy = {j.target_id for j in state.jobs.values() if j.status in ("Pending", "InProgress")}
    wb = next(
        (
            w
            for w in state.workbooks.values()
            if w.has_extracts and not w.refresh_failure and w.id not in busy
        ),
        None,
    )
    if wb is None:
        pytest.skip("the generated site has no idle refreshable workbook")
    wb.refresh_seconds = min(wb.refresh_seconds, 30)
    job = tsc_server.workbooks.refresh(wb.id)
    assert tsc_server.jobs.wait_for_job(job, timeout=60).finish_code == 0
