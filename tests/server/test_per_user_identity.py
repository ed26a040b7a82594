"""`identity: per_user`: each principal signs in to Tableau as its own user through the connected app,
so Tableau's permissions bound every answer and every change (issue 14, item 1).

Two bearer tokens over real streamable HTTP map to an Explorer and a site administrator of the demo
site; TSC signed in as the same users (JWTAuth against the emulator) is the reference.
"""

from __future__ import annotations

import json
import secrets
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import tableauserverclient as TSC

from server.config import ConnectedApp, Settings
from server.governance.policy import hash_token
from tests.server.conftest import Steward, error_text, settled, structured
from tests.server.test_governed_resources import records
from tests.server.test_transports import bearer_client, free_port, serving_http

pytestmark = pytest.mark.anyio


@dataclass
class Caller:
    principal: str
    token: str
    tableau_user: str | None


def _explorer(steward: Steward) -> str:
    """An Explorer of the demo site who sees fewer workbooks than the administrator (and is in no admin group)."""
    from emulator.authz import may_view

    state = steward.state
    for user in state.users.values():
        if user.site_role == "Explorer":
            seen = sum(may_view(state, user, "workbooks", wb) for wb in state.workbooks.values())
            if 0 < seen < len(state.workbooks):
                return user.name
    raise AssertionError("the demo site has no Explorer with a partial view")


EVERYTHING = """\
  - id: everything
    tools: ["*"]
    resources: ["*"]
    prompts: ["*"]
    roles: [analyst]
    effect: allow
"""

# sam (the site administrator's principal) approves; jordan's changes wait for approval.
GATED = """\
  - {id: reads, tools: ["@read"], roles: [analyst], effect: allow}
  - {id: writes-need-approval, tools: ["@write"], principals: [jordan], effect: require_approval}
approvals:
  approvers: {principals: [sam]}
"""


def _policy(steward: Steward, callers: list[Caller], rules: str = EVERYTHING) -> None:
    principals = "".join(
        f"  {c.principal}:\n    tableau_user: {c.tableau_user}\n" for c in callers if c.tableau_user is not None
    )
    tokens = "".join(
        f"    - {{hash: '{hash_token(c.token)}', principal: {c.principal}, roles: [analyst]}}\n" for c in callers
    )
    text = textwrap.dedent("""\
        version: 1
        mode: read-write
        identity: per_user
        roles:
          analyst: {}
        """) + f"principals:\n{principals}http:\n  tokens:\n{tokens}rules:\n{rules}" + textwrap.dedent(f"""\
        audit:
          path: {steward.policy_path.parent / 'audit.sqlite'}
        """)
    steward.policy_path.write_text(text)


def _settings(steward: Steward) -> Settings:
    app = next(iter(steward.state.connected_apps.values()))
    connected_app = ConnectedApp(client_id=app.client_id, secret_id=app.secret_id, secret_value=app.secret_value)
    return steward.settings().model_copy(update={"connected_app": connected_app})


@asynccontextmanager
async def per_user_server(steward: Steward, callers: list[Caller], rules: str = EVERYTHING) -> AsyncIterator[Any]:
    """The governed server over HTTP with per-user sessions; yields (MCP URL, its Governance)."""
    from server.governed import Governance
    from server.pipeline import Services
    from server.tableau import TableauClient
    from server.tableau.identities import UserSessions

    _policy(steward, callers, rules)
    port = free_port()
    governance = Governance.open(steward.policy_path, transport="http", host="127.0.0.1", port=port)
    settings = _settings(steward)
    identities = UserSessions(settings)
    try:
        async with TableauClient(settings) as tableau:
            services = Services(tableau=tableau, governance=governance, identities=identities)
            try:
                async with serving_http(services, port) as url:
                    yield url, governance
            finally:
                await identities.close()
    finally:
        governance.close()


def _tsc_as(steward: Steward, user_name: str) -> TSC.Server:
    """The reference: TSC itself, signed in as `user_name` with a connected-app JWT."""
    app = next(iter(steward.state.connected_apps.values()))
    claims = {"iss": app.client_id, "sub": user_name, "aud": "tableau", "exp": int(time.time()) + 300,
              "jti": secrets.token_hex(8), "scp": ["tableau:content:read"]}
    token = jwt.encode(claims, app.secret_value, algorithm="HS256", headers={"kid": app.secret_id, "iss": app.client_id})
    server = TSC.Server(steward.emulator.url, use_server_version=True, http_options={"timeout": 10})
    server.auth.sign_in(TSC.JWTAuth(token, site_id=steward.state.content_url))
    return server


def _callers(steward: Steward) -> tuple[Caller, Caller, Caller]:
    explorer = Caller("jordan", secrets.token_urlsafe(24), _explorer(steward))
    admin = Caller("sam", secrets.token_urlsafe(24), steward.state.site_admin().name)
    unmapped = Caller("drifter", secrets.token_urlsafe(24), None)
    return explorer, admin, unmapped


def _sign_ins(steward: Steward, mark: int) -> int:
    return sum(1 for e in steward.requests_since(mark) if e.method == "POST" and e.path.endswith("/auth/signin"))


