"""Benchmark: one 1000-item list page as XML and as JSON, on both sides of the wire, in one process.

    .venv/bin/python -m bench list_formats [--rounds 15]

Serving: the emulator's whole request path for the large site (`Emulator._dispatch`: routing,
session, filter/sort/page, render, serialise; no socket, no latency) for page 3 of the workbooks
with the access layer's query, and page 2 of the users with `fields=_all_`. Reading: the access
layer's two readers (`parsing.py` for XML, `json_pages.py` for JSON) on those same bodies, records
included. The formats alternate within every round, so load on a shared machine hits both alike;
the table gives the minimum and the median over the rounds.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

from bench import machine_note, markdown_table, median


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench list_formats", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args, _unknown = parser.parse_known_args(argv)

    from emulator.app import Emulator
    from emulator.generator import build_site
    from server.tableau import json_pages, parsing
    from server.tableau.client import CONTENT_SORT, LIST_FIELDS

    state = build_site("large")
    emu = Emulator(state)
    token = emu.sessions.open(state.site_admin().id)
    sort = ",".join(CONTENT_SORT).replace(":", "%3A").replace(",", "%2C")
    fields = ",".join(LIST_FIELDS["workbook"]).replace(",", "%2C")
    pages = {
        "workbooks": (f"/api/3.24/sites/{state.id}/workbooks", f"pageSize=1000&pageNumber=3&sort={sort}&fields={fields}",
                      partial(parsing.content_page, "workbook"), partial(json_pages.content_page, "workbook")),
        "users": (f"/api/3.24/sites/{state.id}/users", "pageSize=1000&pageNumber=2&sort=name%3Aasc&fields=_all_",
                  parsing.user_page, json_pages.user_page),
    }
    rows = []
    for name, (path, query, read_xml, read_json) in pages.items():
        scopes = {
            fmt: {"type": "http", "server": ("127.0.0.1", 1), "scheme": "http",
                  "headers": [(b"x-tableau-auth", token.encode()), (b"accept", accept)]}
            for fmt, accept in (("XML", b"*/*"), ("JSON", b"application/json"))
        }
        bodies = {fmt: emu._dispatch(scope, "GET", path, query, b"")[2] for fmt, scope in scopes.items()}
        readers = {"XML": read_xml, "JSON": read_json}
        serve: dict[str, list[float]] = {"XML": [], "JSON": []}
        read: dict[str, list[float]] = {"XML": [], "JSON": []}
        for _ in range(args.rounds):
            for fmt in ("XML", "JSON"):
                serve[fmt].append(_timed(partial(emu._dispatch, scopes[fmt], "GET", path, query, b"")))
                read[fmt].append(_timed(partial(readers[fmt], bodies[fmt])))
        same = read_xml(bodies["XML"])[0] == read_json(bodies["JSON"])[0]
        for fmt in ("XML", "JSON"):
            rows.append([
                f"{name} page (1000)", fmt, f"{len(bodies[fmt]) / 1024:.0f}",
                f"{min(serve[fmt]) * 1000:.1f}", f"{median(serve[fmt]) * 1000:.1f}",
                f"{min(read[fmt]) * 1000:.1f}", f"{median(read[fmt]) * 1000:.1f}",
                "yes" if same else "NO",
            ])
    print("## One list page as XML and as JSON (issue 15)\n")
    print(f"Command: `.venv/bin/python -m bench list_formats --rounds {args.rounds}`  ")
    print(f"Machine: {machine_note()}\n")
    print(markdown_table(
        ["page", "format", "KiB", "emulator serves, min ms", "median ms", "client reads, min ms", "median ms",
         "same records"],
        rows,
    ))
    return 0
