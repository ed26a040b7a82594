"""Benchmark: what keying the audit chain costs, against the unkeyed audit.py of an earlier revision, in one run.

    git show e52a0a7:server/governance/audit.py > /tmp/unkeyed_audit.py
    .venv/bin/python -m bench.audit_keyed_cost --old /tmp/unkeyed_audit.py [--rounds 3]

Appends records one transaction at a time (as the server does) with both modules, rounds interleaved so
both see the same machine, then verifies each chain; prints medians of appends/s and verified records/s
for synchronous=normal and full. Not in `python -m bench` (it needs the old file).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from server.governance import audit as keyed

ARGS = {"kind": "workbook", "target": "Sales Pipeline", "project": "Sales/EMEA", "incremental": False}
COUNTS = {"normal": 1000, "full": 300}


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("unkeyed_audit", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["unkeyed_audit"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _run(module: ModuleType, path: Path, count: int, synchronous: str) -> tuple[float, float]:
    log = module.AuditLog.open(path, synchronous=synchronous)
    started = time.perf_counter()
    for i in range(count):
        log.record_intent(call_id=f"c{i}", principal="p", tool="refresh_and_wait", arguments=ARGS, policy_hash="0" * 64)
    appending = time.perf_counter() - started
    started = time.perf_counter()
    result = log.verify()
    verifying = time.perf_counter() - started
    log.close()
    if not result.ok:
        raise SystemExit(f"{path}: {result.reason}")
    return count / appending, count / verifying


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.audit_keyed_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the unkeyed audit.py (git show REV:server/governance/audit.py)")
    parser.add_argument("--rounds", type=int, default=3)
    args, _unknown = parser.parse_known_args(argv)
    unkeyed = _load(Path(args.old))
    os.environ.setdefault("STEWARD_SIGNING_KEY", secrets.token_hex(32))  # a throw-away key for this process
    print("| | unkeyed appends/s | keyed appends/s | unkeyed verify records/s | keyed verify records/s |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="steward-keyed-bench-") as tmp:
        for synchronous, count in COUNTS.items():
            runs: dict[str, list[tuple[float, float]]] = {"unkeyed": [], "keyed": []}
            for round_ in range(args.rounds):
                for label, module in (("unkeyed", unkeyed), ("keyed", keyed)):
                    path = Path(tmp) / f"{label}-{synchronous}-{round_}.sqlite"
                    runs[label].append(_run(module, path, count, synchronous))
            cells = [
                f"{statistics.median(r[i] for r in runs[label]):,.0f}" for i in (0, 1) for label in ("unkeyed", "keyed")
            ]
            print(f"| synchronous={synchronous}, {count} records | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
