"""The JSON list reader: the same records as the XML reader, the same requests for the observer, the
audit and the retries, Tableau's errors mapped as before, and hostile bodies refused."""

from __future__ import annotations

from collections import Counter
from xml.etree.ElementTree import ParseError

import pytest

from server.tableau import TableauClient
from server.tableau.errors import InvalidRequest
from server.tableau.json_pages import (
    MAX_BODY_BYTES,
    content_page,
    group_page,
    job_page,
    owned_page,
    user_page,
)

from .conftest import settings_for, wait_for_log

pytestmark = pytest.mark.anyio


async def _everything(client: TableauClient) -> dict[str, object]:
    listed: dict[str, object] = {}
    for kind in ("workbook", "view", "datasource", "flow", "project"):
        listed[kind] = await client.list_content(kind)
        listed[f"lean {kind}"] = await client.list_content(kind, lean=True)
    listed["users"] = await client.list_users()
    listed["groups"] = await client.list_groups()
    jobs = await client.list_jobs()
    listed["jobs"] = (list(jobs), jobs.total)
    return listed


async def test_both_readers_build_identical_records_with_identical_requests(emu):
    results, requests_seen = {}, {}
    for reader in ("xml", "json"):
        events: list = []
        emu.control.reset_request_log()
        client = TableauClient(settings_for(emu, page_size=5, cache_ttl=0))
        client.list_format = reader
        client.add_observer(events.append)
        async with client:
            results[reader] = await _everything(client)
        log = wait_for_log(emu, len(events))
        requests_seen[reader] = Counter((e.method, e.path, e.query, e.status, e.attempt) for e in events)
        assert requests_seen[reader] == Counter((e.method, e.path, e.query, e.status, 1) for e in log)
        listed = [e for e in log if e.method == "GET" and not e.path.endswith("/serverInfo")]
        assert {e.response_format for e in listed} == {reader}  # the emulator saw the reader's Accept
    # Both readers keep a local group's `minimumSiteRole`, which TSC's own group parser drops.
    for reader in ("xml", "json"):
        assert next(g for g in results[reader]["groups"] if g.name == "Analysts").minimum_site_role == "Explorer"
    for listed in results.values():  # each client's own sign-in moved the admin's lastLogin; nothing else may
        listed["users"] = [
            u.model_copy(update={"last_login": None}) if u.name == "admin@example.com" else u
            for u in listed["users"]
        ]
    assert results["json"] == results["xml"]
    assert len(results["json"]["workbook"]) == len(emu.state.workbooks)  # paged: 12 over pages of 5
    assert requests_seen["json"] == requests_seen["xml"]


async def test_lean_listings_carry_the_same_facts_as_full_ones_in_both_readers(emu):
    """`lean=True` (find_owners, ownership transfers) asks for LEAN_FIELDS and builds OwnedRecords: the
    ids, names, owners, projects and times must be exactly those of the full records, in both readers."""
    shared = ("kind", "id", "name", "project_id", "owner_id", "updated_at")
    for reader in ("xml", "json"):
        client = TableauClient(settings_for(emu, page_size=5, cache_ttl=0))
        client.list_format = reader
        async with client:
            for kind in ("workbook", "view", "datasource", "flow"):
                full, lean = await client.list_content(kind), await client.list_content(kind, lean=True)
                assert full, kind
                assert [tuple(getattr(r, a) for a in shared) for r in lean] == [
                    tuple(getattr(r, a) for a in shared) for r in full
                ], (reader, kind)
                assert all(r.owner_id and r.updated_at and r.updated_at.tzinfo is not None for r in lean)
                if kind != "flow":  # flows take no `fields`: they stay full records
                    assert all(type(r).__name__ == "OwnedRecord" for r in lean), (reader, kind)
        lean_pages = [e for e in emu.request_log if "fields=id%2Cname" in e.query or "fields=id,name" in e.query]
        assert lean_pages, "the lean listings asked Tableau for LEAN_FIELDS"


async def test_retries_and_the_re_sign_in_treat_json_requests_like_xml(emu):
    events: list = []
    client = TableauClient(settings_for(emu, page_size=5))
    client.add_observer(events.append)
    async with client:
        emu.control.inject_429(1, retry_after=0)  # the JSON 429 carries Tableau's error object
        emu.control.inject_5xx(1, status=503)
        users = await client.list_users()
        emu.control.expire_sessions()
        workbooks = await client.list_content("workbook")
        assert client.sign_ins == 2
    assert len(users) == len(emu.state.users) and len(workbooks) == len(emu.state.workbooks)
    statuses = [e.status for e in events if e.path.endswith("/users")]
    assert statuses[:3] == [429, 503, 200]
    assert [e.attempt for e in events if e.path.endswith("/users")][:3] == [1, 2, 3]
    assert any(e.status == 401 and e.path.endswith("/workbooks") for e in events)


async def test_tableau_errors_in_json_are_mapped_like_xml_ones(emu):
    messages = {}
    for reader in ("xml", "json"):
        client = TableauClient(settings_for(emu))
        client.list_format = reader
        async with client:
            with pytest.raises(InvalidRequest) as raised:
                await client.list_content("workbook", filters=[("noSuchField", "eq", "x")])
        messages[reader] = (str(raised.value), raised.value.code)
    assert messages["json"] == messages["xml"]
    assert "noSuchField" in messages["json"][0] or "filter" in messages["json"][0].lower()


