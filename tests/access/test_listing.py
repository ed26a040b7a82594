"""Parallel paging with names in the same calls: ceil(N/1000) page requests plus a constant."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from server.tableau import TableauClient

from .conftest import log_entries, settings_for

pytestmark = pytest.mark.anyio


def _api_requests(emu):
    return [e for e in emu.request_log if not e.path.endswith(("/auth/signin", "/serverInfo", "/auth/signout"))]


async def test_no_per_item_requests_for_owner_names_and_project_paths(wide_site_emu):
    emu = wide_site_emu
    n = len(emu.state.workbooks)
    assert n == 2350
    async with TableauClient(settings_for(emu)) as client:
        emu.control.reset_request_log()
        records = await client.list_content("workbook")
        tree = await client.project_tree()
        requests = _api_requests(emu)
    assert len(requests) == math.ceil(n / 1000) + 1  # the workbook pages + one project page
    pages = [e for e in requests if e.path.endswith("/workbooks")]
    assert sorted(e.query.split("pageNumber=")[1].split("&")[0] for e in pages) == ["1", "2", "3"]
    assert all("pageSize=1000" in e.query and "owner.name" in e.query for e in pages)
    assert all("sort=createdAt%3Aasc%2Cname%3Aasc" in e.query for e in pages)

    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)) == n and set(ids) == set(emu.state.workbooks)
    state = emu.state
    for record in records:
        owner = state.users[state.workbooks[record.id].owner_id]
        assert (record.owner_name, record.owner_email) == (owner.name, owner.email)
        assert tree.path_of(record.project_id) == state.project_path(state.workbooks[record.id].project_id)
        assert record.created_at is not None and record.created_at.tzinfo == UTC
    created = [r.created_at for r in records]
    assert created == sorted(created)


async def test_views_carry_workbook_owner_and_project_names(wide_site_emu):
    emu = wide_site_emu
    async with TableauClient(settings_for(emu)) as client:
        emu.control.reset_request_log()
        views = await client.list_content("view")
        requests = _api_requests(emu)
    assert len(views) == len(emu.state.views) == 4700
    assert len(requests) == math.ceil(4700 / 1000)
    assert all("workbook.name" in e.query and "includeUsageStatistics=true" in e.query for e in requests)
    state = emu.state
    for view in views[:50] + views[-50:]:
        wb = state.workbooks[view.workbook_id]
        assert view.workbook_name == wb.name
        assert view.owner_name == state.users[state.views[view.id].owner_id].name
        assert view.project_name == state.projects[wb.project_id].name
        assert view.total_view_count == state.views[view.id].total_view_count


async def test_limit_count_and_filters(wide_site_emu):
    emu = wide_site_emu
    async with TableauClient(settings_for(emu)) as client:
        emu.control.reset_request_log()
        first = await client.list_content("workbook", limit=10, sort=["name:desc"])
        assert len(first) == 10 and first[0].name == max(w.name for w in emu.state.workbooks.values())
        assert await client.count_content("workbook") == 2350
        finance = await client.count_content("workbook", [("projectName", "eq", "Finance")])
        assert finance == sum(1 for w in emu.state.workbooks.values()
                              if emu.state.projects[w.project_id].name == "Finance")
        named = await client.list_content("workbook", filters=[("name", "eq", "Workbook 07")])
        assert [r.name for r in named] == ["Workbook 07"]
        tagged = await client.list_content("workbook", filters=[("tags", "in", ["ops", "nope"])])
        assert len(tagged) == 1175
        recent = await client.list_content(
            "workbook", filters=[("updatedAt", "gte", datetime(2024, 2, 9, tzinfo=UTC))]
        )
        assert {r.name for r in recent} == {"Workbook 00", "Workbook 01"}
        assert len(_api_requests(emu)) == 1 + 1 + 1 + 1 + 2 + 1


async def test_caches_and_invalidation_after_our_writes(emu):
    group = next(g for g in emu.state.groups.values() if g.name == "Analysts")
    admin = next(u for u in emu.state.users.values() if u.name == "admin@example.com")
    async with TableauClient(settings_for(emu)) as client:
        emu.control.reset_request_log()
        users = await client.users_by_id()
        await client.users_by_id()
        await client.project_tree()
        await client.project_tree()
        groups = {g.name: g for g in await client.list_groups()}
        await client.list_groups()
        assert len(users) == 4 and groups["Analysts"].user_count == 2
        assert len(_api_requests(emu)) == 3
        assert await client.add_group_member(group.id, admin.id) is True
        assert await client.add_group_member(group.id, admin.id) is False  # 409011: already a member
        assert {g.name: g for g in await client.list_groups()}["Analysts"].user_count == 3
        assert admin.id in {u.id for u in await client.group_members(group.id)}
        assert group.id in {g.id for g in await client.user_groups(admin.id)}
        assert await client.remove_group_member(group.id, admin.id) is True
        assert await client.remove_group_member(group.id, admin.id) is False
        assert {g.name: g for g in await client.list_groups()}["Analysts"].user_count == 2


async def test_refresh_attaches_to_an_already_queued_job(slow_jobs_emu):
    emu = slow_jobs_emu
    workbook = next(w for w in emu.state.workbooks.values() if w.has_extracts and not w.refresh_failure)
    async with TableauClient(settings_for(emu)) as client:
        first = await client.refresh("workbook", workbook.id)
        second = await client.refresh("workbook", workbook.id)
        assert first.already_queued is False and second.already_queued is True
        assert second.job_id == first.job_id
        job = await client.get_job(first.job_id)
        assert job.status in ("Pending", "InProgress") and job.target_name == workbook.name
        jobs = await client.list_jobs(filters=[("status", "eq", job.status)])
        assert first.job_id in {j.id for j in jobs} and jobs.total >= 1
        await client.cancel_job(first.job_id)
        cancelled = await client.get_job(first.job_id)
        assert (cancelled.status, cancelled.finish_code) == ("Cancelled", 2)
    conflicts = [e for e in log_entries(emu, method="POST", path_suffix="/refresh") if e.status == 409]
    assert len(conflicts) == 1


async def test_list_jobs_limit_and_total(emu):
    async with TableauClient(settings_for(emu, page_size=1)) as client:
        jobs = await client.list_jobs(limit=1)
        assert len(jobs) == 1 and jobs.total == len(emu.state.jobs) == 2
        everything = await client.list_jobs()
        assert len(everything) == 2 and everything[0].created_at >= everything[1].created_at
        failed = await client.list_jobs(filters=[("status", "eq", "Failed")])
        assert [j.status for j in failed] == ["Failed"]


async def test_get_content_for_every_kind(emu):
    state = emu.state
    async with TableauClient(settings_for(emu)) as client:
        for kind, collection in (("workbook", state.workbooks), ("view", state.views),
                                 ("datasource", state.datasources), ("flow", state.flows),
                                 ("project", state.projects)):
            item = next(iter(collection.values()))
            record = await client.get_content(kind, item.id)
            assert (record.kind, record.id, record.name) == (kind, item.id, item.name)
            assert record.owner_name == state.users[item.owner_id].name
        listed = await client.list_content("flow")
        assert listed[0].owner_name == state.users[next(iter(state.flows.values())).owner_id].name


async def test_pages_that_overlap_because_the_site_changed_keep_each_item_once(emu):
    """A workbook created at the front of the order between page 1 and the rest shifts every later page by
    one, so page 2 repeats page 1's last item: the listing keeps it once (and misses only the newcomer)."""
    import dataclasses
    from datetime import timedelta
    from uuid import uuid4

    before = set(emu.state.workbooks)
    inserted: list[str] = []

    def shift(event) -> None:
        if event.path.endswith("/workbooks") and "pageNumber=1" in event.query and not inserted:
            first = min(emu.state.workbooks.values(), key=lambda w: (w.created_at, w.name))
            clone = dataclasses.replace(
                first, id=str(uuid4()), name="000 inserted", created_at=first.created_at - timedelta(days=1)
            )
            emu.state.workbooks[clone.id] = clone
            inserted.append(clone.id)

    client = TableauClient(settings_for(emu, page_size=5, cache_ttl=0))
    client.add_observer(shift)
    async with client:
        records = await client.list_content("workbook")
    ids = [r.id for r in records]
    assert inserted and len(before) > 10  # three pages of five, the second one shifted
    assert len(ids) == len(set(ids)) and set(ids) == before
