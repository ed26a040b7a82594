"""Three server processes behind one URL on one PostgreSQL store (docs/DEPLOY.md).

The replicas serve stateless streamable HTTP (--stateless-http) behind a round-robin TCP balancer, each
with its own PAT (one PAT per replica: Tableau keeps one session per PAT). Under 200 concurrent reads and
20 gated writes approved through the admin API with an admin token, with the database stopped and started
in the middle: every read answers correctly, calls are refused while the store is down, each approved
request runs exactly once (the emulator's state and request log), and the store holds one chain that
verifies with contiguous sequence numbers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from emulator.testing import add_admin_pat
from server.governance.audit import AuditLog
from tests.server.conftest import Steward, error_text, structured
from tests.server.test_admin_api import MCP_TOKEN, policy_with_an_mcp_token
from tests.server.test_governance_flow import ADMIN_TOKENS
from tests.server.test_operations_endpoints import sample
from tests.server.test_transports import REPO, cli_env, free_port, stop, wait_for_port

pytestmark = pytest.mark.anyio

REPLICAS = 3
READS = 200
APPROVALS = 20
IN_FLIGHT = 20  # concurrent calls at once (the machine is small)


@contextmanager
def round_robin(ports: list[int]) -> Iterator[int]:
    """A TCP balancer on a free port: each new connection goes to the next replica (no affinity)."""
    backends = itertools.cycle(ports)
    ready, port = threading.Event(), free_port()
    loop = asyncio.new_event_loop()
    stopping = asyncio.Event()
    handlers: set[asyncio.Task] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            server_r, server_w = await asyncio.open_connection("127.0.0.1", next(backends))
            await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        ready.set()
        await stopping.wait()
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(10)


@contextmanager
def replicas(steward: Steward, tmp_path: Path, store_url: str) -> Iterator[list[int]]:
    procs, ports = [], []
    try:
        for i in range(REPLICAS):
            pat = add_admin_pat(steward.state, f"replica-{i}", f"replica-{i}-secret-for-tests")
            port = free_port()
            env = cli_env(
                TABLEAU_SERVER_URL=steward.emulator.url, TABLEAU_SITE_ID=steward.state.content_url,
                TABLEAU_PAT_NAME=pat[0], TABLEAU_PAT_SECRET=pat[1], STEWARD_STORE_URL=store_url,
            )
            err = (tmp_path / f"replica-{i}.log").open("w")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", "--transport", "http", "--stateless-http",
                 "--host", "127.0.0.1", "--port", str(port), "--policy", str(steward.policy_path)],
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
            ))
            ports.append(port)
        for i, (proc, port) in enumerate(zip(procs, ports)):
            wait_for_port(port, proc, tmp_path / f"replica-{i}.log")
        yield ports
    finally:
        for proc in procs:
            stop(proc)


@contextlib.asynccontextmanager
async def balanced_client(url: str) -> AsyncIterator[Client]:
    """An MCP client that opens a new connection per request: each lands on the next replica, and none is
    reused after a replica closed it as idle (a race a TCP balancer passes on)."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {MCP_TOKEN}"}, timeout=httpx2.Timeout(30.0, read=120.0),
                           limits=httpx2.Limits(max_keepalive_connections=0)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def eligible_pairs(steward: Steward) -> list[tuple[str, str, str]]:
    """(user email, group name, group id) pairs the policy gates (not admin groups), user not yet a member."""
    groups = [g for g in steward.state.groups.values()
              if g.name not in ("All Users", "Administrators") and not g.name.startswith("Site Admin")]
    pairs = []
    for user in steward.state.users.values():
        for group in groups:
            if user.id not in group.member_ids and user.site_role in ("Explorer", "Viewer", "Creator"):
                pairs.append((user.email, group.name, group.id, user.id))
                break
        if len(pairs) == APPROVALS:
            return pairs
    raise AssertionError("the demo site has too few candidates")


async def settled(http, base: str, request_ids: list[str], tmp_path: Path) -> None:
    """Wait (bounded) until none of the requests is approved or executing; all must have executed."""
    for _ in range(300):  # 60 s at most
        views = [(await http.get(f"{base}/admin/requests/{r}", headers={
            "Authorization": f"Bearer {ADMIN_TOKENS['site-admin']}"})).json() for r in request_ids]
        if all(v["status"] not in ("approved", "executing") for v in views):
            break
        await anyio.sleep(0.2)
    logs = "".join((tmp_path / f"replica-{i}.log").read_text()[-1500:] for i in range(REPLICAS))
    assert [v["status"] for v in views] == ["executed"] * len(request_ids), ([v["status"] for v in views], logs)


