"""Approvers decide through the server's admin API, from the CLI, with their own admin token.

The server runs as the CLI starts it (a subprocess, over stdio and over streamable HTTP), the assistant is
a real `mcp.Client`, and `tableau-steward approvals` runs as a subprocess that finds the admin API through
the discovery file next to the store. An admin token never calls a tool, an MCP token never decides, and
without a valid admin token nothing changes.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from emulator.testing import DEMO_PAT
from server.governance import hash_token
from server.governance.admin_api import (
    DiscoveryError,
    discovery_path,
    read_discovery,
    remove_discovery,
    write_discovery,
)
from tests.server.conftest import Steward, settled, structured, write_policy
from tests.server.test_governance_flow import ADMIN_TOKENS, GATED_POLICY, candidate, membership_posts
from tests.server.test_transports import (
    REPO,
    START_TIMEOUT,
    HttpServer,
    assert_refused,
    bearer_client,
    cli_env,
    free_port,
    stop,
    wait_for_port,
)

pytestmark = pytest.mark.anyio

MCP_TOKEN = "assistant-user-mcp-token-for-tests-only"


def policy_with_an_mcp_token(steward: Steward, tmp_path: Path) -> Path:
    text = GATED_POLICY.format(ttl="1h") + f"    - {{hash: '{hash_token(MCP_TOKEN)}', principal: assistant-user}}\n"
    steward.policy_path = write_policy(tmp_path, text)
    return steward.policy_path


def site_env(steward: Steward) -> dict[str, str]:
    return cli_env(
        TABLEAU_SERVER_URL=steward.emulator.url,
        TABLEAU_SITE_ID=steward.state.content_url,
        TABLEAU_PAT_NAME=DEMO_PAT[0],
        TABLEAU_PAT_SECRET=DEMO_PAT[1],
    )


async def approvals(steward: Steward, *args: str, token: str | None) -> subprocess.CompletedProcess[bytes]:
    """`tableau-steward approvals ...` as a subprocess, the token in STEWARD_ADMIN_TOKEN (none: no token at all)."""
    env = cli_env(**({"STEWARD_ADMIN_TOKEN": token} if token is not None else {}))
    return await anyio.run_process(
        [sys.executable, "-m", "server.cli", "approvals", *args, "--policy", str(steward.policy_path)],
        env=env, cwd=REPO, check=False, stdin=subprocess.DEVNULL,
    )


async def assert_cannot_decide(steward: Steward, request_id: str, token: str | None, why: str) -> None:
    result = await approvals(steward, "approve", request_id, token=token)
    assert result.returncode == 1 and why in result.stderr.decode(), result.stderr.decode()


@contextmanager
def http_server(steward: Steward, tmp_path: Path, **env: str) -> Iterator[HttpServer]:
    """`serve --transport http` on the steward's site and policy, with `env` added to its environment."""
    port = free_port()
    args = ["serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port),
            "--policy", str(steward.policy_path)]
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "server.cli", *args], cwd=REPO, env=site_env(steward) | env,
                                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        try:
            wait_for_port(port, proc, stderr_path)
            yield HttpServer(url=f"http://127.0.0.1:{port}/mcp", token=MCP_TOKEN, principal="assistant-user")
        finally:
            stop(proc)
    logged = stderr_path.read_text()
    assert all(token not in logged for token in (MCP_TOKEN, *ADMIN_TOKENS.values())), "a token was logged"


