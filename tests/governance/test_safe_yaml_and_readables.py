"""The policy loader refuses alias bombs and Python tags clearly; rules name resources and prompts."""

from __future__ import annotations

import textwrap
import tracemalloc

import pytest

from server.governance.policy import (
    DEFAULT_READABLES,
    PolicyError,
    decide_read,
    parse_policy,
)
from server.governance.policy import readable as readable_by


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The classic 'billion laughs': each level lists the previous one `width` times (9^9 values, <1 KB)."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "version: 1\nmode: read-only\n" + "\n".join(lines) + "\n"


def test_a_1kb_alias_bomb_is_refused_without_expanding_it() -> None:
    bomb = alias_bomb()
    assert len(bomb.encode()) < 1024
    tracemalloc.start()
    try:
        with pytest.raises(PolicyError, match="refused YAML: the document expands to more than 100000 values"):
            parse_policy(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, f"loading the bomb peaked at {peak / 1e6:.1f} MB"  # it was 2.2 GB


def test_too_many_aliases_are_refused_with_the_line() -> None:
    text = "version: 1\nmode: read-only\nx: &x 1\ny:\n" + "".join("  - *x\n" for _ in range(101))
    with pytest.raises(PolicyError) as refused:
        parse_policy(text)
    assert "more than 100 aliases" in str(refused.value) and "line 105" in str(refused.value)  # the 101st


def test_a_few_aliases_still_work() -> None:
    text = textwrap.dedent(
        """\
        version: 1
        mode: read-only
        local: {principal: me, roles: &mine [analyst]}
        roles: {analyst: {}}
        principals: {you: {roles: *mine}}
        rules:
          - {id: reads, tools: ["@read"], roles: *mine, effect: allow}
        """
    )
    assert parse_policy(text).roles_of("you") == {"analyst"}


@pytest.mark.parametrize(
    ("snippet", "words"),
    [
        ("!!python/object/apply:os.system ['true']", "Python tags are not allowed here (found !!python/object/apply:os.system)"),
        ("!!python/name:os.system", "Python tags are not allowed"),
        ("!custom 1", "tags other than the YAML core ones are not allowed here (found !custom)"),
    ],
)
def test_tags_are_refused_clearly(snippet: str, words: str) -> None:
    with pytest.raises(PolicyError, match="line 3: refused YAML") as refused:
        parse_policy(f"version: 1\nmode: read-only\nx: {snippet}\n")
    assert words in str(refused.value)


def test_recursive_aliases_are_refused() -> None:
    with pytest.raises(PolicyError, match="refers to a node that contains it"):
        parse_policy("version: 1\nmode: read-only\nx: &x [1, *x]\n")


# -- resources and prompts in rules --------------------------------------------------------------------------------

READERS = textwrap.dedent(
    """\
    version: 1
    mode: read-only
    local: {principal: me, roles: [analyst]}
    roles: {analyst: {}, guest: {}}
    principals: {visitor: {roles: [guest]}, nobody: {}}
    rules:
      - {id: reads, tools: ["@read"], resources: ["*"], prompts: ["*"], roles: [analyst], effect: allow}
      - {id: guests-see-the-policy, resources: [policy], roles: [guest], effect: allow}
      - {id: no-summary-for-guests, resources: ["site_*"], roles: [guest], effect: deny}
    """
)


def test_rules_name_resources_and_prompts_and_unnamed_principals_read_nothing() -> None:
    policy = parse_policy(READERS)
    me, visitor, nobody = (policy.principal_named(n) for n in ("me", "visitor", "nobody"))
    assert readable_by(policy, me, "resource") == DEFAULT_READABLES["resource"]
    assert readable_by(policy, me, "prompt") == DEFAULT_READABLES["prompt"]
    assert readable_by(policy, visitor, "resource") == {"policy"}
    assert readable_by(policy, visitor, "prompt") == set()
    summary = decide_read(policy, visitor, "resource", "site_summary")
    assert summary.denied and summary.rule_id == "no-summary-for-guests"
    refused = decide_read(policy, nobody, "resource", "site_summary")
    assert refused.denied and "no rule lets principal 'nobody' read resource 'site_summary'" in refused.reason
    assert decide_read(policy, me, "resource", "nonexistent").reason == "unknown resource 'nonexistent'"


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("{id: r, resources: [site_sumary], roles: [analyst], effect: allow}", "unknown resource 'site_sumary' (did you mean 'site_summary'?)"),
        ("{id: r, prompts: [nope], roles: [analyst], effect: allow}", "unknown prompt 'nope' (known prompts:"),
        ("{id: r, resources: [policy], roles: [analyst], effect: require_approval}", "cannot wait for approval"),
        (
            "{id: r, resources: [policy], roles: [analyst], effect: deny, when: {group_name: [x]}}",
            "when/unless concern tool calls only",
        ),
        ("{id: r, roles: [analyst], effect: allow}", "must name at least one tool"),
    ],
)
def test_bad_readable_rules_are_errors(rule: str, words: str) -> None:
    text = READERS.split("rules:")[0] + f"rules:\n  - {rule}\n"
    with pytest.raises(PolicyError) as refused:
        parse_policy(text)
    assert words in str(refused.value)
