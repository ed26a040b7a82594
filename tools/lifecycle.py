"""User lifecycle toolset: remove_user_from_group, create_user, update_user_site_role (governed writes).

Each resolves its targets once per call (facts, preview and body share them), records their ids in
an approval request, and when the approved request runs loads exactly those ids again: a name is
never looked up a second time. Refusals Tableau would give (leaving All Users, demoting the last site
administrator, a user that exists with another role) are found on the live site before a request is
made, so nobody approves a change that cannot happen.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from server.tableau.errors import TableauError
from server.toolkit import (
    WRITE_DESTRUCTIVE,
    WRITE_IDEMPOTENT,
    TargetGone,
    ToolContext,
    ToolFailure,
    ToolSpec,
    bound_id,
)
from tools.common import gather
from tools.content import OWNED_KINDS, ContentFilters, select_content
from tools.directory import SiteRole, resolve_group, resolve_user
from tools.groups import AddUserToGroupInput, Membership, is_member, membership_targets, resolve_membership

ALL_USERS = "All Users"
AuthSetting = Literal["ServerDefault", "SAML", "OpenID", "TableauIDWithMFA"]
ADMIN_ROLES = frozenset({"SiteAdministratorCreator", "SiteAdministratorExplorer", "ServerAdministrator"})

# What each site role lets a user do, to say what a role change takes away (Tableau's license tiers).
_VIEW = ("sign in", "view and interact with content")
_EXPLORE = _VIEW + ("edit existing workbooks in the browser",)
_PUBLISH = ("publish and own workbooks and data sources",)
_CREATE = ("connect to new data and author from scratch", "create and run Prep flows")
_ADMIN = ("administer the site (users, groups, projects, permissions)",)
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "Unlicensed": (),
    "Viewer": _VIEW,
    "ReadOnly": _VIEW,
    "Explorer": _EXPLORE,
    "ExplorerCanPublish": _EXPLORE + _PUBLISH,
    "Creator": _EXPLORE + _PUBLISH + _CREATE,
    "SiteAdministratorExplorer": _EXPLORE + _PUBLISH + _ADMIN,
    "SiteAdministratorCreator": _EXPLORE + _PUBLISH + _CREATE + _ADMIN,
    "ServerAdministrator": _EXPLORE + _PUBLISH + _CREATE + _ADMIN,
}


def _who(user: Any) -> str:
    return f"{user.full_name or user.name} <{user.name}> ({user.site_role})"


# -- remove_user_from_group -----------------------------------------------------------------------------


class RemoveUserFromGroupInput(AddUserToGroupInput):
    """The same two arguments as add_user_to_group: the user and the group."""


class RemoveUserFromGroupOutput(BaseModel):
    status: Literal["removed", "no_change"]
    membership: Membership = Field(description="The user and the group as they now stand.")
    message: str


async def _removal(ctx: ToolContext, args: RemoveUserFromGroupInput) -> tuple[Any, Any, bool, int]:
    """The user, the group, whether the user is in it and its member count: refused for All Users."""
    user, group = await resolve_membership(ctx, args)
    if group.name == ALL_USERS:
        raise ToolFailure(
            f"Tableau does not remove anyone from '{ALL_USERS}': every user of the site is in it. To take "
            f"{user.name}'s access away, set their site role to Unlicensed with update_user_site_role."
        )
    member, count = await ctx.once(("membership of", user.id, group.id), lambda: is_member(ctx, group.id, user.id))
    return user, group, member, count


async def remove_user_from_group(ctx: ToolContext, args: RemoveUserFromGroupInput) -> RemoveUserFromGroupOutput:
    user, group, member, count = await _removal(ctx, args)
    if member:
        await ctx.tableau.remove_group_member(group.id, user.id)
        count -= 1
    membership = Membership(
        user_id=user.id, user=user.name, user_site_role=user.site_role, group_id=group.id, group=group.name,
        group_member_count=count,
    )
    if not member:
        return RemoveUserFromGroupOutput(
            status="no_change", membership=membership, message=f"{user.name} was not a member of {group.name}."
        )
    return RemoveUserFromGroupOutput(
        status="removed", membership=membership, message=f"Removed {user.name} from {group.name} ({count} members now)."
    )


async def remove_facts(ctx: ToolContext, args: RemoveUserFromGroupInput) -> dict[str, Any]:
    user, group, member, _ = await _removal(ctx, args)
    return {
        "group_name": group.name,
        "target_user_site_role": user.site_role,
        "group_minimum_site_role": group.minimum_site_role or "",
        "change_count": 1 if member else 0,
        "target_user": user.name,
    }


async def remove_preview(ctx: ToolContext, args: RemoveUserFromGroupInput) -> str:
    user, group, member, count = await _removal(ctx, args)
    if not member:
        return f"{_who(user)} is not in {group.name} ({count} members); approving changes nothing."
    grant = (
        f" {group.name} grants {group.minimum_site_role} on sign-in; their site role stays {user.site_role}."
        if group.minimum_site_role else ""
    )
    return (
        f"{_who(user)} is in {group.name} ({count} members); approving removes them ({count - 1} members "
        f"after), and they lose every permission they hold through {group.name}.{grant}"
    )


REMOVE_USER_FROM_GROUP = ToolSpec(
    name="remove_user_from_group",
    title="Remove a user from a group",
    description=(
        "Remove a user from a group; they lose the permissions the group gives them. Not being a member is "
        "success with status 'no_change'. Nobody can leave 'All Users' (Tableau refuses): to take access away, "
        "use update_user_site_role with 'Unlicensed'. Depending on the site's policy the change may need an "
        "administrator's approval: then the result has status 'pending_approval' and a request id for get_request.\n"
        'Example: {"user": "sam.lee@example.com", "group": "Marketing"}.'
    ),
    input_model=RemoveUserFromGroupInput,
    output_model=RemoveUserFromGroupOutput,
    effect="write",
    annotations=WRITE_DESTRUCTIVE,
    run=remove_user_from_group,
    facts=remove_facts,
    preview=remove_preview,
    literal_facts=lambda args: {"group_name": args.group},
    targets=membership_targets,
    target_args=("user", "group"),
    fact_names=frozenset({"group_name", "target_user_site_role", "group_minimum_site_role", "change_count"}),
)


# -- update_user_site_role ------------------------------------------------------------------------------


class UpdateUserSiteRoleInput(BaseModel):
    user: str = Field(description="The user's sign-in name, email or id.", examples=["sam.lee@example.com"])
    site_role: SiteRole = Field(
        description="The new site role; 'Unlicensed' reclaims the license (they can no longer sign in).",
        examples=["Viewer"],
    )


class OwnedContent(BaseModel):
    workbook: int
    datasource: int
    flow: int
    project: int
    examples: list[str] = Field(description="A few of the items, as 'kind: project/name'.")


class UpdateUserSiteRoleOutput(BaseModel):
    status: Literal["updated", "no_change"]
    user_id: str
    user: str
    old_site_role: str
    site_role: str = Field(description="The site role Tableau now reports.")
    owned: OwnedContent = Field(description="What the user owns (it stays theirs whatever the role).")
    lost: list[str] = Field(description="What the old role allowed and the new one does not.")
    message: str


async def _role_user(ctx: ToolContext, args: UpdateUserSiteRoleInput) -> Any:
    if ctx.bound is not None:
        user_id = bound_id(ctx, "user")
        user = (await ctx.tableau.users_by_id()).get(user_id)
        if user is None:
            raise TargetGone(f"The approved user (id {user_id}) no longer exists; nothing was changed.")
        return user
    return await ctx.once(("user", args.user), lambda: resolve_user(ctx, args.user))


async def _check_not_last_admin(ctx: ToolContext, user: Any, role: str) -> None:
    if user.site_role not in ADMIN_ROLES or role in ADMIN_ROLES:
        return
    users = (await ctx.tableau.users_by_id()).values()
    if not any(u.site_role in ADMIN_ROLES for u in users if u.id != user.id):
        raise ToolFailure(
            f"{user.name} is the site's only administrator, and Tableau refuses to demote the last one. "
            "Make another user a site administrator first."
        )


async def _owned(ctx: ToolContext, user: Any) -> OwnedContent:
    """What the user owns, per kind (one listing per kind, filtered by owner), with a few examples."""

    async def count(kind: str) -> list[Any]:
        return await select_content(ctx, kind, ContentFilters(owner=user.id), lean=True)  # type: ignore[arg-type]

    found = await ctx.once(("owned", user.id), lambda: gather(*(lambda k=k: count(k) for k in OWNED_KINDS)))
    per_kind = dict(zip(OWNED_KINDS, found))
    examples = [f"{kind}: {path + '/' if path and kind != 'project' else ''}{record.name}"
                for kind, pairs in per_kind.items() for record, path in pairs[:2]][:6]
    return OwnedContent(**{kind: len(pairs) for kind, pairs in per_kind.items()}, examples=examples)


def _lost(old: str, new: str) -> list[str]:
    kept = set(CAPABILITIES.get(new, ()))
    return [c for c in CAPABILITIES.get(old, ()) if c not in kept]


async def update_user_site_role(ctx: ToolContext, args: UpdateUserSiteRoleInput) -> UpdateUserSiteRoleOutput:
    user = await _role_user(ctx, args)
    old = user.site_role
    owned = await _owned(ctx, user)
    if old == args.site_role:
        return UpdateUserSiteRoleOutput(
            status="no_change", user_id=user.id, user=user.name, old_site_role=old, site_role=old, owned=owned,
            lost=[], message=f"{user.name} already has site role {old}.",
        )
    await _check_not_last_admin(ctx, user, args.site_role)
    updated = await ctx.tableau.update_user(user.id, site_role=args.site_role)
    lost = _lost(old, updated.site_role or args.site_role)
    return UpdateUserSiteRoleOutput(
        status="updated", user_id=user.id, user=user.name, old_site_role=old,
        site_role=updated.site_role or args.site_role, owned=owned, lost=lost,
        message=f"{user.name} is now {updated.site_role or args.site_role} (was {old}).",
    )


async def role_targets(ctx: ToolContext, args: UpdateUserSiteRoleInput) -> list[dict[str, Any]]:
    user = await _role_user(ctx, args)
    return [{"role": "user", "kind": "user", "id": user.id, "name": user.name, "site_role": user.site_role}]


async def role_facts(ctx: ToolContext, args: UpdateUserSiteRoleInput) -> dict[str, Any]:
    user = await _role_user(ctx, args)
    if user.site_role != args.site_role:
        await _check_not_last_admin(ctx, user, args.site_role)
    return {
        "from_site_role": user.site_role,
        "to_site_role": args.site_role,
        "target_user_site_role": user.site_role,
        "change_count": 0 if user.site_role == args.site_role else 1,
        "target_user": user.name,
    }


async def role_preview(ctx: ToolContext, args: UpdateUserSiteRoleInput) -> str:
    user = await _role_user(ctx, args)
    if user.site_role == args.site_role:
        return f"{_who(user)} already has site role {args.site_role}; approving changes nothing."
    owned = await _owned(ctx, user)
    total = owned.workbook + owned.datasource + owned.flow + owned.project
    counts = (f"{owned.workbook} workbook(s), {owned.datasource} data source(s), {owned.flow} flow(s), "
              f"{owned.project} project(s)")
    shown = f" (e.g. {'; '.join(owned.examples)})" if owned.examples else ""
    lost = _lost(user.site_role, args.site_role)
    text = f"{_who(user)} becomes {args.site_role}. They own {counts}{shown}"
    text += "; the content stays theirs." if total else "."
    if lost:
        text += f" They would no longer be able to: {', '.join(lost)}."
    if args.site_role == "Unlicensed":
        text += " Their license is freed, and they cannot sign in."
    if total and "publish and own workbooks and data sources" in lost:
        text += " Hand their content over (transfer_content_ownership) if someone else should maintain it."
    return text


UPDATE_USER_SITE_ROLE = ToolSpec(
    name="update_user_site_role",
    title="Change a user's site role",
    description=(
        "Change a user's site role, e.g. to reclaim a license ('Unlicensed') or to downgrade an inactive Creator "
        "to Viewer. The preview says what the user owns and what the new role takes away; their content stays "
        "theirs. Already having the role is status 'no_change'. Tableau refuses to demote the site's last "
        "administrator. Depending on the site's policy the change may need an administrator's approval (status "
        "'pending_approval' and a request id for get_request).\n"
        'Example: {"user": "sam.lee@example.com", "site_role": "Unlicensed"}.'
    ),
    input_model=UpdateUserSiteRoleInput,
    output_model=UpdateUserSiteRoleOutput,
    effect="write",
    annotations=WRITE_DESTRUCTIVE,
    run=update_user_site_role,
    facts=role_facts,
    preview=role_preview,
    literal_facts=lambda args: {"to_site_role": args.site_role},
    targets=role_targets,
    target_args=("user",),
    fact_names=frozenset({"from_site_role", "to_site_role", "target_user_site_role", "change_count"}),
)


# -- create_user --------------------------------------------------------------------------------------------


class CreateUserInput(BaseModel):
    name: str = Field(
        description="The sign-in name: on Tableau Cloud the user's email, on Tableau Server their user name.",
        examples=["sam.lee@example.com"],
    )
    site_role: SiteRole = Field(examples=["Viewer"])
    email: str | None = Field(None, description="Email address, when it differs from the sign-in name.")
    auth_setting: AuthSetting | None = Field(None, description="How they sign in; the site's default when left out.")
    groups: list[str] = Field(default_factory=list, max_length=50, description="Groups to join, by name or id.")


class CreatedUser(BaseModel):
    id: str
    name: str
    site_role: str
    email: str | None = None
    auth_setting: str | None = None


class CreateUserOutput(BaseModel):
    status: Literal["created", "groups_joined", "no_change"] = Field(
        description="'groups_joined': the user existed with this role and joined groups they were not in."
    )
    user: CreatedUser
    groups_joined: list[str]
    groups_already: list[str] = Field(description="Groups the user was already in.")
    message: str


async def _existing_user(ctx: ToolContext, name: str) -> Any | None:
    wanted = name.strip().lower()
    users = (await ctx.tableau.users_by_id()).values()
    return next((u for u in users if u.name.lower() == wanted), None)


async def _creation_user(ctx: ToolContext, args: CreateUserInput) -> Any | None:
    """The existing user: by the recorded id when the approved request found one, else by sign-in name (a user
    approved for creation has no id yet; one created since with another role is refused below)."""
    if ctx.bound is not None and "user" in ctx.bound:
        user = (await ctx.tableau.users_by_id()).get(ctx.bound["user"])
        if user is None:
            raise TargetGone(f"The approved user (id {ctx.bound['user']}) no longer exists; nothing was changed.")
        return user
    return await _existing_user(ctx, args.name)


async def _creation(ctx: ToolContext, args: CreateUserInput) -> tuple[Any | None, list[Any]]:
    """The user when they exist already (a conflict when with another role) and the groups to join."""

    async def resolve() -> tuple[Any | None, list[Any]]:
        user = await _creation_user(ctx, args)
        if user is not None and user.site_role != args.site_role:
            raise ToolFailure(
                f"A user named '{user.name}' already exists with site role {user.site_role}, not {args.site_role}. "
                "create_user never changes a role: use update_user_site_role for that."
            )
        groups = [await _group(ctx, i, name) for i, name in enumerate(args.groups)]
        return user, list({g.id: g for g in groups}.values())

    return await ctx.once(("creation", args.name), resolve)


async def _group(ctx: ToolContext, index: int, name: str) -> Any:
    if ctx.bound is None:
        return await resolve_group(ctx, name)
    group_id = bound_id(ctx, f"group {index + 1}")
    group = next((g for g in await ctx.tableau.list_groups() if g.id == group_id), None)
    if group is None:
        raise TargetGone(f"The approved group '{name}' (id {group_id}) no longer exists; nothing was changed.")
    return group


async def _memberships(ctx: ToolContext, user: Any | None, groups: list[Any]) -> list[bool]:
    """Whether an existing user is already in each group (nobody is in any, for a new user)."""
    if user is None:
        return [False] * len(groups)
    joined = {g.id for g in await ctx.once(("groups of", user.id), lambda: ctx.tableau.user_groups(user.id))}
    return [g.id in joined for g in groups]


def _joinable(groups: list[Any]) -> list[Any]:
    return [g for g in groups if g.name != ALL_USERS]  # every user is in All Users from the start


async def create_user(ctx: ToolContext, args: CreateUserInput) -> CreateUserOutput:
    user, groups = await _creation(ctx, args)
    groups = _joinable(groups)
    already = await _memberships(ctx, user, groups)
    created = user is None
    if created:
        user = await ctx.tableau.add_user(args.name.strip(), args.site_role, args.auth_setting)
        if args.email:
            user = await ctx.tableau.update_user(user.id, email=args.email)
    joined: list[str] = []
    for group, member in zip(groups, already):
        if member:
            continue
        try:
            await ctx.tableau.add_group_member(group.id, user.id)
        except TableauError as exc:
            done = f"created {user.name}" if created else f"{user.name} existed"
            raise ToolFailure(
                f"{done.capitalize()} and joined {', '.join(joined) or 'no group'}, but joining {group.name} failed "
                f"({exc}). Run create_user again to finish: what is done is not repeated."
            ) from None
        joined.append(group.name)
    status = "created" if created else ("groups_joined" if joined else "no_change")
    shown = CreatedUser(id=user.id, name=user.name, site_role=user.site_role or args.site_role,
                        email=user.email or None, auth_setting=user.auth_setting)
    message = {
        "created": f"Created {user.name} as {shown.site_role}",
        "groups_joined": f"{user.name} already existed as {shown.site_role}",
        "no_change": f"{user.name} already exists as {shown.site_role}; nothing changed",
    }[status] + (f"; joined {', '.join(joined)}." if joined else ".")
    return CreateUserOutput(status=status, user=shown, groups_joined=joined,
                            groups_already=[g.name for g, m in zip(groups, already) if m], message=message)


async def create_targets(ctx: ToolContext, args: CreateUserInput) -> list[dict[str, Any]]:
    user, groups = await _creation(ctx, args)
    targets = [{"role": f"group {i + 1}", "kind": "group", "id": g.id, "name": g.name} for i, g in enumerate(groups)]
    if user is not None:
        targets.insert(0, {"role": "user", "kind": "user", "id": user.id, "name": user.name,
                           "site_role": user.site_role})
    return targets


async def _change_count(ctx: ToolContext, args: CreateUserInput) -> int:
    user, groups = await _creation(ctx, args)
    groups = _joinable(groups)
    already = await _memberships(ctx, user, groups)
    own = 0 if user is not None else 1 + (1 if args.email else 0)
    return own + sum(1 for member in already if not member)


async def create_facts(ctx: ToolContext, args: CreateUserInput) -> dict[str, Any]:
    user, groups = await _creation(ctx, args)
    return {
        "from_site_role": user.site_role if user is not None else "",
        "to_site_role": args.site_role,
        "target_user_site_role": args.site_role,
        "group_name": [g.name for g in groups],
        "group_minimum_site_role": [g.minimum_site_role or "" for g in groups],
        "change_count": await _change_count(ctx, args),
        "target_user": args.name,
    }


async def create_preview(ctx: ToolContext, args: CreateUserInput) -> str:
    user, groups = await _creation(ctx, args)
    joinable = _joinable(groups)
    already = await _memberships(ctx, user, joinable)
    to_join = [g for g, member in zip(joinable, already) if not member]
    grants = [f"{g.name} grants {g.minimum_site_role} on sign-in" for g in to_join if g.minimum_site_role]
    if user is None:
        how = f", signing in with {args.auth_setting}" if args.auth_setting else ""
        mail = f", email {args.email}" if args.email else ""
        text = f"Creates {args.name.strip()} as {args.site_role}{mail}{how}."
        if args.site_role != "Unlicensed":
            text += " This uses one license of that role."
    else:
        text = f"{_who(user)} already exists with this role; nothing about the user changes."
    if to_join:
        text += f" Joins {len(to_join)} group(s): {', '.join(g.name for g in to_join)}."
    if len(to_join) < len(joinable):
        text += f" Already in: {', '.join(g.name for g, m in zip(joinable, already) if m)}."
    if grants:
        text += " " + "; ".join(grants) + "."
    if user is not None and not to_join:
        text += " Approving changes nothing."
    return text


CREATE_USER = ToolSpec(
    name="create_user",
    title="Create a user",
    description=(
        "Add a user to the site with a site role, and optionally an email, an authentication setting and groups "
        "to join. A user who already exists with the same role is status 'no_change' (or 'groups_joined' when "
        "they still joined groups); one who exists with another role is an error that says so: the role is never "
        "changed here (use update_user_site_role). Re-running after a partial failure finishes the rest. "
        "Depending on the site's policy the change may need an administrator's approval (status "
        "'pending_approval' and a request id for get_request).\n"
        'Example: {"name": "sam.lee@example.com", "site_role": "Viewer", "groups": ["Marketing"]}.'
    ),
    input_model=CreateUserInput,
    output_model=CreateUserOutput,
    effect="write",
    annotations=WRITE_IDEMPOTENT,
    run=create_user,
    facts=create_facts,
    preview=create_preview,
    literal_facts=lambda args: {"to_site_role": args.site_role},
    targets=create_targets,
    target_args=("groups",),
    fact_names=frozenset({"from_site_role", "to_site_role", "target_user_site_role", "group_name",
                          "group_minimum_site_role", "change_count"}),
)