async def test_a_user_name_with_a_plus_is_found_by_its_filter(emu):
    from emulator import model as m

    with emu.lock:
        user = m.User(
            id=m.new_id(), name="ann+test@example.com", full_name="Ann", email="", site_role="Viewer",
            created_at=m.utcnow(),
        )
        emu.state.users[user.id] = user
    async with TableauClient(settings_for(emu)) as client:
        found = await client.list_users(filters=[("name", "eq", "ann+test@example.com")])
        spaced = await client.list_content("workbook", filters=[("name", "eq", "Workbook 03")])
    assert [u.id for u in found] == [user.id]
    assert [w.name for w in spaced] == ["Workbook 03"]


# -- the reader on its own ---------------------------------------------------------------------------


def test_a_json_page_reads_owner_project_tags_and_pagination():
    body = (
        b'{"pagination":{"pageNumber":"2","pageSize":"1","totalAvailable":"7"},"workbooks":{"workbook":[{'
        b'"id":"w1","name":"Sales","createdAt":"2024-07-08T12:26:19Z","size":"3","showTabs":"true",'
        b'"project":{"id":"p1","name":"Finance"},"owner":{"id":"u1","name":"ann@example.com"},'
        b'"tags":{"tag":[{"label":"kpi"},{"label":"a"}]}}]}}'
    )
    records, page = content_page("workbook", body)
    assert (page.page_number, page.page_size, page.total_available) == (2, 1, 7)
    (wb,) = records
    assert (wb.id, wb.project_name, wb.owner_name, wb.size, wb.show_tabs, wb.tags) == (
        "w1", "Finance", "ann@example.com", 3, True, ("a", "kpi")
    )
    assert wb.created_at is not None and wb.created_at.utcoffset() is not None


def test_empty_collections_strays_and_other_lists_are_not_items():
    empty = b'{"pagination":{"pageNumber":"1","pageSize":"100","totalAvailable":"0"},"workbooks":{}}'
    assert content_page("workbook", empty)[0] == [] and content_page("workbook", empty)[1].total_available == 0
    stray = b'{"workbook":{"id":"x"},"views":{"view":[{"id":"v1","name":"V","workbook":{"id":"w1","name":"S"}}]}}'
    assert content_page("workbook", stray)[0] == []
    assert content_page("view", stray)[0][0].workbook_name == "S"
    assert group_page(b'{"groups":{"group":[{"id":"g","name":"G","userCount":"4","domain":{"name":"local"}}]}}')[
        0
    ][0].user_count == 4
    (job,), _ = job_page(b'{"backgroundJobs":{"backgroundJob":[{"id":"j","status":"Failed","jobType":"x"}]}}')
    assert (job.status, job.job_type) == ("Failed", "x")
    (user,), page = user_page(b'{"users":{"user":[{"id":"u","name":"n","domain":{"name":"corp"}}]}}')
    assert user.domain_name == "corp" and page.total_available == -1  # no pagination: an unpaged answer


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"workbooks": {"workbook": [', "not valid JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),  # nesting deeper than orjson allows
        (b" " * (MAX_BODY_BYTES + 1), "more than a list page"),
    ],
)
def test_hostile_or_broken_bodies_are_a_parse_error_the_access_layer_maps(body, message):
    with pytest.raises(ParseError, match=message):
        content_page("workbook", body)


@pytest.mark.parametrize(
    "item",
    [b'{"id":["x"],"name":"N"}', b'{"id":"x","name":{"a":1}}', b'{"id":"x","name":"N","owner":{"id":7}}',
     b'{"id":"x","name":"N","updatedAt":20240101}'],
)
def test_a_lean_item_whose_values_are_not_strings_is_a_parse_error(item):
    """Lean records are not validated models, so the reader itself refuses what Tableau never sends."""
    with pytest.raises(ParseError, match="is not a string"):
        owned_page("workbook", b'{"workbooks":{"workbook":[' + item + b"]}}")
    (record,), _ = owned_page("workbook", b'{"workbooks":{"workbook":[{"id":"x","name":"N","owner":{"id":"u"}}]}}')
    assert (record.id, record.name, record.owner_id, record.project_id, record.updated_at) == ("x", "N", "u", None, None)


async def test_user_facts_match_the_full_users_and_reuse_them_while_fresh(emu):
    """user_facts (find_owners) lists only USER_FACT_FIELDS into tuples, in both readers, with the same
    facts as the full users; while the full users are cached it answers from them without a request."""
    shared = ("id", "name", "full_name", "email", "site_role", "last_login")
    for reader in ("xml", "json"):
        emu.control.reset_request_log()
        client = TableauClient(settings_for(emu, page_size=3, cache_ttl=60))
        client.list_format = reader
        async with client:
            facts = await client.user_facts()
            listed = [e for e in emu.request_log if e.path.endswith("/users")]
            assert listed and all("fields=id%2Cname%2CfullName%2Cemail%2CsiteRole%2ClastLogin" in e.query
                                  or "fields=id,name,fullName,email,siteRole,lastLogin" in e.query for e in listed)
            assert {type(f).__name__ for f in facts.values()} == {"UserFacts"}
            users = await client.users_by_id()
            assert {i: tuple(getattr(f, a) for a in shared) for i, f in facts.items()} == {
                i: tuple(getattr(u, a) for a in shared) for i, u in users.items()
            }, reader
            before = len(emu.request_log)
            assert (await client.user_facts()) == users  # the fresh full users answer, no request
            assert len(emu.request_log) == before
            client.invalidate_caches("users")  # a write drops both
            await client.user_facts()
            assert len(emu.request_log) > before


@pytest.mark.parametrize("item", [b'{"id":"x","name":"N","lastLogin":5}', b'{"id":"x","name":["N"]}', b'{"id":null,"name":"N","siteRole":{}}'])
def test_user_facts_whose_values_are_not_strings_are_a_parse_error(item):
    from server.tableau.json_pages import user_facts_page

    with pytest.raises(ParseError, match="is not a string"):
        user_facts_page(b'{"users":{"user":[' + item + b"]}}")
