"""List pages: restrictive `fields` (the lean pages find_owners reads) in XML and in JSON, and the
sorted orders the emulator reuses between pages, which must follow every change to the state.

Requests go over a real socket with plain `requests` (TSC cannot send a multi-key sort or a
`fields` list verbatim); `start_emulator` also checks every XML answer against the XSD and renders
every GET in the other format and compares the two.
"""

from __future__ import annotations

import copy
import pickle
from datetime import timedelta
from xml.etree import ElementTree

import pytest
import requests

from emulator import model as m
from emulator.jsonout import xml_to_json
from emulator.testing import ADMIN_PAT, EXPLORER_PAT, signed_in_server, small_site, start_emulator

LEAN = "id,name,createdAt,updatedAt,project.id,owner.id"
CONTENT_SORT = "createdAt:asc,name:asc"
NS = "{http://tableau.com/api}"


class Api:
    """Plain GETs of one emulator's site as one signed-in user."""

    def __init__(self, emu, pat=ADMIN_PAT) -> None:
        server = signed_in_server(emu, pat)
        self.base = f"{emu.url}/api/3.24/sites/{server.site_id}"
        self.token = server.auth_token

    def get(self, path: str, json: bool = False, **params: object) -> requests.Response:
        headers = {"X-Tableau-Auth": self.token, **({"Accept": "application/json"} if json else {})}
        reply = requests.get(f"{self.base}/{path}", params=params, headers=headers, timeout=30)
        assert reply.status_code == 200, reply.text
        return reply

    def both(self, path: str, **params: object) -> tuple[bytes, dict]:
        """The XML body and the JSON answer of the same request."""
        return self.get(path, **params).content, self.get(path, json=True, **params).json()

    def names(self, path: str, tag: str, **params: object) -> list[str]:
        items = self.get(path, json=True, **params).json()[path].get(tag, [])
        return [item["name"] for item in items]


def _inner(body: bytes) -> str:
    """The inside of `<tsResponse>` (what `jsonout` maps)."""
    text = body.decode()
    return text.split(">", 2)[2].rsplit("</tsResponse>", 1)[0]


def _items(body: bytes, tag: str) -> list[ElementTree.Element]:
    return ElementTree.fromstring(body).findall(f".//{NS}{tag}s/{NS}{tag}")


@pytest.fixture
def api(small_emulator):
    return Api(small_emulator)


# -- restrictive fields ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "tag", "fields", "attrs", "children"),
    [
        ("workbooks", "workbook", LEAN, {"id", "name", "createdAt", "updatedAt"}, {"project", "owner"}),
        ("datasources", "datasource", LEAN, {"id", "name", "createdAt", "updatedAt"}, {"project", "owner"}),
        ("views", "view", LEAN, {"id", "name", "createdAt", "updatedAt"}, {"project", "owner"}),
        ("views", "view", "id,name,workbook.name,usage.x", {"id", "name"}, {"workbook", "usage"}),
        ("projects", "project", "id,name,parentProjectId,owner.name", {"id", "name", "parentProjectId"}, {"owner"}),
        ("users", "user", "id,name,siteRole,lastLogin", {"id", "name", "siteRole", "lastLogin"}, set()),
        ("workbooks", "workbook", "id,tags,owner.email", {"id"}, {"tags", "owner"}),
    ],
)
def test_restrictive_fields_carry_what_they_name_alike_in_json_and_xml(api, path, tag, fields, attrs, children):
    xml_body, answer = api.both(path, fields=fields, sort="name:asc", pageSize=100)
    items = _items(xml_body, tag)
    assert items
    for item in items:
        # Optional attributes (a top-level project's parent, a never-signed-in user's lastLogin) may be missing.
        assert set(item.attrib) <= attrs and {"id"} <= set(item.attrib)
        assert {child.tag.removeprefix(NS) for child in item} == children
    assert any(set(item.attrib) == attrs for item in items)
    # The native JSON is exactly Tableau's mapping of the XML answer.
    assert answer == xml_to_json(_inner(xml_body))
    assert [row["id"] for row in answer[path][tag]] == [item.get("id") for item in items]


def test_lean_reference_children_hold_only_ids(api, small_emulator):
    answer = api.get("workbooks", json=True, fields=LEAN, sort=CONTENT_SORT).json()
    state = small_emulator.state
    for row in answer["workbooks"]["workbook"]:
        wb = state.workbooks[row["id"]]
        assert row["project"] == {"id": wb.project_id} and row["owner"] == {"id": wb.owner_id}
        assert row["createdAt"] == wb.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("json", [True, False])
