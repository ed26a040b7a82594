"""Site toolset: whoami (who is asking, as whom, allowed to do what) and list_refresh_tasks (schedules)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from server.toolkit import READ_ONLY, ToolContext, ToolSpec
from tools.budget import fit_budget
from tools.common import decode_cursor, in_project, json_size, utc


class WhoAmIInput(BaseModel):
    pass


class PolicyRule(BaseModel):
    id: str
    description: str | None = None
    tools: list[str]
    effect: str = Field(description="allow, deny or require_approval.")


class WhoAmIOutput(BaseModel):
    principal: str = Field(description="Who this server believes is calling (the policy's principal).")
    tableau_user: str | None = Field(None, description="The Tableau user every request is made as.")
    identity: Literal["service", "per_user"] = Field(
        "service",
        description="service: every caller acts as the server's one Tableau account. per_user: the server signs "
        "in as the caller's own Tableau user (tableau_user), so Tableau's permissions bound every answer.",
    )
    tableau_user_id: str
    tableau_site_role: str | None = None
    site_name: str | None = None
    site_content_url: str = Field(description="The site's URL name ('' is the default site).")
    site_id: str
    server_url: str
    product_version: str | None = None
    api_version: str = Field(description="The REST API version every request uses.")
    policy_mode: str = Field(description="read-only or read-write.")
    tools_you_can_use: list[str]
    tools_hidden_from_you: list[str]
    rules: list[PolicyRule] = Field(description="The policy rules that apply to you, in order.")
    approvals_required: int = Field(description="How many approvers must approve a gated change.")


async def whoami(ctx: ToolContext, args: WhoAmIInput) -> WhoAmIOutput:
    info = await ctx.tableau.server_info()
    policy = ctx.approvals.describe_policy(ctx.principal)
    return WhoAmIOutput(
        principal=ctx.principal,
        tableau_user=info.user_name,
        identity=ctx.approvals.policy.identity,
        tableau_user_id=info.user_id,
        tableau_site_role=info.user_site_role,
        site_name=info.site_name,
        site_content_url=info.site_content_url,
        site_id=info.site_id,
        server_url=info.server_url,
        product_version=info.product_version,
        api_version=info.api_version,
        policy_mode=policy["mode"],
        tools_you_can_use=policy["tools_you_can_use"],
        tools_hidden_from_you=policy["tools_hidden_from_you"],
        rules=[PolicyRule(**rule) for rule in policy["rules"]],
        approvals_required=policy["approvals"]["required_approvals"],
    )


WHOAMI = ToolSpec(
    name="whoami",
    title="Who am I here?",
    description=(
        "Say who is asking and what they may do: the Tableau server and site, the Tableau user the server signs "
        "in as and its site role, the caller's principal, the policy mode, the tools the policy lets the caller "
        "use and the rules that apply (which changes need approval, which are denied). Costs at most two "
        "requests, once per server.\n"
        "Example: {} (no arguments)."
    ),
    input_model=WhoAmIInput,
    output_model=WhoAmIOutput,
    effect="read",
    annotations=READ_ONLY,
    run=whoami,
)


class ListRefreshTasksInput(BaseModel):
    target: str | None = Field(None, description="Text contained in the refreshed workbook's or data source's name.")
    kind: Literal["workbook", "datasource"] | None = Field(None, description="Only tasks refreshing this kind.")
    project: str | None = Field(None, description="Project path; sub-projects are included.")
    min_consecutive_failures: int | None = Field(
        None, ge=1, description="Only tasks whose last runs failed at least this many times in a row."
    )
    runs_after: datetime | None = Field(None, description="ISO 8601; only tasks whose next run is after this.")
    runs_before: datetime | None = Field(None, description="ISO 8601; only tasks whose next run is before this.")
    sort_by: Literal["next_run", "consecutive_failures", "target"] = Field(
        "next_run", description="next_run: soonest first; consecutive_failures: most first; target: by name."
    )
    limit: int = Field(25, ge=1, le=200, description="Tasks per page (25 fit the result budget; more may be cut, see budget_cut).")
    cursor: str | None = Field(None, description="`next_cursor` from the previous page, with the same filters.")


class TaskSchedule(BaseModel):
    id: str | None = None
    name: str | None = None
    frequency: str | None = Field(None, description="Hourly, Daily, Weekly or Monthly.")
    interval: str | None = Field(None, description="e.g. 'every 4 hours' or 'Monday, Thursday'.")
    start_time: str | None = Field(None, description="HH:MM:SS on the schedule's clock.")
    state: str | None = Field(None, description="Active or Suspended.")


class RefreshTask(BaseModel):
    task_id: str
    refresh_type: str = Field(description="full or incremental.")
    target_kind: Literal["workbook", "datasource"] | None = None
    target_id: str | None = None
    target_name: str | None = None
    project_path: str | None = None
    schedule: TaskSchedule | None = None
    next_run_at: datetime | None = Field(None, description="When the schedule runs next (UTC).")
    consecutive_failures: int = Field(description="How many runs in a row failed; 0 when the last run succeeded.")
    last_outcome: Literal["failed", "succeeded_or_not_run"] = Field(
        description="'failed' when the last run failed; Tableau's task list does not tell success from no run yet."
    )
    last_run_at: datetime | None = None


class ListRefreshTasksOutput(BaseModel):
    tasks: list[RefreshTask]
    total: int = Field(description="How many tasks match the filters in all.")
    next_cursor: str | None = None
    budget_cut: int = Field(0, description="Tasks of this page left for the next one by the character budget.")


def _task(task: Any, target: Any, path: str | None) -> RefreshTask:
    schedule = task.schedule
    return RefreshTask(
        task_id=task.id,
        refresh_type=task.refresh_type,
        target_kind=task.target_kind,
        target_id=task.target_id,
        target_name=target.name if target else None,
        project_path=path,
        schedule=TaskSchedule(**schedule.model_dump(include=set(TaskSchedule.model_fields))) if schedule else None,
        next_run_at=schedule.next_run_at if schedule else None,
        consecutive_failures=task.consecutive_failures,
        last_outcome="failed" if task.consecutive_failures else "succeeded_or_not_run",
        last_run_at=task.last_run_at,
    )


def _keep(item: RefreshTask, args: ListRefreshTasksInput) -> bool:
    after, before = utc(args.runs_after), utc(args.runs_before)
    checks = (
        args.target is None or args.target.lower() in (item.target_name or "").lower(),
        args.kind is None or item.target_kind == args.kind,
        in_project(item.project_path, args.project),
        args.min_consecutive_failures is None or item.consecutive_failures >= args.min_consecutive_failures,
        after is None or (item.next_run_at is not None and item.next_run_at > after),
        before is None or (item.next_run_at is not None and item.next_run_at < before),
    )
    return all(checks)


_LATEST = datetime.max.replace(tzinfo=UTC)
_ORDER = {
    "next_run": lambda t: (t.next_run_at or _LATEST, (t.target_name or "").lower(), t.task_id),
    "consecutive_failures": lambda t: (-t.consecutive_failures, (t.target_name or "").lower(), t.task_id),
    "target": lambda t: ((t.target_name or "").lower(), t.next_run_at or _LATEST, t.task_id),
}


async def list_refresh_tasks(ctx: ToolContext, args: ListRefreshTasksInput) -> ListRefreshTasksOutput:
    query = args.model_dump(mode="json", exclude={"cursor", "limit"})
    offset = decode_cursor(args.cursor, query)
    tasks = await ctx.tableau.extract_refresh_tasks()  # Tableau answers every task in one response
    targets = {t.id: t for named in (await ctx.tableau.job_targets()).values() for t in named}
    tree = await ctx.tableau.project_tree()
    items = []
    for task in tasks:
        target = targets.get(task.target_id or "")
        item = _task(task, target, tree.path_of(target.project_id) if target else None)
        if _keep(item, args):
            items.append(item)
    items.sort(key=_ORDER[args.sort_by])
    page = fit_budget(items[offset : offset + args.limit], offset, len(items), query, json_size)
    return ListRefreshTasksOutput(tasks=page.items, total=len(items), next_cursor=page.next_cursor, budget_cut=page.cut)


LIST_REFRESH_TASKS = ToolSpec(
    name="list_refresh_tasks",
    title="List scheduled extract refreshes",
    description=(
        "List the site's scheduled extract refreshes (extract-refresh tasks): what each refreshes (kind, id, name, "
        "project path), its schedule (name, frequency, interval, start time), when it runs next, and how it has "
        "been going (consecutive failures, last outcome). Answers 'when does X refresh next?' (target), 'which "
        "scheduled refreshes keep failing?' (min_consecutive_failures, sort_by consecutive_failures) and 'what "
        "runs tonight?' (runs_after / runs_before). Use list_jobs for what already ran.\n"
        'Example: {"runs_after": "2025-06-01T18:00:00Z", "runs_before": "2025-06-02T06:00:00Z"} lists what runs '
        "tonight."
    ),
    input_model=ListRefreshTasksInput,
    output_model=ListRefreshTasksOutput,
    effect="read",
    annotations=READ_ONLY,
    run=list_refresh_tasks,
)
