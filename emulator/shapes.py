"""List pages rendered column by column, in XML or JSON, from one description of the item (`Shape`).

A `Shape` says which attributes an item shows (each with its getter and how its value is written)
and which child elements follow, for one `fields` list: a restrictive list (`fields=id,name,owner.id`)
names a few, the default shape has them all. It is worked out once per request; the page is then
rendered one attribute at a time over all its items, so each item costs only the values it shows,
mostly in C-level calls. The JSON is built directly (Tableau's mapping, `jsonout`: attribute values
as strings, a child element as an object), not parsed back from the XML.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import orjson

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

    def read(self, item: Any) -> Any:
        return getattr(item, self.get) if isinstance(self.get, str) else self.get(item)


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
        inner = "{}" * len(children)
        self._row = f"<{tag}" + "{}" * len(attrs) + (f">{inner}</{tag}>" if children else "/>")
        getters = [a.get for a in attrs] + [c.ref for c in children]
        self._fields = list(dict.fromkeys(g for g in getters if isinstance(g, str)))

    def xml(self, items: list[Any]) -> str:
        """The XML elements of `items`, concatenated."""
        if not items:
            return ""
        read = self._read(items)
        columns = [self._xml_column(a, read(a.get)) for a in self.attrs]
        columns += [self._xml_child(c, items, read) for c in self.children]
        return "".join(map(self._row.format, *columns))

    def json(self, items: list[Any]) -> orjson.Fragment:
        """The JSON array of `items` (Tableau's mapping of the XML above), already serialised: built as
        text, a page makes no objects for the cyclic collector to walk (a third of the cost as dicts)."""
        read = self._read(items)
        columns = [self._json_column(a, read(a.get)) for a in self.attrs]
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