async def test_three_replicas_on_one_postgres_store(steward: Steward, tmp_path: Path, postgres_cluster) -> None:
    store_url = postgres_cluster.new_database()
    policy_with_an_mcp_token(steward, tmp_path)
    pairs = eligible_pairs(steward)
    users_total = len(steward.state.users)
    answers: list[int] = []

    async def reads(client, count: int) -> None:
        limit = anyio.Semaphore(IN_FLIGHT)

        async def one() -> None:
            async with limit:
                answers.append(structured(await client.call_tool("list_users", {"limit": 2}))["total"])

        async with anyio.create_task_group() as tasks:
            for _ in range(count):
                tasks.start_soon(one)

    async def approve(http, base: str, request_id: str) -> None:
        reply = await http.post(f"{base}/admin/requests/{request_id}/approve", json={"reason": "replica test"},
                                headers={"Authorization": f"Bearer {ADMIN_TOKENS['site-admin']}"})
        assert reply.status_code == 200, reply.text

    with replicas(steward, tmp_path, store_url) as ports, round_robin(ports) as port:
        base = f"http://127.0.0.1:{port}"
        async with balanced_client(f"{base}/mcp") as client, httpx2.AsyncClient(timeout=30) as http:
            request_ids = []
            for email, group, _gid, _uid in pairs:
                pending = structured(await client.call_tool("add_user_to_group", {"user": email, "group": group}))
                assert pending["status"] == "pending_approval"
                request_ids.append(pending["approval"]["request_id"])
            await reads(client, READS // 2)
            for request_id in request_ids[: APPROVALS // 2]:
                await approve(http, base, request_id)
            await settled(http, base, request_ids[: APPROVALS // 2], tmp_path)

            postgres_cluster.stop()  # the store goes away mid-run
            try:
                down = await client.call_tool("list_users", {"limit": 2})
                assert down.is_error and "audit store" in error_text(down), error_text(down)
                not_ready = [await http.get(f"http://127.0.0.1:{p}/readyz") for p in ports]
                assert all(r.status_code == 503 and not r.json()["checks"]["store"]["ok"] for r in not_ready)
            finally:
                postgres_cluster.start()

            for request_id in request_ids[APPROVALS // 2:]:
                await approve(http, base, request_id)
            await reads(client, READS // 2)
            await settled(http, base, request_ids, tmp_path)
            ready = [await http.get(f"http://127.0.0.1:{p}/readyz") for p in ports]
            assert all(r.status_code == 200 for r in ready), [r.text for r in ready]
            served = [sample((await http.get(f"http://127.0.0.1:{p}/metrics")).text,
                             'steward_tool_calls_total{outcome="ok",tool="list_users"}') for p in ports]
            assert sum(served) == READS and all(served), served  # the balancer spread the calls

    assert answers == [users_total] * READS
    # Each approved change ran exactly once: the members are there, and one POST per (group, user).
    for _email, _group, gid, uid in pairs:
        assert uid in steward.state.groups[gid].member_ids
    posts = collections.Counter(e.path.rsplit("/groups/", 1)[1] for e in steward.emulator.request_log
                                if e.method == "POST" and e.path.endswith("/users") and "/groups/" in e.path)
    expected = collections.Counter(f"{gid}/users" for _e, _g, gid, _u in pairs)
    assert posts == expected
    log = AuditLog.open(store_url, readonly=True)
    result = log.verify()
    records = log.records()
    assert result.ok, result.reason
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    executing = collections.Counter(r.fields["approval_id"] for r in records if r.kind == "approval.executing")
    assert executing == collections.Counter(request_ids)
    outcomes = [r for r in records if r.kind == "tool_call.outcome" and r.fields["tool"] == "list_users"]
    assert len([r for r in outcomes if r.fields["status"] == "ok"]) == READS
    assert len({r.fields.get("key_id") for r in records if r.kind == "policy.loaded"}) == 1
    assert len([r for r in records if r.kind == "policy.loaded"]) == REPLICAS