def test_a_kept_page_follows_every_change_to_what_it_shows(api, small_emulator, json):
    """Pages of plain fields and ids are kept while the change stamp stands still (`Shape._kept`): an
    attribute set, an insert and a delete each give the fresh page; shapes with computed values
    (tags, list lengths) are never kept, so a tag added in place shows at once."""
    state = small_emulator.state

    def lean() -> dict[str, dict[str, str]]:
        body = api.get("workbooks", json=json, fields=LEAN, sort="name:asc", pageSize=100)
        if json:
            return {row["id"]: {"name": row["name"], "owner": row["owner"]["id"]} for row in body.json()["workbooks"]["workbook"]}
        return {i.get("id"): {"name": i.get("name"), "owner": i.find(f"{NS}owner").get("id")}
                for i in _items(body.content, "workbook")}

    first = lean()
    assert lean() == first  # kept: the same answer
    wb, other = sorted(state.workbooks.values(), key=lambda w: w.name)[:2]
    wb.name = "Renamed in place"
    assert lean()[wb.id]["name"] == "Renamed in place"
    new_owner = next(u for u in state.users.values() if u.id != wb.owner_id)
    wb.owner_id = new_owner.id
    assert lean()[wb.id]["owner"] == new_owner.id
    del state.workbooks[other.id]
    assert other.id not in lean()
    state.workbooks[other.id] = other
    assert lean()[other.id]["name"] == other.name
    api.get("workbooks", json=json, pageSize=100)  # the default shape (tags, sheetCount): never kept
    wb.tags.add("added-in-place")
    default = api.get("workbooks", json=True, pageSize=100).json()["workbooks"]["workbook"]
    tags = next(row["tags"] for row in default if row["id"] == wb.id)
    assert {"label": "added-in-place"} in tags["tag"]


def test_fields_naming_nothing_known_give_the_default_shape(api):
    default = api.both("workbooks", sort="name:asc")
    for fields in ("bogus", "_,a,d,e,f,l,t,u"):  # the second: what TSC 0.42's QuerySet.fields() sends
        assert api.both("workbooks", sort="name:asc", fields=fields) == default
    # A known name among unknown ones makes the list restrictive to the known one.
    xml_body, answer = api.both("workbooks", sort="name:asc", fields="id,bogus,nothing.here")
    assert all(set(item.attrib) == {"id"} and len(item) == 0 for item in _items(xml_body, "workbook"))
    assert all(row.keys() == {"id"} for row in answer["workbooks"]["workbook"])


@pytest.mark.parametrize("fields", [LEAN, None, "_all_"])
def test_values_that_need_escaping_survive_both_formats(small_emulator, api, fields):
    state = small_emulator.state
    odd = 'Q&A <"quoted"> \\ back\tslash\nline — café'
    wb = next(iter(state.workbooks.values()))
    with small_emulator.lock:
        wb.name = odd
        state.users[wb.owner_id].name = odd  # `_all_` renders the owner's name too
    params = {"fields": fields} if fields else {}
    xml_body, answer = api.both("workbooks", **params)
    [element] = [item for item in _items(xml_body, "workbook") if item.get("id") == wb.id]
    [row] = [row for row in answer["workbooks"]["workbook"] if row["id"] == wb.id]
    assert element.get("name") == row["name"] == odd
    assert answer == xml_to_json(_inner(xml_body))


def test_an_empty_restrictive_page_is_an_empty_list(api):
    xml_body, answer = api.both("workbooks", fields=LEAN, filter="name:eq:no such workbook")
    assert _items(xml_body, "workbook") == []
    assert answer["workbooks"] == {} and answer["pagination"]["totalAvailable"] == "0"


# -- reused sort orders --------------------------------------------------------------------------------


@pytest.fixture
def big_emulator():
    """1,200 workbooks: enough for the emulator to keep and reuse sorted orders (from 1,000 items)."""
    with start_emulator(small_site(workbooks=1200)) as emu:
        yield emu


