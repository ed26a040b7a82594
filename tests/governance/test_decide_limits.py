"""Blast-radius limits (`max_changes` / `over_limit`) and the lifecycle conditions (from_site_role,
to_site_role, owner_kind, group_name with several groups), table-driven like test_decide.py."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import pytest

from server.governance.policy import (
    DEFAULT_CATALOG,
    CallFacts,
    Policy,
    PolicyError,
    ToolInfo,
    decide,
    parse_policy,
)

ROLE_FACTS = frozenset({"from_site_role", "to_site_role", "target_user_site_role", "change_count"})
CATALOG = {
    **DEFAULT_CATALOG,
    "update_user_site_role": ToolInfo(is_write=True, facts=ROLE_FACTS),
    "create_user": ToolInfo(is_write=True, facts=ROLE_FACTS | {"group_name", "group_minimum_site_role"}),
    "sync_group_members": ToolInfo(
        is_write=True, facts=frozenset({"group_name", "group_minimum_site_role", "change_count"})
    ),
    "transfer_content_ownership": ToolInfo(is_write=True, facts=frozenset({"owner_kind", "change_count"})),
}

POLICY = textwrap.dedent(
    """\
    version: 1
    mode: read-write
    local: {principal: alice, roles: [analyst]}
    roles: {analyst: {}, approver: {}}
    principals:
      bob: {roles: [approver]}
      carol: {roles: [approver]}
    rules:
      - id: writes-gated
        tools: ["@write"]
        roles: [analyst]
        effect: require_approval
      - id: bulk-needs-two
        tools: [sync_group_members, transfer_content_ownership]
        principals: ["*"]
        max_changes: 25
        over_limit: {require_approvals: 2}
      - id: huge-denied
        tools: ["*"]
        principals: ["*"]
        max_changes: 500
        over_limit: deny
      - id: no-admin-roles-from
        tools: [update_user_site_role, create_user]
        principals: ["*"]
        effect: deny
        when: {from_site_role: ["SiteAdministrator*", "ServerAdministrator"]}
      - id: no-admin-roles-to
        tools: [update_user_site_role, create_user]
        principals: ["*"]
        effect: deny
        when: {to_site_role: ["SiteAdministrator*", "ServerAdministrator"]}
      - id: no-admin-groups
        tools: ["*"]
        principals: ["*"]
        effect: deny
        when: {group_name: ["*Admin*"]}
      - id: no-project-handover
        tools: [transfer_content_ownership]
        principals: ["*"]
        effect: deny
        when: {owner_kind: [project]}
      - id: sandbox-sync-allowed
        tools: [sync_group_members]
        roles: [analyst]
        effect: allow
        when: {group_name: ["Sandbox*"]}
      - id: workbook-handover-allowed
        tools: [transfer_content_ownership]
        roles: [analyst]
        effect: allow
        when: {owner_kind: [workbook]}
    approvals:
      approvers: {roles: [approver]}
    """
)


@dataclass(frozen=True)
class Case:
    name: str
    tool: str
    facts: dict[str, Any] = field(default_factory=dict)
    effect: str = "deny"
    rule: str | None = None
    approvals: int = 0


ROLE = {"target_user_site_role": "Viewer"}
CASES = [
    # blast radius: within the limit the ordinary gate; past it more approvers; far past it denied
    Case("sync of 3 changes: one approver", "sync_group_members",
         {"group_name": "Sales", "change_count": 3}, "require_approval", "writes-gated", 1),
    Case("sync of exactly 25: still within", "sync_group_members",
         {"group_name": "Sales", "change_count": 25}, "require_approval", "writes-gated", 1),
    Case("sync of 26: two approvers", "sync_group_members",
         {"group_name": "Sales", "change_count": 26}, "require_approval", "bulk-needs-two", 2),
    Case("transfer of 501: denied", "transfer_content_ownership",
         {"owner_kind": ["datasource"], "change_count": 501}, "deny", "huge-denied"),
    Case("an over-limit gate beats an allow", "sync_group_members",
         {"group_name": "Sandbox Team", "change_count": 40}, "require_approval", "bulk-needs-two", 2),
    Case("an allow within the limit", "sync_group_members",
         {"group_name": "Sandbox Team", "change_count": 2}, "require_approval", "writes-gated", 1),
    Case("no change count: the limit fails closed", "sync_group_members",
         {"group_name": "Sales"}, "deny", "bulk-needs-two"),
    Case("zero changes is within any limit", "update_user_site_role",
         {"from_site_role": "Viewer", "to_site_role": "Viewer", **ROLE, "change_count": 0},
         "require_approval", "writes-gated", 1),
    # site roles, old and new
    Case("Creator to Viewer: gated", "update_user_site_role",
         {"from_site_role": "Creator", "to_site_role": "Viewer", **ROLE, "change_count": 1},
         "require_approval", "writes-gated", 1),
    Case("to Unlicensed: gated", "update_user_site_role",
         {"from_site_role": "Explorer", "to_site_role": "Unlicensed", **ROLE, "change_count": 1},
         "require_approval", "writes-gated", 1),
    Case("demoting an administrator: denied", "update_user_site_role",
         {"from_site_role": "SiteAdministratorCreator", "to_site_role": "Viewer", **ROLE, "change_count": 1},
         "deny", "no-admin-roles-from"),
    Case("promoting to administrator: denied", "update_user_site_role",
         {"from_site_role": "Viewer", "to_site_role": "siteadministratorexplorer", **ROLE, "change_count": 1},
         "deny", "no-admin-roles-to"),
    Case("missing old role fails closed", "update_user_site_role",
         {"to_site_role": "Viewer", **ROLE, "change_count": 1}, "deny", "no-admin-roles-from"),
    Case("creating an administrator: denied", "create_user",
         {"from_site_role": "", "to_site_role": "ServerAdministrator", "group_name": [], **ROLE, "change_count": 1},
         "deny", "no-admin-roles-to"),
    Case("creating a viewer: gated", "create_user",
         {"from_site_role": "", "to_site_role": "Viewer", "group_name": ["Sales"], **ROLE, "change_count": 2},
         "require_approval", "writes-gated", 1),
    # several groups: a deny catches any of them, an allow needs all of them
    Case("one admin group among several: denied", "sync_group_members",
         {"group_name": ["Sales", "Site Admins"], "change_count": 4}, "deny", "no-admin-groups"),
    Case("a new user into an admin group: denied", "create_user",
         {"from_site_role": "", "to_site_role": "Viewer", "group_name": ["Sales", "Admins"], **ROLE,
          "change_count": 3}, "deny", "no-admin-groups"),
    Case("all sandbox groups: allowed", "sync_group_members",
         {"group_name": ["Sandbox A", "Sandbox B"], "change_count": 4}, "require_approval", "writes-gated", 1),
    # owner kind: several kinds in one hand-over
    Case("a project in the hand-over: denied", "transfer_content_ownership",
         {"owner_kind": ["workbook", "project"], "change_count": 3}, "deny", "no-project-handover"),
    Case("workbooks only: the allow matches but the gate wins", "transfer_content_ownership",
         {"owner_kind": ["workbook"], "change_count": 3}, "require_approval", "writes-gated", 1),
]


@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy(POLICY, known_tools=CATALOG)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide_limits_and_lifecycle_conditions(policy: Policy, case: Case) -> None:
    decision = decide(policy, policy.local_principal(), case.tool, CallFacts.from_mapping(case.facts))
    assert (decision.effect, decision.rule_id) == (case.effect, case.rule), decision.reason
    assert decision.required_approvals == case.approvals


ALLOW_ONLY = """\
    version: 1
    mode: read-write
    local: {principal: alice, roles: [analyst]}
    roles: {analyst: {}}
    rules:
      - id: sandbox-sync
        tools: [sync_group_members]
        roles: [analyst]
        effect: allow
        when: {group_name: ["Sandbox*"]}
        unless: {group_name: ["*Frozen*"]}
    """


@pytest.mark.parametrize(
    ("groups", "effect"),
    [
        (["Sandbox A"], "allow"),
        (["Sandbox A", "Sandbox B"], "allow"),
        (["Sandbox A", "Sales"], "deny"),  # an allow must hold for every group
        (["Sandbox A", "Sandbox Frozen"], "deny"),  # one excepted group disqualifies the allow
        ([], "deny"),  # nothing to judge is no match
    ],
)
def test_an_allow_holds_only_for_every_value(groups: list[str], effect: str) -> None:
    policy = parse_policy(textwrap.dedent(ALLOW_ONLY), known_tools=CATALOG)
    decision = decide(policy, policy.local_principal(), "sync_group_members", {"group_name": groups, "change_count": 1})
    assert decision.effect == effect, decision.reason


def test_an_exception_excuses_a_restrictive_rule_only_for_every_value() -> None:
    deny = '    when: {group_name: ["*Admin*"]}\n'
    assert deny in POLICY
    rules = POLICY.replace(deny, deny + '    unless: {group_name: ["Admin Readers"]}\n')
    policy = parse_policy(rules, known_tools=CATALOG)
    me = policy.local_principal()
    excused = decide(policy, me, "sync_group_members", {"group_name": ["Admin Readers"], "change_count": 1})
    assert excused.needs_approval, excused.reason
    mixed = decide(policy, me, "sync_group_members", {"group_name": ["Admin Readers", "Admins"], "change_count": 1})
    assert mixed.denied and mixed.rule_id == "no-admin-groups"


BASE_RULE = """\
version: 1
mode: read-write
local: {{principal: alice, roles: [analyst]}}
roles: {{analyst: {{}}}}
rules:
  - id: limit
    tools: [{tools}]
    roles: [analyst]
{body}
approvals:
  approvers: {{principals: [alice]}}
