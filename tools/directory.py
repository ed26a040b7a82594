"""Directory toolset: list_users and list_groups."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from server.toolkit import READ_ONLY, ToolContext, ToolSpec
from tools.common import decode_cursor, json_size, page_within_budget, resolve_one, utc

SiteRole = Literal[
    "Creator",
    "Explorer",
    "ExplorerCanPublish",
    "SiteAdministratorCreator",
    "SiteAdministratorExplorer",
    "Viewer",
    "Unlicensed",
    "ServerAdministrator",
]


async def resolve_group(ctx: ToolContext, group: str) -> Any:
    groups = await ctx.tableau.list_groups()
    return resolve_one(
        group,
        groups,
        what="group",
        keys=lambda g: (g.id, g.name),
        describe=lambda g: f"{g.name} (id {g.id})",
        hint="Use list_groups to see the group names.",
    )


async def resolve_user(ctx: ToolContext, user: str) -> Any:
    users = list((await ctx.tableau.users_by_id()).values())
    return resolve_one(
        user,
        users,
        what="user",
        keys=lambda u: (u.id, u.name, u.email or "", u.full_name or ""),
        describe=lambda u: f"{u.full_name or u.name} <{u.email or u.name}> (id {u.id}, {u.site_role})",
        hint="Use list_users to find the exact sign-in name or email.",
    )


class ListUsersInput(BaseModel):
    name: str | None = Field(None, description="Text contained in the sign-in name, display name or email.")
    site_role: SiteRole | None = Field(None, description="Only users with this site role.")
    group: str | None = Field(None, description="Only members of this group (name or id).")
    last_login_before: datetime | None = Field(None, description="ISO 8601; signed in last before this (or never).")
    last_login_after: datetime | None = Field(None, description="ISO 8601; signed in after this.")
    never_signed_in: bool | None = Field(None, description="True: only users who never signed in; False: only those who did.")
    limit: int = Field(50, ge=1, le=500, description="Users per page.")
    cursor: str | None = Field(None, description="`next_cursor` from the previous page, with the same filters.")


class UserItem(BaseModel):
    id: str
    name: str
    full_name: str | None = None
    email: str | None = None
    site_role: str
    last_login: datetime | None = None
    days_since_login: int | None = None


class ListUsersOutput(BaseModel):
    users: list[UserItem]
    total: int
    next_cursor: str | None = None


def _user_item(user: Any, now: datetime) -> UserItem:
    return UserItem(
        id=user.id,
        name=user.name,
        full_name=user.full_name,
        email=user.email,
        site_role=user.site_role,
        last_login=user.last_login,
        days_since_login=(now - user.last_login).days if user.last_login else None,
    )


async def list_users(ctx: ToolContext, args: ListUsersInput) -> ListUsersOutput:
    query = args.model_dump(mode="json", exclude={"cursor", "limit"})
    offset = decode_cursor(args.cursor, query)
    if args.group:
        group = await resolve_group(ctx, args.group)
        users = await ctx.tableau.group_members(group.id)
    else:
        users = list((await ctx.tableau.users_by_id()).values())
    before, after = utc(args.last_login_before), utc(args.last_login_after)
    text = args.name.lower() if args.name else None
    selected = []
    for user in users:
        if args.site_role and user.site_role != args.site_role:
            continue
        if text and not any(text in (v or "").lower() for v in (user.name, user.full_name, user.email)):
            continue
        if args.never_signed_in is not None and (user.last_login is None) != args.never_signed_in:
            continue
        if before and user.last_login is not None and user.last_login >= before:
            continue
        if after and (user.last_login is None or user.last_login <= after):
            continue
        selected.append(user)
    now = datetime.now(UTC)
    items = sorted((_user_item(u, now) for u in selected), key=lambda u: (u.name.lower(), u.id))
    page, next_cursor = page_within_budget(items, offset, args.limit, query, json_size)
    return ListUsersOutput(users=page, total=len(items), next_cursor=next_cursor)


LIST_USERS = ToolSpec(
    name="list_users",
    title="List site users",
    description=(
        "List the site's users, filtered by text in their name or email, site role, group membership and last "
        "sign-in; returns sign-in name, display name, email, site role, last sign-in and days since, with "
        "`total` and `next_cursor`.\n"
        'Example: {"site_role": "Unlicensed"} or {"group": "Finance", "last_login_before": "2025-06-01T00:00:00Z"}.'
    ),
    input_model=ListUsersInput,
    output_model=ListUsersOutput,
    effect="read",
    annotations=READ_ONLY,
    run=list_users,
)


class ListGroupsInput(BaseModel):
    name: str | None = Field(None, description="Text contained in the group name.")
    user: str | None = Field(None, description="Only groups this user (sign-in name, email or id) belongs to.")
    min_members: int | None = Field(None, ge=0, description="Only groups with at least this many members.")
    limit: int = Field(50, ge=1, le=500, description="Groups per page.")
    cursor: str | None = Field(None, description="`next_cursor` from the previous page, with the same filters.")


class GroupItem(BaseModel):
    id: str
    name: str
    member_count: int | None = None
    minimum_site_role: str | None = None
    domain: str | None = None


class ListGroupsOutput(BaseModel):
    groups: list[GroupItem]
    total: int
    next_cursor: str | None = None


async def list_groups(ctx: ToolContext, args: ListGroupsInput) -> ListGroupsOutput:
    query = args.model_dump(mode="json", exclude={"cursor", "limit"})
    offset = decode_cursor(args.cursor, query)
    groups = await ctx.tableau.list_groups()
    if args.user:
        user = await resolve_user(ctx, args.user)
        member_of = {g.id for g in await ctx.tableau.user_groups(user.id)}
        groups = [g for g in groups if g.id in member_of]
    text = args.name.lower() if args.name else None
    items = [
        GroupItem(
            id=g.id,
            name=g.name,
            member_count=g.user_count,
            minimum_site_role=g.minimum_site_role,
            domain=g.domain_name,
        )
        for g in groups
        if (text is None or text in g.name.lower())
        and (args.min_members is None or (g.user_count or 0) >= args.min_members)
    ]
    items.sort(key=lambda g: (g.name.lower(), g.id))
    page, next_cursor = page_within_budget(items, offset, args.limit, query, json_size)
    return ListGroupsOutput(groups=page, total=len(items), next_cursor=next_cursor)


LIST_GROUPS = ToolSpec(
    name="list_groups",
    title="List site groups",
    description=(
        "List the site's groups with their member counts, filtered by text in the name, by a member, or by "
        "size; with `total` and `next_cursor`.\n"
        'Example: {"user": "dana.whitfield@example.com"} lists the groups Dana belongs to.'
    ),
    input_model=ListGroupsInput,
    output_model=ListGroupsOutput,
    effect="read",
    annotations=READ_ONLY,
    run=list_groups,
)
