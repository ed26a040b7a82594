"""Approval requests for gated calls, stored next to the audit log (same SQLite file, own tables).

Life of a request::

    pending ──approve (enough distinct approvers)──▶ approved ──claim_for_execution──▶ executing ──▶ executed | failed
       │  └─deny──▶ denied                              │           └─ verification fails ──▶ refused
       └──────────── ttl passes ──▶ expired ◀────────────┘

- A request binds what the approver sees: the tool, the canonical arguments and their digest, the requester,
  the preview, the resolved targets (ids with the names and project paths shown), the Tableau server and
  site it was made on, and the policy hash. An identical live request (same requester, tool, site, targets
  and options) is returned instead of a new one.
- Every request and every decision carries a seal: HMAC-SHA256 with the server's signing key, which is not
  in the store (server/governance/keys.py). Write access to the SQLite file alone cannot make a valid seal.
- Only approvers named by the policy may approve; the requester never may (even if it is an approver);
  the policy's `required_approvals` distinct approvers are needed (two-person rule with 2).
- `claim_for_execution` verifies before it claims, in one `BEGIN IMMEDIATE` transaction: the request's
  seal, each decision's seal, that enough deciders are approvers under the policy the server has loaded
  NOW, and that the request was made on this server's site. A broken seal or an "approved" status no
  valid decision explains is tampering: the request becomes `refused` with an `approval.refused` record
  (code `tampered`), and nothing runs. Exactly one claim wins across every process sharing the store.
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.governance.audit import AuditLog, AuditUnavailable, Migration, _Tx
from server.governance.canonical import args_digest, canonical_json, is_secret_name, scrub_text, sha256_hex
from server.governance.keys import SigningKey, check_seal, seal

if TYPE_CHECKING:
    from server.governance.policy import Policy

ID_PREFIX = "apr_"
STATUSES = ("pending", "approved", "denied", "expired", "executing", "executed", "failed", "refused")
MAX_RESULT = 4000
REQUEST_SEAL = "approval.request"
DECISION_SEAL = "approval.decision"

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
# Columns added after the first release; a store made before gets them on open (its old rows have no
# seal, so they can never run: they read as tampered).
_ADDED_COLUMNS = {
    "approval_requests": {"targets": "TEXT NOT NULL DEFAULT '[]'", "site": "TEXT", "binding": "TEXT", "seal": "TEXT",
                          "created_seq": "INTEGER"},
    "approval_decisions": {"policy_hash": "TEXT", "seal": "TEXT"},
}
_REQUEST_COLUMNS = (
    "id, tool, arguments, args_digest, requester, preview, status, created_at, expires_at, updated_at, "
    "required_approvals, call_id, policy_hash, result, targets, site, binding, created_seq, seal"
)


class ApprovalError(Exception):
    """An approval operation was refused. `code` is one of: not_found, self_approval, not_approver,
    duplicate_approver, expired, denied, used, not_approved, pending, mismatch, bad_request, tampered,
    other_site, no_key."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class ApprovalDecision:
    approver: str
    decision: str  # "approved" | "denied"
    reason: str | None
    at: datetime
    sealed: bool = True  # False: the row does not match its seal (edited or inserted outside the server)


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
    targets: tuple[Mapping[str, Any], ...] = ()
    site: Mapping[str, Any] | None = None
    # Why the stored record cannot be trusted (empty when its seals check out, or no key was given to look).
    integrity: tuple[str, ...] = ()

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(d.approver for d in self.decisions if d.decision == "approved")

    def view(self) -> dict[str, Any]:
        """A JSON-able view (the admin API, the get_request tool)."""
        return {
            "request_id": self.id,
            "tool": self.tool,
            "arguments": dict(self.arguments),
            "args_digest": self.args_digest,
            "status": self.status,
            "preview": self.preview,
            "targets": [dict(t) for t in self.targets],
            "site": dict(self.site) if self.site else None,
            "requested_by": self.requester,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "required_approvals": self.required_approvals,
            "decisions": [
                {"approver": d.approver, "decision": d.decision, "reason": d.reason, "at": d.at}
                for d in self.decisions
            ],
            "result": self.result,
            "integrity": "ok" if not self.integrity else "; ".join(self.integrity),
        }


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _iso(ts: float) -> str:
    return _dt(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def binding_digest(
    tool: str, requester: str, site: Mapping[str, Any] | None, targets: Iterable[Mapping[str, Any]],
    options: Mapping[str, Any],
) -> str:
    """What makes two requests the same change: who asks, the tool, the site, the target ids and every
    argument that does not name a target (so 'Sales' and its id are one request, a full and an
    incremental refresh are two)."""
    ids = sorted(f"{t.get('role')}:{t.get('id')}" for t in targets)
    return sha256_hex(
        canonical_json({"tool": tool, "requester": requester, "site": site, "targets": ids, "options": dict(options)})
    )


def _request_payload(row: Mapping[str, Any]) -> str:
    """The sealed part of a request row: everything the approver sees and the execution uses; not the status."""
    return canonical_json(
        {
            k: row[k]
            for k in (
                "id", "tool", "arguments", "args_digest", "requester", "preview", "created_at", "expires_at",
                "required_approvals", "call_id", "policy_hash", "targets", "site", "binding", "created_seq",
            )
        }
    )


def _decision_payload(row: Mapping[str, Any], request_seal: str | None) -> str:
    """A decision is sealed with the seal of its request, so it cannot be moved to another request."""
    return canonical_json(
        {
            "request_id": row["request_id"],
            "request_seal": request_seal,
            "approver": row["approver"],
            "decision": row["decision"],
            "reason": row["reason"],
            "at": row["at"],
            "policy_hash": row["policy_hash"],
        }
    )


@dataclass(frozen=True)
class _Check:
    """What verifying a stored request found."""

    problems: tuple[str, ...]  # broken seals: tampering
    valid_approvers: tuple[str, ...]  # approvers of sealed, approving decisions (not the requester)
    broken_deciders: frozenset[str] = frozenset()  # deciders whose decision row does not match its seal
    deniers: tuple[str, ...] = ()  # deciders of sealed denials


class ApprovalStore:
    """Approval requests in the audit store's SQLite file; shares the AuditLog's connection and lock.

    `key` seals and verifies the records (default: the audit log's key, when it has one). A store without
    a key can be read but refuses to create, decide or claim anything.
    """

    def __init__(
        self, audit: AuditLog, *, key: SigningKey | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        self.audit = audit
        self.key = key if key is not None else _audit_key(audit)
        self.clock = clock or audit.clock
        self._absent = False  # a read-only store that never held approvals
        if audit.readonly:
            self._absent = not audit.has_table("approval_requests")
        else:
            with audit.transaction() as tx:
                audit.migrate(tx, APPROVAL_MIGRATIONS[audit.backend])

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        key: SigningKey | None = None,
        clock: Callable[[], float] | None = None,
        **audit_kwargs: Any,
    ) -> ApprovalStore:
        """Open the store at `path` with its own AuditLog (which it uses for every record)."""
        return cls(AuditLog.open(path, **audit_kwargs), key=key, clock=clock)

    def _require_key(self) -> SigningKey:
        if self.key is None:
            raise ApprovalError(
                "no_key", "the approval store has no signing key, so it can neither seal nor verify a request"
            )
        return self.key

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
        targets: Iterable[Mapping[str, Any]] = (),
        site: Mapping[str, Any] | None = None,
        target_args: Iterable[str] = (),
    ) -> ApprovalRequest:
        """A new pending request (and its `approval.created` record), or the requester's identical live one.

        `targets` are the resolved objects (each a JSON object with at least `role` and `id`), `site` the
        Tableau server and site, `target_args` the argument names that designate targets (left out when
        comparing requests). `ttl` in seconds or a timedelta.
        """
        key = self._require_key()
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
        targets_json = canonical_json([dict(t) for t in targets])
        site_json = canonical_json(dict(site)) if site is not None else None
        skip = set(target_args)
        binding = binding_digest(
            tool, requester, site, json.loads(targets_json), {k: v for k, v in arguments.items() if k not in skip}
        )
        digest = args_digest(arguments)
        with self.audit.transaction() as tx:
            now = self.clock()
            existing = self._live_duplicate(tx, binding, requester, now)
            if existing is not None:
                request_id = existing
            else:
                request_id = ID_PREFIX + secrets.token_urlsafe(18)
                created = tx.append(
                    "approval.created",
                    approval_id=request_id,
                    tool=tool,
                    arguments=arguments,
                    args_digest=digest,
                    requester=requester,
                    preview=preview,
                    targets=json.loads(targets_json),
                    site=site,
                    expires_at=_iso(now + ttl_s),
                    required_approvals=required_approvals,
                    call_id=call_id,
                    policy_hash=policy_hash,
                )
                row = {
                    "id": request_id, "tool": tool, "arguments": canonical_json(arguments), "args_digest": digest,
                    "requester": requester, "preview": preview, "created_at": now, "expires_at": now + ttl_s,
                    "required_approvals": required_approvals, "call_id": call_id, "policy_hash": policy_hash,
                    "targets": targets_json, "site": site_json, "binding": binding, "created_seq": created.seq,
                }
                tx.conn.execute(
                    "INSERT INTO approval_requests (id, tool, arguments, args_digest, requester, preview, status, "
                    "created_at, expires_at, updated_at, required_approvals, call_id, policy_hash, targets, site, "
                    "binding, created_seq, seal) VALUES (:id, :tool, :arguments, :args_digest, :requester, :preview, "
                    "'pending', :created_at, :expires_at, :created_at, :required_approvals, :call_id, :policy_hash, "
                    ":targets, :site, :binding, :created_seq, :seal)",
                    {**row, "seal": seal(key, REQUEST_SEAL, _request_payload(row))},
                )
        request = self.get(request_id)
        assert request is not None
        return request

    def _live_duplicate(self, tx: _Tx, binding: str, requester: str, now: float) -> str | None:
        """The id of a pending, live, correctly sealed request with the same binding, if there is one."""
        for (request_id,) in tx.conn.execute(
            "SELECT id FROM approval_requests WHERE binding = ? AND requester = ? AND status = 'pending' "
            "AND expires_at > ? ORDER BY created_at",
            (binding, requester, now),
        ).fetchall():
            if not self._verify(tx.conn, request_id).problems:
                return request_id
        return None

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

    def count_pending(self) -> int:
        """How many requests wait for a decision (live ones: a lapsed request no longer waits)."""
        if self._absent:
            return 0
        with self.audit._lock, _reading(self.audit):
            return int(self.audit.conn.execute(
                "SELECT count(*) FROM approval_requests WHERE status = 'pending' AND expires_at > ?", (self.clock(),)
            ).fetchone()[0])

    def integrity_problems(self) -> builtins.list[tuple[str, tuple[str, ...]]]:
        """Every stored request whose record or decisions do not match their seals, with what is wrong
        (`audit verify` reports them). The server never runs such a request."""
        if self._absent:
            return []
        with self.audit._lock, _reading(self.audit):
            conn = self.audit.conn
            rows = conn.execute(
                "SELECT id, status, required_approvals FROM approval_requests ORDER BY created_at, id"
            ).fetchall()
            found = []
            for request_id, status, required in rows:
                check = self._verify(conn, request_id)
                problems = list(check.problems)
                if status in ("approved", "executing", "executed", "failed") and len(check.valid_approvers) < required:
                    problems.append(f"status {status} with {len(check.valid_approvers)} of {required} sealed approvals")
                found.append((request_id, tuple(problems)))
        return [(i, problems) for i, problems in found if problems]

    # -- deciding ----------------------------------------------------------------------------------------------

    def approve(self, request_id: str, approver: str, reason: str | None, policy: Policy) -> ApprovalRequest:
        """Record `approver`'s approval; the request becomes approved once enough distinct approvers agreed.

        `approver` must be an authenticated principal (the admin API passes the admin token's principal).
        Refused (ApprovalError, and an `approval.refused` record): unknown id, a request whose seal is
        broken, approver not named by the policy, the requester approving its own request, the same approver
        twice, or a request that is not pending (expired, denied, approved, used).
        """
        key = self._require_key()
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
                self._insert_decision(tx, key, row, approver, "approved", reason, now, policy.hash)
                count = sum(1 for a in self._verify(tx.conn, request_id).valid_approvers if policy.is_approver(a))
                required = max(int(row["required_approvals"]), policy.required_approvals)
                complete = count >= required
                if complete:
                    tx.conn.execute(
                        "UPDATE approval_requests SET status = 'approved', updated_at = ? WHERE id = ? AND status = 'pending'",
                        (now, request_id),
                    )
                    self.audit.notify_approved(tx, request_id)
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
        key = self._require_key()
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
                    "DELETE FROM approval_decisions WHERE request_id = ? AND approver = ?", (request_id, approver)
                )
                self._insert_decision(tx, key, row, approver, "denied", reason, now, policy.hash if policy else None)
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

    def _insert_decision(
        self, tx: _Tx, key: SigningKey, row: Mapping[str, Any], approver: str, decision: str,
        reason: str | None, at: float, policy_hash: str | None,
    ) -> None:
        values = {
            "request_id": row["id"], "approver": approver, "decision": decision, "reason": reason, "at": at,
            "policy_hash": policy_hash,
        }
        tx.conn.execute(
            "INSERT INTO approval_decisions (request_id, approver, decision, reason, at, policy_hash, seal) "
            "VALUES (:request_id, :approver, :decision, :reason, :at, :policy_hash, :seal)",
            {**values, "seal": seal(key, DECISION_SEAL, _decision_payload(values, row["seal"]))},
        )

    # -- running -------------------------------------------------------------------------------------------------

    def claim_for_execution(
        self,
        request_id: str,
        tool: str,
        args_digest: str,
        *,
        policy: Policy,
        site: Mapping[str, Any] | None = None,
        requester: str | None = None,
    ) -> ApprovalRequest:
        """Verify an approved request, then atomically move it to `executing` and return it; one caller wins.

        Verified first, against the store's key and `policy` (the one the server has loaded now): the
        request's seal, each decision's seal, and that enough of the deciders are approvers now. A
        mismatch marks the request `refused` (code `tampered`, or `not_approved` when the seals hold but the
        policy no longer counts enough approvers). `site` (this server's, if given) must be the request's
        site: a request made on another server or site is refused (and left for that server).
        Refused too (ApprovalError + `approval.refused` record): an unknown id, another tool, argument digest
        or requester than approved, and a request that is pending, denied, expired or already claimed.
        """
        self._require_key()
        error: ApprovalError | None = None
        with self.audit.transaction() as tx:
            row = self._row(tx, request_id)
            error = self._claim_error(tx, row, request_id, tool, args_digest, requester, policy, site)
            if error is None:
                tx.conn.execute(
                    "UPDATE approval_requests SET status = 'executing', updated_at = ? WHERE id = ? AND status = 'approved'",
                    (self.clock(), request_id),
                )
                tx.append("approval.executing", approval_id=request_id, tool=tool, args_digest=args_digest)
            else:
                if error.code in ("tampered", "not_approved") and row is not None and row["status"] == "approved":
                    tx.conn.execute(
                        "UPDATE approval_requests SET status = 'refused', result = ?, updated_at = ? WHERE id = ?",
                        (f"Refused before running: {error}", self.clock(), request_id),
                    )
                self._refused(tx, request_id, requester or "server", "claim", error)
        if error is not None:
            raise error
        result = self.get(request_id)
        assert result is not None
        return result

    def _claim_error(
        self, tx: _Tx, row: Mapping[str, Any] | None, request_id: str, tool: str, digest: str,
        requester: str | None, policy: Policy, site: Mapping[str, Any] | None,
    ) -> ApprovalError | None:
        if row is None:
            return ApprovalError("not_found", f"no approval request {request_id}")
        if row["tool"] != tool or row["args_digest"] != digest:
            return ApprovalError(
                "mismatch",
                f"{request_id} approved {row['tool']} with other arguments; this call ({tool}) does not match "
                "what was approved (tool and arguments must be identical)",
            )
        if requester is not None and row["requester"] != requester:
            return ApprovalError("mismatch", f"{request_id} was requested by someone else")
        status_error = self._status_error(tx, row, request_id)
        if status_error is not None:
            return status_error
        check = self._verify(tx.conn, request_id)
        if check.problems:
            return ApprovalError("tampered", f"{request_id} fails verification: {'; '.join(check.problems)}")
        if check.deniers:
            return ApprovalError(
                "tampered", f"{request_id} was denied by {', '.join(check.deniers)}; its status was set back by hand"
            )
        sealed_enough = len(check.valid_approvers) >= int(row["required_approvals"])
        if not sealed_enough:
            # The server sets 'approved' only after enough sealed decisions: this status was set by hand.
            return ApprovalError(
                "tampered",
                f"{request_id} reads approved, but only {len(check.valid_approvers)} of "
                f"{row['required_approvals']} sealed approvals exist",
            )
        if _ran_before(tx, request_id, after_seq=int(row["created_seq"] or 0)):
            # Status is not sealed: an executed request set back to 'approved' has valid seals. The keyed,
            # append-only audit chain remembers that it ran.
            return ApprovalError(
                "tampered", f"{request_id} already ran (the audit log records it); its status was set back by hand"
            )
        counted = [a for a in check.valid_approvers if policy.is_approver(a)]
        required = max(int(row["required_approvals"]), policy.required_approvals)
        if len(counted) < required:
            stale = sorted(set(check.valid_approvers) - set(counted))
            return ApprovalError(
                "not_approved",
                f"{request_id} has {len(counted)} of {required} approvals from approvers under the policy now "
                f"loaded ({', '.join(stale)} {'is' if len(stale) == 1 else 'are'} not an approver under it)",
            )
        if site is not None and json.loads(row["site"] or "null") != dict(site):
            return ApprovalError(
                "other_site",
                f"{request_id} was made on another Tableau server or site "
                f"({_site_label(json.loads(row['site'] or 'null'))}); this server is on {_site_label(site)}",
            )
        return None

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

    def expire_due(self) -> builtins.list[str]:
        """Mark every pending/approved request past its expiry as expired (with records); returns their ids."""
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
        return ids

    # -- internals ------------------------------------------------------------------------------------------------

    def _row(self, tx: _Tx, request_id: str) -> Any:
        return _fetch_request(tx.conn, request_id)

    def _verify(self, conn: Any, request_id: str) -> _Check:
        """Check the seals of a request and its decisions (see _Check). Without a key, everything is suspect."""
        row = _fetch_request(conn, request_id)
        if row is None:
            return _Check(("the request does not exist",), ())
        if self.key is None:
            return _Check(("no signing key to verify the seals with",), ())
        problems: list[str] = []
        broken: set[str] = set()
        deniers: list[str] = []
        if not check_seal(self.key, REQUEST_SEAL, _request_payload(row), row["seal"]):
            problems.append("the request does not match its seal (changed or inserted outside the server)")
        elif args_digest(json.loads(row["arguments"])) != row["args_digest"]:
            problems.append("the arguments do not match their digest")
        approvers: list[str] = []
        for decision in _fetch_decisions(conn, request_id):
            if not check_seal(self.key, DECISION_SEAL, _decision_payload(decision, row["seal"]), decision["seal"]):
                problems.append(
                    f"the {decision['decision']} decision by {decision['approver']} does not match its seal"
                )
                broken.add(decision["approver"])
            elif decision["decision"] == "approved" and decision["approver"] != row["requester"]:
                approvers.append(decision["approver"])
            elif decision["decision"] == "denied":
                deniers.append(decision["approver"])
        return _Check(tuple(problems), tuple(dict.fromkeys(approvers)), frozenset(broken), tuple(deniers))

    def _expire(self, tx: _Tx, request_id: str, now: float) -> None:
        tx.conn.execute(
            "UPDATE approval_requests SET status = 'expired', updated_at = ? WHERE id = ? AND status IN ('pending', 'approved')",
            (now, request_id),
        )
        tx.append("approval.expired", approval_id=request_id)

    def _status_error(self, tx: _Tx, row: Mapping[str, Any], request_id: str) -> ApprovalError | None:
        """Why a request in `row` cannot move on (expiring it on the way), or None if it is approved and live."""
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
        if status == "refused":
            return ApprovalError("used", f"{request_id} was refused before running; ask for a new request")
        if status in ("executing", "executed", "failed"):
            return ApprovalError("used", f"{request_id} was already used ({status}); an approval runs once")
        if status == "pending":
            return ApprovalError("pending", f"{request_id} is still pending approval")
        if status != "approved":
            return ApprovalError("tampered", f"{request_id} has a status the server never sets ({status!r})")
        return None

    def _check_decidable(
        self, tx: _Tx, row: Mapping[str, Any] | None, request_id: str, actor: str, action: str
    ) -> ApprovalError | None:
        if row is None:
            return ApprovalError("not_found", f"no approval request {request_id}")
        error = self._status_error(tx, row, request_id)
        if error is None and row["status"] == "approved":
            return ApprovalError("used", f"{request_id} is already approved; nothing left to {action}")
        if error is not None and error.code != "pending":
            return error
        problems = self._verify(tx.conn, request_id).problems
        if problems:
            return ApprovalError("tampered", f"{request_id} fails verification: {'; '.join(problems)}")
        return None

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
        row = _fetch_request(conn, request_id)
        if row is None:
            return None
        check = self._verify(conn, request_id) if self.key is not None else _Check((), ())
        decisions = tuple(
            ApprovalDecision(
                d["approver"], d["decision"], d["reason"], _dt(d["at"]), d["approver"] not in check.broken_deciders
            )
            for d in _fetch_decisions(conn, request_id)
        )
        status = row["status"]
        if status in ("pending", "approved") and row["expires_at"] <= self.clock():
            status = "expired"
        return ApprovalRequest(
            id=row["id"],
            tool=row["tool"],
            arguments=json.loads(row["arguments"]),
            args_digest=row["args_digest"],
            requester=row["requester"],
            preview=row["preview"],
            status=status,
            created_at=_dt(row["created_at"]),
            expires_at=_dt(row["expires_at"]),
            updated_at=_dt(row["updated_at"]),
            required_approvals=row["required_approvals"],
            decisions=decisions,
            call_id=row["call_id"],
            policy_hash=row["policy_hash"],
            result=row["result"],
            targets=tuple(_json_or(row["targets"], [])),
            site=_json_or(row["site"], None),
            integrity=check.problems,
        )


def _ran_before(tx: _Tx, request_id: str, after_seq: int) -> bool:
    """Whether the audit log holds an `approval.executing` record for this request. The log is what write
    access to the approval tables cannot roll back; only the records since the request's (sealed)
    `approval.created` are read, so the cost is bounded by what the server logged within the request's ttl."""
    return bool(
        tx.conn.execute(
            "SELECT 1 FROM audit_log WHERE seq > ? AND instr(body, ?) > 0 AND instr(body, ?) > 0 LIMIT 1",
            (
                after_seq,
                '"kind":"approval.executing"',
                json.dumps({"approval_id": request_id}, separators=(",", ":"))[1:-1],
            ),
        ).fetchone()
    )


def _audit_key(audit: AuditLog) -> SigningKey | None:
    """The audit log's signing key, or None when it has none (it raises then: a keyless store is read-only)."""
    try:
        return getattr(audit, "key", None)
    except (AttributeError, RuntimeError):
        return None


def _fetch_request(conn: Any, request_id: str) -> dict[str, Any] | None:
    cur = conn.execute(f"SELECT {_REQUEST_COLUMNS} FROM approval_requests WHERE id = ?", (request_id,))
    row = cur.fetchone()
    return None if row is None else dict(zip([c[0] for c in cur.description], row))


