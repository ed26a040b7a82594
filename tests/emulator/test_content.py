"""Sites, projects, workbooks, datasources, views and flows through TSC 0.42."""

from __future__ import annotations

import pytest
import tableauserverclient as TSC

from emulator.testing import CREATOR_PAT, EXPLORER_PAT, signed_in_server


def test_current_site_and_site_list(small_emulator, small_server):
    state = small_emulator.state
    site = small_server.sites.get_by_id(small_server.site_id)
    assert (site.name, site.content_url, site.id) == (state.name, state.content_url, state.id)
    assert [s.id for s in TSC.Pager(small_server.sites)] == [state.id]
    assert small_server.sites.get_by_name(state.name).id == state.id


# -- projects ---------------------------------------------------------------------------------------


def test_projects_list_nesting_and_get_by_path(small_emulator, small_server):
    state = small_emulator.state
    projects = list(TSC.Pager(small_server.projects))
    assert {p.id: p.parent_id for p in projects} == {p.id: p.parent_id for p in state.projects.values()}
    reports = next(p for p in state.projects.values() if p.name == "Reports")
    found = small_server.projects.get_by_path("Finance/Reports")
    assert found.id == reports.id and found.content_permissions == "LockedToProject"


def test_project_get_by_id_is_an_empty_put(small_emulator, small_server):
    project = next(iter(small_emulator.state.projects.values()))
    before = project.updated_at
    item = small_server.projects.get_by_id(project.id)
    assert (item.name, item.description) == (project.name, project.description)
    assert project.updated_at == before
    assert small_emulator.request_log[-1].method == "PUT"


def test_project_create_update_delete_cascades(small_emulator, small_server):
    state = small_emulator.state
    finance = next(p for p in state.projects.values() if p.name == "Finance")
    created = small_server.projects.create(
        TSC.ProjectItem(
            "Quarterly", "q reports", TSC.ProjectItem.ContentPermissions.ManagedByOwner, finance.id
        )
    )
    assert state.projects[created.id].parent_id == finance.id
    created.name, created.description = "Quarterly Close", "closing"
    small_server.projects.update(created)
    assert (state.projects[created.id].name, state.projects[created.id].description) == (
        "Quarterly Close",
        "closing",
    )
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.projects.create(TSC.ProjectItem("Quarterly Close", parent_id=finance.id))
    assert caught.value.code.startswith("409")

    doomed = {w.id for w in state.workbooks.values() if w.project_id == finance.id}
    small_server.projects.delete(finance.id)
    assert finance.id not in state.projects and created.id not in state.projects
    assert not doomed & set(state.workbooks)
    assert all(p.name != "Reports" for p in state.projects.values())  # the nested project went too


def test_explorer_cannot_create_top_level_projects(small_emulator):
    explorer = signed_in_server(small_emulator, EXPLORER_PAT)
    with pytest.raises(TSC.ServerResponseError) as caught:
        explorer.projects.create(TSC.ProjectItem("Mine"))
    assert caught.value.code.startswith("403")


# -- workbooks ----------------------------------------------------------------------------------------


def test_workbook_get_views_connections(small_emulator, small_server):
    state = small_emulator.state
    model_wb = next(iter(state.workbooks.values()))
    wb = small_server.workbooks.get_by_id(model_wb.id)
    assert (wb.name, wb.project_id, wb.owner_id, wb.size) == (
        model_wb.name,
        model_wb.project_id,
        model_wb.owner_id,
        model_wb.size,
    )
    assert wb.tags == model_wb.tags
    small_server.workbooks.populate_views(wb, usage=True)
    assert [v.id for v in wb.views] == model_wb.view_ids
    assert [v.total_views for v in wb.views] == [state.views[v].total_view_count for v in model_wb.view_ids]
    small_server.workbooks.populate_connections(wb)
    assert [(c.id, c.server_address) for c in wb.connections] == [
        (c.id, c.server_address) for c in model_wb.connections
    ]


