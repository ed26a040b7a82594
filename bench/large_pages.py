"""Pages on the large site: list_content, list_jobs and find_owners at 50 ms latency, shipped settings.

    .venv/bin/python -m bench large_pages [--runs 5] [--latency-ms 50]
    .venv/bin/python -m bench large_pages [same options]

The large site (20,000 workbooks, ~70,000 views, 1,000 projects, 10,000 users) is served by an
emulator in a child process with `--latency-ms` injected per request. One governed server with the
shipped settings (`Settings` defaults: 4 requests in flight, a sliding budget of 40,000 calls per
hour, no per-second bucket, cache_ttl 60 s) is reached through an in-process `mcp.Client`.

Each case runs `--runs` times; the table gives the median wall time, the API requests per call
(from the emulator's log, sign-in excluded), the floor ⌈requests ÷ concurrency⌉ × latency and the
ratio of wall to floor, and where the time went: CPU of this process (MCP client and server, TSC,
parsing) and of the emulator process, and the time requests waited in the client-side rate limiter.
*warm*: the project listing cached (as within a conversation); *cold*: every cache cleared first.
The cursor cases pass the `next_cursor` of the case above them.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from . import command, machine_note, markdown_table, median
from .tool_latency import (
    PATS,
    _api_entries,
    _breakdown,
    _call,
    _governed,
    _process_cpu,
    _write_policy,
    large_emulator,
)


@dataclass
class Case:
    label: str
    tool: str
    args: Callable[[dict[str, Any]], dict[str, Any]]  # from the previous case's result
    cold: bool = False
    latency_ms: float | None = None  # None: the run's --latency-ms


@dataclass
class Row:
    case: Case
    args: dict[str, Any]
    times: list[float]
    requests: int
    breakdown: str
    client_cpu: list[float]
    emulator_cpu: list[float]
    limiter_wait: list[float]
    items: int
    total: int | None


def _fixed(args: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda _previous: dict(args)


def _cursor(args: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda previous: {**args, "cursor": previous["next_cursor"]}


def cases(subtree: str) -> list[Case]:
    views = {"kind": "view", "sort_by": "total_views", "descending": True}
    return [
        Case("list_content, first page of workbooks, cold", "list_content", _fixed({}), cold=True),
        Case("list_content, first page of workbooks, warm", "list_content", _fixed({})),
        Case("list_content, cursor page of workbooks", "list_content", _cursor({})),
        Case("list_content, views by usage, first page", "list_content", _fixed(views)),
        Case("list_content, views by usage, cursor page", "list_content", _cursor(views)),
        Case(f"list_content, project subtree '{subtree}', first page", "list_content", _fixed({"project": subtree})),
        Case(f"list_content, project subtree '{subtree}', cursor page", "list_content", _cursor({"project": subtree})),
        Case("list_jobs, first page", "list_jobs", _fixed({})),
        Case("list_jobs, cursor page", "list_jobs", _cursor({})),
        Case('find_owners `{"kind": "workbook"}`, cold', "find_owners", _fixed({"kind": "workbook"}), cold=True),
        Case("find_owners `{}` (all kinds), cold", "find_owners", _fixed({}), cold=True),
        Case('find_owners `{"kind": "workbook"}`, cold, **0 ms** latency', "find_owners", _fixed({"kind": "workbook"}),
             cold=True, latency_ms=0.0),
    ]


async def _largest_subtree(tableau: Any) -> str:
    """The top-level project with the most projects below it (its names recur across the site)."""
    tree = await tableau.project_tree()
    tops = [node for node in tree.nodes.values() if node.parent_id is None]
    return max(tops, key=lambda top: sum(1 for n in tree.nodes.values() if n.path.startswith(top.path + "/"))).path


async def run(args: argparse.Namespace, workdir: Path, emulator: tuple[str, str, Any, float, int]) -> list[Row]:
    url, site, control, _startup, pid = emulator
    rows: list[Row] = []
    async with _governed(url, site, _write_policy(workdir / "large-pages"), PATS[0]) as (services, client):
        tableau = services.tableau
        transport = tableau._transport  # the bench reads how long requests waited in the rate limiter
        waits: list[float] = []
        for limiter in (transport.budget, transport.bucket):
            acquire = limiter.acquire
            limiter.acquire = lambda acquire=acquire: waits.append(acquire()) or waits[-1]  # type: ignore[method-assign]
        subtree = await _largest_subtree(tableau)
        previous: dict[str, Any] = {}
        for case in cases(subtree):
            times, client_cpu, emulator_cpu, limiter_wait = [], [], [], []
            call_args = case.args(previous)
            control.set_latency(args.latency_ms if case.latency_ms is None else case.latency_ms)
            entries: list[Any] = []
            body: dict[str, Any] = {}
            await _call(client, case.tool, call_args)  # warms the caches a warm case relies on
            for _ in range(args.runs):
                if case.cold:
                    tableau.invalidate_caches()
                control.reset_request_log()
                waits.clear()
                cpu, emu_cpu, began = time.process_time(), _process_cpu(pid), time.perf_counter()
                reply = await _call(client, case.tool, call_args)
                times.append(time.perf_counter() - began)
                client_cpu.append(time.process_time() - cpu)
                emulator_cpu.append(_process_cpu(pid) - emu_cpu)
                limiter_wait.append(sum(waits))
                entries = _api_entries(control)
                body = reply.structured_content
            listed = body.get("items", body.get("jobs", body.get("owners", [])))
            total = body.get("total", body.get("total_owners"))
            rows.append(
                Row(case, call_args, times, len(entries), _breakdown(entries, 1), client_cpu, emulator_cpu,
                    limiter_wait, len(listed), total)
            )
            previous = body
            print(f"  {case.label}: {[round(t, 3) for t in times]} ({len(entries)} requests)", file=sys.stderr,
                  flush=True)
    return rows


def report(args: argparse.Namespace, argv: list[str], rows: list[Row], concurrency: int) -> str:
    latency = args.latency_ms
    table = []
    for row in rows:
        wall = median(row.times) * 1000
        ms = latency if row.case.latency_ms is None else row.case.latency_ms
        floor = math.ceil(row.requests / concurrency) * ms
        ratio = f"{wall / floor:.2f}×" if floor else "–"
        table.append(
            [
                row.case.label,
                row.requests,
                row.breakdown or "–",
                f"{wall:.0f}",
                f"{floor:.0f}",
                ratio,
                f"{median(row.client_cpu) * 1000:.0f}",
                f"{median(row.emulator_cpu) * 1000:.0f}",
                f"{median(row.limiter_wait) * 1000:.0f}",
                f"{row.items} of {row.total}",
            ]
        )
    headers = [
        "case",
        "requests",
        "requests by endpoint",
        "wall ms (median)",
        f"floor ⌈req ÷ {concurrency}⌉ × {latency:g} ms",
        "wall ÷ floor",
        "client CPU ms",
        "emulator CPU ms",
        "rate-limiter wait ms",
        "items shown of total",
    ]
    return "\n\n".join(
        [
            "## Pages on the large site (list_content, list_jobs, find_owners)",
            f"Command: `{command('large_pages', argv)}`",
            machine_note(),
            (
                f"Large site, {latency:g} ms injected latency per request, shipped settings (4 in flight, 40,000 "
                f"calls per sliding hour, no per-second bucket), {args.runs} runs per case, median."
            ),
            markdown_table(headers, table),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    from server.config import Settings

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench large_pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=50)
    args, unknown = parser.parse_known_args(argv)
    mine = [a for a in argv if a not in unknown]
    for name in ("TSC", "server", "mcp", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-large-pages-") as tmp, large_emulator(args.latency_ms) as emulator:
        rows = anyio.run(run, args, Path(tmp), emulator)
    concurrency = Settings.model_fields["concurrency"].default
    print(report(args, mine, rows, concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
