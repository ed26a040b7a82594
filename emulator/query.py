"""The query machinery every paged list endpoint shares: paging, filter, sort and `fields`.

Grammar (Tableau "Filtering and Sorting", "Using Fields"; TSC 0.42 encodings in tsc-wire §1.1):
  filter=field:op:value[,field:op:value]...   ops eq gt gte lt lte in has cieq; `in` takes [a,b]
  sort=field:asc|desc[,field:asc|desc]...
  fields=_all_ | _default_,owner.name,project.name | id,name (restrictive)
Filters are ANDed and evaluated in one pass over the collection (O(n)); `totalAvailable` counts
the filtered items. Like Tableau, each filter value is URL-decoded once more after the query string
itself was decoded (and after splitting on `,` and `:`): a value sent percent-encoded with
`quote_plus` matches names with spaces and parentheses, and a literal `+` reads as a space
(tableau/server-client-python#418).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from . import model
from .errors import ApiError, bad_request

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

CMP = frozenset({"eq", "gt", "gte", "lt", "lte"})
EQ_IN = frozenset({"eq", "in"})
EQ = frozenset({"eq"})
NAME_OPS = frozenset({"eq", "in", "cieq"})
HAS = frozenset({"eq", "has"})


@dataclass(frozen=True)
class FieldDef:
    """One filterable/sortable field of a resource: how to read it and which operators it takes."""

    getter: Callable[[Any], Any]
    kind: str = "str"  # str | int | datetime | bool | tags
    ops: frozenset[str] = EQ_IN
    # The getter reads a set or list that changes in place (`len(wb.view_ids)`), which no change
    # stamp sees (`model.stamp`): orders sorted by such a field are never reused. Tags always are.
    volatile: bool = False


FieldTable = Mapping[str, FieldDef]


def first(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The first value of a query parameter (TSC sometimes repeats one, e.g. publishSamples)."""
    values = query.get(name)
    return values[0] if values else None


def flag(query: Mapping[str, Sequence[str]], name: str) -> bool:
    value = first(query, name)
    return value is not None and value.strip().lower() == "true"


# ---------------------------------------------------------------------------------------------------
# paging


@dataclass(frozen=True)
class Paging:
    number: int = 1
    size: int = DEFAULT_PAGE_SIZE

    @classmethod
    def parse(cls, query: Mapping[str, Sequence[str]]) -> Paging:
        number = _positive_int(first(query, "pageNumber"), "pageNumber", default=1)
        size = _positive_int(first(query, "pageSize"), "pageSize", default=DEFAULT_PAGE_SIZE)
        if size > MAX_PAGE_SIZE:
            # Tableau rejects oversize pages instead of capping them (tsc-wire §1.1: 403, 403014).
            raise ApiError(
                403,
                "403014",
                "Page Size Limit Exceeded",
                f"The page size '{size}' exceeds the maximum of {MAX_PAGE_SIZE}.",
            )
        return cls(number, size)

    def window(self, total: int) -> tuple[int, int]:
        start = (self.number - 1) * self.size
        if self.number > 1 and start >= total:
            # TSC's QuerySet relies on this code to stop iterating.
            raise bad_request(
                "400006",
                f"Page number '{self.number}' is out of range for {total} items.",
                summary="Invalid page number",
            )
        return start, min(start + self.size, total)


