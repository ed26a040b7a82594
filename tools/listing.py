"""list_content: one page of workbooks, views, data sources, flows or projects, paged by Tableau where it can.

What one page costs, in requests, beyond the cached project listing and (with `owner`) user list:
- Workbooks, views and data sources whose filters Tableau can apply exactly (owner, tag, exact name,
  update times, has_extracts, a project subtree or lock mode whose project names no project outside it
  shares, every sort): Tableau filters, sorts and pages, and answers the total: one request per page.
- Otherwise the narrowest query Tableau can answer (the filters above plus `projectName:in:[…]`, in
  batches of project names) is read in full, ⌈matches ÷ 1000⌉ requests per batch, and the rest is matched
  here: a name that `contains` a text, a subtree whose project names recur elsewhere on the site, names
  with `,` `&` `[` `]` or `:` (which Tableau's filter syntax cannot hold; they become `*` wildcards).
  Its cursor pages page through what the first page read (for the cache TTL): no request.
- The views of one workbook (`workbook`): the workbook's lookup plus one request for its views.
- Flows: every flow matching the name filter (⌈flows ÷ 1000⌉ requests); projects: the cached listing.
Totals are always exact: Tableau's count when it applied every filter, the matches counted here otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal
from weakref import WeakKeyDictionary

from pydantic import BaseModel, Field

from server.toolkit import READ_ONLY, ToolContext, ToolFailure, ToolSpec
from tools.budget import BUDGET_TEXT, fit_budget
from tools.common import (
    MAX_PAGE_SIZE,
    UNFILTERABLE,
    decode_cursor,
    gather,
    in_project,
    json_size,
    page_window,
    query_digest,
    resolve_content,
    utc,
)
from tools.content import (
    ContentFilters,
    ContentItem,
    ContentKind,
    check_project,
    content_item,
    resolve_owner,
    select_content,
)

ListSort = Literal["name", "updated_at", "created_at", "size", "total_views", "project", "owner"]
LockMode = Literal["ManagedByOwner", "LockedToProject", "LockedToProjectWithoutNested"]

PAGED_KINDS = ("workbook", "view", "datasource")  # the kinds Tableau filters, sorts and pages for us
SIZED_KINDS = ("workbook", "datasource")
# Tableau's sort field for each `sort_by`, then a tie-break, so consecutive pages never overlap.
SERVER_SORT: dict[str, tuple[str, str]] = {
    "name": ("name", "createdAt"),
    "updated_at": ("updatedAt", "name"),
    "created_at": ("createdAt", "name"),
    "size": ("size", "name"),
    "total_views": ("hitsTotal", "name"),
    "project": ("projectName", "name"),
    "owner": ("ownerName", "name"),
}
# A listing matched here is read once: its cursor pages page through the snapshot its first page took
# (per client, for the client's cache TTL), so they cost no request and never shift under the reader.
_SNAPSHOTS: WeakKeyDictionary[Any, dict[str, tuple[float, list[Any]]]] = WeakKeyDictionary()
SNAPSHOTS_KEPT = 8
NAME_BATCH_CHARS = 1500  # keeps a `projectName:in:[…]` filter well inside any URL length limit


class ListContentInput(ContentFilters):
    kind: ContentKind = Field("workbook", description="Which kind of content to list.")
    workbook: str | None = Field(
        None,
        description="For kind 'view': only the views of this workbook (name or id; `project` narrows the name).",
    )
    has_extracts: bool | None = Field(
        None, description="For workbooks and data sources: only those with (true) or without (false) extracts."
    )
    lock_mode: LockMode | None = Field(
        None,
        description="Projects with this content-permission mode; for other kinds, content in such projects.",
    )
    sort_by: ListSort = Field(
        "name",
        description=(
            "Sort key. 'size' for workbooks and data sources, 'total_views' (usage) for views; 'project' sorts "
            "by the project's own name (Tableau's projectName), or by path for projects."
        ),
    )
    descending: bool = Field(False, description="Sort in descending order.")
    limit: int = Field(30, ge=1, le=500, description="Items per page (at most 500; see the result budget).")
    cursor: str | None = Field(None, description="`next_cursor` from the previous page, with the same filters.")


class ListContentOutput(BaseModel):
    kind: ContentKind
    items: list[ContentItem]
    total: int = Field(description="How many items match the filters in all.")
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null when done.")
    budget_cut: int = Field(
        0, description="Items of the requested `limit` left for the next page to keep the result within budget."
    )
    note: str | None = Field(None, description="Why the page is shorter than `limit`, when it is.")


@dataclass
class Plan:
    """How to ask Tableau: filters it applies, project batches (one query each) and checks made here."""

    filters: list[tuple[str, str, Any]] = field(default_factory=list)
    batches: list[tuple[str, str, Any]] = field(default_factory=list)
    keep: list[Callable[[Any], bool]] = field(default_factory=list)
    nothing: bool = False  # the filters rule out every item (e.g. no project has the lock mode)

    @property
    def tableau_pages(self) -> bool:
        """Whether Tableau's own pages and total are the answer (nothing is left to check here)."""
        return not self.keep and len(self.batches) <= 1

    def kept(self, record: Any) -> bool:
        return all(check(record) for check in self.keep)