def test_a_reused_order_follows_attribute_changes_inserts_and_deletes(big_emulator):
    api, state = Api(big_emulator), big_emulator.state
    first_names = lambda: api.names("workbooks", "workbook", fields=LEAN, sort="name:asc", pageSize=1000)
    before = first_names()
    assert before == sorted(before, key=str.casefold) and first_names() == before

    # A direct attribute change, as a test or the job clock makes it (no request involved).
    last = state.workbooks[next(wb.id for wb in state.workbooks.values() if wb.name == before[-1])]
    last.name = "!! renamed"
    assert first_names()[0] == "!! renamed"

    # An insert straight into the collection.
    added = copy.copy(last)
    added.id, added.name = m.new_id(), "! inserted"
    state.workbooks[added.id] = added
    assert first_names()[:2] == ["! inserted", "!! renamed"]

    # A delete (pop, del) straight from the collection.
    state.workbooks.pop(added.id)
    del state.workbooks[last.id]
    after = first_names()
    assert after == sorted((wb.name for wb in state.workbooks.values()), key=str.casefold)[:1000]
    assert "! inserted" not in after and "!! renamed" not in after

    # The whole collection replaced by a plain dict in another order.
    state.workbooks = dict(reversed(list(state.workbooks.items())))
    assert isinstance(state.workbooks, m.Collection)
    assert first_names() == after


def test_a_reused_order_follows_changes_to_what_another_collection_holds(big_emulator):
    api, state = Api(big_emulator), big_emulator.state

    def first_owner() -> str:
        reply = api.get("workbooks", json=True, fields="id,owner.name", sort="ownerName:asc,name:asc", pageSize=1000)
        return reply.json()["workbooks"]["workbook"][0]["owner"]["name"]

    assert first_owner() == first_owner() == min(u.name for u in state.users.values() if u.name != "viewer@example.com")
    last_owner = max((state.users[wb.owner_id] for wb in state.workbooks.values()), key=lambda u: u.name)
    last_owner.name = "aaa-first@example.com"  # only the owner changed, not any workbook
    assert first_owner() == "aaa-first@example.com"


def test_a_sort_by_a_list_length_sees_the_list_change_in_place(big_emulator):
    api, state = Api(big_emulator), big_emulator.state

    def by_sheets() -> list[dict]:
        reply = api.get("workbooks", json=True, fields="id,sheetCount", sort="sheetCount:desc,name:asc", pageSize=1000)
        return reply.json()["workbooks"]["workbook"]

    assert by_sheets() == by_sheets()
    chosen = list(state.workbooks.values())[700]
    chosen.view_ids.extend(["extra-1", "extra-2"])  # in place: no attribute is set
    top = by_sheets()[0]
    assert top == {"id": chosen.id, "sheetCount": "4"}


def test_a_reused_order_follows_changes_for_a_non_administrator(big_emulator):
    state = big_emulator.state
    explorer = next(u for u in state.users.values() if u.name == "explorer@example.com")
    for wb in state.workbooks.values():
        wb.owner_id = explorer.id  # visible to the explorer: a list built per user, checked item by item
    api = Api(big_emulator, EXPLORER_PAT)
    first = lambda: api.names("workbooks", "workbook", fields=LEAN, sort="name:asc", pageSize=1000)[0]
    assert first() == first()
    later = list(state.workbooks.values())[-1]
    later.name = "!! explorer's first"
    assert first() == "!! explorer's first"


def test_a_reused_jobs_order_follows_job_changes_and_new_jobs(big_emulator):
    state = big_emulator.state
    base = next(iter(state.jobs.values()))
    for i in range(1000):  # enough finished jobs for the order to be kept
        job = copy.copy(base)
        job.id, job.created_at = m.new_id(), base.created_at - timedelta(minutes=i + 1)
        state.jobs[job.id] = job
    api = Api(big_emulator)

    def listed() -> list[tuple[str, str]]:
        reply = api.get("jobs", json=True, sort="status:asc,createdAt:desc", pageSize=1000)
        return [(j["status"], j["id"]) for j in reply.json()["backgroundJobs"]["backgroundJob"]]

    def statuses() -> list[str]:
        return [status for status, _ in listed()]

    assert statuses() == statuses() and "Cancelled" not in statuses()
    job.status = "Cancelled"  # a direct change to a job, as the job clock makes them
    assert statuses()[0] == "Cancelled"
    wb = next(wb for wb in state.workbooks.values() if wb.has_extracts)
    refresh = requests.post(
        f"{api.base}/workbooks/{wb.id}/refresh", data="<tsRequest/>", headers={"X-Tableau-Auth": api.token}, timeout=10
    )
    assert refresh.status_code == 202, refresh.text
    new_job = ElementTree.fromstring(refresh.content).find(f"{NS}job")
    assert new_job is not None
    pending = [status for status, job_id in listed() if job_id == new_job.get("id")]
    assert pending in (["Pending"], ["InProgress"])  # the new job, sorted in


# -- change stamps ---------------------------------------------------------------------------------------


