"""transfer_content_ownership of 1,000 workbooks on the large site at 50 ms latency, shipped settings.

    .venv/bin/python -m bench ownership_transfer [--runs 3] [--latency-ms 50] [--items 1000]

The large site (20,000 workbooks, 10,000 users) is served by an emulator in a child process with
`--latency-ms` injected per request; one governed server with the shipped `Settings` (4 requests in
flight) is reached through an in-process `mcp.Client`, under a policy that allows the call, so the
tool runs at once. (An approved request runs the same body: the same listings, one PUT per item.)
Each run hands the same `--items` workbooks (by `item_ids`) to a different Creator, so every item
really moves. The table gives the median wall time, the API requests (sign-in excluded) by endpoint
and the floor ⌈requests ÷ concurrency⌉ × latency.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from . import command, machine_note, markdown_table, median
from .tool_latency import PATS, _api_entries, _breakdown, _call, _governed, _write_policy, large_emulator


async def run(args: argparse.Namespace, workdir: Path, emulator: tuple[str, str, Any, float, int]) -> dict[str, Any]:
    url, site, control, _startup, _pid = emulator
    async with _governed(url, site, _write_policy(workdir / "transfer"), PATS[0]) as (services, client):
        tableau = services.tableau
        control.set_latency(0)  # choosing the items is not what is measured
        users = await tableau.users_by_id()
        heirs = sorted((u for u in users.values() if u.site_role == "Creator"), key=lambda u: u.name)[: args.runs]
        heir_ids = {h.id for h in heirs}
        workbooks = await tableau.list_content("workbook", lean=True)
        items = sorted(wb.id for wb in workbooks if wb.owner_id not in heir_ids)[: args.items]
        control.set_latency(args.latency_ms)
        times, entries, moved = [], [], []
        for heir in heirs:
            tableau.invalidate_caches()
            control.reset_request_log()
            began = time.perf_counter()
            reply = await _call(
                client, "transfer_content_ownership", {"kind": "workbook", "item_ids": items, "new_owner": heir.name}
            )
            times.append(time.perf_counter() - began)
            entries = _api_entries(control)
            moved.append(reply.structured_content["result"]["moved"])
            print(f"  run: {times[-1]:.2f} s, {len(entries)} requests, {moved[-1]} moved", file=sys.stderr, flush=True)
    return {"times": times, "entries": entries, "moved": moved, "items": len(items)}


def report(args: argparse.Namespace, argv: list[str], result: dict[str, Any], concurrency: int) -> str:
    requests = len(result["entries"])
    wall = median(result["times"]) * 1000
    floor = math.ceil(requests / concurrency) * args.latency_ms
    row = [
        f"transfer_content_ownership, {result['items']} workbooks by item_ids, cold caches",
        requests,
        _breakdown(result["entries"], 1),
        f"{wall:.0f}",
        f"{floor:.0f}",
        f"{wall / floor:.2f}×" if floor else "–",
        ", ".join(str(n) for n in result["moved"]),
    ]
    headers = ["case", "requests", "requests by endpoint", "wall ms (median)",
               f"floor ⌈req ÷ {concurrency}⌉ × {args.latency_ms:g} ms", "wall ÷ floor", "moved per run"]
    return "\n\n".join([
        "## Ownership hand-over on the large site (transfer_content_ownership)",
        f"Command: `{command('ownership_transfer', argv)}`",
        machine_note(),
        (f"Large site, {args.latency_ms:g} ms injected latency per request, shipped settings (4 in flight), "
         f"{args.runs} runs, median."),
        markdown_table(headers, [row]),
    ])


def main(argv: list[str] | None = None) -> int:
    from server.config import Settings

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench ownership_transfer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--items", type=int, default=1000)
    args, unknown = parser.parse_known_args(argv)
    mine = [a for a in argv if a not in unknown]
    for name in ("TSC", "server", "mcp", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp, large_emulator(args.latency_ms) as emulator:
        result = anyio.run(run, args, Path(tmp), emulator)
    print(report(args, mine, result, Settings.model_fields["concurrency"].default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
