"""Group sync: sync_group_members (a governed, destructive write) and the engine the CLI shares.

Expected against actual, applying only the diff: the plan is computed once from the site (one member
listing per group, one user listing), recorded in the approval request as exact group and user ids,
and an approved request acts only on those ids, after checking each membership again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, Field

from server.tableau.errors import TableauError
from server.toolkit import TargetGone, ToolContext, ToolFailure, ToolSpec
from tools.common import gather
from tools.directory import resolve_group
from tools.ownership import RESULT_BUDGET, WRITE_DESTRUCTIVE_IDEMPOTENT, fitting

ChangeStatus = Literal["added", "removed", "no_change", "failed", "gone"]
NAMES_SHOWN = 8
ALL_USERS = "All Users"


class GroupMembers(BaseModel):
    group: str = Field(description="The group's name or id.", examples=["Marketing"])
    members: list[str] = Field(
        max_length=10000, description="Everyone who should be in the group: sign-in names, emails or ids."
    )


class SyncGroupMembersInput(BaseModel):
    groups: list[GroupMembers] = Field(min_length=1, max_length=50, description="The desired members per group.")
    remove_missing: bool = Field(
        False, description="Also remove members who are not in the list. False (the default) only adds."
    )


class MemberChange(BaseModel):
    user_id: str
    user: str
    status: ChangeStatus
    detail: str | None = None


class GroupSyncResult(BaseModel):
    group_id: str
    group: str
    changes: list[MemberChange] = Field(
        description="The approved additions and removals, failures first, as many as fit (see changes_total)."
    )
    changes_total: int
    # None for an approved request: it acts on the approved ids only and does not re-read the list.
    already_members: int | None = Field(description="Listed users who were members already.")
    kept_not_listed: int | None = Field(
        description="Members not in the list, left in the group (remove_missing false)."
    )
    unknown: list[str] = Field(
        default_factory=list,
        description="Listed names that match no user (or several), skipped. For an approved request the "
        "request's preview lists them: the approved ids are acted on, names are not looked up again.",
    )
    needs_license: list[str] = Field(
        default_factory=list, description="Listed Unlicensed users not added: the group grants no license."
    )


class SyncGroupMembersOutput(BaseModel):
    groups: list[GroupSyncResult]
    added: int
    removed: int
    no_change: int
    failed: int
    message: str


@dataclass
class GroupPlan:
    """One group's diff: who to add and remove, and what the list said that cannot be applied."""

    group: Any
    current: dict[str, Any]  # member id -> user record
    to_add: list[Any] = field(default_factory=list)
    to_remove: list[Any] = field(default_factory=list)
    already_members: int | None = 0
    kept_not_listed: int | None = 0
    unknown: list[str] = field(default_factory=list)
    needs_license: list[Any] = field(default_factory=list)


def _user_index(users: dict[str, Any]) -> dict[str, list[Any]]:
    """Every user under their id, sign-in name and email, lower-cased (a key may name several users)."""
    index: dict[str, list[Any]] = {}
    for user in users.values():
        for key in {user.id, user.name.lower(), (user.email or "").lower()} - {""}:
            index.setdefault(key, []).append(user)
    return index


def _resolve_members(names: list[str], index: dict[str, list[Any]]) -> tuple[dict[str, Any], list[str]]:
    """The listed users by id, and the entries that name nobody or several people (with why)."""
    found: dict[str, Any] = {}
    unknown: list[str] = []
    for name in names:
        matches = {u.id: u for u in index.get(name.strip().lower(), [])}
        if len(matches) == 1:
            user = next(iter(matches.values()))
            found[user.id] = user
        elif matches:
            unknown.append(f"{name} (matches {len(matches)} users: use the sign-in name)")
        else:
            unknown.append(name)
    return found, unknown


async def _plan_group(
    ctx: ToolContext, wanted: GroupMembers, users: dict[str, Any], index: dict[str, list[Any]], remove_missing: bool
) -> GroupPlan:
    group = await resolve_group(ctx, wanted.group)
    if group.name == ALL_USERS:
        raise ToolFailure(
            f"'{ALL_USERS}' holds every user of the site and Tableau does not let anyone be removed from it; "
            "sync another group."
        )
    current = {m.id: users.get(m.id, m) for m in await ctx.tableau.group_members(group.id)}
    desired, unknown = _resolve_members(wanted.members, index)
    plan = GroupPlan(group=group, current=current, unknown=unknown)
    for user in desired.values():
        if user.id in current:
            plan.already_members = (plan.already_members or 0) + 1
        elif user.site_role == "Unlicensed" and not group.minimum_site_role:
            plan.needs_license.append(user)  # membership would give them no access: not added
        else:
            plan.to_add.append(user)
    missing = [user for uid, user in current.items() if uid not in desired]
    if remove_missing:
        plan.to_remove = missing
    else:
        plan.kept_not_listed = len(missing)
    return plan


