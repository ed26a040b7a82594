"""The web approval console, driven in a real headless Chromium against a real server and emulated site.

The server runs as `tableau-steward serve --transport http` (a subprocess), the assistant is a real
`mcp.Client` over streamable HTTP, and an approver signs in at /console/ in Chromium (Debian's `chromium`,
driven by Playwright; `scripts/ensure-chromium.sh` installs it, and without it these tests fail, never skip).
Set STEWARD_UPDATE_SCREENSHOT=1 to rewrite docs/console.png from the main test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from server.governance import AuditLog
from tests.server.conftest import Steward, structured, write_policy
from tests.server.test_admin_api import MCP_TOKEN, http_server, policy_with_an_mcp_token, site_env
from tests.server.test_governance_flow import ADMIN_TOKENS, GATED_POLICY, candidate, membership_posts
from tests.server.test_transports import REPO, bearer_client

pytestmark = pytest.mark.anyio

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 30_000  # bounded waits for the page to catch up (never a timing assertion)


@asynccontextmanager
async def browser_page(base_url: str) -> AsyncIterator[object]:
    """A fresh Chromium page that records console errors (a CSP violation shows up there)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: run scripts/ensure-chromium.sh (make test does)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = await browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 900})
            page = await context.new_page()
            page.problems = []  # type: ignore[attr-defined]
            # Script errors and CSP violations; a refused sign-in's 401 (and the favicon's 404) are expected.
            page.on("pageerror", lambda e: page.problems.append(str(e)))  # type: ignore[attr-defined]
            page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
                    and page.problems.append(m.text))  # type: ignore[attr-defined]
            yield page
        finally:
            await browser.close()


async def sign_in(page, token: str) -> object:
    await page.goto("/console/")
    await page.get_by_label("Admin token").fill(token)
    async with page.expect_response(lambda r: r.url.endswith("/console/sign-in")) as answer:
        await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
    return await answer.value


def console_records(steward: Steward) -> list[dict]:
    with AuditLog.open(steward.policy_path.parent / "audit.sqlite", readonly=True) as log:
        return [r.to_dict() for r in log.records()]


