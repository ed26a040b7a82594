"""Jobs toolset: refresh_and_wait, get_job, cancel_job and list_jobs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

import anyio
from pydantic import BaseModel, Field

from server.tableau.errors import NotFound, TableauError
from server.toolkit import (
    READ_ONLY,
    WRITE_DESTRUCTIVE,
    WRITE_IDEMPOTENT,
    TargetGone,
    ToolContext,
    ToolFailure,
    ToolSpec,
    bound_id,
)
from tools.budget import fit_budget
from tools.common import (
    MAX_PAGE_SIZE,
    UNFILTERABLE,
    decode_cursor,
    gather,
    is_uuid,
    json_size,
    page_window,
    resolve_content,
    utc,
)

log = logging.getLogger(__name__)

JobStatus = Literal["Pending", "InProgress", "Success", "Failed", "Cancelled"]
# Like TSC's wait_for_job (0.5 s growing 1.4x) but capped lower, so a 10-minute refresh costs ~45 polls.
POLL_START, POLL_GROWTH, POLL_CAP = 0.5, 1.4, 15.0


JobTypeFilter = Literal["refresh_extracts", "increment_extracts", "run_flow", "subscription_notify"]
JobType = Literal[JobTypeFilter, "other"]  # one flat enum in the schema
# Tableau spells job types two ways: Query Jobs says refresh_extracts, Query Job says RefreshExtract.
# The argument parser reads either; records carry the first.
KNOWN_JOB_TYPES = frozenset(JobTypeFilter.__args__)
TargetKind = Literal["workbook", "datasource", "flow"]
# Query Job gives no title; these are the ones Query Jobs gives for the same types.
TITLES = {"refresh_extracts": "Refresh Extracts", "increment_extracts": "Increment Extracts", "run_flow": "Run Flow"}


class JobItem(BaseModel):
    """A job as Tableau reports it. Every field applies to every job: null means not known yet
    (completed_at and finish_code while it runs) or not reported by Tableau (notes on success)."""

    id: str
    status: JobStatus
    job_type: JobType = Field(description="'other' for job types this server does not know; `title` says which.")
    title: str | None = Field(None, description="Tableau's title for the job, e.g. 'Refresh Extracts'.")
    target_kind: TargetKind | None = Field(None, description="What the job works on.")
    target_id: str | None = None
    target_name: str | None = None
    target_matches: int | None = Field(
        None,
        description="When Tableau's job list names a target that several items share, how many: kind and id are "
        "then null (get_job, or list_jobs with exact_targets, says which).",
    )
    progress: int | None = Field(None, description="0-100.")
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    finish_code: int | None = Field(None, description="0 success, 1 failed, 2 cancelled; null while running.")
    notes: str | None = Field(None, description="Tableau's explanation, e.g. why a refresh failed.")


def job_item(job: Any) -> JobItem:
    done = job.completed_at is not None
    return JobItem(
        id=job.id,
        status=job.status,
        job_type=job.job_type if job.job_type in KNOWN_JOB_TYPES else "other",
        title=job.title or TITLES.get(job.job_type or ""),
        target_kind=job.target_kind,
        target_id=job.target_id,
        target_name=job.target_name,
        progress=100 if done else job.progress,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        finish_code=job.finish_code,
        notes=job.notes or None,
    )


class RefreshInput(BaseModel):
    kind: Literal["workbook", "datasource"] = Field(description="What to refresh.")
    target: str = Field(description="The workbook's or data source's name or id.", examples=["Sales Pipeline"])
    project: str | None = Field(None, description="Project path, to pick one item when the name is not unique.")
    incremental: bool = Field(False, description="Incremental instead of full refresh.")
    timeout_seconds: int = Field(600, ge=1, le=7200, description="How long to wait for the job (at most 7200).")


class RefreshOutput(BaseModel):
    outcome: Literal["succeeded", "failed", "cancelled", "timed_out"]
    job_id: str
    kind: Literal["workbook", "datasource"]
    target_id: str
    target: str = Field(description="project path/name of what was refreshed")
    attached_to_existing_job: bool = Field(description="True when a refresh was already queued and we waited for it.")
    reason: str | None = Field(None, description="Tableau's reason when the refresh failed or was cancelled.")
    queued_seconds: float | None = None
    run_seconds: float | None = None
    waited_seconds: float
    message: str


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def _outcome(job: Any) -> Literal["succeeded", "failed", "cancelled"]:
    if job.finish_code in (0, 3) or job.status == "Success":
        return "succeeded"
    if job.finish_code == 2 or job.status == "Cancelled":
        return "cancelled"
    return "failed"


async def _wait(ctx: ToolContext, job_id: str, timeout: float) -> tuple[Any, bool]:
    """Poll until the job completes or the timeout passes; returns (job, completed)."""
    deadline = time.monotonic() + timeout
    delay = POLL_START
    job = await ctx.tableau.get_job(job_id)
    while job.completed_at is None:
        await ctx.progress(float(job.progress or 0), 100.0, f"{job.status}: {job.progress or 0}%")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return job, False
        await anyio.sleep(min(delay, remaining))
        delay = min(delay * POLL_GROWTH, POLL_CAP)
        job = await ctx.tableau.get_job(job_id)
    await ctx.progress(100.0, 100.0, job.status)
    return job, True


async def _target(ctx: ToolContext, args: RefreshInput) -> tuple[Any, str | None]:
    """The item to refresh, resolved once per call (facts, preview and body share it); for an approved
    request, the recorded item loaded by its id (its current name and project, never a new name lookup)."""
    if ctx.bound is not None:
        return await ctx.once(("bound refresh target", args.kind), lambda: _content_by_id(ctx, args.kind))
    key = ("refresh target", args.kind, args.target, args.project)
    return await ctx.once(key, lambda: resolve_content(ctx, args.kind, args.target, args.project))


async def _content_by_id(ctx: ToolContext, kind: str) -> tuple[Any, str | None]:
    item_id = bound_id(ctx, kind)
    try:
        record = await ctx.tableau.get_content(kind, item_id)
    except NotFound:
        raise TargetGone(f"The approved {kind} (id {item_id}) no longer exists; nothing was refreshed.") from None
    return record, (await ctx.tableau.project_tree()).path_of(record.project_id)


async def refresh_targets(ctx: ToolContext, args: RefreshInput) -> list[dict[str, Any]]:
    record, path = await _target(ctx, args)
    return [{"role": args.kind, "kind": args.kind, "id": record.id, "name": record.name, "project_path": path or ""}]


async def refresh_and_wait(ctx: ToolContext, args: RefreshInput) -> RefreshOutput:
    record, path = await _target(ctx, args)
    label = f"{path}/{record.name}" if path else record.name
    if not getattr(record, "has_extracts", True):
        raise ToolFailure(
            f"The {args.kind} '{label}' has no extract, so there is nothing to refresh: it queries its data live."
        )
    started = await ctx.tableau.refresh(args.kind, record.id, incremental=args.incremental)
    ctx.progress.job_id = started.job_id  # get_request shows it while an approved refresh runs
    began = time.monotonic()
    try:
        job, completed = await _wait(ctx, started.job_id, args.timeout_seconds)
    except anyio.get_cancelled_exc_class():
        log.info("client cancelled refresh_and_wait; job %s continues in Tableau", started.job_id)
        raise
    waited = round(time.monotonic() - began, 3)
    common = {
        "job_id": job.id,
        "kind": args.kind,
        "target_id": record.id,
        "target": label,
        "attached_to_existing_job": started.already_queued,
        "queued_seconds": _seconds(job.created_at, job.started_at),
        "run_seconds": _seconds(job.started_at, job.completed_at),
        "waited_seconds": waited,
    }
    if not completed:
        return RefreshOutput(
            outcome="timed_out",
            message=(
                f"Stopped waiting after {args.timeout_seconds} s; the job is still {job.status} in Tableau and "
                f"goes on. Check it later with get_job(job_id='{job.id}')."
            ),
            **common,
        )
    outcome = _outcome(job)
    reason = (job.notes or None) if outcome != "succeeded" else None
    messages = {
        "succeeded": f"The extract of '{label}' was refreshed.",
        "failed": f"The refresh of '{label}' failed: {reason or 'Tableau gave no reason'}.",
        "cancelled": f"The refresh of '{label}' was cancelled in Tableau.",
    }
    return RefreshOutput(outcome=outcome, reason=reason, message=messages[outcome], **common)


async def refresh_facts(ctx: ToolContext, args: RefreshInput) -> dict[str, Any]:
    record, path = await _target(ctx, args)
    return {"content_kind": args.kind, "project_path": path or "", "target_name": record.name}


async def refresh_preview(ctx: ToolContext, args: RefreshInput) -> str:
    record, path = await _target(ctx, args)
    kind = "incremental" if args.incremental else "full"
    return f"Run a {kind} extract refresh of {args.kind} '{path}/{record.name}' (id {record.id})."


REFRESH_AND_WAIT = ToolSpec(
    name="refresh_and_wait",
    title="Refresh an extract and wait",
    description=(
        "Refresh the extract of a workbook or data source, then wait for Tableau's job and report progress while "
        "it runs. Returns outcome succeeded, failed (with Tableau's reason), cancelled or timed_out, with the job "
        "id and durations. If a refresh is already queued it waits for that job instead of starting another. "
        "On timeout the job keeps running in Tableau; check it with get_job.\n"
        'Example: {"kind": "datasource", "target": "Sales Pipeline", "project": "Sales"}.'
    ),
    input_model=RefreshInput,
    output_model=RefreshOutput,
    effect="write",
    annotations=WRITE_IDEMPOTENT,
    run=refresh_and_wait,
    facts=refresh_facts,
    preview=refresh_preview,
    # Not the project path: `project` may name a parent of the item's real project.
    literal_facts=lambda args: {"content_kind": args.kind},
    targets=refresh_targets,
    target_args=("target", "project"),
)


class GetJobInput(BaseModel):
    job_id: str = Field(description="The job's id, as returned by refresh_and_wait or list_jobs.")


async def get_job(ctx: ToolContext, args: GetJobInput) -> JobItem:
    if not is_uuid(args.job_id):
        raise ToolFailure(
            f"'{args.job_id}' is not a job id (job ids look like 1b2c3d4e-0000-4000-8000-00000000abcd). "
            "Use list_jobs to find recent jobs."
        )
    return job_item(await ctx.tableau.get_job(args.job_id.strip()))


GET_JOB = ToolSpec(
    name="get_job",
    title="Get a background job",
    description=(
        "Get one Tableau background job's state: status, type, progress, timing, finish code, what it works on "
        "(kind, id and name) and, when it failed, Tableau's reason.\n"
        'Example: {"job_id": "5f0e6c1a-2b8e-4f3e-9d55-0a1b2c3d4e5f"}.'
    ),
    input_model=GetJobInput,
    output_model=JobItem,
    effect="read",
    annotations=READ_ONLY,
    run=get_job,
)

class CancelJobInput(BaseModel):
    job_id: str = Field(description="The job's id, as returned by refresh_and_wait or list_jobs.")


class CancelJobOutput(BaseModel):
    status: Literal["cancelled", "already_finished"] = Field(
        description="'already_finished': the job ended before the cancel; `job` has its outcome."
    )
    job: JobItem
    message: str


async def _job(ctx: ToolContext, args: CancelJobInput) -> Any:
    """The job as it is now: by the recorded id for an approved request."""
    if ctx.bound is not None:
        job_id = bound_id(ctx, "job")
    else:
        job_id = args.job_id.strip()
        if not is_uuid(job_id):
            raise ToolFailure(
                f"'{args.job_id}' is not a job id (job ids look like 1b2c3d4e-0000-4000-8000-00000000abcd). "
                "Use list_jobs to find queued and running jobs."
            )
    return await ctx.once(("job", job_id), lambda: ctx.tableau.get_job(job_id))


def _job_label(job: Any) -> str:
    target = f" of {job.target_kind or 'item'} '{job.target_name}'" if job.target_name else ""
    return f"job {job.id} ({job.title or job.job_type or 'job'}{target})"


def _finished(job: Any) -> str:
    return f"{_job_label(job)} already finished: {job.status} at {job.completed_at:%Y-%m-%d %H:%M} UTC"


async def cancel_job(ctx: ToolContext, args: CancelJobInput) -> CancelJobOutput:
    job = await _job(ctx, args)
    if job.done:
        return CancelJobOutput(status="already_finished", job=job_item(job), message=_finished(job) + ".")
    try:
        await ctx.tableau.cancel_job(job.id)
    except TableauError:
        # Tableau refuses to cancel a job that finished meanwhile: answer with its outcome, not an error.
        now = await ctx.tableau.get_job(job.id)
        if not now.done or now.status == "Cancelled":
            raise
        return CancelJobOutput(status="already_finished", job=job_item(now), message=_finished(now) + ".")
    now = await ctx.tableau.get_job(job.id)
    return CancelJobOutput(
        status="cancelled" if now.status == "Cancelled" else "already_finished",
        job=job_item(now),
        message=f"Cancelled {_job_label(now)}." if now.status == "Cancelled" else _finished(now) + ".",
    )


async def cancel_targets(ctx: ToolContext, args: CancelJobInput) -> list[dict[str, Any]]:
    job = await _job(ctx, args)
    return [{"role": "job", "kind": "job", "id": job.id, "name": job.target_name or job.title or job.id}]


async def cancel_facts(ctx: ToolContext, args: CancelJobInput) -> dict[str, Any]:
    job = await _job(ctx, args)
    return {"change_count": 0 if job.done else 1, "target_name": job.target_name}


async def cancel_preview(ctx: ToolContext, args: CancelJobInput) -> str:
    job = await _job(ctx, args)
    if job.done:
        return _finished(job) + "; approving changes nothing."
    since = f", started {job.started_at:%Y-%m-%d %H:%M} UTC" if job.started_at else ", not started yet"
    progress = f", {job.progress}% done" if job.progress is not None and job.started_at else ""
    return (
        f"{_job_label(job)} is {job.status}{since}{progress}; approving cancels it. The item keeps the data of its "
        "last successful run; nothing else is changed."
    )


CANCEL_JOB = ToolSpec(
    name="cancel_job",
    title="Cancel a background job",
    description=(
        "Cancel a queued or running Tableau background job (an extract refresh, a flow run). A job that has "
        "already finished is not an error: the answer has status 'already_finished' and the job's outcome. "
        "Depending on the site's policy the cancel may need an administrator's approval (status "
        "'pending_approval' and a request id for get_request).\n"
        'Example: {"job_id": "5f0e6c1a-2b8e-4f3e-9d55-0a1b2c3d4e5f"}.'
    ),
    input_model=CancelJobInput,
    output_model=CancelJobOutput,
    effect="write",
    annotations=WRITE_DESTRUCTIVE,
    run=cancel_job,
    facts=cancel_facts,
    preview=cancel_preview,
    targets=cancel_targets,
    target_args=("job_id",),
    fact_names=frozenset({"change_count"}),
)


class ListJobsInput(BaseModel):
    status: JobStatus | None = Field(None, description="Only jobs in this state.")
    job_type: JobTypeFilter | None = Field(
        None, description="Only this job type; Tableau's spellings (RefreshExtract, RunFlow) work too."
    )
    target: str | None = Field(None, description="Text contained in the name of what the job works on.")
    created_after: datetime | None = Field(None, description="ISO 8601; defaults to 7 days ago.")
    created_before: datetime | None = Field(None, description="ISO 8601.")
    exact_targets: bool = Field(
        False,
        description="Fetch each job on the page whose target name several items share (one request each), so "
        "every job has its target's kind and id.",
    )
    include_failure_reasons: bool = Field(
        True,
        description="Fetch Tableau's reason for each failed job on the returned page (one request each; false "
        "makes a page cost two requests at most).",
    )
    limit: int = Field(30, ge=1, le=200, description="Jobs per page (30 fit the result budget; more may be cut, see budget_cut).")
    cursor: str | None = Field(None, description="`next_cursor` from the previous page, with the same filters.")


class ListJobsOutput(BaseModel):
    jobs: list[JobItem]
    total: int = Field(description="How many jobs match the filters in all.")
    window_start: datetime = Field(description="Jobs created before this are not included.")
    next_cursor: str | None = None
    budget_cut: int = Field(0, description="Jobs of this page left for the next one by the character budget.")


def _job_filters(args: ListJobsInput, start: datetime) -> list[tuple[str, str, Any]]:
    """Every filter Tableau applies itself, so paging happens on the server."""
    filters: list[tuple[str, str, Any]] = [("createdAt", "gte", start)]
    if args.created_before:
        filters.append(("createdAt", "lt", utc(args.created_before)))
    if args.status:
        filters.append(("status", "eq", args.status))
    if args.job_type:
        filters.append(("jobType", "eq", args.job_type))
    if args.target:
        # A job's subtitle names its target; pieces Tableau cannot filter on are matched locally.
        filters += [("subtitle", "has", piece) for piece in UNFILTERABLE.split(args.target) if piece.strip()]
    return filters


async def _matching_jobs(ctx: ToolContext, args: ListJobsInput, start: datetime, offset: int) -> tuple[list[Any], int]:
    """The jobs at `offset`: `limit` of them and the total, from one Tableau page (two at most)."""
    filters = _job_filters(args, start)
    if args.target and UNFILTERABLE.search(args.target):
        # Tableau matched each piece; only a local check knows the whole text. Rare, bounded by the matches.
        wanted = args.target.lower()
        jobs = [j for j in await ctx.tableau.list_jobs(filters=filters) if wanted in (j.target_name or "").lower()]
        return jobs[offset : offset + args.limit], len(jobs)
    # A page of at most 4 x limit (like list_content), else two: never 1000 jobs read for a 30-job window.
    number, size, skip = page_window(offset, args.limit, max_size=min(MAX_PAGE_SIZE, 4 * args.limit))
    jobs, total = await ctx.tableau.jobs_page(filters, None, number, size)
    jobs = jobs[skip : skip + args.limit]
    if len(jobs) < args.limit and number * size < total:  # no single page held the window
        more, total = await ctx.tableau.jobs_page(filters, None, number + 1, size)
        jobs += more[: args.limit - len(jobs)]
    return jobs, total


async def list_jobs(ctx: ToolContext, args: ListJobsInput) -> ListJobsOutput:
    query = args.model_dump(mode="json", exclude={"cursor", "limit"})
    offset = decode_cursor(args.cursor, query)
    start = utc(args.created_after) or (datetime.now(UTC) - timedelta(days=7)).replace(microsecond=0)
    jobs, total = await _matching_jobs(ctx, args, start, offset)
    items = _with_targets(jobs, await ctx.tableau.job_targets())
    if args.exact_targets:
        items = await _with_details(ctx, items, lambda item: item.target_id is None)
    page = fit_budget(items, offset, total, query, json_size)
    if args.include_failure_reasons:
        # Reasons only for the jobs that fit; with them the page may fit fewer, never more.
        enriched = await _with_details(ctx, page.items, lambda item: item.status == "Failed" and item.notes is None)
        page = fit_budget(enriched, offset, total, query, json_size)
    return ListJobsOutput(
        jobs=page.items,
        total=total,
        window_start=start,
        next_cursor=page.next_cursor,
        budget_cut=len(items) - len(page.items),
    )


def _with_targets(jobs: list[Any], index: dict[str, list[Any]]) -> list[JobItem]:
    """Jobs with their target's kind and id from the cached target index.

    Query Jobs names a target but gives no id: the index supplies kind and id when the name is unique
    for the job's type, and says how many items share it otherwise (never a guess).
    """
    items = []
    for job in jobs:
        item = job_item(job)
        kinds = ("flow",) if item.job_type == "run_flow" else ("workbook", "datasource")
        targets = [t for t in index.get(item.target_name or "", ()) if t.kind in kinds]
        if len(targets) == 1:
            item = item.model_copy(update={"target_kind": targets[0].kind, "target_id": targets[0].id})
        elif len(targets) > 1:
            shared_kinds = {t.kind for t in targets}
            kind = shared_kinds.pop() if len(shared_kinds) == 1 else None
            item = item.model_copy(update={"target_kind": kind, "target_id": None, "target_matches": len(targets)})
        items.append(item)
    return items


async def _with_details(ctx: ToolContext, items: list[JobItem], wanted: Callable[[JobItem], bool]) -> list[JobItem]:
    """The `wanted` jobs replaced by Query Job's record (reason, exact target): one request each, page-bounded."""
    details: dict[str, JobItem] = {}

    async def load(job_id: str) -> None:
        try:
            details[job_id] = job_item(await ctx.tableau.get_job(job_id))
        except NotFound:
            pass  # Tableau cleans up finished jobs: the listing's record is all there is

    await gather(*(partial(load, item.id) for item in items if wanted(item)))
    return [details.get(item.id, item) for item in items]


LIST_JOBS = ToolSpec(
    name="list_jobs",
    title="List recent background jobs",
    description=(
        "List recent Tableau background jobs (newest first), filtered by status, type, the name of what they "
        "work on, and creation time (default: the last 7 days). Each job has its type, target (kind, id, name), "
        "timestamps and finish code; failed jobs carry Tableau's reason. Filtering and paging happen in Tableau, "
        "so a page costs the same on any site.\n"
        'Example: "which refreshes failed today?" is {"status": "Failed", "job_type": "refresh_extracts", '
        '"created_after": "<today>T00:00:00Z"}.'
    ),
    input_model=ListJobsInput,
    output_model=ListJobsOutput,
    effect="read",
    annotations=READ_ONLY,
    run=list_jobs,
)
