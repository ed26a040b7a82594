"""The server over its real transports: stdio and streamable HTTP (bearer tokens), as the CLI starts it.

Also: `mode: read-only` through an in-process client hides the write tools and answers a call to one
exactly like a call to a tool that does not exist, without touching Tableau.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from emulator.generator import build_site
from server.governance.policy import hash_token
from server.serve_cli import DEMO_PAT_SECRET
from tests.conftest import signing_key_env
from tests.server.conftest import OPEN_POLICY, Steward, error_text, structured, write_policy
from tools.registry import TOOLS

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
ALL_TOOLS = {spec.name for spec in TOOLS}
READ_TOOLS = {spec.name for spec in TOOLS if not spec.is_write}
WRITE_TOOLS = ALL_TOOLS - READ_TOOLS
START_TIMEOUT = 60.0  # seconds a server subprocess gets to start answering (bounded wait, not an assertion)


def open_policy(directory: Path) -> Path:
    """OPEN_POLICY (everything allowed for the local principal) with its audit store inside `directory`."""
    text = textwrap.dedent(OPEN_POLICY).replace("path: audit.sqlite", f"path: {directory / 'audit.sqlite'}")
    path = directory / "open-policy.yaml"
    path.write_text(text)
    return path


def token_policy(directory: Path, token: str, *, principal: str = "http-reader") -> Path:
    """A policy like the shipped one: a local principal AND one HTTP token, both allowed every read tool.

    The local principal is there on purpose: over authenticated HTTP a request without a valid token
    must be refused, never quietly run as the local principal.
    """
    text = f"""\
        version: 1
        mode: read-write
        roles:
          reader: {{}}
        local:
          principal: local-user
          roles: [reader]
        http:
          tokens:
            - hash: {hash_token(token)}
              principal: {principal}
              roles: [reader]
        rules:
          - id: read-tools
            tools: ["@read"]
            resources: [policy]
            roles: [reader]
            effect: allow
        audit:
          path: {directory / "audit.sqlite"}
        """
    path = directory / "token-policy.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def cli_env(**extra: str) -> dict[str, str]:
    """The test's environment without Tableau or Steward settings that could leak into the subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABLEAU_", "STEWARD_"))}
    env.update(signing_key_env())
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, stderr_path: Path | None = None) -> None:
    """Bounded wait until 127.0.0.1:port accepts connections; fails early if the process exits."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = stderr_path.read_text() if stderr_path else ""
            pytest.fail(f"the server exited with {proc.returncode} before answering:\n{err[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    pytest.fail(f"nothing answered on 127.0.0.1:{port} within {START_TIMEOUT:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def owner_counts(site) -> tuple[int, int]:
    """(distinct owners, owned items) over workbooks, data sources, flows and projects: what find_owners covers."""
    owners = [
        item.owner_id
        for collection in (site.workbooks, site.datasources, site.flows, site.projects)
        for item in collection.values()
    ]
    return len(set(owners)), len(owners)


# -- stdio -------------------------------------------------------------------------------------------


async def test_stdio_demo_serves_the_generated_site_and_keeps_secrets_out_of_stderr(tmp_path: Path) -> None:
    site = build_site("demo")  # what `demo` builds: seed 7, content URL "demo"
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "server.cli",
            "demo",
            "--transport",
            "stdio",
            "--policy",
            str(open_policy(tmp_path)),
            "--log-level",
            "DEBUG",
        ],
        cwd=str(REPO),
    )
    with (tmp_path / "stderr.txt").open("w+") as errlog:
        # The session itself proves stdout carries nothing but MCP: any stray byte breaks the client.
        async with Client(stdio_client(params, errlog=errlog)) as client:
            tools = await client.list_tools()
            content = structured(await client.call_tool("list_content", {"limit": 500}))
            owners = structured(await client.call_tool("find_owners", {"limit": 200}))
            users = structured(await client.call_tool("list_users", {"limit": 500}))
        errlog.seek(0)
        stderr = errlog.read()

    assert {t.name for t in tools.tools} == ALL_TOOLS
    assert content["kind"] == "workbook"
    assert content["total"] == len(site.workbooks)
    assert {i["name"] for i in content["items"]} <= {wb.name for wb in site.workbooks.values()}
    assert (content["next_cursor"] is not None) == (len(content["items"]) < content["total"])
    total_owners, total_items = owner_counts(site)
    assert owners["total_owners"] == total_owners
    assert owners["total_items"] == total_items
    assert (owners["next_cursor"] is not None) == (len(owners["owners"]) < total_owners)
    assert users["total"] == len(site.users)
    assert {u["name"] for u in users["users"]} <= {u.name for u in site.users.values()}

    assert "signed in" in stderr, "the server logs to stderr (the check below would be vacuous otherwise)"
    assert DEMO_PAT_SECRET not in stderr


# -- streamable HTTP: refusing to start ---------------------------------------------------------------

# `serve` needs TABLEAU_* settings to get as far as the policy check; nothing is contacted before it.
FAKE_SITE_ENV = {
    "TABLEAU_SERVER_URL": "http://127.0.0.1:9",
    "TABLEAU_SITE_ID": "demo",
    "TABLEAU_PAT_NAME": "unused",
    "TABLEAU_PAT_SECRET": "unused-secret",
}


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # subprocess.run kills the child if the timeout expires (a server that started by mistake).
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_http_without_tokens_refuses_to_start(command: str, tmp_path: Path) -> None:
    result = run_cli(
        [command, "--transport", "http", "--port", str(free_port()), "--policy", str(open_policy(tmp_path))],
        cli_env(**FAKE_SITE_ENV),
    )
    assert result.returncode != 0
    assert "tokens" in result.stderr, result.stderr
    assert "MCP endpoint" not in result.stdout


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_no_auth_is_refused_off_loopback(command: str, tmp_path: Path) -> None:
    result = run_cli(
        [
            command,
            "--transport",
            "http",
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
            "--no-auth",
            "--policy",
            str(open_policy(tmp_path)),
        ],
        cli_env(**FAKE_SITE_ENV),
    )
    assert result.returncode != 0
    assert "--no-auth" in result.stderr and "loopback" in result.stderr, result.stderr


# -- streamable HTTP with bearer tokens ---------------------------------------------------------------


@dataclass
class HttpServer:
    url: str
    token: str
    principal: str


@contextlib.asynccontextmanager
async def bearer_client(url: str, token: str | None) -> AsyncIterator[Client]:
    """An MCP client over streamable HTTP sending `Authorization: Bearer <token>` (no header for None)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    # The transport leaves a caller's httpx2 client open, so this context owns it.
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=120.0)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test_transports", "version": "0"},
    },
}


