"""One shared session: one sign-in for concurrent work, single-flight re-sign-in on expiry, sign-out at close."""

from __future__ import annotations

import anyio
import pytest

from emulator.authz import may_view
from emulator.testing import CONNECTED_APP, PASSWORD
from server.config import ConnectedAppCredentials, PasswordCredentials, Settings
from server.tableau import TableauClient

from .conftest import log_entries, settings_for, sign_ins, wait_for_log

pytestmark = pytest.mark.anyio


async def test_one_sign_in_for_many_concurrent_operations(emu):
    async with TableauClient(settings_for(emu)) as client:
        workbooks = await client.list_content("workbook")
        results: list[object] = []

        async def work(i: int) -> None:
            async with client.operation(f"op-{i}"):
                kind = ("workbook", "view", "datasource", "project")[i % 4]
                results.append(await client.list_content(kind))
                results.append(await client.permissions("workbook", workbooks[i % len(workbooks)].id))
                results.append(await client.count_content(kind))

        async with anyio.create_task_group() as tasks:
            for i in range(24):
                tasks.start_soon(work, i)
        assert len(results) == 72
        assert client.sign_ins == 1
    log = wait_for_log(emu, 2 + 1 + 72)
    assert sign_ins(emu) == 1
    assert len(log_entries(emu, method="POST", path_suffix="/auth/signout")) == 1
    assert not [e for e in log if e.status == 401]


async def test_version_is_negotiated_after_sign_in_like_tsc(emu):
    async with TableauClient(settings_for(emu)) as client:
        info = await client.server_info()
    first, second = emu.request_log[:2]
    assert (first.method, first.path) == ("POST", "/api/2.4/auth/signin")
    assert (second.method, second.path) == ("GET", "/api/2.4/serverInfo")
    assert info.api_version == "3.24" and info.server_api_version == "3.24"
    assert info.site_content_url == "small" and info.site_name == "Small Test Site"
    assert info.user_name == "admin@example.com" and info.product_version
    assert all(e.path.startswith("/api/3.24/") for e in emu.request_log[2:])


async def test_pinned_api_version(emu):
    async with TableauClient(settings_for(emu, api_version="3.21")) as client:
        await client.count_content("workbook")
        assert client.api_version == "3.21"
    assert any(e.path.startswith("/api/3.21/sites/") for e in emu.request_log)


async def test_session_expiry_in_the_middle_of_a_listing_loses_and_duplicates_nothing(emu):
    expired: list[int] = []

    def expire_after_first_page(event) -> None:
        if event.path.endswith("/workbooks") and "pageNumber=1&" in event.query and event.status == 200:
            expired.append(emu.control.expire_sessions())

    async with TableauClient(settings_for(emu, page_size=3)) as client:
        client.add_observer(expire_after_first_page)
        records = await client.list_content("workbook")
        assert expired == [1]
        assert client.sign_ins == 2
    ids = [r.id for r in records]
    assert len(ids) == len(set(ids)) == 12
    assert set(ids) == set(emu.state.workbooks)
    assert all(r.owner_name and r.project_name for r in records)
    log = emu.request_log
    assert sign_ins(emu) == 2  # the first sign-in and exactly one re-sign-in, whatever the concurrency
    pages = [e for e in log if e.path.endswith("/workbooks") and e.status == 200]
    assert sorted(e.query.split("pageNumber=")[1].split("&")[0] for e in pages) == ["1", "2", "3", "4"]
    rejected = [e for e in log if e.status == 401]
    assert 1 <= len(rejected) <= 3 and all(e.path.endswith("/workbooks") for e in rejected)


async def test_concurrent_callers_share_one_re_sign_in(emu):
    async with TableauClient(settings_for(emu, concurrency=8)) as client:
        workbooks = await client.list_content("workbook")
        emu.control.expire_sessions()
        async with anyio.create_task_group() as tasks:
            for wb in workbooks:
                tasks.start_soon(client.permissions, "workbook", wb.id)
        assert client.sign_ins == 2
    assert sign_ins(emu) == 2


async def test_password_and_connected_app_sign_in(emu):
    creds = PasswordCredentials(username="explorer@example.com", password=PASSWORD)
    settings = Settings(server_url=emu.url, site_id="small", credentials=creds, retry_base_delay=0.01)
    async with TableauClient(settings) as client:
        assert (await client.server_info()).user_name == "explorer@example.com"

    client_id, secret_id, secret_value = CONNECTED_APP
    app = ConnectedAppCredentials(client_id=client_id, secret_id=secret_id, secret_value=secret_value,
                                  username="creator@example.com")
    settings = Settings(server_url=emu.url, site_id="small", credentials=app, retry_base_delay=0.01)
    async with TableauClient(settings) as client:
        assert (await client.server_info()).user_name == "creator@example.com"
        emu.control.expire_sessions()  # a re-sign-in mints a fresh JWT
        creator = emu.state.user_by_name("creator@example.com")
        # The creator's own view of the site (the emulator bounds reads by the View permission, as Tableau does).
        assert len(await client.list_content("workbook")) == sum(
            may_view(emu.state, creator, "workbooks", wb) for wb in emu.state.workbooks.values()
        )
        assert client.sign_ins == 2


async def test_operation_ids_follow_work_into_worker_threads(emu):
    events = []
    client = TableauClient(settings_for(emu, page_size=5))
    client.add_observer(events.append)
    async with client:
        async with client.operation("call-a") as op_a:
            await client.list_content("workbook")
        async with client.operation() as generated:
            await client.count_content("view")
    assert op_a == "call-a" and generated.startswith("op_")
    by_op = {}
    for event in events:
        by_op.setdefault(event.operation_id, []).append(event)
    assert {e.path.rsplit("/", 1)[-1] for e in by_op["tableau:connect"]} == {"signin", "serverInfo"}
    assert len(by_op["call-a"]) == 3  # ceil(12 / 5) pages
    assert len(by_op[generated]) == 1
    assert [e.path.rsplit("/", 1)[-1] for e in by_op["tableau:close"]] == ["signout"]
