"""Filterable and sortable fields per resource (semantics §1.5, from TSC 0.42 and tableau-mcp).

Each table maps the REST field name to a getter over the model item, its type and its operators.
Getters that need other items (owner name, project name) close over the site state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import model as m
from .query import CMP, EQ, HAS, NAME_OPS, FieldDef

DOMAIN = "local"


def _owner(state: m.SiteState, attr: str) -> Callable[[Any], Any]:
    def get(item: Any) -> Any:
        user = state.users.get(item.owner_id)
        return getattr(user, attr) if user else None

    return get


def _project_name(state: m.SiteState, get_project_id: Callable[[Any], str | None]) -> Callable[[Any], Any]:
    def get(item: Any) -> Any:
        project = state.projects.get(get_project_id(item) or "")
        return project.name if project else None

    return get


def _owned(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "ownerName": FieldDef(_owner(state, "name")),
        "ownerEmail": FieldDef(_owner(state, "email")),
        "ownerDomain": FieldDef(lambda item: DOMAIN),
    }


def workbooks(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "createdAt": FieldDef(lambda w: w.created_at, "datetime", CMP),
        "updatedAt": FieldDef(lambda w: w.updated_at, "datetime", CMP),
        "favoritesTotal": FieldDef(lambda w: 0, "int", CMP),
        "sheetCount": FieldDef(lambda w: len(w.view_ids), "int", CMP),
        "size": FieldDef(lambda w: w.size, "int", CMP),
        "subscriptionsTotal": FieldDef(lambda w: 0, "int", CMP),
        "contentUrl": FieldDef(lambda w: w.content_url),
        "name": FieldDef(lambda w: w.name),
        "projectName": FieldDef(_project_name(state, lambda w: w.project_id)),
        "projectId": FieldDef(lambda w: w.project_id, ops=EQ),
        "tags": FieldDef(lambda w: w.tags, "tags"),
        "displayTabs": FieldDef(lambda w: w.show_tabs, "bool", EQ),
        "hasAlerts": FieldDef(lambda w: False, "bool", EQ),
        "hasExtracts": FieldDef(lambda w: w.has_extracts, "bool", EQ),
        **_owned(state),
    }


def views(state: m.SiteState) -> dict[str, FieldDef]:
    def workbook_attr(attr: str) -> Callable[[m.View], Any]:
        return lambda v: (
            getattr(state.workbooks[v.workbook_id], attr) if v.workbook_id in state.workbooks else None
        )

    return {
        "createdAt": FieldDef(lambda v: v.created_at, "datetime", CMP),
        "updatedAt": FieldDef(lambda v: v.updated_at, "datetime", CMP),
        "favoritesTotal": FieldDef(lambda v: 0, "int", CMP),
        "hitsTotal": FieldDef(lambda v: v.total_view_count, "int", CMP),
        "sheetNumber": FieldDef(
            lambda v: (
                state.workbooks[v.workbook_id].view_ids.index(v.id) + 1
                if v.workbook_id in state.workbooks and v.id in state.workbooks[v.workbook_id].view_ids
                else None
            ),
            "int",
            CMP,
        ),
        "caption": FieldDef(lambda v: v.name),
        "contentUrl": FieldDef(lambda v: v.content_url),
        "name": FieldDef(lambda v: v.name),
        "title": FieldDef(lambda v: v.name),
        "sheetType": FieldDef(lambda v: v.sheet_type),
        "tags": FieldDef(lambda v: v.tags, "tags"),
        "viewUrlName": FieldDef(lambda v: v.view_url_name),
        "workbookName": FieldDef(workbook_attr("name")),
        "workbookDescription": FieldDef(workbook_attr("description")),
        "projectName": FieldDef(_project_name(state, workbook_attr("project_id"))),
        **_owned(state),
    }


def datasources(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "createdAt": FieldDef(lambda d: d.created_at, "datetime", CMP),
        "updatedAt": FieldDef(lambda d: d.updated_at, "datetime", CMP),
        "favoritesTotal": FieldDef(lambda d: 0, "int", CMP),
        "size": FieldDef(lambda d: d.size, "int", CMP),
        "contentUrl": FieldDef(lambda d: d.content_url),
        "description": FieldDef(lambda d: d.description),
        "name": FieldDef(lambda d: d.name),
        "projectName": FieldDef(_project_name(state, lambda d: d.project_id)),
        "projectId": FieldDef(lambda d: d.project_id, ops=EQ),
        "connectionType": FieldDef(lambda d: d.type),
        "type": FieldDef(lambda d: d.type, ops=EQ),
        "tags": FieldDef(lambda d: d.tags, "tags"),
        "hasExtracts": FieldDef(lambda d: d.has_extracts, "bool", EQ),
        "isCertified": FieldDef(lambda d: d.is_certified, "bool", EQ),
        "hasAlert": FieldDef(lambda d: False, "bool", EQ),
        "isPublished": FieldDef(lambda d: True, "bool", EQ),
        **_owned(state),
    }


def flows(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "createdAt": FieldDef(lambda f: f.created_at, "datetime", CMP),
        "updatedAt": FieldDef(lambda f: f.updated_at, "datetime", CMP),
        "name": FieldDef(lambda f: f.name),
        "projectName": FieldDef(_project_name(state, lambda f: f.project_id)),
        "projectId": FieldDef(lambda f: f.project_id, ops=EQ),
        "ownerName": FieldDef(_owner(state, "name"), ops=EQ),
        "tags": FieldDef(lambda f: f.tags, "tags"),
    }


def projects(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "createdAt": FieldDef(lambda p: p.created_at, "datetime", CMP),
        "updatedAt": FieldDef(lambda p: p.updated_at, "datetime", CMP),
        "name": FieldDef(lambda p: p.name),
        "parentProjectId": FieldDef(lambda p: p.parent_id),
        "topLevelProject": FieldDef(lambda p: p.parent_id is None, "bool", EQ),
        **_owned(state),
    }


def users(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "domainName": FieldDef(lambda u: DOMAIN),
        "email": FieldDef(lambda u: u.email),
        "friendlyName": FieldDef(lambda u: u.full_name),
        "fullName": FieldDef(lambda u: u.full_name),
        "luid": FieldDef(lambda u: u.id),
        "siteRole": FieldDef(lambda u: u.site_role),
        "name": FieldDef(lambda u: u.name, ops=NAME_OPS),
        "isLocal": FieldDef(lambda u: True, "bool", EQ),
        "lastLogin": FieldDef(lambda u: u.last_login, "datetime", CMP),
    }


def groups(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "domainName": FieldDef(lambda g: g.domain_name),
        "domainNickname": FieldDef(lambda g: g.domain_name),
        "luid": FieldDef(lambda g: g.id),
        "minimumSiteRole": FieldDef(lambda g: g.minimum_site_role),
        "name": FieldDef(lambda g: g.name, ops=NAME_OPS),
        "isLocal": FieldDef(lambda g: g.domain_name == "local", "bool", EQ),
        "isExternalUserEnabled": FieldDef(lambda g: False, "bool", EQ),
        "userCount": FieldDef(lambda g: len(g.member_ids), "int", CMP),
    }


def jobs(state: m.SiteState) -> dict[str, FieldDef]:
    def title(j: m.Job) -> str:
        return {"run_flow": "Run Flow", "increment_extracts": "Increment Extracts"}.get(
            j.job_type, "Refresh Extracts"
        )

    return {
        "createdAt": FieldDef(lambda j: j.created_at, "datetime", CMP),
        "startedAt": FieldDef(lambda j: j.started_at, "datetime", CMP),
        "completedAt": FieldDef(lambda j: j.completed_at, "datetime", CMP),
        "endedAt": FieldDef(lambda j: j.completed_at, "datetime", CMP),
        "priority": FieldDef(lambda j: j.priority, "int", CMP),
        "progress": FieldDef(lambda j: j.progress, "int", CMP),
        "jobType": FieldDef(lambda j: j.job_type),
        "status": FieldDef(lambda j: j.status, ops=EQ),
        "title": FieldDef(title, ops=HAS),
        "subtitle": FieldDef(lambda j: j.target_name, ops=HAS),
        "args": FieldDef(lambda j: f"{j.target_kind} {j.target_id} {j.target_name}", ops=frozenset({"has"})),
        "notes": FieldDef(lambda j: j.notes, ops=frozenset({"has"})),
    }


def schedules(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "name": FieldDef(lambda s: s.name),
        "frequency": FieldDef(lambda s: s.frequency),
        "state": FieldDef(lambda s: s.state, ops=EQ),
        "type": FieldDef(lambda s: s.type),
        "priority": FieldDef(lambda s: s.priority, "int", CMP),
        "createdAt": FieldDef(lambda s: s.created_at, "datetime", CMP),
        "updatedAt": FieldDef(lambda s: s.updated_at, "datetime", CMP),
        "nextRunAt": FieldDef(lambda s: s.next_run_at, "datetime", CMP),
    }


def sites(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "name": FieldDef(lambda s: s.name),
        "contentUrl": FieldDef(lambda s: s.content_url),
    }
