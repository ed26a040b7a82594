"""Workbooks, datasources, views and flows: lists, items, updates, deletes, connections, tags, refresh."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from .. import model as m
from .. import tables
from ..authz import is_admin, leads, may_change, require_change, require_view, visible
from ..errors import ApiError, missing
from ..query import flag
from ..routing import Call, Reply, route
from ..xmlout import esc
from .projects import delete_datasource_state, delete_workbook_state

WORKBOOK_ATTRS = (
    "id",
    "name",
    "description",
    "contentUrl",
    "webpageUrl",
    "showTabs",
    "size",
    "createdAt",
    "updatedAt",
    "encryptExtracts",
    "defaultViewId",
    "sheetCount",
    "hasExtracts",
    "tags",
)
DATASOURCE_ATTRS = (
    "id",
    "name",
    "description",
    "contentUrl",
    "type",
    "size",
    "createdAt",
    "updatedAt",
    "encryptExtracts",
    "hasExtracts",
    "isCertified",
    "certificationNote",
    "useRemoteQueryAgent",
    "webpageUrl",
    "tags",
)
VIEW_ATTRS = ("id", "name", "contentUrl", "createdAt", "updatedAt", "sheetType", "viewUrlName", "tags")
FLOW_ATTRS = ("id", "name", "description", "createdAt", "updatedAt", "fileType", "webpageUrl", "tags")

# resource path segment → (SiteState collection attribute, model kind used in errors and job targets)
KINDS = {
    "workbooks": ("workbooks", "workbook"),
    "datasources": ("datasources", "datasource"),
    "views": ("views", "view"),
    "flows": ("flows", "flow"),
}


def lookup(call: Call, resource: str, item_id: str) -> Any:
    collection, kind = KINDS[resource]
    item = getattr(call.state, collection).get(item_id)
    if item is None:
        raise missing(kind, item_id)
    require_view(call.state, call.actor, resource, item)
    return item


def listable(call: Call, resource: str, items: Any = None) -> list[Any]:
    """What a list of `resource` selects from: only what the signed-in user may view (totals count these)."""
    collection = KINDS[resource][0]
    return visible(call.state, call.actor, resource, getattr(call.state, collection) if items is None else items)


def project_of(state: m.SiteState, resource: str, item: Any) -> str | None:
    if resource == "views":
        wb = state.workbooks.get(item.workbook_id)
        return wb.project_id if wb else None
    return item.project_id


def require_item_change(call: Call, resource: str, item: Any, capability: str = "Write") -> None:
    require_change(
        call.state,
        call.actor,
        resource,
        item.id,
        item.owner_id,
        project_of(call.state, resource, item),
        capability,
    )


# -- workbooks ----------------------------------------------------------------------------------


@route("GET", "/sites/{site}/workbooks")
def list_workbooks(call: Call) -> Reply:
    f, render = call.fields(WORKBOOK_ATTRS), call.render
    return call.page_rows(
        listable(call, "workbooks"),
        tables.workbooks(call.state),
        "workbooks",
        render.list_rows("workbook", f),
    )


@route("GET", "/sites/{site}/workbooks/{id}")
def get_workbook(call: Call) -> Reply:
    wb = lookup(call, "workbooks", call.params["id"])
    return Reply(200, call.render.workbook(wb, with_views=True))


@route("PUT", "/sites/{site}/workbooks/{id}")
def update_workbook(call: Call) -> Reply:
    wb: m.Workbook = lookup(call, "workbooks", call.params["id"])
    body = call.child("workbook")
    assert body is not None
    require_item_change(call, "workbooks", wb)
    _move_and_own(call, "workbooks", wb, body)
    wb.name = body.get("name", wb.name) or wb.name
    wb.description = body.get("description", wb.description)
    if body.get("showTabs") is not None:
        wb.show_tabs = body.get("showTabs", "").lower() == "true"
    wb.updated_at = m.utcnow()
    return Reply(200, call.render.workbook(wb))


@route("DELETE", "/sites/{site}/workbooks/{id}")
def delete_workbook(call: Call) -> Reply:
    wb = lookup(call, "workbooks", call.params["id"])
    require_item_change(call, "workbooks", wb, "Delete")
    delete_workbook_state(call.state, wb)
    return Reply(204)


@route("GET", "/sites/{site}/workbooks/{id}/views")
def workbook_views(call: Call) -> Reply:
    wb: m.Workbook = lookup(call, "workbooks", call.params["id"])
    usage, render = flag(call.query, "includeUsageStatistics"), call.render
    views = listable(call, "views", [call.state.views[v] for v in wb.view_ids if v in call.state.views])
    # Unpaged, like the real endpoint (tsc-wire §4).
    return Reply(
        200, "<views>" + "".join(render.view(v, usage=usage, nested=False) for v in views) + "</views>"
    )


@route("GET", "/sites/{site}/workbooks/{id}/connections")
def workbook_connections(call: Call) -> Reply:
    wb: m.Workbook = lookup(call, "workbooks", call.params["id"])
    return _connections(call, wb.connections)


@route("POST", "/sites/{site}/workbooks/{id}/refresh")
def refresh_workbook(call: Call) -> Reply:
    return _refresh(call, "workbooks")


# -- datasources --------------------------------------------------------------------------------


@route("GET", "/sites/{site}/datasources")
def list_datasources(call: Call) -> Reply:
    f, render = call.fields(DATASOURCE_ATTRS), call.render
    return call.page_rows(
        listable(call, "datasources"),
        tables.datasources(call.state),
        "datasources",
        render.list_rows("datasource", f),
    )


@route("GET", "/sites/{site}/datasources/{id}")
def get_datasource(call: Call) -> Reply:
    return Reply(200, call.render.datasource(lookup(call, "datasources", call.params["id"])))


@route("PUT", "/sites/{site}/datasources/{id}")
def update_datasource(call: Call) -> Reply:
    ds: m.Datasource = lookup(call, "datasources", call.params["id"])
    body = call.child("datasource")
    assert body is not None
    require_item_change(call, "datasources", ds)
    _move_and_own(call, "datasources", ds, body)
    ds.name = body.get("name", ds.name) or ds.name
    ds.description = body.get("description", ds.description)
    if body.get("isCertified") is not None:
        ds.is_certified = body.get("isCertified", "").lower() == "true"
    ds.certification_note = body.get("certificationNote", ds.certification_note)
    if body.get("encryptExtracts") is not None:
        ds.encrypt_extracts = body.get("encryptExtracts", "").lower() == "true"
    ds.updated_at = m.utcnow()
    return Reply(200, call.render.datasource(ds))


@route("DELETE", "/sites/{site}/datasources/{id}")
def delete_datasource(call: Call) -> Reply:
    ds = lookup(call, "datasources", call.params["id"])
    require_item_change(call, "datasources", ds, "Delete")
    delete_datasource_state(call.state, ds)
    return Reply(204)


@route("GET", "/sites/{site}/datasources/{id}/connections")
def datasource_connections(call: Call) -> Reply:
    ds: m.Datasource = lookup(call, "datasources", call.params["id"])
    return _connections(call, ds.connections)


@route("POST", "/sites/{site}/datasources/{id}/refresh")
def refresh_datasource(call: Call) -> Reply:
    return _refresh(call, "datasources")


# -- views and flows ----------------------------------------------------------------------------


@route("GET", "/sites/{site}/views")
def list_views(call: Call) -> Reply:
    f, render = call.fields(VIEW_ATTRS), call.render
    usage = flag(call.query, "includeUsageStatistics")
    return call.page_rows(
        listable(call, "views"),
        tables.views(call.state),
        "views",
        render.list_rows("view", f, usage=usage),
    )


@route("GET", "/sites/{site}/views/{id}")
def get_view(call: Call) -> Reply:
    view = lookup(call, "views", call.params["id"])
    return Reply(200, call.render.view(view, usage=flag(call.query, "includeUsageStatistics")))


@route("GET", "/sites/{site}/flows")
def list_flows(call: Call) -> Reply:
    f, render = call.fields(FLOW_ATTRS), call.render
    return call.page_rows(
        listable(call, "flows"),
        tables.flows(call.state),
        "flows",
        render.list_rows("flow", f),
    )


@route("GET", "/sites/{site}/flows/{id}")
def get_flow(call: Call) -> Reply:
    return Reply(200, call.render.flow(lookup(call, "flows", call.params["id"])))


@route("PUT", "/sites/{site}/flows/{id}")
def update_flow(call: Call) -> Reply:
    flow: m.Flow = lookup(call, "flows", call.params["id"])
    body = call.child("flow")
    if body is None:
        raise ApiError(400, "400000", "Bad Request", "The request body must hold a flow element.")
    require_item_change(call, "flows", flow)
    _move_and_own(call, "flows", flow, body)
    flow.name = body.get("name", flow.name) or flow.name
    flow.description = body.get("description", flow.description)
    flow.updated_at = m.utcnow()
    return Reply(200, call.render.flow(flow))


# -- tags (workbooks, datasources, views, flows) ------------------------------------------------


@route("PUT", "/sites/{site}/{resource}/{id}/tags")
def add_tags(call: Call) -> Reply:
    resource = _taggable(call)
    item = lookup(call, resource, call.params["id"])
    require_item_change(call, resource, item)
    body = call.child("tags")
    assert body is not None
    labels = [t.get("label", "").strip() for t in body.findall("tag")]
    item.tags.update(label for label in labels if label)
    return Reply(200, "<tags>" + "".join(f'<tag label="{esc(t)}"/>' for t in sorted(item.tags)) + "</tags>")


@route("DELETE", "/sites/{site}/{resource}/{id}/tags/{label}")
def delete_tag(call: Call) -> Reply:
    resource = _taggable(call)
    item = lookup(call, resource, call.params["id"])
    require_item_change(call, resource, item)
    item.tags.discard(unquote(call.params["label"]))
    return Reply(204)


def _taggable(call: Call) -> str:
    resource = call.params["resource"]
    if resource not in KINDS:
        raise ApiError(404, "404003", "Resource Not Found", f"'{resource}' cannot be tagged.")
    return resource


# -- shared pieces ------------------------------------------------------------------------------


def _connections(call: Call, connections: list[m.Connection]) -> Reply:
    render = call.render
    return Reply(200, "<connections>" + "".join(render.connection(c) for c in connections) + "</connections>")


def _move_and_own(call: Call, resource: str, item: Any, body: Any) -> None:
    """Apply `<project id/>` and `<owner id/>` from an update body, with Tableau's rules."""
    state, user = call.state, call.actor
    project = body.find("project")
    new_project = project.get("id") if project is not None else None
    if new_project and new_project != item.project_id:
        if new_project not in state.projects:
            raise missing("project", new_project)
        target = state.projects[new_project]
        require_change(state, user, "projects", target.id, target.owner_id, target.parent_id, "Write")
        item.project_id = new_project
    owner = body.find("owner")
    new_owner = owner.get("id") if owner is not None else None
    if new_owner and new_owner != item.owner_id:
        if new_owner not in state.users:
            raise missing("user", new_owner)
        # Only administrators and project leaders may hand content to someone else.
        if not (is_admin(user) or leads(state, user, item.project_id)):
            raise ApiError(
                403, "403000", "Forbidden", "Only administrators and project leaders can change owners."
            )
        item.owner_id = new_owner


def _refresh(call: Call, resource: str) -> Reply:
    item = lookup(call, resource, call.params["id"])
    check_run_now(call, resource, item)
    incremental = False
    if call.body.strip():
        refresh = call.xml().find("extractRefresh")
        incremental = refresh is not None and refresh.get("incremental", "").lower() == "true"
    job = call.emu.clock.start_refresh(KINDS[resource][1], item, incremental=incremental)
    return Reply(202, call.render.job(job))


def check_run_now(call: Call, resource: str, item: Any) -> None:
    user = call.actor
    if not call.state.run_now_enabled and not is_admin(user):
        # semantics §5.4: code unconfirmed on a live site; 403157 "feature disabled" is the best match.
        raise ApiError(
            403, "403157", "Feature Disabled", "Run Now is disabled on this site for non-administrators."
        )
    state = call.state
    project_id = project_of(state, resource, item)
    if not (
        may_change(state, user, resource, item.id, item.owner_id, project_id, "ExtractRefresh")
        or may_change(state, user, resource, item.id, item.owner_id, project_id, "Write")
    ):
        raise ApiError(403, "403000", "Forbidden", f"'{user.name}' may not refresh '{item.name}'.")
