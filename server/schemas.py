"""Published output schemas, written the way JSON Schema says an optional value most directly.

pydantic writes `x: str | None` as `{"anyOf": [{"type": "string"}, {"type": "null"}]}`. A client that
checks `structuredContent` against the output schema (the MCP Python SDK does, on every call) then
evaluates two subschemas per optional field: on a find_owners page of 50 owners, with six optional
fields each, that was half of the check (17 ms, 9 ms with `{"type": ["string", "null"]}`; BENCHMARKS.md,
issue 15). The two forms accept exactly the same values, and the second is shorter.
"""

from __future__ import annotations

from typing import Any

# Keywords that apply to one JSON type only, so adding "null" to `type` leaves them true of every null.
# (`enum` and `const` hold of null too, and `$ref` or a combinator cannot take a type list: those
# unions are left as pydantic wrote them.)
_TYPED_KEYWORDS = frozenset({
    "type", "format", "pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "items", "minItems", "maxItems", "uniqueItems", "properties",
    "additionalProperties", "required", "title", "description",
})


_NULL = {"type": "null"}


def nullable_as_type_list(schema: Any) -> Any:
    """`schema` with every `anyOf: [{type: T, ...}, {type: null}]` written as `type: [T, "null"]`."""
    if isinstance(schema, list):
        return [nullable_as_type_list(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: nullable_as_type_list(value) for key, value in schema.items()}
    options = schema.get("anyOf")
    if not isinstance(options, list) or len(options) != 2 or _NULL not in options:
        return schema
    other = options[1] if options[0] == _NULL else options[0]
    outer = {key: value for key, value in schema.items() if key != "anyOf"}
    if (
        not isinstance(other, dict)
        or other == _NULL
        or not isinstance(other.get("type"), str)
        or not other.keys() <= _TYPED_KEYWORDS
        or other.keys() & outer.keys()  # a keyword both inside and outside: keep both places
    ):
        return schema
    return {**outer, **other, "type": [other["type"], "null"]}