async def test_each_principal_sees_what_its_tableau_user_sees_with_one_sign_in_each(steward: Steward) -> None:
    explorer, admin, unmapped = _callers(steward)
    async with per_user_server(steward, [explorer, admin, unmapped]) as (url, _):
        mark = len(steward.emulator.request_log)
        totals: dict[str, list[int]] = {}
        identities: dict[str, dict] = {}
        summaries: dict[str, dict] = {}
        for caller in (explorer, admin):
            async with bearer_client(url, caller.token) as client:
                identities[caller.principal] = structured(await client.call_tool("whoami", {}))
                totals[caller.principal] = [
                    structured(await client.call_tool("list_content", {"kind": kind, "limit": 5}))["total"]
                    for kind in ("workbook", "workbook", "datasource")
                ]
                summary = await client.read_resource("tableau://site/summary")
                summaries[caller.principal] = json.loads(summary.contents[0].text)["counts"]
        sign_ins = _sign_ins(steward, mark)
    for caller in (explorer, admin):
        reference = _tsc_as(steward, caller.tableau_user)
        workbooks = reference.workbooks.get(TSC.RequestOptions(pagesize=1))[1].total_available
        datasources = reference.datasources.get(TSC.RequestOptions(pagesize=1))[1].total_available
        assert totals[caller.principal] == [workbooks, workbooks, datasources]
        assert summaries[caller.principal]["workbooks"] == workbooks  # resources read as the caller too
        assert identities[caller.principal]["tableau_user"] == caller.tableau_user
        assert identities[caller.principal]["identity"] == "per_user"
    assert totals[explorer.principal][0] < totals[admin.principal][0] == len(steward.state.workbooks)
    # Ten calls and reads by two users: one sign-in per user, each session reused for the user's later calls.
    assert sign_ins == 2
    reads = [r for r in records(steward) if r["kind"] == "tool_call.intent" and r["tool"] == "resource:site_summary"]
    assert sorted((r["principal"], r["tableau_user"]) for r in reads) == sorted(
        (c.principal, c.tableau_user) for c in (explorer, admin)
    )


async def test_a_write_tableau_forbids_fails_with_tableaus_reason_though_the_policy_allows_it(
    steward: Steward,
) -> None:
    explorer, admin, _ = _callers(steward)
    state = steward.state
    group = next(g for g in state.groups.values() if g.name not in ("All Users", "Administrators"))
    user = next(u for u in state.users.values() if u.id not in group.member_ids and u.site_role != "Unlicensed")
    before = set(group.member_ids)
    async with per_user_server(steward, [explorer, admin]) as (url, _), bearer_client(url, explorer.token) as client:
        result = await client.call_tool("add_user_to_group", {"user": user.name, "group": group.name})
    text = error_text(result)
    assert "Only site administrators can change group membership" in text, text
    assert group.member_ids == before
    intent = next(r for r in records(steward) if r["kind"] == "tool_call.intent" and r["tool"] == "add_user_to_group")
    assert intent["principal"] == explorer.principal and intent["tableau_user"] == explorer.tableau_user


async def test_an_unmapped_principal_is_refused_before_anything_reaches_tableau(steward: Steward) -> None:
    explorer, admin, unmapped = _callers(steward)
    async with per_user_server(steward, [explorer, admin, unmapped]) as (url, _):
        mark = len(steward.emulator.request_log)
        async with bearer_client(url, unmapped.token) as client:
            result = await client.call_tool("list_content", {"kind": "workbook"})
        made = steward.requests_since(mark)
    text = error_text(result)
    assert "has no Tableau user" in text and "principals.drifter.tableau_user" in text, text
    assert made == [], [f"{e.method} {e.path}" for e in made]


async def test_an_approved_request_runs_as_the_requesters_tableau_user_not_the_approvers(steward: Steward) -> None:
    """The administrator's approval cannot lend the Explorer the administrator's Tableau rights."""
    explorer, admin, _ = _callers(steward)
    state = steward.state
    group = next(g for g in state.groups.values() if g.name not in ("All Users", "Administrators"))
    user = next(u for u in state.users.values() if u.id not in group.member_ids and u.site_role != "Unlicensed")
    gated = per_user_server(steward, [explorer, admin], GATED)
    async with gated as (url, governance), bearer_client(url, explorer.token) as client:
        pending = structured(await client.call_tool("add_user_to_group", {"user": user.name, "group": group.name}))
        request_id = pending["approval"]["request_id"]
        governance.decide_request(admin.principal, request_id, approve=True, reason="looks fine")
        done = await settled(client, request_id)  # the server runs it on its own, as the requester
    assert done["status"] == "failed", done
    assert "Only site administrators can change group membership" in json.dumps(done["result"]), done
    assert user.id not in state.groups[group.id].member_ids
    run = [r for r in records(steward) if r["kind"] == "tool_call.intent" and r.get("approval_id") == request_id]
    assert [(r["principal"], r["tableau_user"]) for r in run] == [(explorer.principal, explorer.tableau_user)]


def test_serve_with_per_user_identity_and_no_connected_app_refuses_to_start(tmp_path) -> None:
    from tests.server.test_transports import FAKE_SITE_ENV, cli_env, open_policy, run_cli

    policy = open_policy(tmp_path)
    policy.write_text(policy.read_text().replace("mode: read-write\n", "mode: read-write\nidentity: per_user\n"))
    result = run_cli(["serve", "--policy", str(policy)], cli_env(**FAKE_SITE_ENV))
    assert result.returncode == 2
    assert "identity: per_user" in result.stderr and "TABLEAU_CONNECTED_APP_CLIENT_ID" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
