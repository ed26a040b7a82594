"""Tableau's JSON: the XML response mapped the way Tableau maps it, and JSON request bodies read as XML.

Tableau answers `Accept: application/json` with the same document as its XML, mapped mechanically:
the `tsResponse` wrapper is dropped; an element becomes an object; its attributes become keys with
string values (numbers and booleans included); a child element becomes a key holding an object,
and a child the schema lets repeat (`workbook` in `workbooks`, `granteeCapabilities` in
`permissions`) becomes an array under the child's name even when there is only one; an empty
element becomes `{}`; an element with text only becomes that string (`"restApiVersion": "3.24"`),
and one with text and attributes puts the text under `value` (`productVersion`).

Which children repeat is read from the 3.29 XSD the emulator validates against, so the arrays are
exactly the ones Tableau's own (schema-generated) JSON has. List pages render JSON natively
(`shapes.py`); every other answer goes through `xml_to_json`, and tests compare the two.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from typing import Any
from xml.etree import ElementTree

import orjson

from .errors import bad_request
from .validation import SCHEMA_PATH
from .xmlout import dt

_XS = "{http://www.w3.org/2001/XMLSchema}"
JSON_CONTENT_TYPE = b"application/json;charset=utf-8"


# -- which children repeat (from the XSD) -----------------------------------------------------------


@cache
def repeated_children() -> frozenset[tuple[str, str]]:
    """(parent element name, child element name) pairs whose child may occur more than once."""
    root = ElementTree.parse(SCHEMA_PATH).getroot()
    types = {t.get("name"): t for t in root.iter(f"{_XS}complexType") if t.get("name")}
    repeated_by_type: dict[int, set[str]] = {}

    def repeated_in(complex_type: ElementTree.Element) -> set[str]:
        key = id(complex_type)
        if key not in repeated_by_type:
            repeated_by_type[key] = set()  # guards recursive types
            repeated_by_type[key] = _repeated(complex_type, types, repeated_in)
        return repeated_by_type[key]

    pairs: set[tuple[str, str]] = set()
    for element in root.iter(f"{_XS}element"):
        name = element.get("name")
        if not name:
            continue
        complex_type = element.find(f"{_XS}complexType")
        if complex_type is None:
            complex_type = types.get((element.get("type") or "").removeprefix("ts:"))
        if complex_type is not None:
            pairs.update((name, child) for child in repeated_in(complex_type))
    return frozenset(pairs)


def _repeated(complex_type: ElementTree.Element, types: dict, repeated_in: Any) -> set[str]:
    found: set[str] = set()

    def walk(node: ElementTree.Element, many: bool) -> None:
        for child in node:
            tag = child.tag
            child_many = many or child.get("maxOccurs", "1") not in ("0", "1")
            if tag == f"{_XS}element" and child.get("name"):
                if child_many:
                    found.add(child.get("name"))
            elif tag in (f"{_XS}sequence", f"{_XS}choice", f"{_XS}all"):
                walk(child, child_many)
            elif tag in (f"{_XS}complexContent", f"{_XS}simpleContent"):
                walk(child, many)
            elif tag == f"{_XS}extension":
                base = types.get((child.get("base") or "").removeprefix("ts:"))
                if base is not None:
                    found.update(repeated_in(base))
                walk(child, many)

    walk(complex_type, False)
    return found


# -- XML → JSON --------------------------------------------------------------------------------------


def element_to_json(element: ElementTree.Element, repeated: frozenset[tuple[str, str]]) -> Any:
    text = (element.text or "").strip()
    if len(element) == 0 and text:
        if not element.attrib:
            return element.text
        return {**element.attrib, "value": element.text}
    node: dict[str, Any] = dict(element.attrib)
    parent = element.tag
    for child in element:
        name = child.tag
        value = element_to_json(child, repeated)
        if (parent, name) in repeated:
            node.setdefault(name, []).append(value)
        elif name in node:  # a repeat the schema did not predict: keep every one
            previous = node[name]
            node[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            node[name] = value
    return node


def xml_to_json(body: str) -> dict[str, Any]:
    """The JSON object for the inside of a `<tsResponse>` (the handlers' `Reply.body`)."""
    root = ElementTree.fromstring(f"<tsResponse>{body}</tsResponse>")
    return element_to_json(root, repeated_children())


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def error_json(code: str, summary: str, detail: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "summary": summary, "detail": detail}})


