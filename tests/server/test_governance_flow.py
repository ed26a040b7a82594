"""Governance through a real mcp.Client: approval-gated writes, denials, audit fidelity, fail-closed, secrets."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

import anyio
import pytest

from emulator import generator
from server.cli import main as cli_main
from server.governance import ApprovalError, AuditLog, args_digest, hash_token
from server.governed import Governance
from tests.server.conftest import Steward, error_text, settled, structured, write_policy

pytestmark = pytest.mark.anyio

JWT_SHAPE = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")

# Admin tokens (audience admin): they decide through the admin API and can never call a tool.
ADMIN_TOKENS = {
    "site-admin": "site-admin-admin-token-for-tests-only",
    "other-analyst": "other-analyst-admin-token-for-tests",
    "assistant-user": "assistant-user-admin-token-for-tests",
}
_ADMIN_TOKEN_ENTRIES = "".join(
    f"    - {{{{hash: '{hash_token(token)}', principal: {name}, audience: admin}}}}\n"
    for name, token in ADMIN_TOKENS.items()
)

GATED_POLICY = """\
version: 1
mode: read-write
roles: {{analyst: {{}}, approver: {{}}}}
local: {{principal: assistant-user, roles: [analyst]}}
principals:
  site-admin: {{roles: [approver]}}
  other-analyst: {{roles: [analyst]}}
rules:
  - {{id: read-tools, tools: ["@read"], roles: [analyst, approver], effect: allow}}
  - {{id: writes-need-approval, tools: ["@write"], roles: [analyst], effect: require_approval}}
  - id: no-admin-groups
    tools: [add_user_to_group]
    principals: ["*"]
    effect: deny
    when: {{group_name: ["Administrators", "Site Admin*"]}}
approvals: {{approvers: {{roles: [approver]}}, required_approvals: 1, ttl: {ttl}}}
audit: {{path: audit.sqlite}}
http:
  tokens:
