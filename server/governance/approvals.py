"""Approval requests for gated calls, stored next to the audit log (same SQLite file, own tables).

Life of a request::

    pending ──approve (enough distinct approvers)──▶ approved ──claim_for_execution──▶ executing ──▶ executed | failed
       │  └─deny──▶ denied                              │
       └──────────── ttl passes ──▶ expired ◀────────────┘

- A request binds the tool, the canonical arguments and their digest (sha256 of canonical JSON), the
  requester and a preview computed by the caller from the site's current state.
- Only approvers named by the policy may approve; the requester never may (even if it is an approver);
  the policy's `required_approvals` distinct approvers are needed (two-person rule with 2).
- `claim_for_execution` is a single `UPDATE ... WHERE status='approved' AND tool=? AND args_digest=?`
  inside a `BEGIN IMMEDIATE` transaction: across every process sharing the store exactly one claim wins.
  A different tool or argument digest, an expired, denied, pending or already used request is refused.
- Every state change and every refused attempt writes an audit record in the SAME transaction, so there
  is no decision without its record (and no decision at all if the audit log cannot be written).

Arguments are held verbatim (they must be replayed), so the store refuses to hold arguments whose
names look secret: a tool that takes a secret must never be approval-gated.
"""

from __future__ import annotations

import builtins
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.governance.audit import AuditLog, AuditUnavailable, _Tx
from server.governance.canonical import args_digest, canonical_json, is_secret_name, scrub_text

if TYPE_CHECKING:
    from server.governance.policy import Policy

