"""Benchmark: how soon approved work starts, and what get_request costs while a refresh runs.

    .venv/bin/python -m bench.approval_wake [--requests 8] [--reads 30] [--job-speed 2]

1. Approval to execution start. Each of `--requests` add_user_to_group requests is approved through
   `Governance.decide_request` in a worker thread (what the admin API, the console and Slack call), and the
   clock stops when the server's runner claims it (execution starts). Two modes in one run: the in-process
   wake-up (the decision sets the runner's event) and the poll alone (WAKE_ON_DECISION off: what a second
   replica sharing the store sees, every APPROVAL_POLL_SECONDS).
2. get_request latency while an approved refresh runs: once the refresh is executing (its job in progress on
   the emulator, slowed by `--job-speed`), `--reads` get_request calls through a real mcp.Client.

The emulator runs in its own process (EmulatorProcess), on the demo site.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from . import command, machine_note, markdown_table, median
from .tool_latency import PATS, _governed, _pick_membership_pairs

POLICY = """\
version: 1
mode: read-write
roles: {analyst: {}, approver: {}}
local: {principal: analyst-user, roles: [analyst]}
principals: {site-admin: {roles: [approver]}}
rules:
  - {id: reads, tools: ["@read"], roles: [analyst], effect: allow}
  - {id: gated, tools: ["@write"], roles: [analyst], effect: require_approval}
approvals: {approvers: {roles: [approver]}, ttl: 1h}
audit: {path: audit.sqlite, synchronous: normal}
"""


def _policy(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "policies.yaml"
    path.write_text(textwrap.dedent(POLICY))
    return path


def _structured(result: Any) -> dict[str, Any]:
    if result.is_error:
        raise RuntimeError(result.content[0].text if result.content else str(result))
    return result.structured_content


def _claim_clock(governance: Any) -> dict[str, float]:
    """Stamp when the runner claims each request (the moment execution starts)."""
    claimed: dict[str, float] = {}
    claim = governance.claim

    def stamped(request: Any, site: Any) -> Any:
        taken = claim(request, site)
        if taken is not None:
            claimed[request.id] = time.perf_counter()
        return taken

    governance.claim = stamped
    return claimed


async def approval_to_start(url: str, site: Any, workdir: Path, requests: int, wake: bool) -> list[float]:
    from server import pipeline

    pipeline.WAKE_ON_DECISION = wake
    delays = []
    async with _governed(url, site.content_url, _policy(workdir), PATS[0], rate_limit=0, rate_limit_per_hour=0) as (
        services, client
    ):
        governance = services.governance
        claimed = _claim_clock(governance)
        for user, group in _pick_membership_pairs(site, requests):
            pending = _structured(await client.call_tool("add_user_to_group", {"user": user, "group": group}))
            request_id = pending["approval"]["request_id"]
            await anyio.sleep(0.37)  # a decision lands anywhere within the poll interval
            started = time.perf_counter()
            await anyio.to_thread.run_sync(
                lambda rid=request_id: governance.decide_request("site-admin", rid, approve=True, reason="bench")
            )
            with anyio.fail_after(30):
                while request_id not in claimed:
                    await anyio.sleep(0.001)
            delays.append(claimed[request_id] - started)
    pipeline.WAKE_ON_DECISION = True
    return delays


async def get_request_while_refreshing(url: str, site: Any, workdir: Path, reads: int) -> tuple[list[float], int]:
    item = next(d for d in site.datasources.values() if d.has_extracts and not d.refresh_failure
                and sum(o.name == d.name for o in site.datasources.values()) == 1)
    async with _governed(url, site.content_url, _policy(workdir), PATS[1], rate_limit=0, rate_limit_per_hour=0) as (
        services, client
    ):
        pending = _structured(await client.call_tool("refresh_and_wait", {"kind": "datasource", "target": item.name}))
        request_id = pending["approval"]["request_id"]
        await anyio.to_thread.run_sync(
            lambda: services.governance.decide_request("site-admin", request_id, approve=True, reason="bench")
        )
        with anyio.fail_after(60):
            while _structured(await client.call_tool("get_request", {"request_id": request_id}))["job"] is None:
                await anyio.sleep(0.02)
        times, running = [], 0
        for _ in range(reads):
            started = time.perf_counter()
            view = _structured(await client.call_tool("get_request", {"request_id": request_id}))
            times.append(time.perf_counter() - started)
            running += view["status"] == "executing"
        return times, running


def _ms(values: list[float]) -> tuple[str, str]:
    return f"{median(values) * 1000:.1f}", f"{max(values) * 1000:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.approval_wake")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--reads", type=int, default=30)
    parser.add_argument("--job-speed", type=float, default=2.0)
    args, _ = parser.parse_known_args(argv)

    from emulator.generator import build_site
    from emulator.process import EmulatorProcess
    from emulator.testing import add_admin_pat
    from server.pipeline import APPROVAL_POLL_SECONDS

    site = build_site(size="demo", seed=7, content_url="demo")
    for pat in PATS:
        add_admin_pat(site, *pat)
    emulator = EmulatorProcess(site, latency_ms=0, job_speed=args.job_speed).start()
    try:
        with tempfile.TemporaryDirectory() as directory:
            work = Path(directory)

            async def run() -> tuple[list[float], list[float], tuple[list[float], int]]:
                woken = await approval_to_start(emulator.url, site, work / "wake", args.requests, wake=True)
                polled = await approval_to_start(emulator.url, site, work / "poll", args.requests, wake=False)
                reads = await get_request_while_refreshing(emulator.url, site, work / "reads", args.reads)
                return woken, polled, reads

            woken, polled, (reads, running) = anyio.run(run)
    finally:
        emulator.stop()
    print(f"## approval_wake\n\n`{command('approval_wake', argv or [])}` ({machine_note()})\n")
    print(markdown_table(
        ["approval to execution start", "requests", "median ms", "max ms"],
        [["in-process wake-up", len(woken), *_ms(woken)],
         [f"poll only (every {APPROVAL_POLL_SECONDS:g} s: another replica)", len(polled), *_ms(polled)]],
    ))
    print()
    print(markdown_table(
        ["get_request while a refresh runs", "calls", "still executing", "median ms", "max ms"],
        [["through mcp.Client, in process", len(reads), running, *_ms(reads)]],
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
