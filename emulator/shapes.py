"""List pages rendered column by column, in XML or JSON, from one description of the item (`Shape`).

A `Shape` says which attributes an item shows (each with its getter and how its value is written)
and which child elements follow, for one `fields` list: a restrictive list (`fields=id,name,owner.id`)
names a few, the default shape has them all. It is worked out once per request; the page is then
rendered one attribute at a time over all its items, so each item costs only the values it shows,
mostly in C-level calls. The JSON is built directly (Tableau's mapping, `jsonout`: attribute values
as strings, a child element as an object), not parsed back from the XML.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import orjson

from .model import stamp
from .xmlout import dt, esc

# How an attribute's value is written (the same in XML and JSON, except that XML escapes text).
TEXT, DATETIME, BOOL, INT = "text", "datetime", "bool", "int"


def _bool(value: bool) -> str:
    return "true" if value else "false"


_XML_WRITE: dict[str, Callable[[Any], str]] = {TEXT: esc, DATETIME: dt, BOOL: _bool, INT: str}
_JSON_WRITE: dict[str, Callable[[Any], str]] = {TEXT: str, DATETIME: dt, BOOL: _bool, INT: str}
# What XML attribute values (`xmlout.esc`) and JSON strings must escape, besides control characters.
_XML_SPECIAL = '&<>"'
_JSON_SPECIAL = '"\\'


@dataclass(frozen=True)
class Attr:
    """One XML attribute of an item: its name, how to read it (a field name, or a function of the item;
    None: left out) and how it is written."""

    name: str
    get: str | Callable[[Any], Any]
    kind: str = TEXT
    blank_is_none: bool = False  # an empty value is left out, like None (a user without an email)
    # A getter that reads only the item's own plain fields (or none), so the change stamp sees every
    # change to its value: a page showing it can be kept like one of plain fields.
    plain_getter: bool = False

    def read(self, item: Any) -> Any:
        value = getattr(item, self.get) if isinstance(self.get, str) else self.get(item)
        return (value or None) if self.blank_is_none else value

    def column(self, read: Callable[[Any], Sequence[Any]]) -> Sequence[Any]:
        values = read(self.get)
        return [v or None for v in values] if self.blank_is_none else values


@dataclass(frozen=True)
class Child:
    """One child element: its name (the JSON key) and its two renderers, "" (XML) or None (JSON) for
    none; or, for a bare `<name id="..."/>` reference, just `ref`: that id's field name or getter; or,
    for one the same in every item, `fixed`: its XML and its JSON text."""

    name: str
    xml: Callable[[Any], str] | None = None
    json: Callable[[Any], Any] | None = None
    ref: str | Callable[[Any], str | None] | None = None
    fixed: tuple[str, str] | None = None
    # For renderers that read only plain fields of model objects (an owner's name and email), which the
    # change stamp sees: what they show, so a page with this child can be kept. None: never kept.
    key: Hashable | None = None


def pairs(item: Any, attrs: tuple[Attr, ...]) -> list[tuple[str, object]]:
    """Every attribute as (name, raw value): what `xmlout.attrs` and `jsonout.json_attrs` take."""
    return [(a.name, a.read(item)) for a in attrs]


def _any_of(characters: str, values: Sequence[str | None]) -> bool:
    """Whether any value may need escaping: holds one of `characters` or a control character (or
    another unprintable one: a false alarm only costs the slow path). C-level scans of the column."""
    joined = "".join([v for v in values if v is not None])
    return not joined.isprintable() or any(c in joined for c in characters)


def _escaped(values: Sequence[Any]) -> Sequence[Any]:
    """Text values escaped for XML; one scan of the whole column first, as most need nothing."""
    if not _any_of(_XML_SPECIAL, values):
        return values
    return [None if v is None else esc(v) for v in values]


def _written(values: Sequence[Any], write: Callable[[Any], str]) -> Sequence[Any]:
    if None in values:
        return [None if v is None else write(v) for v in values]
    return list(map(write, values))


def _json_members(before: str, values: Sequence[str | None], after: str = "", plain: bool = False) -> list[str]:
    """`before` + the JSON string literal + `after` per value ("" for None); `plain`: values this
    module wrote (dates, numbers, booleans), which never need escaping; else one scan of the whole
    column first, as most values need none."""
    if plain or not _any_of(_JSON_SPECIAL, values):
        return ["" if v is None else f'{before}"{v}"{after}' for v in values]
    return ["" if v is None else before + orjson.dumps(v).decode() + after for v in values]


# Rendered pages by (shape, format, stamp, size, first item), with the items they were rendered from.
_PAGES: dict[tuple[Any, ...], tuple[list[Any], Any]] = {}
_PAGES_MAX = 96  # 20,000 workbooks are 20 pages a format; at most ~600 KB each


def _stamp_of(item: Any) -> Hashable:
    return stamp(type(item))


class Shape:
    """How the items of one list page render for one `fields` list: the chosen attributes, in the
    order the XSD gives, then the children.

    A page is rendered column by column: the fields are read with one C-level call per item (so
    each item is visited once: scattered in memory, items cost more to reach than to read), then
    each attribute is written for every item, so the per-item work is a handful of C-level calls
    rather than a Python call per value.
    """

    def __init__(self, tag: str, attrs: tuple[Attr, ...], children: list[Child]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.children = children
        # A page is kept (`_kept`) only when everything it shows is a plain field, an id reference, a value
        # worked out from the item's own plain fields or a keyed child (plain fields of other model objects):
        # what the model's change stamp (one for the whole site) sees. Other computed values (URLs, lengths
        # of lists changed in place, tags) are never kept.
        self._keepable = all(isinstance(a.get, str) or a.plain_getter for a in attrs) and all(
            isinstance(c.ref, str) or c.fixed is not None or c.key is not None for c in children
        )
        # A plain getter is named by its attribute (a Renderer, and its getters, is made per request).
        self._signature = (tag, tuple((a.name, a.get if isinstance(a.get, str) else a.plain_getter, a.kind)
                                      for a in attrs),
                           tuple((c.name, c.ref, c.fixed, c.key) for c in children))
        inner = "{}" * len(children)
        self._row = f"<{tag}" + "{}" * len(attrs) + (f">{inner}</{tag}>" if children else "/>")
        getters = [a.get for a in attrs] + [c.ref for c in children]
        self._fields = list(dict.fromkeys(g for g in getters if isinstance(g, str)))

    def xml(self, items: list[Any]) -> str:
        """The XML elements of `items`, concatenated."""
        if not items:
            return ""
        return self._kept("xml", items, self._xml)

    def json(self, items: list[Any]) -> orjson.Fragment:
        """The JSON array of `items` (Tableau's mapping of the XML above), already serialised."""
        return self._kept("json", items, self._json)

    def _kept(self, form: str, items: list[Any], render: Callable[[list[Any]], Any]) -> Any:
        """The page rendered, or as rendered before for the same items (the same objects, in the same
        order) while the model's change stamp has not moved: a benchmark or a pager asks for the same
        pages again and again. The check is C-level (`map(is_)`), a fraction of rendering."""
        if not self._keepable or not items:
            return render(items)
        key = (self._signature, form, _stamp_of(items[0]), len(items), id(items[0]))
        found = _PAGES.get(key)
        if found is not None and all(map(operator.is_, found[0], items)):
            return found[1]
        rendered = render(items)
        if len(_PAGES) >= _PAGES_MAX:
            _PAGES.clear()
        _PAGES[key] = (list(items), rendered)
        return rendered

    def _xml(self, items: list[Any]) -> str:
        read = self._read(items)
        columns = [self._xml_column(a, a.column(read)) for a in self.attrs]
        columns += [self._xml_child(c, items, read) for c in self.children]
        return "".join(map(self._row.format, *columns))

    def _json(self, items: list[Any]) -> orjson.Fragment:
        """Built as text, a page makes no objects for the cyclic collector to walk (a third of the cost
        as dicts)."""
        read = self._read(items)
        columns = [self._json_column(a, a.column(read)) for a in self.attrs]
        columns += [self._json_child(c, items, read) for c in self.children]
        # A missing attribute or child is "" in its column, and `filter` leaves it out, as in the XML.
        rows = ["{" + ",".join(filter(None, row)) + "}" for row in zip(*columns)]
        return orjson.Fragment(("[" + ",".join(rows) + "]").encode())

    def _read(self, items: list[Any]) -> Callable[[Any], Sequence[Any]]:
        """A reader of one column of `items`, by field name (read for all fields at once) or getter."""
        fields: dict[str, Sequence[Any]] = {}
        if len(self._fields) == 1:
            fields[self._fields[0]] = list(map(attrgetter(self._fields[0]), items))
        elif self._fields:
            fields = dict(zip(self._fields, zip(*map(attrgetter(*self._fields), items))))

        def column(get: Any) -> Sequence[Any]:
            return fields[get] if isinstance(get, str) else list(map(get, items))

        return column

    @staticmethod
    def _xml_column(attr: Attr, values: Sequence[Any]) -> list[str]:
        written = _escaped(values) if attr.kind == TEXT else _written(values, _XML_WRITE[attr.kind])
        head = f' {attr.name}="'
        if None in written:
            return ["" if v is None else f'{head}{v}"' for v in written]
        return [f'{head}{v}"' for v in written]

    @staticmethod
    def _xml_child(child: Child, items: list[Any], read: Callable[[Any], Sequence[Any]]) -> Sequence[str]:
        if child.fixed is not None:
            return [child.fixed[0]] * len(items)
        if child.ref is None:
            assert child.xml is not None
            return list(map(child.xml, items))
        head = f'<{child.name} id="'
        return ["" if v is None else f'{head}{v}"/>' for v in _escaped(read(child.ref))]

    @staticmethod
    def _json_column(attr: Attr, values: Sequence[Any]) -> list[str]:
        if attr.kind == TEXT:  # already strings
            return _json_members(f'"{attr.name}":', values)
        return _json_members(f'"{attr.name}":', _written(values, _JSON_WRITE[attr.kind]), plain=True)

    @staticmethod
    def _json_child(child: Child, items: list[Any], read: Callable[[Any], Sequence[Any]]) -> list[str]:
        head = f'"{child.name}":'
        if child.fixed is not None:
            return [head + child.fixed[1]] * len(items)
        if child.ref is None:
            assert child.json is not None
            return ["" if v is None else head + orjson.dumps(v).decode() for v in map(child.json, items)]
        return _json_members(head + '{"id":', read(child.ref), "}")