async def test_an_approver_signs_in_sees_the_live_preview_approves_and_the_change_runs_once(
    steward: Steward, tmp_path: Path
) -> None:
    policy_with_an_mcp_token(steward, tmp_path)
    user, group = candidate(steward)
    with http_server(steward, tmp_path) as server:
        base = server.url.removesuffix("/mcp")
        async with browser_page(base) as page, bearer_client(server.url, MCP_TOKEN) as client:
            # The assistant's MCP token, and a token nobody was given, cannot sign in.
            for token in (MCP_TOKEN, "not-a-token-anyone-was-given"):
                refused = await sign_in(page, token)
                assert refused.status == 401
                assert "not an admin token" in await page.inner_text("main")
            assert not [c for c in await page.context.cookies() if c["name"] == "steward_console"]

            answer = await sign_in(page, ADMIN_TOKENS["site-admin"])
            assert answer.status == 303
            cookie = next(c for c in await page.context.cookies() if c["name"] == "steward_console")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
            assert "Signed in as site-admin" in await page.inner_text("header")
            assert "Nothing is waiting for a decision." in await page.inner_text("main")
            await page.evaluate("window.stillTheSamePage = true")

            # A new request appears without a reload, with its preview recomputed from the live site.
            pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
            request_id = pending["approval"]["request_id"]
            card = page.locator("article.request", has_text=request_id)
            await card.wait_for(timeout=WAIT_MS)
            assert await page.evaluate("window.stillTheSamePage === true"), "the page was reloaded"
            shown = await card.inner_text()
            assert f"is not in {group.name} ({len(group.member_ids)} members); approving adds them" in shown
            assert "recomputed from the live site just now" in shown
            assert "assistant-user" in shown and user.name in shown and group.id in shown
            assert "0 of 1 approval" in shown
            assert request_id in await page.inner_text("#live")

            # A POST without the session's CSRF token (or with another) decides nothing.
            for form in ({"reason": "forged"}, {"reason": "forged", "csrf": "x" * 43}):
                forged = await page.request.post(f"/console/requests/{request_id}/approve", form=form)
                assert forged.status == 403 and "security token" in await forged.text()
            assert membership_posts(steward, group.id) == []

            await card.get_by_label("Reason (required)").fill("ticket 4411")
            await card.get_by_role("button", name="Approve").click()
            await page.wait_for_load_state()
            assert f"Approved {request_id}: 1 of 1 approval" in await page.inner_text("main")

            # The server runs it; the page shows it executed, with its result, again without a reload.
            await page.evaluate("window.stillTheSamePage = true")
            done = page.locator("#history article.status-executed", has_text=request_id)
            done = page.locator("article.status-executed", has_text=request_id)
            await done.wait_for(timeout=WAIT_MS)
            assert await page.evaluate("window.stillTheSamePage === true")
            assert '"status":"added"' in (await done.inner_text()).replace(" ", "")
            assert "approved by site-admin" in await done.inner_text()

            # A second request waiting, for the screenshot: the console as an approver sees it.
            other = next(u for u in steward.state.users.values()
                         if u.id not in steward.state.groups[group.id].member_ids and u.site_role == "Viewer")
            await client.call_tool("add_user_to_group", {"user": other.email, "group": group.name})
            await page.locator("article.request").first.wait_for(timeout=WAIT_MS)
            await page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
            if os.environ.get("STEWARD_UPDATE_SCREENSHOT"):
                shutil.copy(tmp_path / "console.png", REPO / "docs" / "console.png")
            assert page.problems == [], page.problems  # no CSP violation, no script error
    assert user.id in steward.state.groups[group.id].member_ids
    assert len(membership_posts(steward, group.id)) == 1, "the approved change ran exactly once"
    forged = [r for r in console_records(steward) if r["kind"] == "approval.refused" and r["code"] == "csrf"]
    assert len(forged) == 2 and forged[0]["approval_id"] == request_id and forged[0]["actor"] == "site-admin"
    sign_ins = [r for r in console_records(steward) if r["kind"] == "console.sign_in"]
    assert [r["outcome"] for r in sign_ins] == ["refused", "refused", "ok"]
    assert sign_ins[2]["principal"] == "site-admin"
    assert all(MCP_TOKEN not in json.dumps(r) and ADMIN_TOKENS["site-admin"] not in json.dumps(r)
               for r in console_records(steward))


TWO_PERSON = (
    GATED_POLICY.format(ttl="1h")
    .replace("required_approvals: 1", "required_approvals: 2")
    .replace("other-analyst: {roles: [analyst]}", "other-analyst: {roles: [approver]}")
    + f"    - {{hash: '{__import__('server.governance', fromlist=['hash_token']).hash_token(MCP_TOKEN)}', "
    "principal: assistant-user}\n"
)


