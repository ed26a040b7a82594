"""Strict loading: every mistake is an error naming the file, the line and a hint; the shipped policy
loads and behaves as its comments say; tokens are hashes; the policy hash is canonical."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from server.governance.policy import (
    DEFAULT_CATALOG,
    PolicyError,
    ToolInfo,
    decide,
    hash_token,
    load_policy,
    parse_policy,
    visible_tools,
)

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "policies.yaml"

BASE = textwrap.dedent(
    """\
    version: 1
    mode: read-write
    local:
      principal: me
      roles: [analyst]
    roles:
      analyst: {}
      approver: {}
    principals:
      boss: {roles: [approver]}
    rules:
      - id: reads
        tools: ["@read"]
        roles: [analyst]
        effect: allow
      - id: groups
        tools: [add_user_to_group]
        roles: [analyst]
        effect: require_approval
        when:
          group_name: ["Team *"]
    approvals:
      approvers: {roles: [approver]}
    """
)


def error_for(text: str, **kwargs) -> str:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, **kwargs)
    return str(info.value)


def line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_base_policy_loads() -> None:
    policy = parse_policy(BASE)
    assert policy.mode == "read-write" and [r.id for r in policy.rules] == ["reads", "groups"]


@pytest.mark.parametrize(
    ("old", "new", "needle", "expected"),
    [
        # unknown tool, with a suggestion, at the line of the tool
        (
            "tools: [add_user_to_group]",
            "tools: [add_user_to_groups]",
            "add_user_to_groups",
            "unknown tool 'add_user_to_groups' (did you mean 'add_user_to_group'?)",
        ),
        # unknown keys at every level
        ("rules:", "rule:", "rule:", "unknown key 'rule' in the top level (did you mean 'rules'?)"),
        ("    when:", "    wen:", "wen:", "unknown key 'wen' in rules[1] (did you mean 'when'?)"),
        (
            "group_name: [",
            "group_nam: [",
            "group_nam",
            "unknown key 'group_nam' in rules[1].when (did you mean 'group_name'?)",
        ),
        (
            "  approvers: {roles",
            "  approver: {roles",
            "approver: {roles",
            "unknown key 'approver' in approvals (did you mean 'approvers'?)",
        ),
        # bad values
        (
            "effect: require_approval",
            "effect: require-approval",
            "require-approval",
            "bad value 'require-approval' for 'effect'",
        ),
        ("effect: allow", "effect: alow", "alow", "(did you mean 'allow'?)"),
        ("mode: read-write", "mode: readonly", "readonly", "(did you mean 'read-only'?)"),
        # bad globs
        (
            'group_name: ["Team *"]',
            'group_name: ["Team [A-"]',
            "Team [A-",
            "bad group_name pattern 'Team [A-': unclosed '['",
        ),
        ('group_name: ["Team *"]', 'group_name: ["Team ]"]', "Team ]", "']' without a matching '['"),
        ('tools: ["@read"]', 'tools: ["lst_*"]', "lst_*", "tool glob 'lst_*' matches no known tool"),
        (
            'tools: ["@read"]',
            'tools: ["@reads"]',
            "@reads",
            "unknown tool selector '@reads' (did you mean '@read'?)",
        ),
        ('tools: ["@read"]', 'tools: ["list users"]', "list users", "unknown tool 'list users'"),
        # roles and principals
        (
            "    roles: [analyst]\n    effect: allow",
            "    roles: [analysts]\n    effect: allow",
            "analysts",
            "unknown role 'analysts' (did you mean 'analyst'?)",
        ),
        (
            "approvers: {roles: [approver]}",
            "approvers: {principals: [bos]}",
            "[bos]",
            "unknown principal 'bos' (did you mean 'boss'?)",
        ),
        # missing keys
        ("    effect: allow\n", "", "id: reads", "missing required key 'effect' in rules[0]"),
        ("version: 1\n", "", "mode:", "missing required key 'version'"),
    ],
)
def test_mistakes_name_the_line_and_give_a_hint(old: str, new: str, needle: str, expected: str) -> None:
    assert old in BASE
    text = BASE.replace(old, new, 1)
    message = error_for(text)
    assert expected in message
    assert message.startswith(f"policies.yaml line {line_of(text, needle)}: "), message


def test_the_briefs_example_message_verbatim() -> None:
    text = BASE.replace("tools: [add_user_to_group]", "tools: [add_user_to_groups]")
    assert error_for(text) == (
        f"policies.yaml line {line_of(text, 'add_user_to_groups')}: unknown tool 'add_user_to_groups' "
        "(did you mean 'add_user_to_group'?)"
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("project_path: ['/Finance']", "no leading, trailing or double '/'"),
        ("project_path: ['Finance/']", "no leading, trailing or double '/'"),
        ("project_path: ['Fin**']", "'**' must be a whole path segment"),
        ("project_path: ['']", "empty pattern"),
        ("content_kind: [workbok]", "unknown content kind (did you mean 'workbook'?)"),
        ("target_user_site_role: [SiteAdmnistrator*]", "matches no Tableau site role"),
        ("target_user_site_role: [Creater]", "(did you mean 'Creator'?)"),
        ("group_name: []", "lists no patterns"),
    ],
)
def test_bad_condition_patterns(condition: str, expected: str) -> None:
    tool = (
        "refresh_and_wait" if condition.startswith(("project_path", "content_kind")) else "add_user_to_group"
    )
    text = BASE.replace("tools: [add_user_to_group]", f"tools: [{tool}]").replace(
        'group_name: ["Team *"]', condition
    )
    message = error_for(text)
    assert expected in message
    assert f"line {line_of(text, condition.split(':')[0] + ':')}" in message


def test_condition_on_a_fact_the_tool_never_resolves() -> None:
    text = BASE.replace("tools: [add_user_to_group]", "tools: [refresh_and_wait]")
    assert (
        "none of its tools resolves group_name (refresh_and_wait: content_kind, project_path)"
        in error_for(text)
    )


def test_every_problem_is_reported_in_line_order() -> None:
    text = (
        BASE.replace("roles: [analyst]\n    effect: allow", "roles: [analyst]\n    effect: allow")
        .replace("tools: [add_user_to_group]", "tools: [add_user]")
        .replace("approvers: {roles: [approver]}", "approvers: {roles: [aprover]}")
    )
    message = error_for(text)
    lines = message.splitlines()
    assert len(lines) == 2
    assert "unknown tool 'add_user'" in lines[0] and "unknown role 'aprover'" in lines[1]


def test_structural_rules() -> None:
    assert "duplicate rule id 'reads'" in error_for(BASE.replace("id: groups", "id: reads"))
    assert "names nobody" in error_for(
        BASE.replace("    roles: [analyst]\n    effect: allow\n", "    effect: allow\n")
    )
    dup = BASE.replace("mode: read-write\n", "mode: read-write\nmode: read-only\n")
    assert "line 3: duplicate key 'mode' (first at line 2)" in error_for(dup)
    assert "YAML syntax error" in error_for(BASE + "rules: [\n")
    assert "the file is empty" in error_for("# nothing\n")
    assert "top level must be a mapping" in error_for("- a\n- b\n")
    no_approvers = BASE.replace("approvals:\n  approvers: {roles: [approver]}\n", "")
    assert "requires approval but approvals.approvers names nobody" in error_for(no_approvers)
    assert "bad duration" in error_for(BASE + "  ttl: soon\n")
    assert "bad rule id" in error_for(BASE.replace("id: reads", "id: 'has space'"))


def test_tokens_are_hashes_and_clear_tokens_never_echo() -> None:
    clear = "s3cret-bearer-token-value-123"
    text = BASE + f"http:\n  tokens:\n    - hash: {clear}\n      principal: bot\n"
    message = error_for(text)
    assert f"line {line_of(text, 'hash:')}" in message and "hash-token" in message
    assert clear not in message
    # a well-formed entry authenticates exactly its token
    token = "a-very-long-random-token-for-tests"
    good = parse_policy(
        BASE
        + f"http:\n  tokens:\n    - hash: {hash_token(token)}\n      principal: bot\n      roles: [analyst]\n"
    )
    bot = good.principal_for_token(token)
    assert bot is not None and bot.name == "bot" and bot.roles == {"analyst"} and bot.via == "token"
    assert good.principal_for_token(token + "x") is None and good.principal_for_token("") is None
    assert token not in repr(good.spec) and token not in str(good.summary())
    assert "unknown role 'analist'" in error_for(
        BASE
        + f"http:\n  tokens:\n    - hash: {hash_token(token)}\n      principal: bot\n      roles: [analist]\n"
    )


def test_tokens_file_relative_to_the_policy(tmp_path: Path) -> None:
    token = "token-kept-in-a-separate-file-42"
    (tmp_path / "tokens.yaml").write_text(
        f"tokens:\n  - hash: {hash_token(token)}\n    principal: svc\n    roles: [analyst]\n"
    )
    policy_file = tmp_path / "policies.yaml"
    policy_file.write_text(BASE + "http:\n  tokens_file: tokens.yaml\n")
    policy = load_policy(policy_file)
    svc = policy.principal_for_token(token)
    assert svc is not None and svc.name == "svc" and "list_users" in visible_tools(policy, svc)
    # the file's entries count in the policy hash
    (tmp_path / "tokens.yaml").write_text(f"tokens:\n  - hash: {hash_token(token)}\n    principal: svc2\n")
    assert load_policy(policy_file).hash != policy.hash
    # errors in the tokens file name that file and its line
    (tmp_path / "tokens.yaml").write_text(
        "tokens:\n  - hash: sha256:abc\n    principal: svc\n    role: [x]\n"
    )
    with pytest.raises(PolicyError) as info:
        load_policy(policy_file)
    text = str(info.value)
    assert "tokens.yaml line 4: unknown key 'role' in tokens[0] (did you mean 'roles'?)" in text
    (tmp_path / "tokens.yaml").unlink()
    with pytest.raises(PolicyError, match="cannot read tokens_file 'tokens.yaml'"):
        load_policy(policy_file)


def test_policy_hash_is_canonical() -> None:
    base = parse_policy(BASE)
    reformatted = parse_policy("# a comment\n" + BASE.replace('["@read"]', "\n          - '@read'"))
    assert reformatted.hash == base.hash and re.fullmatch(r"[0-9a-f]{64}", base.hash)
    assert parse_policy(BASE.replace("Team *", "Team ?")).hash != base.hash


def test_roles_and_principals_may_be_short() -> None:
    short = BASE.replace("roles:\n  analyst: {}\n  approver: {}\n", "roles: [analyst, approver]\n").replace(
        "principals:\n  boss: {roles: [approver]}\n", "principals:\n  boss:\n    roles: [approver]\n  erin:\n"
    )
    assert "roles: [analyst, approver]" in short and "  erin:\n" in short
    policy = parse_policy(short)
    assert policy.is_approver("boss") and "erin" in policy.known_principals()


def test_the_catalog_is_a_parameter() -> None:
    catalog = {"list_users": ToolInfo(is_write=False), "delete_workbook": ToolInfo(is_write=True)}
    text = textwrap.dedent(
        """\
        version: 1
        mode: read-write
        local: {principal: me}
        rules:
          - {id: deletes, tools: [delete_workbook], principals: [me], effect: allow}
        """
    )
    policy = parse_policy(text, known_tools=catalog)
    assert visible_tools(policy, policy.local_principal()) == {"delete_workbook"}
    assert "unknown tool 'delete_workbook'" in error_for(text)  # not in the default catalog


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(tmp_path / "nope.yaml")


def test_default_path_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "p.yaml").write_text(BASE)
    monkeypatch.setenv("STEWARD_POLICY", str(tmp_path / "p.yaml"))
    assert load_policy().source == (tmp_path / "p.yaml").resolve()


# -- the shipped policies.yaml ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    return load_policy(SHIPPED, DEFAULT_CATALOG)


def test_shipped_policy_is_safe_out_of_the_box(shipped) -> None:
    assert shipped.mode == "read-write" and not shipped.warnings
    me = shipped.local_principal()
    assert me is not None and me.name == "local-user"
    reads = {t for t, i in DEFAULT_CATALOG.items() if not i.is_write}
    assert visible_tools(shipped, me) == set(DEFAULT_CATALOG)
    for tool in reads:
        assert decide(shipped, me, tool).allowed, tool
    refresh = decide(shipped, me, "refresh_and_wait", {"project_path": "Sales", "content_kind": "workbook"})
    assert refresh.needs_approval and refresh.rule_id == "writes-need-approval"
    plain = {"target_user_site_role": "Viewer", "group_minimum_site_role": ""}
    member = decide(shipped, me, "add_user_to_group", {"group_name": "Marketing", **plain})
    assert member.needs_approval
    granting = decide(
        shipped, me, "add_user_to_group", {**plain, "group_name": "Marketing", "group_minimum_site_role": "SiteAdministratorExplorer"}
    )
    assert granting.denied and granting.rule_id == "no-admin-granting-groups"
    for group in ("Administrators", "Site Administrators", "Site Admins", "Tableau Admins", "administrators"):
        decision = decide(shipped, me, "add_user_to_group", {"group_name": group, **plain})
        assert decision.denied and decision.rule_id == "no-admin-groups", group
    # approvers: site-admin may approve, the local user may not (and never its own requests anyway)
    assert shipped.is_approver("site-admin") and not shipped.is_approver("local-user")
    assert shipped.required_approvals == 1 and shipped.approval_ttl == 24 * 3600
    assert shipped.audit_path == ROOT / ".steward" / "audit.sqlite"
    assert not shipped.tokens  # the token example is commented out
    assert decide(shipped, shipped.principal_named("stranger"), "list_users").denied


def test_shipped_example_token_hash_matches_the_documented_example_token() -> None:
    text = SHIPPED.read_text()
    match = re.search(r"#\s+- hash: (sha256:[0-9a-f]{64})", text)
    assert match and "example-token-do-not-use" in text
    assert match.group(1) == hash_token("example-token-do-not-use")


def test_shipped_examples_are_valid_when_uncommented() -> None:
    """Uncommenting the documented examples yields a valid policy that behaves as described."""
    text = SHIPPED.read_text()
    lines = []
    for line in text.splitlines():
        stripped = line.lstrip()
        # the example blocks are the commented YAML lines indented like policy content
        if re.match(r"\s*#\s{1,3}(- |[a-z_]+:|\s+[a-z_-]+:|\s+- )", line) and not re.match(
            r"\s*#\s+(Example|Or |More|To |\(or)", line
        ):
            indent = len(line) - len(stripped)
            lines.append(" " * indent + stripped[2:])
        else:
            lines.append(line)
    uncommented = "\n".join(lines).replace("  tokens: []\n", "")
    policy = parse_policy(uncommented.replace("  tokens_file: tokens.yaml\n", ""))
    me = policy.local_principal()
    assert policy.principal_for_token("example-token-do-not-use").name == "example-analyst"
    sandbox = decide(
        policy, me, "refresh_and_wait", {"project_path": "Sandbox/Team", "content_kind": "workbook"}
    )
    assert sandbox.allowed and sandbox.rule_id == "sandbox-refreshes"
    assert (
        decide(
            policy, me, "refresh_and_wait", {"project_path": "Finance/Q4", "content_kind": "workbook"}
        ).rule_id
        == "finance-is-frozen"
    )
    admin_target = {"group_name": "Marketing", "target_user_site_role": "SiteAdministratorExplorer"}
    assert decide(policy, me, "add_user_to_group", admin_target).rule_id == "no-groups-for-admin-users"


def test_shipped_policy_in_read_only_mode_hides_writes() -> None:
    policy = parse_policy(SHIPPED.read_text().replace("\nmode: read-write", "\nmode: read-only"))
    me = policy.local_principal()
    assert visible_tools(policy, me) == {t for t, i in DEFAULT_CATALOG.items() if not i.is_write}
    assert decide(
        policy, me, "refresh_and_wait", {"project_path": "Sales", "content_kind": "workbook"}
    ).denied


SLACK_SECTION = """\
notifications:
  targets:
    - {{name: ops, format: webhook, url: "https://hooks.internal/steward", secret_env: OPS_SECRET}}
  slack_interactions:
    signing_secret_env: SLACK_SIGNING_SECRET
    users: {{U0123ABCD: {who}}}
"""


def test_notifications_are_part_of_the_policy_and_slack_users_must_be_approvers() -> None:
    policy = parse_policy(BASE + SLACK_SECTION.format(who="boss"))
    assert [t.name for t in policy.spec.notifications.targets] == ["ops"]
    assert policy.spec.notifications.slack_interactions.users == {"U0123ABCD": "boss"}
    assert policy.hash != parse_policy(BASE).hash  # who is told, and who approves from Slack, is policy
    text = BASE + SLACK_SECTION.format(who="me")
    message = error_for(text)
    assert message == (
        f"policies.yaml line {line_of(text, 'U0123ABCD')}: Slack user U0123ABCD maps to 'me', who is not an "
        "approver under approvals.approvers (approvers: boss)"
    )


def test_a_secret_in_the_notifications_section_is_refused_without_echoing_it() -> None:
    text = BASE + "notifications:\n  slack_interactions:\n    signing_secret: s3cr3t-value-123\n    users: {U0123ABCD: boss}\n"
    message = error_for(text)
    assert "signing_secret" in message and "s3cr3t-value-123" not in message
