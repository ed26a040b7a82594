"""The emulator speaks Tableau's JSON: `Accept: application/json` answers, JSON request bodies, paths as
Tableau matches them, and the same data as the XML of the same request for every endpoint family.

Requests go over a real socket with plain `requests`, the way non-Python clients (tableau-mcp) call.
"""

from __future__ import annotations

import re

import pytest
import requests

from emulator.jsonout import mismatch, xml_to_json
from emulator.routing import router
from emulator.testing import ADMIN_PAT, PASSWORD

JSON = {"Accept": "application/json"}
JSON_BODY = {"Accept": "application/json", "Content-Type": "application/json"}


def _sign_in(emu, api: str) -> tuple[str, str, str]:
    body = {
        "credentials": {
            "personalAccessTokenName": ADMIN_PAT[0],
            "personalAccessTokenSecret": ADMIN_PAT[1],
            "site": {"contentUrl": emu.state.content_url},
        }
    }
    reply = requests.post(f"{api}/auth/signin", json=body, headers=JSON, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    credentials = reply.json()["credentials"]
    return credentials["token"], credentials["site"]["id"], credentials["user"]["id"]


@pytest.fixture
def api(small_emulator):
    return f"{small_emulator.url}/api/3.24"


@pytest.fixture
def session(small_emulator, api):
    token, site_id, user_id = _sign_in(small_emulator, api)
    http = requests.Session()
    http.headers.update({"X-Tableau-Auth": token, **JSON})
    return http, f"{api}/sites/{site_id}", user_id


def test_sign_in_answers_tableaus_credentials_object(small_emulator, api):
    body = {"credentials": {"name": "admin@example.com", "password": PASSWORD, "site": {"contentUrl": "small"}}}
    reply = requests.post(f"{api}/auth/signin", json=body, headers=JSON, timeout=10).json()
    # The tsResponse wrapper is dropped; attributes are string keys; site and user are objects.
    assert set(reply) == {"credentials"}
    credentials = reply["credentials"]
    assert set(credentials) == {"token", "estimatedTimeToExpiration", "site", "user"}
    assert credentials["site"] == {"id": small_emulator.state.id, "contentUrl": "small"}
    admin = small_emulator.state.user_by_name("admin@example.com")
    assert credentials["user"] == {"id": admin.id}


def test_serverinfo_in_lower_case_and_the_current_session(small_emulator, api, session):
    info = requests.get(f"{api}/serverinfo", headers=JSON, timeout=10).json()
    assert info["serverInfo"]["restApiVersion"] == "3.24"
    assert set(info["serverInfo"]["productVersion"]) == {"value", "build"}  # text + attribute
    http, _, user_id = session
    current = http.get(f"{api}/sessions/current", timeout=10).json()["session"]
    assert current["user"]["id"] == user_id and current["user"]["siteRole"] == "SiteAdministratorCreator"
    assert current["site"]["contentUrl"] == small_emulator.state.content_url


def test_a_list_page_has_string_pagination_arrays_and_empty_objects(small_emulator, session):
    http, site, _ = session
    page = http.get(f"{site}/workbooks", params={"pageSize": 5, "sort": "name:asc"}, timeout=10).json()
    assert page["pagination"] == {"pageNumber": "1", "pageSize": "5", "totalAvailable": "12"}
    first = page["workbooks"]["workbook"][0]
    assert first["name"] == "Workbook 00" and first["size"] == "1" and first["showTabs"] in ("true", "false")
    assert first["tags"] == {"tag": [{"label": "finance"}]}  # one tag is still an array
    assert set(first["project"]) == {"id", "name"} and set(first["owner"]) == {"id"}
    empty = http.get(f"{site}/workbooks", params={"filter": "name:eq:Nothing"}, timeout=10).json()
    assert empty == {"pagination": {"pageNumber": "1", "pageSize": "100", "totalAvailable": "0"}, "workbooks": {}}
    one = http.get(f"{site}/users", params={"filter": "name:eq:viewer@example.com"}, timeout=10).json()
    assert isinstance(one["users"]["user"], list) and len(one["users"]["user"]) == 1


def test_errors_are_code_summary_detail(small_emulator, api, session):
    http, site, _ = session
    missing = http.get(f"{site}/workbooks/00000000-0000-0000-0000-000000000000", timeout=10)
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "code": "404006",
            "summary": "Resource Not Found",
            "detail": "Workbook '00000000-0000-0000-0000-000000000000' could not be found.",
        }
    }
    unauthenticated = requests.get(f"{site}/workbooks", headers=JSON, timeout=10)
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"]["code"] == "401000"
    small_emulator.control.inject_429(1, retry_after=1)
    limited = http.get(f"{site}/workbooks", timeout=10)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "429000"


