"""How long `build_site("large")` takes and how much memory the process needs.

Each run is a fresh interpreter (so peak RSS is that of one generation, not of earlier runs or of
this harness): it imports the generator, notes its RSS, builds the site, and reports the build's
wall time and the process's peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`).

    python -m bench generation [--runs 5] [--size large] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import subprocess

from . import ROOT, command, machine_note, markdown_table, median, python

# Runs in the child interpreter; prints one JSON line.
_CHILD = """
import json, resource, sys, time
from emulator.generator import build_site
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
site = build_site(sys.argv[1], seed=int(sys.argv[2]))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
counts = {k: len(getattr(site, k)) for k in (
    "users", "groups", "projects", "workbooks", "views", "datasources", "flows", "tasks", "jobs",
    "permissions")}
print(json.dumps({"seconds": seconds, "base_kb": base, "peak_kb": peak, "counts": counts}))
"""

# Limits the large site must stay within (the brief for the generator).
MAX_SECONDS = 30.0
MAX_RSS_MB = 1536.0


def run_once(size: str, seed: int) -> dict:
    out = subprocess.run(
        [python(), "-c", _CHILD, size, str(seed)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench generation", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", default="large")
    parser.add_argument("--seed", type=int, default=7)
    args, _ = parser.parse_known_args(argv)  # options meant for other modules are ignored

    results = [run_once(args.size, args.seed) for _ in range(args.runs)]
    seconds = [r["seconds"] for r in results]
    peaks = [r["peak_kb"] / 1024 for r in results]
    base = median([r["base_kb"] / 1024 for r in results])
    counts = results[0]["counts"]

    print(f"### Site generation (`{args.size}`)\n")
    print(f"Command: `{command('generation', argv)}` ({args.runs} runs, each in a fresh interpreter)  ")
    print(f"Machine: {machine_note()}\n")
    print(
        markdown_table(
            [
                "size",
                "runs",
                "build s (median)",
                "min",
                "max",
                "peak RSS MB (median)",
                "RSS after imports MB",
            ],
            [
                [
                    args.size,
                    args.runs,
                    f"{median(seconds):.2f}",
                    f"{min(seconds):.2f}",
                    f"{max(seconds):.2f}",
                    f"{median(peaks):.0f}",
                    f"{base:.0f}",
                ]
            ],
        )
    )
    print("\nObjects: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()) + "\n")
    ok = median(seconds) < MAX_SECONDS and max(peaks) < MAX_RSS_MB
    if args.size == "large" and not ok:
        print(f"**Over budget**: limits are {MAX_SECONDS:.0f} s and {MAX_RSS_MB:.0f} MB.\n")
        return 1
    return 0
