"""Safe display of untrusted text on a terminal or in a preview.

Names, arguments and reasons come from Tableau, from a model or from the store, so they may carry control
characters: a CR or LF can forge a second line of `audit tail` or `approvals list`, an ESC can drive the
terminal, and bidi overrides can make a name read differently from what it is. `escape_controls` makes
every such character visible as an escape (``\\n``, ``\\x1b``, ``\\u202e``) and leaves everything else alone,
so what a person reads is what is stored.
"""

from __future__ import annotations

import unicodedata

# Bidi embeddings, overrides, isolates and marks: invisible, yet they reorder what surrounds them.
_BIDI = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _needs_escape(ch: str) -> bool:
    if ch in _BIDI:
        return True
    # Cc: C0/C1 controls incl. ESC, CR, LF, DEL. Zl/Zp: Unicode line and paragraph separators.
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def escape_controls(text: object) -> str:
    """`text` as a single safe line: control, line-separator and bidi characters shown as escapes.

    A backslash is doubled only when the text needs escaping at all, so ordinary Windows-style paths and
    regexes read as they are; when anything is escaped, backslashes are doubled so the escaped form is
    unambiguous.
    """
    value = text if isinstance(text, str) else str(text)
    if not any(_needs_escape(ch) for ch in value):
        return value
    return "".join(_escape_char(ch) if _needs_escape(ch) or ch == "\\" else ch for ch in value)
