"""Benchmark: audit-log throughput with durable writes, and the cost of one intent+outcome pair.

    .venv/bin/python -m bench.audit_throughput [--records 2000] [--pairs 500] [--dir DIR] [--update BENCHMARKS.md]

Measures, for synchronous=FULL (every commit fsyncs the WAL: survives power loss) and synchronous=NORMAL
(WAL fsynced at checkpoints only: survives a process crash, may lose the last commits on power loss):

1. records/s appended by one thread (one transaction per record, as the server does);
2. records/s with 4 threads sharing the process's AuditLog (one connection, a lock);
3. records/s with 2 processes appending to the same store (BEGIN IMMEDIATE serialises them);
4. the cost of one `record_intent` + `record_outcome` pair: median and p95 in microseconds;
5. how fast `verify()` walks the chain (records/s).

Every run starts from a fresh store in --dir (default: a temporary directory on the same disk as /tmp),
and the chain is verified after each run. The numbers depend on the disk's fsync latency.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import secrets
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from server.governance.audit import AuditLog

SECTION_START = "<!-- bench.audit_throughput:start -->"
SECTION_END = "<!-- bench.audit_throughput:end -->"
ARGS = {"kind": "workbook", "target": "Sales Pipeline", "project": "Sales/EMEA", "incremental": False}


def _intent(log: AuditLog, i: int, tag: str = "t") -> None:
    log.record_intent(
        call_id=f"call_{tag}{i}",
        principal="local-user",
        tool="refresh_and_wait",
        arguments=ARGS,
        decision="allow",
        rule="reads",
        policy_hash="0" * 64,
    )


def _fresh(directory: Path, name: str, synchronous: str) -> AuditLog:
    path = directory / f"{name}-{synchronous}.sqlite"
    for p in directory.glob(path.name + "*"):
        p.unlink()
    return AuditLog.open(path, synchronous=synchronous)


def _checked(log: AuditLog, expected: int) -> None:
    result = log.verify()
    if not result.ok or result.checked != expected:
        raise SystemExit(f"chain broken after the run: {result}")


def single_thread(directory: Path, synchronous: str, n: int) -> float:
    log = _fresh(directory, "single", synchronous)
    started = time.perf_counter()
    for i in range(n):
        _intent(log, i)
    elapsed = time.perf_counter() - started
    _checked(log, n)
    log.close()
    return n / elapsed


def threads(directory: Path, synchronous: str, n: int, count: int = 4) -> float:
    log = _fresh(directory, "threads", synchronous)
    per = n // count

    def work(tag: str) -> None:
        for i in range(per):
            _intent(log, i, tag)

    workers = [threading.Thread(target=work, args=(f"t{k}-",)) for k in range(count)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    _checked(log, per * count)
    log.close()
    return per * count / elapsed


def _process_worker(path: str, synchronous: str, per: int, tag: str, start: object) -> None:
    log = AuditLog.open(Path(path), synchronous=synchronous)
    start.wait(60)  # type: ignore[attr-defined]
    for i in range(per):
        _intent(log, i, tag)
    log.close()


def processes(directory: Path, synchronous: str, n: int, count: int = 2, settle: float = 1.0) -> float:
    log = _fresh(directory, "procs", synchronous)
    per = n // count
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_process_worker, args=(str(log.path), synchronous, per, f"p{k}-", start))
        for k in range(count)
    ]
    for p in procs:
        p.start()
    time.sleep(settle)  # let the children import and open the store before the clock starts
    started = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    _checked(log, per * count)
    log.close()
    return per * count / elapsed


def pair_cost(directory: Path, synchronous: str, pairs: int) -> tuple[float, float]:
    log = _fresh(directory, "pairs", synchronous)
    samples = []
    for i in range(pairs):
        started = time.perf_counter()
        _intent(log, i)
        log.record_outcome(
            call_id=f"call_t{i}", tool="refresh_and_wait", status="ok", duration_ms=12.5, summary="ok"
        )
        samples.append((time.perf_counter() - started) * 1e6)
    _checked(log, 2 * pairs)
    log.close()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def verify_rate(directory: Path, n: int) -> float:
    log = _fresh(directory, "verify", "normal")
    for i in range(n):
        _intent(log, i)
    started = time.perf_counter()
    result = log.verify()
    elapsed = time.perf_counter() - started
    assert result.ok and result.checked == n
    log.close()
    return n / elapsed


def run(directory: Path, records: int, pairs: int, settle: float = 1.0) -> dict[str, object]:
    results: dict[str, object] = {}
    for mode in ("full", "normal"):
        results[f"single_{mode}"] = single_thread(directory, mode, records)
        results[f"threads_{mode}"] = threads(directory, mode, records)
        results[f"procs_{mode}"] = processes(directory, mode, records, settle=settle)
        results[f"pair_{mode}"] = pair_cost(directory, mode, pairs)
    results["verify"] = verify_rate(directory, 5 * records)
    return results


def markdown(results: dict[str, object], records: int, pairs: int, directory: Path) -> str:
    def rate(key: str) -> str:
        return f"{results[key]:,.0f}"

    def pair(key: str) -> str:
        median, p95 = results[key]  # type: ignore[misc]
        return f"{median:,.0f} µs (p95 {p95:,.0f} µs)"

    return "\n".join(
        [
            SECTION_START,
            "## Audit log throughput (`bench/audit_throughput.py`)",
            "",
            (
                f"Command: `.venv/bin/python -m bench.audit_throughput --records {records} --pairs {pairs}"
                " --update BENCHMARKS.md`"
            ),
            "",
            (
                f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
                f"store in `{directory}` ({time.strftime('%Y-%m-%d')}). One transaction per record (BEGIN IMMEDIATE), "
                "WAL mode; the chain is verified after every run."
            ),
            "",
            "| | synchronous=FULL (default: fsync per record) | synchronous=NORMAL |",
            "|---|---|---|",
            f"| 1 thread, records/s | {rate('single_full')} | {rate('single_normal')} |",
            f"| 4 threads, one process, records/s | {rate('threads_full')} | {rate('threads_normal')} |",
            f"| 2 processes, records/s | {rate('procs_full')} | {rate('procs_normal')} |",
            f"| one intent+outcome pair, median | {pair('pair_full')} | {pair('pair_normal')} |",
            "",
            f"`verify()` walks {rate('verify')} records/s.",
            "",
            (
                "Reading: appends are serialised by design (threads share one connection behind a lock, processes "
                "take SQLite's write lock with BEGIN IMMEDIATE, so the chain never forks); more writers add contention, "
                "not throughput. With FULL each record costs one fsync and a tool call writes two (intent before, "
                "outcome after). NORMAL drops the fsync from the commit (the WAL is synced at checkpoints): a process "
                "crash loses nothing, a power cut may lose the last commits. Choose with `audit.synchronous` in the "
                "policy; the shipped default is `full`."
            ),
            SECTION_END,
            "",
        ]
    )


def update(path: Path, section: str) -> None:
    """Replace this benchmark's section in `path`, or append it; other sections are left untouched."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if SECTION_START in text and SECTION_END in text:
        head, rest = text.split(SECTION_START, 1)
        tail = rest.split(SECTION_END, 1)[1].lstrip("\n")
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