def _positive_int(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        code = "400006" if name == "pageNumber" else "400007"
        raise bad_request(code, f"The value '{raw}' for {name} is not a positive integer.")
    return value


# ---------------------------------------------------------------------------------------------------
# filter and sort


@dataclass(frozen=True)
class Clause:
    field: str
    op: str
    value: Any  # converted to the field's kind; a tuple for `in`
    fdef: FieldDef


def split_outside_brackets(expression: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in expression:
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in (part.strip() for part in parts) if p]


def _convert(raw: str, kind: str, field_name: str) -> Any:
    raw = raw.strip()
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise bad_request("400000", f"'{raw}' is not a valid number for field '{field_name}'.") from None
    if kind == "datetime":
        return parse_datetime(raw, field_name)
    if kind == "bool":
        lowered = raw.lower()
        if lowered not in ("true", "false"):
            raise bad_request("400000", f"'{raw}' is not a valid boolean for field '{field_name}'.")
        return lowered == "true"
    return raw


def parse_datetime(raw: str, field_name: str = "") -> datetime:
    try:
        value = datetime.fromisoformat(raw)  # 3.11 accepts the trailing Z
    except ValueError:
        raise bad_request("400000", f"'{raw}' is not a valid datetime for field '{field_name}'.") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def parse_filter(expression: str | None, table: FieldTable) -> list[Clause]:
    if not expression:
        return []
    clauses = []
    for part in split_outside_brackets(expression):
        pieces = part.split(":", 2)  # the value may itself hold colons (datetimes)
        if len(pieces) != 3:
            raise bad_request(
                "400000",
                f"Filter expression '{part}' is not of the form field:operator:value.",
                summary="Invalid filter",
            )
        name, op, raw = pieces[0].strip(), pieces[1].strip(), pieces[2]
        fdef = table.get(name)
        if fdef is None:
            raise bad_request(
                "400000",
                f"The filter field '{name}' is not supported for this resource.",
                summary="Invalid filter",
            )
        if op not in fdef.ops:
            raise bad_request(
                "400000",
                f"The operator '{op}' is not supported for field '{name}'.",
                summary="Invalid filter",
            )
        if op == "in":
            raw = raw.strip()
            if not (raw.startswith("[") and raw.endswith("]")):
                raise bad_request(
                    "400000",
                    f"The value for 'in' must be a bracketed list: '{raw}'.",
                    summary="Invalid filter",
                )
            kind = "str" if fdef.kind == "tags" else fdef.kind
            value: Any = tuple(
                _convert(unquote_plus(v), kind, name) for v in raw[1:-1].split(",") if v.strip()
            )
        else:
            value = _convert(unquote_plus(raw), "str" if fdef.kind == "tags" else fdef.kind, name)
        clauses.append(Clause(name, op, value, fdef))
    return clauses


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$", re.DOTALL)


def _predicate(clause: Clause) -> Callable[[Any], bool]:
    getter, op, value, kind = clause.fdef.getter, clause.op, clause.value, clause.fdef.kind
    if kind == "tags":
        if op == "in":
            wanted = set(value)
            return lambda item: bool(wanted & set(getter(item)))
        return lambda item: value in getter(item)
    if op == "in":
        options = set(value)
        return lambda item: getter(item) in options
    if op == "cieq":
        lowered = value.lower()
        return lambda item: (getter(item) or "").lower() == lowered
    if op == "has":
        lowered = value.lower()
        return lambda item: lowered in (getter(item) or "").lower()
    if op == "eq":
        if kind == "str" and "*" in value:
            pattern = _wildcard(value)
            return lambda item: pattern.match(getter(item) or "") is not None
        return lambda item: getter(item) == value
    compare = {
        "gt": lambda a: a > value,
        "gte": lambda a: a >= value,
        "lt": lambda a: a < value,
        "lte": lambda a: a <= value,
    }[op]

    def check(item: Any) -> bool:
        current = getter(item)
        return current is not None and compare(current)

    return check


def parse_sort(expression: str | None, table: FieldTable) -> list[tuple[FieldDef, bool]]:
    if not expression:
        return []
    keys = []
    for part in split_outside_brackets(expression):
        name, _, direction = part.partition(":")
        fdef = table.get(name.strip())
        direction = (direction or "asc").strip().lower()
        if fdef is None or direction not in ("asc", "desc"):
            raise bad_request(
                "400000",
                f"Sort expression '{part}' is not supported for this resource.",
                summary="Invalid sort",
            )
        keys.append((fdef, direction == "desc"))
    return keys


def _sort_key(fdef: FieldDef) -> Callable[[Any], tuple]:
    getter = fdef.getter

    def key(item: Any) -> tuple:
        value = getter(item)
        if value is None:
            return (0, "")
        if isinstance(value, str):
            return (1, value.casefold())
        if isinstance(value, (set, frozenset, list)):
            return (1, ",".join(sorted(value)))
        return (1, value)

    return key


def select(
    items: Iterable[Any], query: Mapping[str, Sequence[str]], table: FieldTable
) -> tuple[list[Any], Paging, int]:
    """Filter, sort and page `items` per the query; returns (page items, paging, filtered total)."""
    paging = Paging.parse(query)
    predicates = [_predicate(c) for c in parse_filter(first(query, "filter"), table)]
    sort_keys = parse_sort(first(query, "sort"), table)
    if predicates:
        matched = [item for item in items if all(p(item) for p in predicates)]
    else:
        matched = items if isinstance(items, list) else list(items)  # callers pass a list built for the call
    cache_key = (first(query, "sort") or "", first(query, "filter") or "")
    matched = _sorted(matched, sort_keys, cache_key)
    start, end = paging.window(len(matched))
    return matched[start:end], paging, len(matched)


# Sorting 20,000 workbooks by `createdAt,name` costs ~50 ms, paid again for every page a client
# asks for. The last orders are kept and reused only while nothing a sort field can read has
# changed since (`model.stamp`: O(1)) and the same items, in the same dict order, are listed: the
# same collection's `Listing` (its inserts and deletes are stamped), or else the same objects (one
# C-level identity test per item; visibility differs per user). Sorts by a `volatile` field are
# never cached.
_SORT_CACHE: dict[tuple[str, str, int], tuple[Hashable, list[Any], list[Any]]] = {}
_SORT_CACHE_SIZE = 16


def _sorted(items: list[Any], sort_keys: list[tuple[FieldDef, bool]], expression: tuple[str, str]) -> list[Any]:
    if not sort_keys:
        return items
    if len(items) < 1000 or any(fdef.volatile or fdef.kind == "tags" for fdef, _ in sort_keys):
        return _sort(items, sort_keys)
    stamp = model.stamp(type(items[0]))  # read before sorting: a change during the sort voids the entry
    key = (*expression, len(items))
    cached = _SORT_CACHE.get(key)
    if cached is not None and cached[0] == stamp and _same_items(cached[1], items):
        return cached[2]  # callers only slice it
    ordered = _sort(items, sort_keys)
    if len(_SORT_CACHE) >= _SORT_CACHE_SIZE:
        _SORT_CACHE.pop(next(iter(_SORT_CACHE)))
    _SORT_CACHE[key] = (stamp, items, ordered)
    return ordered


def _same_items(old: list[Any], new: list[Any]) -> bool:
    source = getattr(new, "source", None)
    if source is not None and getattr(old, "source", None) is source:
        return True  # listings of one collection at one stamp
    return all(map(operator.is_, old, new))


def _sort(items: list[Any], sort_keys: list[tuple[FieldDef, bool]]) -> list[Any]:
    # Stable sorts applied last key first give a multi-key order with per-key direction. Positions
    # are sorted by a precomputed column of keys: `list.__getitem__` as the key is a C call.
    order = list(range(len(items)))
    for fdef, descending in reversed(sort_keys):
        order.sort(key=_key_column(fdef, items).__getitem__, reverse=descending)
    return list(map(items.__getitem__, order))


def _key_column(fdef: FieldDef, items: list[Any]) -> list[Any]:
    """Each item's sort key: what `_sort_key` gives, or for a column of one plain type without
    None (the usual case), the values themselves (case-folded strings): the same order, cheaper."""
    values = list(map(fdef.getter, items))
    if values and None not in values:
        kind = type(values[0])
        if all(type(v) is kind for v in values):
            if kind is str:
                return list(map(str.casefold, values))
            if kind in (int, datetime):
                return values
    return list(map(_sort_key(fdef), items))


# ---------------------------------------------------------------------------------------------------
# fields


@dataclass
class Fields:
    """Which attributes and child elements to render.

    `restrictive` is set when the caller listed plain attribute names without `_default_`/`_all_`
    (`only_fields`). Tokens that name nothing the resource has are ignored, because TSC 0.42's
    `QuerySet.fields()` sends `_,a,d,e,f,l,t,u,...` (tsc-wire §1.1); such a request therefore gets the
    default shape plus whatever expansions it named.
    """

    all: bool = False
    restrictive: bool = False
    top: set[str] = field(default_factory=set)
    expansions: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, query: Mapping[str, Sequence[str]], known: Iterable[str] = ()) -> Fields:
        tokens: list[str] = []
        for raw in query.get("fields", ()):
            tokens.extend(t.strip() for t in raw.split(",") if t.strip())
        result = cls()
        known_set = set(known)
        has_default = "_default_" in tokens
        for token in tokens:
            if token == "_all_":
                result.all = True
            elif "." in token:
                prefix, _, attr = token.partition(".")
                result.expansions.setdefault(prefix, set()).add(attr)
            elif token in known_set:
                result.top.add(token)
        result.restrictive = bool(result.top) and not has_default and not result.all
        return result

    def wants(self, attr: str) -> bool:
        return not self.restrictive or attr in self.top

    def expansion(self, prefix: str) -> set[str]:
        return self.expansions.get(prefix, set())