async def plan_sync(ctx: ToolContext, args: SyncGroupMembersInput) -> list[GroupPlan]:
    """The diff for every group, from the site as it is now (the engine the tool and the CLI share)."""
    names = [g.group.strip().lower() for g in args.groups]
    if len(set(names)) != len(names):
        raise ToolFailure("A group is listed twice; give each group once with all its members.")
    users = await ctx.tableau.users_by_id()
    index = _user_index(users)
    return list(
        await gather(*(partial(_plan_group, ctx, g, users, index, args.remove_missing) for g in args.groups))
    )


async def _bound_plans(ctx: ToolContext) -> list[GroupPlan]:
    """The approved groups, additions and removals, by their recorded ids, with each group's members now."""
    assert ctx.bound is not None
    groups = {g.id: g for g in await ctx.tableau.list_groups()}
    users = await ctx.tableau.users_by_id()
    plans: dict[str, GroupPlan] = {}
    gone = []
    for role, group_id in ctx.bound.items():
        if role.startswith("group:"):
            if group_id not in groups:
                gone.append(group_id)
                continue
            members = await ctx.tableau.group_members(group_id)
            plans[group_id] = GroupPlan(
                group=groups[group_id], current={m.id: m for m in members}, already_members=None, kept_not_listed=None
            )
    if gone:
        raise TargetGone(f"The approved group(s) {', '.join(gone)} no longer exist; nothing was changed.")
    for role, user_id in ctx.bound.items():
        action, _, rest = role.partition(":")
        if action in ("add", "remove"):
            group_id = rest.split(":", 1)[0]
            user = users.get(user_id) or _Gone(user_id)
            (plans[group_id].to_add if action == "add" else plans[group_id].to_remove).append(user)
    return list(plans.values())


@dataclass
class _Gone:
    """An approved user who no longer exists on the site."""

    id: str
    name: str = "(deleted user)"
    site_role: str = ""
    gone: bool = True


async def _plans(ctx: ToolContext, args: SyncGroupMembersInput) -> list[GroupPlan]:
    if ctx.bound is not None:
        return await ctx.once(("bound sync",), lambda: _bound_plans(ctx))
    return await ctx.once(("sync", args.model_dump_json()), lambda: plan_sync(ctx, args))


async def sync_targets(ctx: ToolContext, args: SyncGroupMembersInput) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []
    for plan in await _plans(ctx, args):
        gid = plan.group.id
        targets.append({"role": f"group:{gid}", "kind": "group", "id": gid, "name": plan.group.name})
        for action, users in (("add", plan.to_add), ("remove", plan.to_remove)):
            targets += [
                {"role": f"{action}:{gid}:{u.id}", "kind": "user", "id": u.id, "name": u.name} for u in users
            ]
    return targets


async def sync_facts(ctx: ToolContext, args: SyncGroupMembersInput) -> dict[str, Any]:
    plans = await _plans(ctx, args)
    return {
        "group_name": tuple(sorted(p.group.name for p in plans)),
        "group_minimum_site_role": tuple(sorted({p.group.minimum_site_role or "" for p in plans})),
        "change_count": sum(len(p.to_add) + len(p.to_remove) for p in plans),
    }


def _names(users: list[Any]) -> str:
    shown = ", ".join(u.name for u in users[:NAMES_SHOWN])
    return shown + (f" (+{len(users) - NAMES_SHOWN} more)" if len(users) > NAMES_SHOWN else "")