async def test_over_http_only_an_approvers_admin_token_decides_and_the_change_runs_once(
    steward: Steward, tmp_path: Path
) -> None:
    policy_with_an_mcp_token(steward, tmp_path)
    user, group = candidate(steward)
    with http_server(steward, tmp_path) as server:
        # An admin token can never call a tool, and an MCP token never reaches the admin API.
        await assert_refused(server, ADMIN_TOKENS["site-admin"])
        async with httpx2.AsyncClient() as http:
            admin_url = server.url.removesuffix("/mcp") + "/admin/requests"
            assert (await http.get(admin_url, headers={"Authorization": f"Bearer {MCP_TOKEN}"})).status_code == 401
            assert (await http.get(admin_url)).status_code == 401
        async with bearer_client(server.url, MCP_TOKEN) as client:
            pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
            request_id = pending["approval"]["request_id"]

            await assert_cannot_decide(steward, request_id, MCP_TOKEN, "did not accept this admin token")
            await assert_cannot_decide(steward, request_id, ADMIN_TOKENS["site-admin"] + "x", "did not accept")
            await assert_cannot_decide(steward, request_id, None, "an admin token is needed")
            await assert_cannot_decide(steward, request_id, ADMIN_TOKENS["other-analyst"], "not an approver")
            await assert_cannot_decide(steward, request_id, ADMIN_TOKENS["assistant-user"], "cannot approve it")
            waiting = structured(await client.call_tool("get_request", {"request_id": request_id}))
            assert waiting["status"] == "pending" and waiting["decisions"] == []
            assert membership_posts(steward, group.id) == []

            approved = await approvals(steward, "approve", request_id, "--reason", "ticket 4411",
                                       token=ADMIN_TOKENS["site-admin"])
            assert approved.returncode == 0 and b"approved (1 of 1)" in approved.stdout, approved.stderr
            view = await settled(client, request_id)
        shown = await approvals(steward, "show", request_id, token=ADMIN_TOKENS["site-admin"])
    assert view["status"] == "executed", view
    assert view["decisions"][0]["approver"] == "site-admin" and view["decisions"][0]["reason"] == "ticket 4411"
    assert shown.returncode == 0 and b"(executed)" in shown.stdout and b"decision  approved by site-admin" in shown.stdout
    assert user.id in steward.state.groups[group.id].member_ids
    assert len(membership_posts(steward, group.id)) == 1, "the approved change ran exactly once"


async def test_over_stdio_the_cli_finds_the_admin_api_and_the_change_runs_once(
    steward: Steward, tmp_path: Path
) -> None:
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))
    user, group = candidate(steward)
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "server.cli", "serve", "--transport", "stdio", "--policy", str(steward.policy_path)],
        env=site_env(steward),
        cwd=str(REPO),
    )
    async with Client(server) as client:
        pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
        request_id = pending["approval"]["request_id"]
        listed = await approvals(steward, "list", "--status", "pending", token=ADMIN_TOKENS["site-admin"])
        assert listed.returncode == 0 and request_id.encode() in listed.stdout, listed.stderr
        await assert_cannot_decide(steward, request_id, "not-a-token-anyone-was-given", "did not accept")
        assert structured(await client.call_tool("get_request", {"request_id": request_id}))["status"] == "pending"

        approved = await approvals(steward, "approve", request_id, token=ADMIN_TOKENS["site-admin"])
        assert approved.returncode == 0, approved.stderr
        view = await settled(client, request_id)
    assert view["status"] == "executed", view
    assert len(membership_posts(steward, group.id)) == 1
    assert not (tmp_path / "audit.admin.json").exists(), "the server removes its discovery file when it stops"


