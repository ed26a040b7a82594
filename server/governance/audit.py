"""The audit log: append-only, hash-chained records in SQLite, safe for several writing processes.

Every record is a JSON object ``{"seq", "ts", "kind", "prev_hash", ...fields}``; its hash is

    hash = sha256_hex(prev_hash + canonical_json(record_without_hash))

with ``prev_hash`` of record 1 = 64 zeros. The store (one SQLite file, WAL mode) has:

- ``audit_log(seq INTEGER PRIMARY KEY, body TEXT, hash TEXT)``: ``body`` is the canonical JSON that was hashed;
- ``audit_head(id=1, seq, hash)``: the chain's head, updated in the same transaction as each append, so
  removing the last records (truncation) is detected too;
- triggers refusing UPDATE and DELETE on ``audit_log`` (defence in depth: verify() catches what gets past).

Appends run in ``BEGIN IMMEDIATE`` transactions (the write lock is taken before the head is read), so the
server and CLI processes can append concurrently without forking the chain. Durability is
``synchronous=FULL`` by default (every commit fsyncs the WAL); ``normal`` trades the last commits on
power loss for speed (see BENCHMARKS.md).

FAIL CLOSED: ``append`` raises `AuditUnavailable` when the record cannot be written; callers refuse the call.

A plain hash chain can be recomputed by someone who can write the file; ``audit verify`` prints the head
hash so it can be anchored elsewhere (a ticket, a WORM bucket) and compared later.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Self

from server.governance.canonical import Redactor, args_digest, canonical_json, scrub_text, sha256_hex

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
SCHEMA_VERSION = 1
RESERVED_FIELDS = frozenset({"seq", "ts", "kind", "prev_hash", "hash"})

# Record kinds and the fields each must carry (more fields are allowed).
RECORD_KINDS: Mapping[str, frozenset[str]] = {
    "tool_call.intent": frozenset({"call_id", "principal", "tool", "arguments", "args_digest"}),
    "tool_call.decision": frozenset({"call_id", "principal", "tool", "effect"}),
    "tool_call.outcome": frozenset({"call_id", "tool", "status"}),
    "tableau_request": frozenset({"method", "path", "status", "duration_ms", "attempt"}),
    "approval.created": frozenset({"approval_id", "tool", "args_digest", "requester"}),
    "approval.approved": frozenset({"approval_id", "approver"}),
    "approval.denied": frozenset({"approval_id", "approver"}),
    "approval.refused": frozenset({"approval_id", "actor", "action", "reason"}),
    "approval.expired": frozenset({"approval_id"}),
    "approval.executing": frozenset({"approval_id", "tool", "args_digest"}),
    "approval.executed": frozenset({"approval_id"}),
    "approval.failed": frozenset({"approval_id"}),
    "policy.loaded": frozenset({"policy_hash"}),
}
OUTCOME_STATUSES = frozenset({"ok", "error", "denied", "pending_approval", "cancelled"})
MAX_TEXT = 2000  # result summaries and error messages are cut to this many characters

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq  INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS steward_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class AuditUnavailable(RuntimeError):
    """The audit store cannot be opened or written. Callers must refuse the call (fail closed)."""


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    ts: str
    kind: str
    prev_hash: str
    hash: str
    fields: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The full record, as exported: every field plus seq, ts, kind, prev_hash and hash."""
        return {
            **self.fields,
            "seq": self.seq,
            "ts": self.ts,
            "kind": self.kind,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_row(cls, body: str, hash_: str) -> AuditRecord:
        data = json.loads(body)
        fields = {k: v for k, v in data.items() if k not in RESERVED_FIELDS}
        return cls(data["seq"], data["ts"], data["kind"], data["prev_hash"], hash_, fields)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int  # records whose links were verified before the first problem
    first_bad_seq: int | None
    reason: str
    head_seq: int = 0
    head_hash: str = GENESIS_HASH


def record_hash(prev_hash: str, body: str) -> str:
    return sha256_hex(prev_hash + body)


def utc_now_iso(clock: Callable[[], float] = time.time) -> str:
    return datetime.fromtimestamp(clock(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def verify_chain(rows: Iterable[tuple[int, str, str]], head: tuple[int, str] | None) -> VerifyResult:
    """Walk ``(seq, body, hash)`` rows in seq order and compare the end with the head anchor.

    Reports the FIRST broken link: a missing seq (deletion), a body whose seq is not its row's
    (reordering), a prev_hash that is not the previous hash, a hash that does not match the body
    (edit), or a head that points past the last record (truncation).
    """
    expected, prev, checked = 1, GENESIS_HASH, 0

    def bad(seq: int | None, reason: str) -> VerifyResult:
        return VerifyResult(
            False, checked, seq, reason, head[0] if head else 0, head[1] if head else GENESIS_HASH
        )

    for seq, body, hash_ in rows:
        if seq != expected:
            if seq < expected:
                return bad(seq, f"record {seq} appears twice or out of order")
            missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
            return bad(expected, f"record {missing} is missing (deleted); the next stored record is {seq}")
        try:
            data = json.loads(body)
        except ValueError:
            return bad(seq, f"record {seq} is not valid JSON (edited)")
        if not isinstance(data, dict) or not isinstance(data.get("seq"), int):
            return bad(seq, f"record {seq} is not a well-formed audit record (edited or forged)")
        if data["seq"] != seq:
            return bad(
                seq, f"record {seq} holds the content of record {data['seq']} (records reordered or edited)"
            )
        if data.get("prev_hash") != prev:
            return bad(seq, f"record {seq} does not link to record {seq - 1} (prev_hash mismatch)")
        if record_hash(prev, body) != hash_:
            return bad(seq, f"record {seq} does not match its hash (edited)")
        prev, expected, checked = hash_, expected + 1, checked + 1
    last = expected - 1
    if head is None:
        if last:
            return bad(last, "the head anchor is missing (the audit_head table was emptied)")
        return VerifyResult(True, 0, None, "empty log", 0, GENESIS_HASH)
    head_seq, head_hash = head
    if head_seq > last:
        span = f"{last + 1}" if head_seq == last + 1 else f"{last + 1}..{head_seq}"
        return bad(
            last + 1, f"record {span} is missing: the log was truncated (head anchor is at {head_seq})"
        )
    if head_seq < last:
        return bad(
            head_seq + 1,
            f"record {head_seq + 1} was not appended through the log (head anchor is at {head_seq})",
        )
    if head_hash != prev:
        return bad(last, f"record {last} does not match the head anchor (edited)")
    return VerifyResult(True, checked, None, f"{checked} records, chain intact", head_seq, head_hash)


class AuditLog:
    """The append-only, hash-chained audit log. One instance (one connection) per process; thread-safe.

    `open(path)` creates the store (and its directory) when missing. `readonly=True` opens with
    ``mode=ro`` (CLI verify/tail/export): appends then raise AuditUnavailable.
    """

    def __init__(
        self,
        path: Path,
        *,
        readonly: bool = False,
        synchronous: str = "full",
        redact: Iterable[str] = (),
        busy_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError("synchronous must be 'full' or 'normal'")
        self.path = Path(path)
        self.readonly = readonly
        self.synchronous = synchronous
        self.redactor = Redactor(redact)
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._stale: list[
            sqlite3.Connection
        ] = []  # connections inherited through fork: never used, never closed
        self._connect()

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        readonly: bool = False,
        synchronous: str = "full",
        redact: Iterable[str] = (),
        busy_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> AuditLog:
        """Open (or create) the store at `path`. Raises AuditUnavailable when that is impossible."""
        return cls(
            Path(path),
            readonly=readonly,
            synchronous=synchronous,
            redact=redact,
            busy_timeout=busy_timeout,
            clock=clock,
        )

    # -- connection -----------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.readonly:
                if not self.path.exists():
                    raise AuditUnavailable(f"no audit store at {self.path}")
                conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    str(self.path), timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
                )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if not self.readonly:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("audit store %s is not in WAL mode (%s)", self.path, mode)
                conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
                try:
                    conn.executescript(
                        "BEGIN IMMEDIATE;\n"
                        + _SCHEMA
                        + f"INSERT OR IGNORE INTO steward_meta (key, value) VALUES ('audit_schema', '{SCHEMA_VERSION}');\n"
                        + "COMMIT;"
                    )
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except AuditUnavailable:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise AuditUnavailable(f"cannot open the audit store {self.path}: {exc}") from None
        self._conn, self._pid = conn, os.getpid()
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This process's connection (re-opened after a fork). Hold `self._lock` while using it."""
        if self._conn is None or self._pid != os.getpid():
            if self._conn is not None:
                self._stale.append(self._conn)
            return self._connect()
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        """A write transaction (BEGIN IMMEDIATE) on this store; `tx.append(...)` adds records to it.

        Other tables in the same file (approvals) are changed in the same transaction, so a state change
        and its audit record commit together or not at all. Raises AuditUnavailable if it cannot commit.
        """
        with (
            self._lock
        ):  # a read-only store is refused by SQLite itself ("attempt to write a readonly database")
            try:
                conn = self.conn
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise AuditUnavailable(f"cannot write the audit store {self.path}: {exc}") from None
            tx = _Tx(self, conn)
            try:
                yield tx
                conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise AuditUnavailable(f"cannot write the audit store {self.path}: {exc}") from None
                raise

    def append(self, kind: str, **fields: Any) -> AuditRecord:
        """Append one record (its own transaction). Raises AuditUnavailable when it cannot be written."""
        with self.transaction() as tx:
            return tx.append(kind, **fields)

    def _prepare(self, kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        required = RECORD_KINDS.get(kind)
        if required is None:
            raise ValueError(f"unknown audit record kind {kind!r}; known: {sorted(RECORD_KINDS)}")
        missing = required - fields.keys()
        if missing:
            raise ValueError(f"audit record {kind} lacks {sorted(missing)}")
        clash = RESERVED_FIELDS & fields.keys()
        if clash:
            raise ValueError(f"audit fields {sorted(clash)} are reserved")
        return self.redactor.redact(dict(fields))

    # -- typed helpers for the call path ------------------------------------------------------------------

    def record_intent(
        self,
        *,
        call_id: str,
        principal: str,
        tool: str,
        arguments: Mapping[str, Any],
        decision: str | None = None,
        rule: str | None = None,
        policy_hash: str | None = None,
        approval_id: str | None = None,
        **extra: Any,
    ) -> AuditRecord:
        """`tool_call.intent`: written BEFORE anything runs; arguments are redacted, their digest is not."""
        return self.append(
            "tool_call.intent",
            call_id=call_id,
            principal=principal,
            tool=tool,
            arguments=dict(arguments),
            args_digest=args_digest(arguments),
            decision=decision,
            rule=rule,
            policy_hash=policy_hash,
            approval_id=approval_id,
            **extra,
        )

    def record_outcome(
        self,
        *,
        call_id: str,
        tool: str,
        status: str,
        duration_ms: float | None = None,
        summary: str | None = None,
        error: str | None = None,
        approval_id: str | None = None,
        **extra: Any,
    ) -> AuditRecord:
        """`tool_call.outcome`: status is ok, error, denied, pending_approval or cancelled."""
        if status not in OUTCOME_STATUSES:
            raise ValueError(f"unknown outcome status {status!r}; known: {sorted(OUTCOME_STATUSES)}")
        return self.append(
            "tool_call.outcome",
            call_id=call_id,
            tool=tool,
            status=status,
            duration_ms=None if duration_ms is None else round(float(duration_ms), 3),
            summary=_cut(summary),
            error=_cut(error),
            approval_id=approval_id,
            **extra,
        )

    def record_tableau_request(self, event: Any) -> AuditRecord:
        """`tableau_request` from a server.tableau RequestEvent (method, path, query, status, duration_ms,
        attempt, operation_id, error); `operation_id` is the call id of the enclosing tool call."""
        return self.append(
            "tableau_request",
            method=event.method,
            path=event.path,
            query=getattr(event, "query", "") or "",
            status=event.status,
            duration_ms=round(float(event.duration_ms), 3),
            attempt=event.attempt,
            call_id=getattr(event, "operation_id", None),
            error=getattr(event, "error", None),
        )

    # -- reading ---------------------------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record, (0, GENESIS_HASH) when empty."""
        with self._lock:
            row = self._read("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise AuditUnavailable(f"cannot read the audit store {self.path}: {exc}") from None

    def verify(self) -> VerifyResult:
        """Walk the whole chain; report the first broken link (edit, deletion, reordering, truncation)."""
        with self._lock:
            conn = self.conn
            try:
                conn.execute("BEGIN")  # one consistent snapshot for rows and head
                head_row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
                rows = conn.execute("SELECT seq, body, hash FROM audit_log ORDER BY seq")
                return verify_chain(rows, (head_row[0], head_row[1]) if head_row else None)
            except sqlite3.Error as exc:
                raise AuditUnavailable(f"cannot read the audit store {self.path}: {exc}") from None
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def records(self, after_seq: int = 0, limit: int | None = None) -> list[AuditRecord]:
        sql = "SELECT body, hash FROM audit_log WHERE seq > ? ORDER BY seq"
        params: tuple[Any, ...] = (after_seq,)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        with self._lock:
            return [AuditRecord.from_row(b, h) for b, h in self._read(sql, params).fetchall()]

    def tail(self, n: int = 20) -> list[AuditRecord]:
        """The last `n` records, oldest first."""
        with self._lock:
            rows = self._read("SELECT body, hash FROM audit_log ORDER BY seq DESC LIMIT ?", (n,)).fetchall()
        return [AuditRecord.from_row(b, h) for b, h in reversed(rows)]

    def follow(
        self,
        after_seq: int | None = None,
        *,
        poll_interval: float = 0.5,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[AuditRecord]:
        """Yield records appended after `after_seq` (default: the current head) as they arrive, by polling.
        Ends when `stop()` returns True (checked between polls); otherwise runs until the caller stops iterating."""
        last = self.head()[0] if after_seq is None else after_seq
        while True:
            batch = self.records(after_seq=last, limit=1000)
            for record in batch:
                last = record.seq
                yield record
            if stop is not None and stop():
                return
            if not batch:
                time.sleep(poll_interval)

    def export_jsonl(self, fp: IO[str], after_seq: int = 0) -> int:
        """Write every record (with hash and prev_hash) as one JSON line; returns the number written."""
        count = 0
        while True:
            batch = self.records(after_seq=after_seq, limit=5000)
            if not batch:
                return count
            for record in batch:
                fp.write(canonical_json(record.to_dict()) + "\n")
            count += len(batch)
            after_seq = batch[-1].seq


class _Tx:
    """An open write transaction on the audit store (see AuditLog.transaction)."""

    def __init__(self, log_: AuditLog, conn: sqlite3.Connection) -> None:
        self.log, self.conn = log_, conn

    def append(self, kind: str, **fields: Any) -> AuditRecord:
        clean = self.log._prepare(kind, fields)
        row = self.conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        prev_seq, prev_hash = (row[0], row[1]) if row else (0, GENESIS_HASH)
        seq = prev_seq + 1
        ts = utc_now_iso(self.log.clock)
        body = canonical_json({**clean, "seq": seq, "ts": ts, "kind": kind, "prev_hash": prev_hash})
        hash_ = record_hash(prev_hash, body)
        self.conn.execute("INSERT INTO audit_log (seq, body, hash) VALUES (?, ?, ?)", (seq, body, hash_))
        self.conn.execute(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, "
            "hash = excluded.hash",
            (seq, hash_),
        )
        return AuditRecord(seq, ts, kind, prev_hash, hash_, clean)


def _cut(text: str | None) -> str | None:
    if text is None:
        return None
    text = scrub_text(str(text))
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."
