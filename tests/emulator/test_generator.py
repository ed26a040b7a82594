"""The site generator: determinism, the demo site's invariants and story, the large site's scale.

Invariants are asserted generically over the generated state (no reliance on particular names),
then a few tests pin the demo story the README and the MCP tools' demos talk about.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from emulator import model as m
from emulator.generator import (
    ADMIN_NAME,
    ADMIN_PASSWORD,
    CONNECTED_APP_CLIENT_ID,
    build_site,
    reference_day,
)

TODAY = datetime(2026, 3, 18, tzinfo=UTC)  # a fixed reference day: a Wednesday

# REST capability names per content type, semantics §4.4 (views: only the confirmed ones).
_VIZ = (
    "Read", "Filter", "ViewComments", "AddComment", "ExportImage", "ExportData", "ShareView",
    "ViewUnderlyingData", "WebAuthoring",
)  # fmt: skip
_COMMON = ("Write", "ChangeHierarchy", "Delete", "ChangePermissions")
CAPABILITIES: dict[str, frozenset[str]] = {
    "projects": frozenset({"Read", "Write", "ProjectLeader"}),
    "workbooks": frozenset(
        _VIZ + _COMMON + ("RunExplainData", "ExportXml", "CreateRefreshMetrics", "ExtractRefresh")
    ),
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
}


@pytest.fixture(scope="module")
def demo() -> m.SiteState:
    return build_site("demo", seed=7, content_url="demo", today=TODAY)


@pytest.fixture(scope="module")
def large() -> m.SiteState:
    return build_site("large", seed=7, content_url="large", today=TODAY)


@pytest.fixture(params=["demo", "large"])
def site(request) -> m.SiteState:
    return request.getfixturevalue(request.param)


def signature(site: m.SiteState) -> tuple:
    """Everything identity- and structure-related, without timestamps."""
    return (
        site.id,
        site.name,
        [(u.id, u.name, u.full_name, u.site_role, u.last_login is None) for u in site.users.values()],
        [(g.id, g.name, sorted(g.member_ids)) for g in site.groups.values()],
        [(p.id, p.name, p.parent_id, p.owner_id, p.content_permissions) for p in site.projects.values()],
        [(w.id, w.name, w.content_url, w.project_id, w.owner_id, w.view_ids, w.size, sorted(w.tags),
          [(c.id, c.type, c.datasource_id) for c in w.connections], w.refresh_failure)
         for w in site.workbooks.values()],
        [(v.id, v.name, v.content_url, v.sheet_type, v.total_view_count) for v in site.views.values()],
        [(d.id, d.name, d.content_url, d.type, d.has_extracts, d.refresh_failure) for d in site.datasources.values()],
        [(f.id, f.name, f.project_id) for f in site.flows.values()],
        [(s.id, s.name, s.frequency, s.start_time) for s in site.schedules.values()],
        [(t.id, t.schedule_id, t.target_id, t.consecutive_failed_count) for t in site.tasks.values()],
        [(j.id, j.target_id, j.status, j.finish_code, j.task_id) for j in site.jobs.values()],
        sorted((k, sorted((g, sorted(c.items())) for g, c in r.items())) for k, r in site.permissions.items()),
        sorted((k, sorted((g, sorted(c.items())) for g, c in r.items()))
               for k, r in site.default_permissions.items()),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# determinism


def test_same_seed_gives_the_same_site(demo):
    again = build_site("demo", seed=7, content_url="demo", today=TODAY)
    assert signature(again) == signature(demo)
    assert [u.created_at for u in again.users.values()] == [u.created_at for u in demo.users.values()]
    assert [j.completed_at for j in again.jobs.values()] == [j.completed_at for j in demo.jobs.values()]


def test_ids_and_names_do_not_depend_on_the_day(demo):
    later = build_site("demo", seed=7, content_url="demo", today=TODAY + timedelta(days=33))
    assert signature(later) == signature(demo)
    # Timestamps move with the reference day (weekly schedules also follow the weekday: shift 6 weeks).
    shift = timedelta(days=42)
    later = build_site("demo", seed=7, content_url="demo", today=TODAY + shift)
    assert [w.updated_at + shift for w in demo.workbooks.values()] == [
        w.updated_at for w in later.workbooks.values()
    ]
    assert [j.created_at + shift for j in demo.jobs.values()] == [j.created_at for j in later.jobs.values()]


def test_default_reference_day_is_utc_midnight_today():
    day = reference_day()
    now = datetime.now(UTC)
    assert day.tzinfo is not None and (day.hour, day.minute, day.second) == (0, 0, 0)
    assert timedelta(0) <= now - day < timedelta(days=1, seconds=5)
    site = build_site()
    stamps = [u.last_login for u in site.users.values() if u.last_login] + [
        w.updated_at for w in site.workbooks.values()
    ]
    assert max(stamps) <= day
    assert min(day - t for t in stamps) < timedelta(days=2)  # someone signed in "yesterday"


def test_hash_randomization_does_not_change_the_site():
    """No set iteration order leaks into the draws: two interpreters with different hash seeds agree."""
    script = (
        "import hashlib, sys; from datetime import datetime, UTC; sys.path.insert(0, 'tests/emulator');"
        "from emulator.generator import build_site; from test_generator import signature;"
        "s = build_site('demo', today=datetime(2026, 3, 18, tzinfo=UTC));"
        "print(hashlib.sha256(repr(signature(s)).encode()).hexdigest())"
    )
    root = Path(__file__).resolve().parents[2]
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(digests) == 1


def test_a_different_seed_gives_a_different_site(demo):
    other = build_site("demo", seed=8, content_url="demo", today=TODAY)
    assert set(other.workbooks).isdisjoint(demo.workbooks)
    assert set(other.users).isdisjoint(demo.users)
    assert [v.total_view_count for v in other.views.values()] != [
        v.total_view_count for v in demo.views.values()
    ]


def test_content_url_and_unknown_size():
    assert build_site(content_url="acme", today=TODAY).content_url == "acme"
    with pytest.raises(ValueError, match="unknown site size"):
        build_site("medium")


# --------------------------------------------------------------------------------------------------
# invariants, on both sizes


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except (ValueError, TypeError):
        return False


def _content(site: m.SiteState):
    yield from site.workbooks.values()
    yield from site.views.values()
    yield from site.datasources.values()
    yield from site.flows.values()


def test_all_ids_are_uuids(site):
    ids = [site.id, *site.users, *site.groups, *site.projects, *site.workbooks, *site.views]
    ids += [*site.datasources, *site.flows, *site.schedules, *site.tasks, *site.jobs]
    ids += [c.id for item in (*site.workbooks.values(), *site.datasources.values()) for c in item.connections]
    ids += [a.client_id for a in site.connected_apps.values()] + [
        a.secret_id for a in site.connected_apps.values()
    ]
    assert all(_is_uuid(i) for i in ids)
    assert len(ids) == len(set(ids))
    for key, item in [
        *site.users.items(),
        *site.projects.items(),
        *site.workbooks.items(),
        *site.jobs.items(),
    ]:
        assert item.id == key


def test_owners_and_references_exist(site):
    for item in (*site.projects.values(), *_content(site)):
        assert item.owner_id in site.users
    for item in (*site.workbooks.values(), *site.datasources.values(), *site.flows.values()):
        assert item.project_id in site.projects
    for view in site.views.values():
        wb = site.workbooks[view.workbook_id]
        assert view.id in wb.view_ids and view.owner_id == wb.owner_id
    assert sum(len(w.view_ids) for w in site.workbooks.values()) == len(site.views)
    for wb in site.workbooks.values():
        assert wb.view_ids and all(v in site.views for v in wb.view_ids)
        for conn in wb.connections:
            assert conn.datasource_id is None or conn.datasource_id in site.datasources
    for group in site.groups.values():
        assert group.member_ids <= site.users.keys()


def test_projects_form_a_forest(site):
    for project in site.projects.values():
        seen = set()
        current: str | None = project.id
        while current is not None:
            assert current in site.projects, f"missing parent {current}"
            assert current not in seen, f"cycle through {project.name}"
            seen.add(current)
            current = site.projects[current].parent_id
    assert any(p.parent_id for p in site.projects.values())
    assert {p.content_permissions for p in site.projects.values()} == set(m.LOCK_MODES)
    siblings = Counter((p.parent_id, p.name) for p in site.projects.values())
    assert max(siblings.values()) == 1


def test_nested_projects_of_locked_projects_are_locked(site):
    for project in site.projects.values():
        parent = site.projects.get(project.parent_id or "")
        if parent is not None and parent.content_permissions == "LockedToProject":
            assert project.content_permissions == "LockedToProject"


def test_names_and_content_urls_are_unique(site):
    for kind in ("workbooks", "datasources", "flows"):
        items = getattr(site, kind).values()
        assert max(Counter((i.project_id, i.name) for i in items).values()) == 1
    for kind in ("workbooks", "datasources"):
        urls = [i.content_url for i in getattr(site, kind).values()]
        assert len(urls) == len(set(urls)) and all(urls)
    assert len({v.content_url for v in site.views.values()}) == len(site.views)
    for view in site.views.values():
        wb = site.workbooks[view.workbook_id]
        assert view.content_url == f"{wb.content_url}/sheets/{view.view_url_name}"
    assert len({u.name.lower() for u in site.users.values()}) == len(site.users)


def test_people(site):
    roles = Counter(u.site_role for u in site.users.values())
    assert set(roles) == set(m.SITE_ROLES)
    admin = site.user_by_name(ADMIN_NAME)
    assert admin is not None and admin.site_role == "SiteAdministratorCreator"
    assert site.site_admin() is admin
    assert admin.password == ADMIN_PASSWORD
    assert [u for u in site.users.values() if u.password] == [admin]
    assert all("@" in u.name and u.email == u.name for u in site.users.values())
    assert any(u.last_login is None for u in site.users.values())
    everyone = next(g for g in site.groups.values() if g.name == "All Users")
    assert everyone.member_ids == set(site.users)
    assert not site.pats
    assert (
        CONNECTED_APP_CLIENT_ID in site.connected_apps
        and site.connected_apps[CONNECTED_APP_CLIENT_ID].enabled
    )
    assert site.run_now_enabled


def test_unlicensed_and_inactive_users_still_own_content(site):
    owners = {item.owner_id for item in (*site.projects.values(), *_content(site))}
    day = reference_day(TODAY)
    unlicensed = [u for u in site.users.values() if u.site_role == "Unlicensed" and u.id in owners]
    inactive = [
        u
        for u in site.users.values()
        if u.id in owners and u.last_login and day - u.last_login > timedelta(365)
    ]
    assert unlicensed and inactive
    assert any(day - w.updated_at > timedelta(365) for w in site.workbooks.values())  # stale content
    # Content never changes after its owner was last seen.
    for item in _content(site):
        owner = site.users[item.owner_id]
        assert item.created_at <= item.updated_at
        if owner.last_login is not None:
            assert item.updated_at <= owner.last_login + timedelta(days=1)


def test_timestamps_are_aware_and_in_the_past(site):
    day = reference_day(TODAY)
    stamps = [u.created_at for u in site.users.values()] + [u.last_login for u in site.users.values()]
    for item in (*site.projects.values(), *_content(site), *site.schedules.values()):
        stamps += [item.created_at, item.updated_at]
    for job in site.jobs.values():
        stamps += [job.created_at, job.started_at, job.completed_at]
    stamps = [s for s in stamps if s is not None]
    assert all(s.tzinfo is not None and s <= day for s in stamps)
    for sched in site.schedules.values():
        assert sched.next_run_at is None or sched.next_run_at > day


def test_rules_use_valid_capabilities_and_existing_grantees(site):
    tables = [(kind, rules) for (kind, _), rules in site.permissions.items()]
    tables += [(ctype, rules) for (_, ctype), rules in site.default_permissions.items()]
    for kind, rules in tables:
        for (grantee_kind, grantee_id), caps in rules.items():
            assert grantee_id in (site.users if grantee_kind == "user" else site.groups)
            assert caps, "no empty capability sets"
            assert set(caps) <= CAPABILITIES[kind], (kind, set(caps) - CAPABILITIES[kind])
            assert set(caps.values()) <= {"Allow", "Deny"}
    for kind, item_id in site.permissions:
        assert kind in m.PERMISSION_RESOURCES
        assert item_id in getattr(site, kind)
    for project_id, ctype in site.default_permissions:
        assert project_id in site.projects and ctype in m.DEFAULT_PERMISSION_TYPES


def test_allow_and_deny_at_user_and_group_level(site):
    seen = {
        (grantee_kind, mode)
        for rules in site.permissions.values()
        for (grantee_kind, _), caps in rules.items()
        for mode in caps.values()
    }
    assert seen == {("user", "Allow"), ("user", "Deny"), ("group", "Allow"), ("group", "Deny")}
    leaders = [r for (kind, _), r in site.permissions.items() if kind == "projects" for c in r.values()
               if c.get("ProjectLeader") == "Allow"]  # fmt: skip
    assert leaders
    kinds = {kind for kind, _ in site.permissions}
    assert kinds == set(m.PERMISSION_RESOURCES)


def test_view_rules_only_where_tabs_are_hidden(site):
    for kind, item_id in site.permissions:
        if kind == "views":
            assert not site.workbooks[site.views[item_id].workbook_id].show_tabs


def _controlling(site: m.SiteState, project_id: str) -> str | None:
    chain = []
    current: str | None = project_id
    while current is not None:
        chain.append(site.projects[current])
        current = chain[-1].parent_id
    top = [p for p in chain if p.content_permissions == "LockedToProject"]
    if top:
        return top[-1].id
    return project_id if chain[0].content_permissions == "LockedToProjectWithoutNested" else None


def test_locked_content_carries_its_projects_template(site):
    checked = 0
    for kind in ("workbooks", "datasources", "flows"):
        for item in getattr(site, kind).values():
            ctl = _controlling(site, item.project_id)
            if ctl is not None:
                assert site.permissions[(kind, item.id)] == site.default_permissions[(ctl, kind)]
                checked += 1
    assert checked


def test_extracts_tasks_and_jobs(site):
    failing = [i for i in (*site.workbooks.values(), *site.datasources.values()) if i.refresh_failure]
    assert failing and all(i.has_extracts for i in failing)
    assert any(isinstance(i, m.Workbook) for i in failing) and any(
        isinstance(i, m.Datasource) for i in failing
    )
    for task in site.tasks.values():
        assert task.schedule_id in site.schedules
        target = (site.workbooks if task.target_kind == "workbook" else site.datasources)[task.target_id]
        assert target.has_extracts
        if target.refresh_failure:
            assert task.consecutive_failed_count > 0
    for sched in site.schedules.values():
        assert sched.frequency in ("Hourly", "Daily", "Weekly", "Monthly")
        if sched.frequency == "Hourly":
            assert sched.interval_hours in (1, 2, 4, 6, 8, 12)
        if sched.frequency == "Weekly":
            assert sched.week_days and set(sched.week_days) <= {
                "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"
            }  # fmt: skip
        hh, mm, ss = sched.start_time.split(":")
        assert 0 <= int(hh) < 24 and 0 <= int(mm) < 60 and 0 <= int(ss) < 60
    statuses = Counter(j.status for j in site.jobs.values())
    assert set(statuses) == {"Success", "Failed"}
    for job in site.jobs.values():
        targets = {"workbook": site.workbooks, "datasource": site.datasources, "flow": site.flows}
        assert job.target_id in targets[job.target_kind]
        assert job.finish_code == (0 if job.status == "Success" else 1)
        assert (job.failure is not None) == (job.status == "Failed")
        assert job.created_at <= job.started_at <= job.completed_at
        assert job.elapsed >= job.queue_seconds + job.run_seconds
        assert job.task_id is None or job.task_id in site.tasks
        if job.status == "Failed":
            assert job.notes == job.failure


# --------------------------------------------------------------------------------------------------
# the demo story


def _user(site: m.SiteState, full_name: str) -> m.User:
    return next(u for u in site.users.values() if u.full_name == full_name)


def _by_name(items, name: str):
    return next(i for i in items.values() if i.name == name)


def test_demo_shape(demo):
    assert 10 <= len(demo.projects) <= 20
    assert 55 <= len(demo.workbooks) <= 75
    assert 25 <= len(demo.datasources) <= 40
    assert len(demo.users) >= 40
    assert 3 <= len(demo.flows) <= 10
    assert all(2 <= len(w.view_ids) <= 8 for w in demo.workbooks.values())
    assert {v.sheet_type for v in demo.views.values()} == {"worksheet", "dashboard", "story"}
    assert Counter(u.site_role for u in demo.users.values())["Unlicensed"] >= 3
    paths = {demo.project_path(p) for p in demo.projects}
    assert {"Finance/Forecasts", "Sales/EMEA", "Sales/Americas", "Data Engineering/Staging"} <= paths
    assert any(c.datasource_id for w in demo.workbooks.values() for c in w.connections)
    types = {d.type for d in demo.datasources.values()}
    assert {"postgres", "snowflake", "sqlserver", "excel-direct", "hyper"} <= types
    # View counts are skewed: the busiest tenth of the views has most of the traffic.
    counts = sorted((v.total_view_count for v in demo.views.values()), reverse=True)
    assert sum(counts[: len(counts) // 10]) > sum(counts) / 2


def test_demo_failing_extracts_are_the_documented_ones(demo):
    failing = {
        i.name: i.refresh_failure
        for i in (*demo.workbooks.values(), *demo.datasources.values())
        if i.refresh_failure
    }
    assert set(failing) == {"Legacy Ops DB", "Warehouse Usage & Cost", "Marketo Leads", "Sales Review 2021"}
    assert 'Unable to connect to the server "warehouse.internal"' in failing["Legacy Ops DB"]
    assert failing["Warehouse Usage & Cost"] == "The query time resource limit (7200 seconds) was exceeded."
    timeouts = [j for j in demo.jobs.values() if j.failure == failing["Warehouse Usage & Cost"]]
    assert timeouts and all(j.completed_at - j.started_at == timedelta(hours=2) for j in timeouts)


def test_demo_permission_stories(demo):
    finance = _by_name(demo.projects, "Finance")
    contractors = _by_name(demo.groups, "Contractors")
    tom = _user(demo, "Tom Becker")
    rules = demo.permissions[("projects", finance.id)]
    assert rules[("group", contractors.id)]["Read"] == "Deny"
    assert rules[("user", tom.id)]["Read"] == "Allow" and tom.id in contractors.member_ids
    # HR is locked without nested projects, so an item rule in HR/People Analytics lets contractors in.
    hr = _by_name(demo.projects, "HR")
    assert hr.content_permissions == "LockedToProjectWithoutNested"
    comp = _by_name(demo.workbooks, "Compensation Benchmarks")
    assert demo.project_path(comp.project_id) == "HR/People Analytics"
    assert demo.permissions[("workbooks", comp.id)][("group", contractors.id)]["Read"] == "Allow"
    executive = _by_name(demo.projects, "Executive")
    board = _by_name(demo.projects, "Board Pack")
    assert (executive.content_permissions, board.parent_id) == ("LockedToProject", executive.id)
    assert demo.permissions[("projects", board.id)] == demo.permissions[("projects", executive.id)]


# --------------------------------------------------------------------------------------------------
# the large site


def test_large_site_counts(large):
    assert len(large.workbooks) >= 20_000
    assert len(large.views) >= 60_000
    assert len(large.datasources) >= 5_000
    assert len(large.users) >= 10_000
    assert len(large.groups) >= 500
    assert len(large.projects) >= 1_000
    assert max(_depth(large, p) for p in large.projects) >= 2
    assert len(large.tasks) >= 1_000 and len(large.jobs) >= 2_000
    assert len(large.permissions) >= len(large.workbooks) + len(large.datasources) + len(large.projects)


def _depth(site: m.SiteState, project_id: str) -> int:
    depth = 0
    while site.projects[project_id].parent_id is not None:
        project_id = site.projects[project_id].parent_id
        depth += 1
    return depth
