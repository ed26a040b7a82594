"""Projects: list, create, update (and TSC's empty-PUT read), delete with cascade."""

from __future__ import annotations

from .. import model as m
from .. import tables
from ..authz import is_admin, require_admin, require_change, require_view, visible
from ..errors import ApiError, bad_request, conflict, missing
from ..generator import copy_rules
from ..routing import Call, Reply, route

PROJECT_ATTRS = (
    "id",
    "name",
    "description",
    "contentPermissions",
    "parentProjectId",
    "createdAt",
    "updatedAt",
    "topLevelProject",
    "writeable",
)


def get_project(call: Call, project_id: str) -> m.Project:
    project = call.state.projects.get(project_id)
    if project is None:
        raise missing("project", project_id)
    require_view(call.state, call.actor, "projects", project)
    return project


@route("GET", "/sites/{site}/projects")
def list_projects(call: Call) -> Reply:
    f = call.fields(PROJECT_ATTRS)
    render = call.render
    return call.page_rows(
        visible(call.state, call.actor, "projects", call.state.projects),
        tables.projects(call.state),
        "projects",
        render.list_rows("project", f),
    )


def _check_name(state: m.SiteState, name: str, parent_id: str | None, exclude: str | None = None) -> None:
    for other in state.projects.values():
        if other.id != exclude and other.parent_id == parent_id and other.name.lower() == name.lower():
            raise conflict(
                "409006", f"A project named '{name}' already exists here.", summary="Resource Conflict"
            )


def _check_mode(mode: str | None) -> None:
    if mode is not None and mode not in m.LOCK_MODES:
        raise bad_request("400000", f"contentPermissions must be one of {', '.join(m.LOCK_MODES)}.")


@route("POST", "/sites/{site}/projects")
def create_project(call: Call) -> Reply:
    body = call.child("project")
    assert body is not None
    name = (body.get("name") or "").strip()
    if not name:
        raise bad_request("400000", "A project needs a name.")
    parent_id = body.get("parentProjectId") or None
    state, user = call.state, call.actor
    if parent_id is not None:
        parent = get_project(call, parent_id)
        require_change(state, user, "projects", parent.id, parent.owner_id, parent.parent_id, "ProjectLeader")
    else:
        require_admin(user, "create top-level projects")
    mode = body.get("contentPermissions")
    _check_mode(mode)
    _check_name(state, name, parent_id)
    now = m.utcnow()
    project = m.Project(
        id=m.new_id(),
        name=name,
        owner_id=user.id,
        created_at=now,
        updated_at=now,
        description=body.get("description") or "",
        parent_id=parent_id,
        content_permissions=mode or "ManagedByOwner",
    )
    state.projects[project.id] = project
    _inherit_permissions(state, project)
    return Reply(201, call.render.project(project))


def _inherit_permissions(state: m.SiteState, project: m.Project) -> None:
    """A new project starts with a copy of its parent's rules and default permissions, or, at the top
    level, of the Default project's, as on Tableau (scripts index into the rules they expect)."""
    source = project.parent_id
    if source is None:
        source = next(
            (p.id for p in state.projects.values() if p.parent_id is None and p.name == "Default"), None
        )
    if source is None or source == project.id:
        return
    if ("projects", source) in state.permissions:
        state.permissions[("projects", project.id)] = copy_rules(state.permissions[("projects", source)])
    for (owner, ctype), rules in list(state.default_permissions.items()):
        if owner == source:
            state.default_permissions[(project.id, ctype)] = copy_rules(rules)


@route("PUT", "/sites/{site}/projects/{project}")
def update_project(call: Call) -> Reply:
    project = get_project(call, call.params["project"])
    body = call.child("project")
    assert body is not None
    owner = body.find("owner")
    if not body.attrib and owner is None:
        # TSC 0.42 has no GET for one project: `projects.get_by_id` sends an empty update.
        return Reply(200, call.render.project(project))
    state, user = call.state, call.actor
    require_change(state, user, "projects", project.id, project.owner_id, project.parent_id, "ProjectLeader")
    name = body.get("name", project.name).strip() or project.name
    parent_id = body.get("parentProjectId", project.parent_id) or None
    if parent_id != project.parent_id:
        _check_move(call, project, parent_id)
    _check_mode(body.get("contentPermissions"))
    _check_name(state, name, parent_id, exclude=project.id)
    if owner is not None and owner.get("id") and owner.get("id") != project.owner_id:
        if not is_admin(user):
            raise ApiError(403, "403000", "Forbidden", "Only administrators can change a project's owner.")
        if owner.get("id") not in state.users:
            raise missing("user", owner.get("id", ""))
        project.owner_id = owner.get("id", project.owner_id)
    project.name = name
    project.parent_id = parent_id
    project.description = body.get("description", project.description)
    project.content_permissions = body.get("contentPermissions", project.content_permissions)
    project.updated_at = m.utcnow()
    return Reply(200, call.render.project(project))


def _check_move(call: Call, project: m.Project, parent_id: str | None) -> None:
    current = parent_id
    while current is not None:
        if current == project.id:
            raise bad_request("400000", "A project cannot be moved under itself or one of its children.")
        current = get_project(call, current).parent_id


@route("DELETE", "/sites/{site}/projects/{project}")
def delete_project(call: Call) -> Reply:
    project = get_project(call, call.params["project"])
    state = call.state
    require_change(
        state, call.actor, "projects", project.id, project.owner_id, project.parent_id, "ProjectLeader"
    )
    doomed = _subtree(state, project.id)
    for wb in [w for w in state.workbooks.values() if w.project_id in doomed]:
        delete_workbook_state(state, wb)
    for ds in [d for d in state.datasources.values() if d.project_id in doomed]:
        _forget(state, "datasources", ds.id)
        del state.datasources[ds.id]
    for flow in [f for f in state.flows.values() if f.project_id in doomed]:
        _forget(state, "flows", flow.id)
        del state.flows[flow.id]
    for project_id in doomed:
        _forget(state, "projects", project_id)
        for key in [k for k in state.default_permissions if k[0] == project_id]:
            del state.default_permissions[key]
        del state.projects[project_id]
    return Reply(204)


def _subtree(state: m.SiteState, root: str) -> set[str]:
    found = {root}
    grew = True
    while grew:
        grew = False
        for project in state.projects.values():
            if project.parent_id in found and project.id not in found:
                found.add(project.id)
                grew = True
    return found


def _forget(state: m.SiteState, resource: str, item_id: str) -> None:
    state.permissions.pop((resource, item_id), None)
    for task_id in [t.id for t in state.tasks.values() if t.target_id == item_id]:
        del state.tasks[task_id]


def delete_workbook_state(state: m.SiteState, wb: m.Workbook) -> None:
    for view_id in wb.view_ids:
        state.views.pop(view_id, None)
        state.permissions.pop(("views", view_id), None)
    _forget(state, "workbooks", wb.id)
    del state.workbooks[wb.id]


def delete_datasource_state(state: m.SiteState, ds: m.Datasource) -> None:
    _forget(state, "datasources", ds.id)
    del state.datasources[ds.id]
