"""List pages rendered column by column, in XML or JSON, from one description of the item (`Shape`).

A `Shape` says which attributes an item shows (each with its getter and how its value is written)
and which child elements follow, for one `fields` list: a restrictive list (`fields=id,name,owner.id`)
names a few, the default shape has them all. It is worked out once per request; the page is then
rendered one attribute at a time over all its items, so each item costs only the values it shows,
mostly in C-level calls. The JSON is built directly (Tableau's mapping, `jsonout`: attribute values
as strings, a child element as an object), not parsed back from the XML.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .xmlout import NEEDS_ESCAPE, dt, esc

# How an attribute's value is written (the same in XML and JSON, except that XML escapes text).
TEXT, DATETIME, BOOL, INT = "text", "datetime", "bool", "int"


def _bool(value: bool) -> str:
    return "true" if value else "false"


_XML_WRITE: dict[str, Callable[[Any], str]] = {TEXT: esc, DATETIME: dt, BOOL: _bool, INT: str}
_JSON_WRITE: dict[str, Callable[[Any], str]] = {TEXT: str, DATETIME: dt, BOOL: _bool, INT: str}


@dataclass(frozen=True)
class Attr:
    """One XML attribute of an item: its name, how to read it (None: left out) and how it is written."""

    name: str
    get: Callable[[Any], Any]
    kind: str = TEXT


@dataclass(frozen=True)
class Child:
    """One child element: its name (the JSON key) and its two renderers, "" (XML) or None (JSON) for
    none; or, for a bare `<name id="..."/>` reference, just `ref`, the getter of that id."""

    name: str
    xml: Callable[[Any], str] | None = None
    json: Callable[[Any], Any] | None = None
    ref: Callable[[Any], str | None] | None = None


def pairs(item: Any, attrs: tuple[Attr, ...]) -> list[tuple[str, object]]:
    """Every attribute as (name, raw value): what `xmlout.attrs` and `jsonout.json_attrs` take."""
    return [(a.name, a.get(item)) for a in attrs]


def _escaped(values: list[Any]) -> list[Any]:
    """Text values escaped for XML; one scan of the whole column first, as most need nothing."""
    if NEEDS_ESCAPE.search("".join([v for v in values if v is not None])) is None:
        return values
    return [None if v is None else esc(v) for v in values]


def _written(values: list[Any], write: Callable[[Any], str]) -> list[Any]:
    if None in values:
        return [None if v is None else write(v) for v in values]
    return list(map(write, values))


class Shape:
    """How the items of one list page render for one `fields` list: the chosen attributes, in the
    order the XSD gives, then the children.

    A page is rendered column by column (each attribute read for every item, then written), so
    the per-item work is a handful of C-level calls rather than a Python call per value.
    """

    def __init__(self, tag: str, attrs: tuple[Attr, ...], children: list[Child]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.children = children
        inner = "{}" * len(children)
        self._row = f"<{tag}" + "{}" * len(attrs) + (f">{inner}</{tag}>" if children else "/>")

    def xml(self, items: list[Any]) -> str:
        """The XML elements of `items`, concatenated."""
        if not items:
            return ""
        columns = [self._xml_column(a, items) for a in self.attrs]
        columns += [self._xml_child(c, items) for c in self.children]
        return "".join(map(self._row.format, *columns))

    def json(self, items: list[Any]) -> list[dict[str, Any]]:
        """The JSON objects of `items` (Tableau's mapping of the XML above)."""
        names = [a.name for a in self.attrs] + [c.name for c in self.children]
        columns = [_written(list(map(a.get, items)), _JSON_WRITE[a.kind]) for a in self.attrs]
        columns += [self._json_child(c, items) for c in self.children]
        rows = [dict(zip(names, row)) for row in zip(*columns)]
        for name, column in zip(names, columns):
            if None in column:  # an attribute or child this item does not have: left out, as in the XML
                for row, value in zip(rows, column):
                    if value is None:
                        del row[name]
        return rows

    @staticmethod
    def _xml_column(attr: Attr, items: list[Any]) -> list[str]:
        values = list(map(attr.get, items))
        written = _escaped(values) if attr.kind == TEXT else _written(values, _XML_WRITE[attr.kind])
        head = f' {attr.name}="'
        if None in written:
            return ["" if v is None else f'{head}{v}"' for v in written]
        return [f'{head}{v}"' for v in written]

    @staticmethod
    def _xml_child(child: Child, items: list[Any]) -> list[str]:
        if child.ref is None:
            assert child.xml is not None
            return list(map(child.xml, items))
        head = f'<{child.name} id="'
        return ["" if v is None else f'{head}{v}"/>' for v in _escaped(list(map(child.ref, items)))]

    @staticmethod
    def _json_child(child: Child, items: list[Any]) -> list[Any]:
        if child.ref is None:
            assert child.json is not None
            return list(map(child.json, items))
        return [None if v is None else {"id": v} for v in map(child.ref, items)]
