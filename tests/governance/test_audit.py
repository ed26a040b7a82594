"""The audit log: hash chain, tamper detection (edit, deletion, reordering, truncation), fail-closed
writes, concurrent appends from threads and processes, and redaction of secrets."""

from __future__ import annotations

import io
import json
import multiprocessing
import sqlite3
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from server.governance.audit import GENESIS_HASH, AuditLog, AuditUnavailable, record_hash
from server.governance.canonical import args_digest, canonical_json, sha256_hex
from tests.governance.helpers import RAW_ERRORS, append_worker, attacker_connection, raw_store, stored_bytes


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.record_intent(call_id=f"c{i}", principal="alice", tool="list_users", arguments={"i": i})


def tamper(path: Path) -> sqlite3.Connection:
    """A raw connection as an attacker with write access would use (the append-only triggers dropped)."""
    return attacker_connection(path)


def test_records_chain_and_verify(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    assert log.verify().ok and log.verify().checked == 0
    first = log.record_intent(
        call_id="c1",
        principal="alice",
        tool="add_user_to_group",
        arguments={"user": "sam", "group": "G"},
        decision="require_approval",
        rule="gate",
        policy_hash="ph",
        approval_id=None,
    )
    second = log.record_outcome(
        call_id="c1", tool="add_user_to_group", status="pending_approval", duration_ms=12.3456
    )
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    assert first.fields["args_digest"] == args_digest({"user": "sam", "group": "G"})
    body = {**first.fields, "seq": 1, "ts": first.ts, "kind": first.kind, "prev_hash": GENESIS_HASH}
    assert first.hash == record_hash(log.key, GENESIS_HASH, canonical_json(body))
    result = log.verify()
    assert (result.ok, result.checked, result.first_bad_seq, result.head_seq, result.head_hash) == (
        True,
        2,
        None,
        2,
        second.hash,
    )
    assert [r.kind for r in log.tail(5)] == ["tool_call.intent", "tool_call.outcome"]
    assert second.fields["duration_ms"] == 12.346


def test_tableau_request_records_link_to_the_call(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    event = SimpleNamespace(
        method="GET",
        path="/api/3.24/sites/x/users",
        query="pageSize=1000",
        status=200,
        duration_ms=3.2,
        attempt=1,
        operation_id="call_1",
        error=None,
    )
    record = log.record_tableau_request(event)
    assert (
        record.kind == "tableau_request"
        and record.fields["call_id"] == "call_1"
        and record.fields["status"] == 200
    )


def test_record_kinds_and_fields_are_checked(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    with pytest.raises(ValueError, match="unknown audit record kind"):
        log.append("tool_call.whatever", call_id="x")
    with pytest.raises(ValueError, match="lacks"):
        log.append("tool_call.outcome", call_id="x")
    with pytest.raises(ValueError, match="reserved"):
        log.append("policy.loaded", policy_hash="h", seq=5)
    with pytest.raises(ValueError, match="outcome status"):
        log.record_outcome(call_id="x", tool="t", status="fine")
    assert log.verify().checked == 0  # nothing half-written


def test_the_log_refuses_plain_updates_and_deletes(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 2)
    conn = raw_store(store_path)
    with pytest.raises(RAW_ERRORS, match="append-only"):
        conn.execute("UPDATE audit_log SET body = '{}' WHERE seq = 1")
    with pytest.raises(RAW_ERRORS, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE seq = 2")


def _edit(conn: sqlite3.Connection, seq: int) -> None:
    body = conn.execute("SELECT body FROM audit_log WHERE seq = ?", (seq,)).fetchone()[0]
    conn.execute("UPDATE audit_log SET body = ? WHERE seq = ?", (body.replace('"alice"', '"mallory"'), seq))


def _edit_and_rehash(conn: sqlite3.Connection, seq: int) -> None:
    """Edit a record and recompute its hash as the unkeyed chain did: without the key it cannot verify."""
    body = conn.execute("SELECT body FROM audit_log WHERE seq = ?", (seq,)).fetchone()[0]
    prev = json.loads(body)["prev_hash"]
    body = body.replace('"alice"', '"mallory"')
    conn.execute(
        "UPDATE audit_log SET body = ?, hash = ? WHERE seq = ?", (body, sha256_hex(prev + body), seq)
    )


def _swap(conn: sqlite3.Connection, a: int, b: int) -> None:
    rows = {
        s: (body, h)
        for s, body, h in conn.execute("SELECT seq, body, hash FROM audit_log WHERE seq IN (?, ?)", (a, b))
    }
    conn.execute("UPDATE audit_log SET body = ?, hash = ? WHERE seq = ?", (*rows[b], a))
    conn.execute("UPDATE audit_log SET body = ?, hash = ? WHERE seq = ?", (*rows[a], b))


def _forge(conn: sqlite3.Connection) -> None:
    """A well-linked extra record, inserted without the key (a plain hash) and without moving the head."""
    prev = conn.execute("SELECT hash FROM audit_log WHERE seq = 8").fetchone()[0]
    body = canonical_json(
        {
            "seq": 9,
            "ts": "2030-01-01T00:00:00.000000Z",
            "kind": "policy.loaded",
            "prev_hash": prev,
            "policy_hash": "x",
        }
    )
    conn.execute("INSERT INTO audit_log VALUES (9, ?, ?)", (body, sha256_hex(prev + body)))


@pytest.mark.parametrize(
    ("name", "damage", "first_bad", "words"),
    [
        ("edit", lambda c: _edit(c, 4), 4, "does not match its keyed hash"),
        ("edit and rehash", lambda c: _edit_and_rehash(c, 4), 4, "does not match its keyed hash"),
        (
            "edit the hash column",
            lambda c: c.execute("UPDATE audit_log SET hash = ? WHERE seq = 3", ("0" * 64,)),
            3,
            "does not match its keyed hash",
        ),
        ("delete one", lambda c: c.execute("DELETE FROM audit_log WHERE seq = 3"), 3, "record 3 is missing"),
        (
            "delete two",
            lambda c: c.execute("DELETE FROM audit_log WHERE seq IN (3, 4)"),
            3,
            "record 3..4 is missing",
        ),
        ("reorder", lambda c: _swap(c, 2, 5), 2, "holds the content of record 5"),
        ("delete the last", lambda c: c.execute("DELETE FROM audit_log WHERE seq = 8"), 8, "truncated"),
        (
            "truncate",
            lambda c: c.execute("DELETE FROM audit_log WHERE seq > 5"),
            6,
            "record 6..8 is missing: the log was truncated",
        ),
        ("delete the head", lambda c: c.execute("DELETE FROM audit_head"), 8, "head anchor is missing"),
        (
            "malformed record",
            lambda c: c.execute("INSERT INTO audit_log VALUES (9, '{}', 'x')"),
            9,
            "not a well-formed",
        ),
        ("forge a chained record", _forge, 9, "record 9 does not match its keyed hash"),
    ],
)
def test_verify_names_the_first_bad_record(
    store_path: Path, name: str, damage, first_bad: int, words: str
) -> None:
    log = AuditLog.open(store_path)
    fill(log, 8)
    assert log.verify().ok
    damage(tamper(store_path))
    result = log.verify()
    assert not result.ok
    assert result.first_bad_seq == first_bad, result.reason
    assert words in result.reason
    # links verified before the problem
    assert result.checked == {"delete the head": 8}.get(name, first_bad - 1)


# -- fail closed ----------------------------------------------------------------------------------------------


def test_unavailable_when_the_store_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file where the store's directory should be\n")
    with pytest.raises(AuditUnavailable, match="cannot open the audit store"):
        AuditLog.open(blocker / "audit.sqlite")  # fails for root too: a file cannot hold a directory


def test_unavailable_when_the_store_is_read_only(store_path: Path) -> None:
    fill(AuditLog.open(store_path), 2)
    read_only = AuditLog.open(store_path, readonly=True)  # the database itself refuses writes (mode=ro, READ ONLY)
    assert read_only.verify().ok
    with pytest.raises(AuditUnavailable, match="readonly database|read-only transaction"):
        read_only.append("policy.loaded", policy_hash="h")
    if isinstance(store_path, Path):
        with pytest.raises(AuditUnavailable, match="no audit store"):
            AuditLog.open(store_path.with_name("missing.sqlite"), readonly=True)
    else:
        missing = store_path.replace("/t_", "/missing_")
        with pytest.raises(AuditUnavailable, match="cannot reach the audit store .*missing_"):
            AuditLog.open(missing, readonly=True)


@pytest.mark.sqlite_only  # fills SQLite's page limit
def test_unavailable_when_the_disk_is_full_and_the_chain_survives(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 3)
    pages = log.conn.execute("PRAGMA page_count").fetchone()[0]
    log.conn.execute(f"PRAGMA max_page_count = {pages}")  # the database cannot grow: SQLITE_FULL, as for root
    with pytest.raises(AuditUnavailable, match="full"):
        log.record_intent(
            call_id="big", principal="alice", tool="list_users", arguments={"blob": "x" * 200_000}
        )
    assert log.verify().ok and log.head()[0] == 3  # nothing half-written
    log.conn.execute("PRAGMA max_page_count = 1073741823")
    fill(log, 1)
    assert log.verify().ok and log.head()[0] == 4


# -- concurrency ------------------------------------------------------------------------------------------------


def test_concurrent_appends_from_threads(store_path: Path) -> None:
    shared = AuditLog.open(store_path)
    other = AuditLog.open(store_path)  # a second connection in the same process, like a second process

    def work(log: AuditLog, tag: str) -> None:
        for i in range(40):
            log.record_intent(call_id=f"{tag}{i}", principal=tag, tool="list_users", arguments={"i": i})

    threads = [threading.Thread(target=work, args=(shared if i % 2 else other, f"t{i}")) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = shared.verify()
    assert result.ok and result.checked == 320 and result.head_seq == 320
    assert len({r.fields["call_id"] for r in shared.records()}) == 320


def test_concurrent_appends_from_processes(store_path: Path) -> None:
    AuditLog.open(store_path).close()  # create the schema first
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=append_worker, args=(str(store_path), 60, f"p{i}", start)) for i in range(2)]
    for p in procs:
        p.start()
    start.set()
    here = AuditLog.open(store_path)
    for i in range(60):  # and this process appends at the same time
        here.append("policy.loaded", policy_hash=f"main-{i}")
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    result = here.verify()
    assert result.ok, result.reason
    assert result.checked == 2 * 60 * 2 + 60
    principals = [r.fields.get("principal") for r in here.records() if r.kind == "tool_call.intent"]
    assert principals.count("p0") == principals.count("p1") == 60


# -- reading -------------------------------------------------------------------------------------------------------


def test_tail_follow_and_export(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 5)
    assert [r.seq for r in log.tail(2)] == [4, 5]
    seen: list[int] = []
    writer = AuditLog.open(store_path)
    fill(writer, 3)
    for record in log.follow(after_seq=5, poll_interval=0.01, stop=lambda: len(seen) >= 3):
        seen.append(record.seq)
    assert seen == [6, 7, 8]
    out = io.StringIO()
    assert log.export_jsonl(out) == 8
    prev = GENESIS_HASH
    for line in out.getvalue().splitlines():  # the export can be verified with the key, without the database
        record = json.loads(line)
        claimed = record.pop("hash")
        assert record["prev_hash"] == prev and record_hash(log.key, prev, canonical_json(record)) == claimed
        prev = claimed
    assert prev == log.head()[1]


# -- secrets ------------------------------------------------------------------------------------------------------


SECRETS = {
    "password": "Hunter2-Pa55word!",
    "api_key": "AKIA-TEST-4242-SECRET",
    "PAT_SECRET": "pat-secret-value-77",
    "customer_note": "configured-to-redact-9000",
}
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
BEARER = "bearer-token-abcdef123456"


def test_secrets_never_reach_the_store_file(store_path: Path) -> None:
    log = AuditLog.open(store_path, redact=["customer_note"])
    arguments = {
        **SECRETS,
        "nested": {"token": "nested-token-value-31337", "ok": "visible"},
        "comment": f"see {JWT} and Authorization: Bearer {BEARER}",
        "user": "sam",
    }
    intent = log.record_intent(call_id="c1", principal="alice", tool="x", arguments=arguments)
    log.record_outcome(
        call_id="c1",
        tool="x",
        status="error",
        error=f"sign-in failed with {JWT}",
        summary=f"retried with https://admin:{SECRETS['password']}@tableau.example.com/",
    )
    assert intent.fields["arguments"]["password"] == "[REDACTED]"
    assert intent.fields["arguments"]["nested"] == {"token": "[REDACTED]", "ok": "visible"}
    assert intent.fields["arguments"]["user"] == "sam"
    assert intent.fields["args_digest"] == args_digest(arguments)  # the digest binds the real arguments
    log.close()
    raw = stored_bytes(store_path)
    for secret in [*SECRETS.values(), "nested-token-value-31337", JWT, BEARER]:
        assert secret.encode() not in raw, secret
    assert b"visible" in raw and b"[REDACTED]" in raw
