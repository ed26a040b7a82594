"""Content toolset: find_owners, and what list_content (tools/listing.py) shares with it."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from server.toolkit import READ_ONLY, ToolContext, ToolFailure, ToolSpec
from tools.budget import fit_budget
from tools.common import (
    KindShaped,
    decode_cursor,
    gather,
    in_project,
    json_size,
    resolve_one,
    utc,
)

ContentKind = Literal["workbook", "view", "datasource", "flow", "project"]
# What "all content" means for ownership questions: views belong to their workbook's owner.
OWNED_KINDS: tuple[ContentKind, ...] = ("workbook", "datasource", "flow", "project")


class ContentFilters(BaseModel):
    project: str | None = Field(
        None,
        description="Project path such as 'Sales' or 'Sales/EMEA'; sub-projects are included.",
        examples=["Finance"],
    )
    owner: str | None = Field(None, description="Owner's sign-in name, email or display name.")
    tag: str | None = Field(None, description="Only items carrying this tag.")
    name: str | None = Field(None, description="Item name to match (see name_match).")
    name_match: Literal["contains", "exact"] = Field("contains", description="How `name` matches.")
    updated_before: datetime | None = Field(None, description="ISO 8601; only items last updated before this.")
    updated_after: datetime | None = Field(None, description="ISO 8601; only items last updated after this.")


class ContentItem(KindShaped):
    # Fields that never apply to a kind are left out of its items (docs/CONVENTIONS.md, "Result shape").
    APPLIES_TO: ClassVar[dict[str, frozenset[str]]] = {
        "size_mb": frozenset({"workbook", "datasource"}),
        "has_extracts": frozenset({"workbook", "datasource"}),
        "workbook": frozenset({"view"}),
        "total_views": frozenset({"view"}),
        "sheet_count": frozenset({"workbook"}),
        "datasource_type": frozenset({"datasource"}),
        "lock_mode": frozenset({"project"}),
    }

    kind: ContentKind
    id: str
    name: str
    project_path: str | None = None
    owner: str | None = Field(None, description="Owner's sign-in name.")
    owner_email: str | None = None
    updated_at: datetime | None = None
    created_at: datetime | None = None
    size_mb: int | None = None
    has_extracts: bool | None = None
    workbook: str | None = Field(None, description="For views: the workbook they belong to.")
    total_views: int | None = Field(None, description="For views: how often it was viewed.")
    sheet_count: int | None = Field(None, description="For workbooks: how many views it has.")
    datasource_type: str | None = None
    lock_mode: str | None = Field(None, description="For projects: how content permissions are managed.")
    tags: list[str] = Field(default_factory=list)


def _server_filters(kind: ContentKind, filters: ContentFilters) -> list[tuple[str, str, str]]:
    """The filters Tableau can apply itself, so fewer pages cross the wire; the rest apply locally."""
    pushed: list[tuple[str, str, str]] = []
    if filters.name and filters.name_match == "exact" and "," not in filters.name and ":" not in filters.name:
        pushed.append(("name", "eq", filters.name))
    if kind in ("workbook", "datasource", "view") and filters.tag and "," not in filters.tag:
        pushed.append(("tags", "eq", filters.tag))
    if kind != "flow":
        if filters.updated_after:
            pushed.append(("updatedAt", "gte", utc(filters.updated_after).strftime("%Y-%m-%dT%H:%M:%SZ")))
        if filters.updated_before:
            pushed.append(("updatedAt", "lt", utc(filters.updated_before).strftime("%Y-%m-%dT%H:%M:%SZ")))
    return pushed


async def resolve_owner(ctx: ToolContext, owner: str) -> Any:
    users = list((await ctx.tableau.users_by_id()).values())
    return resolve_one(
        owner,
        users,
        what="user",
        keys=lambda u: (u.id, u.name, u.email or "", u.full_name or ""),
        describe=lambda u: f"{u.full_name or u.name} <{u.email or u.name}> (id {u.id}, {u.site_role})",
        hint="Use list_users to find the exact sign-in name.",
    )


def check_project(tree: Any, project: str | None) -> None:
    """A project path that names no project is an error with the closest paths, never an empty answer."""
    if project and not any(in_project(path, project) for path in tree.paths().values()):
        known = sorted(tree.paths().values())
        from tools.common import closest

        suggestions = ", ".join(repr(p) for p in closest(project, known)) or "none"
        raise ToolFailure(
            f"No project with path '{project}'. Closest project paths: {suggestions}. "
            "Use list_content with kind='project' to see all project paths."
        )


async def select_content(
    ctx: ToolContext,
    kind: ContentKind,
    filters: ContentFilters,
    *,
    records: list[Any] | None = None,
    lean: bool = False,
) -> list[Any]:
    """All records of `kind` matching `filters` (read from Tableau, or picked from `records`), as
    (record, project path) pairs. `lean` reads only ids, names, times, project and owner ids (no owner
    names, tags or kind-specific facts), a third of the bytes, for callers that need no more."""
    chosen, path_of = await select_records(ctx, kind, filters, records=records, lean=lean)
    return [(record, path_of(record)) for record in chosen]


async def select_records(
    ctx: ToolContext,
    kind: ContentKind,
    filters: ContentFilters,
    *,
    records: list[Any] | None = None,
    lean: bool = False,
) -> tuple[list[Any], Callable[[Any], str | None]]:
    """select_content's records without the pairs, and how to find one's project path: for callers that
    count 20,000 items and show the paths of a few (find_owners)."""

    async def owner() -> str | None:
        return (await resolve_owner(ctx, filters.owner)).id if filters.owner else None

    async def listed() -> list[Any]:
        if records is not None:
            return records
        pushed = _server_filters(kind, filters)
        if kind == "project" and not pushed:
            return await ctx.tableau.project_records()  # the listing the tree was built from
        return await ctx.tableau.list_content(kind, filters=pushed, lean=lean and not filters.tag)

    if filters.project or filters.owner or kind == "project":
        # A project or owner that names nothing is an error before any page of content is read; and
        # projects are listed by the tree itself (one listing for both, after it).
        owner_id, tree = await gather(owner, ctx.tableau.project_tree)
        check_project(tree, filters.project)
        chosen = await listed()
    else:  # nothing to check first: the tree and the pages come side by side, not one after the other
        owner_id, tree, chosen = await gather(owner, ctx.tableau.project_tree, listed)
    paths = tree.paths()

    def path_of(record: Any) -> str | None:
        return paths.get(record.id if kind == "project" else record.project_id)

    if not _narrowed(filters) and not owner_id:
        return chosen, path_of
    after, before = utc(filters.updated_after), utc(filters.updated_before)
    wanted_name = filters.name.lower() if filters.name else None
    selected = []
    for record in chosen:
        if not in_project(path_of(record), filters.project):
            continue
        if owner_id and record.owner_id != owner_id:
            continue
        if filters.tag and filters.tag.lower() not in {t.lower() for t in record.tags or ()}:
            continue
        if wanted_name is not None:
            name = record.name.lower()
            if (filters.name_match == "exact" and name != wanted_name) or wanted_name not in name:
                continue
        if after and (record.updated_at is None or record.updated_at < after):
            continue
        if before and (record.updated_at is None or record.updated_at >= before):
            continue
        selected.append(record)
    return selected, path_of


def _narrowed(filters: ContentFilters) -> bool:
    """Whether any filter applies locally (the owner aside, which is resolved to an id first)."""
    return bool(filters.project or filters.tag or filters.name or filters.updated_after or filters.updated_before)


def content_item(kind: ContentKind, record: Any, path: str | None) -> ContentItem:
    return ContentItem(
        kind=kind,
        id=record.id,
        name=record.name,
        project_path=path,
        owner=record.owner_name,
        owner_email=record.owner_email,
        updated_at=record.updated_at,
        created_at=record.created_at,
        size_mb=getattr(record, "size", None) if kind in ("workbook", "datasource") else None,
        has_extracts=getattr(record, "has_extracts", None) if kind in ("workbook", "datasource") else None,
        workbook=getattr(record, "workbook_name", None) if kind == "view" else None,
        total_views=getattr(record, "total_view_count", None) if kind == "view" else None,
        sheet_count=getattr(record, "sheet_count", None) if kind == "workbook" else None,
        datasource_type=getattr(record, "type", None) if kind == "datasource" else None,
        lock_mode=getattr(record, "content_permissions", None) if kind == "project" else None,
        tags=sorted(record.tags or ()),
    )


class FindOwnersInput(ContentFilters):
    kind: ContentKind | Literal["all"] = Field(
        "all", description="Which content to consider; 'all' means workbooks, data sources, flows and projects."
    )
    inactive_days: int = Field(90, ge=1, le=3650, description="Flag owners who have not signed in for this many days.")
    only_flagged: bool = Field(
        False, description="Only owners who are unlicensed, inactive, never signed in, or no longer exist."
    )
    limit: int = Field(25, ge=1, le=200, description="Owners per page.")
    cursor: str | None = Field(None, description="`next_cursor` from the previous page, with the same filters.")


OwnerFlag = Literal["unlicensed", "inactive", "never_signed_in", "deleted_user"]


class OwnerSummary(BaseModel):
    user_id: str
    name: str | None = Field(None, description="Sign-in name; null when the user no longer exists.")
    full_name: str | None = None
    email: str | None = None
    site_role: str | None = None
    last_login: datetime | None = None
    days_since_login: int | None = None
    item_count: int
    counts_by_kind: dict[str, int]
    flags: list[OwnerFlag]
    examples: list[str] = Field(description="A few of the items they own, as 'kind: project/name'.")


class FindOwnersOutput(BaseModel):
    owners: list[OwnerSummary]
    total_owners: int
    total_items: int
    flagged_owners: int = Field(description="Owners with at least one flag, across all pages.")
    items_owned_by_flagged: int
    inactive_days: int
    next_cursor: str | None = None


def _flags(user: Any, inactive_days: int, now: datetime) -> tuple[list[OwnerFlag], int | None]:
    if user is None:
        return ["deleted_user"], None
    flags: list[OwnerFlag] = []
    if user.site_role == "Unlicensed":
        flags.append("unlicensed")
    if user.last_login is None:
        flags.append("never_signed_in")
        return flags, None
    days = (now - user.last_login).days
    if days >= inactive_days:
        flags.append("inactive")
    return flags, days


def _flagged(user: Any, cutoff: datetime) -> bool:
    """Whether `_flags` gives `user` any flag, without building the list: (now - last).days >= N exactly
    when last <= now - N days."""
    if user is None or user.site_role == "Unlicensed":
        return True
    last = user.last_login  # parsed from Tableau's text on each read (UserFacts): read it once
    return last is None or last <= cutoff


def _examples(kinds: Sequence[str], selections: Sequence[tuple[list[Any], Any]], wanted: set[Any]) -> dict[Any, list[str]]:
    """Up to three items per owner in `wanted`, as 'kind: project/name', in listing order."""
    examples: dict[Any, list[str]] = {owner_id: [] for owner_id in wanted}
    for kind, (chosen, path_of) in zip(kinds, selections, strict=True):
        for record in chosen:
            found = examples.get(record.owner_id)
            if found is not None and len(found) < 3:
                path = path_of(record)
                found.append(f"{kind}: {path + '/' if path and kind != 'project' else ''}{record.name}")
    return examples


async def find_owners(ctx: ToolContext, args: FindOwnersInput) -> FindOwnersOutput:
    query = args.model_dump(mode="json", exclude={"cursor", "limit"})
    offset = decode_cursor(args.cursor, query)
    kinds = OWNED_KINDS if args.kind == "all" else (args.kind,)
    # The kinds and the user list are independent: fetch them side by side, not one after another. Only the
    # facts find_owners shows are listed (UserFacts), unless the owner filter reads the full users anyway.
    users_of = ctx.tableau.users_by_id if args.owner else ctx.tableau.user_facts
    *selections, users = await gather(
        *(partial(select_records, ctx, kind, args, lean=True) for kind in kinds), users_of
    )
    # Counted in C without an object per item, and flags, examples and summaries worked out in full only
    # for the page shown: on 20,000 workbooks, per-item tuples and 2,600 validated summaries were most of
    # the tool's own time.
    owner_of = attrgetter("owner_id")
    per_kind = {kind: Counter(map(owner_of, chosen)) for kind, (chosen, _) in zip(kinds, selections, strict=True)}
    if len(kinds) == 1:  # Counter.update walks a mapping in Python, 2,600 owners a kind: not for one kind
        totals = per_kind[kinds[0]]
    else:
        totals = Counter(chain.from_iterable(map(owner_of, chosen) for chosen, _ in selections))
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=args.inactive_days)
    owners = []
    flagged = items_flagged = 0
    for owner_id, count in totals.items():
        user = users.get(owner_id)
        if _flagged(user, cutoff):
            flagged += 1
            items_flagged += count
        elif args.only_flagged:
            continue
        owners.append((-count, (user.name if user else "").lower(), owner_id or "", owner_id, user))
    # By count, name and id (the fourth and fifth are never compared); only as far as the page shown, which
    # heapq does in a third of a full sort's time on 2,600 owners (it equals sorted(...)[:n], ties included).
    window = heapq.nsmallest(offset + args.limit, owners, key=itemgetter(0, 1, 2))[offset:]
    examples = _examples(kinds, selections, {owner[3] for owner in window})

    def summary(owner: tuple[Any, ...]) -> OwnerSummary:
        _, _, _, owner_id, user = owner
        flags, days = _flags(user, args.inactive_days, now)
        return OwnerSummary(
            user_id=owner_id,
            name=user.name if user else None,
            full_name=user.full_name if user else None,
            email=user.email if user else None,
            site_role=user.site_role if user else None,
            last_login=user.last_login if user else None,
            days_since_login=days,
            item_count=-owner[0],
            counts_by_kind={kind: per_kind[kind][owner_id] for kind in kinds if per_kind[kind][owner_id]},
            flags=flags,
            examples=examples[owner_id],
        )

    page = fit_budget([summary(owner) for owner in window], offset, len(owners), query, json_size)
    return FindOwnersOutput(
        owners=page.items,
        total_owners=len(owners),
        total_items=-sum(owner[0] for owner in owners),
        flagged_owners=flagged,
        items_owned_by_flagged=items_flagged,
        inactive_days=args.inactive_days,
        next_cursor=page.next_cursor,
    )


FIND_OWNERS = ToolSpec(
    name="find_owners",
    title="Find content owners",
    description=(
        "Who owns the content selected by the same filters as list_content (or all content), grouped by owner "
        "with counts per kind, email, site role and last sign-in, flagging owners who are Unlicensed, have not "
        "signed in for `inactive_days` (default 90), never signed in, or no longer exist. Use it for governance "
        "questions such as 'content owned by inactive users'.\n"
        'Example: {"project": "Finance", "only_flagged": true} lists who owns Finance content and has left or '
        "gone quiet."
    ),
    input_model=FindOwnersInput,
    output_model=FindOwnersOutput,
    effect="read",
    annotations=READ_ONLY,
    run=find_owners,
)
