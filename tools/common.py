"""Helpers every toolset shares: cursors, name resolution, time filters, output budgets, concurrency."""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio
from pydantic import BaseModel

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
    items: Sequence[T],
    offset: int,
    limit: int,
    query: dict[str, Any],
    measure: Callable[[T], int],
    budget: int = RESULT_CHAR_BUDGET,
) -> tuple[list[T], str | None]:
    """Slice one page, stopping early when the page would outgrow the budget; returns the next cursor."""
    page: list[T] = []
    used = 0
    for item in items[offset : offset + limit]:
        size = measure(item)
        if page and used + size > budget:
            break
        page.append(item)
        used += size
    end = offset + len(page)
    return page, (encode_cursor(end, query) if end < len(items) else None)


def json_size(model: BaseModel) -> int:
    # The text mirror MCP clients show the model is indented JSON, nested two levels deep in the result.
    return len(model.model_dump_json(indent=2)) + model.model_dump_json(indent=2).count("\n") * 4


def closest(query: str, names: Iterable[str], n: int = 5) -> list[str]:
    names = list(dict.fromkeys(names))
    lowered = {name.lower(): name for name in names}
    matches = difflib.get_close_matches(query.lower(), list(lowered), n=n, cutoff=0.5)
    contains = [name for name in names if query.lower() in name.lower() and name.lower() not in matches]
    return [lowered[m] for m in matches] + contains[: max(0, n - len(matches))]


def resolve_one(
    query: str,
    candidates: Sequence[T],
    *,
    what: str,
    keys: Callable[[T], Iterable[str]],
    describe: Callable[[T], str],
    hint: str,
) -> T:
    """Find exactly one candidate whose id or any name key equals `query` (case-insensitive).

    Ambiguity lists every match with its id and location; no match suggests the closest names.
    """
    wanted = query.strip().lower()
    exact = [c for c in candidates if any(k.lower() == wanted for k in keys(c) if k)]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        listed = "; ".join(describe(c) for c in exact[:10])
        more = f" (and {len(exact) - 10} more)" if len(exact) > 10 else ""
        raise ToolFailure(f"'{query}' matches {len(exact)} {what}s: {listed}{more}. {hint}")
    suggestions = closest(query, [k for c in candidates for k in keys(c) if k])
    suggestion_text = f" Closest matches: {', '.join(repr(s) for s in suggestions)}." if suggestions else ""
    raise ToolFailure(f"No {what} named '{query}' was found.{suggestion_text} {hint}".strip())


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
