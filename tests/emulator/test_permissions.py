"""Permission and default-permission round trips (populate, update, delete) through TSC 0.42."""

from __future__ import annotations

import pytest
import tableauserverclient as TSC
from tableauserverclient.models import PermissionsRule

from emulator import model as m
from emulator.testing import EXPLORER_PAT, signed_in_server

Cap = TSC.Permission.Capability
Mode = TSC.Permission.Mode


def _as_dict(rules) -> dict:
    return {(r.grantee.tag_name, r.grantee.id): dict(r.capabilities) for r in rules}


def _group(state, name: str) -> m.Group:
    return next(g for g in state.groups.values() if g.name == name)


def test_workbook_permissions_round_trip(small_emulator, small_server):
    state = small_emulator.state
    wb_id = next(iter(state.workbooks))
    wb = small_server.workbooks.get_by_id(wb_id)
    small_server.workbooks.populate_permissions(wb)
    assert _as_dict(wb.permissions) == state.permissions[("workbooks", wb_id)]

    viewer = state.user_by_name("viewer@example.com")
    user_item = small_server.users.get_by_id(viewer.id)
    rule = PermissionsRule(user_item, {Cap.ExportImage: Mode.Allow, Cap.Read: Mode.Deny})
    updated = small_server.workbooks.update_permissions(wb, [rule])
    assert state.permissions[("workbooks", wb_id)][("user", viewer.id)] == {
        "ExportImage": "Allow",
        "Read": "Deny",
    }
    assert _as_dict(updated) == state.permissions[("workbooks", wb_id)]

    small_server.workbooks.delete_permission(wb, PermissionsRule(user_item, {Cap.ExportImage: Mode.Allow}))
    assert state.permissions[("workbooks", wb_id)][("user", viewer.id)] == {"Read": "Deny"}


@pytest.mark.parametrize("resource", ["datasources", "flows", "views", "projects"])
def test_other_resources_round_trip(small_emulator, small_server, resource):
    state = small_emulator.state
    # Items outside the locked Reports project, so their owners may set permissions.
    reports = next(p.id for p in state.projects.values() if p.name == "Reports")
    candidates = {
        "datasources": [d.id for d in state.datasources.values() if d.project_id != reports],
        "flows": list(state.flows),
        "views": [v.id for v in state.views.values() if state.workbooks[v.workbook_id].project_id != reports],
        "projects": list(state.projects),
    }[resource]
    item_id = candidates[0]
    endpoint = getattr(small_server, resource)
    item = endpoint.get_by_id(item_id)
    endpoint.populate_permissions(item)
    assert _as_dict(item.permissions) == state.permissions.get((resource, item_id), {})

    analysts = _group(state, "Analysts")
    group_item = TSC.GroupItem(analysts.name)
    group_item._id = analysts.id
    endpoint.update_permissions(item, [PermissionsRule(group_item, {Cap.Read: Mode.Allow})])
    assert state.permissions[(resource, item_id)][("group", analysts.id)]["Read"] == "Allow"
    endpoint.populate_permissions(item)
    assert _as_dict(item.permissions) == state.permissions[(resource, item_id)]
    endpoint.delete_permission(item, PermissionsRule(group_item, {Cap.Read: Mode.Allow}))
    assert ("group", analysts.id) not in state.permissions[(resource, item_id)]


