"""Deterministic generated sites for the emulator: `build_site("demo")` and `build_site("large")`.

Determinism: everything that identifies or structures the site (ids, names, content URLs, owners,
projects, memberships, permission rules, schedules, tasks, jobs, counts, sizes) comes from one
`random.Random(seed)` drawn in a fixed order, so the same seed always gives the same site and a
different seed a different one. Timestamps are the exception: they are offsets from a *reference
day*, UTC midnight of the current day (or `today=` if given), so the demo always looks current
("signed in yesterday", "not updated for 400 days", "failed in the last three days") and every
timestamp lies in the past. Two builds on the same UTC day are therefore identical, and builds on
different days differ only by a whole-day shift of every timestamp (the future `next_run_at` of
weekly schedules follows the weekday). Nothing depends on `PYTHONHASHSEED`: no set is iterated
while drawing.

Sizes:

* `demo` (default): the hand-written "Acme Analytics" story in `demo_story.py`: 17 projects with
  nesting and all three lock modes, 67 workbooks with 2-8 sheets each, 32 data sources, 5 flows,
  44 users in every site role, 14 groups, explicit Allow and Deny rules for users and groups on
  every kind of content, project default permissions, seven schedules, extract-refresh tasks,
  four extracts that fail on every refresh, and three days of job history.
* `large`: a procedural site for scale work: 10,000 users, 500 groups, 1,000 nested projects,
  20,000 workbooks, about 70,000 views, 5,000 data sources, 400 flows, with proportional rules,
  tasks and jobs. It takes about 2 s and 150 MB (BENCHMARKS.md).

Well-known credentials (both sizes): the site administrator `admin@example.com`
(SiteAdministratorCreator, the first administrator, so `SiteState.site_admin()` returns them) signs
in with the password `ADMIN_PASSWORD` ("steward-demo-password"); no other user has a password. One
connected app (`CONNECTED_APP_CLIENT_ID`, `CONNECTED_APP_SECRET_ID`, `CONNECTED_APP_SECRET_VALUE`)
is enabled. No personal access tokens are generated: the CLI and the tests add their own.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from random import Random

from . import demo_story as story
from . import model as m
from . import names

SIZES = ("demo", "large")

DOMAIN = story.DOMAIN
ADMIN_NAME = f"admin@{DOMAIN}"
ADMIN_PASSWORD = "steward-demo-password"  # a published demo credential, like the CLI's demo PAT
CONNECTED_APP_CLIENT_ID = "5d0c7b4e-7f1a-4d6b-9a51-2f3c1e8b9a70"
CONNECTED_APP_SECRET_ID = "a3e9f2c1-6b8d-4e7a-8c2f-0d1b5e6f7a81"
CONNECTED_APP_SECRET_VALUE = "steward-demo-connected-app-secret-0123456789abcdef"

# Capability templates (REST names, semantics §4.4), named after Tableau's permission templates.
_WB_VIEW = ("Read", "Filter", "ViewComments", "AddComment", "ExportImage", "ExportData")
_WB_EXPLORE = _WB_VIEW + ("ShareView", "ViewUnderlyingData", "WebAuthoring", "RunExplainData", "ExportXml")
_DS_EXPLORE = ("Read", "Connect", "ExportXml")
_FLOW_RUN = ("Read", "ExportXml", "Execute")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "project:view": ("Read",),
    "project:publish": ("Read", "Write"),
    "wb:view": _WB_VIEW,
    "wb:explore": _WB_EXPLORE,
    "wb:publish": _WB_EXPLORE + ("Write", "CreateRefreshMetrics", "ChangeHierarchy", "Delete"),
    "ds:view": ("Read", "Connect"),
    "ds:explore": _DS_EXPLORE,
    "ds:publish": _DS_EXPLORE + ("Write", "SaveAs", "ChangeHierarchy", "Delete"),
    "flow:view": ("Read", "ExportXml"),
    "flow:run": _FLOW_RUN,
    "flow:publish": _FLOW_RUN + ("WebAuthoringForFlows", "Write", "ChangeHierarchy", "Delete"),
}
# What a view-level rule may name: the workbook capabilities that are confirmed for views.
VIEW_CAPABILITIES = frozenset(
    (
        "Read", "Filter", "ViewComments", "AddComment", "ExportImage", "ExportData", "ShareView",
        "ViewUnderlyingData", "WebAuthoring", "Delete", "ChangePermissions",
    )
)  # fmt: skip
_DEFAULT_TYPES = ("workbooks", "datasources", "flows")
# What a restricted group is typically denied, per resource kind (the large site).
_DENIED: dict[str, tuple[str, ...]] = {
    "projects": ("Write",),
    "workbooks": ("ExportData", "ViewUnderlyingData", "ExportXml"),
    "datasources": ("Connect", "ExportXml"),
    "flows": ("Execute",),
}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_URL_STRIP = re.compile(r"[^A-Za-z0-9]+")
_DAY = 86400.0


def reference_day(now: datetime | None = None) -> datetime:
    """UTC midnight of `now` (default: the current time): the instant every timestamp counts back from."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def build_site(
    size: str = "demo", seed: int = 7, content_url: str = "demo", *, today: datetime | None = None
) -> m.SiteState:
    """A generated site; see the module docstring for what each size holds and what is deterministic.

    `today` pins the reference day (tests); by default it is UTC midnight of the current day.
    """
    day = reference_day(today)
    now = day if today is not None else datetime.now(UTC)
    if size == "demo":
        return _DemoBuilder(seed, content_url, day, now).build()
    if size == "large":
        return _LargeBuilder(seed, content_url, day, now).build()
    raise ValueError(f"unknown site size {size!r}; expected one of {', '.join(SIZES)}")


def url_name(name: str) -> str:
    """Tableau-style content URL stem: the name without spaces or punctuation."""
    return _URL_STRIP.sub("", name) or "Untitled"


def sanitized_rules(rules: m.Rules, allowed: frozenset[str]) -> m.Rules:
    """A copy of `rules` keeping only capabilities in `allowed` (and grantees that keep any)."""
    out: m.Rules = {}
    for grantee, caps in rules.items():
        kept = {c: mode for c, mode in caps.items() if c in allowed}
        if kept:
            out[grantee] = kept
    return out


def copy_rules(rules: m.Rules) -> m.Rules:
    # Grantee tuples are immutable and shared; the capability dicts are per item (the API mutates them).
    return {grantee: dict(caps) for grantee, caps in rules.items()}


def _grant(rules: m.Rules, grantee: m.GranteeKey, caps: tuple[str, ...], mode: str) -> None:
    slot = rules.setdefault(grantee, {})
    for cap in caps:
        slot[cap] = mode


class _Builder:
    """What both sizes share: the seeded Random, the clock, ids, content URLs, connected app."""

    site_name = story.SITE_NAME

    def __init__(self, seed: int, content_url: str, today: datetime, now: datetime) -> None:
        self.rng = Random(seed)
        self.today = today
        self.now = max(now, today)  # only `next_run_at` looks at the time of day
        self.site = m.SiteState(
            id=self.new_id(), name=self.site_name, content_url=content_url, created_at=self.ago(1461)
        )
        self.site.run_now_enabled = True
        self._url_counts: dict[str, dict[str, int]] = {"workbooks": {}, "datasources": {}}

    def new_id(self) -> str:
        return m.new_id(self.rng)

    def ago(self, days: float) -> datetime:
        """`days` before the reference day, to the second (days >= 0 keeps it in the past)."""
        return self.today - timedelta(seconds=int(days * _DAY))

    def content_url(self, kind: str, name: str) -> str:
        stem = url_name(name)
        counts = self._url_counts[kind]
        n = counts.get(stem, 0)
        counts[stem] = n + 1
        return stem if n == 0 else f"{stem}_{n}"

    def connected_app(self) -> None:
        app = m.ConnectedApp(
            client_id=CONNECTED_APP_CLIENT_ID,
            secret_id=CONNECTED_APP_SECRET_ID,
            secret_value=CONNECTED_APP_SECRET_VALUE,
        )
        self.site.connected_apps[app.client_id] = app

    def next_run(self, sched: m.Schedule) -> datetime:
        """The first run of `sched` after now (after the reference day when it is pinned)."""
        hh, mm, ss = (int(x) for x in sched.start_time.split(":"))
        t = self.today + timedelta(hours=hh, minutes=mm, seconds=ss)
        hourly = sched.frequency == "Hourly"
        step = timedelta(hours=(sched.interval_hours or 1) if hourly else 24)
        days = set(sched.week_days) if sched.frequency == "Weekly" and sched.week_days else set(_WEEKDAYS)
        while t <= self.now or _WEEKDAYS[t.weekday()] not in days:
            t += step
        return t

    def slots(self, sched: m.Schedule, count: int) -> list[datetime]:
        """The `count` most recent run times of `sched` that leave 3 h before the reference day, oldest first.

        The margin keeps every historical job (at most 2 h of run time) finished before midnight, so
        no timestamp lies in the future even just after midnight.
        """
        hh, mm, ss = (int(x) for x in sched.start_time.split(":"))
        cutoff = self.today - timedelta(hours=3)
        t = self.today - timedelta(days=2) + timedelta(hours=hh, minutes=mm, seconds=ss)
        hourly = sched.frequency == "Hourly"
        step = timedelta(hours=(sched.interval_hours or 1) if hourly else 24)
        days = set(sched.week_days) if sched.frequency == "Weekly" and sched.week_days else set(_WEEKDAYS)
        while t + step < cutoff:
            t += step
        out: list[datetime] = []
        while len(out) < count:
            if t < cutoff and _WEEKDAYS[t.weekday()] in days:
                out.append(t)
            t -= step
        return sorted(out)

    def history_job(
        self,
        kind: str,
        target_id: str,
        target_name: str,
        created: datetime,
        queue: float,
        run: float,
        failure: str | None,
        task_id: str | None = None,
        priority: int = 50,
    ) -> m.Job:
        """A finished job (Success or Failed) with consistent times; `elapsed` keeps it finished."""
        queue, run = round(queue), round(run)
        started = created + timedelta(seconds=queue)
        job = m.Job(
            id=self.new_id(),
            job_type="run_flow" if kind == "flow" else "refresh_extracts",
            target_kind=kind,
            target_id=target_id,
            target_name=target_name,
            created_at=created,
            queue_seconds=float(queue),
            run_seconds=float(run),
            failure=failure,
            priority=priority,
            started_at=started,
            completed_at=started + timedelta(seconds=run),
            finish_code=1 if failure else 0,
            progress=0 if failure else 100,
            status="Failed" if failure else "Success",
            notes=failure or "",
            elapsed=float(queue + run),
            task_id=task_id,
        )
        self.site.jobs[job.id] = job
        return job


# ==================================================================================================
# demo


class _DemoBuilder(_Builder):
    def build(self) -> m.SiteState:
        self.people()
        self.groups()
        self.projects()
        self.datasources()
        self.workbooks()
        self.flows()
        self.permissions()
        self.schedules_tasks_jobs()
        self.connected_app()
        return self.site

    # -- people -----------------------------------------------------------------------------------

    def people(self) -> None:
        rng = self.rng
        self.user_ids: dict[str, str] = {}
        self.person = {p.key: p for p in story.PEOPLE}
        for p in story.PEOPLE:
            login = p.login or ".".join(part.lower().replace("'", "") for part in _ascii(p.full_name).split())
            email = f"{login}@{DOMAIN}"
            created = self.ago(p.created_days + rng.random())
            last = None if p.last_login_days is None else self.ago(p.last_login_days + rng.random() * 0.9)
            sso = p.role not in m.ADMIN_ROLES and "contractors" not in p.groups and p.key != "svc"
            user = m.User(
                id=self.new_id(),
                name=email,
                full_name=p.full_name,
                email=email,
                site_role=p.role,
                created_at=created,
                last_login=last,
                auth_setting="SAML" if sso and p.role != "Unlicensed" else "ServerDefault",
                locale=p.locale,
                password=ADMIN_PASSWORD if p.key == "admin" else None,
            )
            self.site.users[user.id] = user
            self.user_ids[p.key] = user.id

    def groups(self) -> None:
        self.group_ids: dict[str, str] = {}
        for key, (name, min_role) in story.GROUPS.items():
            group = m.Group(id=self.new_id(), name=name, minimum_site_role=min_role)
            if key == "all":
                group.member_ids = set(self.user_ids.values())
            else:
                group.member_ids = {self.user_ids[p.key] for p in story.PEOPLE if key in p.groups}
            self.site.groups[group.id] = group
            self.group_ids[key] = group.id

    # -- projects and content ---------------------------------------------------------------------

    def projects(self) -> None:
        rng = self.rng
        self.project_ids: dict[str, str] = {}
        self.project_spec = {p.key: p for p in story.PROJECTS}
        for p in story.PROJECTS:
            project = m.Project(
                id=self.new_id(),
                name=p.name,
                owner_id=self.user_ids[p.owner],
                created_at=self.ago(p.created_days + rng.random()),
                updated_at=self.ago(p.updated_days + rng.random()),
                description=p.description,
                parent_id=self.project_ids[p.parent] if p.parent else None,
                content_permissions=p.lock,
            )
            self.site.projects[project.id] = project
            self.project_ids[p.key] = project.id

    def _times(self, project: str, owner: str, stale: bool) -> tuple[datetime, datetime]:
        """created/updated for content: after its owner and project exist, before the owner left."""
        rng = self.rng
        person = self.person[owner]
        oldest = min(person.created_days, self.project_spec[project].created_days) - 1
        gone = person.last_login_days if person.last_login_days is not None else 0
        if stale:
            updated = rng.uniform(max(370.0, gone + 1), max(400.0, oldest - 30))
            created = rng.uniform(updated, max(updated, oldest))
        else:
            updated = rng.uniform(max(0.05, gone), max(1.0, min(45.0, oldest)))
            created = rng.uniform(updated, max(updated, min(oldest, 900.0)))
        return self.ago(created), self.ago(updated)

    def _connection(self, ctype: str, server: str | None = None, extract: bool = False) -> m.Connection:
        address, port, user = story.CONNECTION_SERVERS.get(ctype, ("", "", ""))
        return m.Connection(
            id=self.new_id(),
            type=ctype,
            server_address=server or address,
            server_port=port,
            username=user,
            embed_password=bool(user) and extract,
        )

    def datasources(self) -> None:
        rng = self.rng
        self.ds_ids: dict[str, str] = {}
        self.ds_by_project: dict[str, list[str]] = {}
        self.certified: list[str] = []
        for d in story.DATASOURCES:
            created, updated = self._times(d.project, d.owner, d.stale)
            ds = m.Datasource(
                id=self.new_id(),
                name=d.name,
                content_url=self.content_url("datasources", d.name),
                project_id=self.project_ids[d.project],
                owner_id=self.user_ids[d.owner],
                created_at=created,
                updated_at=updated,
                type=d.type,
                description=d.description,
                size=rng.randint(40, 900) if d.extract else rng.randint(1, 12),
                has_extracts=d.extract,
                is_certified=d.certified,
                certification_note="Certified by Data Engineering: reconciled with the warehouse nightly."
                if d.certified
                else "",
                encrypt_extracts=False,
                tags=set(d.tags),
                refresh_failure=story.FAILURES[d.failure] if d.failure else None,
                refresh_seconds=round(rng.uniform(12, 60), 1),
            )
            ds.connections.append(self._connection(d.type, d.server, d.extract))
            self.site.datasources[ds.id] = ds
            self.ds_ids[d.name] = ds.id
            self.ds_by_project.setdefault(d.project, []).append(ds.id)
            if d.certified:
                self.certified.append(ds.id)

    def workbooks(self) -> None:
        rng = self.rng
        self.wb_ids: dict[str, str] = {}
        self.view_ids: dict[tuple[str, str], str] = {}
        for w in story.WORKBOOKS:
            spec = self.project_spec[w.project]
            created, updated = self._times(w.project, w.owner, w.stale)
            wb = m.Workbook(
                id=self.new_id(),
                name=w.name,
                content_url=self.content_url("workbooks", w.name),
                project_id=self.project_ids[w.project],
                owner_id=self.user_ids[w.owner],
                created_at=created,
                updated_at=updated,
                description=w.description,
                size=rng.randint(25, 480) if w.extract else max(1, int(rng.paretovariate(1.6) * 2)),
                show_tabs=w.tabs,
                has_extracts=w.extract,
                tags=set(w.tags),
                refresh_failure=story.FAILURES[w.failure] if w.failure else None,
                refresh_seconds=round(rng.uniform(15, 75), 1),
            )
            self._views(wb, w, spec.theme)
            self._wb_connections(wb, w, spec)
            self.site.workbooks[wb.id] = wb
            self.wb_ids[w.name] = wb.id

    def _views(self, wb: m.Workbook, w: story.WorkbookSpec, theme: str) -> None:
        rng = self.rng
        if w.name in story.FIXED_VIEWS:
            sheets = list(story.FIXED_VIEWS[w.name])
        else:
            pool = story.VIEW_NAMES[theme]
            sheets = rng.sample(pool, rng.randint(2, min(8, len(pool))))
            if pool[0] in sheets:  # the landing dashboard goes first
                sheets.remove(pool[0])
                sheets.insert(0, pool[0])
        base = w.popularity * rng.paretovariate(1.3) * 60 * (0.25 if w.stale else 1.0)
        used: set[str] = set()
        for i, sheet in enumerate(sheets):
            if sheet in story.STORY_VIEWS:
                sheet_type = "story"
            elif any(word in sheet for word in story.DASHBOARD_WORDS) or (i == 0 and rng.random() < 0.6):
                sheet_type = "dashboard"
            else:
                sheet_type = "dashboard" if rng.random() < 0.15 else "worksheet"
            stem = url_name(sheet)
            view_url = stem
            n = 1
            while view_url in used:
                view_url, n = f"{stem}_{n}", n + 1
            used.add(view_url)
            view = m.View(
                id=self.new_id(),
                name=sheet,
                content_url=f"{wb.content_url}/sheets/{view_url}",
                workbook_id=wb.id,
                owner_id=wb.owner_id,
                created_at=wb.created_at,
                updated_at=wb.updated_at,
                sheet_type=sheet_type,
                view_url_name=view_url,
                total_view_count=int(base * (0.45**i) * rng.uniform(0.6, 1.4)),
                tags={"landing"} if i == 0 and w.popularity >= 5 else set(),
            )
            self.site.views[view.id] = view
            wb.view_ids.append(view.id)
            self.view_ids[(w.name, sheet)] = view.id

    def _wb_connections(self, wb: m.Workbook, w: story.WorkbookSpec, spec: story.ProjectSpec) -> None:
        rng = self.rng
        candidates = list(self.ds_by_project.get(spec.key, ()))
        if spec.parent:
            candidates += self.ds_by_project.get(spec.parent, [])
        candidates += [c for c in self.certified if c not in candidates]
        if not w.extract and rng.random() < 0.65:
            for ds_id in rng.sample(candidates, rng.randint(1, 2)):
                wb.connections.append(
                    m.Connection(
                        id=self.new_id(),
                        type="sqlproxy",
                        server_address="localhost",
                        server_port="8060",
                        datasource_id=ds_id,
                    )
                )
        else:
            ctype = rng.choice(story.THEME_CONNECTIONS[spec.theme])
            wb.connections.append(self._connection(w.source or ctype, extract=w.extract))

    def flows(self) -> None:
        self.flow_ids: dict[str, str] = {}
        for f in story.FLOWS:
            created, updated = self._times(f.project, f.owner, False)
            flow = m.Flow(
                id=self.new_id(),
                name=f.name,
                project_id=self.project_ids[f.project],
                owner_id=self.user_ids[f.owner],
                created_at=created,
                updated_at=updated,
                description=f.description,
                tags={"prep"},
            )
            self.site.flows[flow.id] = flow
            self.flow_ids[f.name] = flow.id

    # -- permissions ------------------------------------------------------------------------------

    def _grantee(self, ref: str) -> m.GranteeKey:
        kind, key = ref.split(":", 1)
        if kind == "g":
            return ("group", self.group_ids[key])
        return ("user", self.user_ids[key])

    def _rules(self, grants: list[story.Grant], into: m.Rules | None = None) -> m.Rules:
        rules: m.Rules = {} if into is None else into
        for ref, caps, mode in grants:
            names_ = TEMPLATES[caps] if isinstance(caps, str) else caps
            _grant(rules, self._grantee(ref), names_, mode)
        return rules

    def _controlling(self, project_key: str, for_content: bool) -> str | None:
        """The project whose lock governs content in (or, for_content=False, the project) `project_key`."""
        chain = []
        key: str | None = project_key
        while key is not None:
            chain.append(key)
            key = self.project_spec[key].parent
        candidates = chain if for_content else chain[1:]
        top = None
        for k in candidates:
            if self.project_spec[k].lock == "LockedToProject":
                top = k
        if top is not None:
            return top
        if for_content and self.project_spec[project_key].lock == "LockedToProjectWithoutNested":
            return project_key
        return None

    def permissions(self) -> None:
        site = self.site
        project_rules: dict[str, m.Rules] = {}
        defaults: dict[tuple[str, str], m.Rules] = {}
        for p in story.PROJECTS:  # parents come first in the table
            ctl = self._controlling(p.key, for_content=False)
            if ctl is not None:  # nested under LockedToProject: the ancestor's rules and templates
                project_rules[p.key] = copy_rules(project_rules[ctl])
                for ctype in _DEFAULT_TYPES:
                    defaults[(p.key, ctype)] = copy_rules(defaults[(ctl, ctype)])
            else:
                project_rules[p.key] = self._rules(story.PROJECT_RULES[p.key])
                for ctype in _DEFAULT_TYPES:
                    defaults[(p.key, ctype)] = self._rules(story.DEFAULT_RULES[p.key][ctype])
            pid = self.project_ids[p.key]
            site.permissions[("projects", pid)] = project_rules[p.key]
            for ctype in _DEFAULT_TYPES:
                site.default_permissions[(pid, ctype)] = defaults[(p.key, ctype)]

        def item_rules(kind: str, name: str, project_key: str) -> m.Rules:
            ctl = self._controlling(project_key, for_content=True)
            rules = copy_rules(defaults[(ctl or project_key, kind)])
            extra = story.ITEM_RULES.get((kind, name))
            if extra and ctl is None:
                self._rules(extra, rules)
            return rules

        for d in story.DATASOURCES:
            site.permissions[("datasources", self.ds_ids[d.name])] = item_rules(
                "datasources", d.name, d.project
            )
        for f in story.FLOWS:
            site.permissions[("flows", self.flow_ids[f.name])] = item_rules("flows", f.name, f.project)
        for w in story.WORKBOOKS:
            wb_id = self.wb_ids[w.name]
            rules = item_rules("workbooks", w.name, w.project)
            site.permissions[("workbooks", wb_id)] = rules
            if w.tabs:
                continue  # views of a workbook that shows tabs follow the workbook
            locked = self._controlling(w.project, for_content=True) is not None
            for view_id in site.workbooks[wb_id].view_ids:
                view_rules = sanitized_rules(rules, VIEW_CAPABILITIES)
                extra = story.VIEW_RULES.get((w.name, site.views[view_id].name))
                if extra and not locked:
                    self._rules(extra, view_rules)
                site.permissions[("views", view_id)] = view_rules

    # -- schedules, tasks, jobs -------------------------------------------------------------------

    def schedules_tasks_jobs(self) -> None:
        rng = self.rng
        by_name: dict[str, m.Schedule] = {}
        for name, freq, start, detail, state, priority in story.SCHEDULES:
            created = self.ago(rng.uniform(600, 1400))
            sched = m.Schedule(
                id=self.new_id(),
                name=name,
                created_at=created,
                updated_at=self.ago(rng.uniform(30, 500)),
                frequency=freq,
                start_time=start,
                interval_hours=detail if isinstance(detail, int) else None,
                week_days=list(detail) if isinstance(detail, tuple) else [],
                state=state,
                priority=priority,
            )
            sched.next_run_at = self.next_run(sched) if state == "Active" else None
            self.site.schedules[sched.id] = sched
            by_name[name] = sched

        extracts: list[tuple[str, m.Datasource | m.Workbook]] = [
            ("datasource", ds) for ds in self.site.datasources.values() if ds.has_extracts
        ] + [("workbook", wb) for wb in self.site.workbooks.values() if wb.has_extracts]
        for kind, item in extracts:
            sched = by_name[story.TASK_SCHEDULES.get(item.name, "Nightly")]
            task = m.ExtractRefreshTask(
                id=self.new_id(),
                schedule_id=sched.id,
                target_kind=kind,
                target_id=item.id,
                refresh_type="IncrementalRefresh" if rng.random() < 0.2 else "FullRefresh",
                priority=sched.priority,
            )
            self.site.tasks[task.id] = task
            last_failed = False
            for slot in self.slots(sched, 3):
                failure = item.refresh_failure
                if failure is None and rng.random() < 0.06:
                    failure = rng.choice(story.TRANSIENT_FAILURES)
                run = self._run_seconds(failure)
                self.history_job(
                    kind, item.id, item.name, slot, rng.uniform(2, 90), run, failure, task.id, task.priority
                )
                last_failed = failure is not None
            if item.refresh_failure:
                task.consecutive_failed_count = story.FAILED_COUNTS.get(item.name, 3)
            elif last_failed:
                task.consecutive_failed_count = 1

        # "Update Now" runs started by people yesterday afternoon, outside any schedule.
        for kind, item in rng.sample(extracts, 4):
            created = self.ago(1 - rng.uniform(0.55, 0.7))
            self.history_job(
                kind,
                item.id,
                item.name,
                created,
                rng.uniform(1, 20),
                self._run_seconds(item.refresh_failure),
                item.refresh_failure,
            )
        # Flow runs: two nightly runs each.
        for f in story.FLOWS:
            failure = story.FAILURES[f.failure] if f.failure else None
            for days in (2, 1):
                created = self.ago(days - 2.5 / 24 + rng.uniform(0, 0.01))
                self.history_job(
                    "flow",
                    self.flow_ids[f.name],
                    f.name,
                    created,
                    rng.uniform(2, 40),
                    rng.uniform(40, 600),
                    failure,
                )

    def _run_seconds(self, failure: str | None) -> float:
        rng = self.rng
        if failure and "7200 seconds" in failure:
            rng.random()  # keep the draw count independent of the failure kind
            return 7200.0
        if failure:
            return rng.uniform(3, 45)
        return min(3000.0, 20 + rng.lognormvariate(4.2, 0.9))


