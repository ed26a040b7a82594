"""Benchmark: what verifying an approved request costs when the server claims it to run.

    .venv/bin/python -m bench.approval_claim [--window 0,10000,100000] [--requests 5]

`claim_for_execution` checks the request's and the decisions' HMAC seals, the approvers against the policy,
and reads the audit log since the request's `approval.created` record for an earlier `approval.executing`
of it (a status rolled back by hand). The last is the only part that grows: with the log's records between
the request's creation and its claim (the "window", bounded by the request's ttl). Each row is the median
and worst of `--requests` claims after that many records were appended, in a fresh store (synchronous=normal).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from server.governance.approvals import ApprovalStore
from server.governance.audit import AuditLog
from server.governance.keys import SigningKey
from server.governance.policy import parse_policy

POLICY = """\
version: 1
mode: read-write
roles: {analyst: {}, approver: {}}
local: {principal: alice, roles: [analyst]}
principals: {bob: {roles: [approver]}}
rules:
  - {id: gated, tools: ["@write"], roles: [analyst], effect: require_approval}
approvals: {approvers: {roles: [approver]}}
"""


def claim_times(window: int, requests: int) -> list[float]:
    policy = parse_policy(POLICY)
    key = SigningKey(bytes(range(32)), "bench")
    with tempfile.TemporaryDirectory() as directory:
        log = AuditLog.open(Path(directory) / "audit.sqlite", key=key, synchronous="normal")
        try:
            store = ApprovalStore(log, key=key)
            made = [
                store.create("add_user_to_group", {"user": "sam", "group": "Sales", "n": i}, "alice", "p", 3600)
                for i in range(requests)
            ]
            with log.transaction() as tx:
                for i in range(window):
                    tx.append("tableau_request", method="GET", path=f"/api/3.24/sites/s/workbooks?pageNumber={i}",
                              status=200, duration_ms=12.5, attempt=1, call_id=f"call_{i:08x}")
            times = []
            for request in made:
                store.approve(request.id, "bob", None, policy)
                started = time.perf_counter()
                store.claim_for_execution(request.id, request.tool, request.args_digest, policy=policy)
                times.append(time.perf_counter() - started)
        finally:
            log.close()
    return sorted(times)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.approval_claim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", default="0,10000,100000", help="audit records between creation and claim")
    parser.add_argument("--requests", type=int, default=5, help="claims measured per window (default 5)")
    args, _unknown = parser.parse_known_args(argv)
    for window in (int(w) for w in args.window.split(",")):
        times = claim_times(window, args.requests)
        print(f"{window:>7} audit records since creation: claim median {times[len(times) // 2] * 1000:.1f} ms, "
              f"worst {times[-1] * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
