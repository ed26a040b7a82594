"""List pages read as Tableau's JSON (`Accept: application/json`), parsed with orjson.

The hot list paths (content, users, groups, jobs) ask for JSON because orjson turns a 1000-item
page into dicts in C, several times cheaper than any XML reader driven by Python callbacks: the
whole reader, records included, measured at 0.8-0.9x the client CPU of the XML one, while serving
costs the same (`BENCHMARKS.md` has both readers side by side). The
records are built from the same attribute names as the XML reader (`parsing.py`), so both give
identical records.

The request still goes through TSC's `Endpoint.get_request` with one extra `Accept` header, so auth,
versioning, the transport's limits and retries, the re-sign-in on 401 and the request observer see
exactly what they see for XML. Only errors differ: TSC parses error bodies as XML, so a JSON error
surfaces as `NonXMLResponseError`; it is turned back into the `ServerResponseError` /
`FailedSignInError` TSC would have raised, and the access layer maps it as usual.

Safety: JSON has no entities, so the XML reader's entity refusal has no counterpart to need; a body
larger than `MAX_BODY_BYTES` (a 1000-item page is well under 1 MB) is refused before parsing, and
orjson refuses nesting deeper than 1024 levels, so neither size nor depth can exhaust memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, TypeVar
from xml.etree.ElementTree import ParseError

import orjson
from tableauserverclient.server.endpoint.exceptions import (
    FailedSignInError,
    NonXMLResponseError,
    ServerResponseError,
)

from .parsing import Page, _child_values, _dt, _int, _item_values, _user_values, gc_paused
from .records import ContentRecord, GroupRecord, JobRecord, OwnedRecord, UserFacts, UserRecord, listed_job

R = TypeVar("R")

ACCEPT_JSON = {"Accept": "application/json"}
MAX_BODY_BYTES = 64 * 1024 * 1024
_LIST_NAMES = {
    "workbook": "workbooks",
    "view": "views",
    "datasource": "datasources",
    "flow": "flows",
    "project": "projects",
}


def get_json(endpoint: Any, url: str, query: Any) -> bytes:
    """One GET through TSC asking for JSON; Tableau's JSON errors raised as TSC's XML ones would be."""
    try:
        response = endpoint.get_request(url, query, parameters={"headers": dict(ACCEPT_JSON)})
    except NonXMLResponseError as exc:
        raise _as_tsc_error(exc, url) from None
    return response.content


def _as_tsc_error(exc: NonXMLResponseError, url: str) -> Exception:
    content = exc.args[0] if exc.args else b""
    try:
        error = orjson.loads(content).get("error") if len(content) < 1 << 20 else None
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        error = None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return exc  # not a Tableau error (a proxy page, an HTML 429): as TSC would report it
    code, summary, detail = error["code"], str(error.get("summary", "")), str(error.get("detail", ""))
    kind = FailedSignInError if code.startswith("401") else ServerResponseError
    return kind(code, summary, detail, url)


def load(content: bytes) -> dict[str, Any]:
    """The page as a dict; ParseError (which the access layer maps) for anything that is not one."""
    if len(content) > MAX_BODY_BYTES:
        raise ParseError(f"the response is {len(content)} bytes, more than a list page can be; it was not read")
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"the response is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ParseError("the response is not a JSON object")
    return data


def _page(data: dict[str, Any]) -> Page:
    pagination = data.get("pagination")
    if not isinstance(pagination, dict):
        return Page(-1, -1, -1)
    total = _int(pagination.get("totalAvailable"))
    return Page(
        _int(pagination.get("pageNumber")) or -1,
        _int(pagination.get("pageSize")) or -1,
        total if total is not None else -1,
    )


def _read_list(
    content: bytes, list_name: str, item_name: str, build: Callable[[dict[str, Any]], R]
) -> tuple[list[R], Page]:
    return _read_rows(content, list_name, item_name, lambda items: [build(item) for item in items])


def _read_rows(
    content: bytes, list_name: str, item_name: str, build: Callable[[list[dict[str, Any]]], list[R]]
) -> tuple[list[R], Page]:
    """The page's items (the objects under `list_name.item_name`), built all at once by `build`."""
    with gc_paused():
        data = load(content)
        container = data.get(list_name)
        items = container.get(item_name) if isinstance(container, dict) else None
        if not isinstance(items, list):
            items = []
        return build([item for item in items if type(item) is dict]), _page(data)


_TEXT_TYPES = frozenset({str, type(None)})