def _exact(plan: Plan, field_name: str, value: str, check: Callable[[Any], bool]) -> None:
    """Filter `field_name` equal to `value` on Tableau; if `value` needs wildcards, confirm it here."""
    if UNFILTERABLE.search(value):
        plan.filters.append((field_name, "eq", UNFILTERABLE.sub("*", value)))
        plan.keep.append(check)
    else:
        plan.filters.append((field_name, "eq", value))


def _project_batches(names: list[str]) -> list[tuple[str, str, Any]]:
    """`projectName:in:[…]` filters of at most NAME_BATCH_CHARS each; a name Tableau cannot hold in a
    list gets its own wildcard `eq` filter."""
    batches: list[tuple[str, str, Any]] = []
    current: list[str] = []
    used = 0
    for name in names:
        if UNFILTERABLE.search(name):
            batches.append(("projectName", "eq", UNFILTERABLE.sub("*", name)))
            continue
        if current and used + len(name) + 1 > NAME_BATCH_CHARS:
            batches.append(("projectName", "in", current))
            current, used = [], 0
        current.append(name)
        used += len(name) + 1
    if current:
        batches.append(("projectName", "in", current))
    return batches


def _scope(plan: Plan, tree: Any, args: ListContentInput) -> None:
    """Restrict to the project subtree and lock mode with the narrowest projectName query Tableau takes."""
    if args.project is None and args.lock_mode is None:
        return
    check_project(tree, args.project)
    ids = {
        pid
        for pid, node in tree.nodes.items()
        if in_project(node.path, args.project) and (args.lock_mode is None or node.content_permissions == args.lock_mode)
    }
    if not ids:
        plan.nothing = True
        return
    names = {tree.nodes[pid].name for pid in ids}
    plan.batches = _project_batches(sorted(names))
    shared = any(node.name in names and pid not in ids for pid, node in tree.nodes.items())
    if shared or any(op == "eq" for _, op, _ in plan.batches):
        plan.keep.append(lambda record: record.project_id in ids)


async def _plan(ctx: ToolContext, args: ListContentInput, tree: Any) -> Plan:
    plan = Plan()
    if args.name:
        if args.name_match == "exact":
            wanted = args.name
            _exact(plan, "name", wanted, lambda record: record.name == wanted)
        else:
            needle = args.name.lower()
            plan.keep.append(lambda record: needle in record.name.lower())
    if args.owner:
        user = await resolve_owner(ctx, args.owner)
        _exact(plan, "ownerName", user.name, lambda record: record.owner_id == user.id)
    if args.tag:
        tag = args.tag
        if UNFILTERABLE.search(tag):
            plan.keep.append(lambda record: tag in (record.tags or ()))
        else:
            plan.filters.append(("tags", "eq", tag))
    if args.updated_after:
        plan.filters.append(("updatedAt", "gte", utc(args.updated_after)))
    if args.updated_before:
        plan.filters.append(("updatedAt", "lt", utc(args.updated_before)))
    if args.has_extracts is not None:
        plan.filters.append(("hasExtracts", "eq", args.has_extracts))
    _scope(plan, tree, args)
    return plan


