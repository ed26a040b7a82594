"""Resources and prompts for chat users: a site summary, the policy in force, and common questions.

Each read goes through `CallPipeline.governed_read`, the tools' path: a rule must name the resource or
prompt for the caller (`resources:` / `prompts:` in the policy), and the read and every Tableau request it
makes are audited under the caller's principal. The names here are the policy's `DEFAULT_READABLES`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import BaseModel, Field

from server.arguments import ArgumentError, parse_arguments, unknown_message

SITE_SUMMARY_URI = "tableau://site/summary"
POLICY_URI = "steward://policy"


class AuditOwnershipArguments(BaseModel):
    project: str = Field(description="Project path such as 'Sales' or 'Sales/EMEA'.")
    inactive_days: int = Field(90, ge=1, le=3650, description="Flag owners who have not signed in for this many days.")


class WhyCannotAccessArguments(BaseModel):
    user: str = Field(description="The user's sign-in name or email.")
    item: str = Field(description="The item's name.")
    kind: Literal["project", "workbook", "view", "datasource", "flow"] = Field("workbook", description="The item's kind.")


class FailedRefreshesArguments(BaseModel):
    days: int = Field(1, ge=1, le=365, description="How many days back to look.")


class ReclaimLicensesArguments(BaseModel):
    inactive_days: int = Field(90, ge=1, le=3650, description="Users who have not signed in for this many days.")


class HandOverContentArguments(BaseModel):
    user: str = Field(description="The departed user's sign-in name or email.")
    new_owner: str = Field(description="Who takes the content over: sign-in name or email.")
    project: str | None = Field(None, description="Only content in this project path and below, e.g. 'Finance'.")


class ReconcileGroupArguments(BaseModel):
    group: str = Field(description="The group's name.")
    members: str = Field(description="Everyone who should be in the group: sign-in names or emails, comma-separated.")
    remove_missing: bool = Field(False, description="Also remove members who are not in the list.")


PROMPT_ARGUMENTS: dict[str, type[BaseModel]] = {
    "audit_project_ownership": AuditOwnershipArguments,
    "why_cannot_user_access": WhyCannotAccessArguments,
    "failed_refreshes": FailedRefreshesArguments,
    "reclaim_licenses": ReclaimLicensesArguments,
    "hand_over_content": HandOverContentArguments,
    "reconcile_group": ReconcileGroupArguments,
}


async def prompt_arguments_middleware(ctx: Any, call_next: Any) -> Any:
    """Check a prompt's arguments like a tool's before the SDK renders it.

    The SDK answers a missing or malformed prompt argument with "Internal server error"; this answers
    invalid params with what to send instead, and hands the prompt the normalised values.
    """
    if getattr(ctx, "method", None) != "prompts/get" or not isinstance(ctx.params, dict):
        return await call_next(ctx)
    name = ctx.params.get("name")
    model = PROMPT_ARGUMENTS.get(name) if isinstance(name, str) else None
    if model is None:
        if isinstance(name, str):
            raise MCPError(INVALID_PARAMS, unknown_message([name], list(PROMPT_ARGUMENTS), what="prompt"))
        return await call_next(ctx)
    try:
        parsed = parse_arguments(model, ctx.params.get("arguments"))
    except ArgumentError as exc:
        raise MCPError(INVALID_PARAMS, f"Prompt {name}: {exc}") from None
    arguments = {key: str(value) for key, value in parsed.model_dump().items()}
    return await call_next(dataclasses.replace(ctx, params={**ctx.params, "arguments": arguments}))


def register_resources_and_prompts(mcp: MCPServer, pipeline: Any) -> None:
    @mcp.resource(
        SITE_SUMMARY_URI,
        name="site_summary",
        title="Site summary",
        description="Server version, counts of content, users and groups, and extract refreshes that failed in the last day.",
        mime_type="application/json",
    )
    async def site_summary() -> str:
        return await pipeline.governed_read("resource", "site_summary", {"uri": SITE_SUMMARY_URI}, summarise)

    async def summarise() -> str:
        tableau = pipeline.caller_tableau()  # the caller's own session under per-user identity
        info = await tableau.server_info()
        counts: dict[str, int] = {}

        async def count(kind: str) -> None:
            counts[kind + "s"] = await tableau.count_content(kind)

        async with anyio.create_task_group() as tasks:
            for kind in ("project", "workbook", "view", "datasource", "flow"):
                tasks.start_soon(count, kind)
        users = await tableau.users_by_id()
        groups = await tableau.list_groups()
        since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        failed = await tableau.list_jobs(filters=[("status", "eq", "Failed"), ("createdAt", "gte", since)])
        summary = {
            "site": info.site_name,
            "site_content_url": info.site_content_url,
            "product_version": info.product_version,
            "api_version": info.api_version,
            "counts": {**counts, "users": len(users), "groups": len(groups)},
            "failed_refreshes_last_day": [
                {"job_id": j.id, "target": j.target_name, "reason": (j.notes or "")[:200]} for j in failed[:20]
            ],
            "failed_refreshes_last_day_total": len(failed),
        }
        return json.dumps(summary, default=str, indent=1)

    @mcp.resource(
        POLICY_URI,
        name="policy",
        title="Policy in force",
        description="What this server lets the caller do: the mode, which tools are allowed, gated or denied, and the rules.",
        mime_type="application/json",
    )
    async def policy_in_force() -> str:
        governance = pipeline.live.governance

        async def describe() -> str:
            return json.dumps(governance.describe_policy(governance.current_principal()), default=str, indent=1)

        return await pipeline.governed_read("resource", "policy", {"uri": POLICY_URI}, describe)

    @mcp.prompt(
        name="audit_project_ownership",
        title="Audit ownership in a project",
        description="Who owns the content of a project, and which of it belongs to inactive or unlicensed users.",
    )
    async def audit_project_ownership(project: str, inactive_days: str = "90") -> str:
        arguments = {"project": project, "inactive_days": inactive_days}
        return await pipeline.governed_read("prompt", "audit_project_ownership", arguments, _text(ownership_prompt, arguments))

    @mcp.prompt(
        name="why_cannot_user_access",
        title="Why can't this user see or do that?",
        description="Explain a user's effective permissions on one item, with the deciding rule for each capability.",
    )
    async def why_cannot_user_access(user: str, item: str, kind: str = "workbook") -> str:
        arguments = {"user": user, "item": item, "kind": kind}
        return await pipeline.governed_read("prompt", "why_cannot_user_access", arguments, _text(access_prompt, arguments))

    @mcp.prompt(
        name="failed_refreshes",
        title="Which extract refreshes failed recently?",
        description="List failed extract refreshes with Tableau's reasons and who owns the affected content.",
    )
    async def failed_refreshes(days: str = "1") -> str:
        arguments = {"days": days}
        return await pipeline.governed_read("prompt", "failed_refreshes", arguments, _text(refreshes_prompt, arguments))

    @mcp.prompt(
        name="reclaim_licenses",
        title="Reclaim licenses from inactive users",
        description="Find licensed users who have not signed in for N days, and request Unlicensed for each, with approval.",
    )
    async def reclaim_licenses(inactive_days: str = "90") -> str:
        arguments = {"inactive_days": inactive_days}
        return await pipeline.governed_read("prompt", "reclaim_licenses", arguments, _text(reclaim_prompt, arguments))

    @mcp.prompt(
        name="hand_over_content",
        title="Hand over a departed user's content",
        description="Move what a departed user owns (optionally in one project tree) to a new owner, with approval.",
    )
    async def hand_over_content(user: str, new_owner: str, project: str = "") -> str:
        arguments = {"user": user, "new_owner": new_owner, "project": project}
        return await pipeline.governed_read("prompt", "hand_over_content", arguments, _text(handover_prompt, arguments))

    @mcp.prompt(
        name="reconcile_group",
        title="Reconcile a group against a list",
        description="Compare a group's members with an approved list and request only the difference, with approval.",
    )
    async def reconcile_group(group: str, members: str, remove_missing: str = "False") -> str:
        arguments = {"group": group, "members": members, "remove_missing": remove_missing}
        return await pipeline.governed_read("prompt", "reconcile_group", arguments, _text(reconcile_prompt, arguments))


def _text(render: Callable[..., str], arguments: dict[str, str]) -> Callable[[], Awaitable[str]]:
    """A prompt's text as the awaitable `governed_read` runs once the policy allows it."""

    async def produce() -> str:
        return render(**arguments)

    return produce


