"""A fast reader for content list pages (workbooks, views, datasources, flows, projects).

TSC's item parsers spend ~150 ms of pure-Python, GIL-holding work on a 1000-item page (a `find`
with namespaces per attribute and child), which serialises the concurrent page fetches. This
reader walks each item's attributes and *direct* children once (≈17 ms a page). The HTTP request
itself still goes through TSC (`Endpoint.get_request`), so auth, versioning, the transport's
retries and the observer are unchanged.
"""

from __future__ import annotations

import pyexpat
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .records import ContentRecord

# Expat 2.4.1 and newer bound entity expansion (billion laughs, quadratic blow-up), and ElementTree
# never fetches external entities or DTDs, so the standard parser is safe there (Python's "XML
# vulnerabilities" table) and 40% faster than defusedxml's Python-level handlers on a 600 KB page.
if pyexpat.version_info >= (2, 4, 1):
    from xml.etree.ElementTree import fromstring
else:  # an old system expat: keep defusedxml's guards
    from defusedxml.ElementTree import fromstring

NS = "{http://tableau.com/api}"
_LIST_TAGS = {
    "workbook": "workbooks",
    "view": "views",
    "datasource": "datasources",
    "flow": "flows",
    "project": "projects",
}


@dataclass(frozen=True)
class Page:
    """The `<pagination>` element: -1 when an attribute is missing, like TSC's PaginationItem."""

    page_number: int
    page_size: int
    total_available: int


def _dt(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 reads the trailing "Z"
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _bool(value: str | None) -> bool | None:
    return None if value is None else value.strip().lower() == "true"


def _record(kind: str, element: Any) -> ContentRecord:
    a = element.attrib
    values: dict[str, Any] = {
        "kind": kind,
        "id": a.get("id", ""),
        "name": a.get("name", ""),
        "content_url": a.get("contentUrl"),
        "webpage_url": a.get("webpageUrl"),
        "description": a.get("description"),
        "created_at": _dt(a.get("createdAt")),
        "updated_at": _dt(a.get("updatedAt")),
        "tags": (),
    }
    for child in element:
        tag = child.tag.removeprefix(NS)
        c = child.attrib
        if tag == "owner":
            values.update(owner_id=c.get("id"), owner_name=c.get("name"), owner_email=c.get("email"))
        elif tag == "project":
            values.update(project_id=c.get("id"), project_name=c.get("name"))
        elif tag == "workbook" and kind == "view":
            values.update(workbook_id=c.get("id"), workbook_name=c.get("name"))
        elif tag == "tags":
            values["tags"] = tuple(sorted(t.get("label", "") for t in child if t.get("label")))
        elif tag == "usage" and kind == "view":
            values["total_view_count"] = _int(c.get("totalViewCount"))
    if kind in ("workbook", "datasource"):
        values.update(size=_int(a.get("size")), has_extracts=_bool(a.get("hasExtracts")))
    if kind == "workbook":
        values.update(
            show_tabs=_bool(a.get("showTabs")),
            sheet_count=_int(a.get("sheetCount")),
            default_view_id=a.get("defaultViewId"),
        )
    elif kind == "view":
        values["sheet_type"] = a.get("sheetType")
    elif kind == "datasource":
        values.update(type=a.get("type"), is_certified=_bool(a.get("isCertified")))
    elif kind == "project":
        values.update(
            parent_project_id=a.get("parentProjectId") or None,
            content_permissions=a.get("contentPermissions"),
            project_id=None,
            project_name=None,
        )
    return ContentRecord(**values)  # validating costs about as much as model_construct (≈8 µs)


def content_page(kind: str, content: bytes) -> tuple[list[ContentRecord], Page]:
    """Records and pagination from one list response body."""
    root = fromstring(content)
    pagination = root.find(f"{NS}pagination")
    if pagination is not None:
        page = Page(
            _int(pagination.get("pageNumber")) or -1,
            _int(pagination.get("pageSize")) or -1,
            _int(pagination.get("totalAvailable")) if pagination.get("totalAvailable") is not None else -1,
        )
    else:
        page = Page(-1, -1, -1)
    container = root.find(f"{NS}{_LIST_TAGS[kind]}")
    items = container.findall(f"{NS}{kind}") if container is not None else []
    return [_record(kind, item) for item in items], page