def _check_arguments(args: ListContentInput) -> None:
    if args.workbook is not None and args.kind != "view":
        raise ToolFailure("`workbook` selects views: use kind 'view' with it, or `name` to find a workbook.")
    if args.has_extracts is not None and args.kind not in SIZED_KINDS:
        raise ToolFailure("`has_extracts` applies to kind 'workbook' or 'datasource' only.")
    if args.sort_by == "size" and args.kind not in SIZED_KINDS:
        raise ToolFailure("sort_by 'size' applies to kind 'workbook' or 'datasource' only.")
    if args.sort_by == "total_views" and args.kind != "view":
        raise ToolFailure("sort_by 'total_views' (usage) applies to kind 'view' only.")
    if args.updated_after and args.updated_before and utc(args.updated_after) >= utc(args.updated_before):
        raise ToolFailure("`updated_after` must be earlier than `updated_before`: nothing can match both.")


# -- ordering, the same here as on Tableau ------------------------------------------------------------


def _orderable(value: Any) -> tuple:
    """Tableau's order for one sort field: missing values first, text ignoring case."""
    if value is None:
        return (0, "")
    return (1, value.casefold() if isinstance(value, str) else value)


def _project_key(kind: str, record: Any, path: str | None) -> str | None:
    # Tableau's projectName is the project's own name; projects themselves sort by path.
    return path if kind == "project" else ((path or "").rsplit("/", 1)[-1] or None)


_PRIMARY: dict[str, Callable[[str, Any, str | None], Any]] = {
    "name": lambda kind, record, path: record.name,
    "updated_at": lambda kind, record, path: record.updated_at,
    "created_at": lambda kind, record, path: record.created_at,
    "size": lambda kind, record, path: record.size,
    "total_views": lambda kind, record, path: record.total_view_count,
    "project": _project_key,
    "owner": lambda kind, record, path: record.owner_name,
}


def _sorted(kind: str, selected: list[tuple[Any, str | None]], args: ListContentInput) -> list[tuple[Any, str | None]]:
    """(record, project path) pairs in the order Tableau gives the same sort (SERVER_SORT)."""
    primary = _PRIMARY[args.sort_by]

    def key(pair: tuple[Any, str | None]) -> tuple:
        record, path = pair
        tie = record.created_at if args.sort_by == "name" else record.name
        return (_orderable(primary(kind, record, path)), _orderable(tie), record.id)

    return sorted(selected, key=key, reverse=args.descending)


def server_sort(sort_by: str, descending: bool) -> list[str]:
    direction = "desc" if descending else "asc"
    return [f"{name}:{direction}" for name in SERVER_SORT[sort_by]]


# -- fetching -----------------------------------------------------------------------------------------


async def _tableau_window(
    ctx: ToolContext, kind: str, plan: Plan, args: ListContentInput, offset: int
) -> tuple[list[Any], int]:
    """Items offset..offset+limit-1 as Tableau filters and orders them, and Tableau's total: one request,
    or two side by side (the same wall time) when no page of at most 4 × limit holds the window, so a
    30-item window never parses a 1000-item page."""
    filters = plan.filters + plan.batches
    fetch = partial(
        ctx.tableau.content_page, kind, filters=filters, sort=server_sort(args.sort_by, args.descending)
    )
    number, size, skip = page_window(offset, args.limit, max_size=min(MAX_PAGE_SIZE, 4 * args.limit))
    if skip + args.limit <= size:
        records, total = await fetch(page_number=number, page_size=size)
        return records[skip : skip + args.limit], total
    (first, total), (second, _) = await gather(
        partial(fetch, page_number=number, page_size=size),
        partial(fetch, page_number=number + 1, page_size=size),
    )
    return (first + second)[skip : skip + args.limit], total


async def _scanned(ctx: ToolContext, kind: str, plan: Plan) -> list[Any]:
    """Every item the narrowest Tableau queries return (one listing per project batch), checked here."""
    batches = plan.batches or [None]
    listings = await gather(
        *(
            partial(ctx.tableau.list_content, kind, filters=plan.filters + ([batch] if batch else []))
            for batch in batches
        )
    )
    seen: set[str] = set()
    kept = []
    for records in listings:
        for record in records:
            if record.id not in seen and plan.kept(record):
                seen.add(record.id)
                kept.append(record)
    return kept