def describe_plan(plan: GroupPlan) -> str:
    """One group's diff in words: the preview and the CLI's dry run print this."""
    parts = [f"{plan.group.name} ({len(plan.current)} members):"]
    parts.append(f"add {len(plan.to_add)}" + (f" [{_names(plan.to_add)}]" if plan.to_add else ""))
    parts.append(f"remove {len(plan.to_remove)}" + (f" [{_names(plan.to_remove)}]" if plan.to_remove else ""))
    parts.append(f"{plan.already_members} already members")
    if plan.kept_not_listed:
        parts.append(f"{plan.kept_not_listed} members not in the list are kept (remove_missing is false)")
    if plan.unknown:
        parts.append(f"unknown users, skipped: {', '.join(plan.unknown[:NAMES_SHOWN])}"
                     + (f" (+{len(plan.unknown) - NAMES_SHOWN} more)" if len(plan.unknown) > NAMES_SHOWN else ""))
    if plan.needs_license:
        parts.append(f"need a license first, skipped (Unlicensed, and the group grants none): {_names(plan.needs_license)}")
    return " ".join(parts[:1]) + " " + "; ".join(parts[1:]) + "."


async def sync_preview(ctx: ToolContext, args: SyncGroupMembersInput) -> str:
    return " ".join(describe_plan(plan) for plan in await _plans(ctx, args))


async def _apply(ctx: ToolContext, plan: GroupPlan, action: str, user: Any) -> MemberChange:
    change = MemberChange(user_id=user.id, user=user.name, status="no_change")
    if getattr(user, "gone", False):
        return change.model_copy(update={"status": "gone", "detail": "the user no longer exists"})
    member = user.id in plan.current
    if (action == "add") == member:
        detail = "already a member" if member else "no longer a member (removed on the site since the request)"
        return change.model_copy(update={"detail": detail})
    try:
        if action == "add":
            done = await ctx.tableau.add_group_member(plan.group.id, user.id)
        else:
            done = await ctx.tableau.remove_group_member(plan.group.id, user.id)
    except TableauError as exc:  # the rest still runs; a re-run applies what is left
        return change.model_copy(update={"status": "failed", "detail": str(exc)})
    if not done:
        return change.model_copy(update={"detail": "Tableau reported no change"})
    return change.model_copy(update={"status": "added" if action == "add" else "removed"})


async def sync_group_members(ctx: ToolContext, args: SyncGroupMembersInput) -> SyncGroupMembersOutput:
    results = []
    counted: Counter[str] = Counter()
    budget = RESULT_BUDGET // max(1, len(args.groups))
    for plan in await _plans(ctx, args):
        changes = [await _apply(ctx, plan, "add", u) for u in plan.to_add]
        changes += [await _apply(ctx, plan, "remove", u) for u in plan.to_remove]
        counted.update(c.status for c in changes)
        changes.sort(key=lambda c: c.status != "failed")
        results.append(
            GroupSyncResult(
                group_id=plan.group.id, group=plan.group.name, changes=changes[: fitting(changes, budget)],
                changes_total=len(changes),
                already_members=plan.already_members, kept_not_listed=plan.kept_not_listed,
                unknown=plan.unknown, needs_license=[u.name for u in plan.needs_license],
            )
        )
    counts = counted
    message = (
        f"Added {counts['added']}, removed {counts['removed']}, {counts['no_change']} already as listed"
        + (f", {counts['gone']} users no longer exist" if counts["gone"] else "")
        + "."
    )
    if counts["failed"]:
        message += f" {counts['failed']} changes FAILED; run the same sync again to apply what is left."
    return SyncGroupMembersOutput(
        groups=results, added=counts["added"], removed=counts["removed"], no_change=counts["no_change"],
        failed=counts["failed"], message=message,
    )


SYNC_GROUP_MEMBERS = ToolSpec(
    name="sync_group_members",
    title="Sync group members from a list",
    description=(
        "Make one or more groups' members match a list (sign-in names or emails): computes the diff (to add, "
        "to remove, unknown users, users who would need a license first) and applies only the diff. Adds only "
        "unless `remove_missing` is true. Running it again after a partial failure applies what is left. "
        "Usually needs an administrator's approval: then the result has status 'pending_approval' and a "
        "request id for get_request.\n"
        'Example: {"groups": [{"group": "Marketing", "members": ["sam.lee@example.com", "ana.ruiz"]}]}.'
    ),
    input_model=SyncGroupMembersInput,
    output_model=SyncGroupMembersOutput,
    effect="write",
    annotations=WRITE_DESTRUCTIVE_IDEMPOTENT,
    run=sync_group_members,
    facts=sync_facts,
    preview=sync_preview,
    literal_facts=lambda args: {"group_name": tuple(sorted(g.group for g in args.groups))},
    targets=sync_targets,
    target_args=("groups",),
    fact_names=frozenset({"group_name", "group_minimum_site_role", "change_count"}),
)
