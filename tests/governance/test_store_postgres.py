"""What PostgreSQL adds to the store: versioned migrations (recorded on both backends), fail-closed
writes while the database is down and recovery when it returns, and approval wake-ups by NOTIFY."""

from __future__ import annotations

import pytest

from server.governance.approvals import ApprovalStore
from server.governance.audit import AuditLog, AuditUnavailable
from server.governance.audit_pg import ApprovalWakeups, redacted_url
from server.governance.policy import parse_policy
from tests.governance.helpers import RICH_POLICY


def fill(log: AuditLog, n: int, tag: str = "c") -> None:
    for i in range(n):
        log.record_intent(call_id=f"{tag}{i}", principal="alice", tool="list_users", arguments={"i": i})


def test_migrations_are_versioned_and_applied_once(store_path) -> None:
    store = ApprovalStore(AuditLog.open(store_path))
    expected = [(1, "audit log, sealed head, meta, append-only triggers"), (100, "approval requests and sealed decisions")]
    assert store.audit.applied_migrations() == expected
    store.audit.close()
    again = ApprovalStore(AuditLog.open(store_path))  # a second process starting on the same store
    assert again.audit.applied_migrations() == expected
    assert again.audit.verify().ok


def test_writes_are_refused_while_the_database_is_down_and_resume_when_it_returns(postgres_cluster) -> None:
    url = postgres_cluster.new_database()
    log = AuditLog.open(url)
    fill(log, 3)
    postgres_cluster.stop()
    try:
        with pytest.raises(AuditUnavailable) as refused:
            fill(log, 1, "down")
        assert "audit store" in str(refused.value) and "t_" in str(refused.value)
        with pytest.raises(AuditUnavailable) as again:  # still refused: every call tries to reconnect
            fill(log, 1, "down")
        assert again.value.public_reason == "the audit store database is unreachable"
    finally:
        postgres_cluster.start()
    fill(log, 2, "back")
    result = log.verify()
    assert result.ok and result.head_seq == 5  # nothing lost, nothing half-written, no gap
    assert [r.fields["call_id"] for r in log.records()] == ["c0", "c1", "c2", "back0", "back1"]


def test_an_approval_wakes_every_listener(postgres_cluster) -> None:
    url = postgres_cluster.new_database()
    policy = parse_policy(RICH_POLICY.replace("required_approvals: 2", "required_approvals: 1"))
    store = ApprovalStore(AuditLog.open(url))
    request = store.create("refresh_and_wait", {"name": "Sales"}, "alice", "refresh Sales", 3600)
    listeners = [ApprovalWakeups(url) for _ in range(2)]  # two replicas
    try:
        for listener in listeners:
            assert listener.connected.wait(10)
            listener.wait(0)  # nothing pending before the approval
        ApprovalStore(AuditLog.open(url)).approve(request.id, "bob", "ok", policy)  # from a third connection
        assert all(listener.wait(10) for listener in listeners)
    finally:
        for listener in listeners:
            listener.close()


def test_a_password_never_reaches_messages() -> None:
    assert redacted_url("postgresql://steward:hunter2@db:5432/audit") == "postgresql://steward:***@db:5432/audit"
    with pytest.raises(AuditUnavailable) as refused:
        AuditLog.open("postgresql://steward:hunter2@127.0.0.1:1/audit")
    assert "hunter2" not in str(refused.value) and "***" in str(refused.value)


def test_the_audit_cli_works_on_a_database_url(postgres_cluster, tmp_path, capsys) -> None:
    from server.cli import main as cli_main

    url = postgres_cluster.new_database()
    log = AuditLog.open(url)
    fill(log, 3)
    assert cli_main(["audit", "verify", "--store", url]) == 0
    assert cli_main(["audit", "anchor", "--store", url]) == 0
    anchor = capsys.readouterr().out.strip().splitlines()[-1]
    fill(log, 1, "later")
    assert cli_main(["audit", "verify", "--store", url, "--expect-head", anchor]) == 0
    assert cli_main(["audit", "tail", "--store", url, "-n", "2"]) == 0
    assert "later0" in capsys.readouterr().out
    exported = tmp_path / "audit.jsonl"
    assert cli_main(["audit", "export", "--store", url, "-o", str(exported)]) == 0
    assert len(exported.read_text().splitlines()) == 4


def test_the_policy_or_the_environment_names_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.governance.policy import STORE_URL_ENV, PolicyError

    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    in_file = parse_policy(RICH_POLICY.replace("audit:\n", "audit:\n  url: postgresql://steward@db/audit\n"))
    assert in_file.audit_store == "postgresql://steward@db/audit"
    assert parse_policy(RICH_POLICY).audit_store == parse_policy(RICH_POLICY).audit_path  # SQLite by default
    monkeypatch.setenv(STORE_URL_ENV, "postgresql://steward@other/audit")
    assert in_file.audit_store == "postgresql://steward@other/audit"  # the environment wins
    with pytest.raises(PolicyError, match="must start with postgresql://"):
        parse_policy(RICH_POLICY.replace("audit:\n", "audit:\n  url: mysql://db/audit\n"))
    monkeypatch.setenv(STORE_URL_ENV, "sqlite:///tmp/x")
    with pytest.raises(PolicyError, match=f"{STORE_URL_ENV}: the audit store URL must start with postgresql://"):
        in_file.audit_store  # noqa: B018
