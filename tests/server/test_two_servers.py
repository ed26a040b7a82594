"""Two server processes share one approval store: an approved request runs exactly once."""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from emulator.testing import add_admin_pat
from server.governance import AuditLog
from tests.conftest import signing_key_env
from tests.server.conftest import Steward, structured, write_policy
from tests.server.test_governance_flow import GATED_POLICY, approvals_cli, candidate, membership_posts

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


def server_process(steward: Steward, pat: tuple[str, str]) -> StdioServerParameters:
    # One PAT per process: Tableau ends a PAT's earlier session when it signs in again.
    env = {
        "TABLEAU_SERVER_URL": steward.emulator.url,
        "TABLEAU_SITE_ID": steward.state.content_url,
        "TABLEAU_PAT_NAME": pat[0],
        "TABLEAU_PAT_SECRET": pat[1],
        **signing_key_env(),  # both servers share the store, so they need the same key
    }
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "server.cli", "serve", "--transport", "stdio", "--policy", str(steward.policy_path)],
        env=env,
        cwd=str(ROOT),
    )


async def test_an_approved_request_runs_once_across_two_server_processes(steward: Steward, tmp_path: Path) -> None:
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))
    pats = [add_admin_pat(steward.state, f"process-{i}", f"process-{i}-secret-for-tests") for i in (1, 2)]
    user, group = candidate(steward)
    async with AsyncExitStack() as stack:
        first, second = [await stack.enter_async_context(Client(server_process(steward, pat))) for pat in pats]
        pending = structured(await first.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
        request_id = pending["approval"]["request_id"]
        # Both servers share the store, so either one's admin API (whichever wrote the discovery file) decides.
        assert await approvals_cli(steward, "approve", request_id) == 0
        # Both processes race for it: the deciding one is woken at once, the other polls every second.
        status = "approved"
        with anyio.fail_after(30):
            while status not in ("executed", "failed"):
                for client in (first, second):
                    status = structured(await client.call_tool("get_request", {"request_id": request_id}))["status"]
                await anyio.sleep(0.2)
        await anyio.sleep(2.5)  # give the slower process every chance to run it a second time
        final = structured(await second.call_tool("get_request", {"request_id": request_id}))
    assert final["status"] == "executed", final
    assert len(membership_posts(steward, group.id)) == 1
    log = AuditLog.open(tmp_path / "audit.sqlite", readonly=True)
    try:
        records = [r.to_dict() for r in log.records()]
        assert log.verify().ok
    finally:
        log.close()
    executing = [r for r in records if r["kind"] == "approval.executing" and r["approval_id"] == request_id]
    assert len(executing) == 1
    assert user.id in steward.state.groups[group.id].member_ids
