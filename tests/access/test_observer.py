"""The observer sees exactly the requests the emulator received: same count, same paths."""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from server.tableau import TableauClient

from .conftest import settings_for, wait_for_log

pytestmark = pytest.mark.anyio


async def test_observer_saw_exactly_what_the_emulator_logged(emu):
    events = []
    client = TableauClient(settings_for(emu, page_size=4))
    client.add_observer(events.append)
    workbook = next(w for w in emu.state.workbooks.values() if w.has_extracts and not w.refresh_failure)
    async with client, client.operation("scenario") as op:
        records = await client.list_content("workbook")  # 3 pages
        tree = await client.project_tree()
        await client.permissions("workbook", records[0].id)
        await client.default_permissions(next(iter(tree.nodes)), "workbook")
        started = await client.refresh("workbook", workbook.id)
        emu.control.expire_sessions()  # the next poll meets a 401 and signs in again
        job = await client.get_job(started.job_id)
        while job.completed_at is None:
            await anyio.sleep(0.02)
            job = await client.get_job(started.job_id)
        emu.control.inject_429(1)
        emu.control.inject_5xx(1, status=502)
        await client.list_users()
        assert client.sign_ins == 2
    assert job.status == "Success" and job.finish_code == 0 and job.target_id == workbook.id

    log = wait_for_log(emu, len(events))
    assert len(events) == len(log)
    seen = Counter((e.method, e.path, e.query, e.status) for e in events)
    logged = Counter((e.method, e.path, e.query, e.status) for e in log)
    assert seen == logged
    # every kind of request was in the mix
    paths = [e.path for e in events]
    assert sum(p.endswith("/auth/signin") for p in paths) == 2
    assert any(p.endswith("/serverInfo") for p in paths)
    assert any(p.endswith("/auth/signout") for p in paths)
    assert any(p.endswith("/refresh") for p in paths)
    assert any(e.status == 401 for e in events) and any(e.status == 429 for e in events)
    assert any(e.status == 502 for e in events)
    assert sum(p.endswith(f"/jobs/{started.job_id}") for p in paths) >= 2
    # the re-sign-in happened inside the operation and carries its id
    inside = [e for e in events if e.operation_id == op]
    assert sum(e.path.endswith("/auth/signin") for e in inside) == 1
    assert {e.operation_id for e in events} == {"tableau:connect", op, "tableau:close"}


async def test_a_failing_observer_does_not_break_requests(emu):
    def broken(event):
        raise RuntimeError("observer bug")

    client = TableauClient(settings_for(emu))
    client.add_observer(broken)
    seen = []
    client.add_observer(seen.append)
    async with client:
        assert len(await client.list_users()) == 4
        client.remove_observer(seen.append)
        await client.list_groups()
    assert [e.path.rsplit("/", 1)[-1] for e in seen] == ["signin", "serverInfo", "users"]