"""


@pytest.mark.parametrize(
    ("tools", "body", "expected"),
    [
        ("sync_group_members", "    max_changes: 10\n", "'max_changes' needs 'over_limit'"),
        ("sync_group_members", "    max_changes: 10\n    over_limit: deny\n    effect: deny\n",
         "takes its effect from 'over_limit'"),
        ("sync_group_members", "    effect: deny\n    over_limit: deny\n", "'over_limit' needs 'max_changes'"),
        ("sync_group_members", "    max_changes: 10\n    over_limit: allow\n", "over_limit"),
        ("sync_group_members", "    max_changes: -1\n    over_limit: deny\n", "max_changes"),
        ("sync_group_members", "    max_changes: 10\n    over_limit: {require_approval: 2}\n",
         "did you mean 'require_approvals'"),
        ("refresh_and_wait", "    max_changes: 10\n    over_limit: deny\n", "none of its tools resolves change_count"),
        ("update_user_site_role", "    effect: deny\n    when: {to_site_role: [Admin]}\n",
         "matches no Tableau site role"),
        ("transfer_content_ownership", "    effect: deny\n    when: {owner_kind: [workbooks]}\n",
         "did you mean 'workbook'"),
    ],
)
def test_limit_and_condition_mistakes_are_load_errors(tools: str, body: str, expected: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(BASE_RULE.format(tools=tools, body=body), known_tools=CATALOG)
    assert expected in str(caught.value)


def test_a_limit_needing_more_approvers_than_exist_is_warned() -> None:
    body = "    max_changes: 10\n    over_limit: {require_approvals: 3}\n"
    policy = parse_policy(BASE_RULE.format(tools="sync_group_members", body=body), known_tools=CATALOG)
    assert any("rule 'limit' needs 3 distinct approvers" in w for w in policy.warnings)
    assert policy.summary()["rules"][0]["max_changes"] == 10


def test_several_values_are_kept_sorted_and_shown_in_the_reason(policy: Policy) -> None:
    facts = CallFacts.from_mapping({"group_name": {"b", "Site Admins", "a"}, "change_count": 2})
    assert facts.group_name == ("Site Admins", "a", "b")
    assert facts.as_dict()["group_name"] == ["Site Admins", "a", "b"]
    decision = decide(policy, policy.local_principal(), "sync_group_members", facts)
    assert "group_name ['Site Admins', 'a', 'b'] matches '*Admin*'" in decision.reason
    with pytest.raises(ValueError, match="change_count"):
        CallFacts.from_mapping({"change_count": -1})