async def test_two_person_progress_the_requester_is_refused_and_the_trail_is_shown(
    steward: Steward, tmp_path: Path
) -> None:
    steward.policy_path = write_policy(tmp_path, TWO_PERSON)
    user, group = candidate(steward)
    user.full_name = '<img src=x onerror="alert(1)"> Eve\u202etxt.exe'  # markup and a bidi override, from the site
    with http_server(steward, tmp_path, STEWARD_RETRY_DEADLINE="1") as server:  # an unreachable site fails fast
        base = server.url.removesuffix("/mcp")
        async with bearer_client(server.url, MCP_TOKEN) as client:
            pending = structured(await client.call_tool("add_user_to_group", {"user": user.email, "group": group.name}))
        request_id = pending["approval"]["request_id"]
        async with browser_page(base) as page:
            # While the site answers only errors, the stored preview is shown, and marked as such.
            steward.emulator.control.inject_5xx(count=1000)
            await sign_in(page, ADMIN_TOKENS["assistant-user"])
            steward.emulator.control.clear_faults()
            card = page.locator("article.request", has_text=request_id)
            shown = await card.inner_text()
            assert "stored when requested: the site could not be reached" in shown, shown
            # Names are shown as text: the markup is not markup, the bidi override is made visible.
            assert '<img src=x onerror="alert(1)"> Eve\\u202etxt.exe' in shown
            assert await card.locator("img").count() == 0

            # The requester holds an admin token too, and still cannot approve its own request.
            await card.get_by_label("Reason (required)").fill("mine")
            async with page.expect_response(lambda r: r.url.endswith("/approve")) as answer:
                await card.get_by_role("button", name="Approve").click()
            assert (await answer.value).status == 403
            assert re.search(r"Refused: assistant-user requested \S+ and cannot approve it", await page.inner_text("main"))
            await page.get_by_role("button", name="Sign out").click()
            await page.wait_for_load_state()
            assert await page.get_by_label("Admin token").count() == 1

            await sign_in(page, ADMIN_TOKENS["site-admin"])
            await card.get_by_label("Reason (required)").fill("first of two")
            await card.get_by_role("button", name="Approve").click()
            await page.wait_for_load_state()
            assert "1 of 2 approvals" in await card.inner_text()
            assert membership_posts(steward, group.id) == []

            # On a phone's width nothing runs off the side of the page.
            await page.set_viewport_size({"width": 390, "height": 844})
            assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            await page.screenshot(path=str(tmp_path / "console-phone.png"), full_page=True)
            await page.set_viewport_size({"width": 1100, "height": 900})

            await page.goto(f"/console/requests/{request_id}")
            trail = await page.inner_text("table")
            for kind in ("tool_call.intent", "approval.created", "approval.refused", "approval.approved"):
                assert kind in trail
            assert "cannot approve it" in trail and "first of two" in trail

            # The second approver denies it instead: it moves to the history, denied, with the reason.
            await page.get_by_role("button", name="Sign out").click()
            await page.wait_for_load_state()
            await sign_in(page, ADMIN_TOKENS["other-analyst"])
            await card.get_by_label("Reason (required)").fill("not this quarter")
            await card.get_by_role("button", name="Deny").click()
            await page.wait_for_load_state()
            denied = page.locator("article.status-denied", has_text=request_id)
            assert "denied by other-analyst" in await denied.inner_text()
            assert "not this quarter" in await denied.inner_text()
            assert page.problems == [], page.problems
        async with httpx2.AsyncClient(base_url=base) as http:
            page_answer = await http.get("/console/")
        csp = page_answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert page_answer.headers["x-content-type-options"] == "nosniff"
        assert page_answer.headers["referrer-policy"] == "same-origin"
        assert '<meta name="viewport"' in page_answer.text and "<script>" not in page_answer.text
    assert user.id not in steward.state.groups[group.id].member_ids


async def test_over_stdio_the_console_is_served_on_the_admin_port(steward: Steward, tmp_path: Path) -> None:
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "server.cli", "serve", "--transport", "stdio", "--policy", str(steward.policy_path)],
        env=site_env(steward), cwd=str(REPO),
    )
    async with Client(server):
        with anyio.fail_after(30):
            while not (tmp_path / "audit.admin.json").exists():
                await anyio.sleep(0.05)
        admin = json.loads((tmp_path / "audit.admin.json").read_text())["url"]
        async with httpx2.AsyncClient(base_url=admin.removesuffix("/admin")) as http:
            form = await http.get("/console/")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
            signed_in = await http.post("/console/sign-in", data={"csrf": csrf, "token": ADMIN_TOKENS["site-admin"]})
            assert signed_in.status_code == 303
            dashboard = await http.get("/console/")
    assert form.status_code == 200 and "Admin token" in form.text
    assert "Signed in as <strong>site-admin</strong>" in dashboard.text
