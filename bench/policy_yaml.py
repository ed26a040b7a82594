"""Benchmark: how fast the policy loader refuses a YAML alias bomb, and what the unbounded way cost.

    .venv/bin/python -m bench.policy_yaml [--levels 9] [--baseline-levels 6]

The bomb is the classic "billion laughs": level 0 lists 9 strings, each next level lists the previous
one 9 times, so `--levels 9` is 9^9 (387 million) values in under 1 KB. Measured, in one run:

1. `parse_policy` on that bomb (server/governance/safe_yaml.py refuses it): wall time and peak memory;
2. the unbounded way the loader used before (PyYAML SafeLoader, then a walk over every value, as the line
   index and the schema validation do) on a smaller bomb (`--baseline-levels`, default 6: 9^6 values), since
   the full bomb takes seconds and gigabytes that way; its cost grows 9 times per level.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import yaml

from server.governance.policy import PolicyError, parse_policy


def alias_bomb(levels: int, width: int = 9) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "version: 1\nmode: read-only\n" + "\n".join(lines) + "\n"


def _walk(value: Any) -> int:
    """Visit every value, as schema validation and the line index do (aliases expanded)."""
    if isinstance(value, dict):
        return 1 + sum(_walk(k) + _walk(v) for k, v in value.items())
    if isinstance(value, list):
        return 1 + sum(_walk(v) for v in value)
    return 1


def _measure(fn: Callable[[], object]) -> tuple[float, int, object]:
    """(wall seconds, peak traced bytes, result): timed without tracemalloc, then run again to trace memory."""
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return elapsed, peak, result


def _refused(text: str) -> str:
    try:
        parse_policy(text)
    except PolicyError as exc:
        return str(exc)
    return "NOT REFUSED"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.policy_yaml", description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", type=int, default=9, help="levels of the refused bomb (default 9)")
    parser.add_argument("--baseline-levels", type=int, default=6, help="levels for the unbounded baseline (6)")
    args, _unknown = parser.parse_known_args(argv)
    bomb = alias_bomb(args.levels)
    seconds, peak, message = _measure(lambda: _refused(bomb))
    print(f"bomb: {args.levels} levels, {9 ** args.levels:,} values, {len(bomb.encode())} bytes")
    print(f"  parse_policy refuses it in {seconds * 1000:.1f} ms, peak {peak / 1e6:.2f} MB: {message}")
    small = alias_bomb(args.baseline_levels)
    base_s, base_peak, values = _measure(lambda: _walk(yaml.safe_load(small)))
    print(
        f"unbounded baseline: {args.baseline_levels} levels ({values:,} values walked) in {base_s * 1000:.1f} ms, "
        f"peak {base_peak / 1e6:.2f} MB; each level more costs about 9 times as much"
    )
    return 0 if message.startswith("policies.yaml") and "refused YAML" in message else 1


if __name__ == "__main__":
    sys.exit(main())
