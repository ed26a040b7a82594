"""Helpers every toolset shares: cursors, name resolution, time filters, output budgets, concurrency."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, TypeVar

import anyio
from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

from server.arguments import closest
from server.tableau.errors import first_error
from server.toolkit import ToolFailure

T = TypeVar("T")

# Every tool result must fit an assistant's context comfortably, whatever the site's size.
RESULT_CHAR_BUDGET = 20_000


def query_digest(query: dict[str, Any]) -> str:
    canonical = json.dumps(query, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(offset: int, query: dict[str, Any]) -> str:
    payload = json.dumps({"o": offset, "q": query_digest(query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, query: dict[str, Any]) -> int:
    """The offset a cursor points at; a cursor from another query is refused rather than misread."""
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset, digest = int(payload["o"]), str(payload["q"])
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ToolFailure(
            "The cursor is not one this server issued. Omit `cursor` to start from the first page."
        ) from exc
    if digest != query_digest(query) or offset < 0:
        raise ToolFailure(
            "The cursor belongs to a different query (the filters or sort changed). "
            "Repeat the call with the same filters as the call that returned the cursor, or omit `cursor`."
        )
    return offset


def page_within_budget(
    items: Sequence[T], offset: int, limit: int, query: dict[str, Any], measure: Callable[[T], int]
) -> tuple[list[T], str | None]:
    """Slice one page, stopping early when the page would outgrow the result budget and cutting long
    strings (tools/budget.py); returns the page and the next cursor."""
    from tools.budget import fit_budget  # budget.py builds on this module's cursors

    page = fit_budget(items[offset : offset + limit], offset, len(items), query, measure)
    return page.items, page.next_cursor


# Tableau's largest page (tableau-semantics §1.1).
MAX_PAGE_SIZE = 1000


def page_window(offset: int, limit: int, max_size: int = MAX_PAGE_SIZE) -> tuple[int, int, int]:
    """(page number, page size, items to skip) of one Tableau page holding items [offset, offset + limit).

    Tableau pages start at multiples of the page size, so a cursor left mid-page (the character budget
    cut a page short) would straddle two pages of size `limit`; a slightly larger page holds the whole
    window in one request. Falls back to size `limit` (two requests) when no page up to `max_size` does.
    """
    last = offset + limit - 1
    for size in range(limit, max_size + 1):
        if offset // size == last // size:
            return offset // size + 1, size, offset % size
    return offset // limit + 1, limit, offset % limit


def json_size(model: BaseModel) -> int:
    # The text mirror MCP clients show the model is indented JSON, nested two levels deep in the result.
    return len(model.model_dump_json(indent=2)) + model.model_dump_json(indent=2).count("\n") * 4


class KindShaped(BaseModel):
    """A result item whose fields depend on its `kind` (docs/CONVENTIONS.md, "Result shape").

    `APPLIES_TO` maps a field to the kinds it applies to; for any other kind the field is left out of
    the result rather than sent as null (`workbook` on a workbook). Unlisted fields apply to every kind
    and are always present, null meaning "not known" or "not yet".
    """

    APPLIES_TO: ClassVar[dict[str, frozenset[str]]] = {}

    @model_serializer(mode="wrap")
    def _omit_inapplicable(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        kind = getattr(self, "kind", None)
        return {k: v for k, v in data.items() if k not in self.APPLIES_TO or kind in self.APPLIES_TO[k]}


def require_name(query: str, what: str) -> str:
    """The name with surrounding spaces removed; an empty one is an error, never 'match everything'."""
    name = query.strip()
    if not name:
        raise ToolFailure(f"The {what} name is empty: give its name or id.")
    return name


def match_name(query: str, candidates: Sequence[T], keys: Callable[[T], Iterable[str]]) -> list[T]:
    """Candidates a key of which equals `query` exactly; failing that, equals it ignoring case."""
    exact = [c for c in candidates if any(k == query for k in keys(c) if k)]
    if exact:
        return exact
    wanted = query.lower()
    return [c for c in candidates if any(k.lower() == wanted for k in keys(c) if k)]


def ambiguity(query: str, matches: Sequence[T], what: str, describe: Callable[[T], str], hint: str) -> ToolFailure:
    listed = "; ".join(describe(c) for c in matches[:10])
    more = f" (and {len(matches) - 10} more)" if len(matches) > 10 else ""
    return ToolFailure(f"'{query}' matches {len(matches)} {what}s: {listed}{more}. {hint}")


def resolve_one(
    query: str,
    candidates: Sequence[T],
    *,
    what: str,
    keys: Callable[[T], Iterable[str]],
    describe: Callable[[T], str],
    hint: str,
) -> T:
    """Exactly one candidate whose id or a name key equals `query`: exact first, then ignoring case.

    Ambiguity lists every match with its id and location; no match suggests the closest names.
    """
    query = require_name(query, what)
    found = match_name(query, candidates, keys)
    if len(found) == 1:
        return found[0]
    if found:
        raise ambiguity(query, found, what, describe, hint)
    suggestions = closest(query, [k for c in candidates for k in keys(c) if k])
    suggestion_text = f" Closest matches: {', '.join(repr(s) for s in suggestions)}." if suggestions else ""
    raise ToolFailure(f"No {what} named '{query}' was found.{suggestion_text} {hint}".strip())


# -- content by name ---------------------------------------------------------------------------

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# Tableau's filter syntax has no escape for these, even URL-encoded (tableau-semantics §1.5).
UNFILTERABLE = re.compile(r"[,&\[\]:]+")
KIND_WORDS = {"workbook": "a workbook", "view": "a view", "datasource": "a data source", "flow": "a flow",
              "project": "a project"}
NAMED_KINDS = ("workbook", "datasource", "view", "flow", "project")


def is_uuid(text: str) -> bool:
    return re.match(UUID_PATTERN, text.strip()) is not None


def name_filter(name: str) -> tuple[str, str, str]:
    """A server-side name filter that always matches `name`: characters Tableau cannot filter on become
    `*` wildcards (one request, like any name), and the caller keeps only the exact matches."""
    return ("name", "eq", UNFILTERABLE.sub("*", name))


def case_variants(name: str) -> list[str]:
    """How a name is usually capitalised ('sales pipeline' → 'Sales Pipeline', 'SALES PIPELINE', ...)."""
    spellings = (name.lower(), name.upper(), name.title(), name.capitalize(), name.swapcase())
    return [v for v in dict.fromkeys(spellings) if v != name]


def _label(kind: str, record: Any, path: str | None) -> str:
    where = f"{path}/" if path and kind != "project" else ""
    inside = f"{record.workbook_name}/" if kind == "view" and getattr(record, "workbook_name", None) else ""
    return f"'{where}{inside}{record.name}' (id {record.id})"


def _separating_hint(kind: str, found: Sequence[tuple[Any, str | None]]) -> str:
    """Name the argument that tells the candidates apart."""
    workbooks = {getattr(r, "workbook_name", None) for r, _ in found}
    if kind == "view" and len(workbooks) == len(found):
        return "Pass `workbook` with the workbook's name, or the view's id."
    paths = {p for _, p in found}
    if kind != "project" and len(paths) == len(found):
        return "Pass `project` with the full project path shown, or the id."
    return "Pass the id: the names and project paths are the same."


async def resolve_content(
    ctx: Any, kind: str, target: str, project: str | None = None, workbook: str | None = None
) -> tuple[Any, str | None]:
    """One item of `kind` by id, or by name (exact, then ignoring case) within an optional project
    subtree and, for views, workbook. Returns (record, project path).

    A name costs one filtered listing whatever characters it holds; a name in the wrong case one
    more (the usual capitalisations in one `name:in` filter). Only a miss costs more: the listing of
    that kind for other case-insensitive matches and suggestions, and one filtered request per other
    kind to say where the name does exist.
    """
    target = require_name(target, kind)
    tree = await ctx.tableau.project_tree()
    if is_uuid(target):
        record = await ctx.tableau.get_content(kind, target)
        return record, tree.path_of(record.id if kind == "project" else record.project_id)

    def scoped(records: Iterable[Any]) -> list[tuple[Any, str | None]]:
        chosen = []
        for record in records:
            path = tree.path_of(record.id if kind == "project" else record.project_id)
            if not in_project(path, project):
                continue
            if workbook and (getattr(record, "workbook_name", None) or "").lower() != workbook.strip().lower():
                continue
            chosen.append((record, path))
        return chosen

    if kind == "project":
        by_path = tree.by_path(target) if "/" in target else None
        if by_path is not None:
            return await ctx.tableau.get_content("project", by_path.id), by_path.path
        candidates = scoped(await ctx.tableau.project_records())
    else:
        candidates = scoped(await ctx.tableau.list_content(kind, filters=[name_filter(target)]))
    found = [pair for pair in candidates if pair[0].name == target]
    if not found and kind != "project" and not UNFILTERABLE.search(target):
        # Tableau's name filter is case-sensitive: try the usual spellings in one request first.
        variants = case_variants(target)
        guesses = scoped(await ctx.tableau.list_content(kind, filters=[("name", "in", variants)]))
        found = match_name(target, guesses, lambda pair: (pair[0].name,))
    if not found:  # then the whole kind, ignoring case
        candidates = candidates if kind == "project" else scoped(await ctx.tableau.list_content(kind))
        found = match_name(target, candidates, lambda pair: (pair[0].name,))
    if len(found) == 1:
        return found[0]
    if found:
        raise ambiguity(target, found, kind, lambda pair: _label(kind, *pair), _separating_hint(kind, found))
    raise await _not_found(ctx, kind, target, project, workbook, [r.name for r, _ in candidates])


async def _not_found(
    ctx: Any, kind: str, target: str, project: str | None, workbook: str | None, names: list[str]
) -> ToolFailure:
    where = (f" in project '{project}'" if project else "") + (f" in workbook '{workbook}'" if workbook else "")
    others = [k for k in NAMED_KINDS if k != kind]

    async def exists_as(other: str) -> bool:
        if other == "project":
            records = await ctx.tableau.project_records()
        else:
            records = await ctx.tableau.list_content(other, filters=[name_filter(target)])
        return bool(match_name(target, records, lambda r: (r.name,)))

    found_as = await gather(*(partial(exists_as, other) for other in others))
    kinds = [other for other, hit in zip(others, found_as, strict=True) if hit]
    if kinds:
        uses = " or ".join(f"kind '{k}'" for k in kinds)
        what = " and ".join(KIND_WORDS[k] for k in kinds)
        return ToolFailure(f"No {kind} named '{target}'{where}, but '{target}' is {what}: use {uses}.")
    suggestions = closest(target, names)
    hint = f" Closest names: {', '.join(repr(s) for s in suggestions)}." if suggestions else ""
    return ToolFailure(f"No {kind} named '{target}'{where}.{hint} Use list_content to browse.")


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def days_ago(days: int, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(days=days)


def in_project(path: str | None, prefix: str | None) -> bool:
    """True when `path` is the project `prefix` or any of its sub-projects."""
    if prefix is None:
        return True
    if path is None:
        return False
    wanted = prefix.strip("/").lower()
    have = path.lower()
    return have == wanted or have.startswith(wanted + "/")


async def gather(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Await independent steps concurrently and return their results in order.

    The access layer's limits still bound the traffic to Tableau; this only stops independent
    listings from waiting for each other. A failure is raised as itself (a Tableau error first),
    not wrapped in an ExceptionGroup, so the pipeline maps it like any other error.
    """
    results: list[Any] = [None] * len(calls)

    async def run(index: int, call: Callable[[], Awaitable[Any]]) -> None:
        results[index] = await call()

    try:
        async with anyio.create_task_group() as tasks:
            for index, call in enumerate(calls):
                tasks.start_soon(run, index, call)
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return results
