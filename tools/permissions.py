"""Permissions toolset: inspect_permissions explains explicit rules and effective permissions."""

from __future__ import annotations

from typing import Any, Literal

import anyio
from pydantic import BaseModel, Field

from server import permissions as perm
from server.toolkit import READ_ONLY, ToolContext, ToolFailure, ToolSpec
from tools.common import closest, resolve_content
from tools.directory import resolve_user

Kind = Literal["project", "workbook", "view", "datasource", "flow"]
# Default-permission templates as the REST path names them.
TEMPLATE_PATH = {"workbook": "workbooks", "datasource": "datasources", "flow": "flows"}


class InspectPermissionsInput(BaseModel):
    kind: Kind = Field(description="What kind of item to inspect.")
    target: str = Field(description="The item's name or id.", examples=["Q3 Forecast"])
    project: str | None = Field(None, description="Project path, to pick one item when the name is not unique.")
    workbook: str | None = Field(None, description="For views: the workbook's name, to pick one view.")
    user: str | None = Field(None, description="Explain this user's effective permissions (name, email or id).")
    capability: str | None = Field(
        None,
        description="A capability (REST name like 'ExportData' or UI name like 'Download Summary Data'). With "
        "`user`: only that capability. Without `user`: who effectively has it.",
    )
    limit: int = Field(50, ge=1, le=200, description="At most this many grantees or holders are listed.")


class GranteeRules(BaseModel):
    grantee_kind: Literal["user", "group"]
    grantee_id: str
    grantee_name: str
    capabilities: dict[str, Literal["Allow", "Deny"]]


class Decision(BaseModel):
    capability: str
    ui_name: str
    allowed: bool
    decided_by: str = Field(description="The step of Tableau's evaluation order that decided.")
    reason: str


class Holder(BaseModel):
    user: str
    site_role: str
    decided_by: str
    reason: str


class WhoHas(BaseModel):
    capability: str
    ui_name: str
    holders: list[Holder]
    total: int = Field(description="How many users effectively have it in all.")


class InspectPermissionsOutput(BaseModel):
    kind: Kind
    id: str
    name: str
    project_path: str | None
    owner: str | None
    lock_mode: str | None = Field(None, description="Content-permission mode of the item's project.")
    governed_by: str = Field(description="Whose rules govern this item, and why.")
    explicit_rules: list[GranteeRules] = Field(description="The rules that govern (Tableau lists explicit rules only).")
    explicit_rules_total: int
    effective: list[Decision] | None = Field(None, description="Per capability, for the user asked about.")
    who_has: WhoHas | None = None


def _rules(records: list[Any]) -> tuple[perm.Rule, ...]:
    # A group set resolves like a group for its members.
    return tuple(
        perm.Rule(grantee_kind="user" if r.grantee_kind == "user" else "group", grantee_id=r.grantee_id,
                  capability=cap, mode=mode)
        for r in records
        for cap, mode in r.capabilities.items()
    )


async def _chain(ctx: ToolContext, tree: Any, project_id: str | None) -> list[perm.ProjectNode]:
    """The project chain from `project_id` up, each with its explicit rules (ProjectLeader lives there)."""
    ids = [node.id for node in tree.ancestors(project_id)] if project_id else []
    rules: dict[str, tuple[perm.Rule, ...]] = {}

    async def load(pid: str) -> None:
        rules[pid] = _rules(await ctx.tableau.permissions("project", pid))

    async with anyio.create_task_group() as tasks:
        for pid in ids:
            tasks.start_soon(load, pid)
    chain = []
    for pid in ids:
        p = tree.get(pid)
        chain.append(
            perm.ProjectNode(
                id=p.id,
                name=p.name,
                owner_id=p.owner_id,
                parent_id=p.parent_id,
                content_permissions=p.content_permissions or "ManagedByOwner",
                rules=rules[pid],
            )
        )
    return chain


async def _resolve_target(ctx: ToolContext, args: InspectPermissionsInput) -> tuple[Any, str | None]:
    if args.workbook and args.kind != "view":
        raise ToolFailure(f"`workbook` picks one view among views of the same name; a {args.kind} has none. Leave it out.")
    return await resolve_content(ctx, args.kind, args.target, args.project, args.workbook)


def _capability(kind: str, wanted: str) -> perm.CapabilitySpec:
    specs = perm.capabilities_for(kind)
    lowered = wanted.strip().lower()
    for spec in specs:
        if lowered in (spec.name.lower(), spec.ui_name.lower()):
            return spec
    names = [s.name for s in specs] + [s.ui_name for s in specs]
    suggestions = ", ".join(repr(s) for s in closest(wanted, names)) or ", ".join(s.name for s in specs)
    raise ToolFailure(f"'{wanted}' is not a {kind} capability. Did you mean: {suggestions}?")


