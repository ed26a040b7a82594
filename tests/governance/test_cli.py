"""`tableau-steward policy|audit|approvals`, driven through the module's own parser (and alongside the
other subcommand modules, to catch name clashes)."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from server.governance import approvals_cli, cli
from server.governance.audit import AuditLog

ROOT = Path(__file__).resolve().parents[2]

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
      - {id: reads, tools: ["@read"], roles: [analyst], effect: allow}
      - {id: writes, tools: ["@write"], roles: [analyst], effect: require_approval}
      - id: no-admin-groups
        tools: [add_user_to_group]
        principals: ["*"]
        effect: deny
        when: {group_name: ["*Admin*"]}
    approvals:
      approvers: {roles: [approver]}
    audit:
      path: state/audit.sqlite
    """
)


def run(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    stdin: str | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY)
    monkeypatch.setenv("STEWARD_POLICY", str(path))
    return path


def test_registers_beside_the_other_subcommand_modules() -> None:
    import emulator.cli

    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command")
    emulator.cli.register(subparsers)
    cli.register(subparsers)
    args = parser.parse_args(["approvals", "approve", "apr_x"])
    assert args.handler is approvals_cli.cmd_approve and args.id == "apr_x"
    with pytest.raises(SystemExit):  # the approver is the admin token's principal, never a name typed here
        parser.parse_args(["approvals", "approve", "apr_x", "--as", "bob"])


def test_policy_check(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["policy", "check"], capsys)  # $STEWARD_POLICY
    assert code == 0 and out.startswith(f"OK: {policy_file}")
    assert "no-admin-groups: deny add_user_to_group for * when group_name in ['*Admin*']" in out
    assert "approvers: bob, carol" in out and "alice sees:" in out
    code, out, _ = run(["policy", "check", str(ROOT / "policies.yaml"), "--json"], capsys)
    assert code == 0 and json.loads(out)["mode"] == "read-write"


def test_policy_check_takes_policy_like_the_other_subcommands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = ROOT / "policies.yaml"
    code, out, _ = run(["policy", "check", "--policy", str(shipped)], capsys)
    assert code == 0 and out.startswith(f"OK: {shipped}")
    code, out, _ = run(["policy", "check", str(shipped)], capsys)  # the positional form still works
    assert code == 0 and out.startswith(f"OK: {shipped}")
    other = tmp_path / "other.yaml"
    other.write_text(shipped.read_text())
    code, out, err = run(["policy", "check", str(shipped), "--policy", str(other)], capsys)
    assert code == 2 and out == "" and "Two policy files given" in err


def test_policy_check_reports_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace("tools: [add_user_to_group]", "tools: [add_user_to_groups]"))
    code, out, err = run(["policy", "check", str(bad)], capsys)
    assert code == 1 and out == ""
    assert f"{bad} line 12: unknown tool 'add_user_to_groups' (did you mean 'add_user_to_group'?)" in err


def test_policy_explain(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        [
            "policy",
            "explain",
            "--tool",
            "add_user_to_group",
            "--args",
            '{"user": "sam", "group": "Site Admins"}',
        ],
        capsys,
    )
    assert code == 0 and "decision: deny" in out and "rule: no-admin-groups" in out
    assert "group_name 'Site Admins' matches '*Admin*'" in out
    code, out, _ = run(
        [
            "policy",
            "explain",
            "--tool",
            "add_user_to_group",
            "--args",
            '{"user": "sam", "group": "Sales"}',
            "--facts",
            '{"target_user_site_role": "Viewer"}',
        ],
        capsys,
    )
    assert "decision: require_approval" in out and "rule: writes" in out and "from: bob, carol" in out
    code, out, _ = run(["policy", "explain", "--tool", "list_users", "--principal", "bob"], capsys)
    assert "decision: deny" in out and "default deny" in out
    code, _, err = run(["policy", "explain", "--tool", "list_users", "--facts", '{"grup": 1}'], capsys)
    assert code == 2 and "unknown call facts" in err
    code, _, err = run(["policy", "explain", "--tool", "list_users", "--args", "[1]"], capsys)
    assert code == 2 and "JSON objects" in err


def test_hash_token_reads_stdin_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "a-long-enough-token-from-stdin"
    code, out, _ = run(
        ["policy", "hash-token", "--principal", "svc", "--role", "analyst"],
        capsys,
        stdin=token + "\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0 and token not in out
    assert f"- hash: sha256:{hashlib.sha256(token.encode()).hexdigest()}" in out
    assert "principal: svc" in out and "roles: [analyst]" in out
    code, _, err = run(["policy", "hash-token"], capsys, stdin="short\n", monkeypatch=monkeypatch)
    assert code == 2 and "shorter than" in err and "short" not in err.split("shorter")[0]
    with pytest.raises(SystemExit):
        cli.main(["policy", "hash-token", token])  # no way to pass it on the command line
    capsys.readouterr()
    code, out, _ = run(["policy", "hash-token", "--generate"], capsys)
    generated = out.splitlines()[1].removeprefix("# ")
    assert code == 0 and f"sha256:{hashlib.sha256(generated.encode()).hexdigest()}" in out


def test_audit_verify_tail_export(
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["audit", "verify"], capsys)
    assert code == 1 and "no audit store" in err
    store = policy_file.parent / "state" / "audit.sqlite"
    log = AuditLog.open(store)
    for i in range(5):
        log.record_intent(call_id=f"c{i}", principal="alice", tool="list_users", arguments={"i": i})
    code, out, _ = run(["audit", "verify"], capsys)
    assert code == 0 and out.startswith("OK: 5 records, chain intact; head seq 5")
    code, out, _ = run(["audit", "tail", "-n", "2"], capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and "tool_call.intent" in lines[0] and "call_id=c4" in lines[1]
    code, out, _ = run(["audit", "tail", "-n", "1", "--json", "--store", str(store)], capsys)
    assert json.loads(out)["seq"] == 5
    target = tmp_path / "export.jsonl"
    code, _, err = run(["audit", "export", "--format", "jsonl", "--output", str(target)], capsys)
    assert code == 0 and len(target.read_text().splitlines()) == 5 and "exported 5 records" in err
    conn = sqlite3.connect(store, isolation_level=None)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET body = replace(body, 'alice', 'mallory') WHERE seq = 3")
    code, out, _ = run(["audit", "verify"], capsys)
    assert code == 1 and out.startswith("BROKEN at record 3: record 3 does not match its keyed hash (edited")


def test_approvals_commands_need_a_running_server(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The commands are clients of the server's admin API (tests/server/test_admin_api.py runs them against
    one); with no server they say how to reach one, and never open the store themselves."""
    for argv in (["approvals", "list"], ["approvals", "approve", "apr_x", "--token-file", str(policy_file)]):
        code, _, err = run(argv, capsys)
        assert code == 1 and "no server has written" in err and "--server URL" in err
    assert not (policy_file.parent / "state" / "audit.sqlite").exists()


def test_deny_requires_a_reason() -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["approvals", "deny", "apr_x"])