# -- JSON requests → the element tree the handlers read -----------------------------------------------


def json_to_element(body: bytes) -> ElementTree.Element:
    """A JSON request body (`{"credentials": {...}}`) as the `<tsRequest>` element its XML form parses to.

    Objects become elements, scalars attributes (booleans as `true`/`false`), arrays repeated
    elements; `value` on an object with other keys is its text.
    """
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise bad_request("400000", f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise bad_request("400000", "The request body must be a JSON object, e.g. {\"project\": {...}}.")
    if set(data) == {"tsRequest"} and isinstance(data["tsRequest"], dict):
        data = data["tsRequest"]
    root = ElementTree.Element("tsRequest")
    _fill(root, data)
    return root


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _fill(element: ElementTree.Element, data: Any) -> None:
    if not isinstance(data, dict):
        element.text = _scalar(data)
        return
    for key, value in data.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, (dict, list)):
                _fill(ElementTree.SubElement(element, key), item)
            elif key == "value" and element.tag != "tsRequest":
                element.text = _scalar(item)
            elif isinstance(value, list):  # an array of strings: repeated text elements
                ElementTree.SubElement(element, key).text = _scalar(item)
            else:
                element.set(key, _scalar(item))


# -- checking a JSON answer against its XML (tests) ----------------------------------------------------


def mismatch(xml_body: str, answer: Any) -> str | None:
    """Why `answer` does not carry the same data as the XML `xml_body` in Tableau's mapping; None if it does.

    Written independently of `element_to_json`, so it also checks the native JSON renderers.
    """
    root = ElementTree.fromstring(f"<tsResponse>{xml_body}</tsResponse>")
    return _differs(root, answer, "", repeated_children())


def _differs(element: ElementTree.Element, node: Any, where: str, repeated: frozenset) -> str | None:
    where = f"{where}/{element.tag}"
    text = (element.text or "").strip()
    if text and len(element) == 0:
        expected: Any = element.text if not element.attrib else {**element.attrib, "value": element.text}
        return None if node == expected else f"{where}: {node!r} is not {expected!r}"
    if not isinstance(node, dict):
        return f"{where}: expected an object, got {type(node).__name__}"
    children: dict[str, list[ElementTree.Element]] = {}
    for child in element:
        children.setdefault(child.tag, []).append(child)
    for key, value in element.attrib.items():
        if node.get(key) != value:
            return f"{where}@{key}: JSON has {node.get(key)!r}, XML {value!r}"
    extra = set(node) - set(element.attrib) - set(children)
    if extra:
        return f"{where}: JSON has keys the XML lacks: {sorted(extra)}"
    for tag, elements in children.items():
        value = node.get(tag)
        many = (element.tag, tag) in repeated
        if many != isinstance(value, list) and not (len(elements) > 1 and isinstance(value, list)):
            return f"{where}/{tag}: {'an array' if many else 'one object'} expected, got {type(value).__name__}"
        values = value if isinstance(value, list) else [value]
        if len(values) != len(elements):
            return f"{where}/{tag}: {len(values)} in JSON, {len(elements)} in XML"
        for child, child_node in zip(elements, values, strict=True):
            problem = _differs(child, child_node, where, repeated)
            if problem is not None:
                return problem
    return None


# -- native rendering helpers (list pages) -------------------------------------------------------------


def json_value(value: Any) -> str:
    """An attribute value as Tableau's JSON writes it: always a string, formatted as in the XML."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    return dt(value) if isinstance(value, datetime) else str(value)


def json_attrs(pairs: Any) -> dict[str, str]:
    """The attribute pairs an XML renderer would write (None skipped), as a JSON object."""
    # Most values are already strings: skip the call for them (this runs ~20 times per list item).
    return {key: value if type(value) is str else json_value(value) for key, value in pairs if value is not None}


def tags_json(tags: Any) -> dict[str, Any]:
    return {"tag": [{"label": label} for label in sorted(tags)]} if tags else {}
