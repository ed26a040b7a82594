"""transfer_content_ownership and sync_group_members end to end: a real mcp.Client, a gated policy, approval
with an admin token through the approvals CLI, execution, then the emulator's state and request log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import server.pipeline
from emulator import model as m
from server.governance.policy import decide, load_policy
from server.governed import tool_catalog
from tests.server.conftest import Steward, error_text, structured, write_policy
from tests.server.test_governance_flow import GATED_POLICY, approvals_cli

pytestmark = pytest.mark.anyio

SHIPPED_POLICY = Path(__file__).resolve().parents[2] / "policies.yaml"


@pytest.fixture(autouse=True)
def approved_requests_run_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The background runner waits an hour and no decision wakes it: an approved request runs when the test
    says (`execute`), so a test can change the site between the approval and the execution."""
    monkeypatch.setattr(server.pipeline, "APPROVAL_POLL_SECONDS", 3600.0)
    monkeypatch.setattr(server.pipeline, "WAKE_ON_DECISION", False)


@pytest.fixture
def gated(steward: Steward, tmp_path: Path) -> Steward:
    """The demo site behind a policy where every write waits for the site-admin's approval."""
    steward.policy_path = write_policy(tmp_path, GATED_POLICY.format(ttl="1h"))
    return steward


def group_named(state: m.SiteState, name: str) -> m.Group:
    return next(g for g in state.groups.values() if g.name == name)


def user_named(state: m.SiteState, name: str) -> m.User:
    return next(u for u in state.users.values() if u.name == name)


def writes(steward: Steward, since: int) -> list[Any]:
    return [e for e in steward.requests_since(since) if e.method in ("POST", "PUT", "DELETE")
            and not e.path.endswith(("/auth/signin", "/auth/signout"))]


def audited_writes(steward: Steward, request_id: str) -> list[tuple[str, str]]:
    """The Tableau writes the audit log links to the execution of approval request `request_id`."""
    from server.governance import AuditLog

    log = AuditLog.open(steward.policy_path.parent / "audit.sqlite", readonly=True)
    try:
        records = [r.to_dict() for r in log.records()]
    finally:
        log.close()
    runs = {r["call_id"] for r in records if r["kind"] == "tool_call.intent" and r.get("approval_id") == request_id}
    assert len(runs) == 1, "the approved request ran once, as one audited call"
    return [(r["method"], r["path"]) for r in records
            if r["kind"] == "tableau_request" and r.get("call_id") in runs and r["method"] != "GET"]


