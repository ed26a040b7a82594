"""The decision function, table-driven: every condition kind, principal/role matching, precedence,
default deny, fail-closed facts, read-only mode and visible_tools."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

import pytest

from server.governance.policy import (
    DEFAULT_CATALOG,
    CallFacts,
    Policy,
    Principal,
    ToolInfo,
    decide,
    parse_policy,
    visible_tools,
)
from tests.governance.helpers import RICH_POLICY


@dataclass(frozen=True)
class Case:
    name: str
    principal: str
    tool: str
    facts: dict[str, Any] = field(default_factory=dict)
    effect: str = "deny"
    rule: str | None = None


WB = {"content_kind": "workbook"}
DS = {"content_kind": "datasource"}
CREATOR = {"target_user_site_role": "Creator"}

CASES = [
    # principal and role matching
    Case("role analyst reads", "alice", "list_users", effect="allow", rule="reads"),
    Case("role approver reads", "bob", "list_content", effect="allow", rule="reads"),
    Case("principal by name", "erin", "list_users", effect="allow", rule="erin-lists-users"),
    Case("named principal, other tool: default deny", "erin", "list_groups"),
    Case("principal without roles: default deny", "mallory", "list_users"),
    Case("unknown principal: default deny", "nobody", "list_users"),
    Case("approver has no write rule", "bob", "add_user_to_group", {"group_name": "Sales", **CREATOR}),
    # project path globs (and `unless`)
    Case(
        "sandbox root allowed",
        "alice",
        "refresh_and_wait",
        {"project_path": "Sandbox", **WB},
        "allow",
        "refresh-sandbox",
    ),
    Case(
        "sandbox child allowed",
        "alice",
        "refresh_and_wait",
        {"project_path": "Sandbox/Q1/Drafts", **WB},
        "allow",
        "refresh-sandbox",
    ),
    Case(
        "sibling prefix not in tree",
        "alice",
        "refresh_and_wait",
        {"project_path": "SandboxOld", **WB},
        "require_approval",
        "refresh-gated",
    ),
    Case(
        "other project gated",
        "alice",
        "refresh_and_wait",
        {"project_path": "Sales/EMEA", **WB},
        "require_approval",
        "refresh-gated",
    ),
    Case(
        "finance denied over approval",
        "alice",
        "refresh_and_wait",
        {"project_path": "Finance/Q1", **WB},
        "deny",
        "finance-frozen",
    ),
    Case(
        "finance root denied",
        "alice",
        "refresh_and_wait",
        {"project_path": "Finance", **WB},
        "deny",
        "finance-frozen",
    ),
    Case(
        "path globs ignore case",
        "alice",
        "refresh_and_wait",
        {"project_path": "finance/q1", **WB},
        "deny",
        "finance-frozen",
    ),
    Case("missing project path fails closed", "alice", "refresh_and_wait", WB, "deny", "finance-frozen"),
    # content kinds
    Case(
        "ops refresh datasource",
        "dave",
        "refresh_and_wait",
        {"project_path": "Sales", **DS},
        "allow",
        "ops-datasources",
    ),
    Case("ops refresh workbook: no rule", "dave", "refresh_and_wait", {"project_path": "Sales", **WB}),
    Case(
        "ops datasource in finance denied",
        "dave",
        "refresh_and_wait",
        {"project_path": "Finance", **DS},
        "deny",
        "finance-frozen",
    ),
    Case("ops, kind unresolved: allow does not match", "dave", "refresh_and_wait", {"project_path": "Sales"}),
    # group name globs and precedence approval > allow
    Case(
        "group change gated",
        "alice",
        "add_user_to_group",
        {"group_name": "Marketing", **CREATOR},
        "require_approval",
        "groups-gated",
    ),
    Case(
        "approval beats allow",
        "dave",
        "add_user_to_group",
        {"group_name": "Team Blue", **CREATOR},
        "require_approval",
        "groups-gated",
    ),
    Case(
        "Administrators denied",
        "alice",
        "add_user_to_group",
        {"group_name": "Administrators", **CREATOR},
        "deny",
        "no-admin-groups",
    ),
    Case(
        "Site Admin* denied",
        "alice",
        "add_user_to_group",
        {"group_name": "Site Admins EMEA", **CREATOR},
        "deny",
        "no-admin-groups",
    ),
    Case(
        "group globs ignore case",
        "alice",
        "add_user_to_group",
        {"group_name": "site administrators", **CREATOR},
        "deny",
        "no-admin-groups",
    ),
    Case(
        "*Admin* anywhere",
        "dave",
        "add_user_to_group",
        {"group_name": "Team Admins", **CREATOR},
        "deny",
        "no-admin-groups",
    ),
    Case("missing group fails closed", "alice", "add_user_to_group", CREATOR, "deny", "no-admin-groups"),
    # target user's site role
    Case(
        "site admin target denied",
        "alice",
        "add_user_to_group",
        {"group_name": "Marketing", "target_user_site_role": "SiteAdministratorCreator"},
        "deny",
        "no-admin-targets",
    ),
    Case(
        "server admin target denied",
        "dave",
        "add_user_to_group",
        {"group_name": "Team Red", "target_user_site_role": "ServerAdministrator"},
        "deny",
        "no-admin-targets",
    ),
    Case(
        "viewer target gated",
        "alice",
        "add_user_to_group",
        {"group_name": "Marketing", "target_user_site_role": "Viewer"},
        "require_approval",
        "groups-gated",
    ),
    Case(
        "missing site role fails closed",
        "alice",
        "add_user_to_group",
        {"group_name": "Marketing"},
        "deny",
        "no-admin-targets",
    ),
    # unknown tools
    Case("unknown tool", "alice", "delete_site", {}, "deny", None),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide(rich_policy: Policy, case: Case) -> None:
    decision = decide(
        rich_policy, rich_policy.principal_named(case.principal), case.tool, CallFacts(**case.facts)
    )
    assert (decision.effect, decision.rule_id) == (case.effect, case.rule), decision.reason


def test_decision_carries_rule_description_reason_and_approvals(rich_policy: Policy) -> None:
    alice = rich_policy.local_principal()
    denied = decide(
        rich_policy,
        alice,
        "add_user_to_group",
        {"group_name": "Administrators", "target_user_site_role": "Viewer"},
    )
    assert denied.denied and denied.rule_description == "Never into administrator groups."
    assert "'Administrators' matches 'Administrators'" in denied.reason
    gated = decide(
        rich_policy, alice, "add_user_to_group", {"group_name": "Sales", "target_user_site_role": "Viewer"}
    )
    assert gated.needs_approval and gated.required_approvals == 2
    default = decide(rich_policy, alice, "add_user_to_group", None)
    assert default.denied and "failing closed" in default.reason
    nobody = decide(rich_policy, Principal("zed"), "list_users")
    assert nobody.rule_id is None and "default deny" in nobody.reason


def test_facts_accept_the_tool_layers_dicts_and_reject_typos(rich_policy: Policy) -> None:
    facts = {"group_name": "Marketing", "target_user_site_role": "Viewer", "target_user": "sam"}
    assert decide(rich_policy, rich_policy.local_principal(), "add_user_to_group", facts).needs_approval
    with pytest.raises(ValueError, match="group_nam"):
        CallFacts.from_mapping({"group_nam": "Marketing"})


def _policy(rules: str, mode: str = "read-write", catalog: Any = DEFAULT_CATALOG) -> Policy:
    text = textwrap.dedent(
        """\
        version: 1
        mode: {mode}
        local: {{principal: me, roles: [r]}}
        roles: {{r: {{}}}}
        rules:
        {rules}
        approvals:
          approvers: {{principals: [me]}}
        """
    ).format(mode=mode, rules=textwrap.indent(textwrap.dedent(rules), "  "))
    return parse_policy(text, known_tools=catalog)


RULE = "- {{id: {id}, tools: [add_user_to_group], roles: [r], effect: {effect}}}\n"


@pytest.mark.parametrize(
    ("effects", "expected"),
    [
        ((), "deny"),
        (("allow",), "allow"),
        (("require_approval",), "require_approval"),
        (("deny",), "deny"),
        (("allow", "require_approval"), "require_approval"),
        (("require_approval", "allow"), "require_approval"),
        (("allow", "deny"), "deny"),
        (("require_approval", "deny"), "deny"),
        (("deny", "require_approval", "allow"), "deny"),
        (("allow", "require_approval", "deny"), "deny"),
    ],
)
def test_precedence_deny_over_approval_over_allow(effects: tuple[str, ...], expected: str) -> None:
    rules = "".join(RULE.format(id=f"r{i}-{e}", effect=e) for i, e in enumerate(effects)) or "[]\n"
    if not effects:
        rules = "- {id: other, tools: [list_users], roles: [r], effect: allow}\n"
    policy = _policy(rules)
    decision = decide(
        policy,
        policy.local_principal(),
        "add_user_to_group",
        {"group_name": "G", "target_user_site_role": "Viewer"},
    )
    assert decision.effect == expected
    if effects:
        assert decision.rule_id is not None and decision.rule_id.endswith(expected)


def test_read_only_mode_hides_and_refuses_writes_whatever_the_rules_say() -> None:
    rules = "- {id: all, tools: ['*'], roles: [r], effect: allow}\n"
    writable, read_only = _policy(rules), _policy(rules, mode="read-only")
    me = read_only.local_principal()
    assert visible_tools(writable, me) == set(DEFAULT_CATALOG)
    assert visible_tools(read_only, me) == {t for t, i in DEFAULT_CATALOG.items() if not i.is_write}
    for tool in ("refresh_and_wait", "add_user_to_group"):
        decision = decide(
            read_only, me, tool, {"group_name": "G", "project_path": "P", "content_kind": "workbook"}
        )
        assert decision.denied and "read-only" in decision.reason
    assert decide(read_only, me, "list_users").allowed


def test_visible_tools_per_principal(rich_policy: Policy) -> None:
    reads = {t for t, i in DEFAULT_CATALOG.items() if not i.is_write}
    p = rich_policy.principal_named
    named = reads | {"refresh_and_wait", "add_user_to_group"}  # the writes the rich policy has rules for
    assert visible_tools(rich_policy, p("alice")) == named
    assert visible_tools(rich_policy, p("dave")) == named
    assert visible_tools(rich_policy, p("bob")) == reads
    assert visible_tools(rich_policy, p("erin")) == {"list_users"}
    assert visible_tools(rich_policy, p("mallory")) == set()


def test_unconditional_deny_hides_a_tool_but_a_conditional_one_does_not() -> None:
    policy = _policy(
        """\
        - {id: all, tools: ['*'], roles: [r], effect: allow}
        - {id: no-jobs, tools: [list_jobs], principals: ['*'], effect: deny}
        - id: no-admins
          tools: [add_user_to_group]
          principals: ['*']
          effect: deny
          when: {group_name: [Administrators]}
        """
    )
    visible = visible_tools(policy, policy.local_principal())
    assert "list_jobs" not in visible and "add_user_to_group" in visible
    assert decide(policy, policy.local_principal(), "list_jobs").rule_id == "no-jobs"


def test_a_deny_with_only_an_exception_does_not_hide_the_tool() -> None:
    policy = _policy(
        """\
        - {id: all, tools: ['*'], roles: [r], effect: allow}
        - id: only-sandbox
          tools: [refresh_and_wait]
          principals: ['*']
          effect: deny
          unless: {project_path: ['Sandbox/**']}
        """
    )
    me = policy.local_principal()
    assert "refresh_and_wait" in visible_tools(policy, me)
    assert decide(
        policy, me, "refresh_and_wait", {"project_path": "Sandbox/a", "content_kind": "workbook"}
    ).allowed
    assert decide(
        policy, me, "refresh_and_wait", {"project_path": "Sales", "content_kind": "workbook"}
    ).denied


def test_conditions_only_concern_tools_that_resolve_their_facts() -> None:
    rules = """\
        - {id: all, tools: ['*'], roles: [r], effect: allow}
        - id: no-admins
          tools: ['*']
          principals: ['*']
          effect: deny
          when: {group_name: ['*Admin*']}
        """
    declared = _policy(rules)
    me = declared.local_principal()
    # list_users resolves no group: the group condition never concerns it.
    assert decide(declared, me, "list_users").allowed
    assert decide(
        declared, me, "add_user_to_group", {"group_name": "Admins", "target_user_site_role": "Viewer"}
    ).denied
    # A catalog that does not declare facts: the condition may concern every tool, and fails closed.
    undeclared = _policy(
        rules, catalog={name: ToolInfo(is_write=i.is_write) for name, i in DEFAULT_CATALOG.items()}
    )
    decision = decide(undeclared, undeclared.local_principal(), "list_users")
    assert decision.denied and "failing closed" in decision.reason


def test_unless_cannot_be_proven_keeps_restrictive_rules_and_drops_allows() -> None:
    policy = _policy(
        """\
        - id: gate
          tools: [refresh_and_wait]
          roles: [r]
          effect: require_approval
          unless: {project_path: ['Sandbox/**'], content_kind: [workbook]}
        - id: open
          tools: [refresh_and_wait]
          roles: [r]
          effect: allow
          unless: {project_path: ['Finance/**']}
        """
    )
    me = policy.local_principal()
    # every exception condition must match to except the rule
    assert decide(
        policy, me, "refresh_and_wait", {"project_path": "Sandbox/x", "content_kind": "workbook"}
    ).allowed
    assert decide(
        policy, me, "refresh_and_wait", {"project_path": "Sandbox/x", "content_kind": "datasource"}
    ).needs_approval
    # exception fact missing: the gate applies; the allow cannot be trusted either
    assert decide(policy, me, "refresh_and_wait", {"content_kind": "workbook"}).needs_approval
    only_open = _policy(
        "- {id: open, tools: [refresh_and_wait], roles: [r], effect: allow, unless: {project_path: ['Finance/**']}}\n"
    )
    me = only_open.local_principal()
    assert decide(
        only_open, me, "refresh_and_wait", {"project_path": "Sales", "content_kind": "workbook"}
    ).allowed
    assert decide(
        only_open, me, "refresh_and_wait", {"project_path": "Finance/Q", "content_kind": "workbook"}
    ).denied
    assert decide(only_open, me, "refresh_and_wait", {"content_kind": "workbook"}).denied


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("Sales", "Sales", True),
        ("Sales", "Sales/EMEA", False),
        ("Sales/*", "Sales/EMEA", True),
        ("Sales/*", "Sales/EMEA/UK", False),
        ("Sales/*", "Sales", False),
        ("Sales/**", "Sales", True),
        ("Sales/**", "Sales/EMEA/UK", True),
        ("**/Drafts", "Drafts", True),
        ("**/Drafts", "Sales/EMEA/Drafts", True),
        ("**/Drafts", "Sales/MyDrafts", False),
        ("A/**/B", "A/B", True),
        ("A/**/B", "A/x/y/B", True),
        ("A/**/B", "A/xB", False),
        ("Team ?", "Team 1", True),
        ("Team [AB]*", "Team Blue", True),
        ("Team [!AB]*", "Team Blue", False),
        ("**", "Any/thing", True),
    ],
)
def test_project_path_globs(pattern: str, path: str, hit: bool) -> None:
    policy = _policy(
        f"- {{id: p, tools: [refresh_and_wait], roles: [r], effect: allow, when: {{project_path: ['{pattern}']}}}}\n"
    )
    decision = decide(
        policy,
        policy.local_principal(),
        "refresh_and_wait",
        {"project_path": path, "content_kind": "workbook"},
    )
    assert decision.allowed is hit


def test_decide_is_pure(rich_policy: Policy) -> None:
    facts = CallFacts(group_name="Marketing", target_user_site_role="Viewer")
    first = decide(rich_policy, rich_policy.local_principal(), "add_user_to_group", facts)
    again = decide(rich_policy, rich_policy.local_principal(), "add_user_to_group", facts)
    assert first == again
    assert rich_policy.hash == parse_policy(RICH_POLICY).hash
