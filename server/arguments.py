"""Strict, forgiving arguments: the one place tool and prompt arguments are checked and explained.

Strict: an argument a tool does not declare is an error naming the valid ones and the closest
(models send `role` for `site_role` all the time, and silently dropping it answers a different
question). Forgiving: a choice given in another case, singular or plural, with spaces, dashes or
underscores, or in Tableau's own spelling ("RefreshExtract" for refresh_extracts) is read as the
one value it can only mean. Every complaint is plain text: no pydantic wording, URLs or tracebacks.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

# Written the way people and Tableau spell them, read as the value they can only mean.
SYNONYMS = {"succeeded": "success", "successful": "success", "canceled": "cancelled", "running": "inprogress"}


class ArgumentError(ValueError):
    """Arguments that cannot be used as given; the text says what to send instead."""


def closest(query: str, names: Iterable[str], n: int = 5) -> list[str]:
    """Up to `n` names most like `query` (case-insensitive), then names that contain it."""
    names = list(dict.fromkeys(names))
    lowered = {name.lower(): name for name in names}
    matches = difflib.get_close_matches(query.lower(), list(lowered), n=n, cutoff=0.5)
    contains = [name for name in names if query.lower() in name.lower() and name.lower() not in matches]
    contained = [name for name in names if name.lower() in query.lower() and name.lower() not in matches]
    ranked = [lowered[m] for m in matches] + [c for c in contains + contained if c not in matches]
    return list(dict.fromkeys(ranked))[:n]


def parse_arguments(model: type[BaseModel], raw: Mapping[str, Any] | None, *, what: str = "argument") -> BaseModel:
    """`raw` validated into `model`, or an ArgumentError that says exactly what to change."""
    raw = dict(raw or {})
    fields = model.model_fields
    unknown = [name for name in raw if name not in fields]
    if unknown:
        raise ArgumentError(unknown_message(unknown, list(fields), what))
    values = {}
    for name, value in raw.items():
        if isinstance(value, str) and not value.strip():
            raise ArgumentError(f"{what} '{name}' is empty: give a value or leave it out.")
        values[name] = normalise_choice(value, choices(fields[name].annotation))
    try:
        parsed = model.model_validate(values)
    except ValidationError as exc:
        raise ArgumentError("; ".join(_explain(model, error, what) for error in exc.errors())) from None
    check_ranges(parsed)
    return parsed


def unknown_message(unknown: list[str], valid: list[str], what: str = "argument") -> str:
    first = unknown[0]
    guesses = closest(first, valid, n=1)
    guess = f"; did you mean '{guesses[0]}'?" if guesses else "."
    others = f" (also unknown: {', '.join(repr(u) for u in unknown[1:])})" if len(unknown) > 1 else ""
    listed = ", ".join(valid) if valid else f"none: call it without {what}s"
    return f"unknown {what} '{first}'{guess}{others} Valid {what}s: {listed}."


def choices(annotation: Any) -> tuple[str, ...]:
    """The string values a field accepts, when its type is a Literal (optional or a union of Literals)."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return tuple(a for a in typing.get_args(annotation) if isinstance(a, str))
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return tuple(c for arg in typing.get_args(annotation) for c in choices(arg))
    return ()


def _key(text: str) -> str:
    key = re.sub(r"[\s_\-./]+", "", text.lower())
    key = SYNONYMS.get(key, key)
    return key.removesuffix("s")


def normalise_choice(value: Any, allowed: tuple[str, ...]) -> Any:
    """The one allowed value `value` can only mean (case, plural, separators); otherwise `value` unchanged."""
    if not allowed or not isinstance(value, str) or value in allowed:
        return value
    wanted = _key(value)
    matches = [choice for choice in allowed if _key(choice) == wanted]
    return matches[0] if len(matches) == 1 else value


def check_ranges(parsed: BaseModel) -> None:
    """`x_before` earlier than (or equal to) `x_after` matches nothing: say so instead of answering empty."""
    for name in type(parsed).model_fields:
        if not name.endswith("_before"):
            continue
        after_name = name[: -len("_before")] + "_after"
        before, after = getattr(parsed, name), getattr(parsed, after_name, None)
        if before is None or after is None:
            continue
        if _comparable(before) <= _comparable(after):
            raise ArgumentError(
                f"'{name}' ({before.isoformat()}) is not later than '{after_name}' ({after.isoformat()}), so nothing "
                "can match: swap them or widen the range."
            )


def _comparable(value: date | datetime) -> datetime:
    # Naive times mean UTC everywhere in the tools (tools.common.utc).
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _explain(model: type[BaseModel], error: Mapping[str, Any], what: str) -> str:
    """One pydantic error in plain words, naming the argument and what it accepts."""
    loc = [str(part) for part in error.get("loc", ())]
    name = loc[0] if loc else what
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    got = f" (got {_shown(error.get('input'))})" if "input" in error and kind != "missing" else ""
    field = model.model_fields.get(name)
    if kind == "missing":
        return f"missing required {what} '{name}'" + (f": {field.description}" if field and field.description else "")
    allowed = choices(field.annotation) if field else ()
    if allowed:
        return f"'{name}' must be one of: {', '.join(allowed)}{got}"
    messages = {
        "int": "must be a whole number",
        "float": "must be a number",
        "bool": "must be true or false",
        "datetime": "must be an ISO 8601 date or date-time such as 2025-01-31 or 2025-01-31T09:00:00Z",
        "date": "must be an ISO 8601 date such as 2025-01-31",
        "string": "must be text",
        "dict": "must be an object",
        "list": "must be a list",
    }
    if kind in ("greater_than_equal", "greater_than"):
        return f"'{name}' must be at least {ctx.get('ge', ctx.get('gt'))}{got}"
    if kind in ("less_than_equal", "less_than"):
        return f"'{name}' must be at most {ctx.get('le', ctx.get('lt'))}{got}"
    if kind == "string_too_short":
        return f"'{name}' must not be empty"
    if kind == "string_too_long":
        return f"'{name}' must be at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"'{name}' is not in the expected form{got}"
    for prefix, message in messages.items():
        if kind.startswith(prefix):
            return f"'{name}' {message}{got}"
    if kind == "value_error":
        return f"'{name}': {ctx.get('error', 'invalid value')!s}"
    return f"'{name}' has an invalid value{got}"
