"""Building Tableau response documents as strings.

A 1000-item page must serialize in a few milliseconds, so responses are assembled from escaped
string fragments instead of an element tree. Every document uses the default namespace
`http://tableau.com/api` (TSC parses nothing else) and datetimes in exactly `YYYY-MM-DDTHH:MM:SSZ`
(TSC's `parse_datetime` silently returns None for any other shape).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

NAMESPACE = "http://tableau.com/api"
_HEAD = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    f'<tsResponse xmlns="{NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
)
_TAIL = "</tsResponse>"

_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
)
_NEEDS_ESCAPE = re.compile(r'[&<>"\n\r\t]')
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def esc(value: str) -> str:
    # Most values need no escaping; testing first is several times faster than translating always.
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    return value.translate(_ATTR_ESCAPES)


def text(value: str) -> str:
    return value.translate(_TEXT_ESCAPES)


@lru_cache(maxsize=1 << 16)  # the same datetime objects are rendered on every page
def dt(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return dt(value)
    return esc(str(value))


def attrs(pairs: Iterable[tuple[str, Any]]) -> str:
    """` k="v"` for every pair whose value is not None, in the order given."""
    out = []
    for key, value in pairs:
        if value is None:
            continue
        kind = type(value)  # exact-type dispatch: this loop runs ~20 times per item on big pages
        if kind is str:
            rendered = esc(value)
        elif kind is bool:
            rendered = "true" if value else "false"
        elif kind is int:
            rendered = str(value)
        else:
            rendered = fmt(value)
        out.append(f' {key}="{rendered}"')
    return "".join(out)


def el(tag: str, pairs: Iterable[tuple[str, Any]] = (), children: str = "") -> str:
    if children:
        return f"<{tag}{attrs(pairs)}>{children}</{tag}>"
    return f"<{tag}{attrs(pairs)}/>"


def document(body: str) -> bytes:
    return (_HEAD + body + _TAIL).encode("utf-8")


def pagination(page_number: int, page_size: int, total: int) -> str:
    return f'<pagination pageNumber="{page_number}" pageSize="{page_size}" totalAvailable="{total}"/>'


def error_document(code: str, summary: str, detail: str) -> bytes:
    return document(
        f'<error code="{code}"><summary>{text(summary)}</summary><detail>{text(detail)}</detail></error>'
    )
