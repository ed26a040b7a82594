"""The console's HTML, rendered on the server from the templates next to this file.

Everything that comes from the site, the requester or the store goes through `text()`: control and bidi
characters made visible (server.governance.display.escape_controls), then HTML-escaped, quotes included.
Only this module builds markup, and it puts no script and no style attribute in it (the CSP forbids both).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from html import escape
from pathlib import Path
from string import Template
from typing import Any

from server.governance.approvals import ApprovalRequest
from server.governance.audit import AuditRecord
from server.governance.display import escape_controls

TEMPLATES = Path(__file__).with_name("templates")
MAX_RESULT_SHOWN = 600  # characters of a result in the history list (the details page shows up to 4000)


def text(value: object) -> str:
    """Untrusted text, safe in HTML content and in quoted attributes."""
    return escape(escape_controls("" if value is None else value), quote=True)


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / f"{name}.html").read_text(encoding="utf-8"))


def fill(name: str, **values: str) -> str:
    """A template with `values`, which the caller has already escaped (or built from escaped parts)."""
    return _template(name).substitute(values)


def cut(value: str | None, limit: int) -> str:
    if value is None:
        return ""
    return value if len(value) <= limit else value[:limit] + f"… ({len(value) - limit} more characters)"


def relative(moment: datetime, now: datetime) -> str:
    """'3 min ago' / 'in 2 h' in words a person reads at a glance (the exact time is in <time datetime>)."""
    seconds = int((moment - now).total_seconds())
    span = abs(seconds)
    if span < 60:
        words = f"{span} s"
    elif span < 3600:
        words = f"{span // 60} min"
    elif span < 86400:
        words = f"{span // 3600} h {span % 3600 // 60} min"
    else:
        words = f"{span // 86400} d {span % 86400 // 3600} h"
    return f"in {words}" if seconds > 0 else f"{words} ago"


def progress(request: ApprovalRequest) -> str:
    """'1 of 2 approvals'."""
    required = request.required_approvals
    return f"{len(request.approvers)} of {required} approval{'' if required == 1 else 's'}"


def targets(request: ApprovalRequest) -> str:
    if not request.targets:
        return "<span>none recorded</span>"
    items = []
    for target in request.targets:
        shown = ", ".join(
            f"{text(k.replace('_', ' '))} {text(v)}" for k, v in target.items() if k not in ("role", "kind", "id", "name")
        )
        items.append(
            f"<li>{text(target.get('kind', target.get('role')))} <strong>{text(target.get('name'))}</strong>"
            f" <span class=\"rid\">(id {text(target.get('id'))})</span>{' — ' + shown if shown else ''}</li>"
        )
    return f"<ul class=\"targets\">{''.join(items)}</ul>"


def decisions(request: ApprovalRequest) -> str:
    if not request.decisions:
        return "none yet"
    items = [
        f"<li>{text(d.decision)} by <strong>{text(d.approver)}</strong> at "
        f"<time datetime=\"{d.at.isoformat()}\">{d.at:%Y-%m-%d %H:%M:%S}</time>"
        f"{': ' + text(d.reason) if d.reason else ''}{'' if d.sealed else ' <strong>(seal broken)</strong>'}</li>"
        for d in request.decisions
    ]
    return f"<ul class=\"decisions\">{''.join(items)}</ul>"


def integrity(request: ApprovalRequest) -> str:
    if not request.integrity:
        return ""
    return (
        "<p class=\"alert\" role=\"alert\">This request fails verification and will not run: "
        f"{text('; '.join(request.integrity))}</p>"
    )


def _anchor(request: ApprovalRequest) -> str:
    return "r-" + "".join(ch for ch in request.id if ch.isalnum() or ch in "_-")


def _common(request: ApprovalRequest, prefix: str, now: datetime) -> dict[str, str]:
    return {
        "prefix": prefix,
        "anchor": _anchor(request),
        "request_id": text(request.id),
        "tool": text(request.tool),
        "status": text(request.status),
        "requester": text(request.requester),
        "targets": targets(request),
        "created_iso": request.created_at.isoformat(),
        "expires_iso": request.expires_at.isoformat(),
        "age": text(relative(request.created_at, now)),
        "integrity": integrity(request),
    }


def pending_item(request: ApprovalRequest, preview: str, live: bool, note: str, csrf: str, prefix: str,
                 now: datetime) -> str:
    source = "recomputed from the live site just now" if live else f"stored when requested: {note}"
    return fill(
        "pending_item",
        **_common(request, prefix, now),
        expires=text(relative(request.expires_at, now)),
        progress=text(progress(request)),
        preview=text(preview),
        preview_source=text(f"({source})"),
        csrf=text(csrf),
    )


def history_item(request: ApprovalRequest, prefix: str, now: datetime) -> str:
    return fill(
        "history_item",
        **_common(request, prefix, now),
        decisions=decisions(request),
        result=text(cut(request.result, MAX_RESULT_SHOWN)) or "none",
    )


def section(heading_id: str, heading: str, items: list[str], total: int, empty: str) -> str:
    shown = f"<p class=\"count\">{len(items)} of {total} shown (newest first).</p>" if total > len(items) else ""
    body = "\n".join(items) if items else f"<p class=\"empty\">{text(empty)}</p>"
    return (
        f"<section aria-labelledby=\"{heading_id}\"><h2 id=\"{heading_id}\">{text(heading)} "
        f"<span class=\"n\">({total})</span></h2>{shown}\n{body}</section>"
    )


def trail_row(record: AuditRecord) -> str:
    fields = record.fields
    who = fields.get("principal") or fields.get("approver") or fields.get("actor") or fields.get("requester") or ""
    what = _trail_what(record.kind, fields)
    return (
        f"<tr><td>{record.seq}</td><td><time datetime=\"{text(record.ts)}\">{text(record.ts)}</time></td>"
        f"<td>{text(record.kind)}</td><td>{text(who)}</td><td>{text(cut(what, 400))}</td></tr>"
    )


def _trail_what(kind: str, fields: Any) -> str:
    if kind == "tableau_request":
        return f"{fields.get('method')} {fields.get('path')} → {fields.get('status')}"
    parts = [
        f"{name}: {fields[name] if isinstance(fields[name], str) else json.dumps(fields[name], default=str)}"
        for name in ("tool", "effect", "status", "reason", "code", "summary", "error", "approvals", "result")
        if fields.get(name) not in (None, "")
    ]
    return "; ".join(parts)


def now_utc() -> datetime:
    return datetime.now(UTC)