""" + _ADMIN_TOKEN_ENTRIES


@pytest.fixture
def gated(steward: Steward, tmp_path: Path) -> Steward:
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))
    return steward


def candidate(steward: Steward):
    state = steward.state
    group = next(g for g in state.groups.values() if g.name == "Marketing")
    user = next(u for u in state.users.values() if u.id not in group.member_ids and u.site_role == "Explorer")
    return user, group


def token_file(steward: Steward, principal: str) -> str:
    path = steward.policy_path.parent / f"{principal}.admin-token"
    path.write_text(ADMIN_TOKENS[principal] + "\n")
    path.chmod(0o600)
    return str(path)


async def approvals_cli(steward: Steward, *args: str, token_of: str = "site-admin") -> int:
    """`tableau-steward approvals ...` with `token_of`'s admin token, against the running server's admin API
    (found through the discovery file). In a worker thread: the in-process server answers on this loop."""
    argv = ["approvals", *args, "--policy", str(steward.policy_path), "--token-file", token_file(steward, token_of)]
    return await anyio.to_thread.run_sync(cli_main, argv)


def membership_posts(steward: Steward, group_id: str, since: int = 0) -> list:
    return [e for e in steward.requests_since(since) if e.method == "POST" and e.path.endswith(f"/groups/{group_id}/users")]


async def test_gated_add_waits_is_approved_from_the_cli_and_runs_exactly_once(gated: Steward, capsys) -> None:
    user, group = candidate(gated)
    async with gated.client() as client:
        pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
        assert pending["status"] == "pending_approval" and pending["result"] is None
        request_id = pending["approval"]["request_id"]
        assert f"is not in {group.name} ({len(group.member_ids)} members)" in pending["approval"]["preview"]
        assert user.id not in gated.state.groups[group.id].member_ids
        assert membership_posts(gated, group.id) == []

        # Nobody but a named approver other than the requester can approve, whatever admin token they hold.
        assert await approvals_cli(gated, "approve", request_id, token_of="assistant-user") != 0
        assert await approvals_cli(gated, "approve", request_id, token_of="other-analyst") != 0
        waiting = structured(await client.call_tool("get_request", {"request_id": request_id}))
        assert waiting["status"] == "pending" and membership_posts(gated, group.id) == []

        assert await approvals_cli(gated, "approve", request_id, "--reason", "ticket 4411") == 0
        done = await settled(client, request_id)  # the approval woke the server's runner: no get_request runs it
        assert done["status"] == "executed", done
        assert done["result"]["ok"] and done["result"]["output"]["status"] == "added" and done["decisions"][0]["approver"] == "site-admin"
        again = structured(await client.call_tool("get_request", {"request_id": request_id}))
        assert again["status"] == "executed"
    assert user.id in gated.state.groups[group.id].member_ids
    assert len(membership_posts(gated, group.id)) == 1, "the approved change ran exactly once"


async def test_replayed_or_altered_request_ids_cannot_run(gated: Steward) -> None:
    user, group = candidate(gated)
    async with gated.client() as client:
        pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
        request_id = pending["approval"]["request_id"]
        assert await approvals_cli(gated, "approve", request_id) == 0
        await settled(client, request_id)
    from server.governance import ApprovalStore

    POLICY_NOW = Governance.load(gated.policy_path)
    store = ApprovalStore.open(Path(gated.policy_path).parent / "audit.sqlite")
    request = store.get(request_id)
    with pytest.raises(ApprovalError) as replay:
        store.claim_for_execution(request_id, request.tool, request.args_digest, policy=POLICY_NOW)
    assert replay.value.code == "used"
    other_args = {"user": user.email, "group": "Administrators"}
    with pytest.raises(ApprovalError) as altered:
        store.claim_for_execution(request_id, request.tool, args_digest(other_args), policy=POLICY_NOW)
    assert altered.value.code in ("mismatch", "used")
    store.audit.close()
    assert len(membership_posts(gated, group.id)) == 1


async def test_someone_elses_request_id_is_unknown_to_the_assistant(gated: Steward) -> None:
    async with gated.client() as client:
        text = error_text(await client.call_tool("get_request", {"request_id": "apr_not-a-real-request"}))
    assert "No approval request" in text


async def test_expired_requests_cannot_be_approved(steward: Steward, tmp_path: Path) -> None:
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1s"))
    user, group = candidate(steward)
    async with steward.client() as client:
        pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
        request_id = pending["approval"]["request_id"]
        await anyio.sleep(1.5)
        assert await approvals_cli(steward, "approve", request_id) != 0
        expired = structured(await client.call_tool("get_request", {"request_id": request_id}))
    assert expired["status"] == "expired"
    assert user.id not in steward.state.groups[group.id].member_ids


async def test_denied_admin_group_is_refused_before_any_tableau_request(gated: Steward) -> None:
    user, _ = candidate(gated)
    async with gated.client() as client:
        mark = len(gated.emulator.request_log)
        text = error_text(await client.call_tool("add_user_to_group", {"user": user.email, "group": "Administrators"}))
        assert gated.requests_since(mark) == []
    assert "Not allowed by policy" in text and "no-admin-groups" in text


async def test_audit_records_every_tableau_request_the_emulator_served(steward: Steward) -> None:
    state = steward.state
    item = next(d for d in state.datasources.values() if d.has_extracts and not d.refresh_failure)
    async with steward.client() as client:
        steward.emulator.control.reset_request_log()
        structured(await client.call_tool("list_content", {"kind": "workbook", "limit": 5}))
        structured(await client.call_tool("inspect_permissions", {"kind": "project", "target": "Finance"}))
        steward.emulator.control.expire_sessions()  # the next call must sign in again, transparently
        structured(await client.call_tool("refresh_and_wait", {"kind": "datasource", "target": item.id}))
        served = [(e.method, e.path) for e in steward.emulator.request_log]
    log = AuditLog.open(Path(steward.policy_path).parent / "audit.sqlite", readonly=True)
    try:
        records = [r.to_dict() for r in log.records()]
        assert log.verify().ok
    finally:
        log.close()
    calls = {r["call_id"] for r in records if r["kind"] == "tool_call.intent"}
    audited = [(r["method"], r["path"]) for r in records if r["kind"] == "tableau_request" and r.get("call_id") in calls]
    # Concurrent page fetches may finish in another order than they were served: compare as multisets.
    assert Counter(audited) == Counter(served) and len(audited) == len(served)
    assert any(path.endswith("/auth/signin") for _, path in served), "the re-sign-in is audited too"


async def test_calls_are_refused_when_the_audit_log_cannot_be_written(steward: Steward) -> None:
    async with steward.services() as services:
        from mcp import Client

        from server.app import build_server

        async with Client(build_server(services)) as client:
            structured(await client.call_tool("list_groups", {}))
            conn = services.governance.audit.conn
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now "full"
            for _ in range(3):  # fill whatever free pages remain
                result = await client.call_tool("list_content", {"limit": 500})
                if result.is_error:
                    break
            text = error_text(result)
            refused_mark = len(steward.emulator.request_log)
            again = error_text(await client.call_tool("list_users", {}))
            assert steward.requests_since(refused_mark) == []
    assert "audit log cannot be written" in text and "audit log cannot be written" in again


async def test_no_secret_reaches_the_store_logs_errors_or_results(steward: Steward, tmp_path: Path, caplog) -> None:
    from server.config import Settings

    caplog.set_level(logging.DEBUG)
    state = steward.state
    admin = state.user_by_name(generator.ADMIN_NAME)
    app = next(iter(state.connected_apps.values()))
    url = steward.emulator.url
    env_password = {"TABLEAU_SERVER_URL": url, "TABLEAU_SITE_ID": "demo", "TABLEAU_USERNAME": admin.name,
                    "TABLEAU_PASSWORD": generator.ADMIN_PASSWORD}
    env_jwt = {"TABLEAU_SERVER_URL": url, "TABLEAU_SITE_ID": "demo", "TABLEAU_JWT_CLIENT_ID": app.client_id,
               "TABLEAU_JWT_SECRET_ID": app.secret_id, "TABLEAU_JWT_SECRET_VALUE": app.secret_value,
               "TABLEAU_JWT_USERNAME": admin.name}
    texts: list[str] = []
    session_tokens: set[str] = set()
    for settings in (steward.settings(), Settings.from_env(env_password), Settings.from_env(env_jwt)):
        async with steward.services_with(settings) as services:
            from mcp import Client

            from server.app import build_server

            async with Client(build_server(services)) as client:
                for name, args in [("list_users", {"limit": 5}),
                                   ("add_user_to_group", {"user": "nobody", "group": "Marketing"}),
                                   ("get_job", {"job_id": "00000000-0000-4000-8000-000000000000"})]:
                    result = await client.call_tool(name, args)
                    texts += [c.text for c in result.content]
                session_tokens |= set(steward.emulator.app.sessions._by_token)
    secrets = {
        "PAT secret": steward.settings().credentials.secret.get_secret_value(),
        "password": generator.ADMIN_PASSWORD,
        "connected app secret": app.secret_value,
        **{f"session token {i}": token for i, token in enumerate(session_tokens)},
    }
    assert session_tokens, "the scenario must have produced session tokens to look for"
    store = Path(steward.policy_path).parent
    haystacks = {
        "audit store": b"".join(p.read_bytes() for p in store.glob("audit.sqlite*")).decode("latin-1"),
        "logs": caplog.text,
        "tool results and errors": "\n".join(texts),
    }
    for where, text in haystacks.items():
        for what, value in secrets.items():
            assert value not in text, f"{what} leaked into the {where}"
        assert not JWT_SHAPE.search(text), f"something JWT-shaped leaked into the {where}"


def test_policy_check_and_explain_on_the_shipped_policy(capsys) -> None:
    assert cli_main(["policy", "check", "policies.yaml"]) == 0
    assert cli_main(["policy", "explain", "--tool", "add_user_to_group", "--args", "{}",
                     "--facts", '{"group_name": "Administrators", "target_user_site_role": "Explorer"}',
                     "--policy", "policies.yaml"]) in (0, 1)
    out = capsys.readouterr().out
    assert "deny" in out.lower() and "no-admin-groups" in out


async def test_a_gated_refresh_looks_its_target_up_once_for_facts_and_preview(gated: Steward) -> None:
    state = gated.state
    item = next(d for d in state.datasources.values() if d.has_extracts and not d.refresh_failure)
    async with gated.client() as client:
        await client.call_tool("list_content", {"kind": "project", "limit": 1})  # the project tree is cached now
        mark = len(gated.emulator.request_log)
        body = structured(await client.call_tool("refresh_and_wait", {"kind": "datasource", "target": item.name}))
    assert body["status"] == "pending_approval"
    assert item.id in body["approval"]["preview"]
    listings = [e for e in gated.requests_since(mark) if e.method == "GET" and e.path.endswith("/datasources")]
    assert len(listings) == 1