def printed_command(stderr_path: Path, proc: subprocess.Popen) -> str:
    """The approve command line `demo` prints, once it has printed it (bounded wait)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for line in stderr_path.read_text().splitlines():
            if " approvals approve <request id> " in line:
                return line.strip()
        if proc.poll() is not None:
            pytest.fail(f"demo exited early:\n{stderr_path.read_text()[-3000:]}")
        time.sleep(0.1)
    pytest.fail("demo never printed the approve command")


@contextmanager
def demo_http(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """`tableau-steward demo --transport http --no-auth` (what `make demo` runs) on the shipped policy;
    yields its port and the approve command it printed."""
    policy = tmp_path / "policies.yaml"
    policy.write_text((REPO / "policies.yaml").read_text())
    port = free_port()
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "demo", "--transport", "http", "--no-auth", "--port", str(port),
             "--policy", str(policy)],
            cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, proc, stderr_path)
            yield port, printed_command(stderr_path, proc)
        finally:
            stop(proc)


async def test_make_demo_prints_an_approver_token_and_the_command_that_approves(tmp_path: Path) -> None:
    with demo_http(tmp_path) as (port, line):
        async with bearer_client(f"http://127.0.0.1:{port}/mcp", None) as client:
            users = structured(await client.call_tool("list_users", {"site_role": "Explorer", "limit": 50}))
            groups = structured(await client.call_tool("list_groups", {"name": "Marketing"}))["groups"]
            group = next(g for g in groups if g["name"] == "Marketing")
            members = structured(await client.call_tool("list_users", {"group": group["id"], "limit": 500}))
            user = next(u for u in users["users"] if u["id"] not in {m["id"] for m in members["users"]})
            pending = structured(await client.call_tool("add_user_to_group", {"user": user["name"], "group": group["id"]}))
            request_id = pending["approval"]["request_id"]
            # Exactly what was printed, with the request id filled in.
            assignment, *argv = shlex.split(line.replace("<request id>", request_id))
            name, _, token = assignment.partition("=")
            assert name == "STEWARD_ADMIN_TOKEN" and len(token) >= 32
            approved = await anyio.run_process(argv, env=cli_env(STEWARD_ADMIN_TOKEN=token), check=False,
                                               cwd=tmp_path, stdin=subprocess.DEVNULL)
            assert approved.returncode == 0, approved.stderr
            view = await settled(client, request_id)
            members = structured(await client.call_tool("list_users", {"group": group["id"], "limit": 500}))
    assert view["status"] == "executed" and view["decisions"][0]["approver"] == "site-admin", view
    assert user["id"] in {m["id"] for m in members["users"]}


async def test_the_admin_api_refuses_bad_input_without_recording_a_decision(steward: Steward, tmp_path: Path) -> None:
    """The in-process server's loopback admin API, found through its discovery file, hit with raw HTTP."""
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))
    user, group = candidate(steward)
    approver = {"Authorization": f"Bearer {ADMIN_TOKENS['site-admin']}"}
    async with steward.client() as client, httpx2.AsyncClient() as http:
        base = read_discovery(discovery_path(tmp_path / "audit.sqlite"))
        assert base.startswith("http://127.0.0.1:") and base.endswith("/admin")
        pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
        request_id = pending["approval"]["request_id"]
        decide = f"{base}/requests/{request_id}/approve"
        answers = [
            await http.post(decide, headers=approver, content=b"not json"),
            await http.post(decide, headers=approver, json={"reason": "x", "approver": "someone-else"}),
            await http.post(decide, headers=approver, json={"reason": "x" * 5000}),
            await http.post(decide, headers=approver, content=b"{" * 20_000),
            await http.get(f"{base}/requests?status=whatever", headers=approver),
        ]
        assert [a.status_code for a in answers] == [400, 400, 400, 413, 400]
        assert all("error" in a.json() and "Traceback" not in a.text for a in answers)
        missing = await http.get(f"{base}/requests/apr_nope", headers=approver)
        whoami = (await http.get(f"{base}/whoami", headers=approver)).json()
        view = (await http.get(f"{base}/requests/{request_id}", headers=approver)).json()
    assert missing.status_code == 404 and whoami == {"principal": "site-admin", "approver": True}
    assert view["status"] == "pending" and view["decisions"] == [] and view["integrity"] == "ok"
    assert view["targets"] == [
        {"role": "user", "kind": "user", "id": user.id, "name": user.name, "site_role": user.site_role},
        {"role": "group", "kind": "group", "id": group.id, "name": group.name},
    ]
    assert view["site"]["server_url"] == steward.emulator.url.rstrip("/") and view["site"]["site_id"]


def test_a_discovery_file_is_trusted_only_if_it_is_yours_and_names_loopback(tmp_path: Path) -> None:
    path = discovery_path(tmp_path / "audit.sqlite")
    with pytest.raises(DiscoveryError, match="no server has written"):
        read_discovery(path)
    write_discovery(path, "http://127.0.0.1:9/admin")
    assert read_discovery(path) == "http://127.0.0.1:9/admin" and (path.stat().st_mode & 0o777) == 0o600
    path.chmod(0o622)
    with pytest.raises(DiscoveryError, match="writable by others"):
        read_discovery(path)
    write_discovery(path, "http://attacker.example:80/admin")  # the admin token would go there
    with pytest.raises(DiscoveryError, match="loopback"):
        read_discovery(path)
    remove_discovery(path, "http://127.0.0.1:9/admin")  # another server's file: left alone
    assert path.exists()
    remove_discovery(path, "http://attacker.example:80/admin")
    assert not path.exists()