def test_workbook_update_tags_and_delete(small_emulator, small_server):
    state = small_emulator.state
    model_wb = next(iter(state.workbooks.values()))
    sandbox = next(p for p in state.projects.values() if p.name == "Sandbox")
    wb = small_server.workbooks.get_by_id(model_wb.id)
    wb.name, wb.show_tabs, wb.project_id = "Renamed", False, sandbox.id
    wb.tags = wb.tags | {"quarterly"}
    updated = small_server.workbooks.update(wb)
    assert (model_wb.name, model_wb.show_tabs, model_wb.project_id) == ("Renamed", False, sandbox.id)
    assert "quarterly" in model_wb.tags and updated.name == "Renamed"
    wb.tags = wb.tags - {"quarterly"}
    small_server.workbooks.update(wb)
    assert "quarterly" not in model_wb.tags
    small_server.workbooks.delete(model_wb.id)
    assert model_wb.id not in state.workbooks
    assert not set(model_wb.view_ids) & set(state.views)
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.workbooks.get_by_id(model_wb.id)
    assert caught.value.code == "404006"


def test_owner_can_update_but_explorer_cannot_touch_others(small_emulator):
    state = small_emulator.state
    creator = signed_in_server(small_emulator, CREATOR_PAT)
    explorer = signed_in_server(small_emulator, EXPLORER_PAT)
    mine = next(w for w in state.workbooks.values() if w.owner_id == creator.user_id)
    item = creator.workbooks.get_by_id(mine.id)
    item.description = "edited by its owner"
    creator.workbooks.update(item)
    assert mine.description == "edited by its owner"
    theirs = explorer.workbooks.get_by_id(mine.id)
    theirs.name = "hijacked"
    with pytest.raises(TSC.ServerResponseError) as caught:
        explorer.workbooks.update(theirs)
    assert caught.value.code.startswith("403")
    assert mine.name != "hijacked"


# -- datasources, views, flows ------------------------------------------------------------------------


def test_datasources(small_emulator, small_server):
    state = small_emulator.state
    items = list(TSC.Pager(small_server.datasources))
    assert {d.id: d.datasource_type for d in items} == {d.id: d.type for d in state.datasources.values()}
    model_ds = next(iter(state.datasources.values()))
    ds = small_server.datasources.get_by_id(model_ds.id)
    small_server.datasources.populate_connections(ds)
    assert [c.id for c in ds.connections] == [c.id for c in model_ds.connections]
    ds.certified, ds.certification_note = True, "checked"
    small_server.datasources.update(ds)
    assert model_ds.is_certified and model_ds.certification_note == "checked"
    certified = list(small_server.datasources.filter(is_certified=True))
    assert {d.id for d in certified} == {d.id for d in state.datasources.values() if d.is_certified}


def test_views_with_usage(small_emulator, small_server):
    state = small_emulator.state
    views, pagination = small_server.views.get(usage=True)
    assert pagination.total_available == len(state.views)
    assert {v.id: v.total_views for v in views} == {v.id: v.total_view_count for v in state.views.values()}
    model_view = next(iter(state.views.values()))
    view = small_server.views.get_by_id(model_view.id)
    assert (view.name, view.workbook_id, view.sheet_type) == (
        model_view.name,
        model_view.workbook_id,
        model_view.sheet_type,
    )
    top = list(small_server.views.filter(workbook_name=state.workbooks[model_view.workbook_id].name))
    assert {v.id for v in top} == set(state.workbooks[model_view.workbook_id].view_ids)


def test_flows(small_emulator, small_server):
    state = small_emulator.state
    flows = list(TSC.Pager(small_server.flows))
    assert {f.id for f in flows} == set(state.flows)
    model_flow = next(iter(state.flows.values()))
    flow = small_server.flows.get_by_id(model_flow.id)
    assert (flow.name, flow.project_id, flow.owner_id) == (
        model_flow.name,
        model_flow.project_id,
        model_flow.owner_id,
    )


def test_unknown_endpoint_and_method(small_emulator, small_server):
    import requests

    headers = {"x-tableau-auth": small_server.auth_token}
    base = f"{small_emulator.url}/api/3.24/sites/{small_server.site_id}"
    assert requests.get(f"{base}/nonsense", headers=headers, timeout=10).status_code == 404
    assert requests.patch(f"{base}/workbooks", headers=headers, timeout=10).status_code == 405
