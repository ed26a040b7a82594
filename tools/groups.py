"""Group membership toolset: add_user_to_group (a governed write)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from server.toolkit import WRITE_IDEMPOTENT, TargetGone, ToolContext, ToolFailure, ToolSpec, bound_id
from tools.directory import resolve_group, resolve_user


class AddUserToGroupInput(BaseModel):
    user: str = Field(description="The user's sign-in name, email or id.", examples=["sam.lee@example.com"])
    group: str = Field(description="The group's name or id.", examples=["Marketing"])


class Membership(BaseModel):
    user_id: str
    user: str
    user_site_role: str
    group_id: str
    group: str
    group_member_count: int


class AddUserToGroupOutput(BaseModel):
    status: Literal["added", "no_change"]
    membership: Membership
    message: str


async def resolve_membership(ctx: ToolContext, args: AddUserToGroupInput) -> tuple[Any, Any]:
    """The user and group, resolved once per call (facts, preview and body share them); for an approved
    request, the recorded user and group loaded by their ids (never a new name lookup)."""
    if ctx.bound is not None:
        return await ctx.once(("bound membership",), lambda: _membership_by_id(ctx))

    async def resolve() -> tuple[Any, Any]:
        return await resolve_user(ctx, args.user), await resolve_group(ctx, args.group)

    return await ctx.once(("membership", args.user, args.group), resolve)


async def _membership_by_id(ctx: ToolContext) -> tuple[Any, Any]:
    user_id, group_id = bound_id(ctx, "user"), bound_id(ctx, "group")
    user = (await ctx.tableau.users_by_id()).get(user_id)
    group = next((g for g in await ctx.tableau.list_groups() if g.id == group_id), None)
    gone = [f"{what} (id {item_id})" for what, item_id, found in (("user", user_id, user), ("group", group_id, group))
            if found is None]
    if gone:
        verb = "exists" if len(gone) == 1 else "exist"
        raise TargetGone(f"The approved {' and '.join(gone)} no longer {verb}; nothing was changed.")
    return user, group


async def membership_targets(ctx: ToolContext, args: AddUserToGroupInput) -> list[dict[str, Any]]:
    user, group = await resolve_membership(ctx, args)
    return [
        {"role": "user", "kind": "user", "id": user.id, "name": user.name, "site_role": user.site_role},
        {"role": "group", "kind": "group", "id": group.id, "name": group.name},
    ]


async def is_member(ctx: ToolContext, group_id: str, user_id: str) -> tuple[bool, int]:
    """Whether the user is in the group, and how many members it has now (one read)."""
    members = await ctx.tableau.group_members(group_id)
    return any(m.id == user_id for m in members), len(members)


async def add_user_to_group(ctx: ToolContext, args: AddUserToGroupInput) -> AddUserToGroupOutput:
    user, group = await resolve_membership(ctx, args)
    if user.site_role == "Unlicensed" and not group.minimum_site_role:
        raise ToolFailure(
            f"{user.name} is Unlicensed and group '{group.name}' grants no license on sign-in, so membership "
            "would give them no access. Ask an administrator to set their site role first, or choose a group "
            "with a minimum site role."
        )
    added = await ctx.tableau.add_group_member(group.id, user.id)
    _, count = await is_member(ctx, group.id, user.id)
    membership = Membership(
        user_id=user.id,
        user=user.name,
        user_site_role=user.site_role,
        group_id=group.id,
        group=group.name,
        group_member_count=count,
    )
    if not added:
        return AddUserToGroupOutput(
            status="no_change", membership=membership, message=f"{user.name} was already a member of {group.name}."
        )
    return AddUserToGroupOutput(
        status="added", membership=membership, message=f"Added {user.name} to {group.name} ({count} members now)."
    )


async def add_user_facts(ctx: ToolContext, args: AddUserToGroupInput) -> dict[str, Any]:
    user, group = await resolve_membership(ctx, args)
    return {
        "group_name": group.name,
        "target_user_site_role": user.site_role,
        "group_minimum_site_role": group.minimum_site_role or "",
        "target_user": user.name,
    }


def _grant_note(group: Any) -> str:
    """What membership grants on sign-in, when the group gives a site role (an administrator one above all)."""
    role = group.minimum_site_role
    if not role:
        return ""
    if role.startswith(("SiteAdministrator", "ServerAdministrator")):
        return f" WARNING: {group.name} grants {role} on sign-in, so membership makes them a site administrator."
    return f" {group.name} grants {role} on sign-in."


async def add_user_preview(ctx: ToolContext, args: AddUserToGroupInput) -> str:
    user, group = await resolve_membership(ctx, args)
    member, count = await is_member(ctx, group.id, user.id)
    who = f"{user.full_name or user.name} <{user.name}> ({user.site_role})"
    if member:
        return f"{who} is already in {group.name} ({count} members); approving changes nothing."
    return f"{who} is not in {group.name} ({count} members); approving adds them.{_grant_note(group)}"


ADD_USER_TO_GROUP = ToolSpec(
    name="add_user_to_group",
    title="Add a user to a group",
    description=(
        "Add a user to a group. Already being a member is success with status 'no_change'. Returns the "
        "membership as it now stands. Depending on the site's policy the change may need an administrator's "
        "approval: then the result has status 'pending_approval' and a request id to check with get_request.\n"
        'Example: {"user": "sam.lee@example.com", "group": "Marketing"}.'
    ),
    input_model=AddUserToGroupInput,
    output_model=AddUserToGroupOutput,
    effect="write",
    annotations=WRITE_IDEMPOTENT,
    run=add_user_to_group,
    facts=add_user_facts,
    preview=add_user_preview,
    literal_facts=lambda args: {"group_name": args.group},
    targets=membership_targets,
    target_args=("user", "group"),
)
