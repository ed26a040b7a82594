"""Explicit permissions on content and project default permissions (tsc-wire §2.9, semantics §4).

Stored rules are explicit only, as on Tableau: implicit rights (admin, owner, project leader) are
never listed. PUT adds or flips rules and answers with the item's full rule set; DELETE removes
one grantee × capability × mode.
"""

from __future__ import annotations

from typing import Any

from .. import model as m
from ..authz import require_change
from ..errors import ApiError, bad_request, missing
from ..routing import Call, Reply, route
from ..xmlout import el
from .content import lookup, project_of
from .projects import get_project

_COMMON = ("Read", "Write", "ChangeHierarchy", "Delete", "ChangePermissions")
_VIZ = (
    "Read",
    "Filter",
    "ViewComments",
    "AddComment",
    "ExportImage",
    "ExportData",
    "ShareView",
    "ViewUnderlyingData",
    "WebAuthoring",
    "RunExplainData",
    "ExportXml",
)
# REST capability names each content type accepts (semantics §4.4).
CAPABILITIES: dict[str, frozenset[str]] = {
    "projects": frozenset({"Read", "Write", "ProjectLeader"}),
    "workbooks": frozenset(_VIZ + _COMMON + ("CreateRefreshMetrics", "ExtractRefresh")),
    "views": frozenset(_VIZ + ("Delete", "ChangePermissions")),
    "datasources": frozenset(
        (
            "Read",
            "Connect",
            "ExportXml",
            "SaveAs",
            "ExtractRefresh",
            "VizqlDataApiAccess",
            "PulseMetricDefine",
        )
        + _COMMON
    ),
    "flows": frozenset(("Read", "ExportXml", "Execute", "WebAuthoringForFlows") + _COMMON),
    "lenses": frozenset(_COMMON),
    "metrics": frozenset(_COMMON),
    "dataroles": frozenset(_COMMON),
    "virtualConnections": frozenset(("Connect",) + _COMMON),
    "databases": frozenset(("Read", "Write", "ChangeHierarchy", "ChangePermissions")),
    "tables": frozenset(("Read", "Write", "ChangeHierarchy", "ChangePermissions")),
}
_GRANTEE_SEGMENTS = {"users": "user", "groups": "group"}
_LOCKABLE = ("workbooks", "datasources", "flows", "views")


def _resource(call: Call) -> tuple[str, Any]:
    resource = call.params["resource"]
    if resource not in m.PERMISSION_RESOURCES:
        raise ApiError(404, "404003", "Resource Not Found", f"'{resource}' has no permissions endpoint here.")
    if resource == "projects":
        return resource, get_project(call, call.params["id"])
    return resource, lookup(call, resource, call.params["id"])


def _content_type(call: Call) -> str:
    # TSC spells it `virtualConnections`; Tableau's documentation uses lower case. Accept both.
    wanted = call.params["ctype"].lower()
    for ctype in m.DEFAULT_PERMISSION_TYPES:
        if ctype.lower() == wanted:
            return ctype
    raise ApiError(
        404, "404003", "Resource Not Found", f"'{call.params['ctype']}' has no default permissions."
    )


def _parent(kind: str, item: Any) -> str:
    pairs = [("id", item.id), ("name", item.name)]
    owner = getattr(item, "owner_id", None)
    return el(kind, pairs, el("owner", [("id", owner)]) if owner and kind != "view" else "")


def locking_project(state: m.SiteState, project_id: str | None) -> m.Project | None:
    """The project whose lock controls content in `project_id`, if any (semantics §4.2).

    The content's own project locks it in both locked modes; an ancestor locks it only with
    `LockedToProject` (nested), not with `LockedToProjectWithoutNested`.
    """
    project = state.projects.get(project_id or "")
    if project is not None and project.content_permissions != "ManagedByOwner":
        return project
    seen = set()
    while project is not None and project.parent_id and project.parent_id not in seen:
        seen.add(project.parent_id)
        project = state.projects.get(project.parent_id)
        if project is not None and project.content_permissions == "LockedToProject":
            return project
    return None


def _require_permissions_change(call: Call, resource: str, item: Any) -> None:
    state = call.state
    if resource == "projects":
        require_change(state, call.actor, "projects", item.id, item.owner_id, item.parent_id, "ProjectLeader")
        return
    project_id = project_of(state, resource, item)
    lock = locking_project(state, project_id)
    if lock is not None and resource in _LOCKABLE:
        raise ApiError(
            403, "403000", "Forbidden", f"Permissions here are locked to the project '{lock.name}'."
        )
    require_change(state, call.actor, resource, item.id, item.owner_id, project_id, "ChangePermissions")