ID_PREFIX = "apr_"
STATUSES = ("pending", "approved", "denied", "expired", "executing", "executed", "failed")
MAX_RESULT = 4000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS approval_requests (
    id                 TEXT PRIMARY KEY,
    tool               TEXT NOT NULL,
    arguments          TEXT NOT NULL,
    args_digest        TEXT NOT NULL,
    requester          TEXT NOT NULL,
    preview            TEXT NOT NULL,
    status             TEXT NOT NULL,
    created_at         REAL NOT NULL,
    expires_at         REAL NOT NULL,
    updated_at         REAL NOT NULL,
    required_approvals INTEGER NOT NULL,
    call_id            TEXT,
    policy_hash        TEXT,
    result             TEXT
);
CREATE INDEX IF NOT EXISTS approval_requests_status ON approval_requests (status);
CREATE TABLE IF NOT EXISTS approval_decisions (
    request_id TEXT NOT NULL,
    approver   TEXT NOT NULL,
    decision   TEXT NOT NULL,
    reason     TEXT,
    at         REAL NOT NULL,
    PRIMARY KEY (request_id, approver)
);
"""


class ApprovalError(Exception):
    """An approval operation was refused. `code` is one of: not_found, self_approval, not_approver,
    duplicate_approver, expired, denied, used, not_approved, pending, mismatch, bad_request."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class ApprovalDecision:
    approver: str
    decision: str  # "approved" | "denied"
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class ApprovalRequest:
    id: str
    tool: str
    arguments: Mapping[str, Any]
    args_digest: str
    requester: str
    preview: str
    status: str  # effective status: a pending/approved request past its expiry reads "expired"
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    required_approvals: int
    decisions: tuple[ApprovalDecision, ...]
    call_id: str | None
    policy_hash: str | None
    result: str | None

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(d.approver for d in self.decisions if d.decision == "approved")

    def view(self) -> dict[str, Any]:
        """A JSON-able view (CLI `approvals show`, the get_request tool)."""
        return {
            "request_id": self.id,
            "tool": self.tool,
            "arguments": dict(self.arguments),
            "args_digest": self.args_digest,
            "status": self.status,
            "preview": self.preview,
            "requested_by": self.requester,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "required_approvals": self.required_approvals,
            "decisions": [
                {"approver": d.approver, "decision": d.decision, "reason": d.reason, "at": d.at}
                for d in self.decisions
            ],
            "result": self.result,
        }


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _iso(ts: float) -> str:
    return _dt(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApprovalStore:
    """Approval requests in the audit store's SQLite file; shares the AuditLog's connection and lock."""

    def __init__(self, audit: AuditLog, *, clock: Callable[[], float] | None = None) -> None:
        self.audit = audit
        self.clock = clock or audit.clock
        self._absent = False  # a read-only store that never held approvals
        if audit.readonly:
            with audit._lock, _reading(audit):
                self._absent = not audit.conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'approval_requests'"
                ).fetchone()
        else:
            with audit.transaction() as tx:
                for statement in _SCHEMA.split(";\n"):
                    if statement.strip():
                        tx.conn.execute(statement)

    @classmethod
    def open(
        cls, path: str | Path, *, clock: Callable[[], float] | None = None, **audit_kwargs: Any
    ) -> ApprovalStore:
        """Open the store at `path` with its own AuditLog (which it uses for every record)."""
        return cls(AuditLog.open(path, **audit_kwargs), clock=clock)

    # -- creating and reading ---------------------------------------------------------------------------

    def create(
        self,
        tool: str,
        args: Mapping[str, Any],
        requester: str,
        preview: str,
        ttl: float | timedelta,
        *,
        required_approvals: int = 1,
        call_id: str | None = None,
        policy_hash: str | None = None,
    ) -> ApprovalRequest:
        """A new pending request (and its `approval.created` record). `ttl` in seconds or a timedelta."""
        ttl_s = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
        if ttl_s <= 0:
            raise ValueError("ttl must be positive")
        if required_approvals < 1:
            raise ValueError("required_approvals must be at least 1")
        arguments = json.loads(canonical_json(dict(args)))  # JSON-native copy; TypeError for anything else
        secret = _secret_keys(arguments)
        if secret:
            raise ApprovalError(
                "bad_request",
                f"arguments {sorted(secret)} look secret; a call taking secrets cannot be held for approval",
            )
        now = self.clock()
        request_id = ID_PREFIX + secrets.token_urlsafe(18)
        digest = args_digest(arguments)
        with self.audit.transaction() as tx:
            tx.conn.execute(
                "INSERT INTO approval_requests (id, tool, arguments, args_digest, requester, preview, status, created_at, "
                "expires_at, updated_at, required_approvals, call_id, policy_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
                (
                    request_id,
                    tool,
                    canonical_json(arguments),
                    digest,
                    requester,
                    preview,
                    now,
                    now + ttl_s,
                    now,
                    required_approvals,
                    call_id,
                    policy_hash,
                ),
            )
            tx.append(
                "approval.created",
                approval_id=request_id,
                tool=tool,
                arguments=arguments,
                args_digest=digest,
                requester=requester,
                preview=preview,
                expires_at=_iso(now + ttl_s),
                required_approvals=required_approvals,
                call_id=call_id,
                policy_hash=policy_hash,
            )
        request = self.get(request_id)
        assert request is not None
        return request

    def get(self, request_id: str) -> ApprovalRequest | None:
        if self._absent:
            return None
        with self.audit._lock, _reading(self.audit):
            return self._load(self.audit.conn, request_id)

    def list(self, status: str | None = None) -> builtins.list[ApprovalRequest]:
        """Requests, newest first; `status` filters on the effective status (so "expired" includes lapsed ones)."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; known: {', '.join(STATUSES)}")
        if self._absent:
            return []
        now = self.clock()
        if status is None:
            where, params = "", ()
        elif status in ("pending", "approved"):
            where, params = "WHERE status = ? AND expires_at > ?", (status, now)
        elif status == "expired":
            where, params = (
                "WHERE status = 'expired' OR (status IN ('pending', 'approved') AND expires_at <= ?)",
                (now,),
            )
        else:
            where, params = "WHERE status = ?", (status,)
        with self.audit._lock, _reading(self.audit):
            conn = self.audit.conn
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM approval_requests {where} ORDER BY created_at DESC, id", params
                )
            ]
            requests = [r for r in (self._load(conn, i) for i in ids) if r is not None]
        return [r for r in requests if status is None or r.status == status]

    # -- deciding ----------------------------------------------------------------------------------------------

    def approve(self, request_id: str, approver: str, reason: str | None, policy: Policy) -> ApprovalRequest:
        """Record `approver`'s approval; the request becomes approved once enough distinct approvers agreed.

        Refused (ApprovalError, and an `approval.refused` record): unknown id, approver not named by the
        policy, the requester approving its own request, the same approver twice, or a request that is
        not pending (expired, denied, approved, used).
        """
        error: ApprovalError | None = None
        with self.audit.transaction() as tx:
            row = self._row(tx, request_id)
            error = self._check_decidable(tx, row, request_id, approver, "approve")
            if error is None:
                if approver == row["requester"]:
                    error = ApprovalError(
                        "self_approval", f"{approver} requested {request_id} and cannot approve it"
                    )
                elif not policy.is_approver(approver):
                    error = ApprovalError(
                        "not_approver",
                        f"{approver} is not an approver under the policy (approvals.approvers)",
                    )
                elif tx.conn.execute(
                    "SELECT 1 FROM approval_decisions WHERE request_id = ? AND approver = ?",
                    (request_id, approver),
                ).fetchone():
                    error = ApprovalError(
                        "duplicate_approver",
                        f"{approver} already approved {request_id}; another approver must approve it",
                    )
            if error is not None:
                self._refused(tx, request_id, approver, "approve", error)
            else:
                now = self.clock()
                tx.conn.execute(
                    "INSERT INTO approval_decisions (request_id, approver, decision, reason, at) VALUES (?, ?, 'approved', ?, ?)",
                    (request_id, approver, reason, now),
                )
                count = tx.conn.execute(
                    "SELECT COUNT(DISTINCT approver) FROM approval_decisions WHERE request_id = ? AND decision = 'approved' "
                    "AND approver != ?",
                    (request_id, row["requester"]),
                ).fetchone()[0]
                required = max(int(row["required_approvals"]), policy.required_approvals)
                complete = count >= required
                if complete:
                    tx.conn.execute(
                        "UPDATE approval_requests SET status = 'approved', updated_at = ? WHERE id = ? AND status = 'pending'",
                        (now, request_id),
                    )
                else:
                    tx.conn.execute(
                        "UPDATE approval_requests SET updated_at = ? WHERE id = ?", (now, request_id)
                    )
                tx.append(
                    "approval.approved",
                    approval_id=request_id,
                    approver=approver,
                    reason=reason,
                    approvals=count,
                    required_approvals=required,
                    complete=complete,
                    policy_hash=policy.hash,
                )
        if error is not None:
            raise error
        result = self.get(request_id)
        assert result is not None
        return result

    def deny(
        self, request_id: str, approver: str, reason: str, policy: Policy | None = None
    ) -> ApprovalRequest:
        """Deny a pending request, or revoke an approved one that has not started (a reason is required).
        With `policy`, only its approvers or the requester (withdrawing its own request) may deny."""
        if not reason or not reason.strip():
            raise ApprovalError("bad_request", "a reason is required to deny a request")
        error: ApprovalError | None = None
        with self.audit.transaction() as tx:
            row = self._row(tx, request_id)
            error = self._check_decidable(tx, row, request_id, approver, "deny")
            if error is not None and error.code == "used" and row is not None and row["status"] == "approved":
                error = None  # revoking an approval that has not run yet
            if (
                error is None
                and policy is not None
                and approver != row["requester"]
                and not policy.is_approver(approver)
            ):
                error = ApprovalError(
                    "not_approver", f"{approver} is not an approver under the policy (approvals.approvers)"
                )
            if error is not None:
                self._refused(tx, request_id, approver, "deny", error)
            else:
                now = self.clock()
                tx.conn.execute(
                    "INSERT OR REPLACE INTO approval_decisions (request_id, approver, decision, reason, at) "
                    "VALUES (?, ?, 'denied', ?, ?)",
                    (request_id, approver, reason, now),
                )
                tx.conn.execute(
                    "UPDATE approval_requests SET status = 'denied', updated_at = ? WHERE id = ?",
                    (now, request_id),
                )
                tx.append("approval.denied", approval_id=request_id, approver=approver, reason=reason)
        if error is not None:
            raise error
        result = self.get(request_id)
        assert result is not None
        return result

    def claim_for_execution(
        self, request_id: str, tool: str, args_digest: str, *, requester: str | None = None
    ) -> ApprovalRequest:
        """Atomically move an approved request to `executing` and return it; exactly one caller wins.

        Refused (ApprovalError + `approval.refused` record) when the id is unknown, the tool, argument digest
        or (if given) requester differ from the approved call, or the request is pending, denied, expired or
        already claimed.
        """
        error: ApprovalError | None = None
        with self.audit.transaction() as tx:
            now = self.clock()
            claimed = tx.conn.execute(
                "UPDATE approval_requests SET status = 'executing', updated_at = ? "
                "WHERE id = ? AND status = 'approved' AND tool = ? AND args_digest = ? AND expires_at > ? "
                "AND (? IS NULL OR requester = ?)",
                (now, request_id, tool, args_digest, now, requester, requester),
            ).rowcount
            if claimed == 1:
                tx.append("approval.executing", approval_id=request_id, tool=tool, args_digest=args_digest)
            else:
                row = self._row(tx, request_id)
                if row is None:
                    error = ApprovalError("not_found", f"no approval request {request_id}")
                elif row["tool"] != tool or row["args_digest"] != args_digest:
                    error = ApprovalError(
                        "mismatch",
                        f"{request_id} approved {row['tool']} with other arguments; this call ({tool}) does not match "
                        "what was approved (tool and arguments must be identical)",
                    )
                elif requester is not None and row["requester"] != requester:
                    error = ApprovalError("mismatch", f"{request_id} was requested by someone else")
                else:
                    error = self._status_error(tx, row, request_id) or ApprovalError(
                        "not_approved", f"{request_id} cannot be executed now"
                    )
                self._refused(tx, request_id, requester or "server", "claim", error)
        if error is not None:
            raise error
        result = self.get(request_id)
        assert result is not None
        return result

    def record_result(self, request_id: str, ok: bool, result_summary: str | None) -> ApprovalRequest:
        """Finish a claimed request: executing → executed (ok) or failed, with a (scrubbed) result summary."""
        summary = None if result_summary is None else scrub_text(str(result_summary))
        if summary is not None and len(summary) > MAX_RESULT:
            summary = summary[: MAX_RESULT - 3] + "..."
        status = "executed" if ok else "failed"
        with self.audit.transaction() as tx:
            changed = tx.conn.execute(
                "UPDATE approval_requests SET status = ?, result = ?, updated_at = ? WHERE id = ? AND status = 'executing'",
                (status, summary, self.clock(), request_id),
            ).rowcount
            if changed != 1:
                raise ApprovalError(
                    "not_approved", f"{request_id} is not executing; claim it before recording a result"
                )
            tx.append(f"approval.{status}", approval_id=request_id, result=summary)
        result = self.get(request_id)
        assert result is not None
        return result

    def expire_due(self) -> int:
        """Mark every pending/approved request past its expiry as expired (with records); returns how many."""
        with self.audit.transaction() as tx:
            now = self.clock()
            ids = [
                r[0]
                for r in tx.conn.execute(
                    "SELECT id FROM approval_requests WHERE status IN ('pending', 'approved') AND expires_at <= ?",
                    (now,),
                )
            ]
            for request_id in ids:
                self._expire(tx, request_id, now)
        return len(ids)

    # -- internals ------------------------------------------------------------------------------------------------

    def _row(self, tx: _Tx, request_id: str) -> Any:
        cur = tx.conn.execute(
            "SELECT id, tool, args_digest, requester, status, expires_at, required_approvals FROM approval_requests WHERE id = ?",
            (request_id,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cur.description], row))

    def _expire(self, tx: _Tx, request_id: str, now: float) -> None:
        tx.conn.execute(
            "UPDATE approval_requests SET status = 'expired', updated_at = ? WHERE id = ? AND status IN ('pending', 'approved')",
            (now, request_id),
        )
        tx.append("approval.expired", approval_id=request_id)

    def _status_error(self, tx: _Tx, row: Mapping[str, Any], request_id: str) -> ApprovalError | None:
        """Why a request in `row` cannot move on (expiring it on the way), or None if it is pending/approved and live."""
        status = row["status"]
        if status in ("pending", "approved") and row["expires_at"] <= self.clock():
            self._expire(tx, request_id, self.clock())
            return ApprovalError(
                "expired", f"{request_id} expired at {_iso(row['expires_at'])}; ask for a new request"
            )
        if status == "expired":
            return ApprovalError(
                "expired", f"{request_id} expired at {_iso(row['expires_at'])}; ask for a new request"
            )
        if status == "denied":
            return ApprovalError("denied", f"{request_id} was denied")
        if status in ("executing", "executed", "failed"):
            return ApprovalError("used", f"{request_id} was already used ({status}); an approval runs once")
        if status == "pending":
            return ApprovalError("pending", f"{request_id} is still pending approval")
        return None

    def _check_decidable(
        self, tx: _Tx, row: Mapping[str, Any] | None, request_id: str, actor: str, action: str
    ) -> ApprovalError | None:
        if row is None:
            return ApprovalError("not_found", f"no approval request {request_id}")
        error = self._status_error(tx, row, request_id)
        if error is not None and error.code == "pending":
            return None
        if error is None and row["status"] == "approved":
            return ApprovalError("used", f"{request_id} is already approved; nothing left to {action}")
        return error

    def _refused(self, tx: _Tx, request_id: str, actor: str, action: str, error: ApprovalError) -> None:
        tx.append(
            "approval.refused",
            approval_id=request_id,
            actor=actor,
            action=action,
            reason=str(error),
            code=error.code,
        )

    def _load(self, conn: Any, request_id: str) -> ApprovalRequest | None:
        cur = conn.execute(
            "SELECT id, tool, arguments, args_digest, requester, preview, status, created_at, expires_at, updated_at, "
            "required_approvals, call_id, policy_hash, result FROM approval_requests WHERE id = ?",
            (request_id,),
        )
        row = cur.fetchone()
        if row is None:
            return None
        (
            rid,
            tool,
            arguments,
            digest,
            requester,
            preview,
            status,
            created,
            expires,
            updated,
            required,
            call_id,
            policy_hash,
            result,
        ) = row
        decisions = tuple(
            ApprovalDecision(a, d, r, _dt(at))
            for a, d, r, at in conn.execute(
                "SELECT approver, decision, reason, at FROM approval_decisions WHERE request_id = ? ORDER BY at, approver",
                (request_id,),
            )
        )
        if status in ("pending", "approved") and expires <= self.clock():
            status = "expired"
        return ApprovalRequest(
            id=rid,
            tool=tool,
            arguments=json.loads(arguments),
            args_digest=digest,
            requester=requester,
            preview=preview,
            status=status,
            created_at=_dt(created),
            expires_at=_dt(expires),
            updated_at=_dt(updated),
            required_approvals=required,
            decisions=decisions,
            call_id=call_id,
            policy_hash=policy_hash,
            result=result,
        )


@contextmanager
def _reading(audit: AuditLog) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise AuditUnavailable(f"cannot read approval requests from {audit.path}: {exc}") from None


def _secret_keys(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if is_secret_name(str(k)):
                found.add(str(k))
            found |= _secret_keys(v)
    elif isinstance(value, list):
        for v in value:
            found |= _secret_keys(v)
    return found
