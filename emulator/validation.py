"""Validate response documents against the patched Tableau 3.29 XSD (tsc-wire §7).

The schema compiles once per process (a few hundred milliseconds) and is shared by every server.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("schema") / "ts-api_3_29.patched.xsd"
_lock = threading.Lock()
_schema = None


@dataclass(frozen=True)
class XsdFailure:
    method: str
    path: str
    status: int
    error: str


def schema():
    global _schema
    with _lock:
        if _schema is None:
            from lxml import etree

            _schema = etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))
        return _schema


def validate(body: bytes) -> str | None:
    """None when `body` is valid; otherwise the first error, with its line."""
    from lxml import etree

    try:
        document = etree.fromstring(body)
    except etree.XMLSyntaxError as exc:
        return f"not well-formed: {exc}"
    xsd = schema()
    with _lock:  # lxml schema objects are not safe to share between threads
        if xsd.validate(document):
            return None
        error = xsd.error_log.last_error
    return f"line {error.line}: {error.message}" if error else "invalid"