async def assert_authorised(server: HttpServer) -> None:
    async with bearer_client(server.url, server.token) as client:
        tools = await client.list_tools()
        users = structured(await client.call_tool("list_users", {"limit": 5}))
        policy = await client.read_resource("steward://policy")
    assert {t.name for t in tools.tools} == READ_TOOLS
    assert users["total"] > 0 and 0 < len(users["users"]) <= 5
    # The token, not the local principal, decides who is calling.
    assert json.loads(policy.contents[0].text)["principal"] == server.principal


async def assert_refused(server: HttpServer, token: str | None) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient() as http:
        response = await http.post(server.url, json=INITIALIZE, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
    # The client raises an MCPError, wrapped in task-group ExceptionGroups.
    with pytest.raises(Exception) as raised:
        async with bearer_client(server.url, token) as client:
            await client.list_tools()
    assert any(isinstance(e, MCPError) for e in leaves(raised.value)), raised.value


def leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


@pytest.fixture(scope="module")
def demo_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """`tableau-steward demo --transport http` in a subprocess, with one bearer token in its policy."""
    directory = tmp_path_factory.mktemp("demo-http")
    token = secrets.token_urlsafe(32)
    port = free_port()
    args = [
        "-m",
        "server.cli",
        "demo",
        "--transport",
        "http",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--policy",
        str(token_policy(directory, token)),
    ]
    stderr_path = directory / "stderr.txt"
    with stderr_path.open("w") as err, (directory / "stdout.txt").open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=REPO, env=cli_env(), stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
        try:
            wait_for_port(port, proc, stderr_path)
            yield HttpServer(url=f"http://127.0.0.1:{port}/mcp", token=token, principal="http-reader")
        finally:
            stop(proc)
    assert token not in stderr_path.read_text(), "the bearer token must never be logged"
    assert token not in (directory / "stdout.txt").read_text()
    store = b"".join(p.read_bytes() for p in directory.glob("audit.sqlite*"))
    assert store, "the HTTP calls must have been audited"
    assert token.encode() not in store, "the bearer token must never reach the audit store"



async def test_http_demo_with_the_right_token_lists_tools_and_calls_list_users(demo_http: HttpServer) -> None:
    await assert_authorised(demo_http)


async def test_http_demo_without_a_token_is_refused(demo_http: HttpServer) -> None:
    await assert_refused(demo_http, None)


async def test_http_demo_with_a_wrong_token_is_refused(demo_http: HttpServer) -> None:
    await assert_refused(demo_http, secrets.token_urlsafe(32))


@contextlib.asynccontextmanager
async def governed_http_server(steward: Steward, token: str, principal: str) -> AsyncIterator[HttpServer]:
    """The governed server over real streamable HTTP in this event loop, built the way auth works today:
    with ready `Services` whose governance is opened for HTTP (so build_server installs the token verifier)."""
    from server.governed import Governance
    from server.pipeline import Services
    from server.tableau import TableauClient

    port = free_port()
    policy_path = token_policy(steward.policy_path.parent, token, principal=principal)
    governance = Governance.open(policy_path, transport="http", host="127.0.0.1", port=port)
    try:
        async with (
            TableauClient(steward.settings()) as tableau,
            serving_http(Services(tableau=tableau, governance=governance), port) as url,
        ):
            yield HttpServer(url=url, token=token, principal=principal)
    finally:
        governance.close()


@contextlib.asynccontextmanager
async def serving_http(services: object, port: int) -> AsyncIterator[str]:
    """`build_server(services)` over real streamable HTTP on `port` in this event loop; yields the MCP URL."""
    import anyio
    import uvicorn

    from server.app import build_server

    app = build_server(services).streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(START_TIMEOUT):
            while not server.started:
                await anyio.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            server.should_exit = True


async def test_bearer_tokens_over_http_map_to_principals_and_refuse_the_rest(steward: Steward) -> None:
    """What the CLI should do (see HTTP_AUTH_NOT_WIRED), checked through the same verifier and app."""
    token = secrets.token_urlsafe(32)
    async with governed_http_server(steward, token, "alice") as server:
        await assert_authorised(server)
        await assert_refused(server, None)
        await assert_refused(server, token + "x")


# -- read-only mode ------------------------------------------------------------------------------------

READ_ONLY_POLICY = OPEN_POLICY.replace("mode: read-write", "mode: read-only")


def _read_only_call(steward: Steward) -> dict[str, str]:
    state = steward.state
    group = next(g for g in state.groups.values() if g.name not in ("All Users", "Administrators"))
    user = next(
        u for u in state.users.values() if u.id not in group.member_ids and u.site_role != "Unlicensed"
    )
    return {"user": user.name, "group": group.name}


async def test_read_only_mode_hides_write_tools_and_a_write_call_never_reaches_tableau(
    steward: Steward,
) -> None:
    write_policy(steward.policy_path.parent, READ_ONLY_POLICY)
    arguments = _read_only_call(steward)
    group = next(g for g in steward.state.groups.values() if g.name == arguments["group"])
    members_before = set(group.member_ids)
    async with steward.client() as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        mark = len(steward.emulator.request_log)
        result = await client.call_tool("add_user_to_group", arguments)
        made = steward.requests_since(mark)
    assert listed == READ_TOOLS and not (listed & WRITE_TOOLS)
    assert result.is_error and "Unknown tool" in error_text(result)
    assert made == [], [f"{e.method} {e.path}" for e in made]
    assert group.member_ids == members_before


async def test_read_only_write_call_answers_exactly_like_an_unknown_tool(steward: Steward) -> None:
    write_policy(steward.policy_path.parent, READ_ONLY_POLICY)
    arguments = _read_only_call(steward)
    async with steward.client() as client:
        answers = {
            name: [await client.call_tool(name, args) for args in (arguments, {})]
            for name in ("add_user_to_group", "no_such_tool")
        }
    hidden = [(r.is_error, error_text(r), r.structured_content) for r in answers["add_user_to_group"]]
    unknown = [
        (r.is_error, error_text(r).replace("no_such_tool", "add_user_to_group"), r.structured_content)
        for r in answers["no_such_tool"]
    ]
    assert unknown[0][1] == "Unknown tool: add_user_to_group"
    assert hidden == unknown