def _ascii(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


# ==================================================================================================
# large


class _LargeBuilder(_Builder):
    site_name = "Acme Analytics (large)"
    N_USERS = 10_000
    N_GROUPS = 500
    N_PROJECTS = 1_000
    N_WORKBOOKS = 20_000
    N_DATASOURCES = 5_000
    N_FLOWS = 400
    VIEWS_PER_WORKBOOK = (2, 5)  # inclusive; about 70,000 views

    def build(self) -> m.SiteState:
        self.people()
        self.groups()
        self.projects()
        self.project_permissions()
        self.datasources()
        self.workbooks()
        self.flows()
        self.schedules_tasks_jobs()
        self.connected_app()
        return self.site

    def people(self) -> None:
        rng = self.rng
        users = self.site.users
        admin = m.User(
            id=self.new_id(),
            name=ADMIN_NAME,
            full_name="Alex Morgan",
            email=ADMIN_NAME,
            site_role="SiteAdministratorCreator",
            created_at=self.ago(1460),
            last_login=self.ago(0.3),
            locale="en_US",
            password=ADMIN_PASSWORD,
        )
        users[admin.id] = admin
        roles = (
            "Viewer",
            "Explorer",
            "Creator",
            "ExplorerCanPublish",
            "Unlicensed",
            "SiteAdministratorCreator",
            "SiteAdministratorExplorer",
            "ServerAdministrator",
        )
        weights = (38, 24, 12, 10, 14, 0.6, 0.6, 0.2)
        drawn = rng.choices(roles, weights=weights, k=self.N_USERS - 1)
        # Every role at least once, whatever the draw.
        for i, role in enumerate(m.SITE_ROLES):
            drawn[1 + i * 7] = role
        seen: dict[str, int] = {}
        firsts, lasts = names.FIRST_NAMES, names.LAST_NAMES
        ago = self.ago
        self.publishers: list[str] = [admin.id]
        self.former: list[str] = []  # Unlicensed or inactive for over a year
        for role in drawn:
            first, last = rng.choice(firsts), rng.choice(lasts)
            stem = f"{first}.{last}".lower()
            n = seen.get(stem, 0)
            seen[stem] = n + 1
            login = f"{stem}@{DOMAIN}" if n == 0 else f"{stem}{n + 1}@{DOMAIN}"
            r = rng.random()
            if r < 0.62 and role != "Unlicensed":
                last_days: float | None = rng.uniform(0.01, 30)
            elif r < 0.82:
                last_days = rng.uniform(30, 365)
            elif r < 0.95:
                last_days = rng.uniform(366, 1300)
            else:
                last_days = None
            created_days = rng.uniform(last_days if last_days is not None else 1, 1450)
            user = m.User(
                id=self.new_id(),
                name=login,
                full_name=f"{first} {last}",
                email=login,
                site_role=role,
                created_at=ago(created_days),
                last_login=None if last_days is None else ago(last_days),
                auth_setting="SAML" if r < 0.9 else "ServerDefault",
                locale=rng.choice(names.LOCALES),
            )
            users[user.id] = user
            inactive = last_days is None or last_days > 365
            if role == "Unlicensed" or (inactive and role in ("Creator", "ExplorerCanPublish")):
                if last_days is not None:  # people who once signed in and published
                    self.former.append(user.id)
            elif role in ("Creator", "ExplorerCanPublish", "SiteAdministratorCreator"):
                self.publishers.append(user.id)
        self.user_list = list(users)
        self.user_obj = users

    def groups(self) -> None:
        rng = self.rng
        everyone = m.Group(id=self.new_id(), name="All Users", member_ids=set(self.user_list))
        self.site.groups[everyone.id] = everyone
        combos = [f"{d} {q}" for d in names.DEPARTMENTS for q in names.GROUP_QUALIFIERS]
        picked = names.DEPARTMENTS + tuple(
            rng.sample([c for c in combos], self.N_GROUPS - 1 - len(names.DEPARTMENTS))
        )
        self.group_list: list[str] = []
        self.deny_groups: list[str] = []
        for name in picked:
            size = min(2500, int(rng.paretovariate(1.15) * 12))
            group = m.Group(
                id=self.new_id(),
                name=name,
                minimum_site_role=rng.choice((None, None, None, "Viewer", "Explorer", "Creator")),
                member_ids=set(rng.sample(self.user_list, size)),
            )
            self.site.groups[group.id] = group
            self.group_list.append(group.id)
            if name.endswith(("Contractors", "Interns")):
                self.deny_groups.append(group.id)
        self.deny_groups = self.deny_groups or self.group_list[:5]
        self.all_users = everyone.id

    def projects(self) -> None:
        rng = self.rng
        site = self.site
        ago = self.ago
        self.depth: dict[str, int] = {}
        self.ctl_wb: dict[str, str | None] = {}  # project -> project whose lock governs its content
        self.ctl_self: dict[str, str | None] = {}  # project -> locked ancestor governing the project
        children: dict[str | None, set[str]] = {}
        project_list: list[str] = []
        tops = ("Default",) + names.DEPARTMENTS
        admin_id = self.user_list[0]
        for i in range(self.N_PROJECTS):
            if i < len(tops):
                parent, name = None, tops[i]
            else:
                while True:
                    parent = project_list[int(rng.random() ** 1.6 * len(project_list))]
                    if self.depth[parent] < 4:
                        break
                taken = children.setdefault(parent, set())
                base = name = rng.choice(names.SUBPROJECTS)
                n = 1
                while name in taken:
                    n += 1
                    name = rng.choice(names.SUBPROJECTS) if n < 4 else f"{base} {n}"
            children.setdefault(parent, set()).add(name)
            parent_ctl = self.ctl_self.get(parent) if parent else None
            if parent is not None and site.projects[parent].content_permissions == "LockedToProject":
                parent_ctl = parent_ctl or parent
            r = rng.random()
            if parent_ctl is not None or r < 0.08:
                lock = "LockedToProject"
            elif r < 0.14:
                lock = "LockedToProjectWithoutNested"
            else:
                lock = "ManagedByOwner"
            created = rng.uniform(30, 1400)
            owner = admin_id if i == 0 or rng.random() < 0.1 else rng.choice(self.publishers)
            project = m.Project(
                id=self.new_id(),
                name=name,
                owner_id=owner,
                created_at=ago(created),
                updated_at=ago(rng.uniform(0.1, created)),
                description="" if rng.random() < 0.4 else f"{name} content.",
                parent_id=parent,
                content_permissions=lock,
            )
            site.projects[project.id] = project
            project_list.append(project.id)
            self.depth[project.id] = 0 if parent is None else self.depth[parent] + 1
            self.ctl_self[project.id] = parent_ctl
            if parent_ctl is not None:
                self.ctl_wb[project.id] = parent_ctl
            elif lock != "ManagedByOwner":
                self.ctl_wb[project.id] = project.id
            else:
                self.ctl_wb[project.id] = None
        self.project_list = project_list
        # Content gathers in some projects more than others.
        self.project_weights = [rng.paretovariate(1.2) for _ in project_list]

    def _random_rules(self, kind: str) -> m.Rules:
        """A plausible rule set: a few group grants, sometimes a Deny, sometimes a user rule."""
        rng = self.rng
        view, explore, publish = {
            "projects": ("project:view", "project:view", "project:publish"),
            "workbooks": ("wb:view", "wb:explore", "wb:publish"),
            "datasources": ("ds:view", "ds:explore", "ds:publish"),
            "flows": ("flow:view", "flow:run", "flow:publish"),
        }[kind]
        rules: m.Rules = {}
        if rng.random() < 0.5:
            _grant(rules, ("group", self.all_users), TEMPLATES[view], "Allow")
        for _ in range(rng.randint(1, 3)):
            template = rng.choice((view, explore, explore, publish))
            _grant(rules, ("group", rng.choice(self.group_list)), TEMPLATES[template], "Allow")
        if rng.random() < 0.15:
            _grant(rules, ("group", rng.choice(self.deny_groups)), _DENIED[kind], "Deny")
        if rng.random() < 0.08:
            mode = "Deny" if rng.random() < 0.4 else "Allow"
            _grant(rules, ("user", rng.choice(self.user_list)), TEMPLATES[view], mode)
        return rules

    def project_permissions(self) -> None:
        rng = self.rng
        site = self.site
        self.defaults: dict[tuple[str, str], m.Rules] = {}
        for pid in self.project_list:
            ctl = self.ctl_self[pid]
            if ctl is not None:
                rules = copy_rules(site.permissions[("projects", ctl)])
                for ctype in _DEFAULT_TYPES:
                    self.defaults[(pid, ctype)] = copy_rules(self.defaults[(ctl, ctype)])
            else:
                rules = self._random_rules("projects")
                if rng.random() < 0.05:
                    _grant(rules, ("user", rng.choice(self.publishers)), ("ProjectLeader",), "Allow")
                if rng.random() < 0.02:
                    _grant(rules, ("group", rng.choice(self.group_list)), ("ProjectLeader",), "Allow")
                for ctype in _DEFAULT_TYPES:
                    self.defaults[(pid, ctype)] = self._random_rules(ctype)
            site.permissions[("projects", pid)] = rules
            for ctype in _DEFAULT_TYPES:
                site.default_permissions[(pid, ctype)] = self.defaults[(pid, ctype)]

    def _item_rules(self, kind: str, project_id: str) -> m.Rules:
        """What publishing copied from the project, plus an occasional customization."""
        ctl = self.ctl_wb[project_id]
        rules = copy_rules(self.defaults[(ctl or project_id, kind)])
        if ctl is None and self.rng.random() < 0.1:
            rng = self.rng
            if rng.random() < 0.5:
                _grant(rules, ("user", rng.choice(self.user_list)), ("Read",), rng.choice(("Allow", "Deny")))
            else:
                _grant(rules, ("group", rng.choice(self.deny_groups)), ("Read",), "Deny")
        return rules

    def _owner(self) -> str:
        rng = self.rng
        if self.former and rng.random() < 0.05:
            return rng.choice(self.former)
        return rng.choice(self.publishers)

    def _dates(self, owner_id: str) -> tuple[datetime, datetime, bool]:
        rng = self.rng
        owner = self.user_obj[owner_id]
        gone = 0.0 if owner.last_login is None else (self.today - owner.last_login).total_seconds() / _DAY
        stale = gone > 365 or rng.random() < 0.22
        updated = rng.uniform(max(366.0, gone), 1400.0) if stale else rng.uniform(max(0.02, gone), 365.0)
        created = rng.uniform(updated, max(updated, 1450.0))
        return self.ago(created), self.ago(updated), stale

    def _unique_name(self, taken: set[str], make) -> str:
        name = make()
        tries = 0
        while name in taken:
            tries += 1
            name = make() if tries < 5 else f"{name} ({tries})"
        taken.add(name)
        return name

    def _connection(self, ctype: str) -> m.Connection:
        address, port, user = names.CONNECTION_SERVERS[ctype]
        return m.Connection(
            id=self.new_id(), type=ctype, server_address=address, server_port=port, username=user
        )

    def datasources(self) -> None:
        rng = self.rng
        site = self.site
        taken: dict[str, set[str]] = {}
        projects = rng.choices(self.project_list, weights=self.project_weights, k=self.N_DATASOURCES)
        subjects, kinds = names.SUBJECTS, names.DATASOURCE_KINDS
        self.ds_list: list[str] = []

        def make() -> str:
            return f"{rng.choice(subjects)} {rng.choice(kinds)}"

        for project_id in projects:
            name = self._unique_name(taken.setdefault(project_id, set()), make)
            owner = self._owner()
            created, updated, stale = self._dates(owner)
            ctype = rng.choice(names.CONNECTION_TYPES)
            extract = ctype in ("hyper", "excel-direct", "textscan", "salesforce") or rng.random() < 0.18
            ds = m.Datasource(
                id=self.new_id(),
                name=name,
                content_url=self.content_url("datasources", name),
                project_id=project_id,
                owner_id=owner,
                created_at=created,
                updated_at=updated,
                type=ctype,
                size=rng.randint(1, 2000) if extract else rng.randint(1, 5),
                has_extracts=extract,
                is_certified=not stale and rng.random() < 0.06,
                tags={rng.choice(names.TAGS)} if rng.random() < 0.3 else set(),
                refresh_seconds=round(rng.uniform(10, 120), 1),
            )
            if extract and rng.random() < 0.05:
                ds.refresh_failure = rng.choice(names.REFRESH_FAILURES)
            ds.connections.append(self._connection(ctype))
            site.datasources[ds.id] = ds
            site.permissions[("datasources", ds.id)] = self._item_rules("datasources", project_id)
            self.ds_list.append(ds.id)

    def workbooks(self) -> None:
        rng = self.rng
        site = self.site
        views = site.views
        permissions = site.permissions
        taken: dict[str, set[str]] = {}
        projects = rng.choices(self.project_list, weights=self.project_weights, k=self.N_WORKBOOKS)
        subjects, kinds, prefixes = names.SUBJECTS, names.WORKBOOK_KINDS, names.PREFIXES
        pool = [(sys.intern(v), url_name(v)) for v in names.VIEW_NAMES]
        sheet_types = {
            v: "story" if v.startswith("Story") else "dashboard" if ("Dashboard" in v or v in ("Overview", "Summary", "Executive Summary", "KPI Tiles")) else "worksheet"
            for v, _ in pool
        }  # fmt: skip
        lo, hi = self.VIEWS_PER_WORKBOOK
        new_id = self.new_id
        paretovariate, random, sample, randint = rng.paretovariate, rng.random, rng.sample, rng.randint

        def make() -> str:
            prefix = rng.choice(prefixes)
            core = f"{rng.choice(subjects)} {rng.choice(kinds)}"
            return f"{prefix} {core}" if prefix else core

        for project_id in projects:
            name = self._unique_name(taken.setdefault(project_id, set()), make)
            owner = self._owner()
            created, updated, stale = self._dates(owner)
            extract = random() < 0.1
            wb = m.Workbook(
                id=new_id(),
                name=name,
                content_url=self.content_url("workbooks", name),
                project_id=project_id,
                owner_id=owner,
                created_at=created,
                updated_at=updated,
                size=randint(5, 900) if extract else max(1, int(paretovariate(1.5))),
                show_tabs=random() < 0.85,
                has_extracts=extract,
                tags={rng.choice(names.TAGS)} if random() < 0.3 else set(),
                refresh_seconds=round(rng.uniform(10, 120), 1),
            )
            if extract and random() < 0.05:
                wb.refresh_failure = rng.choice(names.REFRESH_FAILURES)
            if extract or random() < 0.5:
                wb.connections.append(self._connection(rng.choice(names.CONNECTION_TYPES)))
            else:
                wb.connections.append(
                    m.Connection(
                        id=new_id(),
                        type="sqlproxy",
                        server_address="localhost",
                        server_port="8060",
                        datasource_id=self.ds_list[int(random() * len(self.ds_list))],
                    )
                )
            base = paretovariate(1.2) * (3 if stale else 25)
            prefix = wb.content_url + "/sheets/"
            for i, (sheet, sheet_url) in enumerate(sample(pool, randint(lo, hi))):
                view = m.View(
                    id=new_id(),
                    name=sheet,
                    content_url=prefix + sheet_url,
                    workbook_id=wb.id,
                    owner_id=owner,
                    created_at=created,
                    updated_at=updated,
                    sheet_type=sheet_types[sheet],
                    view_url_name=sheet_url,
                    total_view_count=int(base * 0.5**i),
                )
                views[view.id] = view
                wb.view_ids.append(view.id)
            site.workbooks[wb.id] = wb
            rules = self._item_rules("workbooks", project_id)
            permissions[("workbooks", wb.id)] = rules
            if not wb.show_tabs:
                for view_id in wb.view_ids:
                    permissions[("views", view_id)] = sanitized_rules(rules, VIEW_CAPABILITIES)

    def flows(self) -> None:
        rng = self.rng
        site = self.site
        taken: dict[str, set[str]] = {}
        projects = rng.choices(self.project_list, weights=self.project_weights, k=self.N_FLOWS)

        def make() -> str:
            return f"{rng.choice(names.FLOW_VERBS)} {rng.choice(names.SUBJECTS)}"

        for project_id in projects:
            name = self._unique_name(taken.setdefault(project_id, set()), make)
            owner = self._owner()
            created, updated, _ = self._dates(owner)
            flow = m.Flow(
                id=self.new_id(),
                name=name,
                project_id=project_id,
                owner_id=owner,
                created_at=created,
                updated_at=updated,
            )
            site.flows[flow.id] = flow
            site.permissions[("flows", flow.id)] = self._item_rules("flows", project_id)

    def schedules_tasks_jobs(self) -> None:
        rng = self.rng
        site = self.site
        specs: list[tuple[str, str, str, int | None, list[str]]] = []
        for hours in (1, 2, 4, 6, 8, 12):
            specs.append((f"Every {hours} Hour{'s' if hours > 1 else ''}", "Hourly", "00:00:00", hours, []))
        for hh in range(24):
            specs.append((f"Daily {hh:02d}:00", "Daily", f"{hh:02d}:00:00", None, []))
        for day in _WEEKDAYS:
            specs.append((f"Weekly {day}", "Weekly", "05:00:00", None, [day]))
        specs.append(("Weekdays 06:00", "Weekly", "06:00:00", None, list(_WEEKDAYS[:5])))
        schedules: list[m.Schedule] = []
        for name, freq, start, hours, days in specs:
            sched = m.Schedule(
                id=self.new_id(),
                name=name,
                created_at=self.ago(rng.uniform(400, 1400)),
                updated_at=self.ago(rng.uniform(1, 400)),
                frequency=freq,
                start_time=start,
                interval_hours=hours,
                week_days=days,
                state="Suspended" if rng.random() < 0.05 else "Active",
                priority=rng.choice((30, 50, 50, 50, 70)),
            )
            sched.next_run_at = self.next_run(sched) if sched.state == "Active" else None
            site.schedules[sched.id] = sched
            schedules.append(sched)
        active = [s for s in schedules if s.state == "Active"]
        slots = {s.id: self.slots(s, 2) for s in active}
        items: list[tuple[str, m.Datasource | m.Workbook]] = [
            ("datasource", ds) for ds in site.datasources.values() if ds.has_extracts
        ] + [("workbook", wb) for wb in site.workbooks.values() if wb.has_extracts]
        for kind, item in items:
            sched = rng.choice(active)
            task = m.ExtractRefreshTask(
                id=self.new_id(),
                schedule_id=sched.id,
                target_kind=kind,
                target_id=item.id,
                refresh_type="IncrementalRefresh" if rng.random() < 0.2 else "FullRefresh",
                priority=sched.priority,
            )
            site.tasks[task.id] = task
            failure = item.refresh_failure
            for slot in slots[sched.id]:
                run = 7200.0 if failure and "7200" in failure else rng.uniform(5, 900)
                self.history_job(
                    kind, item.id, item.name, slot, rng.uniform(1, 120), run, failure, task.id, task.priority
                )
            if failure:
                task.consecutive_failed_count = rng.randint(2, 30)
        for flow in list(site.flows.values())[::4]:
            self.history_job(
                "flow",
                flow.id,
                flow.name,
                self.ago(1 - rng.uniform(0, 0.9)),
                rng.uniform(1, 60),
                rng.uniform(30, 900),
                None,
            )
