"""Fail closed while serving, through a real mcp.Client: when the audit store is deleted, replaced or made
read-only under the running server, calls are refused with a clear message and reach no Tableau, until
the store is back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mcp import MCPError

from server.governance import AuditLog
from server.resources import SITE_SUMMARY_URI
from tests.server.conftest import Steward, error_text, structured

pytestmark = pytest.mark.anyio


def store_of(steward: Steward) -> Path:
    return steward.policy_path.parent / "audit.sqlite"


async def test_a_store_moved_away_refuses_calls_until_it_is_back(steward: Steward) -> None:
    store = store_of(steward)
    aside = store.with_name("aside.sqlite")
    async with steward.client() as client:
        structured(await client.call_tool("list_groups", {}))
        os.rename(store, aside)
        mark = len(steward.emulator.request_log)
        refused = error_text(await client.call_tool("list_users", {}))
        with pytest.raises(MCPError, match="the audit store file was deleted"):
            await client.read_resource(SITE_SUMMARY_URI)
        assert steward.requests_since(mark) == []  # nothing ran unaudited
        os.rename(aside, store)
        structured(await client.call_tool("list_users", {"limit": 2}))
    assert "Refused: the audit log cannot be written (the audit store file was deleted)" in refused
    log = AuditLog.open(store, readonly=True)
    result = log.verify()
    assert result.ok, result.reason
    tools = [r.fields["tool"] for r in log.records() if r.kind == "tool_call.intent"]
    assert tools == ["list_groups", "list_users"]  # the refused calls left no half-records


async def test_a_deleted_store_stays_refused_when_another_file_takes_its_place(steward: Steward) -> None:
    store = store_of(steward)
    async with steward.client() as client:
        structured(await client.call_tool("list_groups", {}))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
        assert "the audit store file was deleted" in error_text(await client.call_tool("list_groups", {}))
        fresh = AuditLog.open(store)  # someone starts an empty store at the same path
        fresh.close()
        mark = len(steward.emulator.request_log)
        text = error_text(await client.call_tool("list_groups", {}))
        assert steward.requests_since(mark) == []
    assert "the audit store file was replaced" in text


async def test_a_store_made_read_only_refuses_calls_until_it_is_writable(steward: Steward) -> None:
    store = store_of(steward)
    async with steward.client() as client:
        structured(await client.call_tool("list_groups", {}))
        os.chmod(store, 0o400)
        try:
            mark = len(steward.emulator.request_log)
            text = error_text(await client.call_tool("list_groups", {}))
            assert steward.requests_since(mark) == []
        finally:
            os.chmod(store, 0o600)
        structured(await client.call_tool("list_groups", {}))
    assert "(the audit store is not writable)" in text
