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

With --postgres the same runs also go to a throwaway local PostgreSQL cluster (fsync on, Unix socket, a
fresh database per run; tests/postgres_cluster.py), with synchronous_commit on (FULL) and off (NORMAL).
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
from typing import Any

from server.governance.audit import AuditLog, is_database_url

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


def _fresh(directory: Path | Any, name: str, synchronous: str) -> AuditLog:
    """A new, empty store: a SQLite file in `directory`, or a new database when it is a PostgreSQL cluster."""
    if not isinstance(directory, Path):
        return AuditLog.open(directory.new_database(), synchronous=synchronous)
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
    log = AuditLog.open(path if is_database_url(path) else Path(path), synchronous=synchronous)
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
        ctx.Process(target=_process_worker, args=(getattr(log, "url", str(log.path)), synchronous, per, f"p{k}-", start))
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


def run(directory: Path, records: int, pairs: int, settle: float = 1.0, postgres: Any = None) -> dict[str, object]:
    """Every measurement per store and mode; keys are `<measure>_<mode>` for SQLite, `pg_<measure>_<mode>`
    for PostgreSQL (the backends alternate mode by mode, so both see the same machine load)."""
    results: dict[str, object] = {}
    stores = [("", directory)] + ([("pg_", postgres)] if postgres is not None else [])
    for mode in ("full", "normal"):
        for prefix, store in stores:
            results[f"{prefix}single_{mode}"] = single_thread(store, mode, records)
            results[f"{prefix}threads_{mode}"] = threads(store, mode, records)
            results[f"{prefix}procs_{mode}"] = processes(store, mode, records, settle=settle)
            results[f"{prefix}pair_{mode}"] = pair_cost(store, mode, pairs)
    for prefix, store in stores:
        results[f"{prefix}verify"] = verify_rate(store, 5 * records)
    return results


def markdown(results: dict[str, object], records: int, pairs: int, directory: Path) -> str:
    def rate(key: str) -> str:
        return f"{results[key]:,.0f}"

    def pair(key: str) -> str:
        median, p95 = results[key]  # type: ignore[misc]
        return f"{median:,.0f} µs (p95 {p95:,.0f} µs)"

    pg = "pg_verify" in results
    postgres_version = results.get("pg_version", "")

    def row(label: str, key: str, cell: Any) -> str:
        cells = [cell(f"{key}_full"), cell(f"{key}_normal")]
        if pg:
            cells += [cell(f"pg_{key}_full"), cell(f"pg_{key}_normal")]
        return f"| {label} | " + " | ".join(cells) + " |"

    header = "| | SQLite synchronous=FULL (default: fsync per record) | SQLite synchronous=NORMAL |"
    if pg:
        header += " PostgreSQL synchronous_commit=on (FULL) | PostgreSQL synchronous_commit=off (NORMAL) |"
    flag = " --postgres" if pg else ""

    return "\n".join(
        [
            SECTION_START,
            "## Audit log throughput (`bench/audit_throughput.py`)",
            "",
            (
                f"Command: `.venv/bin/python -m bench.audit_throughput --records {records} --pairs {pairs}{flag}"
                " --update BENCHMARKS.md`"
            ),
            "",
            (
                f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
                f"store in `{directory}` ({time.strftime('%Y-%m-%d')}). One transaction per record (BEGIN IMMEDIATE), "
                "WAL mode; the chain is verified after every run."
                + (f" PostgreSQL {postgres_version}: a local cluster on the same disk, fsync on, reached over a Unix "
                   "socket; each record one transaction under the store's advisory lock." if pg else "")
            ),
            "",
            header,
            "|---|---|---|" + ("---|---|" if pg else ""),
            row("1 thread, records/s", "single", rate),
            row("4 threads, one process, records/s", "threads", rate),
            row("2 processes, records/s", "procs", rate),
            row("one intent+outcome pair, median (the audit part of a call's governance overhead)", "pair", pair),
            "",
            f"`verify()` walks {rate('verify')} records/s on SQLite"
            + (f", {rate('pg_verify')} on PostgreSQL." if pg else "."),
            "",
            (
                "Reading: appends are serialised by design (threads share one connection behind a lock, processes "
                "take SQLite's write lock with BEGIN IMMEDIATE, so the chain never forks); more writers add contention, "
                "not throughput. With FULL each record costs one fsync and a tool call writes two (intent before, "
                "outcome after). NORMAL drops the fsync from the commit (the WAL is synced at checkpoints): a process "
                "crash loses nothing, a power cut may lose the last commits. Choose with `audit.synchronous` in the "
                "policy; the shipped default is `full`."
                + (" PostgreSQL serialises appends the same way (an advisory lock held to commit, across every "
                   "replica), and each record adds client-server round trips to the fsync, so one embedded SQLite "
                   "store is faster on one machine: choose PostgreSQL to share one store between replicas, not for "
                   "speed. `synchronous: normal` maps to `synchronous_commit = off` there (a crash of the database "
                   "may lose the last commits, never corrupt the chain)." if pg else "")
            ),
            SECTION_END,
            "",
        ]
    )


def update(path: Path, section: str, start: str = SECTION_START, end: str = SECTION_END) -> None:
    """Replace a benchmark's section (between `start` and `end`) in `path`, or append it; other sections
    are left untouched."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
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


@contextmanager
def _postgres(wanted: bool) -> Iterator[Any]:
    if not wanted:
        yield None
        return
    from tests.postgres_cluster import running_cluster

    with running_cluster(durable=True) as cluster:
        yield cluster


def _server_version(cluster: Any) -> str:
    import psycopg

    with psycopg.connect(cluster.url()) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]


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
    parser.add_argument(
        "--postgres", action="store_true", help="also measure a throwaway local PostgreSQL cluster (fsync on)"
    )
    args, _unknown = parser.parse_known_args(argv)  # `python -m bench` passes everyone's options to everyone
    with tempfile.TemporaryDirectory(prefix="steward-audit-bench-") as tmp, _throwaway_key():
        directory = Path(args.dir) if args.dir else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        with _postgres(args.postgres) as cluster:
            results = run(directory, args.records, args.pairs, settle=args.settle, postgres=cluster)
            if cluster is not None:
                results["pg_version"] = _server_version(cluster)
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