async def inspect_permissions(ctx: ToolContext, args: InspectPermissionsInput) -> InspectPermissionsOutput:
    record, path = await _resolve_target(ctx, args)
    spec = _capability(args.kind, args.capability) if args.capability else None
    tree = await ctx.tableau.project_tree()
    is_project = args.kind == "project"
    chain = await _chain(ctx, tree, record.id if is_project else record.project_id)
    workbook_ref = None
    if args.kind == "view":
        workbook = await ctx.tableau.get_content("workbook", record.workbook_id)
        workbook_ref = perm.WorkbookRef(id=workbook.id, name=workbook.name, show_tabs=bool(workbook.show_tabs))
    content = perm.Content(
        kind=args.kind,
        id=record.id,
        name=record.name,
        owner_id=record.owner_id,
        project_id=record.parent_project_id if is_project else record.project_id,
        workbook=workbook_ref,
    )
    source = perm.governing_source(content, chain)
    content_rules = workbook_rules = None
    if source.source is perm.RuleSource.LOCKED_PROJECT and not is_project:
        template = source.source_kind.value
        defaults = _rules(await ctx.tableau.default_permissions(source.source_id, TEMPLATE_PATH[template]))
        chain = [
            node.model_copy(update={"default_rules": {**node.default_rules, source.source_kind: defaults}})
            if node.id == source.source_id
            else node
            for node in chain
        ]
    elif source.source is perm.RuleSource.WORKBOOK:
        workbook_rules = _rules(await ctx.tableau.permissions("workbook", source.source_id))
    elif not is_project:
        content_rules = _rules(await ctx.tableau.permissions(args.kind, record.id))
    governing = perm.governing_rules(content, content_rules, chain, workbook_rules)

    users = await ctx.tableau.users_by_id()
    groups = {g.id: g for g in await ctx.tableau.list_groups()}
    grouped: dict[tuple[str, str], dict[str, str]] = {}
    for rule in governing.rules:
        grouped.setdefault((rule.grantee_kind, rule.grantee_id), {})[rule.capability] = rule.mode.value

    def grantee_name(kind: str, gid: str) -> str:
        holder = users.get(gid) if kind == "user" else groups.get(gid)
        return holder.name if holder else f"(deleted {kind} {gid})"

    explicit = [
        GranteeRules(grantee_kind=k, grantee_id=gid, grantee_name=grantee_name(k, gid), capabilities=caps)
        for (k, gid), caps in sorted(grouped.items(), key=lambda kv: (kv[0][0], grantee_name(*kv[0]).lower()))
    ]
    owner = users.get(record.owner_id)
    output = InspectPermissionsOutput(
        kind=args.kind,
        id=record.id,
        name=record.name,
        project_path=path,
        owner=owner.name if owner else None,
        lock_mode=chain[0].content_permissions.value if chain else None,
        governed_by=source.reason,
        explicit_rules=explicit[: args.limit],
        explicit_rules_total=len(explicit),
    )
    if args.user:
        user = await resolve_user(ctx, args.user)
        subject = perm.User(id=user.id, name=user.name, site_role=user.site_role)
        member_of = [perm.Group(id=g.id, name=g.name) for g in await ctx.tableau.user_groups(user.id)]
        decisions = (
            [perm.effective_capability(subject, member_of, content, governing, chain, spec.name)]
            if spec
            else perm.effective_permissions(subject, member_of, content, governing, chain)
        )
        output.effective = [
            Decision(capability=d.capability, ui_name=d.ui_name, allowed=d.allowed, decided_by=d.step.value, reason=d.reason)
            for d in decisions
        ]
    elif spec:
        output.who_has = await _who_has(ctx, spec, content, governing, chain, users, groups, args.limit)
    return output


async def _who_has(ctx, spec, content, governing, chain, users, groups, limit) -> WhoHas:
    relevant = {r.grantee_id for r in governing.rules if r.grantee_kind == "group"}
    relevant |= {r.grantee_id for node in chain for r in node.rules if r.grantee_kind == "group"}
    members: dict[str, list[Any]] = {}

    async def load(gid: str) -> None:
        members[gid] = await ctx.tableau.group_members(gid)

    async with anyio.create_task_group() as tasks:
        for gid in relevant & set(groups):
            tasks.start_soon(load, gid)
    expanded = [
        perm.GroupWithMembers(id=gid, name=groups[gid].name, member_ids=frozenset(m.id for m in ms))
        for gid, ms in members.items()
    ]
    subjects = [perm.User(id=u.id, name=u.name, site_role=u.site_role) for u in users.values()]
    holders = perm.who_has(spec.name, content, governing, subjects, expanded, chain)
    holders.sort(key=lambda pair: pair[0].name.lower())
    return WhoHas(
        capability=spec.name,
        ui_name=spec.ui_name,
        holders=[
            Holder(user=u.name, site_role=u.site_role.value, decided_by=d.step.value, reason=d.reason)
            for u, d in holders[:limit]
        ],
        total=len(holders),
    )


INSPECT_PERMISSIONS = ToolSpec(
    name="inspect_permissions",
    title="Inspect permissions",
    description=(
        "Explain permissions on a project, workbook, view, data source or flow: the explicit rules that govern "
        "it (grantee and each capability Allow/Deny), the project's lock mode and which rules govern when locked. "
        "With `user`: that user's effective value for every capability with the deciding reason, following "
        "Tableau's order (site role, administrator, project owner/leader, content owner, user rule, group Deny, "
        "group Allow, otherwise denied). With `capability` and no user: who effectively has it, groups expanded.\n"
        'Example: "why can\'t Dana download this data?" is {"kind": "workbook", "target": "Q3 Forecast", '
        '"user": "dana.whitfield@example.com", "capability": "Download Full Data"}.'
    ),
    input_model=InspectPermissionsInput,
    output_model=InspectPermissionsOutput,
    effect="read",
    annotations=READ_ONLY,
    run=inspect_permissions,
)