@contextmanager
def _throwaway_key() -> Iterator[None]:
    """A random signing key for the keyed chain (child processes inherit it), unless one is configured:
    the benchmark never creates the real key file."""
    if os.environ.get("STEWARD_SIGNING_KEY") or os.environ.get("STEWARD_SIGNING_KEY_FILE"):
        yield
        return
    os.environ["STEWARD_SIGNING_KEY"] = secrets.token_hex(32)
    try:
        yield
    finally:
        os.environ.pop("STEWARD_SIGNING_KEY", None)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m bench.audit_throughput", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--records", type=int, default=2000, help="records per throughput run (default 2000)")
    parser.add_argument("--pairs", type=int, default=500, help="intent+outcome pairs timed (default 500)")
    parser.add_argument("--dir", help="where the stores are created (default: a temporary directory)")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds child processes get to start (1.0)"
    )
    parser.add_argument(
        "--update", metavar="FILE", help="write the results into this markdown file's section"
    )
    args, _unknown = parser.parse_known_args(argv)  # `python -m bench` passes everyone's options to everyone
    with tempfile.TemporaryDirectory(prefix="steward-audit-bench-") as tmp, _throwaway_key():
        directory = Path(args.dir) if args.dir else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        results = run(directory, args.records, args.pairs, settle=args.settle)
    section = markdown(
        results, args.records, args.pairs, directory if args.dir else Path(tempfile.gettempdir())
    )
    print(section)
    if args.update:
        update(Path(args.update), section)
        print(f"updated {args.update}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