async def request_and_approve(steward: Steward, client: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call a gated tool, approve the request with the site-admin's admin token; returns the pending answer."""
    pending = structured(await client.call_tool(tool, arguments))
    assert pending["status"] == "pending_approval", pending
    assert await approvals_cli(steward, "approve", pending["approval"]["request_id"]) == 0
    return pending["approval"]


async def execute(steward: Steward, client: Any, request_id: str) -> dict[str, Any]:
    """Run the approved request now (the runner is held off) and return its result."""
    done = await steward.run_held(client, request_id)
    assert done["status"] == "executed", done["result"]
    assert done["result"]["ok"], done
    return done["result"]


# -- sync_group_members -----------------------------------------------------------------------------


def sync_case(state: m.SiteState) -> tuple[m.Group, list[m.User], list[m.User], m.User]:
    """Marketing: two of its members to keep, three licensed outsiders to add, an Unlicensed outsider."""
    group = group_named(state, "Marketing")
    members = sorted((state.users[uid] for uid in group.member_ids), key=lambda u: u.name)
    outsiders = sorted(
        (u for u in state.users.values() if u.id not in group.member_ids and u.site_role in ("Explorer", "Viewer")),
        key=lambda u: u.name,
    )
    unlicensed = next(u for u in state.users.values() if u.site_role == "Unlicensed" and u.id not in group.member_ids)
    return group, members[:2], outsiders[:3], unlicensed


async def test_sync_previews_the_exact_diff_and_adds_only_it_by_default(gated: Steward) -> None:
    state = gated.state
    group, keep, add, unlicensed = sync_case(state)
    before = set(group.member_ids)
    listed = [keep[0].name, keep[1].email.upper(), *(u.email for u in add), unlicensed.name, "nobody@example.invalid"]
    async with gated.client() as client:
        mark = len(gated.emulator.request_log)
        approval = await request_and_approve(
            gated, client, "sync_group_members", {"groups": [{"group": "Marketing", "members": listed}]}
        )
        assert writes(gated, mark) == [], "nothing changes before execution"
        preview = approval["preview"]
        assert f"Marketing ({len(before)} members): add 3 [{', '.join(u.name for u in add)}]; remove 0;" in preview
        assert "2 already members" in preview and f"{len(before) - 2} members not in the list are kept" in preview
        assert "unknown users, skipped: nobody@example.invalid" in preview
        assert f"need a license first, skipped (Unlicensed, and the group grants none): {unlicensed.name}" in preview

        mark = len(gated.emulator.request_log)
        result = await execute(gated, client, approval["request_id"])
    output = result["output"]
    assert (output["added"], output["removed"], output["failed"]) == (3, 0, 0)
    assert {c["user"]: c["status"] for c in output["groups"][0]["changes"]} == {u.name: "added" for u in add}
    assert group.member_ids == before | {u.id for u in add}
    posted = writes(gated, mark)
    assert [(e.method, e.path.rsplit("/", 2)[-2:]) for e in posted] == [("POST", [group.id, "users"])] * 3
    # Every change is an audited Tableau request under the call that ran the approved request.
    audited = audited_writes(gated, approval["request_id"])
    assert sorted(audited) == sorted((e.method, e.path) for e in posted)


async def test_sync_with_remove_missing_removes_who_is_not_listed(gated: Steward) -> None:
    state = gated.state
    group, keep, add, _ = sync_case(state)
    leaving = sorted(set(group.member_ids) - {u.id for u in keep})
    members = [u.name for u in keep + add[:1]]
    async with gated.client() as client:
        approval = await request_and_approve(
            gated, client, "sync_group_members",
            {"groups": [{"group": group.name, "members": members}], "remove_missing": True},
        )
        assert f"add 1 [{add[0].name}]; remove {len(leaving)} [" in approval["preview"]
        mark = len(gated.emulator.request_log)
        output = (await execute(gated, client, approval["request_id"]))["output"]
    assert (output["added"], output["removed"]) == (1, len(leaving))
    assert group.member_ids == {u.id for u in keep + add[:1]}
    deleted = sorted(e.path.rsplit("/", 1)[-1] for e in writes(gated, mark) if e.method == "DELETE")
    assert deleted == leaving and sum(e.method == "POST" for e in writes(gated, mark)) == 1


async def test_a_member_removed_between_approval_and_execution_is_reported_not_removed_again(gated: Steward) -> None:
    state = gated.state
    group, keep, _, _ = sync_case(state)
    leaving = sorted(set(group.member_ids) - {u.id for u in keep})
    gone_already = leaving[0]
    async with gated.client() as client:
        approval = await request_and_approve(
            gated, client, "sync_group_members",
            {"groups": [{"group": group.name, "members": [u.name for u in keep]}], "remove_missing": True},
        )
        with gated.emulator.lock:  # someone removes a member on the site after the approval
            group.member_ids.discard(gone_already)
        mark = len(gated.emulator.request_log)
        output = (await execute(gated, client, approval["request_id"]))["output"]
    changes = {c["user_id"]: c for c in output["groups"][0]["changes"]}
    assert changes[gone_already]["status"] == "no_change"
    assert "removed on the site since the request" in changes[gone_already]["detail"]
    assert output["removed"] == len(leaving) - 1 and output["no_change"] == 1
    deleted = sorted(e.path.rsplit("/", 1)[-1] for e in writes(gated, mark))
    assert deleted == leaving[1:], "the approved ids only, the one already gone not touched"
    assert group.member_ids == {u.id for u in keep}


async def test_a_partial_failure_then_a_rerun_completes_with_nothing_applied_twice(gated: Steward) -> None:
    state = gated.state
    group, _, add, _ = sync_case(state)
    extra = next(u for u in state.users.values() if u.id not in group.member_ids and u.site_role == "Creator")
    wanted = [*add, extra]
    arguments = {"groups": [{"group": group.name, "members": [u.name for u in wanted]}]}
    async with gated.client() as client:
        mark = len(gated.emulator.request_log)
        approval = await request_and_approve(gated, client, "sync_group_members", arguments)
        gated.emulator.control.fail_write(2, status=500, code="500000")  # the second addition fails
        output = (await execute(gated, client, approval["request_id"]))["output"]
        assert (output["added"], output["failed"]) == (3, 1)
        failed = [c for c in output["groups"][0]["changes"] if c["status"] == "failed"]
        assert [c["user"] for c in failed] == [wanted[1].name] and failed[0]["detail"]
        assert "HTTP 500" in failed[0]["detail"] and "tsResponse" not in failed[0]["detail"], failed[0]["detail"]
        assert "run the same sync again" in output["message"]
        assert wanted[1].id not in group.member_ids
        assert len(audited_writes(gated, approval["request_id"])) == len(wanted), "the failed write is audited too"

        again = await request_and_approve(gated, client, "sync_group_members", arguments)
        assert f"add 1 [{wanted[1].name}]" in again["preview"] and "3 already members" in again["preview"]
        rerun = (await execute(gated, client, again["request_id"]))["output"]
    assert (rerun["added"], rerun["failed"]) == (1, 0)
    assert {u.id for u in wanted} <= group.member_ids
    posts = [e.path for e in writes(gated, mark) if e.method == "POST"]
    assert len(posts) == len(wanted) + 1, "each user posted once, the failed one once more, nobody twice"


async def test_unknown_groups_and_all_users_are_clear_errors_that_change_nothing(gated: Steward) -> None:
    async with gated.client() as client:
        mark = len(gated.emulator.request_log)
        text = error_text(await client.call_tool(
            "sync_group_members", {"groups": [{"group": "All Users", "members": ["admin"]}], "remove_missing": True}
        ))
        assert "does not let anyone be removed" in text
        text = error_text(await client.call_tool(
            "sync_group_members", {"groups": [{"group": "Marketing", "members": []}], "extra": 1}
        ))
        assert "extra" in text
    assert writes(gated, mark) == []


# -- transfer_content_ownership -----------------------------------------------------------------------


def heir_of(state: m.SiteState) -> m.User:
    return min((u for u in state.users.values() if u.site_role == "Creator"), key=lambda u: u.name)


def owned_by(state: m.SiteState, user_id: str) -> dict[str, set[str]]:
    return {
        kind: {i.id for i in getattr(state, kind).values() if i.owner_id == user_id}
        for kind in ("workbooks", "datasources", "flows", "projects")
    }


async def test_transfer_moves_everything_a_user_owns_with_one_put_per_item(gated: Steward) -> None:
    state = gated.state
    leaver, heir = user_named(state, "laura.jensen@example.com"), heir_of(state)
    items = owned_by(state, leaver.id)
    count = sum(len(ids) for ids in items.values())
    async with gated.client() as client:
        approval = await request_and_approve(
            gated, client, "transfer_content_ownership", {"owner": leaver.name, "new_owner": heir.email}
        )
        preview = approval["preview"]
        assert f"Moves {count} items to {heir.name}" in preview
        assert (f"{len(items['datasources'])} datasources, {len(items['flows'])} flow, "
                f"{len(items['projects'])} projects, {len(items['workbooks'])} workbooks") in preview
        assert f"From: {leaver.name} ({count})" in preview and "Examples: " in preview
        assert owned_by(state, leaver.id) == items, "nothing moves before execution"

        mark = len(gated.emulator.request_log)
        output = (await execute(gated, client, approval["request_id"]))["output"]
    assert (output["moved"], output["failed"], output["results_total"]) == (count, 0, count)
    assert all(not ids for ids in owned_by(state, leaver.id).values())
    for kind, ids in items.items():
        assert all(getattr(state, kind)[i].owner_id == heir.id for i in ids)
    log = gated.requests_since(mark)
    puts = [e for e in log if e.method == "PUT"]
    assert len(puts) == count and writes(gated, mark) == puts
    every_id = {i for ids in items.values() for i in ids}
    per_item_reads = [e for e in log if e.method == "GET" and e.path.rsplit("/", 1)[-1] in every_id]
    assert per_item_reads == [], "the approved items are loaded from the listings, never one by one"


async def test_transfer_partial_failure_says_what_moved_and_a_rerun_finishes(gated: Steward) -> None:
    state = gated.state
    leaver, heir = user_named(state, "dana.whitfield@example.com"), heir_of(state)
    workbooks = sorted(owned_by(state, leaver.id)["workbooks"])
    arguments = {"owner": leaver.name, "kind": "workbook", "new_owner": heir.name, "item_ids": workbooks}
    async with gated.client() as client:
        approval = await request_and_approve(gated, client, "transfer_content_ownership", arguments)
        gated.emulator.control.fail_write(3, status=500, code="500000")
        output = (await execute(gated, client, approval["request_id"]))["output"]
        assert (output["moved"], output["failed"]) == (len(workbooks) - 1, 1)
        error = output["results"][0]["error"]
        assert output["results"][0]["status"] == "failed" and "HTTP 500" in error and "tsResponse" not in error, error
        assert "1 FAILED and keep their owner" in output["message"]
        stuck = output["results"][0]["id"]
        assert state.workbooks[stuck].owner_id == leaver.id

        # The same call again: the moved ones are no_change, the failed one moves now.
        mark = len(gated.emulator.request_log)
        again = await request_and_approve(gated, client, "transfer_content_ownership", arguments)
        assert "Moves 1 items" in again["preview"] and f"{len(workbooks) - 1} selected items are already owned" in again["preview"]
        rerun = (await execute(gated, client, again["request_id"]))["output"]
    assert (rerun["moved"], rerun["no_change"], rerun["failed"]) == (1, len(workbooks) - 1, 0)
    assert [e.path.rsplit("/", 1)[-1] for e in writes(gated, mark)] == [stuck]
    assert all(state.workbooks[i].owner_id == heir.id for i in workbooks)


async def test_transfer_refuses_an_unbounded_selection_and_an_unlicensed_heir(steward: Steward) -> None:
    state = steward.state
    unlicensed = next(u for u in state.users.values() if u.site_role == "Unlicensed")
    async with steward.client() as client:
        mark = len(steward.emulator.request_log)
        text = error_text(await client.call_tool("transfer_content_ownership", {"new_owner": "admin"}))
        assert "never selects a whole site" in text
        text = error_text(await client.call_tool(
            "transfer_content_ownership", {"owner": "laura.jensen@example.com", "new_owner": unlicensed.name}
        ))
        assert "Unlicensed and cannot own content; nothing was moved" in text
    assert writes(steward, mark) == []


# -- the shipped policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "facts", "effect"),
    [
        ("sync_group_members", {"group_name": ("Marketing",), "group_minimum_site_role": ("",), "change_count": 3},
         "require_approval"),
        ("sync_group_members",
         {"group_name": ("Marketing", "Site Admins Tableau"), "group_minimum_site_role": ("",), "change_count": 3},
         "deny"),
        ("sync_group_members", {"group_name": ("Administrators",), "group_minimum_site_role": ("",), "change_count": 1},
         "deny"),
        ("sync_group_members",
         {"group_name": ("Ops",), "group_minimum_site_role": ("", "SiteAdministratorCreator"), "change_count": 1},
         "deny"),
        ("transfer_content_ownership", {"owner_kind": ("workbook",), "project_path": ("Finance",), "change_count": 3},
         "require_approval"),
    ],
)
def test_the_shipped_policy_gates_both_tools_and_denies_syncing_administrator_groups(
    tool: str, facts: dict[str, Any], effect: str
) -> None:
    policy = load_policy(SHIPPED_POLICY, tool_catalog())
    analyst = policy.local_principal()
    assert decide(policy, analyst, tool, facts).effect == effect


