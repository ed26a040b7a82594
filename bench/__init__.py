"""Benchmarks: `python -m bench` runs them all, `python -m bench NAME [NAME ...] [options]` some.

Each benchmark is a module `bench/<name>.py` with `main(argv: list[str]) -> int` that prints a
markdown section (the command, a machine note and a table) to stdout; `bench/__main__.py` lists
the modules in `MODULES`. Options after the names go to every selected module, so a module parses
them with `parse_known_args` and ignores the ones it does not know. Results worth keeping go into
BENCHMARKS.md by hand, with the command.
Measurements run in fresh subprocesses where memory or GIL sharing would distort them.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 30 samples is the 29th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_note() -> str:
    """One line describing where the numbers came from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cores} cores ({cpu}), Python {platform.python_version()} on {platform.system()} "
        f"{platform.release()}; shared machine, so treat single-digit-percent differences as noise"
    )


def command(name: str, argv: Sequence[str]) -> str:
    return " ".join(["python -m bench", name, *argv])


def python() -> str:
    return sys.executable
