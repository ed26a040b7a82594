"""The keyed audit chain: what someone with write access to the store but without the signing key can no
longer hide (a rewrite, a forged append, INSERT OR REPLACE, a truncation with the head moved back), the
key's id kept by the store, old unkeyed stores, anchors, and fail-closed writes while a store is in use."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from server.cli import main as cli_main
from server.governance.audit import (
    GENESIS_HASH,
    AuditKeyError,
    AuditLog,
    AuditUnavailable,
    head_seal,
)
from server.governance.canonical import canonical_json, sha256_hex
from server.governance.keys import ENV_KEY, ENV_KEY_FILE, SigningKey
from tests.governance.helpers import attacker_connection, raw_store


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.record_intent(call_id=f"c{i}", principal="alice", tool="list_users", arguments={"i": i})


def attacker(path: Path) -> sqlite3.Connection:
    """Write access to the store, no key: the append-only triggers dropped first."""
    return attacker_connection(path)


def other_key() -> SigningKey:
    return SigningKey(bytes(range(32)), "test")


# -- tampering without the key ------------------------------------------------------------------------------


def test_a_rewrite_with_recomputed_plain_hashes_fails_at_the_first_record(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 5)
    conn = attacker(store_path)
    prev = GENESIS_HASH
    for seq, body in conn.execute("SELECT seq, body FROM audit_log ORDER BY seq").fetchall():
        body = body.replace('"alice"', '"mallory"')
        hash_ = sha256_hex(prev + body)  # what the unkeyed chain accepted
        conn.execute("UPDATE audit_log SET body = ?, hash = ? WHERE seq = ?", (body, hash_, seq))
        prev = hash_
    conn.execute("UPDATE audit_head SET hash = ?", (prev,))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 1 and "keyed hash" in result.reason


def test_a_rewrite_sealed_with_another_key_is_refused_as_the_wrong_key(store_path: Path) -> None:
    fill(AuditLog.open(store_path), 2)
    with pytest.raises(AuditKeyError, match="sealed with signing key .* but this process has key"):
        AuditLog.open(store_path, key=other_key())
    reader = AuditLog.open(store_path, key=other_key(), readonly=True)
    with pytest.raises(AuditKeyError, match="Every server and CLI sharing a store needs the same key"):
        reader.verify()


def test_a_forged_append_that_moves_the_head_fails(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 3)
    conn = attacker(store_path)
    prev = conn.execute("SELECT hash FROM audit_log WHERE seq = 3").fetchone()[0]
    body = canonical_json(
        {"seq": 4, "ts": "2030-01-01T00:00:00.000000Z", "kind": "approval.approved", "prev_hash": prev,
         "approval_id": "apr_x", "approver": "site-admin"}
    )
    forged = sha256_hex(prev + body)
    conn.execute("INSERT INTO audit_log VALUES (4, ?, ?)", (body, forged))
    conn.execute("UPDATE audit_head SET seq = 4, hash = ?, seal = ?", (forged, "0" * 64))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 4 and "keyed hash" in result.reason


@pytest.mark.sqlite_only  # PostgreSQL has no INSERT OR REPLACE; its UPDATE trigger is tested above
def test_insert_or_replace_is_refused_and_caught_when_the_trigger_is_gone(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 3)
    plain = sqlite3.connect(store_path, isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        plain.execute("INSERT OR REPLACE INTO audit_log VALUES (2, '{}', 'x')")
    body, hash_ = plain.execute("SELECT body, hash FROM audit_log WHERE seq = 2").fetchone()
    conn = attacker(store_path)
    conn.execute("INSERT OR REPLACE INTO audit_log VALUES (2, ?, ?)", (body.replace("alice", "mallory"), hash_))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 2


def test_truncation_with_the_head_edited_fails_and_a_replayed_head_needs_the_anchor(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 3)
    old_head = log.conn.execute("SELECT seq, hash, seal FROM audit_head").fetchone()  # a reader saw this once
    anchor = None
    fill(log, 3)
    anchor = log.anchor()
    assert anchor.seq == 6 and log.verify(expect_head=str(anchor)).ok
    conn = attacker(store_path)
    conn.execute("DELETE FROM audit_log WHERE seq > 3")
    seq3_hash = conn.execute("SELECT hash FROM audit_log WHERE seq = 3").fetchone()[0]
    conn.execute("UPDATE audit_head SET seq = 3, hash = ?, seal = ?", (seq3_hash, "f" * 64))
    result = log.verify()
    assert not result.ok and "not sealed by this key" in result.reason
    # A head seal copied from when the log really ended at 3: consistent in itself, so only the anchor kept
    # outside the store shows that records 4..6 existed.
    conn.execute("UPDATE audit_head SET seq = ?, hash = ?, seal = ?", old_head)
    assert log.verify().ok
    rolled_back = log.verify(expect_head=str(anchor))
    assert not rolled_back.ok and "anchored record 6 is not in the log" in rolled_back.reason


def test_the_head_seal_binds_seq_and_hash(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 2)
    seq, hash_, tag = log.conn.execute("SELECT seq, hash, seal FROM audit_head").fetchone()
    assert tag == head_seal(log.key, seq, hash_) and tag != head_seal(log.key, seq - 1, hash_)


def test_anchors_are_checked_for_their_seal_and_shape(store_path: Path, tmp_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 2)
    anchor = str(log.anchor())
    forged = anchor.rsplit(":", 1)[0] + ":" + "0" * 64
    with pytest.raises(ValueError, match="not an anchor sealed by this store's key"):
        log.verify(expect_head=forged)
    with pytest.raises(ValueError, match="not an audit anchor"):
        log.verify(expect_head="2:abc")
    other = AuditLog.open(tmp_path / "other" / "other.sqlite", key=other_key())
    fill(other, 2)
    with pytest.raises(ValueError, match="not an anchor sealed"):
        log.verify(expect_head=str(other.anchor()))


# -- the key ---------------------------------------------------------------------------------------------------


def test_verify_without_the_key_is_refused(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(AuditLog.open(store_path), 2)
    monkeypatch.setenv(ENV_KEY_FILE, str(tmp_path / "elsewhere" / "missing.key"))
    reader = AuditLog.open(store_path, readonly=True)  # reading the records needs no key ...
    assert len(reader.tail(5)) == 2
    with pytest.raises(AuditKeyError, match="no signing key"):  # ... proving them does
        reader.verify()


def test_the_environment_key_is_used_and_remembered(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_KEY, "ab" * 32)
    log = AuditLog.open(store_path)
    fill(log, 1)
    assert log.stored_key_id() == log.key.key_id and log.key.source == "env"
    monkeypatch.setenv(ENV_KEY, "cd" * 32)
    with pytest.raises(AuditKeyError, match="same key"):
        AuditLog.open(store_path)


def test_a_store_whose_key_id_was_removed_is_refused(store_path: Path) -> None:
    fill(AuditLog.open(store_path), 1)
    raw_store(store_path).execute("DELETE FROM steward_meta WHERE key = 'audit_key_id'")
    with pytest.raises(AuditKeyError, match="no key id"):
        AuditLog.open(store_path)


@pytest.mark.sqlite_only  # handles the SQLite file itself
def test_an_old_unkeyed_store_is_refused_for_writing_and_still_exports(store_path: Path) -> None:
    store_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(store_path, isolation_level=None)
    conn.executescript(
        "CREATE TABLE audit_log (seq INTEGER PRIMARY KEY, body TEXT NOT NULL, hash TEXT NOT NULL);"
        "CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);"
        "CREATE TABLE steward_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO steward_meta VALUES ('audit_schema', '1');"
    )
    body = canonical_json({"seq": 1, "ts": "2026-01-01T00:00:00.000000Z", "kind": "policy.loaded",
                           "prev_hash": GENESIS_HASH, "policy_hash": "p"})
    conn.execute("INSERT INTO audit_log VALUES (1, ?, ?)", (body, sha256_hex(GENESIS_HASH + body)))
    conn.execute("INSERT INTO audit_head VALUES (1, 1, ?)", (sha256_hex(GENESIS_HASH + body),))
    conn.close()
    with pytest.raises(AuditUnavailable, match="old unkeyed format .* audit export"):
        AuditLog.open(store_path)
    reader = AuditLog.open(store_path, readonly=True)
    assert [r.kind for r in reader.records()] == ["policy.loaded"]
    with pytest.raises(AuditUnavailable, match="old unkeyed format"):
        reader.verify()


# -- the file ----------------------------------------------------------------------------------------------------


def test_the_store_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "audit.sqlite"
    fill(AuditLog.open(path), 1)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for name in ("audit.sqlite", "audit.sqlite-wal", "audit.sqlite-shm"):
        assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name


@pytest.mark.sqlite_only  # handles the SQLite file itself
def test_writes_stop_while_the_store_is_deleted_and_resume_when_it_is_back(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 2)
    aside = store_path.with_name("aside.sqlite")
    os.rename(store_path, aside)
    with pytest.raises(AuditUnavailable, match="was deleted") as refused:
        fill(log, 1)
    assert refused.value.public_reason == "the audit store file was deleted"
    os.rename(aside, store_path)  # the same file back
    fill(log, 1)
    assert log.verify().ok and log.head()[0] == 3


@pytest.mark.sqlite_only  # handles the SQLite file itself
def test_a_replaced_store_is_refused_unless_it_holds_our_last_record(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 2)
    log.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = store_path.with_name("copy.sqlite")
    shutil.copyfile(store_path, copy)  # a copy taken now holds record 2, our last
    fill(log, 1)
    os.replace(copy, store_path)  # an older copy: record 3 is not in it
    for leftover in ("-wal", "-shm"):
        Path(f"{store_path}{leftover}").unlink(missing_ok=True)
    with pytest.raises(AuditUnavailable, match="replaced by another file"):
        fill(log, 1)
    assert AuditLog.open(store_path).head()[0] == 2  # nothing was written to the stranger


@pytest.mark.sqlite_only  # handles the SQLite file itself
def test_a_store_made_read_only_refuses_writes(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 1)
    os.chmod(store_path, 0o400)
    try:
        with pytest.raises(AuditUnavailable, match="not writable"):
            fill(log, 1)
    finally:
        os.chmod(store_path, 0o600)
    fill(log, 1)
    assert log.head()[0] == 2


# -- the CLI -----------------------------------------------------------------------------------------------------


def test_cli_anchor_and_verify_expect_head(store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = AuditLog.open(store_path)
    fill(log, 3)
    assert cli_main(["audit", "anchor", "--store", str(store_path)]) == 0
    anchor = capsys.readouterr().out.strip()
    saved = tmp_path / "anchor.txt"
    saved.write_text(anchor + "\n")
    fill(log, 2)
    assert cli_main(["audit", "verify", "--store", str(store_path), "--expect-head", anchor]) == 0
    assert cli_main(["audit", "verify", "--store", str(store_path), "--expect-head", str(saved)]) == 0
    assert "OK: 5 records" in capsys.readouterr().out
    attacker(store_path).execute("UPDATE audit_log SET body = replace(body, 'alice', 'eve') WHERE seq = 2")
    assert cli_main(["audit", "verify", "--store", str(store_path), "--expect-head", anchor]) == 1
    assert "BROKEN at record 2" in capsys.readouterr().out
    assert cli_main(["audit", "anchor", "--store", str(store_path)]) == 1
    assert "refusing to anchor a broken chain" in capsys.readouterr().err


def test_cli_verify_with_no_key_or_the_wrong_key_says_so(
    store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(AuditLog.open(store_path), 2)
    monkeypatch.setenv(ENV_KEY_FILE, str(tmp_path / "nowhere" / "signing.key"))
    assert cli_main(["audit", "verify", "--store", str(store_path)]) == 1
    assert "no signing key" in capsys.readouterr().err
    monkeypatch.setenv(ENV_KEY, "99" * 32)
    assert cli_main(["audit", "verify", "--store", str(store_path)]) == 1
    assert "same key" in capsys.readouterr().err


def test_audit_tail_escapes_control_characters(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = AuditLog.open(store_path)
    log.record_intent(
        call_id="c1", principal="eve\n     2 2030-01-01 tool_call.intent principal=site-admin\x1b[2K\u202e",
        tool="list_users", arguments={},
    )
    assert cli_main(["audit", "tail", "--store", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out and "\u202e" not in out
    assert "eve\\n" in out and "\\x1b[2K\\u202e" in out


def test_verify_with_a_badly_protected_key_file_says_why(store_path: Path, signing_key_file: Path) -> None:
    fill(AuditLog.open(store_path), 1)
    os.chmod(signing_key_file, 0o644)
    try:
        with pytest.raises(AuditKeyError, match="readable by others .* chmod 600"):
            AuditLog.open(store_path, readonly=True).verify()
        with pytest.raises(AuditKeyError, match="chmod 600"):
            AuditLog.open(store_path)  # a writer does not start at all
    finally:
        os.chmod(signing_key_file, 0o600)


def test_a_head_moved_back_under_a_writer_refuses_its_next_append(store_path: Path) -> None:
    log = AuditLog.open(store_path)
    fill(log, 3)
    conn = attacker(store_path)
    conn.execute("DELETE FROM audit_log WHERE seq = 3")
    conn.execute("UPDATE audit_head SET seq = 2, hash = (SELECT hash FROM audit_log WHERE seq = 2)")
    with pytest.raises(AuditUnavailable, match="moved back from 3 to 2") as refused:
        fill(log, 1)
    assert refused.value.public_reason == "the audit store was tampered with"
    assert log.head()[0] == 2  # nothing was appended over the gap
