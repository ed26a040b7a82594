"""The PostgreSQL backend of the audit store: the same keyed chain and approvals, shared by replicas.

Only the connection, locking and schema live here; the chain (server/governance/audit.py) and the
approvals (server/governance/approvals.py) are the SQLite code, run through `PgConnection`, which takes
the SQLite placeholders (``?`` and ``:name``) that code writes.

- Serialised writes: every write transaction starts with ``pg_advisory_xact_lock(STORE_LOCK)``, held to
  commit, so appends (read head, insert, move head) and approval claims run one at a time across every
  replica, exactly as ``BEGIN IMMEDIATE`` does on SQLite. Transactions are READ COMMITTED, so each
  statement after the lock sees what the previous holder committed: two replicas never append the same
  seq, and a request moves from approved to executing exactly once.
- Wake-ups: approving a request sends ``NOTIFY steward_approved, '<id>'`` in the deciding transaction
  (delivered at commit); `ApprovalWakeups` LISTENs on its own connection.
- Fail closed: a connection error drops the connection and raises AuditUnavailable; every later call
  tries to reconnect, and so is refused until the database answers again.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.pq import TransactionStatus

from server.governance.audit import (
    SCHEMA_VERSION,
    AuditLog,
    AuditUnavailable,
    Migration,
    apply_migrations,
)

log = logging.getLogger(__name__)

STORE_LOCK = 0x5354_4557  # "STEW": the advisory lock every write transaction holds
APPROVED_CHANNEL = "steward_approved"
CONNECT_TIMEOUT_S = 5
UNREACHABLE = "the audit store database is unreachable"

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")

_AUDIT_DDL = (
    "CREATE TABLE IF NOT EXISTS audit_log (seq BIGINT PRIMARY KEY, body TEXT NOT NULL, hash TEXT NOT NULL)",
    (
        "CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, "
        "hash TEXT NOT NULL, seal TEXT)"
    ),
    "CREATE TABLE IF NOT EXISTS steward_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    (
        "CREATE OR REPLACE FUNCTION steward_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$"
    ),
    (
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION steward_append_only()"
    ),
    (
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION steward_append_only()"
    ),
    # approvals.py looks records up with SQLite's instr(); PostgreSQL calls it strpos.
    "CREATE OR REPLACE FUNCTION instr(text, text) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT strpos($1, $2)'",
)


def _audit_schema(conn: Any) -> None:
    for statement in _AUDIT_DDL:
        conn.execute(statement)


POSTGRES_MIGRATIONS = (Migration(1, "audit log, sealed head, meta, append-only triggers", _audit_schema),)


def postgres_ddl(sqlite_ddl: str) -> str:
    """A CREATE statement written for SQLite in PostgreSQL types (REAL is 4 bytes there: timestamps need 8)."""
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", sqlite_ddl)


def redacted_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PgConnection:
    """A psycopg connection (autocommit: the shared code issues BEGIN/COMMIT itself) speaking SQLite's
    placeholders: ``?`` and ``:name`` become ``%s`` and ``%(name)s``."""

    def __init__(self, raw: psycopg.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor:
        if not params:
            return self.raw.execute(sql)
        sql = sql.replace("%", "%%")
        sql = _NAMED.sub(r"%(\1)s", sql) if isinstance(params, dict) else sql.replace("?", "%s")
        return self.raw.execute(sql, params)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    @property
    def usable(self) -> bool:
        return not self.raw.closed and not self.raw.broken

    def close(self) -> None:
        self.raw.close()


class PostgresAuditLog(AuditLog):
    """The audit log (and, through ApprovalStore, the approvals) in a PostgreSQL database."""

    db_errors = (psycopg.Error,)
    backend = "postgresql"

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.url = url
        super().__init__(url, **kwargs)  # type: ignore[arg-type]

    def _store_label(self, target: Any) -> str:
        return redacted_url(str(target))

    def _store_file(self) -> None:
        return None

    # -- connection -------------------------------------------------------------------------------------

    def _connect(self) -> PgConnection:
        try:
            conn = PgConnection(psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S))
        except psycopg.Error as exc:
            raise AuditUnavailable(f"cannot reach the audit store {self.path}: {_first_line(exc)}", UNREACHABLE) from None
        try:
            if self.readonly:
                conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                self.schema_version = self._stored_schema(conn)
            else:
                conn.execute(f"SET synchronous_commit = {'on' if self.synchronous == 'full' else 'off'}")
                self._begin_write(conn)
                try:
                    self._prepare_store(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise AuditUnavailable(f"cannot open the audit store {self.path}: {_first_line(exc)}", UNREACHABLE) from None
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    @staticmethod
    def _stored_schema(conn: PgConnection) -> int:
        if conn.execute("SELECT to_regclass('steward_meta')").fetchone()[0] is None:
            return SCHEMA_VERSION  # an empty database: nothing to read, nothing old
        row = conn.execute("SELECT value FROM steward_meta WHERE key = 'audit_schema'").fetchone()
        return int(row[0]) if row and str(row[0]).isdigit() else SCHEMA_VERSION

    def _prepare_store(self, conn: Any) -> None:
        apply_migrations(conn, POSTGRES_MIGRATIONS, self.clock)
        records = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        self._check_meta(conn, records)
        self.schema_version = SCHEMA_VERSION

    @property
    def conn(self) -> Any:
        if self._conn is not None and self._pid == os.getpid() and not self._conn.usable:
            self._lost_connection()
        return super().conn

    def _lost_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            try:
                conn.close()
            except psycopg.Error:
                pass

    def check_present(self) -> None:
        """Nothing to check on a file: an unreachable database raises at BEGIN (and the call is refused)."""

    def has_table(self, name: str) -> bool:
        with self._lock:
            return self._read("SELECT to_regclass(?)", (name,)).fetchone()[0] is not None

    def _begin_write(self, conn: Any) -> None:
        conn.execute("BEGIN")
        conn.execute("SELECT pg_advisory_xact_lock(?)", (STORE_LOCK,))

    def _begin_snapshot(self, conn: Any) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def notify_approved(self, tx: Any, request_id: str) -> None:
        tx.conn.execute("SELECT pg_notify(?, ?)", (APPROVED_CHANNEL, request_id))


class ApprovalWakeups:
    """LISTENs for approvals on its own connection, in a thread; `wait(timeout)` returns True when one
    arrived (or the connection broke: the caller then polls, as it would on SQLite). Reconnects by itself."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._event = threading.Event()
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._listen_forever, name="steward-approval-listen", daemon=True)
        self._thread.start()

    def _listen_forever(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                    conn.execute(f"LISTEN {APPROVED_CHANNEL}")
                    self.connected.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self._event.set()
            except psycopg.Error as exc:
                self.connected.clear()
                log.warning("not listening for approvals (%s); polling until the store answers", _first_line(exc))
                self._event.set()  # let the runner poll now: it fails closed and logs while the store is away
                self._stop.wait(1.0)

    def wait(self, timeout: float) -> bool:
        woke = self._event.wait(timeout)
        self._event.clear()
        return woke

    def close(self) -> None:
        self._stop.set()
        self._event.set()