def test_every_change_to_the_model_stamps():
    state = small_site()
    wb = next(iter(state.workbooks.values()))
    job = next(iter(state.jobs.values()))
    site_stamp, jobs_stamp = m.stamp(m.Workbook), m.stamp(m.Job)

    def changed(action) -> bool:
        nonlocal site_stamp
        before = m.stamp(m.Workbook)
        action()
        site_stamp = m.stamp(m.Workbook)
        return site_stamp != before

    assert changed(lambda: setattr(wb, "size", 99))
    assert changed(lambda: state.workbooks.__setitem__("x", wb))
    assert changed(lambda: state.workbooks.__delitem__("x"))
    assert changed(lambda: state.workbooks.setdefault("y", wb))
    assert changed(lambda: state.workbooks.pop("y"))
    assert changed(lambda: state.workbooks.update({"z": wb}))
    assert changed(lambda: state.workbooks.__ior__({"w": wb}))
    assert changed(lambda: state.workbooks.popitem())
    assert changed(lambda: state.flows.clear())
    assert changed(lambda: setattr(state, "views", {}))
    assert isinstance(state.views, m.Collection)
    # Jobs are stamped apart: the job clock does not void a workbook order, but a job order sees it.
    jobs_before = m.stamp(m.Job)
    assert not changed(lambda: setattr(job, "progress", 42))
    assert m.stamp(m.Job) != jobs_before != jobs_stamp
    assert isinstance(state.jobs, m.JobCollection)


def test_copied_and_pickled_sites_keep_stamped_collections():
    state = small_site()
    for other in (copy.deepcopy(state), pickle.loads(pickle.dumps(state))):
        assert type(other.workbooks) is m.Collection and type(other.jobs) is m.JobCollection
        assert other.workbooks.keys() == state.workbooks.keys()
        before = m.stamp(m.Workbook)
        next(iter(other.workbooks.values())).name = "changed"
        assert m.stamp(m.Workbook) != before


@pytest.mark.parametrize("json", [True, False])
def test_a_kept_projects_page_follows_a_move_and_a_rename(api, small_emulator, json):
    """The default projects page is kept (its computed values, topLevelProject and writeable, read only the
    project's own fields): moving a project under another, or back to the top, and renaming it show at once."""
    state = small_emulator.state

    def projects() -> dict[str, tuple[str, str | None, str]]:
        body = api.get("projects", json=json, pageSize=1000)
        if json:
            rows = body.json()["projects"]["project"]
            return {r["id"]: (r["name"], r.get("parentProjectId"), r["topLevelProject"]) for r in rows}
        return {i.get("id"): (i.get("name"), i.get("parentProjectId"), i.get("topLevelProject"))
                for i in _items(body.content, "project")}

    first = projects()
    assert projects() == first
    top, other = [p for p in state.projects.values() if p.parent_id is None][:2]
    assert first[top.id][1:] == (None, "true")
    top.parent_id = other.id
    assert projects()[top.id][1:] == (other.id, "false")
    top.name = "Moved and renamed"
    assert projects()[top.id] == ("Moved and renamed", other.id, "false")
    top.parent_id = None
    assert projects()[top.id][1:] == (None, "true")


@pytest.mark.parametrize("json", [True, False])
def test_a_kept_page_with_owner_names_follows_changes_to_the_owner(api, small_emulator, json):
    """The projects page the project tree reads (`_default_,owner.name,owner.email`) is kept: the owner
    child reads only the user's plain fields, which stamp the site. A renamed owner, a changed email and a
    new owner show at once."""
    state = small_emulator.state
    fields = "_default_,owner.name,owner.email"

    def owners() -> dict[str, tuple[str, str | None, str | None]]:
        body = api.get("projects", json=json, fields=fields, sort=CONTENT_SORT, pageSize=1000)
        if json:
            rows = body.json()["projects"]["project"]
            return {r["id"]: (r["owner"]["id"], r["owner"].get("name"), r["owner"].get("email")) for r in rows}
        return {i.get("id"): (o.get("id"), o.get("name"), o.get("email"))
                for i in _items(body.content, "project") for o in [i.find(f"{NS}owner")]}

    first = owners()
    assert owners() == first
    project = next(iter(state.projects.values()))
    user = state.users[project.owner_id]
    user.name = "renamed.owner"
    assert owners()[project.id][1] == "renamed.owner"
    user.email = "renamed@example.com"
    assert owners()[project.id][2] == "renamed@example.com"
    other = next(u for u in state.users.values() if u.id != user.id)
    project.owner_id = other.id
    assert owners()[project.id][0] == other.id
