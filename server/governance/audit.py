"""The audit log: append-only, keyed hash-chained records in SQLite, safe for several writing processes.

Every record is a JSON object ``{"seq", "ts", "kind", "prev_hash", ...fields}``; its hash is a MAC made with
the server's signing key (server/governance/keys.py), which never lives in the store:

    hash = HMAC-SHA256(key, "audit.record" NUL prev_hash + canonical_json(record_without_hash))

with ``prev_hash`` of record 1 = 64 zeros. The store (one SQLite file, WAL mode, 0600 in a 0700 directory) has:

- ``audit_log(seq INTEGER PRIMARY KEY, body TEXT, hash TEXT)``: ``body`` is the canonical JSON that was MACed;
- ``audit_head(id=1, seq, hash, seal)``: the chain's head, updated in the same transaction as each append and
  sealed (``HMAC(key, "audit.head" NUL "seq:hash")``), so removing the last records and moving the head back
  needs the key too;
- ``steward_meta``: the schema version and the id of the key the store is sealed with (a replica started with
  another key is refused);
- triggers refusing UPDATE, DELETE and INSERT OR REPLACE on ``audit_log`` (defence in depth: verify() catches
  what gets past them).

Whoever can write the file but lacks the key can neither edit, rewrite (recomputed plain hashes do not
verify), append, nor truncate the chain without `verify` naming the first bad record. What the store alone
cannot show is a roll-back to an earlier complete copy of itself: `anchor()` prints a sealed head to keep
elsewhere (a ticket, a WORM bucket), and `verify(expect_head=...)` proves the chain still contains it.

Appends run in ``BEGIN IMMEDIATE`` transactions (the write lock is taken before the head is read), so the
server and CLI processes can append concurrently without forking the chain. Durability is
``synchronous=FULL`` by default (every commit fsyncs the WAL); ``normal`` trades the last commits on
power loss for speed (see BENCHMARKS.md).

FAIL CLOSED: every write first checks that the file at the store's path is still the one this process
opened, and writable; a deleted, replaced or read-only store raises `AuditUnavailable` (callers refuse the
call) until the file is back. A store in the old unkeyed format (schema 1) with records is refused for
writing with a message saying how to archive it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Self

from server.governance.canonical import Redactor, args_digest, canonical_json, scrub_text
from server.governance.keys import SigningKey, SigningKeyError, check_seal, load_signing_key, seal

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
SCHEMA_VERSION = 2  # 1: plain sha256 chain, unsealed head; 2: keyed chain, sealed head, key id in steward_meta
RECORD_PURPOSE, HEAD_PURPOSE, ANCHOR_PURPOSE = "audit.record", "audit.head", "audit.anchor"
ANCHOR_PREFIX = "steward-anchor-v1"
RESERVED_FIELDS = frozenset({"seq", "ts", "kind", "prev_hash", "hash"})

# Record kinds and the fields each must carry (more fields are allowed).
RECORD_KINDS: Mapping[str, frozenset[str]] = {
    "tool_call.intent": frozenset({"call_id", "principal", "tool", "arguments", "args_digest"}),
    "tool_call.decision": frozenset({"call_id", "principal", "tool", "effect"}),
    "tool_call.outcome": frozenset({"call_id", "tool", "status"}),
    "tool_call.refused": frozenset({"principal", "tool", "reason"}),  # answered before the call path
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
    # The web console (server/console): sign-ins that succeed or fail (never with the token), sign-outs.
    "console.sign_in": frozenset({"outcome"}),
    "console.sign_out": frozenset({"principal"}),
    # One delivery attempt of a notification (server/notify): the endpoint redacted, never the secret.
    "notification.attempt": frozenset({"target", "event", "request_id", "delivery_id", "attempt", "outcome"}),
    # A request to /integrations/slack/interactions that decided nothing (bad signature, unknown user...).
    "slack.refused": frozenset({"reason"}),
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
    hash TEXT NOT NULL,
    seal TEXT
);
CREATE TABLE IF NOT EXISTS steward_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_replace BEFORE INSERT ON audit_log
WHEN EXISTS (SELECT 1 FROM audit_log WHERE seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class AuditUnavailable(RuntimeError):
    """The audit store cannot be opened or written. Callers must refuse the call (fail closed).

    `public_reason` is a short reason without paths or library text, fit for a tool result.
    """

    def __init__(self, message: str, public_reason: str = "the audit store cannot be written") -> None:
        super().__init__(message)
        self.public_reason = public_reason


class AuditKeyError(AuditUnavailable):
    """The signing key is missing, or is not the key the store is sealed with."""


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


def record_hash(key: SigningKey, prev_hash: str, body: str) -> str:
    """The keyed link of a record: a MAC over the previous record's hash and this record's body."""
    return seal(key, RECORD_PURPOSE, prev_hash + body)


def head_seal(key: SigningKey, seq: int, hash_: str) -> str:
    return seal(key, HEAD_PURPOSE, f"{seq}:{hash_}")


@dataclass(frozen=True)
class Anchor:
    """A sealed (seq, hash) of the chain, printed by `audit anchor` to be kept outside the store."""

    seq: int
    hash: str
    tag: str

    def __str__(self) -> str:
        return f"{ANCHOR_PREFIX}:{self.seq}:{self.hash}:{self.tag}"

    @classmethod
    def make(cls, key: SigningKey, seq: int, hash_: str) -> Anchor:
        return cls(seq, hash_, seal(key, ANCHOR_PURPOSE, f"{key.key_id}:{seq}:{hash_}"))

    @classmethod
    def parse(cls, text: str) -> Anchor:
        parts = text.strip().split(":")
        if len(parts) != 4 or parts[0] != ANCHOR_PREFIX or not parts[1].isdigit():
            raise ValueError(
                f"not an audit anchor (expected '{ANCHOR_PREFIX}:SEQ:HASH:SEAL' as printed by `audit anchor`)"
            )
        return cls(int(parts[1]), parts[2], parts[3])

    def sealed_by(self, key: SigningKey) -> bool:
        return check_seal(key, ANCHOR_PURPOSE, f"{key.key_id}:{self.seq}:{self.hash}", self.tag)


def utc_now_iso(clock: Callable[[], float] = time.time) -> str:
    return datetime.fromtimestamp(clock(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def verify_chain(
    rows: Iterable[tuple[int, str, str]],
    head: tuple[int, str, str | None] | None,
    key: SigningKey,
    expect: Anchor | None = None,
) -> VerifyResult:
    """Walk ``(seq, body, hash)`` rows in seq order and compare the end with the sealed head.

    Reports the FIRST broken link: a missing seq (deletion), a body whose seq is not its row's
    (reordering), a prev_hash that is not the previous hash, a hash that is not the key's MAC of the body
    (edit, rewrite, forged append), a head that points past the last record (truncation), a head whose
    seal is not the key's; and, with `expect`, an anchored record that is gone or differs (roll-back).
    """
    expected, prev, checked = 1, GENESIS_HASH, 0
    anchored: str | None = None

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
        if not check_seal(key, RECORD_PURPOSE, prev + body, hash_):
            return bad(seq, f"record {seq} does not match its keyed hash (edited, rewritten or forged)")
        if expect is not None and seq == expect.seq:
            anchored = hash_
        prev, expected, checked = hash_, expected + 1, checked + 1
    last = expected - 1
    if expect is not None:
        if anchored is None:
            return bad(
                last + 1,
                f"the anchored record {expect.seq} is not in the log (it ends at {last}): records were "
                "removed or the store was rolled back",
            )
        if anchored != expect.hash:
            return bad(expect.seq, f"record {expect.seq} differs from the anchored one (the chain was rewritten)")
    if head is None:
        if last:
            return bad(last, "the head anchor is missing (the audit_head table was emptied)")
        return VerifyResult(True, 0, None, "empty log", 0, GENESIS_HASH)
    head_seq, head_hash, head_tag = head
    if not check_seal(key, HEAD_PURPOSE, f"{head_seq}:{head_hash}", head_tag):
        return bad(head_seq or None, "the head anchor is not sealed by this key (edited)")
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
    """The append-only, keyed hash-chained audit log. One instance (one connection) per process; thread-safe.

    This class holds the chain logic and the SQLite backend; `server.governance.audit_pg.PostgresAuditLog`
    overrides only the connection, locking and schema hooks (`_connect`, `_begin_write`, `_begin_snapshot`,
    `check_present`, `has_table`, `notify_approved`) for PostgreSQL. `AuditLog.open` picks the backend
    from the target: a ``postgresql://`` URL or a file path.

    `open(path)` creates the store (0600, and its directory 0700) when missing. `key` is the signing key;
    without one it is loaded as the server loads it (`load_signing_key`: $STEWARD_SIGNING_KEY or the key
    file, created on first start). `readonly=True` opens with ``mode=ro`` (CLI verify/tail/export): appends
    then raise AuditUnavailable, and a missing key only matters to `verify` and `anchor`.
    """

    db_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)  # what the backend's driver raises
    backend = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        key: SigningKey | None = None,
        readonly: bool = False,
        synchronous: str = "full",
        redact: Iterable[str] = (),
        busy_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError("synchronous must be 'full' or 'normal'")
        self.path: Any = self._store_label(path)
        self.readonly = readonly
        self.synchronous = synchronous
        self.redactor = Redactor(redact)
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._key_problem = ""  # why a reader has no key (shown by `key` when verifying needs one)
        if key is None:
            try:
                key = load_signing_key(self._store_file(), create=not readonly)
            except SigningKeyError as exc:
                if not readonly:
                    raise AuditKeyError(str(exc), "the signing key is missing or unusable") from None
                self._key_problem = str(exc)  # readers may go without one (tail, export)
        self._key = key
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file this process opened
        self._last_written: tuple[int, str] | None = None  # (seq, hash) of this process's last append
        self.commit_observer: Callable[[float], None] | None = None  # told each write's seconds (metrics)
        self.schema_version = SCHEMA_VERSION
        self._stale: list[
            sqlite3.Connection
        ] = []  # connections inherited through fork: never used, never closed
        self._connect()

    def _store_label(self, target: Any) -> Any:
        """How messages name the store (a file path here; a URL without its password for PostgreSQL)."""
        return Path(target)

    def _store_file(self) -> Path | None:
        """The store's file, next to which the signing key must not live (None for a database)."""
        return self.path

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        key: SigningKey | None = None,
        readonly: bool = False,
        synchronous: str = "full",
        redact: Iterable[str] = (),
        busy_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> AuditLog:
        """Open (or create) the store at `path` (a file, or a ``postgresql://`` URL). Raises AuditUnavailable
        when that is impossible."""
        if cls is AuditLog and is_database_url(path):
            from server.governance.audit_pg import PostgresAuditLog

            return PostgresAuditLog(
                str(path), key=key, readonly=readonly, synchronous=synchronous, redact=redact,
                busy_timeout=busy_timeout, clock=clock,
            )
        return cls(
            Path(path),
            key=key,
            readonly=readonly,
            synchronous=synchronous,
            redact=redact,
            busy_timeout=busy_timeout,
            clock=clock,
        )

    @property
    def key(self) -> SigningKey:
        """The signing key this store is sealed with (approval records are sealed with it too)."""
        if self._key is None:
            raise AuditKeyError(
                f"cannot check {self.path} without the server's signing key ({self._key_problem}); set "
                "STEWARD_SIGNING_KEY or STEWARD_SIGNING_KEY_FILE to the key the server uses",
                "the signing key is missing",
            )
        return self._key

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
                _create_private(self.path)
                conn = sqlite3.connect(
                    str(self.path), timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
                )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if self.readonly:
                self.schema_version = _schema_version(conn)
            else:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("audit store %s is not in WAL mode (%s)", self.path, mode)
                conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._prepare_store(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    conn.close()
                    raise
            identity = _file_identity(self.path)
        except AuditUnavailable:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise AuditUnavailable(f"cannot open the audit store {self.path}: {exc}") from None
        self._conn, self._pid, self._identity = conn, os.getpid(), identity
        return conn

    def _prepare_store(self, conn: sqlite3.Connection) -> None:
        """Create the schema, or check an existing store is keyed with this key (inside BEGIN IMMEDIATE)."""
        has_log = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_log'").fetchone() is not None
        records = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] if has_log else 0
        version = _schema_version(conn) if has_log else SCHEMA_VERSION
        if version < SCHEMA_VERSION and records:
            raise AuditUnavailable(
                f"the audit store {self.path} holds {records} records in the old unkeyed format (schema {version}), "
                "which this version neither extends nor verifies. Archive it (`tableau-steward audit export "
                f"--store {self.path} -o old-audit.jsonl`), move the file and its -wal/-shm files aside, and start "
                "again: a new keyed store is created.",
                "the audit store is in an old format",
            )
        if has_log:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(audit_head)")}
            if "seal" not in columns:  # an empty schema-1 store: upgrade it in place
                conn.execute("ALTER TABLE audit_head ADD COLUMN seal TEXT")
        apply_migrations(conn, SQLITE_MIGRATIONS, self.clock)
        self._check_meta(conn, records)

    def _check_meta(self, conn: Any, records: int) -> None:
        """Record the chain format and the key id in a new store; check them in an existing one."""
        conn.execute(
            "INSERT INTO steward_meta (key, value) VALUES ('audit_schema', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )
        stored = conn.execute("SELECT value FROM steward_meta WHERE key = 'audit_key_id'").fetchone()
        if stored is None and records:
            raise AuditKeyError(
                f"the audit store {self.path} has records but no key id: its steward_meta table was edited. "
                "Run `tableau-steward audit verify` with the server's key to see what else changed.",
                "the audit store was tampered with",
            )
        if stored is None:
            conn.execute("INSERT INTO steward_meta (key, value) VALUES ('audit_key_id', ?)", (self.key.key_id,))
        else:
            self._check_key_id(stored[0])
        self.schema_version = SCHEMA_VERSION

    def _check_key_id(self, stored: str) -> None:
        if stored != self.key.key_id:
            raise AuditKeyError(
                f"the audit store {self.path} is sealed with signing key {stored}, but this process has key "
                f"{self.key.key_id} (from {self.key.source}). Every server and CLI sharing a store needs the same key: "
                "copy the key file or set STEWARD_SIGNING_KEY.",
                "the signing key is not the audit store's key",
            )

    def stored_key_id(self) -> str | None:
        with self._lock:
            row = self._read("SELECT value FROM steward_meta WHERE key = 'audit_key_id'").fetchone()
        return row[0] if row else None

    def check_present(self) -> None:
        """Raise AuditUnavailable unless the file at `path` is still the store this process opened, writable.

        SQLite keeps writing to a deleted file through its open descriptor, and to a file made read-only
        after opening, so without this check records would silently go nowhere. When a different file sits
        at the path, it is taken over only if it holds this process's last record (the store was moved away
        and back, or restored from a copy made after that record).
        """
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise AuditUnavailable(
                f"the audit store {self.path} was deleted while the server runs; calls are refused until it is "
                "restored (or the server restarted on a new store)",
                "the audit store file was deleted",
            ) from None
        except OSError as exc:
            raise AuditUnavailable(f"cannot check the audit store {self.path}: {exc}") from None
        if (info.st_dev, info.st_ino) != self._identity:
            self._reattach()
        # The mode bit too: root's os.access ignores it, but a store chmodded read-only means "stop writing".
        if not info.st_mode & stat.S_IWUSR or not os.access(self.path, os.W_OK):
            raise AuditUnavailable(
                f"the audit store {self.path} is not writable; calls are refused until it is writable again",
                "the audit store is not writable",
            )

    def _reattach(self) -> None:
        replaced = AuditUnavailable(
            f"the audit store {self.path} was replaced by another file while the server runs; calls are refused "
            "until the original store is back (or the server is restarted)",
            "the audit store file was replaced",
        )
        try:
            candidate = sqlite3.connect(
                str(self.path), timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                key_row = candidate.execute("SELECT value FROM steward_meta WHERE key = 'audit_key_id'").fetchone()
                if self._last_written is None:
                    same = False
                else:
                    row = candidate.execute(
                        "SELECT hash FROM audit_log WHERE seq = ?", (self._last_written[0],)
                    ).fetchone()
                    same = row is not None and row[0] == self._last_written[1]
            finally:
                candidate.close()
        except sqlite3.Error:
            raise replaced from None
        if key_row is None or key_row[0] != self.key.key_id or not same:
            raise replaced
        log.warning("the audit store %s is back (it holds this server's last record); writing to it again", self.path)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._connect()

    def has_table(self, name: str) -> bool:
        """Whether the store has table `name` (a read-only store may predate the approvals tables)."""
        with self._lock:
            return self._read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None

    def applied_migrations(self) -> list[tuple[int, str]]:
        """(version, name) of every schema migration applied to this store, in order."""
        with self._lock:
            if not self.has_table("schema_migrations"):
                return []
            return [(int(v), n) for v, n in self._read("SELECT version, name FROM schema_migrations ORDER BY version")]

    def migrate(self, tx: _Tx, migrations: Iterable[Migration]) -> None:
        """Apply the migrations (of another part of the schema, e.g. approvals) this store lacks."""
        apply_migrations(tx.conn, migrations, self.clock)

    def notify_approved(self, tx: _Tx, request_id: str) -> None:
        """Tell other replicas, at commit, that `request_id` became approved (PostgreSQL NOTIFY); SQLite
        replicas find it by polling."""

    def _begin_write(self, conn: Any) -> None:
        """Start a write transaction that serialises with every other writer of the store."""
        conn.execute("BEGIN IMMEDIATE")

    def _begin_snapshot(self, conn: Any) -> None:
        """Start a read transaction: one consistent snapshot."""
        conn.execute("BEGIN")

    def _lost_connection(self) -> None:
        """A driver error happened; a backend whose connection can break (a server) drops it here."""

    @property
    def conn(self) -> Any:
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
            if not self.readonly:
                self.check_present()
            try:
                conn = self.conn
                self._begin_write(conn)
            except self.db_errors as exc:
                self._lost_connection()
                raise AuditUnavailable(f"cannot write the audit store {self.path}: {exc}") from None
            tx = _Tx(self, conn)
            started = time.perf_counter()
            try:
                yield tx
                conn.execute("COMMIT")
                if tx.last is not None:
                    self._last_written = tx.last
                if self.commit_observer is not None:
                    self.commit_observer(time.perf_counter() - started)
            except BaseException as exc:
                try:
                    conn.execute("ROLLBACK")
                except self.db_errors:
                    pass
                if isinstance(exc, self.db_errors):
                    self._lost_connection()
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

    def record_tableau_request(self, event: Any, *, principal: str | None = None) -> AuditRecord:
        """`tableau_request` from a server.tableau RequestEvent (method, path, query, status, duration_ms,
        attempt, operation_id, error); `operation_id` is the call id of the enclosing tool call, `principal`
        who made that call."""
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
            principal=principal,
        )

    # -- reading ---------------------------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record, (0, GENESIS_HASH) when empty (as stored: `verify` checks it)."""
        with self._lock:
            row = self._read("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        try:
            return self.conn.execute(sql, params)
        except self.db_errors as exc:
            self._lost_connection()
            raise AuditUnavailable(f"cannot read the audit store {self.path}: {exc}") from None

    def _check_verifiable(self, conn: Any) -> None:
        if self.schema_version < SCHEMA_VERSION:
            raise AuditUnavailable(
                f"the audit store {self.path} is in the old unkeyed format (schema {self.schema_version}): it has "
                "no keyed chain to verify; `audit export` still reads it",
                "the audit store is in an old format",
            )
        key = self.key
        row = conn.execute("SELECT value FROM steward_meta WHERE key = 'audit_key_id'").fetchone()
        if row is None:
            if conn.execute("SELECT 1 FROM audit_log LIMIT 1").fetchone() is not None:
                raise AuditKeyError(
                    f"the audit store {self.path} has records but no key id (steward_meta was edited)",
                    "the audit store was tampered with",
                )
            return
        if row[0] != key.key_id:
            self._check_key_id(row[0])

    def verify(self, expect_head: Anchor | str | None = None) -> VerifyResult:
        """Walk the whole chain with the key; report the first broken link (edit, rewrite, forged append,
        deletion, reordering, truncation, an unsealed head) and, with `expect_head` (an anchor from
        `anchor()`), whether the anchored record is still in the chain unchanged.

        Raises AuditKeyError without the store's key, and ValueError for an anchor that is malformed or
        not sealed by this key."""
        expect = Anchor.parse(expect_head) if isinstance(expect_head, str) else expect_head
        if expect is not None and not expect.sealed_by(self.key):
            raise ValueError("the expected head is not an anchor sealed by this store's key (forged or mistyped)")
        with self._lock:
            conn = self.conn
            try:
                self._begin_snapshot(conn)  # one consistent snapshot for rows and head
                self._check_verifiable(conn)
                head_row = conn.execute("SELECT seq, hash, seal FROM audit_head WHERE id = 1").fetchone()
                rows = conn.execute("SELECT seq, body, hash FROM audit_log ORDER BY seq")
                head = (head_row[0], head_row[1], head_row[2]) if head_row else None
                return verify_chain(rows, head, self.key, expect)
            except self.db_errors as exc:
                self._lost_connection()
                raise AuditUnavailable(f"cannot read the audit store {self.path}: {exc}") from None
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def anchor(self) -> Anchor:
        """A sealed copy of the current head, after verifying the chain (refuses to anchor a broken one)."""
        result = self.verify()
        if not result.ok:
            raise AuditUnavailable(
                f"refusing to anchor a broken chain: {result.reason}", "the audit chain is broken"
            )
        return Anchor.make(self.key, result.head_seq, result.head_hash)

    def records(self, after_seq: int = 0, limit: int | None = None) -> list[AuditRecord]:
        sql = "SELECT body, hash FROM audit_log WHERE seq > ? ORDER BY seq"
        params: tuple[Any, ...] = (after_seq,)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        with self._lock:
            return [AuditRecord.from_row(b, h) for b, h in self._read(sql, params).fetchall()]

    def records_for_approval(
        self, approval_id: str, call_ids: Iterable[str] = (), limit: int = 200
    ) -> tuple[list[AuditRecord], int]:
        """One approval request's trail, oldest first (at most `limit`, with the total): the records naming it
        (`approval_id`) and every record of the calls that made and ran it (`call_ids` and the call ids of the
        records naming it: intents, decisions, outcomes and their Tableau requests)."""
        named = "json_extract(body, '$.approval_id') = ?"
        with self._lock:
            calls = set(call_ids) | {
                row[0]
                for row in self._read(f"SELECT json_extract(body, '$.call_id') FROM audit_log WHERE {named}", (approval_id,))
                if row[0]
            }
            marks = ",".join("?" * len(calls))
            where = f"{named} OR json_extract(body, '$.call_id') IN ({marks})" if calls else named
            params = (approval_id, *sorted(calls))
            total = self._read(f"SELECT COUNT(*) FROM audit_log WHERE {where}", params).fetchone()[0]
            rows = self._read(f"SELECT body, hash FROM audit_log WHERE {where} ORDER BY seq LIMIT ?", (*params, limit))
            return [AuditRecord.from_row(b, h) for b, h in rows.fetchall()], total

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

    def __init__(self, log_: AuditLog, conn: Any) -> None:
        self.log, self.conn = log_, conn
        self.last: tuple[int, str] | None = None  # the last record appended in this transaction

    def append(self, kind: str, **fields: Any) -> AuditRecord:
        clean = self.log._prepare(kind, fields)
        row = self.conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        prev_seq, prev_hash = (row[0], row[1]) if row else (0, GENESIS_HASH)
        written = self.log._last_written
        if written is not None and prev_seq < written[0]:
            raise AuditUnavailable(
                f"the head of the audit store {self.log.path} moved back from {written[0]} to {prev_seq} while this "
                "process writes to it: records were removed. Calls are refused; run `tableau-steward audit verify`.",
                "the audit store was tampered with",
            )
        seq = prev_seq + 1
        ts = utc_now_iso(self.log.clock)
        body = canonical_json({**clean, "seq": seq, "ts": ts, "kind": kind, "prev_hash": prev_hash})
        key = self.log.key
        hash_ = record_hash(key, prev_hash, body)
        self.conn.execute("INSERT INTO audit_log (seq, body, hash) VALUES (?, ?, ?)", (seq, body, hash_))
        self.conn.execute(
            "INSERT INTO audit_head (id, seq, hash, seal) VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "seq = excluded.seq, hash = excluded.hash, seal = excluded.seal",
            (seq, hash_, head_seal(key, seq, hash_)),
        )
        self.last = (seq, hash_)
        return AuditRecord(seq, ts, kind, prev_hash, hash_, clean)


def _cut(text: str | None) -> str | None:
    if text is None:
        return None
    text = scrub_text(str(text))
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."


def is_database_url(target: object) -> bool:
    """Whether a store target names a PostgreSQL database rather than a SQLite file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class Migration:
    """One numbered step of a store's schema. `apply` runs inside the opening write transaction; SQLite's
    steps are idempotent, so a store made before migrations were recorded is brought up to date by them."""

    version: int
    name: str
    apply: Callable[[Any], None]


MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "applied_at TEXT NOT NULL)"
)


def apply_migrations(conn: Any, migrations: Iterable[Migration], clock: Callable[[], float] = time.time) -> list[int]:
    """Apply, in order, each migration the store has not recorded in `schema_migrations`; returns their
    versions. Runs inside the caller's write transaction, so two processes never apply one step twice."""
    conn.execute(MIGRATIONS_TABLE)
    done = {int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in done:
            continue
        migration.apply(conn)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, utc_now_iso(clock)),
        )
        applied.append(migration.version)
    return applied


def _sqlite_audit_schema(conn: Any) -> None:
    for statement in _schema_statements():
        conn.execute(statement)


# Versions 1..99 are the audit log's, 100.. the approvals' (server/governance/approvals.py).
SQLITE_MIGRATIONS = (Migration(1, "audit log, sealed head, meta, append-only triggers", _sqlite_audit_schema),)


def _schema_statements() -> list[str]:
    """`_SCHEMA` split into statements (triggers keep their inner ';'), to run inside one transaction."""
    statements, current = [], ""
    for line in _SCHEMA.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


def _schema_version(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT value FROM steward_meta WHERE key = 'audit_schema'").fetchone()
    except sqlite3.OperationalError:  # no steward_meta: a store from before it existed
        return 1
    return int(row[0]) if row and str(row[0]).isdigit() else 1


def _create_private(path: Path) -> None:
    """Create the store's directory (0700) and file (0600) when missing, before SQLite opens it.

    SQLite gives its -wal and -shm files the database file's permissions, so they are private too.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _file_identity(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino
