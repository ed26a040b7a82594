"""Test helpers for every test directory: a small purpose-built site and `start_emulator`.

`start_emulator` always validates every XML response against the patched XSD and fails at exit
when one did not validate; that is how the suite checks "every response validates". It also
renders every successful GET as JSON too and fails at exit when the JSON and the XML do not carry
the same data (Tableau's mapping, `emulator.jsonout`): every endpoint the suite reads is checked
in both formats.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from . import model as m
from .runner import EmulatorServer

ADMIN_PAT = ("admin-pat", "admin-pat-secret-for-tests")
EXPLORER_PAT = ("explorer-pat", "explorer-pat-secret-for-tests")
CREATOR_PAT = ("creator-pat", "creator-pat-secret-for-tests")
CONNECTED_APP = ("ca-client-id", "ca-secret-id", "connected-app-secret-value-for-tests-0123456789")
PASSWORD = "correct horse battery staple"


def small_site(seed: int = 11, content_url: str = "small", workbooks: int = 12) -> m.SiteState:
    """A hand-built site with every kind of item, small enough to reason about in assertions.

    Users: admin (SiteAdministratorCreator), creator, explorer, viewer. Projects: Finance (with a
    nested Reports project, locked) and Sandbox. Workbook 0 has extracts, workbook 1 has extracts
    that always fail to refresh; datasource 0 has extracts. PATs for admin, explorer and creator;
    one connected app; every user's password is `PASSWORD`.
    """
    rng = Random(seed)
    base = datetime(2024, 1, 1, tzinfo=UTC)

    def at(days: int) -> datetime:
        return base + timedelta(days=days)

    site = m.SiteState(id=m.new_id(rng), name="Small Test Site", content_url=content_url, created_at=base)

    def user(name: str, role: str, day: int) -> m.User:
        u = m.User(
            id=m.new_id(rng),
            name=f"{name}@example.com",
            full_name=name.capitalize() + " Tester",
            email=f"{name}@example.com",
            site_role=role,
            created_at=at(day),
            password=PASSWORD,
        )
        site.users[u.id] = u
        return u

    admin = user("admin", "SiteAdministratorCreator", 0)
    creator = user("creator", "Creator", 1)
    explorer = user("explorer", "Explorer", 2)
    viewer = user("viewer", "Viewer", 3)

    everyone = m.Group(id=m.new_id(rng), name="All Users", member_ids={u.id for u in site.users.values()})
    analysts = m.Group(
        id=m.new_id(rng), name="Analysts", minimum_site_role="Explorer", member_ids={creator.id, explorer.id}
    )
    for g in (everyone, analysts):
        site.groups[g.id] = g

    finance = m.Project(
        id=m.new_id(rng),
        name="Finance",
        owner_id=admin.id,
        created_at=at(1),
        updated_at=at(5),
        description="Money matters",
    )
    reports = m.Project(
        id=m.new_id(rng),
        name="Reports",
        owner_id=creator.id,
        created_at=at(2),
        updated_at=at(6),
        parent_id=finance.id,
        content_permissions="LockedToProject",
    )
    sandbox = m.Project(
        id=m.new_id(rng), name="Sandbox", owner_id=admin.id, created_at=at(3), updated_at=at(7)
    )
    for p in (finance, reports, sandbox):
        site.projects[p.id] = p

    owners = [creator, admin, explorer]
    projects = [finance, sandbox, reports]
    for i in range(workbooks):
        wb = m.Workbook(
            id=m.new_id(rng),
            name=f"Workbook {i:02d}",
            content_url=f"Workbook{i:02d}",
            project_id=projects[i % 3].id,
            owner_id=owners[i % 3].id,
            created_at=at(10 + i),
            updated_at=at(40 - i),
            description=f"Workbook number {i}",
            size=i + 1,
            has_extracts=i in (0, 1),
            tags={"finance"} if i % 2 == 0 else {"ops", "weekly"},
            refresh_failure="Database timeout: could not connect to warehouse" if i == 1 else None,
            refresh_seconds=4.0,
        )
        for j in range(2):
            view = m.View(
                id=m.new_id(rng),
                name=f"Sheet {j + 1}",
                content_url=f"{wb.content_url}/sheets/Sheet{j + 1}",
                workbook_id=wb.id,
                owner_id=wb.owner_id,
                created_at=wb.created_at,
                updated_at=wb.updated_at,
                view_url_name=f"Sheet{j + 1}",
                total_view_count=i * 10 + j,
                sheet_type="dashboard" if j else "worksheet",
            )
            site.views[view.id] = view
            wb.view_ids.append(view.id)
        wb.connections.append(
            m.Connection(
                id=m.new_id(rng),
                type="postgres",
                server_address="db.example.com",
                server_port="5432",
                username="reader",
            )
        )
        site.workbooks[wb.id] = wb

    for i in range(3):
        ds = m.Datasource(
            id=m.new_id(rng),
            name=f"Datasource {i}",
            content_url=f"Datasource{i}",
            project_id=projects[i].id,
            owner_id=owners[i].id,
            created_at=at(20 + i),
            updated_at=at(30 + i),
            has_extracts=i == 0,
            type="snowflake" if i else "hyper",
            is_certified=i == 2,
            refresh_seconds=4.0,
        )
        ds.connections.append(
            m.Connection(
                id=m.new_id(rng),
                type=ds.type,
                server_address="warehouse.example.com",
                server_port="443",
                username="svc",
            )
        )
        site.datasources[ds.id] = ds

    flow = m.Flow(
        id=m.new_id(rng),
        name="Nightly Clean",
        project_id=sandbox.id,
        owner_id=creator.id,
        created_at=at(8),
        updated_at=at(9),
    )
    site.flows[flow.id] = flow

    daily = m.Schedule(
        id=m.new_id(rng), name="Daily 4am", created_at=at(0), updated_at=at(0), next_run_at=at(400)
    )
    hourly = m.Schedule(
        id=m.new_id(rng),
        name="Every 4 hours",
        created_at=at(0),
        updated_at=at(0),
        frequency="Hourly",
        interval_hours=4,
        start_time="00:00:00",
        end_time="23:00:00",
    )
    weekly = m.Schedule(
        id=m.new_id(rng),
        name="Mondays",
        created_at=at(0),
        updated_at=at(0),
        frequency="Weekly",
        week_days=["Monday"],
    )
    for s in (daily, hourly, weekly):
        site.schedules[s.id] = s

    wb_ids = list(site.workbooks)
    ds_ids = list(site.datasources)
    for target_kind, target_id, schedule in (
        ("workbook", wb_ids[0], daily),
        ("workbook", wb_ids[1], hourly),
        ("datasource", ds_ids[0], weekly),
    ):
        task = m.ExtractRefreshTask(
            id=m.new_id(rng), schedule_id=schedule.id, target_kind=target_kind, target_id=target_id
        )
        site.tasks[task.id] = task

    old = m.Job(
        id=m.new_id(rng),
        job_type="refresh_extracts",
        target_kind="workbook",
        target_id=wb_ids[0],
        target_name=site.workbooks[wb_ids[0]].name,
        created_at=at(50),
        started_at=at(50),
        completed_at=at(50) + timedelta(minutes=3),
        finish_code=0,
        progress=100,
        status="Success",
    )
    failed = m.Job(
        id=m.new_id(rng),
        job_type="refresh_extracts",
        target_kind="workbook",
        target_id=wb_ids[1],
        target_name=site.workbooks[wb_ids[1]].name,
        created_at=at(51),
        started_at=at(51),
        completed_at=at(51) + timedelta(minutes=1),
        finish_code=1,
        progress=100,
        status="Failed",
        notes="Database timeout",
    )
    for j in (old, failed):
        site.jobs[j.id] = j

    site.permissions[("workbooks", wb_ids[0])] = {
        ("group", analysts.id): {"Read": "Allow", "ExportData": "Deny"},
        ("user", viewer.id): {"Read": "Allow"},
    }
    site.permissions[("projects", finance.id)] = {("group", everyone.id): {"Read": "Allow"}}
    site.default_permissions[(finance.id, "workbooks")] = {("group", analysts.id): {"Read": "Allow"}}

    for name, secret, owner in ((*ADMIN_PAT, admin), (*EXPLORER_PAT, explorer), (*CREATOR_PAT, creator)):
        site.pats[name] = m.PersonalAccessToken(name=name, secret=secret, user_id=owner.id)
    client_id, secret_id, secret_value = CONNECTED_APP
    site.connected_apps[client_id] = m.ConnectedApp(
        client_id=client_id, secret_id=secret_id, secret_value=secret_value
    )
    return site


class XsdInvalidResponses(AssertionError):
    pass


class JsonMismatches(AssertionError):
    pass


@contextlib.contextmanager
def start_emulator(site: m.SiteState | None = None, **knobs: Any) -> Iterator[EmulatorServer]:
    """Serve `site` (default: `small_site()`) with XSD checks on; fail at exit if any response was invalid
    or a handler crashed.

    `knobs` are `EmulatorServer` keyword arguments (latency_ms, api_version, session_idle_seconds,
    job_speed, ...). `validate_xsd` is forced on; `check_json` is on unless passed False.
    """
    knobs["validate_xsd"] = True
    knobs.setdefault("check_json", True)
    server = EmulatorServer(site if site is not None else small_site(), **knobs)
    with server:
        yield server
    if server.handler_errors:
        raise AssertionError("the emulator crashed while handling:\n" + "\n".join(server.handler_errors[:3]))
    if server.xsd_failures:
        lines = "\n".join(f"  {f.method} {f.path} -> {f.status}: {f.error}" for f in server.xsd_failures[:20])
        raise XsdInvalidResponses(f"{len(server.xsd_failures)} response(s) failed the XSD:\n{lines}")
    if server.json_mismatches:
        lines = "\n".join(f"  {f.method} {f.path}?{f.query}: {f.problem}" for f in server.json_mismatches[:20])
        raise JsonMismatches(f"{len(server.json_mismatches)} JSON answer(s) differ from their XML:\n{lines}")


DEMO_PAT = ("steward-test", "steward-test-secret")


def add_admin_pat(site: m.SiteState, name: str = DEMO_PAT[0], secret: str = DEMO_PAT[1]) -> tuple[str, str]:
    """Give the site's administrator a PAT (generated sites may have none); returns (name, secret)."""
    site.pats[name] = m.PersonalAccessToken(name=name, secret=secret, user_id=site.site_admin().id)
    return name, secret


def signed_in_server(emu: EmulatorServer, pat: tuple[str, str] = ADMIN_PAT, timeout: float = 10) -> Any:
    """A `TSC.Server` signed in with `pat`, version negotiated, with a request timeout."""
    import tableauserverclient as TSC

    server = TSC.Server(emu.url, use_server_version=True, http_options={"timeout": timeout})
    server.auth.sign_in(TSC.PersonalAccessTokenAuth(pat[0], pat[1], site_id=emu.state.content_url))
    return server