def test_json_request_bodies_are_accepted_wherever_xml_is(small_emulator, session):
    http, site, _ = session
    state = small_emulator.state
    finance = next(p for p in state.projects.values() if p.name == "Finance")
    created = http.post(
        f"{site}/projects",
        json={"project": {"name": "From JSON", "parentProjectId": finance.id, "description": "made by JSON"}},
        headers=JSON_BODY,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    project = created.json()["project"]
    assert (project["name"], project["parentProjectId"], project["topLevelProject"]) == (
        "From JSON", finance.id, "false"
    )
    workbook = next(iter(state.workbooks.values()))
    updated = http.put(
        f"{site}/workbooks/{workbook.id}", json={"workbook": {"showTabs": False, "name": "Renamed"}},
        headers=JSON_BODY, timeout=10,
    )
    assert updated.status_code == 200 and updated.json()["workbook"]["showTabs"] == "false"
    assert (workbook.name, workbook.show_tabs) == ("Renamed", False)
    tagged = http.put(
        f"{site}/workbooks/{workbook.id}/tags", json={"tags": {"tag": [{"label": "a"}, {"label": "b"}]}},
        headers=JSON_BODY, timeout=10,
    )
    assert tagged.status_code == 200 and {"a", "b"} <= workbook.tags
    group = http.post(f"{site}/groups", json={"group": {"name": "JSON people"}}, headers=JSON_BODY, timeout=10)
    assert group.status_code == 201, group.text
    viewer = state.user_by_name("viewer@example.com")
    added = http.post(
        f"{site}/groups/{group.json()['group']['id']}/users", json={"user": {"id": viewer.id}},
        headers=JSON_BODY, timeout=10,
    )
    assert added.status_code == 200, added.text
    rules = http.put(
        f"{site}/projects/{finance.id}/permissions",
        json={"permissions": {"granteeCapabilities": [
            {"user": {"id": viewer.id}, "capabilities": {"capability": [{"name": "Read", "mode": "Allow"}]}}
        ]}},
        headers=JSON_BODY, timeout=10,
    )
    assert rules.status_code == 200, rules.text
    assert state.permissions[("projects", finance.id)][("user", viewer.id)] == {"Read": "Allow"}
    blocks = rules.json()["permissions"]["granteeCapabilities"]
    assert {"user": {"id": viewer.id}, "capabilities": {"capability": [{"name": "Read", "mode": "Allow"}]}} in blocks


def test_malformed_json_bodies_are_a_clear_400(session):
    http, site, _ = session
    for body in (b"{not json", b"[1, 2]"):
        reply = http.post(f"{site}/projects", data=body, headers=JSON_BODY, timeout=10)
        assert reply.status_code == 400 and reply.json()["error"]["code"] == "400000"
        assert "JSON" in reply.json()["error"]["detail"]


# -- the mapping, for every endpoint family ---------------------------------------------------------------


def _get_paths(emu, site: str, user_id: str) -> dict[str, str]:
    """One concrete request per GET route (pattern → URL path under /api/3.24), every family."""
    state = emu.state
    wb = next(iter(state.workbooks.values()))
    project = next(p for p in state.projects.values() if p.name == "Finance")
    group = next(iter(state.groups.values()))
    flow = next(iter(state.flows.values()))
    job = next(iter(state.jobs.values()))
    task = next(iter(state.tasks.values()))
    schedule = next(iter(state.schedules.values()))
    flow = next(iter(state.flows.values()))
    ds = next(iter(state.datasources.values()))
    view_id = wb.view_ids[0]
    s = f"/sites/{site}"
    return {
        "/serverInfo": "/serverinfo",
        "/sessions/current": "/sessions/current",
        "/sites": "/sites",
        "/sites/{site_ref}": f"/sites/{site}",
        "/sites/{site}/projects": f"{s}/projects?fields=_all_",
        "/sites/{site}/workbooks": f"{s}/workbooks?fields=_default_,owner.name,owner.email,project.name",
        "/sites/{site}/workbooks/{id}": f"{s}/workbooks/{wb.id}",
        "/sites/{site}/workbooks/{id}/views": f"{s}/workbooks/{wb.id}/views?includeUsageStatistics=true",
        "/sites/{site}/workbooks/{id}/connections": f"{s}/workbooks/{wb.id}/connections",
        "/sites/{site}/datasources": f"{s}/datasources?fields=_default_,owner.name,project.name",
        "/sites/{site}/datasources/{id}": f"{s}/datasources/{ds.id}",
        "/sites/{site}/datasources/{id}/connections": f"{s}/datasources/{ds.id}/connections",
        "/sites/{site}/views": f"{s}/views?includeUsageStatistics=true&fields=_default_,workbook.name",
        "/sites/{site}/views/{id}": f"{s}/views/{view_id}",
        "/sites/{site}/flows": f"{s}/flows",
        "/sites/{site}/flows/{id}": f"{s}/flows/{flow.id}",
        "/sites/{site}/users": f"{s}/users?fields=_all_",
        "/sites/{site}/users/{user}": f"{s}/users/{user_id}",
        "/sites/{site}/users/{user}/groups": f"{s}/users/{user_id}/groups",
        "/sites/{site}/users/{user}/workbooks": f"{s}/users/{user_id}/workbooks",
        "/sites/{site}/groups": f"{s}/groups?fields=_default_,userCount",
        "/sites/{site}/groups/{group}/users": f"{s}/groups/{group.id}/users",
        "/sites/{site}/jobs": f"{s}/jobs",
        "/sites/{site}/jobs/{job}": f"{s}/jobs/{job.id}",
        "/sites/{site}/tasks/extractRefreshes": f"{s}/tasks/extractRefreshes",
        "/sites/{site}/tasks/extractRefreshes/{task}": f"{s}/tasks/extractRefreshes/{task.id}",
        "/schedules": "/schedules",
        "/schedules/{schedule}": f"/schedules/{schedule.id}",
        "/sites/{site}/{resource}/{id}/permissions": f"{s}/workbooks/{wb.id}/permissions",
        "/sites/{site}/projects/{id}/default-permissions/{ctype}": f"{s}/projects/{project.id}/default-permissions/workbooks",
    }


def test_every_get_endpoint_answers_the_same_data_in_json_and_xml(small_emulator, session, api):
    http, site_url, user_id = session
    site = site_url.rsplit("/", 1)[1]
    paths = _get_paths(small_emulator, site, user_id)
    registered = {r.pattern for r in router.routes if r.method == "GET"}
    assert registered <= set(paths), f"GET routes without a JSON mapping check: {registered - set(paths)}"
    for pattern, path in paths.items():
        as_json = http.get(f"{api}{path}", timeout=10)
        as_xml = http.get(f"{api}{path}", headers={"Accept": "application/xml"}, timeout=10)
        assert as_json.status_code == as_xml.status_code == 200, (pattern, as_json.text)
        inner = re.sub(r"^.*?<tsResponse[^>]*>|</tsResponse>\s*$", "", as_xml.text, flags=re.DOTALL)
        assert mismatch(inner, as_json.json()) is None, pattern
    # The harness (start_emulator) re-rendered each of those in the other format too and compared.
    assert small_emulator.json_mismatches == []


def test_the_mapping_check_catches_a_wrong_shape():
    xml = '<workbooks><workbook id="1" size="3"><tags><tag label="a"/></tags></workbook></workbooks>'
    right = xml_to_json(xml)
    assert right == {"workbooks": {"workbook": [{"id": "1", "size": "3", "tags": {"tag": [{"label": "a"}]}}]}}
    assert mismatch(xml, right) is None
    assert "array" in mismatch(xml, {"workbooks": {"workbook": {"id": "1", "size": "3", "tags": {}}}})
    assert "size" in mismatch(xml, {"workbooks": {"workbook": [{"id": "1", "size": 3, "tags": {"tag": [{"label": "a"}]}}]}})
    assert "lacks" in mismatch(xml, {"workbooks": {"workbook": [{"id": "1", "size": "3", "x": "1", "tags": {}}]}})


def test_remembered_list_items_follow_every_change_to_the_model(small_emulator, session, api):
    http, site, _ = session
    state = small_emulator.state
    query = {"fields": "_default_,owner.name,owner.email,project.name", "sort": "name:asc"}

    def first(accept: str) -> tuple[str, str, str, str]:
        reply = http.get(f"{site}/workbooks", params=query, headers={"Accept": accept}, timeout=10)
        if accept == "application/json":
            wb = reply.json()["workbooks"]["workbook"][0]
            return wb["name"], wb["owner"]["name"], wb["project"]["name"], ",".join(t["label"] for t in wb["tags"]["tag"])
        found = re.search(r'<workbook id="[^"]+" name="([^"]+)".*?<project id="[^"]+" name="([^"]+)"/>'
                          r'<owner id="[^"]+" name="([^"]+)".*?<tags>(.*?)</tags>', reply.text)
        assert found is not None
        labels = ",".join(re.findall(r'label="([^"]+)"', found.group(4)))
        return found.group(1), found.group(3), found.group(2), labels

    before = {accept: first(accept) for accept in ("application/json", "application/xml")}
    assert before["application/json"] == before["application/xml"]
    with small_emulator.lock:
        wb = min(state.workbooks.values(), key=lambda w: w.name)
        wb.name = "A renamed workbook"
        wb.tags.add("zzz")
        state.users[wb.owner_id].name = "renamed.owner@example.com"
        state.projects[wb.project_id].name = "Renamed project"
    for accept in ("application/json", "application/xml"):
        name, owner, project, tags = first(accept)
        assert (name, owner, project) == ("A renamed workbook", "renamed.owner@example.com", "Renamed project")
        assert tags.endswith("zzz")


def test_a_reused_sort_order_follows_a_rename_that_moves_an_item(monkeypatch):
    from emulator import query, tables
    from emulator.testing import small_site

    sorts = []
    real_sort = query._sort
    monkeypatch.setattr(query, "_sort", lambda items, keys: sorts.append(1) or real_sort(items, keys))
    site = small_site(workbooks=1200)  # big enough for the emulator to keep the sorted order
    table = tables.workbooks(site)
    page = {"sort": ["name:asc"], "pageSize": ["1000"]}
    first, _, _ = query.select(site.workbooks.values(), page, table)
    again, _, _ = query.select(site.workbooks.values(), page, table)
    assert again == first and len(sorts) == 1  # the kept order was reused
    last = max(site.workbooks.values(), key=lambda w: w.name)
    last.name = "AAA now first"
    moved, _, _ = query.select(site.workbooks.values(), page, table)
    assert moved[0] is last and len(sorts) == 2


def test_every_write_with_a_body_accepts_json(small_emulator, session, api):
    http, site, _ = session
    state = small_emulator.state
    ds = next(iter(state.datasources.values()))
    wb = next(w for w in state.workbooks.values() if w.has_extracts and not w.refresh_failure)
    sandbox = next(p for p in state.projects.values() if p.name == "Sandbox")
    analysts = next(g for g in state.groups.values() if g.name == "Analysts")
    viewer = state.user_by_name("viewer@example.com")
    flow = next(iter(state.flows.values()))
    job = next(iter(state.jobs.values()))
    # Cancelling a finished job is Tableau's 409 (the body was still read); a queued or running one is cancelled.
    cancel_status = 409 if job.completed_at is not None else 200
    s = site.replace(api, "")
    writes = [  # (method, route pattern, path, JSON body, expected status)
        ("POST", "/auth/switchSite", "/auth/switchSite", {"site": {"contentUrl": "elsewhere"}}, 401),
        ("PUT", "/sites/{site}/datasources/{id}", f"{s}/datasources/{ds.id}", {"datasource": {"isCertified": True}}, 200),
        ("PUT", "/sites/{site}/flows/{id}", f"{s}/flows/{flow.id}", {"flow": {"owner": {"id": flow.owner_id}}}, 200),
        ("POST", "/sites/{site}/workbooks/{id}/refresh", f"{s}/workbooks/{wb.id}/refresh", {}, 202),
        ("POST", "/sites/{site}/datasources/{id}/refresh", f"{s}/datasources/{ds.id}/refresh", {}, 202),
        ("POST", "/sites/{site}/users", f"{s}/users", {"user": {"name": "json.user", "siteRole": "Viewer"}}, 201),
        ("PUT", "/sites/{site}/users/{user}", f"{s}/users/{viewer.id}", {"user": {"fullName": "Vic Viewer"}}, 200),
        ("PUT", "/sites/{site}/groups/{group}", f"{s}/groups/{analysts.id}", {"group": {"name": "Analysts 2"}}, 200),
        ("POST", "/sites/{site}/groups/{group}/users", f"{s}/groups/{analysts.id}/users",
         {"users": {"user": [{"id": viewer.id}]}}, 200),
        ("PUT", "/sites/{site}/groups/{group}/users/remove", f"{s}/groups/{analysts.id}/users/remove",
         {"users": {"user": [{"id": viewer.id}]}}, 204),
        ("PUT", "/sites/{site}/projects/{id}/default-permissions/{ctype}",
         f"{s}/projects/{sandbox.id}/default-permissions/workbooks",
         {"permissions": {"granteeCapabilities": [{"group": {"id": analysts.id},
                                                   "capabilities": {"capability": [{"name": "Read", "mode": "Allow"}]}}]}},
         200),
        ("PUT", "/sites/{site}/projects/{project}", f"{s}/projects/{sandbox.id}",
         {"project": {"description": "described in JSON"}}, 200),
        ("PUT", "/sites/{site}/jobs/{job}", f"{s}/jobs/{job.id}", {}, cancel_status),
    ]
    for method, pattern, path, body, status in writes:
        reply = http.request(method, f"{api}{path}", json=body, headers=JSON_BODY, timeout=10)
        assert reply.status_code == status, (pattern, reply.text)
        if reply.content:
            assert reply.headers["content-type"].startswith("application/json"), pattern
    assert ds.is_certified and viewer.full_name == "Vic Viewer" and analysts.name == "Analysts 2"
    assert state.user_by_name("json.user") is not None and sandbox.description == "described in JSON"
    assert state.default_permissions[(sandbox.id, "workbooks")][("group", analysts.id)] == {"Read": "Allow"}
    assert viewer.id not in analysts.member_ids
    covered = {pattern for _, pattern, *_ in writes} | {  # the other writes, earlier in this file
        "/auth/signin", "/sites/{site}/projects", "/sites/{site}/workbooks/{id}", "/sites/{site}/{resource}/{id}/tags",
        "/sites/{site}/groups", "/sites/{site}/{resource}/{id}/permissions",
    }
    bodiless = {"/auth/signout", "/sites/{site}/tasks/extractRefreshes/{task}/runNow"}
    writes_registered = {r.pattern for r in router.routes if r.method in ("POST", "PUT")}
    assert writes_registered <= covered | bodiless, writes_registered - covered - bodiless
