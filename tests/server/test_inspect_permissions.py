"""inspect_permissions agrees with Tableau's evaluation order, case by case, through the MCP tool."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from emulator import model as m
from tests.server.conftest import Steward, error_text, structured

pytestmark = pytest.mark.anyio

CAPABILITY = "ViewUnderlyingData"  # "Download Full Data": Viewers can never have it


@dataclass
class Scenario:
    workbook: m.Workbook
    locked_workbook: m.Workbook
    users: dict[str, m.User]


def _user(state: m.SiteState, key: str, role: str) -> m.User:
    now = datetime.now(UTC).replace(microsecond=0)
    user = m.User(
        id=m.new_id(), name=f"{key}@perm.test", full_name=key.replace("_", " ").title(), email=f"{key}@perm.test",
        site_role=role, created_at=now, last_login=now,
    )
    state.users[user.id] = user
    return user


def _group(state: m.SiteState, name: str, members: list[m.User]) -> m.Group:
    group = m.Group(id=m.new_id(), name=name, member_ids={u.id for u in members})
    state.groups[group.id] = group
    return group


def build_scenario(steward: Steward) -> Scenario:
    """Purpose-built users, groups and rules, one per rule of Tableau's order, on the emulated site."""
    state = steward.state
    with steward.emulator.lock:
        users = {
            key: _user(state, key, role)
            for key, role in [
                ("group_allow", "Explorer"), ("group_mixed", "Explorer"), ("user_allow", "Explorer"),
                ("user_deny", "Explorer"), ("viewer_allowed", "Viewer"), ("no_rules", "Explorer"),
                ("owner", "Creator"), ("leader", "Explorer"), ("admin", "SiteAdministratorCreator"),
                ("unlicensed", "Unlicensed"),
            ]
        }
        allow = _group(state, "Perm Allowers", [users[k] for k in ("group_allow", "group_mixed", "user_deny", "viewer_allowed", "unlicensed")])
        deny = _group(state, "Perm Deniers", [users[k] for k in ("group_mixed", "user_allow")])
        now = datetime.now(UTC).replace(microsecond=0)
        open_project = m.Project(id=m.new_id(), name="Perm Open", owner_id=users["admin"].id, created_at=now, updated_at=now)
        locked_project = m.Project(
            id=m.new_id(), name="Perm Locked", owner_id=users["admin"].id, created_at=now, updated_at=now,
            content_permissions="LockedToProject",
        )
        state.projects[open_project.id] = open_project
        state.projects[locked_project.id] = locked_project

        def workbook(name: str, project: m.Project) -> m.Workbook:
            wb = m.Workbook(id=m.new_id(), name=name, content_url=name.replace(" ", ""), project_id=project.id,
                            owner_id=users["owner"].id, created_at=now, updated_at=now)
            state.workbooks[wb.id] = wb
            return wb

        wb = workbook("Perm Forecast", open_project)
        locked_wb = workbook("Perm Locked Forecast", locked_project)
        state.permissions[("workbooks", wb.id)] = {
            ("group", allow.id): {CAPABILITY: "Allow", "Read": "Allow"},
            ("group", deny.id): {CAPABILITY: "Deny"},
            ("user", users["user_allow"].id): {CAPABILITY: "Allow"},
            ("user", users["user_deny"].id): {CAPABILITY: "Deny"},
        }
        state.permissions[("projects", open_project.id)] = {("user", users["leader"].id): {"ProjectLeader": "Allow"}}
        # Stale item rules under a lock must not count: the project's default rules govern.
        state.permissions[("workbooks", locked_wb.id)] = {("user", users["no_rules"].id): {CAPABILITY: "Allow"}}
        state.default_permissions[(locked_project.id, "workbooks")] = {("group", deny.id): {CAPABILITY: "Deny"}}
    return Scenario(workbook=wb, locked_workbook=locked_wb, users=users)


CASES = [
    # (user key, allowed, deciding step): one row per rule of Tableau's resolution order
    ("group_allow", True, "group_allow"),
    ("group_mixed", False, "group_deny"),  # any group Deny beats another group's Allow
    ("user_allow", True, "user_rule"),  # a user Allow beats a group Deny
    ("user_deny", False, "user_rule"),  # a user Deny beats a group Allow
    ("viewer_allowed", False, "site_role_cap"),  # the site role caps an explicit Allow
    ("unlicensed", False, "site_role_cap"),
    ("no_rules", False, "unspecified"),
    ("owner", True, "content_owner"),
    ("leader", True, "project_leader"),
    ("admin", True, "administrator"),
]


@pytest.mark.parametrize(("who", "allowed", "step"), CASES, ids=[c[0] for c in CASES])
async def test_effective_permission_follows_tableau_order(steward: Steward, who: str, allowed: bool, step: str) -> None:
    scenario = build_scenario(steward)
    async with steward.client() as client:
        body = structured(
            await client.call_tool(
                "inspect_permissions",
                {"kind": "workbook", "target": "Perm Forecast", "user": scenario.users[who].name,
                 "capability": "Download Full Data"},
            )
        )
    (decision,) = body["effective"]
    assert decision["capability"] == CAPABILITY
    assert (decision["allowed"], decision["decided_by"]) == (allowed, step), decision["reason"]


async def test_explicit_rules_lock_mode_and_full_capability_list(steward: Steward) -> None:
    scenario = build_scenario(steward)
    async with steward.client() as client:
        body = structured(
            await client.call_tool("inspect_permissions", {"kind": "workbook", "target": scenario.workbook.id,
                                                           "user": scenario.users["group_allow"].email})
        )
        locked = structured(
            await client.call_tool("inspect_permissions", {"kind": "workbook", "target": "Perm Locked Forecast",
                                                           "user": scenario.users["no_rules"].name,
                                                           "capability": CAPABILITY})
        )
    rules = {(r["grantee_kind"], r["grantee_name"]): r["capabilities"] for r in body["explicit_rules"]}
    assert rules[("group", "Perm Deniers")] == {CAPABILITY: "Deny"}
    assert rules[("user", "user_allow@perm.test")] == {CAPABILITY: "Allow"}
    assert body["explicit_rules_total"] == 4 and body["lock_mode"] == "ManagedByOwner"
    assert len(body["effective"]) > 10  # every workbook capability, each with a reason
    assert all(d["reason"] for d in body["effective"])
    # Under the lock the stale item Allow is ignored: the project's default rules govern.
    assert locked["lock_mode"] == "LockedToProject" and "locked" in locked["governed_by"]
    assert locked["effective"][0]["allowed"] is False
    assert {r["grantee_name"] for r in locked["explicit_rules"]} == {"Perm Deniers"}


async def test_who_has_expands_groups_and_respects_denies(steward: Steward) -> None:
    scenario = build_scenario(steward)
    async with steward.client() as client:
        body = structured(
            await client.call_tool("inspect_permissions", {"kind": "workbook", "target": "Perm Forecast",
                                                           "capability": CAPABILITY, "limit": 200})
        )
        bad = error_text(await client.call_tool("inspect_permissions", {"kind": "workbook", "target": "Perm Forecast",
                                                                         "capability": "Download Everything"}))
    holders = {h["user"] for h in body["who_has"]["holders"]}
    expected_in = {scenario.users[k].name for k, allowed, _ in CASES if allowed}
    expected_out = {scenario.users[k].name for k, allowed, _ in CASES if not allowed}
    assert expected_in <= holders and not (expected_out & holders)
    assert body["who_has"]["total"] == len(body["who_has"]["holders"])
    assert "not a workbook capability" in bad