def ownership_prompt(project: str, inactive_days: str) -> str:
    return (
        f"Audit content ownership in the Tableau project '{project}' (including sub-projects).\n"
        f"1. Call find_owners with project='{project}' and inactive_days={inactive_days}.\n"
        "2. Summarise owners by number of items, and list the flagged owners (unlicensed, inactive, never "
        "signed in, deleted) with what they own; use list_content with owner=<name> for details.\n"
        "3. Recommend who should take over content owned by flagged owners. Do not change anything."
    )


def access_prompt(user: str, item: str, kind: str) -> str:
    return (
        f"Explain why {user} can or cannot use the {kind} '{item}'.\n"
        f"1. Call inspect_permissions with kind='{kind}', target='{item}', user='{user}'.\n"
        "2. For each denied capability that matters (View, Download Full Data, Web Edit...), quote the "
        "deciding reason (site role cap, a group Deny, no rule, a locked project...).\n"
        "3. Say what an administrator would have to change, without changing anything yourself."
    )


def refreshes_prompt(days: str) -> str:
    return (
        f"List the extract refreshes that failed in the last {days} day(s).\n"
        "1. Call list_jobs with status='Failed' and created_after set accordingly.\n"
        "2. Group by target, quote Tableau's reason, and use find_owners or list_content to name the owner.\n"
        "3. Call list_refresh_tasks with min_consecutive_failures=2 for scheduled refreshes that keep failing, "
        "and say when each runs next.\n"
        "4. Suggest next steps (credentials, connectivity, query time limits)."
    )


