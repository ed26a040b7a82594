"""Jobs (list, get, cancel), extract-refresh tasks (unpaged list, get, runNow, delete) and schedules."""

from __future__ import annotations

from .. import model as m
from .. import tables
from ..authz import is_admin, require_change
from ..errors import ApiError, missing
from ..routing import Call, Reply, route
from .content import check_run_now, lookup, project_of

JOB_ATTRS = ("id", "status", "createdAt", "startedAt", "endedAt", "priority", "jobType", "title", "subtitle")
# The emulator's code for cancelling a job that already finished (Tableau's code is not documented).
JOB_FINISHED_CODE = "409046"
_TARGETS = {"workbook": "workbooks", "datasource": "datasources", "flow": "flows"}


def get_job(call: Call) -> m.Job:
    job = call.state.jobs.get(call.params["job"])
    if job is None:
        raise missing("job", call.params["job"])
    return job


@route("GET", "/sites/{site}/jobs")
def list_jobs(call: Call) -> Reply:
    f, render = call.fields(JOB_ATTRS), call.render
    return call.page_rows(
        call.state.jobs.values(),
        tables.jobs(call.state),
        "backgroundJobs",
        render.list_rows("background_job", f),
    )


@route("GET", "/sites/{site}/jobs/{job}")
def get_job_route(call: Call) -> Reply:
    return Reply(200, call.render.job(get_job(call)))


@route("PUT", "/sites/{site}/jobs/{job}")
def cancel_job(call: Call) -> Reply:
    job = get_job(call)
    _require_job_owner(call, job)
    call.emu.clock.cancel(job)
    if job.status != "Cancelled":
        # Finished before the cancel arrived: Tableau refuses, and the job keeps its outcome.
        raise ApiError(
            409, JOB_FINISHED_CODE, "Job already finished",
            f"Job '{job.id}' has already finished ({job.status}) and cannot be cancelled.",
        )
    return Reply(200, call.render.job(job))


def _require_job_owner(call: Call, job: m.Job) -> None:
    if is_admin(call.actor):
        return
    resource = _TARGETS.get(job.target_kind)
    item = getattr(call.state, resource).get(job.target_id) if resource else None
    if item is None:
        raise ApiError(403, "403000", "Forbidden", "Only administrators can cancel this job.")
    require_change(
        call.state, call.actor, resource, item.id, item.owner_id, project_of(call.state, resource, item)
    )


# -- extract-refresh tasks ----------------------------------------------------------------------


def get_task(call: Call) -> m.ExtractRefreshTask:
    task = call.state.tasks.get(call.params["task"])
    if task is None:
        raise missing("task", call.params["task"])
    return task


@route("GET", "/sites/{site}/tasks/extractRefreshes")
def list_tasks(call: Call) -> Reply:
    render = call.render
    # Tableau returns every task in one response, without <pagination> (semantics §1.1).
    return Reply(200, "<tasks>" + "".join(render.task(t) for t in call.state.tasks.values()) + "</tasks>")


@route("GET", "/sites/{site}/tasks/extractRefreshes/{task}")
def get_task_route(call: Call) -> Reply:
    return Reply(200, call.render.task(get_task(call)))


@route("POST", "/sites/{site}/tasks/extractRefreshes/{task}/runNow")
def run_task_now(call: Call) -> Reply:
    task = get_task(call)
    resource = _TARGETS.get(task.target_kind, "workbooks")
    item = lookup(call, resource, task.target_id)
    check_run_now(call, resource, item)
    job = call.emu.clock.start_refresh(
        task.target_kind, item, incremental=task.refresh_type == "IncrementalRefresh", task=task
    )
    return Reply(200, call.render.job(job))


@route("DELETE", "/sites/{site}/tasks/extractRefreshes/{task}")
def delete_task(call: Call) -> Reply:
    task = get_task(call)
    resource = _TARGETS.get(task.target_kind, "workbooks")
    item = getattr(call.state, resource).get(task.target_id)
    if not is_admin(call.actor):
        if item is None:
            raise ApiError(403, "403000", "Forbidden", "Only administrators can delete this task.")
        require_change(
            call.state, call.actor, resource, item.id, item.owner_id, project_of(call.state, resource, item)
        )
    del call.state.tasks[task.id]
    return Reply(204)


# -- schedules (server level: /api/{v}/schedules) -----------------------------------------------


@route("GET", "/schedules")
def list_schedules(call: Call) -> Reply:
    render = call.render
    return call.page(
        call.state.schedules.values(), tables.schedules(call.state), "schedules", render.schedule
    )


@route("GET", "/schedules/{schedule}")
def get_schedule(call: Call) -> Reply:
    schedule = call.state.schedules.get(call.params["schedule"])
    if schedule is None:
        raise missing("schedule", call.params["schedule"])
    return Reply(200, call.render.schedule(schedule))
