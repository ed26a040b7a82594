"""Benchmark: from an approval to another replica claiming the request, woken by NOTIFY or by polling.

    .venv/bin/python -m bench.approval_wakeup [--rounds 10] [--update BENCHMARKS.md]

A throwaway local PostgreSQL cluster (fsync on) holds the store. One "replica" is a thread with its own
connection running the server's runner loop: claim every approved request, then wait for the next
wake-up, either `ApprovalWakeups.wait(1 s)` (LISTEN/NOTIFY, what PostgreSQL replicas do) or a plain 1 s
sleep (the poll, what SQLite stores do). The approver approves from a second connection at a random
moment within the poll interval; the latency is from the approval's commit to the runner's claim commit.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

from bench.audit_throughput import update
from server.governance.approvals import ApprovalStore
from server.governance.audit import AuditLog
from server.governance.audit_pg import ApprovalWakeups
from server.governance.keys import SigningKey
from server.governance.policy import parse_policy
from server.pipeline import APPROVAL_POLL_SECONDS

SECTION_START = "<!-- bench.approval_wakeup:start -->"
SECTION_END = "<!-- bench.approval_wakeup:end -->"
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
KEY = SigningKey(bytes(range(32)), "bench")


def _runner(url: str, notify: bool, claimed: dict[str, float], stop: threading.Event) -> None:
    """The pipeline's loop, on its own connection: claim what is approved, then wait for a wake-up."""
    policy = parse_policy(POLICY)
    store = ApprovalStore(AuditLog.open(url, key=KEY, synchronous="full"))
    wakeups = ApprovalWakeups(url) if notify else None
    if wakeups is not None:
        wakeups.connected.wait(10)
    try:
        while not stop.is_set():
            for request in store.list("approved"):
                store.claim_for_execution(request.id, request.tool, request.args_digest, policy=policy)
                claimed[request.id] = time.perf_counter()
            if wakeups is not None:
                wakeups.wait(APPROVAL_POLL_SECONDS)
            else:
                stop.wait(APPROVAL_POLL_SECONDS)
    finally:
        if wakeups is not None:
            wakeups.close()
        store.audit.close()


def latencies(url: str, notify: bool, rounds: int) -> list[float]:
    policy = parse_policy(POLICY)
    approver = ApprovalStore(AuditLog.open(url, key=KEY, synchronous="full"))
    claimed: dict[str, float] = {}
    stop = threading.Event()
    thread = threading.Thread(target=_runner, args=(url, notify, claimed, stop), daemon=True)
    thread.start()
    time.sleep(0.5)  # the runner connects and listens
    samples = []
    try:
        for i in range(rounds):
            request = approver.create("add_user_to_group", {"user": f"u{i}", "group": "g"}, "alice", "add", 3600)
            time.sleep(random.uniform(0, APPROVAL_POLL_SECONDS))  # anywhere in the runner's cycle
            approver.approve(request.id, "bob", None, policy)
            approved = time.perf_counter()
            deadline = approved + 10 * APPROVAL_POLL_SECONDS
            while request.id not in claimed and time.perf_counter() < deadline:
                time.sleep(0.001)
            if request.id not in claimed:
                raise SystemExit(f"{request.id} was not claimed within {10 * APPROVAL_POLL_SECONDS:.0f} s")
            samples.append((claimed[request.id] - approved) * 1000)
    finally:
        stop.set()
        thread.join(10)
        approver.audit.close()
    return samples


def markdown(results: dict[str, list[float]], rounds: int) -> str:
    def cell(samples: list[float]) -> str:
        ordered = sorted(samples)
        return f"{statistics.median(ordered):,.1f} ms (worst {ordered[-1]:,.1f} ms)"

    return "\n".join([
        SECTION_START,
        "## Approval to execution across replicas (`bench/approval_wakeup.py`)",
        "",
        f"Command: `.venv/bin/python -m bench.approval_wakeup --rounds {rounds} --update BENCHMARKS.md`",
        "",
        (f"Machine: {os.cpu_count()} CPUs ({time.strftime('%Y-%m-%d')}). A local PostgreSQL cluster (fsync on); "
        "the approver and the replica's runner each have their own connection; the approval lands at a random "
        f"moment of the runner's {APPROVAL_POLL_SECONDS:g} s cycle; {rounds} approvals per row, median and worst "
        "from the approval's commit to the claim's commit (the moment the change starts running)."),
        "",
        "| the runner waits for | approval → claim |",
        "|---|---|",
        f"| LISTEN/NOTIFY (PostgreSQL replicas) | {cell(results['notify'])} |",
        (f"| the {APPROVAL_POLL_SECONDS:g} s poll (SQLite, or NOTIFY missed while the store was away) "
        f"| {cell(results['poll'])} |"),
        "",
        ("Reading: with NOTIFY a replica starts an approved change within tens of milliseconds, whichever replica "
        "the approver used; the poll averages half its interval. The poll stays as the fallback."),
        SECTION_END,
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.approval_wakeup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="approvals per row (default 10)")
    parser.add_argument("--update", metavar="FILE", help="write the results into this markdown file's section")
    args, _unknown = parser.parse_known_args(argv)
    from tests.postgres_cluster import running_cluster

    with running_cluster(durable=True) as cluster:
        results: dict[str, list[float]] = {"notify": [], "poll": []}
        for notify in (True, False):
            results["notify" if notify else "poll"] = latencies(cluster.new_database(), notify, args.rounds)
    section = markdown(results, args.rounds)
    print(section)
    if args.update:
        update(Path(args.update), section, SECTION_START, SECTION_END)
        print(f"updated {args.update}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
