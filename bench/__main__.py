"""`python -m bench [NAME ...] [options]`: run every benchmark module, or the named ones.

Options after the names go to each selected module's `main(argv)` (modules ignore options they
do not know); `python -m bench --list` lists
the modules. Exit status: the worst of the modules' statuses.
"""

from __future__ import annotations

import importlib
import sys

# Every benchmark module, in the order `python -m bench` runs them. Add new ones here.
MODULES: tuple[str, ...] = (
    "generation", "page_serving", "list_formats", "access_listing", "audit_throughput", "tool_latency"
)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["--list"], ["-l"]):
        print("\n".join(MODULES))
        return 0
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        print("\nmodules: " + ", ".join(MODULES))
        return 0
    selected: list[str] = []
    while args and not args[0].startswith("-"):
        name = args.pop(0)
        if name not in MODULES:
            print(f"unknown benchmark {name!r}; known: {', '.join(MODULES)}", file=sys.stderr)
            return 2
        selected.append(name)
    status = 0
    for name in selected or MODULES:
        module = importlib.import_module(f"bench.{name}")
        try:
            code = module.main(list(args))
        except SystemExit as exc:  # argparse --help or a usage error in one module
            code = exc.code if isinstance(exc.code, int) else 1
        status = max(status, int(code or 0))
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
