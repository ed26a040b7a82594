"""Refresh jobs, wait_for_job outcomes, cancellation, tasks, run-now rules, job lists and schedules."""

from __future__ import annotations

import pytest
import tableauserverclient as TSC
from tableauserverclient.server.endpoint.exceptions import JobCancelledException, JobFailedException

from emulator.testing import EXPLORER_PAT, signed_in_server, small_site, start_emulator


def _refreshable(state):
    """(the workbook that refreshes fine, the one whose refresh fails)."""
    good = next(wb for wb in state.workbooks.values() if wb.has_extracts and not wb.refresh_failure)
    bad = next(wb for wb in state.workbooks.values() if wb.has_extracts and wb.refresh_failure)
    return good, bad


def test_refresh_then_wait_succeeds(small_emulator, small_server):
    good, _ = _refreshable(small_emulator.state)
    job = small_server.workbooks.refresh(good.id)
    assert job.completed_at is None and job.finish_code == -1  # just queued
    done = small_server.jobs.wait_for_job(job, timeout=30)
    assert done.finish_code == 0
    model_job = small_emulator.state.jobs[job.id]
    assert model_job.status == "Success" and model_job.progress == 100
    assert done.completed_at == model_job.completed_at


def test_failed_refresh_raises_with_the_reason(small_emulator, small_server):
    _, bad = _refreshable(small_emulator.state)
    job = small_server.workbooks.refresh(bad.id)
    with pytest.raises(JobFailedException) as caught:
        small_server.jobs.wait_for_job(job, timeout=30)
    assert caught.value.notes == [bad.refresh_failure]
    assert small_emulator.state.jobs[job.id].finish_code == 1


def test_cancelled_job_raises_cancelled():
    # A slow clock keeps the job Pending/InProgress until it is cancelled.
    with start_emulator(job_speed=0.001) as emu:
        server = signed_in_server(emu)
        good, _ = _refreshable(emu.state)
        job = server.workbooks.refresh(good.id)
        server.jobs.cancel(job.id)
        with pytest.raises(JobCancelledException):
            server.jobs.wait_for_job(job.id, timeout=30)
        assert emu.state.jobs[job.id].status == "Cancelled"


def test_second_refresh_while_queued_is_409093(small_server):
    with start_emulator(job_speed=0.001) as emu:
        server = signed_in_server(emu)
        good, _ = _refreshable(emu.state)
        assert server.workbooks.refresh(good.id) is not None
        # TSC catches 409093 ("already queued") itself and returns None.
        assert server.workbooks.refresh(good.id) is None
        assert sum(1 for e in emu.request_log if e.status == 409) == 1


def test_refresh_without_extracts_is_rejected(small_emulator, small_server):
    plain = next(wb for wb in small_emulator.state.workbooks.values() if not wb.has_extracts)
    with pytest.raises(TSC.ServerResponseError) as caught:
        small_server.workbooks.refresh(plain.id)
    assert caught.value.code == "409090"


def test_datasource_refresh(small_emulator, small_server):
    ds = next(d for d in small_emulator.state.datasources.values() if d.has_extracts)
    job = small_server.datasources.refresh(ds.id)
    assert small_server.jobs.wait_for_job(job, timeout=30).datasource_id == ds.id


def test_run_now_disabled_blocks_non_admins():
    site = small_site()
    site.run_now_enabled = False
    good = next(wb for wb in site.workbooks.values() if wb.has_extracts and not wb.refresh_failure)
    good.owner_id = site.user_by_name("explorer@example.com").id
    with start_emulator(site, job_speed=100) as emu:
        explorer = signed_in_server(emu, EXPLORER_PAT)
        with pytest.raises(TSC.ServerResponseError) as caught:
            explorer.workbooks.refresh(good.id)
        assert caught.value.code == "403157"
        admin = signed_in_server(emu)
        assert admin.jobs.wait_for_job(admin.workbooks.refresh(good.id), timeout=30).finish_code == 0


