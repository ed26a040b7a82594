"""Shared test data: a rich policy, a hand-moved clock, and worker functions for other processes."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import psycopg

from server.governance.audit import is_database_url
from server.governance.audit_pg import PgConnection

# One policy exercising every condition kind, principal and role matching, `unless` and precedence.
RICH_POLICY = textwrap.dedent(
    """\
    version: 1
    mode: read-write
    local:
      principal: alice
      roles: [analyst]
    roles:
      analyst: {}
      approver: {}
      ops: {}
    principals:
      bob: {roles: [approver]}
      carol: {roles: [approver]}
      dave: {roles: [ops]}
      erin: {}
      mallory: {}
    rules:
      - id: reads
        description: Everyone with a role reads.
        tools: ["@read"]
        roles: [analyst, approver, ops]
        effect: allow
      - id: erin-lists-users
        tools: [list_users]
        principals: [erin]
        effect: allow
      - id: refresh-sandbox
        tools: [refresh_and_wait]
        roles: [analyst]
        effect: allow
        when:
          project_path: ["Sandbox/**"]
      - id: refresh-gated
        tools: [refresh_and_wait]
        roles: [analyst]
        effect: require_approval
        unless:
          project_path: ["Sandbox/**"]
      - id: finance-frozen
        tools: [refresh_and_wait]
        principals: ["*"]
        effect: deny
        when:
          project_path: ["Finance/**"]
      - id: ops-datasources
        tools: [refresh_and_wait]
        roles: [ops]
        effect: allow
        when:
          content_kind: [datasource]
      - id: groups-gated
        tools: [add_user_to_group]
        roles: [analyst, ops]
        effect: require_approval
      - id: ops-team-groups
        tools: [add_user_to_group]
        roles: [ops]
        effect: allow
        when:
          group_name: ["Team *"]
      - id: no-admin-groups
        description: Never into administrator groups.
        tools: [add_user_to_group]
        principals: ["*"]
        effect: deny
        when:
          group_name: ["Administrators", "Site Admin*", "*Admin*"]
      - id: no-admin-targets
        tools: [add_user_to_group]
        principals: ["*"]
        effect: deny
        when:
          target_user_site_role: ["SiteAdministrator*", "ServerAdministrator"]
    approvals:
      approvers:
        roles: [approver]
      required_approvals: 2
      ttl: 1h
    audit:
      path: audit/steward.sqlite
      redact: [customer_note]
    """
)


class FakeClock:
    """A clock the test moves by hand (expiry without sleeping)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- workers run in other processes (multiprocessing "spawn": importable, top-level) ------------------------


def append_worker(path: str, count: int, tag: str, start: Any) -> int:
    """Append `count` intent/outcome records from a separate process once `start` is set."""
    from server.governance.audit import AuditLog

    log = AuditLog.open(path)
    start.wait(30)
    for i in range(count):
        call_id = f"{tag}-{i}"
        log.record_intent(call_id=call_id, principal=tag, tool="list_users", arguments={"i": i})
        log.record_outcome(call_id=call_id, tool="list_users", status="ok", duration_ms=1.0)
    log.close()
    return count


def claim_worker(path: str, claims: list[tuple[str, str, str]], barrier: Any, results: Any) -> None:
    """Try to claim every (id, tool, digest) as soon as all racers are ready; report the ids won."""
    from server.governance.approvals import ApprovalError, ApprovalStore
    from server.governance.keys import SigningKey
    from server.governance.policy import parse_policy

    policy = parse_policy(RICH_POLICY.replace("required_approvals: 2", "required_approvals: 1"))
    store = ApprovalStore.open(path, key=SigningKey(bytes(range(32)), "tests"))
    barrier.wait(30)
    won = []
    for request_id, tool, digest in claims:
        try:
            store.claim_for_execution(request_id, tool, digest, policy=policy)
            won.append(request_id)
        except ApprovalError:
            pass
    store.audit.close()
    results.put(won)


# -- a store's tables as someone with write access to them (and no key) sees them -------------------------

RAW_ERRORS = (sqlite3.DatabaseError, psycopg.Error)  # what a refused raw statement raises, either backend
_SQLITE_GUARDS = ("audit_log_no_update", "audit_log_no_delete", "audit_log_no_replace")


def raw_store(target: Path | str) -> Any:
    """A plain connection to the store's tables (the append-only guards in place), either backend; it
    takes SQLite's placeholders on both."""
    if is_database_url(target):
        return PgConnection(psycopg.connect(str(target), autocommit=True))
    return sqlite3.connect(target, isolation_level=None)


def attacker_connection(target: Path | str) -> Any:
    """Write access to the store, no key: the append-only guards dropped first."""
    conn = raw_store(target)
    if is_database_url(target):
        conn.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
    else:
        for trigger in _SQLITE_GUARDS:
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    return conn


def stored_bytes(target: Path | str) -> bytes:
    """Everything the store holds as bytes: the SQLite file with its -wal/-shm, or every audit row."""
    if not is_database_url(target):
        path = Path(target)
        return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))
    conn = raw_store(target)
    try:
        return str(conn.execute("SELECT string_agg(body || hash, '') FROM audit_log").fetchone()[0]).encode()
    finally:
        conn.close()