@pytest.mark.parametrize("content_type", m.DEFAULT_PERMISSION_TYPES)
def test_default_permissions_every_content_type(small_emulator, small_server, content_type):
    state = small_emulator.state
    finance = next(p for p in state.projects.values() if p.name == "Finance")
    project = next(p for p in small_server.projects.get()[0] if p.id == finance.id)
    analysts = _group(state, "Analysts")
    group_item = TSC.GroupItem(analysts.name)
    group_item._id = analysts.id
    resource = {
        "workbooks": "workbook",
        "datasources": "datasource",
        "flows": "flow",
        "lenses": "lens",
        "metrics": "metric",
        "dataroles": "datarole",
        "virtualConnections": "virtualConnection",
        "databases": "database",
        "tables": "table",
    }[content_type]

    # TSC builds the URL with plural_type(), e.g. `virtualConnections`.
    dp = small_server.projects._default_permissions
    before = dp._get_default_permissions(project, resource)
    assert _as_dict(before) == state.default_permissions.get((finance.id, content_type), {})
    rule = PermissionsRule(group_item, {Cap.Write: Mode.Deny})
    dp.update_default_permissions(project, [rule], resource)
    assert state.default_permissions[(finance.id, content_type)][("group", analysts.id)]["Write"] == "Deny"
    dp.delete_default_permission(project, rule, resource)
    after = state.default_permissions.get((finance.id, content_type), {})
    assert "Write" not in after.get(("group", analysts.id), {})


def test_populate_default_workbook_permissions(small_emulator, small_server):
    state = small_emulator.state
    finance = next(p for p in state.projects.values() if p.name == "Finance")
    project = next(p for p in small_server.projects.get()[0] if p.id == finance.id)
    small_server.projects.populate_workbook_default_permissions(project)
    assert (
        _as_dict(project.default_workbook_permissions) == state.default_permissions[(finance.id, "workbooks")]
    )


def test_locked_project_content_refuses_permissions(small_emulator, small_server):
    state = small_emulator.state
    reports = next(p for p in state.projects.values() if p.name == "Reports")
    wb_id = next(w.id for w in state.workbooks.values() if w.project_id == reports.id)
    wb = small_server.workbooks.get_by_id(wb_id)
    viewer = small_server.users.get_by_id(state.user_by_name("viewer@example.com").id)
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.workbooks.update_permissions(wb, [PermissionsRule(viewer, {Cap.Read: Mode.Allow})])
    assert caught.value.code.startswith("403")


def test_invalid_capability_and_missing_rule(small_emulator, small_server):
    state = small_emulator.state
    flow_id = next(iter(state.flows))
    flow = small_server.flows.get_by_id(flow_id)
    viewer = small_server.users.get_by_id(state.user_by_name("viewer@example.com").id)
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.flows.update_permissions(flow, [PermissionsRule(viewer, {Cap.WebAuthoring: Mode.Allow})])
    assert caught.value.code == "400009"
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.flows.delete_permission(flow, PermissionsRule(viewer, {Cap.Read: Mode.Allow}))
    assert caught.value.code.startswith("404")


def test_explorer_cannot_change_permissions_of_others_content(small_emulator):
    state = small_emulator.state
    explorer = signed_in_server(small_emulator, EXPLORER_PAT)
    finance = next(p for p in state.projects.values() if p.name == "Finance")
    wb_id = next(
        w.id
        for w in state.workbooks.values()
        if w.owner_id != explorer.user_id and w.project_id == finance.id
    )
    wb = explorer.workbooks.get_by_id(wb_id)
    viewer = explorer.users.get_by_id(state.user_by_name("viewer@example.com").id)
    with pytest.raises(TSC.ServerResponseError) as caught:
        explorer.workbooks.update_permissions(wb, [PermissionsRule(viewer, {Cap.Read: Mode.Allow})])
    assert caught.value.code.startswith("403")


def test_locks_follow_nesting_rules():
    from emulator.handlers.permissions import locking_project
    from emulator.testing import small_site

    site = small_site()
    finance = next(p for p in site.projects.values() if p.name == "Finance")
    reports = next(p for p in site.projects.values() if p.name == "Reports")
    reports.content_permissions = "ManagedByOwner"
    assert locking_project(site, reports.id) is None
    finance.content_permissions = "LockedToProject"
    assert locking_project(site, reports.id) is finance  # a nested lock reaches the child project
    finance.content_permissions = "LockedToProjectWithoutNested"
    assert locking_project(site, reports.id) is None
    assert locking_project(site, finance.id) is finance