def test_non_owner_explorer_cannot_refresh(small_emulator):
    good, _ = _refreshable(small_emulator.state)
    explorer = signed_in_server(small_emulator, EXPLORER_PAT)
    assert good.owner_id != explorer.user_id
    with pytest.raises(TSC.ServerResponseError) as caught:
        explorer.workbooks.refresh(good.id)
    assert caught.value.code.startswith("403")


def test_tasks_list_get_and_run_now(small_emulator, small_server):
    state = small_emulator.state
    tasks, _ = small_server.tasks.get()
    assert {t.id for t in tasks} == set(state.tasks)
    model_task = next(
        t
        for t in state.tasks.values()
        if t.target_kind == "workbook" and not state.workbooks[t.target_id].refresh_failure
    )
    task = small_server.tasks.get_by_id(model_task.id)
    assert task.target.id == model_task.target_id
    assert task.schedule_item.name == state.schedules[model_task.schedule_id].name
    raw = small_server.tasks.run(task)
    job = TSC.JobItem.from_response(raw, small_server.namespace)[0]
    assert small_server.jobs.wait_for_job(job, timeout=30).workbook_id == model_task.target_id
    assert state.jobs[job.id].task_id == model_task.id


def test_failed_task_run_counts_consecutive_failures(small_emulator, small_server):
    state = small_emulator.state
    model_task = next(
        t
        for t in state.tasks.values()
        if t.target_kind == "workbook" and state.workbooks[t.target_id].refresh_failure
    )
    before = model_task.consecutive_failed_count
    job = TSC.JobItem.from_response(
        small_server.tasks.run(small_server.tasks.get_by_id(model_task.id)), small_server.namespace
    )[0]
    with pytest.raises(JobFailedException):
        small_server.jobs.wait_for_job(job, timeout=30)
    assert small_server.tasks.get_by_id(model_task.id).consecutive_failed_count == before + 1


def test_jobs_list_and_filters(small_emulator, small_server):
    state = small_emulator.state
    good, _ = _refreshable(state)
    small_server.jobs.wait_for_job(small_server.workbooks.refresh(good.id), timeout=30)
    jobs = list(TSC.Pager(small_server.jobs))
    assert {j.id for j in jobs} == set(state.jobs)
    failed = list(small_server.jobs.filter(status="Failed"))
    assert {j.id for j in failed} == {j.id for j in state.jobs.values() if j.status == "Failed"}
    refreshes = list(small_server.jobs.filter(job_type="refresh_extracts"))
    assert len(refreshes) == sum(1 for j in state.jobs.values() if j.job_type == "refresh_extracts")
    newest = max(state.jobs.values(), key=lambda j: j.created_at)
    recent = list(small_server.jobs.filter(created_at__gte=newest.created_at))
    assert newest.id in {j.id for j in recent}


def test_job_progress_is_reported_while_running():
    with start_emulator(job_speed=0.001) as emu:
        server = signed_in_server(emu)
        good, _ = _refreshable(emu.state)
        job = server.jobs.get_by_id(server.workbooks.refresh(good.id).id)
        assert job.completed_at is None and job.finish_code == -1
        assert [j.status for j in server.jobs.filter(status="Pending")] == ["Pending"]


def test_schedules_list_and_get(small_emulator, small_server):
    state = small_emulator.state
    schedules = list(TSC.Pager(small_server.schedules))
    assert {s.id for s in schedules} == set(state.schedules)
    hourly = next(s for s in state.schedules.values() if s.frequency == "Hourly")
    item = small_server.schedules.get_by_id(hourly.id)
    assert item.name == hourly.name
    assert item.interval_item.interval == (str(hourly.interval_hours),)
    weekly = next(s for s in schedules if s.schedule_type and s.name == "Mondays")
    assert weekly.interval_item.interval == ("Monday",)


def test_incremental_refresh_at_3_25():
    # From 3.25 TSC sends <extractRefresh incremental="true"/>; the job records the incremental kind.
    with start_emulator(api_version="3.25", job_speed=100) as emu:
        server = signed_in_server(emu)
        good, _ = _refreshable(emu.state)
        job = server.workbooks.refresh(good.id, incremental=True)
        assert emu.state.jobs[job.id].job_type == "increment_extracts"
        assert server.jobs.wait_for_job(job, timeout=30).finish_code == 0
