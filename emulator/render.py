"""XML fragments for each resource, shaped like a real server's answers (tsc-wire §2, XSD 3.29).

Defaults follow what Tableau sends without `fields`: workbooks and datasources carry
`<project id name/>` and `<owner id/>`, views carry bare `<workbook id/> <owner id/> <project id/>`.
`fields` expansions (`owner.name`, `project.name`, `workbook.name`, ...) and `_all_` add to that.
Child elements appear in the order the XSD sequences require.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from . import model as m
from .jsonout import json_attrs, tags_json
from .query import Fields
from .xmlout import attrs, dt, el, esc, fmt, text

DEFAULT_FIELDS = Fields()
USER_ATTRS = ("id", "name", "siteRole", "fullName", "email", "lastLogin", "authSetting", "locale")
PRODUCT_VERSION = "2024.2.0"
PRODUCT_BUILD = "20242.24.0613.0835"
_NAME = frozenset({"name"})
_NAME_EMAIL = frozenset({"name", "email"})


def _pick(pairs: list[tuple[str, object]], f: Fields) -> list[tuple[str, object]]:
    if not f.restrictive:
        return pairs
    return [(k, v) for k, v in pairs if k in f.top]


def _b(value: bool) -> str:
    return "true" if value else "false"


def _opt(name: str, value: object) -> str:
    """` name="value"`, or nothing for None (leading space included)."""
    return "" if value is None else f' {name}="{fmt(value)}"'


def tags_el(tags: Iterable[str]) -> str:
    if not tags:
        return "<tags/>"
    return "<tags>" + "".join(f'<tag label="{esc(t)}"/>' for t in sorted(tags)) + "</tags>"


# Rendered list items, kept under a key holding every value the item was rendered from: a change
# anywhere (a request, the job clock, a test reaching into the model) makes a new key, so an entry
# can never be stale, only unused. Most of a big page is unchanged between pages and requests, and
# building the key costs a fraction of rendering. JSON items are kept serialised (`orjson.Fragment`).
_RENDERED: dict[tuple, Any] = {}
_RENDERED_MAX = 60_000


def _remembered(key: tuple, build: Callable[[], Any]) -> Any:
    found = _RENDERED.get(key)
    if found is None:
        if len(_RENDERED) >= _RENDERED_MAX:
            _RENDERED.clear()
        found = _RENDERED[key] = build()
    return found


class Renderer:
    """Renders one site's items; `base_url` feeds the `webpageUrl` attributes."""

    def __init__(self, state: m.SiteState, base_url: str = "http://127.0.0.1") -> None:
        self.state = state
        self.base_url = base_url.rstrip("/")

    # -- people -------------------------------------------------------------------------------

    def user_pairs(self, user: m.User) -> list[tuple[str, object]]:
        return [
            ("id", user.id),
            ("name", user.name),
            ("siteRole", user.site_role),
            ("fullName", user.full_name),
            ("email", user.email or None),
            ("lastLogin", user.last_login),
            ("authSetting", user.auth_setting),
            ("locale", user.locale),
        ]

    def user(self, user: m.User, f: Fields = DEFAULT_FIELDS, tag: str = "user") -> str:
        if not f.restrictive:
            return (
                f'<{tag} id="{user.id}" name="{esc(user.name)}" siteRole="{user.site_role}" '
                f'fullName="{esc(user.full_name)}"{_opt("email", user.email or None)}'
                f'{_opt("lastLogin", user.last_login)} authSetting="{esc(user.auth_setting)}"'
                f'{_opt("locale", user.locale)}><domain name="local"/></{tag}>'
            )
        pairs = _pick(self.user_pairs(user), f)
        domain = "" if f.restrictive and "domainName" not in f.top else '<domain name="local"/>'
        return el(tag, pairs, domain)

    def owner_pairs(self, owner_id: str, wanted: set[str], everything: bool = False) -> list[tuple[str, object]]:
        """`id`, plus the attributes an `owner.x` expansion (or `_all_`) asked for."""
        user = self.state.users.get(owner_id)
        if user is None:
            return [("id", owner_id)]
        if not wanted and not everything:
            return [("id", user.id)]
        pairs: list[tuple[str, object]] = [("id", user.id)]
        if everything:
            wanted = set(USER_ATTRS)
        for key, value in self.user_pairs(user)[1:]:
            if key in wanted:
                pairs.append((key, value))
        return pairs

    def owner(self, owner_id: str, wanted: set[str], everything: bool = False) -> str:
        user = self.state.users.get(owner_id)
        if user is not None and not everything and wanted <= _NAME_EMAIL:
            # Fast path for list pages (what the access layer asks for), as an f-string.
            name = f' name="{esc(user.name)}"' if "name" in wanted else ""
            email = f' email="{esc(user.email)}"' if "email" in wanted and user.email else ""
            return f'<owner id="{user.id}"{name}{email}/>'
        return el("owner", self.owner_pairs(owner_id, wanted, everything))

    def group_pairs(self, group: m.Group) -> list[tuple[str, object]]:
        return [
            ("id", group.id),
            ("name", group.name),
            ("minimumSiteRole", group.minimum_site_role),
            ("userCount", len(group.member_ids)),
        ]

    def group(self, group: m.Group, f: Fields = DEFAULT_FIELDS) -> str:
        pairs = _pick(self.group_pairs(group), f)
        return el("group", pairs, f'<domain name="{esc(group.domain_name)}"/>')

    # -- containers ---------------------------------------------------------------------------

    def project_ref_pairs(
        self, project_id: str, wanted: set[str], everything: bool = False, name: bool = True
    ) -> list[tuple[str, object]]:
        project = self.state.projects.get(project_id)
        if project is None:
            return [("id", project_id)]
        pairs: list[tuple[str, object]] = [("id", project.id)]
        if name or everything or "name" in wanted:
            pairs.append(("name", project.name))
        if everything or "description" in wanted:
            pairs.append(("description", project.description))
        return pairs

    def project_ref(
        self, project_id: str, wanted: set[str], everything: bool = False, name: bool = True
    ) -> str:
        project = self.state.projects.get(project_id)
        if project is not None and not everything and wanted <= _NAME:
            if name or wanted:
                return f'<project id="{project.id}" name="{esc(project.name)}"/>'
            return f'<project id="{project.id}"/>'
        return el("project", self.project_ref_pairs(project_id, wanted, everything, name))

    def project_pairs(self, project: m.Project) -> list[tuple[str, object]]:
        return [
            ("id", project.id),
            ("name", project.name),
            ("description", project.description),
            ("contentPermissions", project.content_permissions),
            # Omitted for top-level projects: TSC's get_by_path tests `parent_id is None`.
            ("parentProjectId", project.parent_id),
            ("createdAt", project.created_at),
            ("updatedAt", project.updated_at),
            ("topLevelProject", project.parent_id is None),
            ("writeable", True),
        ]

    def project(self, project: m.Project, f: Fields = DEFAULT_FIELDS) -> str:
        pairs = _pick(self.project_pairs(project), f)
        owner_wanted = f.expansion("owner")
        child = ""
        if not f.restrictive or owner_wanted:
            child = self.owner(project.owner_id, owner_wanted, f.all)
        return el("project", pairs, child)

    # -- content ------------------------------------------------------------------------------

    def workbook_pairs(self, wb: m.Workbook) -> list[tuple[str, object]]:
        return [
            ("id", wb.id),
            ("name", wb.name),
            ("description", wb.description),
            ("contentUrl", wb.content_url),
            ("webpageUrl", f"{self.base_url}/#/site/{self.state.content_url}/workbooks/{wb.content_url}"),
            ("showTabs", wb.show_tabs),
            ("size", wb.size),
            ("createdAt", wb.created_at),
            ("updatedAt", wb.updated_at),
            ("encryptExtracts", "false"),
            ("defaultViewId", wb.view_ids[0] if wb.view_ids else None),
            ("sheetCount", len(wb.view_ids)),
            ("hasExtracts", wb.has_extracts),
        ]

    def _workbook_key(self, wb: m.Workbook, f: Fields, shape: str) -> tuple:
        """Every value a default-shaped workbook item is rendered from (see `_remembered`)."""
        project = self.state.projects.get(wb.project_id)
        owner = self.state.users.get(wb.owner_id)
        return (
            shape, self.base_url, self.state.content_url,
            f.all, frozenset(f.expansion("project")), frozenset(f.expansion("owner")),
            wb.id, wb.name, wb.description, wb.content_url, wb.show_tabs, wb.size, wb.created_at,
            wb.updated_at, wb.view_ids[0] if wb.view_ids else None, len(wb.view_ids), wb.has_extracts,
            tuple(sorted(wb.tags)), wb.project_id, wb.owner_id,
            (project.name, project.description) if project is not None else None,
            (owner.name, owner.site_role, owner.full_name, owner.email, owner.last_login, owner.auth_setting,
             owner.locale) if owner is not None else None,
        )

    def workbook(self, wb: m.Workbook, f: Fields = DEFAULT_FIELDS, with_views: bool = False) -> str:
        if not f.restrictive and not with_views:
            return _remembered(self._workbook_key(wb, f, "xml"), lambda: self._workbook_fast(wb, f, False))
        if not f.restrictive:
            return self._workbook_fast(wb, f, with_views)
        return self._workbook_generic(wb, f, with_views)

    def _workbook_fast(self, wb: m.Workbook, f: Fields, with_views: bool) -> str:
        # Fast path (1000-item pages): one f-string instead of the generic pair list.
        head = (
            f'<workbook id="{wb.id}" name="{esc(wb.name)}" description="{esc(wb.description)}" '
            f'contentUrl="{esc(wb.content_url)}" webpageUrl="{self.base_url}/#/site/'
            f'{esc(self.state.content_url)}/workbooks/{esc(wb.content_url)}" '
            f'showTabs="{_b(wb.show_tabs)}" '
            f'size="{wb.size}" createdAt="{dt(wb.created_at)}" updatedAt="{dt(wb.updated_at)}" '
            f'encryptExtracts="false"{_opt("defaultViewId", wb.view_ids[0] if wb.view_ids else None)} '
            f'sheetCount="{len(wb.view_ids)}" hasExtracts="{_b(wb.has_extracts)}">'
        )
        views = ""
        if with_views:
            views = (
                "<views>"
                + "".join(
                    self.view_ref(self.state.views[v]) for v in wb.view_ids if v in self.state.views
                )
                + "</views>"
            )
        return (
            head
            + self.project_ref(wb.project_id, f.expansion("project"), f.all)
            + self.owner(wb.owner_id, f.expansion("owner"), f.all)
            + tags_el(wb.tags)
            + views
            + "</workbook>"
        )

    def _workbook_generic(self, wb: m.Workbook, f: Fields, with_views: bool) -> str:
        pairs = _pick(self.workbook_pairs(wb), f)
        parts = []
        project_wanted, owner_wanted = f.expansion("project"), f.expansion("owner")
        if not f.restrictive or project_wanted:
            parts.append(self.project_ref(wb.project_id, project_wanted, f.all, name=not f.restrictive))
        if not f.restrictive or owner_wanted:
            parts.append(self.owner(wb.owner_id, owner_wanted, f.all))
        if not f.restrictive or "tags" in f.top:
            parts.append(tags_el(wb.tags))
        if with_views:
            parts.append(
                "<views>"
                + "".join(self.view_ref(self.state.views[v]) for v in wb.view_ids if v in self.state.views)
                + "</views>"
            )
        return el("workbook", pairs, "".join(parts))

    def view_ref(self, view: m.View) -> str:
        return el("view", [("id", view.id), ("name", view.name), ("contentUrl", view.content_url)])

    def view_pairs(self, view: m.View) -> list[tuple[str, object]]:
        return [
            ("id", view.id),
            ("name", view.name),
            ("contentUrl", view.content_url),
            ("createdAt", view.created_at),
            ("updatedAt", view.updated_at),
            ("sheetType", view.sheet_type),
            ("viewUrlName", view.view_url_name or None),
        ]

    @staticmethod
    def _view_workbook_pairs(view: m.View, wb: m.Workbook | None, wanted: set[str]) -> list[tuple[str, object]]:
        pairs: list[tuple[str, object]] = [("id", view.workbook_id)]
        if wb is not None:
            for key, value in (("name", wb.name), ("contentUrl", wb.content_url), ("description", wb.description)):
                if key in wanted:
                    pairs.append((key, value))
        return pairs

    def view(self, view: m.View, f: Fields = DEFAULT_FIELDS, usage: bool = False, nested: bool = True) -> str:
        if f.restrictive:
            pairs = _pick(self.view_pairs(view), f)
            head = el("view", pairs)[:-2] + ">"
        else:
            head = (
                f'<view id="{view.id}" name="{esc(view.name)}" contentUrl="{esc(view.content_url)}" '
                f'createdAt="{dt(view.created_at)}" updatedAt="{dt(view.updated_at)}" '
                f'sheetType="{esc(view.sheet_type)}"{_opt("viewUrlName", view.view_url_name or None)}>'
            )
        parts = []
        if nested:
            wb = self.state.workbooks.get(view.workbook_id)
            wb_wanted = f.expansion("workbook")
            if not f.restrictive or wb_wanted:
                if f.all and wb is not None:
                    parts.append(self.workbook(wb))
                else:
                    parts.append(el("workbook", self._view_workbook_pairs(view, wb, wb_wanted)))
            owner_wanted = f.expansion("owner")
            if not f.restrictive or owner_wanted:
                parts.append(self.owner(view.owner_id, owner_wanted, f.all))
            project_wanted = f.expansion("project")
            if (not f.restrictive or project_wanted) and wb is not None:
                parts.append(self.project_ref(wb.project_id, project_wanted, f.all, name=False))
            if not f.restrictive or "tags" in f.top:
                parts.append(tags_el(view.tags))
        if usage or f.all or "usage" in f.expansions:
            parts.append(f'<usage totalViewCount="{view.total_view_count}"/>')
        return head + "".join(parts) + "</view>"

    def datasource_pairs(self, ds: m.Datasource) -> list[tuple[str, object]]:
        return [
            ("id", ds.id),
            ("name", ds.name),
            ("description", ds.description),
            ("contentUrl", ds.content_url),
            ("type", ds.type),
            ("size", ds.size),
            ("createdAt", ds.created_at),
            ("updatedAt", ds.updated_at),
            ("encryptExtracts", str(ds.encrypt_extracts).lower()),
            ("hasExtracts", ds.has_extracts),
            ("isCertified", ds.is_certified),
            ("certificationNote", ds.certification_note or None),
            ("useRemoteQueryAgent", False),
            (
                "webpageUrl",
                f"{self.base_url}/#/site/{self.state.content_url}/datasources/{ds.content_url}",
            ),
        ]

    def datasource(self, ds: m.Datasource, f: Fields = DEFAULT_FIELDS) -> str:
        pairs = _pick(self.datasource_pairs(ds), f)
        parts = []
        project_wanted, owner_wanted = f.expansion("project"), f.expansion("owner")
        if not f.restrictive or project_wanted:
            parts.append(self.project_ref(ds.project_id, project_wanted, f.all, name=not f.restrictive))
        if not f.restrictive or owner_wanted:
            parts.append(self.owner(ds.owner_id, owner_wanted, f.all))
        if not f.restrictive or "tags" in f.top:
            parts.append(tags_el(ds.tags))
        return el("datasource", pairs, "".join(parts))

    def flow_pairs(self, flow: m.Flow) -> list[tuple[str, object]]:
        return [
            ("id", flow.id),
            ("name", flow.name),
            ("description", flow.description),
            ("createdAt", flow.created_at),
            ("updatedAt", flow.updated_at),
            ("fileType", "tflx"),
            ("webpageUrl", f"{self.base_url}/#/site/{self.state.content_url}/flows/{flow.id}"),
        ]

    def flow(self, flow: m.Flow, f: Fields = DEFAULT_FIELDS) -> str:
        pairs = _pick(self.flow_pairs(flow), f)
        parts = []
        project_wanted, owner_wanted = f.expansion("project"), f.expansion("owner")
        if not f.restrictive or project_wanted:
            parts.append(self.project_ref(flow.project_id, project_wanted, f.all, name=not f.restrictive))
        if not f.restrictive or owner_wanted:
            parts.append(self.owner(flow.owner_id, owner_wanted, f.all))
        if not f.restrictive or "tags" in f.top:
            parts.append(tags_el(flow.tags))
        return el("flow", pairs, "".join(parts))

    def connection(self, conn: m.Connection) -> str:
        child = ""
        if conn.datasource_id:
            ds = self.state.datasources.get(conn.datasource_id)
            child = el("datasource", [("id", conn.datasource_id), ("name", ds.name if ds else None)])
        pairs = [
            ("id", conn.id),
            ("type", conn.type),
            ("serverAddress", conn.server_address),
            ("serverPort", conn.server_port or None),
            ("userName", conn.username),
            ("embedPassword", conn.embed_password),
        ]
        return el("connection", pairs, child)

    # -- site, schedules, tasks, jobs ---------------------------------------------------------

    def site(self) -> str:
        s = self.state
        return el(
            "site",
            [
                ("id", s.id),
                ("name", s.name),
                ("contentUrl", s.content_url),
                ("adminMode", "ContentAndUsers"),
                ("state", "Active"),
                ("runNowEnabled", s.run_now_enabled),
                ("revisionHistoryEnabled", True),
            ],
        )

    def schedule(self, sched: m.Schedule) -> str:
        pairs = [
            ("id", sched.id),
            ("name", sched.name),
            ("state", sched.state),
            ("priority", sched.priority),
            ("createdAt", sched.created_at),
            ("updatedAt", sched.updated_at),
            ("type", sched.type),
            ("frequency", sched.frequency),
            ("nextRunAt", sched.next_run_at),
            ("executionOrder", sched.execution_order),
        ]
        return el("schedule", pairs, self.frequency_details(sched))

    @staticmethod
    def frequency_details(sched: m.Schedule) -> str:
        intervals: list[str] = []
        if sched.frequency == "Hourly":
            intervals.append(el("interval", [("hours", sched.interval_hours or 1)]))
        elif sched.frequency == "Weekly":
            intervals.extend(el("interval", [("weekDay", day)]) for day in sched.week_days or ["Monday"])
        elif sched.frequency == "Monthly":
            intervals.append(el("interval", [("monthDay", 1)]))
        end = sched.end_time
        if sched.frequency == "Hourly" and end is None:
            end = "23:00:00"  # TSC's HourlyInterval wants both ends of the window
        return (
            f"<frequencyDetails{attrs([('start', sched.start_time), ('end', end)])}>"
            f"<intervals>{''.join(intervals)}</intervals></frequencyDetails>"
        )

    def task(self, task: m.ExtractRefreshTask) -> str:
        sched = self.state.schedules.get(task.schedule_id)
        target = el(task.target_kind, [("id", task.target_id)])
        inner = (self.schedule(sched) if sched is not None else "") + target
        pairs = [
            ("id", task.id),
            ("priority", task.priority),
            ("consecutiveFailedCount", task.consecutive_failed_count),
            ("type", task.refresh_type),
        ]
        return "<task>" + el("extractRefresh", pairs, inner) + "</task>"

    def job(self, job: m.Job) -> str:
        done = job.completed_at is not None
        pairs = [
            ("id", job.id),
            ("mode", "Asynchronous"),
            ("type", "RunFlow" if job.job_type == "run_flow" else "RefreshExtract"),
            ("progress", job.progress),
            ("createdAt", job.created_at),
            ("startedAt", job.started_at),
            # completedAt and finishCode appear only once the job is done: TSC's wait_for_job keys on them.
            ("completedAt", job.completed_at if done else None),
            ("finishCode", job.finish_code if done else None),
            ("updatedAt", job.completed_at or job.started_at or job.created_at),
        ]
        notes = f"<notes>{text(job.notes)}</notes>"
        target = el(
            job.target_kind if job.target_kind in ("workbook", "datasource", "flow") else "workbook",
            [("id", job.target_id), ("name", job.target_name)],
        )
        if job.job_type == "run_flow":
            body = f"<runFlowJobType>{notes}{target}</runFlowJobType>"
        else:
            body = f"<extractRefreshJob>{notes}{target}</extractRefreshJob>"
        return el("job", pairs, body)

    def background_job_pairs(self, job: m.Job) -> list[tuple[str, object]]:
        title = {"run_flow": "Run Flow", "increment_extracts": "Increment Extracts"}.get(
            job.job_type, "Refresh Extracts"
        )
        return [
            ("id", job.id),
            ("status", job.status),
            ("createdAt", job.created_at),
            ("startedAt", job.started_at),
            ("endedAt", job.completed_at),
            ("priority", job.priority),
            ("jobType", job.job_type),
            ("title", title),
            ("subtitle", job.target_name),
        ]

    def background_job(self, job: m.Job, f: Fields = DEFAULT_FIELDS) -> str:
        pairs = _pick(self.background_job_pairs(job), f)
        return el("backgroundJob", pairs)

    # -- JSON list items ---------------------------------------------------------------------------
    # The default shapes (plus `owner.x` / `project.x` / `workbook.x` expansions) rendered straight to
    # Tableau's JSON: no escaping and no XML to map, from the same attribute pairs as the XML above.
    # Pages with restrictive `fields` or `_all_` are mapped from their XML (`json_for`).

    @staticmethod
    def json_for(
        f: Fields, render_json: Callable[..., dict], flat: bool = False, **options: object
    ) -> Callable[[object], dict] | None:
        """`Call.page`'s JSON renderer for these fields: None (map the XML) for restrictive fields or,
        unless the item is `flat` (users, groups, jobs: `_all_` renders them as the default), `_all_`."""
        if f.restrictive or (f.all and not flat):
            return None
        return lambda item: render_json(item, f, **options)

    def _owner_json(self, owner_id: str, wanted: set[str]) -> dict:
        user = self.state.users.get(owner_id)
        if user is None or not wanted:
            return {"id": owner_id}
        if wanted <= _NAME_EMAIL:  # what the access layer asks for: skip the generic pair walk
            found = {"id": user.id}
            if "name" in wanted:
                found["name"] = user.name
            if "email" in wanted and user.email:
                found["email"] = user.email
            return found
        return json_attrs(self.owner_pairs(owner_id, wanted))

    def _project_ref_json(self, project_id: str, wanted: set[str], name: bool) -> dict:
        project = self.state.projects.get(project_id)
        if project is not None and wanted <= _NAME:
            return {"id": project.id, "name": project.name} if name or wanted else {"id": project.id}
        return json_attrs(self.project_ref_pairs(project_id, wanted, name=name))

    def _owned_json(self, item: object, found: dict, project_id: str | None, f: Fields,
                    project_name: bool = True) -> dict:
        if project_id is not None:
            found["project"] = self._project_ref_json(project_id, f.expansion("project"), project_name)
        found["owner"] = self._owner_json(item.owner_id, f.expansion("owner"))  # type: ignore[attr-defined]
        found["tags"] = tags_json(item.tags)  # type: ignore[attr-defined]
        return found

    def workbook_json(self, wb: m.Workbook, f: Fields = DEFAULT_FIELDS) -> orjson.Fragment:
        # Remembered already serialised: a page of them is dumped without walking 1000 dicts again.
        return _remembered(
            self._workbook_key(wb, f, "json"), lambda: orjson.Fragment(orjson.dumps(self._workbook_json(wb, f)))
        )

    def _workbook_json(self, wb: m.Workbook, f: Fields) -> dict:
        # Fast path, like the XML one: a dict literal instead of the pair list (1000-item pages).
        found = {
            "id": wb.id,
            "name": wb.name,
            "description": wb.description,
            "contentUrl": wb.content_url,
            "webpageUrl": f"{self.base_url}/#/site/{self.state.content_url}/workbooks/{wb.content_url}",
            "showTabs": _b(wb.show_tabs),
            "size": str(wb.size),
            "createdAt": dt(wb.created_at),
            "updatedAt": dt(wb.updated_at),
            "encryptExtracts": "false",
            "sheetCount": str(len(wb.view_ids)),
            "hasExtracts": _b(wb.has_extracts),
        }
        if wb.view_ids:
            found["defaultViewId"] = wb.view_ids[0]
        return self._owned_json(wb, found, wb.project_id, f)

    def datasource_json(self, ds: m.Datasource, f: Fields = DEFAULT_FIELDS) -> dict:
        return self._owned_json(ds, json_attrs(self.datasource_pairs(ds)), ds.project_id, f)

    def flow_json(self, flow: m.Flow, f: Fields = DEFAULT_FIELDS) -> dict:
        return self._owned_json(flow, json_attrs(self.flow_pairs(flow)), flow.project_id, f)

    def view_json(self, view: m.View, f: Fields = DEFAULT_FIELDS, usage: bool = False) -> dict:
        wb = self.state.workbooks.get(view.workbook_id)
        found = self._owned_json(
            view, json_attrs(self.view_pairs(view)), wb.project_id if wb else None, f, project_name=False
        )
        found["workbook"] = json_attrs(self._view_workbook_pairs(view, wb, f.expansion("workbook")))
        if usage or "usage" in f.expansions:
            found["usage"] = {"totalViewCount": str(view.total_view_count)}
        return found

    def project_json(self, project: m.Project, f: Fields = DEFAULT_FIELDS) -> dict:
        found = json_attrs(self.project_pairs(project))
        found["owner"] = self._owner_json(project.owner_id, f.expansion("owner"))
        return found

    def user_json(self, user: m.User, f: Fields = DEFAULT_FIELDS) -> dict:
        # Fast path, like the XML one (users come in pages of 1000 with `_all_`).
        found = {
            "id": user.id,
            "name": user.name,
            "siteRole": user.site_role,
            "fullName": user.full_name,
            "authSetting": str(user.auth_setting),
            "domain": {"name": "local"},
        }
        if user.email:
            found["email"] = user.email
        if user.last_login is not None:
            found["lastLogin"] = dt(user.last_login)
        if user.locale is not None:
            found["locale"] = user.locale
        return found

    def group_json(self, group: m.Group, f: Fields = DEFAULT_FIELDS) -> dict:
        found = json_attrs(self.group_pairs(group))
        found["domain"] = {"name": group.domain_name}
        return found

    def background_job_json(self, job: m.Job, f: Fields = DEFAULT_FIELDS) -> dict:
        return json_attrs(self.background_job_pairs(job))

    # -- permissions --------------------------------------------------------------------------

    def permissions(self, rules: m.Rules, parent: str = "") -> str:
        """`<permissions>` with an optional parent element, then one block per grantee.

        The grantee must be the last element with an `id` in each block (TSC pops it).
        """
        blocks = []
        for (kind, grantee_id), caps in rules.items():
            if not caps:
                continue
            cap_xml = "".join(
                f'<capability name="{esc(name)}" mode="{esc(mode)}"/>' for name, mode in sorted(caps.items())
            )
            blocks.append(
                f'<granteeCapabilities><{kind} id="{esc(grantee_id)}"/>'
                f"<capabilities>{cap_xml}</capabilities></granteeCapabilities>"
            )
        return "<permissions>" + parent + "".join(blocks) + "</permissions>"