def _fetch_decisions(conn: Any, request_id: str) -> builtins.list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT request_id, approver, decision, reason, at, policy_hash, seal FROM approval_decisions "
        "WHERE request_id = ? ORDER BY at, approver",
        (request_id,),
    )
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _json_or(text: str | None, default: Any) -> Any:
    """A stored JSON column; a value that is not JSON reads as `default` (its seal no longer holds anyway)."""
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def _site_label(site: Mapping[str, Any] | None) -> str:
    if not site:
        return "an unknown site"
    return f"site '{site.get('content_url') or 'Default'}' (id {site.get('site_id')}) at {site.get('server_url')}"


def _sqlite_approvals_schema(conn: sqlite3.Connection) -> None:
    """Create the tables, or bring a store made before the seals up to date (idempotent)."""
    for statement in _SCHEMA.split(";\n"):
        if statement.strip():
            conn.execute(statement)
    for table, columns in _ADDED_COLUMNS.items():
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        for name, decl in columns.items():
            if name not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


def _postgres_approvals_schema(conn: Any) -> None:
    """The same tables in PostgreSQL types (timestamps as double precision: REAL is 4 bytes there)."""
    from server.governance.audit_pg import postgres_ddl

    added = {t: ", ".join(f"ADD COLUMN {n} {d}" for n, d in cols.items()) for t, cols in _ADDED_COLUMNS.items()}
    for statement in _SCHEMA.split(";\n"):
        if statement.strip():
            conn.execute(postgres_ddl(statement))
    for table, clause in added.items():
        conn.execute(f"ALTER TABLE {table} {clause}")


APPROVAL_MIGRATIONS: Mapping[str, tuple[Migration, ...]] = {
    "sqlite": (Migration(100, "approval requests and sealed decisions", _sqlite_approvals_schema),),
    "postgresql": (Migration(100, "approval requests and sealed decisions", _postgres_approvals_schema),),
}


@contextmanager
def _reading(audit: AuditLog) -> Iterator[None]:
    try:
        yield
    except audit.db_errors as exc:
        audit._lost_connection()
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