def reclaim_prompt(inactive_days: str) -> str:
    return (
        f"Reclaim Tableau licenses from users who have not signed in for {inactive_days} days.\n"
        f"1. Call list_users with last_login_before set to {inactive_days} days before today (it includes users "
        "who never signed in); leave out Unlicensed users and site administrators.\n"
        "2. Show the list to the user: name, site role, last sign-in, and what each owns (find_owners with "
        f"inactive_days={inactive_days} gives the counts). Ask which to reclaim before changing anything.\n"
        "3. For each confirmed user, call update_user_site_role with site_role='Unlicensed'. Each call returns a "
        "request for an approver, with a preview of what the user owns and would lose; report the request ids.\n"
        "4. Content stays with its owner: suggest hand_over_content for owners whose content others maintain."
    )


def handover_prompt(user: str, new_owner: str, project: str) -> str:
    where = f" in '{project}' and below" if project else ""
    scope = f", project='{project}'" if project else ""
    return (
        f"Hand over the content {user} owns{where} to {new_owner}.\n"
        f"1. Call find_owners{' with project=' + repr(project) if project else ''} and list_content with "
        f"owner='{user}'{scope} to show what {user} owns, per kind, with examples.\n"
        f"2. Confirm {new_owner} exists and is licensed to own content (list_users: Creator, Explorer (can "
        "publish) or an administrator role); if not, say so and stop.\n"
        f"3. Call transfer_content_ownership with owner='{user}', new_owner='{new_owner}'{scope}. It returns one "
        "request for an approver, previewing the counts per kind; report its id and follow it with get_request.\n"
        "4. Once it ran, report what moved and what did not; running the same request again finishes the rest."
    )


def reconcile_prompt(group: str, members: str, remove_missing: str) -> str:
    listed = [m.strip() for m in members.split(",") if m.strip()]
    removing = remove_missing.lower() == "true"
    return (
        f"Reconcile the Tableau group '{group}' against this approved list of {len(listed)} member(s): "
        f"{json.dumps(listed)}.\n"
        f"1. Call sync_group_members with groups=[{{\"group\": {json.dumps(group)}, \"members\": <the list>}}] and "
        f"remove_missing={'true' if removing else 'false'}. It computes the difference on the live site and "
        "returns one request for an approver whose preview lists who would be added"
        + (", who removed" if removing else "") + ", unknown names and users who would need a license.\n"
        "2. Report the preview and the request id; ask about unknown names instead of guessing.\n"
        + ("" if removing else "3. Members not on the list stay: say who they are, and that remove_missing=true "
           "would remove them.\n")
        + "Only the difference is applied, and every change is audited with the request."
    )
