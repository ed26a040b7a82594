"""Paging, filters, sorts and `fields` as TSC 0.42 sends them, checked against the SiteState."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from uuid import uuid4

import pytest
import requests
import tableauserverclient as TSC

from emulator.query import Fields, parse_filter, split_outside_brackets
from emulator.tables import workbooks as workbook_table
from emulator.testing import signed_in_server, small_site, start_emulator


def _api_calls(emu, suffix: str) -> int:
    return sum(1 for entry in emu.request_log if entry.path.endswith(suffix))


def test_pager_walks_every_page(small_emulator, small_server):
    state = small_emulator.state
    small_emulator.control.reset_request_log()
    names = [wb.name for wb in TSC.Pager(small_server.workbooks, TSC.RequestOptions(pagesize=5))]
    assert sorted(names) == sorted(wb.name for wb in state.workbooks.values())
    # 12 workbooks at 5 per page: pages 1, 2 and 3, then the Pager stops on totalAvailable.
    assert _api_calls(small_emulator, "/workbooks") == 3


def test_queryset_iterates_pages_and_stops(small_emulator, small_server):
    state = small_emulator.state
    small_emulator.control.reset_request_log()
    queryset = small_server.workbooks.filter(page_size=4)
    assert len(queryset) == len(state.workbooks)
    assert {wb.id for wb in queryset} == set(state.workbooks)
    assert queryset[5].id in state.workbooks


def test_page_past_the_end_is_400006(small_server):
    opts = TSC.RequestOptions(pagenumber=99, pagesize=10)
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.workbooks.get(opts)
    assert caught.value.code == "400006"


def test_page_size_over_1000_is_rejected(small_server):
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.workbooks.get(TSC.RequestOptions(pagesize=1001))
    assert caught.value.code == "403014"


def test_default_page_is_100_with_pagination():
    with start_emulator(small_site(workbooks=150)) as emu:
        server = signed_in_server(emu)
        reply = requests.get(
            f"{emu.url}/api/3.24/sites/{server.site_id}/workbooks",
            headers={"x-tableau-auth": server.auth_token},
            timeout=10,
        )
        assert '<pagination pageNumber="1" pageSize="100" totalAvailable="150"/>' in reply.text
        items, pagination = server.workbooks.get()
        assert len(items) == 100 and pagination.total_available == 150


def test_filters_eq_in_and_total_after_filtering(small_emulator, small_server):
    state = small_emulator.state
    finance = next(p for p in state.projects.values() if p.name == "Finance")
    items = list(small_server.workbooks.filter(project_name="Finance"))
    assert {wb.id for wb in items} == {
        wb.id for wb in state.workbooks.values() if wb.project_id == finance.id
    }

    opts = TSC.RequestOptions(pagesize=2)
    opts.filter.add(
        TSC.Filter(TSC.RequestOptions.Field.Tags, TSC.RequestOptions.Operator.In, ["ops", "nothing"])
    )
    page, pagination = small_server.workbooks.get(opts)
    tagged = [wb for wb in state.workbooks.values() if "ops" in wb.tags]
    assert pagination.total_available == len(tagged)
    assert len(page) == 2


def test_filter_by_owner_and_datetime(small_emulator, small_server):
    state = small_emulator.state
    creator = state.user_by_name("creator@example.com")
    owned = list(small_server.workbooks.filter(owner_email=creator.email))
    assert {wb.id for wb in owned} == {wb.id for wb in state.workbooks.values() if wb.owner_id == creator.id}

    cutoff = datetime(2024, 1, 15, tzinfo=UTC)
    newer = list(small_server.workbooks.filter(created_at__gt=cutoff))
    assert {wb.id for wb in newer} == {wb.id for wb in state.workbooks.values() if wb.created_at > cutoff}


def test_users_name_cieq_and_site_role_in(small_emulator, small_server):
    opts = TSC.RequestOptions()
    opts.filter.add(
        TSC.Filter("name", TSC.RequestOptions.Operator.CaseInsensitiveEquals, "ADMIN@EXAMPLE.COM")
    )
    users, _ = small_server.users.get(opts)
    assert [u.name for u in users] == ["admin@example.com"]
    roles = list(small_server.users.filter(site_role__in=["Viewer", "Explorer"]))
    assert {u.site_role for u in roles} == {"Viewer", "Explorer"}


def test_sorting_asc_desc_and_multi_key(small_emulator, small_server):
    state = small_emulator.state
    names = [wb.name for wb in small_server.workbooks.order_by("-name")]
    assert names == sorted((wb.name for wb in state.workbooks.values()), reverse=True)
    # TSC sorts the clauses alphabetically, so a multi-key order is sent by hand here.
    url = (
        f"{small_emulator.url}/api/3.24/sites/{small_server.site_id}/workbooks?sort=hasExtracts:desc,size:asc"
    )
    reply = requests.get(url, headers={"x-tableau-auth": small_server.auth_token}, timeout=10)
    items = TSC.WorkbookItem.from_response(reply.content, small_server.namespace)
    expected = sorted(state.workbooks.values(), key=lambda wb: (not wb.has_extracts, wb.size))
    assert [wb.id for wb in items] == [wb.id for wb in expected]


def test_bad_filter_field_and_sort_are_400(small_server):
    opts = TSC.RequestOptions()
    opts.filter.add(TSC.Filter("noSuchField", "eq", "x"))
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.workbooks.get(opts)
    assert caught.value.code.startswith("400")
    opts = TSC.RequestOptions()
    opts.sort.add(TSC.Sort("name", "sideways"))
    with pytest.raises(TSC.ServerResponseError):
        small_server.workbooks.get(opts)


def test_unencoded_query_strings_are_accepted(small_emulator, small_server):
    # Below API 3.7 TSC appends the query unencoded; the grammar must survive both spellings.
    url = (
        f"{small_emulator.url}/api/3.24/sites/{small_server.site_id}/workbooks"
        "?filter=tags:in:[ops,weekly],name:eq:Workbook 01&sort=name:asc&pageSize=50"
    )
    reply = requests.get(url, headers={"x-tableau-auth": small_server.auth_token}, timeout=10)
    assert reply.status_code == 200
    assert 'totalAvailable="1"' in reply.text and "Workbook 01" in reply.text


def test_fields_owner_and_project_expansions(small_emulator, small_server):
    state = small_emulator.state
    opts = TSC.RequestOptions(pagesize=100)
    opts.fields |= {"_default_", "owner.name", "owner.email", "project.name"}
    items, _ = small_server.workbooks.get(opts)
    for wb in items:
        model_wb = state.workbooks[wb.id]
        assert wb.owner.name == state.users[model_wb.owner_id].name
        assert wb.owner.email == state.users[model_wb.owner_id].email
        assert wb.project_name == state.projects[model_wb.project_id].name
        assert wb.name == model_wb.name  # _default_ keeps the ordinary attributes


def test_queryset_fields_bug_tokens_are_ignored(small_emulator, small_server):
    # TSC 0.42 sends fields=_,a,d,e,f,l,owner.name,t,u for QuerySet.fields("owner.name").
    state = small_emulator.state
    items = list(small_server.workbooks.all().fields("owner.name"))
    assert len(items) == len(state.workbooks)
    assert all(wb.owner.name == state.users[state.workbooks[wb.id].owner_id].name for wb in items)
    assert all(wb.name for wb in items)


def test_views_fields_workbook_name(small_emulator, small_server):
    state = small_emulator.state
    opts = TSC.RequestOptions()
    opts.fields |= {"_default_", "workbook.name", "owner.name", "project.name"}
    views, _ = small_server.views.get(opts)
    for view in views:
        model_view = state.views[view.id]
        assert view.workbook_id == model_view.workbook_id
        assert view.owner.name == state.users[model_view.owner_id].name
        assert view.project_id == state.workbooks[model_view.workbook_id].project_id


def test_only_fields_restricts_attributes(small_emulator, small_server):
    items = list(small_server.workbooks.only_fields("id", "name"))
    assert {wb.id for wb in items} == set(small_emulator.state.workbooks)
    assert all(wb.size is None and wb.owner_id is None and wb.project_name is None for wb in items)


def test_all_fields_on_users(small_emulator, small_server):
    users = list(TSC.Pager(small_server.users))
    state = small_emulator.state
    for user in users:
        assert user.email == state.users[user.id].email
        assert user.fullname == state.users[user.id].full_name


# -- unit checks of the grammar --------------------------------------------------------------------


def test_split_outside_brackets():
    assert split_outside_brackets("name:eq:a,tags:in:[x,y z],size:gt:3") == [
        "name:eq:a",
        "tags:in:[x,y z]",
        "size:gt:3",
    ]


def test_filter_values_keep_their_colons():
    clauses = parse_filter("createdAt:gte:2024-01-01T00:00:00Z", workbook_table(small_site()))
    assert clauses[0].value == datetime(2024, 1, 1, tzinfo=UTC)


def test_fields_parsing():
    assert Fields.parse({"fields": ["_default_,owner.name"]}, ("id", "name")).restrictive is False
    assert Fields.parse({"fields": ["id,name"]}, ("id", "name")).restrictive is True
    garbage = Fields.parse({"fields": ["_,a,d,e,f,l,t,u,workbook.id"]}, ("id", "name"))
    assert garbage.restrictive is False and garbage.expansion("workbook") == {"id"}


def test_reused_sort_order_follows_changes_made_behind_its_back():
    """The emulator reuses a big collection's sorted order between pages; any change, even one made
    straight in the model (as the job clock or a test does), must show in the next answer."""
    state = small_site(workbooks=1200)
    with start_emulator(state) as emu:
        server = signed_in_server(emu)
        options = TSC.RequestOptions(pagesize=1000)
        options.sort.add(TSC.Sort(TSC.RequestOptions.Field.Name, TSC.RequestOptions.Direction.Asc))

        def first_names() -> list[str]:
            items, _ = server.workbooks.get(options)
            return [wb.name for wb in items]

        before = first_names()
        assert before == sorted(before, key=str.casefold)
        assert first_names() == before  # served from the reused order

        last = max(state.workbooks.values(), key=lambda wb: wb.name.casefold())
        last.name = "!!! renamed first"
        assert first_names()[0] == "!!! renamed first"

        # Same count and the same sort values, but another object: only identity tells them apart.
        removed = state.workbooks.pop(list(state.workbooks)[-1])
        replacement = dataclasses.replace(removed, id=str(uuid4()))
        state.workbooks[replacement.id] = replacement
        ids = {wb.id for wb in TSC.Pager(server.workbooks, options)}
        assert replacement.id in ids
        assert removed.id not in ids