def _parse_rules(call: Call, allowed: frozenset[str]) -> m.Rules:
    permissions = call.child("permissions")
    assert permissions is not None
    parsed: m.Rules = {}
    for block in permissions.findall("granteeCapabilities"):
        grantee = next((child for child in block if child.tag in ("user", "group", "groupSet")), None)
        if grantee is None or not grantee.get("id"):
            raise bad_request("400000", "Each granteeCapabilities needs a <user id/> or <group id/>.")
        if grantee.tag == "groupSet":
            raise bad_request("400000", "The emulator does not model group sets.")
        kind, grantee_id = grantee.tag, grantee.get("id", "")
        if kind == "user" and grantee_id not in call.state.users:
            raise missing("user", grantee_id)
        if kind == "group" and grantee_id not in call.state.groups:
            raise missing("group", grantee_id)
        caps = parsed.setdefault((kind, grantee_id), {})
        for cap in block.findall("capabilities/capability"):
            name, mode = cap.get("name", ""), cap.get("mode", "")
            if name not in allowed:
                raise bad_request(
                    "400009", f"'{name}' is not a valid capability here.", summary="Invalid capability"
                )
            if mode not in ("Allow", "Deny"):
                raise bad_request(
                    "400009", f"'{mode}' is not a valid capability mode.", summary="Invalid capability"
                )
            caps[name] = mode
    return parsed


def _merge(store: m.Rules, incoming: m.Rules) -> None:
    for grantee, caps in incoming.items():
        store.setdefault(grantee, {}).update(caps)


def _delete_rule(store: m.Rules | None, call: Call) -> None:
    kind = _GRANTEE_SEGMENTS.get(call.params["gtype"])
    if kind is None:
        raise ApiError(
            404, "404003", "Resource Not Found", f"'{call.params['gtype']}' is not a grantee type."
        )
    key = (kind, call.params["gid"])
    caps = (store or {}).get(key, {})
    capability, mode = call.params["cap"], call.params["mode"]
    if caps.get(capability) != mode:
        raise ApiError(
            404,
            "404021",
            "Resource Not Found",
            f"No {mode} rule for '{capability}' is set for {kind} '{key[1]}'.",
        )
    del caps[capability]
    if not caps and store is not None:
        del store[key]


# -- item permissions ---------------------------------------------------------------------------


@route("GET", "/sites/{site}/{resource}/{id}/permissions")
def get_permissions(call: Call) -> Reply:
    resource, item = _resource(call)
    rules = call.state.permissions.get((resource, item.id), {})
    return Reply(200, call.render.permissions(rules, _parent(resource[:-1], item)))


@route("PUT", "/sites/{site}/{resource}/{id}/permissions")
def put_permissions(call: Call) -> Reply:
    resource, item = _resource(call)
    _require_permissions_change(call, resource, item)
    incoming = _parse_rules(call, CAPABILITIES[resource])
    store = call.state.permissions.setdefault((resource, item.id), {})
    _merge(store, incoming)
    return Reply(200, call.render.permissions(store, _parent(resource[:-1], item)))


@route("DELETE", "/sites/{site}/{resource}/{id}/permissions/{gtype}/{gid}/{cap}/{mode}")
def delete_permission(call: Call) -> Reply:
    resource, item = _resource(call)
    _require_permissions_change(call, resource, item)
    _delete_rule(call.state.permissions.get((resource, item.id)), call)
    return Reply(204)


# -- project default permissions ----------------------------------------------------------------


def _project(call: Call) -> m.Project:
    project = call.state.projects.get(call.params["id"])
    if project is None:
        raise missing("project", call.params["id"])
    return project


@route("GET", "/sites/{site}/projects/{id}/default-permissions/{ctype}")
def get_default_permissions(call: Call) -> Reply:
    project, ctype = _project(call), _content_type(call)
    rules = call.state.default_permissions.get((project.id, ctype), {})
    return Reply(200, call.render.permissions(rules, _parent("project", project)))


@route("PUT", "/sites/{site}/projects/{id}/default-permissions/{ctype}")
def put_default_permissions(call: Call) -> Reply:
    project, ctype = _project(call), _content_type(call)
    _require_permissions_change(call, "projects", project)
    incoming = _parse_rules(call, CAPABILITIES[ctype])
    store = call.state.default_permissions.setdefault((project.id, ctype), {})
    _merge(store, incoming)
    return Reply(200, call.render.permissions(store, _parent("project", project)))


@route("DELETE", "/sites/{site}/projects/{id}/default-permissions/{ctype}/{gtype}/{gid}/{cap}/{mode}")
def delete_default_permission(call: Call) -> Reply:
    project, ctype = _project(call), _content_type(call)
    _require_permissions_change(call, "projects", project)
    _delete_rule(call.state.default_permissions.get((project.id, ctype)), call)
    return Reply(204)
