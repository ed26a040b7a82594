"""The output budget every tool shares: long strings cut with a marker, pages cut to a character budget.

A tool result must fit an assistant's context whatever the site holds, so two things are bounded:
- every string longer than `MAX_STRING_CHARS` (a 100 KB name, a huge job note) is cut, with a marker
  saying how much was cut, in every tool's result (`clip_strings`, applied by the registry), so one
  item cannot break the budget;
- a page keeps the leading items that fit `RESULT_CHAR_BUDGET` characters; the rest of the requested
  `limit` is left for the next page, and the page says how many were cut (`BudgetPage.cut`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from server.toolkit import ToolSpec
from tools.common import RESULT_CHAR_BUDGET, encode_cursor

T = TypeVar("T")

MAX_STRING_CHARS = 1_000
CLIP_TEXT = f"Text longer than {MAX_STRING_CHARS:,} characters is cut, marked '… [N more characters cut]'."
PAGE_TEXT = (
    f"Each result stays under about {RESULT_CHAR_BUDGET:,} characters, so a page may hold fewer than `limit` "
    f"items; `next_cursor` continues. {CLIP_TEXT}"
)
BUDGET_TEXT = (
    f"Each result stays under about {RESULT_CHAR_BUDGET:,} characters: when `limit` items do not fit, the page is "
    f"shorter, `budget_cut` says how many were left for the next page, and `next_cursor` continues. {CLIP_TEXT}"
)


MARKER_ROOM = 40  # a cut string (limit + marker) is never cut again, so clipping twice changes nothing


def clip_text(text: str, limit: int = MAX_STRING_CHARS) -> str:
    if len(text) <= limit + MARKER_ROOM:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters cut]"


def clip_strings(value: T) -> T:
    """`value` with every string longer than MAX_STRING_CHARS cut, inside models, lists and dicts.

    Unchanged parts are returned as they are (no copy), so clipping a result without long strings
    costs one walk over it.
    """
    if isinstance(value, str):
        return clip_text(value)  # type: ignore[return-value]
    if isinstance(value, BaseModel):
        changes = {}
        for name in type(value).model_fields:
            current = getattr(value, name)
            clipped = clip_strings(current)
            if clipped is not current:
                changes[name] = clipped
        return value.model_copy(update=changes) if changes else value
    if isinstance(value, (list, tuple)):
        items = [clip_strings(item) for item in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return type(value)(items)  # type: ignore[return-value]
    if isinstance(value, dict):
        entries = {key: clip_strings(item) for key, item in value.items()}
        if all(entries[key] is item for key, item in value.items()):
            return value
        return entries  # type: ignore[return-value]
    return value


def with_clipped_output(spec: ToolSpec) -> ToolSpec:
    """The same tool, whose result has its long strings cut (the registry applies this to every tool),
    and whose description says so, with the page budget when the tool reports `budget_cut`."""
    run = spec.run

    async def clipped(ctx: Any, args: Any) -> BaseModel:
        return clip_strings(await run(ctx, args))

    description = spec.description
    if CLIP_TEXT not in description:
        fields = spec.output_model.model_fields
        if "budget_cut" in fields:
            note = BUDGET_TEXT
        elif "next_cursor" in fields:
            note = PAGE_TEXT
        else:
            note = CLIP_TEXT
        description = f"{description.rstrip()}\n{note}"
    return dataclasses.replace(spec, run=clipped, description=description)


@dataclass(frozen=True)
class BudgetPage(Generic[T]):
    items: list[T]
    next_cursor: str | None
    cut: int  # items of the requested window that the character budget left for the next page

    def note(self, budget: int = RESULT_CHAR_BUDGET) -> str | None:
        if not self.cut:
            return None
        return (
            f"{self.cut} more of the requested items did not fit the {budget:,}-character result budget; "
            "they start the next page (pass next_cursor)."
        )


def fit_budget(
    window: Sequence[T],
    offset: int,
    total: int,
    query: dict[str, Any],
    measure: Callable[[T], int],
    budget: int = RESULT_CHAR_BUDGET,
) -> BudgetPage[T]:
    """The leading items of one page's `window` (which starts at `offset` of `total`) that fit `budget`.

    Items are clipped first (a huge string costs its marker, not its length), and the first item is
    always kept so a page never comes back empty while items remain.
    """
    page: list[T] = []
    used = 0
    for item in window:
        item = clip_strings(item)
        size = measure(item)
        if page and used + size > budget:
            break
        page.append(item)
        used += size
    end = offset + len(page)
    return BudgetPage(page, encode_cursor(end, query) if end < total else None, len(window) - len(page))
