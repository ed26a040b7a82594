"""Ownership hand-over: transfer_content_ownership (a governed, destructive write).

The selection is made once, like find_owners' (the same filters), and recorded in the approval request
as exact item ids with the owner each had; an approved request loads exactly those items again from
the listings (a few paged reads, never one read per item) and changes each owner with one PUT.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any, Literal

import anyio
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from server.tableau.errors import TableauError
from server.toolkit import TargetGone, ToolContext, ToolFailure, ToolSpec, bound_id
from tools.common import gather
from tools.content import OWNED_KINDS, ContentFilters, resolve_owner, select_content

OwnedKind = Literal["workbook", "datasource", "flow", "project"]
ItemStatus = Literal["moved", "no_change", "failed", "gone"]
# An approved request's result is stored in at most 4,000 characters (server/governance/approvals.py
# MAX_RESULT), and what does not fit is lost: per-item lists are cut to this many characters of JSON,
# failures first, and the counts always cover every item (each PUT is in the audit log regardless).
RESULT_BUDGET = 2800
EXAMPLES_SHOWN = 5
MOVES_IN_FLIGHT = 8

# Hand-over replaces who controls the content (the old owner loses their implicit rights): destructive.
WRITE_DESTRUCTIVE_IDEMPOTENT = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)


class TransferOwnershipInput(ContentFilters):
    new_owner: str = Field(description="Who gets the content: sign-in name, email or id.", examples=["dana.ito"])
    kind: OwnedKind | Literal["all"] = Field(
        "all", description="Which content to move; 'all' means workbooks, data sources, flows and projects."
    )
    item_ids: list[str] | None = Field(
        None, max_length=5000, description="Only these items (ids from list_content or find_owners)."
    )


class ItemRef(BaseModel):
    kind: OwnedKind
    id: str
    name: str
    project_path: str | None = None


class ItemResult(ItemRef):
    status: ItemStatus
    previous_owner_id: str | None = None
    error: str | None = None


class TransferOwnershipOutput(BaseModel):
    new_owner_id: str
    new_owner: str
    moved: int
    no_change: int = Field(description="Items the new owner already owned.")
    failed: int
    gone: int = Field(description="Approved items that no longer exist.")
    results: list[ItemResult] = Field(
        description="Failed and gone items first, then the rest, as many as fit (see results_total)."
    )
    results_total: int
    message: str


class _Item(ItemRef):
    owner_id: str | None = None


class _Selection(BaseModel):
    new_owner_id: str
    new_owner: str
    new_owner_role: str
    items: list[_Item]
    gone: list[_Item] = Field(default_factory=list)


def fitting(items: list[BaseModel], budget: int) -> int:
    """How many of `items`, from the first, fit in `budget` characters of JSON."""
    used = 0
    for count, item in enumerate(items):
        used += len(item.model_dump_json()) + 2
        if used > budget:
            return count
    return len(items)


def _kinds(args: TransferOwnershipInput) -> tuple[str, ...]:
    return OWNED_KINDS if args.kind == "all" else (args.kind,)


async def _selection(ctx: ToolContext, args: TransferOwnershipInput) -> _Selection:
    """The new owner and the items, resolved once per call; for an approved request, the recorded ones by id."""
    if ctx.bound is not None:
        return await ctx.once(("bound transfer",), lambda: _bound_selection(ctx))
    return await ctx.once(("transfer", args.model_dump_json()), lambda: _select(ctx, args))


async def _select(ctx: ToolContext, args: TransferOwnershipInput) -> _Selection:
    if not args.owner and not args.item_ids:
        raise ToolFailure(
            "Say whose content to move (`owner`) or which items (`item_ids`): transfer_content_ownership never "
            "selects a whole site. find_owners shows who owns what."
        )
    kinds = _kinds(args)
    wanted = set(args.item_ids or ())
    # With item_ids, an item the new owner already holds stays selected (no_change), so re-running the same
    # call after a partial failure finishes the rest instead of failing on the moved ones.
    filters = args.model_copy(update={"owner": None}) if wanted else args
    new_owner, old_owner, *selections = await gather(
        partial(resolve_owner, ctx, args.new_owner),
        partial(_owner_id, ctx, args.owner if wanted else None),
        *(partial(select_content, ctx, kind, filters, lean=True) for kind in kinds),
    )
    owners = None if old_owner is None else {old_owner, new_owner.id}
    items = [
        _Item(kind=kind, id=record.id, name=record.name, project_path=path, owner_id=record.owner_id)
        for kind, selection in zip(kinds, selections, strict=True)
        for record, path in selection
        if (not wanted or record.id in wanted) and (owners is None or record.owner_id in owners)
    ]
    unmatched = wanted - {item.id for item in items}
    if unmatched:
        shown = ", ".join(sorted(unmatched)[:5])
        raise ToolFailure(
            f"{len(unmatched)} of the given item_ids match no {'/'.join(kinds)} under these filters ({shown}); "
            "nothing was selected. Check the ids with list_content, or widen `kind` and the filters."
        )
    if not items:
        raise ToolFailure("No content matches these filters, so there is nothing to move. find_owners shows who owns what.")
    return _licensed(
        _Selection(new_owner_id=new_owner.id, new_owner=new_owner.name, new_owner_role=new_owner.site_role, items=items)
    )


async def _owner_id(ctx: ToolContext, owner: str | None) -> str | None:
    return (await resolve_owner(ctx, owner)).id if owner else None


def _licensed(chosen: _Selection) -> _Selection:
    """Tableau lets only licensed users own content: refuse before asking for approval, and again at execution."""
    if chosen.new_owner_role == "Unlicensed":
        raise ToolFailure(
            f"{chosen.new_owner} is Unlicensed and cannot own content; nothing was moved. Give them a site role "
            "first, or choose another new owner."
        )
    return chosen


async def _listed(ctx: ToolContext, kind: str) -> dict[str, Any]:
    """Every item of `kind` by id, from the paged listing (lean where Tableau allows)."""
    if kind == "project":
        records = await ctx.tableau.project_records()
    else:
        records = await ctx.tableau.list_content(kind, lean=True)
    return {record.id: record for record in records}


async def _bound_selection(ctx: ToolContext) -> _Selection:
    assert ctx.bound is not None
    new_owner_id = bound_id(ctx, "new_owner")
    recorded = [(role.split(":", 1)[0], item_id) for role, item_id in ctx.bound.items() if role != "new_owner"]
    kinds = sorted({kind for kind, _ in recorded})
    users, tree, *listings = await gather(
        ctx.tableau.users_by_id, ctx.tableau.project_tree, *(partial(_listed, ctx, kind) for kind in kinds)
    )
    new_owner = users.get(new_owner_id)
    if new_owner is None:
        raise TargetGone(f"The approved new owner (id {new_owner_id}) no longer exists; nothing was moved.")
    by_kind = dict(zip(kinds, listings, strict=True))
    items, gone = [], []
    for kind, item_id in recorded:
        record = by_kind[kind].get(item_id)
        if record is None:
            gone.append(_Item(kind=kind, id=item_id, name="(deleted)"))
            continue
        path = tree.path_of(record.id if kind == "project" else record.project_id)
        items.append(_Item(kind=kind, id=item_id, name=record.name, project_path=path, owner_id=record.owner_id))
    return _Selection(
        new_owner_id=new_owner.id, new_owner=new_owner.name, new_owner_role=new_owner.site_role, items=items, gone=gone
    )


def _role(item: _Item) -> str:
    return f"{item.kind}:{item.id}"


async def transfer_targets(ctx: ToolContext, args: TransferOwnershipInput) -> list[dict[str, Any]]:
    chosen = await _selection(ctx, args)
    return [
        {"role": "new_owner", "kind": "user", "id": chosen.new_owner_id, "name": chosen.new_owner},
        *(
            {"role": _role(item), "kind": item.kind, "id": item.id, "name": item.name, "owner_id": item.owner_id}
            for item in chosen.items
        ),
    ]


def _to_move(chosen: _Selection) -> list[_Item]:
    return [item for item in chosen.items if item.owner_id != chosen.new_owner_id]


async def transfer_facts(ctx: ToolContext, args: TransferOwnershipInput) -> dict[str, Any]:
    chosen = await _selection(ctx, args)
    moving = _to_move(chosen)
    return {
        "owner_kind": tuple(sorted({item.kind for item in moving})) or tuple(_kinds(args)),
        "project_path": tuple(sorted({item.project_path or "" for item in moving})) or ("",),
        "change_count": len(moving),
        "target_user": chosen.new_owner,
    }


def _label(item: _Item) -> str:
    where = f"{item.project_path}/" if item.project_path and item.kind != "project" else ""
    return f"{item.kind}: {where}{item.name}"


def _counts(items: list[_Item]) -> str:
    counts = Counter(item.kind for item in items)
    return ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(counts.items()))


async def transfer_preview(ctx: ToolContext, args: TransferOwnershipInput) -> str:
    chosen = await _selection(ctx, args)
    moving = _to_move(chosen)
    users = await ctx.tableau.users_by_id()
    owners = Counter(item.owner_id for item in moving)
    from_whom = ", ".join(
        f"{users[o].name if o in users else f'deleted user {o}'} ({n})" for o, n in owners.most_common(5)
    )
    examples = "; ".join(_label(item) for item in moving[:EXAMPLES_SHOWN])
    kept = len(chosen.items) - len(moving)
    text = (
        f"Moves {len(moving)} items to {chosen.new_owner} ({chosen.new_owner_role}): {_counts(moving) or 'none'}. "
        f"From: {from_whom or 'nobody'}. Examples: {examples or 'none'}."
    )
    if kept:
        text += f" {kept} selected items are already owned by {chosen.new_owner} (no change)."
    return text + " The previous owners lose the owner's implicit rights on these items."


async def _move(ctx: ToolContext, chosen: _Selection, item: _Item) -> ItemResult:
    result = ItemResult(
        kind=item.kind, id=item.id, name=item.name, project_path=item.project_path, status="no_change",
        previous_owner_id=item.owner_id,
    )
    if item.owner_id == chosen.new_owner_id:
        return result
    try:
        await ctx.tableau.change_owner(item.kind, item.id, chosen.new_owner_id)
    except TableauError as exc:  # one refusal does not stop the rest: the result says what moved
        return result.model_copy(update={"status": "failed", "error": str(exc)})
    return result.model_copy(update={"status": "moved"})


def _message(chosen: _Selection, counts: Counter[str]) -> str:
    text = f"Moved {counts['moved']} items to {chosen.new_owner}"
    extras = []
    if counts["no_change"]:
        extras.append(f"{counts['no_change']} already theirs")
    if counts["gone"]:
        extras.append(f"{counts['gone']} no longer exist")
    if counts["failed"]:
        extras.append(f"{counts['failed']} FAILED and keep their owner")
    text += f" ({'; '.join(extras)})." if extras else "."
    if counts["failed"]:
        text += " Run the same transfer again to finish the rest: items already moved answer no_change."
    return text


async def transfer_content_ownership(ctx: ToolContext, args: TransferOwnershipInput) -> TransferOwnershipOutput:
    chosen = _licensed(await _selection(ctx, args))
    # A sliding window of moves in flight (the access layer's concurrency limit still bounds the traffic).
    window = anyio.CapacityLimiter(MOVES_IN_FLIGHT)
    finished = 0

    async def move(item: _Item) -> ItemResult:
        nonlocal finished
        async with window:
            result = await _move(ctx, chosen, item)
        finished += 1
        await ctx.progress(finished, len(chosen.items), f"{finished} of {len(chosen.items)} items")
        return result

    results: list[ItemResult] = await gather(*(partial(move, item) for item in chosen.items))
    results += [ItemResult(kind=i.kind, id=i.id, name=i.name, status="gone") for i in chosen.gone]
    counts = Counter(r.status for r in results)
    results.sort(key=lambda r: ("failed", "gone", "moved", "no_change").index(r.status))
    return TransferOwnershipOutput(
        new_owner_id=chosen.new_owner_id,
        new_owner=chosen.new_owner,
        moved=counts["moved"],
        no_change=counts["no_change"],
        failed=counts["failed"],
        gone=counts["gone"],
        results=results[: fitting(results, RESULT_BUDGET)],
        results_total=len(results),
        message=_message(chosen, counts),
    )


TRANSFER_CONTENT_OWNERSHIP = ToolSpec(
    name="transfer_content_ownership",
    title="Hand content over to a new owner",
    description=(
        "Make `new_owner` the owner of the selected workbooks, data sources, flows and projects: everything a "
        "user owns (`owner`), narrowed by the same filters as find_owners (project path with sub-projects, tag, "
        "name, updated dates, kind), or just the given `item_ids`. Results per item (moved, no_change, failed, "
        "gone); after a partial failure, running the same transfer again finishes the rest. Usually needs an "
        "administrator's approval: then the result has status 'pending_approval' and a request id for "
        "get_request.\n"
        'Example: {"owner": "lee.departed", "project": "Finance", "new_owner": "dana.ito"}.'
    ),
    input_model=TransferOwnershipInput,
    output_model=TransferOwnershipOutput,
    effect="write",
    annotations=WRITE_DESTRUCTIVE_IDEMPOTENT,
    run=transfer_content_ownership,
    facts=transfer_facts,
    preview=transfer_preview,
    targets=transfer_targets,
    target_args=("new_owner", "owner", "item_ids"),
    fact_names=frozenset({"owner_kind", "project_path", "change_count"}),
)