def _all_text(rows: list[tuple[Any, ...]], names: Sequence[str], first: int = 0) -> None:
    """Refuse the page unless every value of these columns is a string or missing, as Tableau sends: the
    tuples are not validated models, so the reader checks what a model would (each column in C)."""
    for position, name in enumerate(names, first):
        if not set(map(type, map(itemgetter(position), rows))) <= _TEXT_TYPES:
            raise ParseError(f"the response's {name} is not a string; it was not read")


def _child(item: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = item.get(name)
    return value if isinstance(value, dict) else None


def _content(kind: str, item: dict[str, Any]) -> ContentRecord:
    values = _item_values(kind, item)
    for tag in ("owner", "project", "workbook", "usage"):
        child = _child(item, tag)
        if child is not None:
            _child_values(kind, tag, child, values)
    tags = (_child(item, "tags") or {}).get("tag")
    if isinstance(tags, list):
        values["tags"] = tuple(sorted(t["label"] for t in tags if isinstance(t, dict) and t.get("label")))
    return ContentRecord(**values)


def content_page(kind: str, content: bytes) -> tuple[list[ContentRecord], Page]:
    """Content records and pagination from one JSON list body."""
    return _read_list(content, _LIST_NAMES[kind], kind, lambda item: _content(kind, item))


def owned_page(kind: str, content: bytes) -> tuple[list[OwnedRecord], Page]:
    """Lean records (`LEAN_FIELDS`: ids, name, times, project and owner ids) from one JSON list body.

    Built as plain tuples in one loop and checked column by column afterwards: the reader's share of a
    20,000-workbook listing is most of find_owners' client CPU."""

    def build(items: list[dict[str, Any]]) -> list[OwnedRecord]:
        new, empty = tuple.__new__, _EMPTY
        rows = [
            new(OwnedRecord, (kind, item.get("id", ""), item.get("name", ""),
                              _dict(item.get("project", empty)).get("id"), _dict(item.get("owner", empty)).get("id"),
                              item.get("updatedAt"), ()))
            for item in items
        ]
        _all_text(rows, ("id", "name", "project id", "owner id", "updatedAt"), first=1)
        return rows

    return _read_rows(content, _LIST_NAMES[kind], kind, build)


_EMPTY: dict[str, Any] = {}


def _dict(value: Any) -> dict[str, Any]:
    return value if type(value) is dict else _EMPTY


def _user(item: dict[str, Any]) -> UserRecord:
    values = _user_values(item)
    domain = _child(item, "domain")
    if domain is not None:
        values["domain_name"] = domain.get("name")
    return UserRecord(**values)


def user_page(content: bytes) -> tuple[list[UserRecord], Page]:
    return _read_list(content, "users", "user", _user)


def user_facts_page(content: bytes) -> tuple[list[UserFacts], Page]:
    """UserFacts (`USER_FACT_FIELDS`) from one JSON `GET users` body, built and checked like owned_page."""

    def build(items: list[dict[str, Any]]) -> list[UserFacts]:
        new = tuple.__new__
        rows = [
            new(UserFacts, (item.get("id", ""), item.get("name", ""), item.get("fullName"), item.get("email"),
                            item.get("siteRole"), item.get("lastLogin")))
            for item in items
        ]
        _all_text(rows, ("id", "name", "fullName", "email", "siteRole", "lastLogin"))
        return rows

    return _read_rows(content, "users", "user", build)


def _group(item: dict[str, Any]) -> GroupRecord:
    domain = _child(item, "domain") or {}
    imported = _child(item, "import") or {}
    return GroupRecord(
        id=item.get("id", ""),
        name=item.get("name", ""),
        user_count=_int(item.get("userCount")),
        # A local group says its grant-license role in minimumSiteRole, an imported (AD) one in <import siteRole>.
        minimum_site_role=item.get("minimumSiteRole") or imported.get("siteRole") or None,
        domain_name=domain.get("name"),
    )


def group_page(content: bytes) -> tuple[list[GroupRecord], Page]:
    return _read_list(content, "groups", "group", _group)


def _job(item: dict[str, Any]) -> JobRecord:
    return listed_job(
        id=item.get("id", ""), status=item.get("status"), job_type=item.get("jobType"),
        created_at=_dt(item.get("createdAt")), started_at=_dt(item.get("startedAt")),
        ended_at=_dt(item.get("endedAt")), subtitle=item.get("subtitle"), priority=_int(item.get("priority")),
        title=item.get("title"),
    )


def job_page(content: bytes) -> tuple[list[JobRecord], Page]:
    return _read_list(content, "backgroundJobs", "backgroundJob", _job)
