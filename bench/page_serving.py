"""How fast the emulator serves a 1000-item workbooks page of the large site.

Starts `tableau-steward emulator --size large --port 0` in a child process (so the emulator does
not share a GIL with the client), signs in with a PAT over plain `requests`, warms up, then times
`GET /sites/{id}/workbooks?pageSize=1000&pageNumber=N&fields=...` (N cycling over the first pages)
on one keep-alive session: time to the last byte of the body. Reports median and p95
(nearest rank) per field set; the `fields=_default_,owner.name,project.name` row is the one the
MCP server's list tools send.

    python -m bench page_serving [--requests 30] [--warmup 3]
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import requests

from . import ROOT, command, machine_note, markdown_table, median, percentile, python

API = "3.24"
NS = {"t": "http://tableau.com/api"}
PAT = ("bench-pat", "bench-pat-secret")
FIELD_SETS = ("_default_,owner.name,project.name", None)
PAGE_SIZE = 1000


def _emulator_command() -> list[str]:
    script = Path(python()).with_name("tableau-steward")
    base = [str(script)] if script.exists() else [shutil.which("tableau-steward") or ""]
    if not base[0]:
        base = [python(), "-m", "server.cli"]
    return base + ["emulator", "--size", "large", "--port", "0", "--site", "bench", "--pat", ":".join(PAT)]


def start_emulator(timeout: float = 120) -> tuple[subprocess.Popen, str, float]:
    """The child process, its URL and the seconds it took to print that URL (generation included)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        _emulator_command(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    line = ""
    if selector.select(timeout):
        line = process.stdout.readline()
    selector.close()
    if "http://" not in line:
        process.kill()
        process.wait()
        raise RuntimeError(f"the emulator did not start: {line!r}")
    url = next(word for word in line.split() if word.startswith("http://"))
    return process, url, time.perf_counter() - started


def sign_in(session: requests.Session, url: str) -> str:
    body = (
        f'<tsRequest><credentials personalAccessTokenName="{PAT[0]}" '
        f'personalAccessTokenSecret="{PAT[1]}"><site contentUrl="bench"/></credentials></tsRequest>'
    )
    reply = session.post(f"{url}/api/{API}/auth/signin", data=body, timeout=30)
    reply.raise_for_status()
    credentials = ElementTree.fromstring(reply.content).find("t:credentials", NS)
    assert credentials is not None
    site = credentials.find("t:site", NS)
    assert site is not None
    session.headers["X-Tableau-Auth"] = credentials.get("token", "")
    return site.get("id", "")


def measure(session: requests.Session, url: str, site_id: str, fields: str | None, n: int, warmup: int):
    params: dict[str, object] = {"pageSize": PAGE_SIZE}
    if fields:
        params["fields"] = fields
    endpoint = f"{url}/api/{API}/sites/{site_id}/workbooks"
    times: list[float] = []
    size = items = 0
    for i in range(warmup + n):
        params["pageNumber"] = 1 + i % 20
        start = time.perf_counter()
        reply = session.get(endpoint, params=params, timeout=60)
        body = reply.content
        elapsed = time.perf_counter() - start
        reply.raise_for_status()
        if i >= warmup:
            times.append(elapsed)
        size, items = len(body), body.count(b"<workbook ")
    return times, size, items


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench page_serving", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args, _ = parser.parse_known_args(argv)  # options meant for other modules are ignored

    process, url, startup = start_emulator()
    rows = []
    try:
        with requests.Session() as session:
            site_id = sign_in(session, url)
            for fields in FIELD_SETS:
                times, size, items = measure(session, url, site_id, fields, args.requests, args.warmup)
                ms = [t * 1000 for t in times]
                rows.append(
                    [
                        f"`{fields}`" if fields else "(none)",
                        items,
                        f"{size / 1024:.0f}",
                        len(ms),
                        f"{median(ms):.0f}",
                        f"{percentile(ms, 95):.0f}",
                        f"{min(ms):.0f}",
                        f"{max(ms):.0f}",
                    ]
                )
            session.post(f"{url}/api/{API}/auth/signout", timeout=10)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    print("### Emulator: one 1000-workbook page of the large site\n")
    print(
        f"Command: `{command('page_serving', argv)}` (emulator in a child process via "
        f"`tableau-steward emulator --size large`, client: plain `requests`, one keep-alive session, "
        f"{args.warmup} warm-up requests, pages 1-20 in turn)  "
    )
    print(f"Machine: {machine_note()}\n")
    print(
        markdown_table(
            ["fields", "items/page", "KiB/page", "requests", "median ms", "p95 ms", "min ms", "max ms"], rows
        )
    )
    print(f"\nEmulator start-up (generating the large site, until it printed its URL): {startup:.1f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
