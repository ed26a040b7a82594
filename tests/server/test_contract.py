"""The public tool contract: names, schemas and annotations change only on purpose."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from server.toolkit import ToolSpec
from tools.registry import TOOLS

SNAPSHOT = Path(__file__).parent.parent / "snapshots" / "tool_contract.json"
ANNOTATION_FIELDS = ("read_only_hint", "destructive_hint", "idempotent_hint", "open_world_hint")

pytestmark = pytest.mark.anyio


def _contract(tools) -> list[dict]:
    return [
        {
            "name": t.name,
            "title": t.title,
            "input_schema": t.input_schema,
            "output_schema": t.output_schema,
            "annotations": t.annotations.model_dump(mode="json", by_alias=True, exclude_none=False),
        }
        for t in tools
    ]


async def _listed_tools():
    from server.app import build_server

    def never_opened():  # the contract is static: listing it needs no site
        raise AssertionError("services must not be opened to read the tool contract")

    return await build_server(never_opened, auth={}).list_tools()


@pytest.mark.parametrize("spec", TOOLS, ids=lambda s: s.name)
def test_every_tool_declares_all_four_annotations_truthfully(spec: ToolSpec) -> None:
    for field in ANNOTATION_FIELDS:
        assert getattr(spec.annotations, field) is not None, f"{spec.name} leaves {field} unset"
    assert spec.effect in ("read", "write")
    # A read-only hint must agree with the tool being a read; anything undeclared counts as a write.
    assert spec.annotations.read_only_hint is (spec.effect == "read"), spec.name
    if spec.effect == "read":
        assert spec.annotations.destructive_hint is False
    assert spec.annotations.open_world_hint is False, "tools only touch the configured Tableau site"


# `whoami` is the name users of Tableau's own MCP server ask for (tableau/tableau-mcp#425).
KNOWN_NAMES = {"whoami"}


def test_tool_names_are_unique_verb_noun() -> None:
    names = [spec.name for spec in TOOLS]
    assert len(names) == len(set(names))
    for name in set(names) - KNOWN_NAMES:
        verb, _, noun = name.partition("_")
        assert verb and noun, name


async def test_every_tool_publishes_an_output_schema_and_a_flat_input_schema() -> None:
    for tool in await _listed_tools():
        assert tool.output_schema and tool.output_schema.get("type") == "object", tool.name
        assert tool.input_schema["type"] == "object"
        assert "ctx" not in tool.input_schema.get("properties", {}), tool.name
        assert tool.input_schema.get("additionalProperties") is False, f"{tool.name} must refuse unknown arguments"
        assert "Example" in (tool.description or ""), f"{tool.name} needs an example in its description"


async def test_tool_contract_matches_snapshot() -> None:
    current = _contract(await _listed_tools())
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        if os.environ.get("UPDATE_SNAPSHOTS") != "1":
            pytest.fail(f"wrote a new snapshot to {SNAPSHOT}; review and commit it")
    expected = json.loads(SNAPSHOT.read_text())
    assert current == expected, (
        "The public tool contract changed. If this is deliberate, regenerate with "
        "UPDATE_SNAPSHOTS=1 pytest tests/server/test_contract.py and commit the snapshot."
    )
