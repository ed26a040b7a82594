"""XML fragments for each resource, shaped like a real server's answers (tsc-wire §2, XSD 3.29).

Defaults follow what Tableau sends without `fields`: workbooks and datasources carry
`<project id name/>` and `<owner id/>`, views carry bare `<workbook id/> <owner id/> <project id/>`.
`fields` expansions (`owner.name`, `project.name`, `workbook.name`, ...) and `_all_` add to that.
Child elements appear in the order the XSD sequences require.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter as _get
from typing import Any

from . import model as m
from .jsonout import json_attrs, tags_json
from .query import Fields
from .shapes import BOOL, DATETIME, INT, Attr, Child, Shape, pairs
from .xmlout import attrs, dt, el, esc, fmt, text

DEFAULT_FIELDS = Fields()
USER_ATTRS = ("id", "name", "siteRole", "fullName", "email", "lastLogin", "authSetting", "locale")
PRODUCT_VERSION = "2024.2.0"
PRODUCT_BUILD = "20242.24.0613.0835"
_ID = frozenset({"id"})
_ID_NAME = frozenset({"id", "name"})
_ID_NAME_EMAIL = frozenset({"id", "name", "email"})
# Kinds whose `_all_` renders as their default shape (no child references to expand).
_FLAT = frozenset({"user", "group", "background_job"})
_TAGS = {"background_job": "backgroundJob"}
_JOB_TITLES = {"run_flow": "Run Flow", "increment_extracts": "Increment Extracts"}


def _b(value: bool) -> str:
    return "true" if value else "false"


def _opt(name: str, value: object) -> str:
    """` name="value"`, or nothing for None (leading space included)."""
    return "" if value is None else f' {name}="{fmt(value)}"'


def _ref_xml(tag: str, item_id: str | None) -> str:
    return "" if item_id is None else f'<{tag} id="{esc(item_id)}"/>'


def _ref_json(item_id: str | None) -> dict | None:
    return None if item_id is None else {"id": item_id}


def tags_el(tags: Iterable[str]) -> str:
    if not tags:
        return "<tags/>"
    return "<tags>" + "".join(f'<tag label="{esc(t)}"/>' for t in sorted(tags)) + "</tags>"


@dataclass(frozen=True)
class Rows:
    """How a list page renders its items: `xml` gives the elements, concatenated; `json` the array of
    objects (a list, or already serialised), or None to map the XML (`jsonout`)."""

    xml: Callable[[list[Any]], str]
    json: Callable[[list[Any]], Any] | None = None

    @classmethod
    def each(cls, xml_one: Callable[[Any], str], json_one: Callable[[Any], Any] | None = None) -> Rows:
        """Rows from renderers of one item."""
        as_json = None if json_one is None else (lambda items: [json_one(item) for item in items])
        return cls(lambda items: "".join(map(xml_one, items)), as_json)


class Renderer:
    """Renders one site's items; `base_url` feeds the `webpageUrl` attributes."""

    def __init__(self, state: m.SiteState, base_url: str = "http://127.0.0.1") -> None:
        self.state = state
        self.base_url = base_url.rstrip("/")

    def _webpage(self, kind: str, key: str) -> str:
        return f"{self.base_url}/#/site/{self.state.content_url}/{kind}/{key}"

    @cached_property
    def attributes(self) -> dict[str, tuple[Attr, ...]]:
        """Each kind's attributes in the order its XSD type gives: what list pages (`shape`) and the pair
        renderers read (a single workbook or user item is an f-string of the same attributes)."""
        named = (Attr("id", "id"), Attr("name", "name"))
        described = (*named, Attr("description", "description"))
        content_url = Attr("contentUrl", "content_url")
        created_updated = (Attr("createdAt", "created_at", DATETIME), Attr("updatedAt", "updated_at", DATETIME))
        return {
            "user": (
                *named,
                Attr("siteRole", "site_role"),
                Attr("fullName", "full_name"),
                Attr("email", "email", blank_is_none=True),
                Attr("lastLogin", "last_login", DATETIME),
                Attr("authSetting", "auth_setting"),
                Attr("locale", "locale"),
            ),
            "group": (
                *named,
                Attr("minimumSiteRole", "minimum_site_role"),
                Attr("userCount", lambda g: len(g.member_ids), INT),
            ),
            "project": (
                *described,
                Attr("contentPermissions", "content_permissions"),
                # Omitted for top-level projects: TSC's get_by_path tests `parent_id is None`.
                Attr("parentProjectId", "parent_id"),
                *created_updated,
                Attr("topLevelProject", lambda p: p.parent_id is None, BOOL, plain_getter=True),
                Attr("writeable", lambda p: True, BOOL, plain_getter=True),
            ),
            "workbook": (
                *described,
                content_url,
                Attr("webpageUrl", lambda wb: self._webpage("workbooks", wb.content_url)),
                Attr("showTabs", "show_tabs", BOOL),
                Attr("size", "size", INT),
                *created_updated,
                Attr("encryptExtracts", lambda wb: "false"),
                Attr("defaultViewId", lambda wb: wb.view_ids[0] if wb.view_ids else None),
                Attr("sheetCount", lambda wb: len(wb.view_ids), INT),
                Attr("hasExtracts", "has_extracts", BOOL),
            ),
            "view": (
                *named,
                content_url,
                *created_updated,
                Attr("sheetType", "sheet_type"),
                Attr("viewUrlName", lambda v: v.view_url_name or None),
            ),
            "datasource": (
                *described,
                content_url,
                Attr("type", "type"),
                Attr("size", "size", INT),
                *created_updated,
                Attr("encryptExtracts", "encrypt_extracts", BOOL),
                Attr("hasExtracts", "has_extracts", BOOL),
                Attr("isCertified", "is_certified", BOOL),
                Attr("certificationNote", lambda ds: ds.certification_note or None),
                Attr("useRemoteQueryAgent", lambda ds: False, BOOL),
                Attr("webpageUrl", lambda ds: self._webpage("datasources", ds.content_url)),
            ),
            "flow": (
                *described,
                *created_updated,
                Attr("fileType", lambda flow: "tflx"),
                Attr("webpageUrl", lambda flow: self._webpage("flows", flow.id)),
            ),
            "background_job": (
                Attr("id", "id"),
                Attr("status", "status"),
                Attr("createdAt", "created_at", DATETIME),
                Attr("startedAt", "started_at", DATETIME),
                Attr("endedAt", "completed_at", DATETIME),
                Attr("priority", "priority", INT),
                Attr("jobType", "job_type"),
                Attr("title", lambda job: _JOB_TITLES.get(job.job_type, "Refresh Extracts")),
                Attr("subtitle", "target_name"),
            ),
        }

    # -- list pages -----------------------------------------------------------------------------

    def list_rows(self, kind: str, f: Fields, **options: Any) -> Rows:
        """How a page of `kind` items (`workbook`, `user`, ...) renders for these fields (`Call.page_rows`).

        Every shape but `_all_` on kinds with child references to expand is a `Shape`, rendered
        column by column in both formats; those `_all_` pages render item by item and JSON maps the XML.
        """
        if f.all and kind not in _FLAT:
            render_xml = getattr(self, kind)
            return Rows.each(lambda item: render_xml(item, f, **options))
        shape = self.shape(kind, f, **options)
        return Rows(shape.xml, shape.json)

    def shape(self, kind: str, f: Fields, usage: bool = False) -> Shape:
        """The `Shape` of a `kind` item for these fields: with restrictive fields only the attributes
        and children named, otherwise every attribute and the default children, plus expansions."""
        attrs = self.attributes[kind]
        if f.restrictive:
            attrs = tuple(a for a in attrs if a.name in f.top)
        return Shape(_TAGS.get(kind, kind), attrs, self._children(kind, f, usage))

    def _children(self, kind: str, f: Fields, usage: bool) -> list[Child]:
        if kind in ("workbook", "datasource", "flow"):
            return self._owned_children(f, "project_id", project_name=not f.restrictive)
        if kind == "view":
            return self._view_children(f, usage)
        if kind == "project" and (f.expansion("owner") or not f.restrictive):
            return [self._owner_child(f.expansion("owner"))]
        if kind == "user" and ("domainName" in f.top or not f.restrictive):
            return [Child("domain", fixed=('<domain name="local"/>', '{"name":"local"}'))]
        if kind == "group":
            return [
                Child("domain", lambda g: f'<domain name="{esc(g.domain_name)}"/>', lambda g: {"name": g.domain_name})
            ]
        return []

    def _owned_children(
        self, f: Fields, project_of: str | Callable[[Any], str | None], project_name: bool, owner_first: bool = False
    ) -> list[Child]:
        """`<project/><owner/><tags/>` (views: owner first, as their XSD type says): all three by
        default, only those named for restrictive fields."""
        project = owner = tags = None
        if f.expansion("project") or not f.restrictive:
            project = self._project_child(f.expansion("project"), project_of, project_name)
        if f.expansion("owner") or not f.restrictive:
            owner = self._owner_child(f.expansion("owner"))
        if "tags" in f.top or not f.restrictive:
            tags = Child("tags", lambda item: tags_el(item.tags), lambda item: tags_json(item.tags))
        ordered = (owner, project, tags) if owner_first else (project, owner, tags)
        return [child for child in ordered if child is not None]

    def _view_children(self, f: Fields, usage: bool) -> list[Child]:
        children = []
        wanted = f.expansion("workbook")
        if wanted <= _ID and (wanted or not f.restrictive):
            children.append(Child("workbook", ref="workbook_id"))
        elif wanted:
            def workbook_pairs(view: m.View) -> list[tuple[str, object]]:
                return self._view_workbook_pairs(view, self.state.workbooks.get(view.workbook_id), wanted)

            children.append(
                Child("workbook", lambda v: el("workbook", workbook_pairs(v)), lambda v: json_attrs(workbook_pairs(v)))
            )

        def project_of(view: m.View) -> str | None:
            wb = self.state.workbooks.get(view.workbook_id)
            return wb.project_id if wb is not None else None

        children += self._owned_children(f, project_of, project_name=False, owner_first=True)
        if usage or "usage" in f.expansions:
            children.append(
                Child(
                    "usage",
                    lambda v: f'<usage totalViewCount="{v.total_view_count}"/>',
                    lambda v: {"totalViewCount": str(v.total_view_count)},
                )
            )
        return children

    def _project_child(self, wanted: set[str], project_of: str | Callable[[Any], str | None], name: bool) -> Child:
        """`project_of`: the field holding the item's project id, or a getter of it."""
        if wanted <= _ID and not name:
            return Child("project", ref=project_of)
        if isinstance(project_of, str):
            project_of = _get(project_of)

        def as_xml(item: Any) -> str:
            project_id = project_of(item)
            return "" if project_id is None else self.project_ref(project_id, wanted, name=name)

        def as_json(item: Any) -> dict | None:
            project_id = project_of(item)
            return None if project_id is None else self._project_ref_json(project_id, wanted, name=name)

        return Child("project", as_xml, as_json)

    def _owner_child(self, wanted: set[str]) -> Child:
        if wanted <= _ID:  # the owner's id is the item's own `owner_id`: no user to look up
            return Child("owner", ref="owner_id")
        # The owner's id, name and email are plain fields of the user, so a page showing only them can be kept.
        key = ("owner", frozenset(wanted)) if wanted <= _ID_NAME_EMAIL else None
        return Child(
            "owner", lambda item: self.owner(item.owner_id, wanted), lambda item: self._owner_json(item.owner_id, wanted),
            key=key,
        )

    # -- people -------------------------------------------------------------------------------

    def user_pairs(self, user: m.User) -> list[tuple[str, object]]:
        return pairs(user, self.attributes["user"])

    def user(self, user: m.User, f: Fields = DEFAULT_FIELDS) -> str:
        if not f.restrictive:
            return (
                f'<user id="{user.id}" name="{esc(user.name)}" siteRole="{user.site_role}" '
                f'fullName="{esc(user.full_name)}"{_opt("email", user.email or None)}'
                f'{_opt("lastLogin", user.last_login)} authSetting="{esc(user.auth_setting)}"'
                f'{_opt("locale", user.locale)}><domain name="local"/></user>'
            )
        return self.shape("user", f).xml([user])

    def owner_pairs(self, owner_id: str, wanted: set[str], everything: bool = False) -> list[tuple[str, object]]:
        """`id`, plus the attributes an `owner.x` expansion (or `_all_`) asked for."""
        user = self.state.users.get(owner_id)
        if user is None:
            return [("id", owner_id)]
        if not wanted and not everything:
            return [("id", user.id)]
        found: list[tuple[str, object]] = [("id", user.id)]
        if everything:
            wanted = set(USER_ATTRS)
        for key, value in self.user_pairs(user)[1:]:
            if key in wanted:
                found.append((key, value))
        return found

    def owner(self, owner_id: str, wanted: set[str], everything: bool = False) -> str:
        user = self.state.users.get(owner_id)
        if user is not None and not everything and wanted <= _ID_NAME_EMAIL:
            # Fast path for list pages (what the access layer asks for), as an f-string.
            name = f' name="{esc(user.name)}"' if "name" in wanted else ""
            email = f' email="{esc(user.email)}"' if "email" in wanted and user.email else ""
            return f'<owner id="{user.id}"{name}{email}/>'
        return el("owner", self.owner_pairs(owner_id, wanted, everything))

    def group_pairs(self, group: m.Group) -> list[tuple[str, object]]:
        return pairs(group, self.attributes["group"])

    def group(self, group: m.Group, f: Fields = DEFAULT_FIELDS) -> str:
        if f.restrictive:
            return self.shape("group", f).xml([group])
        return el("group", self.group_pairs(group), f'<domain name="{esc(group.domain_name)}"/>')

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
        if project is not None and not everything and wanted <= _ID_NAME:
            if name or "name" in wanted:
                return f'<project id="{project.id}" name="{esc(project.name)}"/>'
            return f'<project id="{project.id}"/>'
        return el("project", self.project_ref_pairs(project_id, wanted, everything, name))

    def project_pairs(self, project: m.Project) -> list[tuple[str, object]]:
        return pairs(project, self.attributes["project"])

    def project(self, project: m.Project, f: Fields = DEFAULT_FIELDS) -> str:
        if f.restrictive:
            return self.shape("project", f).xml([project])
        return el("project", self.project_pairs(project), self.owner(project.owner_id, f.expansion("owner"), f.all))

    # -- content ------------------------------------------------------------------------------

    def workbook_pairs(self, wb: m.Workbook) -> list[tuple[str, object]]:
        return pairs(wb, self.attributes["workbook"])

    def workbook(self, wb: m.Workbook, f: Fields = DEFAULT_FIELDS, with_views: bool = False) -> str:
        if f.restrictive:
            return self.shape("workbook", f).xml([wb])
        return self._workbook_fast(wb, f, with_views)

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
        return head + self._content_refs(wb, wb.project_id, f) + views + "</workbook>"

    def view_ref(self, view: m.View) -> str:
        return el("view", [("id", view.id), ("name", view.name), ("contentUrl", view.content_url)])

    def view_pairs(self, view: m.View) -> list[tuple[str, object]]:
        return pairs(view, self.attributes["view"])

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
            return self.shape("view", f, usage).xml([view])
        head = (
            f'<view id="{view.id}" name="{esc(view.name)}" contentUrl="{esc(view.content_url)}" '
            f'createdAt="{dt(view.created_at)}" updatedAt="{dt(view.updated_at)}" '
            f'sheetType="{esc(view.sheet_type)}"{_opt("viewUrlName", view.view_url_name or None)}>'
        )
        parts = []
        if nested:
            wb = self.state.workbooks.get(view.workbook_id)
            if f.all and wb is not None:
                parts.append(self.workbook(wb))
            else:
                parts.append(el("workbook", self._view_workbook_pairs(view, wb, f.expansion("workbook"))))
            parts.append(self.owner(view.owner_id, f.expansion("owner"), f.all))
            if wb is not None:
                parts.append(self.project_ref(wb.project_id, f.expansion("project"), f.all, name=False))
            parts.append(tags_el(view.tags))
        if usage or f.all or "usage" in f.expansions:
            parts.append(f'<usage totalViewCount="{view.total_view_count}"/>')
        return head + "".join(parts) + "</view>"

    def datasource_pairs(self, ds: m.Datasource) -> list[tuple[str, object]]:
        return pairs(ds, self.attributes["datasource"])

    def datasource(self, ds: m.Datasource, f: Fields = DEFAULT_FIELDS) -> str:
        if f.restrictive:
            return self.shape("datasource", f).xml([ds])
        return el("datasource", self.datasource_pairs(ds), self._content_refs(ds, ds.project_id, f))

    def flow_pairs(self, flow: m.Flow) -> list[tuple[str, object]]:
        return pairs(flow, self.attributes["flow"])

    def flow(self, flow: m.Flow, f: Fields = DEFAULT_FIELDS) -> str:
        if f.restrictive:
            return self.shape("flow", f).xml([flow])
        return el("flow", self.flow_pairs(flow), self._content_refs(flow, flow.project_id, f))

    def _content_refs(self, item: m.Workbook | m.Datasource | m.Flow, project_id: str, f: Fields) -> str:
        """The default `<project id name/><owner id/><tags/>` of an owned item, plus the expansions asked for."""
        return (
            self.project_ref(project_id, f.expansion("project"), f.all)
            + self.owner(item.owner_id, f.expansion("owner"), f.all)
            + tags_el(item.tags)
        )

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
        return pairs(job, self.attributes["background_job"])

    def background_job(self, job: m.Job, f: Fields = DEFAULT_FIELDS) -> str:
        if f.restrictive:
            return self.shape("background_job", f).xml([job])
        return el("backgroundJob", self.background_job_pairs(job))

    # -- JSON children ----------------------------------------------------------------------------
    # The JSON of the `<owner>` and `<project>` references above (Tableau's mapping, `jsonout`), for
    # the list page `Shape`s.

    def _owner_json(self, owner_id: str, wanted: set[str]) -> dict:
        user = self.state.users.get(owner_id)
        if user is None or not wanted:
            return {"id": owner_id}
        if wanted <= _ID_NAME_EMAIL:  # what the access layer asks for: skip the generic pair walk
            found = {"id": user.id}
            if "name" in wanted:
                found["name"] = user.name
            if "email" in wanted and user.email:
                found["email"] = user.email
            return found
        return json_attrs(self.owner_pairs(owner_id, wanted))

    def _project_ref_json(self, project_id: str, wanted: set[str], name: bool) -> dict:
        project = self.state.projects.get(project_id)
        if project is not None and wanted <= _ID_NAME:
            return {"id": project.id, "name": project.name} if name or "name" in wanted else {"id": project.id}
        return json_attrs(self.project_ref_pairs(project_id, wanted, name=name))

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