async def test_transfer_of_1000_items_on_the_large_site_costs_one_put_per_item_and_no_item_reads(
    tmp_path: Path,
) -> None:
    from emulator.testing import start_emulator
    from tests.server.conftest import site_copy

    site = site_copy("large")
    heir = min((u for u in site.users.values() if u.site_role == "Creator"), key=lambda u: u.name)
    chosen = sorted(wb.id for wb in site.workbooks.values() if wb.owner_id != heir.id)[:1000]
    with start_emulator(site, job_speed=500) as emu:
        steward = Steward(emulator=emu, policy_path=write_policy(tmp_path, GATED_POLICY.format(ttl="1h")))
        async with steward.client() as client:
            approval = await request_and_approve(
                steward, client, "transfer_content_ownership",
                {"kind": "workbook", "item_ids": chosen, "new_owner": heir.name},
            )
            assert "Moves 1000 items" in approval["preview"]
            mark = len(emu.request_log)
            output = (await execute(steward, client, approval["request_id"]))["output"]
        assert (output["moved"], output["failed"], output["results_total"]) == (1000, 0, 1000)
        assert 0 < len(output["results"]) < 1000, "per-item results are cut to fit; the counts cover every item"
        assert all(site.workbooks[i].owner_id == heir.id for i in chosen)
        log = steward.requests_since(mark)
        puts = [e for e in log if e.method == "PUT"]
        assert sorted(e.path.rsplit("/", 1)[-1] for e in puts) == chosen
        assert writes(steward, mark) == puts
        wanted = set(chosen)
        assert [e for e in log if e.method == "GET" and e.path.rsplit("/", 1)[-1] in wanted] == []
        reads = [e for e in log if e.method == "GET"]
        assert len(reads) < 60, f"listings only ({len(reads)} pages), never one read per item"


