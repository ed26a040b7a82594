"""/healthz, /readyz and /metrics on a served process (streamable HTTP), read over a real socket.

The metrics come from prometheus_client; labels hold tool names the registry knows, outcomes and status
codes only: a made-up tool name, the arguments and the tokens never appear.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from server.governance.admin_api import discovery_path, read_discovery
from tests.server.conftest import Steward, structured, write_policy
from tests.server.test_admin_api import MCP_TOKEN, http_server, policy_with_an_mcp_token
from tests.server.test_governance_flow import GATED_POLICY, candidate
from tests.server.test_transports import bearer_client

pytestmark = pytest.mark.anyio

SECRETISH = "tool-name-with-a-secret-s3cr3t-value"


def sample(metrics: str, name: str) -> float:
    """The value of one sample line (`name` with its labels, exactly as exposed)."""
    lines = [line for line in metrics.splitlines() if line.startswith(name + " ")]
    assert len(lines) == 1, f"{name} not exposed once in:\n{metrics}"
    return float(lines[0].rsplit(" ", 1)[1])


async def test_health_readiness_and_metrics_over_http(steward: Steward, tmp_path: Path) -> None:
    policy_with_an_mcp_token(steward, tmp_path)
    user, group = candidate(steward)
    with http_server(steward, tmp_path) as server:
        base = server.url.removesuffix("/mcp")
        async with bearer_client(server.url, MCP_TOKEN) as client:
            for _ in range(2):
                assert structured(await client.call_tool("list_users", {"limit": 2}))["total"] > 0
            pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
            assert pending["status"] == "pending_approval"
            unknown = await client.call_tool(SECRETISH, {"note": "free text s3cr3t"})
            assert unknown.is_error
        async with httpx2.AsyncClient() as http:
            health = await http.get(base + "/healthz")
            ready = await http.get(base + "/readyz")
            metrics = (await http.get(base + "/metrics")).text
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["store"]["ok"] and checks["store"]["backend"] == "sqlite" and checks["store"]["head_seq"] > 0
    assert checks["tableau"]["status"] == "signed_in" and checks["policy"]["mode"] == "read-write"
    assert sample(metrics, 'steward_tool_calls_total{outcome="ok",tool="list_users"}') == 2
    assert sample(metrics, 'steward_tool_calls_total{outcome="pending_approval",tool="add_user_to_group"}') == 1
    assert sample(metrics, 'steward_tool_calls_total{outcome="refused",tool="(unknown)"}') == 1
    assert sample(metrics, 'steward_tableau_requests_total{status="200"}') > 2
    assert sample(metrics, "steward_pending_approvals") == 1
    assert sample(metrics, "steward_audit_append_seconds_count") >= 8  # policy.loaded, 3 calls' records, requests
    assert sample(metrics, "steward_tableau_rate_limited_total") == 0
    for leaked in (SECRETISH, "s3cr3t", MCP_TOKEN, user.email, group.name):
        assert leaked not in metrics


async def test_in_stdio_mode_they_answer_on_the_admin_listener(steward: Steward, tmp_path: Path) -> None:
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))
    async with steward.client() as client, httpx2.AsyncClient() as http:
        base = read_discovery(discovery_path(tmp_path / "audit.sqlite")).removesuffix("/admin")
        assert structured(await client.call_tool("list_groups", {"limit": 1}))["total"] > 0
        ready = await http.get(base + "/readyz")
        metrics = (await http.get(base + "/metrics")).text
        assert (await http.get(base + "/healthz")).status_code == 200
    assert ready.status_code == 200 and ready.json()["ready"] is True, ready.text
    assert sample(metrics, 'steward_tool_calls_total{outcome="ok",tool="list_groups"}') == 1
