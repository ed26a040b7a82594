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


PROMPT_ARGUMENTS: dict[str, type[BaseModel]] = {
    "audit_project_ownership": AuditOwnershipArguments,
    "why_cannot_user_access": WhyCannotAccessArguments,
    "failed_refreshes": FailedRefreshesArguments,
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
