"""Output schemas publish `x: T | None` as `type: [T, "null"]`, which accepts exactly what pydantic's
anyOf accepts; unions it cannot write that way stay as they were."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from server.schemas import nullable_as_type_list

NULL = {"type": "null"}

CONVERTED = [
    # (pydantic's schema, what is published, values either accepts, values both refuse)
    (
        {"anyOf": [{"type": "string"}, NULL], "default": None, "title": "Name"},
        {"type": ["string", "null"], "default": None, "title": "Name"},
        ["ada", None],
        [3, [], {}],
    ),
    (
        {"anyOf": [{"format": "date-time", "type": "string"}, NULL], "default": None},
        {"type": ["string", "null"], "format": "date-time", "default": None},
        ["2026-12-01T10:00:00Z", None],
        [1.5, True],
    ),
    (
        {"anyOf": [{"type": "integer", "minimum": 0}, NULL]},
        {"type": ["integer", "null"], "minimum": 0},
        [0, 7, None],
        [-1, "7"],
    ),
    (
        {"anyOf": [{"type": "array", "items": {"type": "string"}}, NULL]},
        {"type": ["array", "null"], "items": {"type": "string"}},
        [[], ["a"], None],
        [[1], "a"],
    ),
]

KEPT = [
    {"anyOf": [{"enum": ["a", "b"], "type": "string"}, NULL]},  # null is not in the enum
    {"anyOf": [{"const": "done", "type": "string"}, NULL]},
    {"anyOf": [{"$ref": "#/$defs/Thing"}, NULL]},
    {"anyOf": [{"type": "string"}, {"type": "integer"}]},  # no null
    {"anyOf": [{"type": "string"}, {"type": "integer"}, NULL]},  # three options
    {"anyOf": [{"type": "string", "title": "Inner"}, NULL], "title": "Outer"},  # a keyword in both places
]


@pytest.mark.parametrize(("before", "after", "accepted", "refused"), CONVERTED)
def test_a_nullable_union_becomes_a_type_list_that_accepts_the_same_values(before, after, accepted, refused):
    assert nullable_as_type_list(before) == after
    for schema in (before, after):
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        for value in accepted:
            assert validator.is_valid(value), (schema, value)
        for value in refused:
            assert not validator.is_valid(value), (schema, value)


@pytest.mark.parametrize("schema", KEPT)
def test_unions_a_type_list_cannot_say_are_kept(schema):
    assert nullable_as_type_list(schema) == schema


def test_nested_schemas_are_converted_and_the_input_is_not_changed():
    item = {"anyOf": [{"type": "string"}, NULL], "default": None}
    schema = {
        "$defs": {"Owner": {"properties": {"email": item}, "type": "object"}},
        "properties": {"owners": {"items": {"$ref": "#/$defs/Owner"}, "type": "array"}, "next_cursor": item},
        "type": "object",
    }
    published = nullable_as_type_list(schema)
    assert published["$defs"]["Owner"]["properties"]["email"] == {"type": ["string", "null"], "default": None}
    assert published["properties"]["next_cursor"] == {"type": ["string", "null"], "default": None}
    assert published["properties"]["owners"] == schema["properties"]["owners"]
    assert item == {"anyOf": [{"type": "string"}, NULL], "default": None}


@pytest.mark.anyio
async def test_published_output_schemas_carry_no_nullable_anyof(steward) -> None:
    """Over a real MCP client: every tool's outputSchema is converted wherever the form allows, and a
    find_owners page (six optional fields per owner) passes the client's own check against it."""
    async with steward.client() as client:
        tools = (await client.list_tools()).tools
        assert tools
        for tool in tools:
            assert nullable_as_type_list(tool.output_schema) == tool.output_schema, tool.name
        published = {t.name: t for t in tools}["find_owners"].output_schema
        assert published["$defs"]["OwnerSummary"]["properties"]["email"]["type"] == ["string", "null"]
        result = await client.call_tool("find_owners", {})
        assert not result.is_error
        assert result.structured_content["owners"]
        Draft202012Validator(published).validate(result.structured_content)
