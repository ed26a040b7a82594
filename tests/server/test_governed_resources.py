"""Resources, prompts, refused calls and start-up through a real mcp.Client: what the policy allows, and
what the audit log shows (principal, decision, the Tableau requests of each read, the start-up sign-in)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from mcp import MCPError

from server.governance import AuditLog, load_policy
from server.governance.policy import DEFAULT_READABLES
from server.governed import tool_catalog
from server.resources import POLICY_URI, SITE_SUMMARY_URI
from tests.server.conftest import Steward, structured, write_policy

pytestmark = pytest.mark.anyio

READERS = """\
version: 1
mode: {mode}
local: {{principal: reader, roles: [analyst]}}
roles: {{analyst: {{}}}}
rules:
  - {{id: reads, tools: ["@read"], roles: [analyst], effect: allow{extra}}}
audit: {{path: audit.sqlite}}
"""


def use_policy(steward: Steward, tmp_path: Path, *, mode: str = "read-write", extra: str = "") -> None:
    steward.policy_path = write_policy(tmp_path, READERS.format(mode=mode, extra=extra))


def records(steward: Steward) -> list[dict]:
    log = AuditLog.open(steward.policy_path.parent / "audit.sqlite", readonly=True)
    try:
        assert log.verify().ok
        return [r.to_dict() for r in log.records()]
    finally:
        log.close()


async def test_a_principal_no_rule_names_cannot_read_resources_or_prompts(steward: Steward, tmp_path: Path) -> None:
    use_policy(steward, tmp_path)
    async with steward.client() as client:
        assert (await client.list_resources()).resources == []
        assert (await client.list_prompts()).prompts == []
        mark = len(steward.emulator.request_log)
        with pytest.raises(MCPError, match="Not allowed by policy: no rule lets principal 'reader' read resource"):
            await client.read_resource(SITE_SUMMARY_URI)
        with pytest.raises(MCPError, match="read prompt 'failed_refreshes'"):
            await client.get_prompt("failed_refreshes", {"days": "2"})
        assert steward.requests_since(mark) == []  # nothing reached Tableau
    log = records(steward)
    refused = [r for r in log if r["kind"] == "tool_call.outcome" and r["tool"].startswith(("resource:", "prompt:"))]
    assert [(r["tool"], r["status"]) for r in refused] == [
        ("resource:site_summary", "denied"),
        ("prompt:failed_refreshes", "denied"),
    ]
    intents = {r["call_id"]: r for r in log if r["kind"] == "tool_call.intent"}
    assert all(intents[r["call_id"]]["principal"] == "reader" for r in refused)
    assert intents[refused[1]["call_id"]]["arguments"] == {"days": "2"}


async def test_an_allowed_read_is_audited_with_its_principal_and_every_tableau_request(
    steward: Steward, tmp_path: Path
) -> None:
    use_policy(steward, tmp_path, extra=", resources: [site_summary], prompts: ['*']")
    async with steward.client() as client:
        names = {r.name for r in (await client.list_resources()).resources}
        assert names == {"site_summary"}  # the policy resource is not named for this principal
        assert len((await client.list_prompts()).prompts) == 6
        steward.emulator.control.reset_request_log()
        summary = await client.read_resource(SITE_SUMMARY_URI)
        served = [(e.method, e.path) for e in steward.emulator.request_log]
        with pytest.raises(MCPError, match="read resource 'policy'"):
            await client.read_resource(POLICY_URI)
        prompt = await client.get_prompt("failed_refreshes", {"days": "3"})
    assert '"counts"' in summary.contents[0].text and "last 3 day(s)" in prompt.messages[0].content.text
    log = records(steward)
    read = next(r for r in log if r["kind"] == "tool_call.intent" and r["tool"] == "resource:site_summary")
    assert read["principal"] == "reader" and read["arguments"] == {"uri": SITE_SUMMARY_URI}
    decision = next(r for r in log if r["kind"] == "tool_call.decision" and r["call_id"] == read["call_id"])
    assert (decision["effect"], decision["rule"]) == ("allow", "reads")
    requests = [r for r in log if r["kind"] == "tableau_request" and r["call_id"] == read["call_id"]]
    assert served and Counter((r["method"], r["path"]) for r in requests) == Counter(served)
    assert {r["principal"] for r in requests} == {"reader"}  # each request names who made the read
    outcome = next(r for r in log if r["kind"] == "tool_call.outcome" and r["call_id"] == read["call_id"])
    assert outcome["status"] == "ok"


async def test_start_up_requests_and_the_policy_are_on_record(steward: Steward, tmp_path: Path) -> None:
    use_policy(steward, tmp_path)
    async with steward.client() as client:
        served_at_start = [(e.method, e.path) for e in steward.emulator.request_log]
        structured(await client.call_tool("list_users", {"limit": 2}))
    log = records(steward)
    assert log[0]["kind"] == "policy.loaded"
    policy = load_policy(steward.policy_path, tool_catalog())
    assert log[0]["policy_hash"] == policy.hash and log[0]["reason"] == "start" and log[0]["mode"] == "read-write"
    connect = [(r["method"], r["path"]) for r in log if r["kind"] == "tableau_request" and r["call_id"] == "tableau:connect"]
    assert any(path.endswith("/auth/signin") for _, path in connect)
    assert any(path.endswith("/serverInfo") for _, path in connect)
    assert Counter(connect) == Counter(e for e in served_at_start if e in set(connect))
    assert all(r.get("call_id") for r in log if r["kind"] == "tableau_request"), "every request has its operation"
    assert {r["principal"] for r in log if r["kind"] == "tableau_request" and r["call_id"] == "tableau:connect"} == {
        "(server)"
    }
    call = next(r["call_id"] for r in log if r["kind"] == "tool_call.intent" and r["tool"] == "list_users")
    assert {r["principal"] for r in log if r["kind"] == "tableau_request" and r["call_id"] == call} == {"reader"}


async def test_refused_calls_are_audited_hidden_tools_included(steward: Steward, tmp_path: Path) -> None:
    use_policy(steward, tmp_path, mode="read-only")
    async with steward.client() as client:
        mark = len(steward.emulator.request_log)
        hidden = await client.call_tool("add_user_to_group", {"user": "x", "group": "y"})
        unknown = await client.call_tool("drop_site", {})
        invalid = await client.call_tool("list_users", {"limit": "many"})
        assert hidden.is_error and unknown.is_error and invalid.is_error
        assert steward.requests_since(mark) == []
    refusals = [(r["principal"], r["tool"], r["reason"]) for r in records(steward) if r["kind"] == "tool_call.refused"]
    assert refusals[:2] == [
        ("reader", "add_user_to_group", "hidden by the policy (answered as an unknown tool)"),
        ("reader", "drop_site", "no such tool"),
    ]
    assert refusals[2][:2] == ("reader", "list_users") and refusals[2][2].startswith("invalid arguments: 'limit' must be a whole number")
    assert len(refusals) == 3


async def test_the_policy_knows_exactly_the_resources_and_prompts_the_server_offers(steward: Steward) -> None:
    async with steward.client() as client:  # OPEN_POLICY: everything named for the tester
        resources = {r.name for r in (await client.list_resources()).resources}
        prompts = {p.name for p in (await client.list_prompts()).prompts}
    assert resources == DEFAULT_READABLES["resource"] and prompts == DEFAULT_READABLES["prompt"]
