"""Filterable and sortable fields per resource (semantics §1.5, from TSC 0.42 and tableau-mcp).

Each table maps the REST field name to a getter over the model item, its type and its operators.
Getters that need other items (owner name, project name) close over the site state.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
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
        "createdAt": FieldDef(attrgetter("created_at"), "datetime", CMP),
        "updatedAt": FieldDef(attrgetter("updated_at"), "datetime", CMP),
        "favoritesTotal": FieldDef(lambda w: 0, "int", CMP),
        "sheetCount": FieldDef(lambda w: len(w.view_ids), "int", CMP, volatile=True),
        "size": FieldDef(attrgetter("size"), "int", CMP),
        "subscriptionsTotal": FieldDef(lambda w: 0, "int", CMP),
        "contentUrl": FieldDef(attrgetter("content_url")),
        "name": FieldDef(attrgetter("name")),
        "projectName": FieldDef(_project_name(state, attrgetter("project_id"))),
        "projectId": FieldDef(attrgetter("project_id"), ops=EQ),
        "tags": FieldDef(attrgetter("tags"), "tags"),
        "displayTabs": FieldDef(attrgetter("show_tabs"), "bool", EQ),
        "hasAlerts": FieldDef(lambda w: False, "bool", EQ),
        "hasExtracts": FieldDef(attrgetter("has_extracts"), "bool", EQ),
        **_owned(state),
    }


def views(state: m.SiteState) -> dict[str, FieldDef]:
    def workbook_attr(attr: str) -> Callable[[m.View], Any]:
        return lambda v: (
            getattr(state.workbooks[v.workbook_id], attr) if v.workbook_id in state.workbooks else None
        )

    return {
        "createdAt": FieldDef(attrgetter("created_at"), "datetime", CMP),
        "updatedAt": FieldDef(attrgetter("updated_at"), "datetime", CMP),
        "favoritesTotal": FieldDef(lambda v: 0, "int", CMP),
        "hitsTotal": FieldDef(attrgetter("total_view_count"), "int", CMP),
        "sheetNumber": FieldDef(
            lambda v: (
                state.workbooks[v.workbook_id].view_ids.index(v.id) + 1
                if v.workbook_id in state.workbooks and v.id in state.workbooks[v.workbook_id].view_ids
                else None
            ),
            "int",
            CMP,
            volatile=True,
        ),
        "caption": FieldDef(attrgetter("name")),
        "contentUrl": FieldDef(attrgetter("content_url")),
        "name": FieldDef(attrgetter("name")),
        "title": FieldDef(attrgetter("name")),
        "sheetType": FieldDef(attrgetter("sheet_type")),
        "tags": FieldDef(attrgetter("tags"), "tags"),
        "viewUrlName": FieldDef(attrgetter("view_url_name")),
        "workbookName": FieldDef(workbook_attr("name")),
        "workbookDescription": FieldDef(workbook_attr("description")),
        "projectName": FieldDef(_project_name(state, workbook_attr("project_id"))),
        **_owned(state),
    }


def datasources(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "createdAt": FieldDef(attrgetter("created_at"), "datetime", CMP),
        "updatedAt": FieldDef(attrgetter("updated_at"), "datetime", CMP),
        "favoritesTotal": FieldDef(lambda d: 0, "int", CMP),
        "size": FieldDef(attrgetter("size"), "int", CMP),
        "contentUrl": FieldDef(attrgetter("content_url")),
        "description": FieldDef(attrgetter("description")),
        "name": FieldDef(attrgetter("name")),
        "projectName": FieldDef(_project_name(state, attrgetter("project_id"))),
        "projectId": FieldDef(attrgetter("project_id"), ops=EQ),
        "connectionType": FieldDef(attrgetter("type")),
        "type": FieldDef(attrgetter("type"), ops=EQ),
        "tags": FieldDef(attrgetter("tags"), "tags"),
        "hasExtracts": FieldDef(attrgetter("has_extracts"), "bool", EQ),
        "isCertified": FieldDef(attrgetter("is_certified"), "bool", EQ),
        "hasAlert": FieldDef(lambda d: False, "bool", EQ),
        "isPublished": FieldDef(lambda d: True, "bool", EQ),
        **_owned(state),
    }


def flows(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "createdAt": FieldDef(attrgetter("created_at"), "datetime", CMP),
        "updatedAt": FieldDef(attrgetter("updated_at"), "datetime", CMP),
        "name": FieldDef(attrgetter("name")),
        "projectName": FieldDef(_project_name(state, attrgetter("project_id"))),
        "projectId": FieldDef(attrgetter("project_id"), ops=EQ),
        "ownerName": FieldDef(_owner(state, "name"), ops=EQ),
        "tags": FieldDef(attrgetter("tags"), "tags"),
    }


def projects(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "createdAt": FieldDef(attrgetter("created_at"), "datetime", CMP),
        "updatedAt": FieldDef(attrgetter("updated_at"), "datetime", CMP),
        "name": FieldDef(attrgetter("name")),
        "parentProjectId": FieldDef(attrgetter("parent_id")),
        "topLevelProject": FieldDef(lambda p: p.parent_id is None, "bool", EQ),
        **_owned(state),
    }


def users(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "domainName": FieldDef(lambda u: DOMAIN),
        "email": FieldDef(attrgetter("email")),
        "friendlyName": FieldDef(attrgetter("full_name")),
        "fullName": FieldDef(attrgetter("full_name")),
        "luid": FieldDef(attrgetter("id")),
        "siteRole": FieldDef(attrgetter("site_role")),
        "name": FieldDef(attrgetter("name"), ops=NAME_OPS),
        "isLocal": FieldDef(lambda u: True, "bool", EQ),
        "lastLogin": FieldDef(attrgetter("last_login"), "datetime", CMP),
    }


def groups(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "domainName": FieldDef(attrgetter("domain_name")),
        "domainNickname": FieldDef(attrgetter("domain_name")),
        "luid": FieldDef(attrgetter("id")),
        "minimumSiteRole": FieldDef(attrgetter("minimum_site_role")),
        "name": FieldDef(attrgetter("name"), ops=NAME_OPS),
        "isLocal": FieldDef(lambda g: g.domain_name == "local", "bool", EQ),
        "isExternalUserEnabled": FieldDef(lambda g: False, "bool", EQ),
        "userCount": FieldDef(lambda g: len(g.member_ids), "int", CMP, volatile=True),
    }


def jobs(state: m.SiteState) -> dict[str, FieldDef]:
    def title(j: m.Job) -> str:
        return {"run_flow": "Run Flow", "increment_extracts": "Increment Extracts"}.get(
            j.job_type, "Refresh Extracts"
        )

    return {
        "createdAt": FieldDef(attrgetter("created_at"), "datetime", CMP),
        "startedAt": FieldDef(attrgetter("started_at"), "datetime", CMP),
        "completedAt": FieldDef(attrgetter("completed_at"), "datetime", CMP),
        "endedAt": FieldDef(attrgetter("completed_at"), "datetime", CMP),
        "priority": FieldDef(attrgetter("priority"), "int", CMP),
        "progress": FieldDef(attrgetter("progress"), "int", CMP),
        "jobType": FieldDef(attrgetter("job_type")),
        "status": FieldDef(attrgetter("status"), ops=EQ),
        "title": FieldDef(title, ops=HAS),
        "subtitle": FieldDef(attrgetter("target_name"), ops=HAS),
        "args": FieldDef(lambda j: f"{j.target_kind} {j.target_id} {j.target_name}", ops=frozenset({"has"})),
        "notes": FieldDef(attrgetter("notes"), ops=frozenset({"has"})),
    }


def schedules(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "name": FieldDef(attrgetter("name")),
        "frequency": FieldDef(attrgetter("frequency")),
        "state": FieldDef(attrgetter("state"), ops=EQ),
        "type": FieldDef(attrgetter("type")),
        "priority": FieldDef(attrgetter("priority"), "int", CMP),
        "createdAt": FieldDef(attrgetter("created_at"), "datetime", CMP),
        "updatedAt": FieldDef(attrgetter("updated_at"), "datetime", CMP),
        "nextRunAt": FieldDef(attrgetter("next_run_at"), "datetime", CMP),
    }


def sites(state: m.SiteState) -> dict[str, FieldDef]:
    return {
        "name": FieldDef(attrgetter("name")),
        "contentUrl": FieldDef(attrgetter("content_url")),
    }