async def _scanned_in_order(
    ctx: ToolContext, plan: Plan, args: ListContentInput, tree: Any, query: dict[str, Any], offset: int
) -> list[tuple[Any, str | None]]:
    """`_scanned`, sorted; for a cursor page, the ordered snapshot the query's first page took
    (within the cache TTL), so later pages cost neither a request nor a sort."""
    snapshots = _SNAPSHOTS.setdefault(ctx.tableau, {})
    ttl = ctx.tableau.settings.cache_ttl
    key = query_digest(query)
    taken = snapshots.get(key)
    if offset and taken is not None and time.monotonic() - taken[0] < ttl:
        return taken[1]
    started = time.monotonic()
    records = await _scanned(ctx, args.kind, plan)
    ordered = _sorted(args.kind, [(r, tree.path_of(r.project_id)) for r in records], args)
    if ttl > 0:
        snapshots.pop(key, None)
        snapshots[key] = (started, ordered)
        while len(snapshots) > SNAPSHOTS_KEPT:
            snapshots.pop(next(iter(snapshots)))
    return ordered


async def _workbook_views(ctx: ToolContext, args: ListContentInput) -> list[tuple[Any, str | None]]:
    """The views of one workbook, with every other filter applied here (a workbook has few views)."""
    workbook, _ = await resolve_content(ctx, "workbook", args.workbook, project=args.project)
    views = await ctx.tableau.workbook_views(workbook)
    filters = args.model_copy(update={"project": None})  # the project chose the workbook
    return await select_content(ctx, "view", filters, records=views)


async def _local_selection(ctx: ToolContext, args: ListContentInput, tree: Any) -> list[tuple[Any, str | None]]:
    """Flows, projects and one workbook's views: matched and counted here."""
    if args.workbook is not None:
        selected = await _workbook_views(ctx, args)
    else:
        selected = await select_content(ctx, args.kind, args)
    if args.lock_mode is not None:
        def locked(record: Any) -> bool:
            node = tree.get(record.id if args.kind == "project" else record.project_id)
            return node is not None and node.content_permissions == args.lock_mode

        selected = [(record, path) for record, path in selected if locked(record)]
    return selected


async def list_content(ctx: ToolContext, args: ListContentInput) -> ListContentOutput:
    _check_arguments(args)
    query = args.model_dump(mode="json", exclude={"cursor", "limit"})
    offset = decode_cursor(args.cursor, query)
    tree = await ctx.tableau.project_tree()
    if args.kind in PAGED_KINDS and args.workbook is None:
        plan = await _plan(ctx, args, tree)
        if plan.nothing:
            window, total = [], 0
        elif plan.tableau_pages:
            records, total = await _tableau_window(ctx, args.kind, plan, args, offset)
            window = [(r, tree.path_of(r.project_id)) for r in records]
        else:
            ordered = await _scanned_in_order(ctx, plan, args, tree, query, offset)
            window, total = ordered[offset : offset + args.limit], len(ordered)
    else:
        ordered = _sorted(args.kind, await _local_selection(ctx, args, tree), args)
        window, total = ordered[offset : offset + args.limit], len(ordered)
    items = [content_item(args.kind, record, path) for record, path in window]
    page = fit_budget(items, offset, total, query, json_size)
    return ListContentOutput(
        kind=args.kind,
        items=page.items,
        total=total,
        next_cursor=page.next_cursor,
        budget_cut=page.cut,
        note=page.note(),
    )


LIST_CONTENT = ToolSpec(
    name="list_content",
    title="List Tableau content",
    description=(
        "List workbooks, views, data sources, flows or projects on the Tableau site, filtered by project path "
        "(sub-projects included), owner, tag, name, last-update time, extracts (`has_extracts`) and project lock "
        "mode (`lock_mode`), or the views of one `workbook`; sorted by name, time, size, usage (`total_views`, "
        "views), project or owner; paged with `next_cursor`. Returns each item's id, name, full project path, "
        "owner, update time and kind-specific facts (size, extracts, view counts), plus the exact `total`.\n"
        "Cost: Tableau filters, sorts and pages workbooks, views and data sources itself (one request per page) "
        "unless a filter needs checking here: name `contains`, or a project subtree whose project names also "
        "exist elsewhere; then every item of the narrowest query (`projectName:in:[…]` batches) is read, "
        "⌈matches ÷ 1000⌉ requests, and its cursor pages reuse that reading. Flows are read in full; projects "
        "come from a cached listing.\n"
        f"{BUDGET_TEXT}\n"
        'Example: {"kind": "view", "workbook": "Sales Pipeline", "sort_by": "total_views", "descending": true} '
        "lists that workbook's views, most viewed first."
    ),
    input_model=ListContentInput,
    output_model=ListContentOutput,
    effect="read",
    annotations=READ_ONLY,
    run=list_content,
)