# -- the CLI: tableau-steward sync groups FILE [--apply] ------------------------------------------------


async def sync_cli(steward: Steward, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    import anyio

    from emulator.testing import DEMO_PAT
    from server.cli import main as cli_main

    for name, value in {
        "TABLEAU_SERVER_URL": steward.emulator.url, "TABLEAU_SITE_ID": steward.state.content_url,
        "TABLEAU_PAT_NAME": DEMO_PAT[0], "TABLEAU_PAT_SECRET": DEMO_PAT[1],
    }.items():
        monkeypatch.setenv(name, value)
    argv = ["sync", "groups", *args, "--policy", str(steward.policy_path)]
    return await anyio.to_thread.run_sync(cli_main, argv)


async def test_cli_prints_the_diff_and_apply_only_creates_a_request_that_approval_runs(
    gated: Steward, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = gated.state
    group, keep, add, _ = sync_case(state)
    before = set(group.member_ids)
    source = tmp_path / "marketing.csv"
    source.write_text("group,member\n" + "".join(f"{group.name},{u.email}\n" for u in keep + add))
    mark = len(gated.emulator.request_log)
    assert await sync_cli(gated, monkeypatch, str(source)) == 0
    printed = capsys.readouterr().out
    assert f"add 3 [{', '.join(u.name for u in add)}]" in printed and "Nothing was changed" in printed
    assert writes(gated, mark) == [] and group.member_ids == before

    yaml_source = tmp_path / "marketing.yaml"
    yaml_source.write_text(f"{group.name}:\n" + "".join(f"  - {u.name}\n" for u in keep + add))
    async with gated.client() as client:
        assert await sync_cli(gated, monkeypatch, str(yaml_source), "--apply") == 0
        printed = capsys.readouterr().out
        assert "is pending approval" in printed and "add 3" in printed
        assert writes(gated, mark) == [] and group.member_ids == before, "--apply never bypasses approval"
        request_id = printed.split("Request ", 1)[1].split()[0]
        assert await approvals_cli(gated, "approve", request_id) == 0
        output = (await execute(gated, client, request_id))["output"]
    assert output["added"] == 3 and group.member_ids == before | {u.id for u in add}
    assert sum(e.method == "POST" for e in writes(gated, mark)) == 3


async def test_cli_refuses_a_file_it_cannot_read_as_groups(
    gated: Steward, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("name,role\nsam,Viewer\n")
    assert await sync_cli(gated, monkeypatch, str(source)) == 2
    assert "needs a header row with a 'group'" in capsys.readouterr().err
    source = tmp_path / "bad.yaml"
    source.write_text("Marketing: sam\n")
    assert await sync_cli(gated, monkeypatch, str(source), "--apply") == 2
    assert "give a group name and a list" in capsys.readouterr().err


async def test_under_the_shipped_policy_both_wait_for_approval_and_an_admin_group_sync_is_denied(
    steward: Steward, tmp_path: Path
) -> None:
    steward.policy_path = write_policy(tmp_path, SHIPPED_POLICY.read_text())
    state = steward.state
    async with steward.client() as client:
        mark = len(steward.emulator.request_log)
        for tool, arguments in (
            ("sync_group_members", {"groups": [{"group": "Marketing", "members": ["marcus.chen@example.com"]}]}),
            ("transfer_content_ownership", {"owner": "laura.jensen@example.com", "new_owner": heir_of(state).name}),
        ):
            assert structured(await client.call_tool(tool, arguments))["status"] == "pending_approval", tool
        text = error_text(await client.call_tool(
            "sync_group_members", {"groups": [{"group": "Administrators", "members": ["marcus.chen@example.com"]}]}
        ))
        assert "Not allowed by policy" in text
    assert writes(steward, mark) == []
