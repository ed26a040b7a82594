"""A busy audit store makes the calls that must write to it wait, never the whole server."""

from __future__ import annotations

import sqlite3
import threading

import anyio
import pytest

from tests.server.conftest import structured

pytestmark = pytest.mark.anyio


async def test_a_locked_audit_store_does_not_stall_other_requests(steward, tmp_path):
    store = tmp_path / "audit.sqlite"
    held, release = threading.Event(), threading.Event()
    outcome: dict[str, bool] = {}

    def hold_the_write_lock() -> None:
        # Another process sharing the store (a second server, `approvals approve`) mid-transaction.
        conn = sqlite3.connect(store, isolation_level=None, timeout=30)
        try:
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            outcome["released_by_the_test"] = release.wait(10)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    async with steward.client() as client:
        structured(await client.call_tool("list_content", {"kind": "project", "limit": 1}))  # the store exists
        holder = threading.Thread(target=hold_the_write_lock)
        holder.start()
        try:
            assert held.wait(10)
            results = {}

            async def blocked_call() -> None:
                results["call"] = await client.call_tool("list_content", {"kind": "project", "limit": 1})

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(blocked_call)
                await anyio.sleep(0.3)  # long enough for the call to reach its intent record
                listed = await client.list_tools()  # served while that call waits for the store
                assert "call" not in results  # ...which it still does: nothing ran unaudited
                release.set()
        finally:
            release.set()
            holder.join()

    assert outcome["released_by_the_test"]  # the store was never waited out on the event loop
    assert {tool.name for tool in listed.tools} >= {"list_content"}
    assert structured(results["call"])["items"]
