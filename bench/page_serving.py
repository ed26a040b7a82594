"""How fast, and at what CPU cost, the emulator serves 1000-item list pages of the large site.

Starts `tableau-steward emulator --size large --port 0` in a child process (so the emulator does
not share a GIL with the client), signs in with a PAT over plain `requests`, warms up, then times
each case's `GET` (page N cycling over the first pages) on one keep-alive session: time to the
last byte of the body, and the emulator process's CPU (user + system, from /proc) per request.
The cases take turns within every round, so load on a shared machine hits them alike. Cases: the
lean workbooks page `find_owners` reads (the access layer's `LEAN_FIELDS`, sorted by its
`CONTENT_SORT`, createdAt then name) and the default list shape the list tools read
(`LIST_FIELDS["workbook"]`: `_default_,owner.name,owner.email,project.name`, same sort), each as XML and as JSON
(`Accept: application/json`); the users page with `fields=_all_` sorted by name; a page with
no `fields` or sort; and the 1,000 projects as the project tree reads them (`LIST_FIELDS["project"]`,
same sort). Median and p95 (nearest rank).

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

from server.tableau.client import CONTENT_SORT, LEAN_FIELDS, LIST_FIELDS

from . import ROOT, command, machine_note, markdown_table, median, percentile, python

API = "3.24"
NS = {"t": "http://tableau.com/api"}
PAT = ("bench-pat", "bench-pat-secret")
PAGE_SIZE = 1000
# The access layer's own query shapes (server/tableau/client.py), so the bench follows them.
SORT = ",".join(CONTENT_SORT)
LEAN = ",".join(LEAN_FIELDS)
DEFAULT_LIST = ",".join(LIST_FIELDS["workbook"])
PROJECT_LIST = ",".join(LIST_FIELDS["project"])
# (label, resource, fields, sort, JSON?)
CASES = (
    ("lean, sorted", "workbooks", LEAN, SORT, False),
    ("lean, sorted", "workbooks", LEAN, SORT, True),
    ("default list shape, sorted", "workbooks", DEFAULT_LIST, SORT, False),
    ("default list shape, sorted", "workbooks", DEFAULT_LIST, SORT, True),
    ("users `_all_`, sorted by name", "users", "_all_", "name:asc", False),
    ("users `_all_`, sorted by name", "users", "_all_", "name:asc", True),
    ("no fields, no sort", "workbooks", None, None, False),
    # What every find_owners and list_content call reads first, for the project tree.
    ("projects, as the access layer lists them", "projects", PROJECT_LIST, SORT, False),
    ("projects, as the access layer lists them", "projects", PROJECT_LIST, SORT, True),
)
PAGES = {"users": 10, "projects": 1}  # the large site: 10,000 users, 1,000 projects, 20,000 workbooks


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


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) the child process has used so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch(session: requests.Session, url: str, site_id: str, case: tuple, number: int) -> tuple[float, bytes]:
    _label, resource, fields, sort, as_json = case
    params: dict[str, object] = {"pageSize": PAGE_SIZE, "pageNumber": number}
    if fields:
        params["fields"] = fields
    if sort:
        params["sort"] = sort
    headers = {"Accept": "application/json"} if as_json else {}
    start = time.perf_counter()
    reply = session.get(f"{url}/api/{API}/sites/{site_id}/{resource}", params=params, headers=headers, timeout=60)
    body = reply.content
    elapsed = time.perf_counter() - start
    reply.raise_for_status()
    return elapsed, body


def measure(session: requests.Session, url: str, site_id: str, pid: int, n: int, warmup: int) -> list[dict]:
    """Per case: wall seconds and emulator CPU seconds per request, and the last body's size."""
    results = [{"wall": [], "cpu": [], "size": 0} for _ in CASES]
    for i in range(warmup + n):
        for case, found in zip(CASES, results, strict=True):
            pages = PAGES.get(case[1], 20)
            cpu = process_cpu(pid)
            elapsed, body = fetch(session, url, site_id, case, 1 + i % pages)
            if i >= warmup:
                found["wall"].append(elapsed)
                found["cpu"].append(process_cpu(pid) - cpu)
            found["size"] = len(body)
    return results


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
            results = measure(session, url, site_id, process.pid, args.requests, args.warmup)
            for (label, resource, fields, sort, as_json), found in zip(CASES, results, strict=True):
                wall, cpu = [t * 1000 for t in found["wall"]], [t * 1000 for t in found["cpu"]]
                rows.append(
                    [
                        label,
                        resource,
                        f"`{fields}`" if fields else "(none)",
                        "JSON" if as_json else "XML",
                        f"{found['size'] / 1024:.0f}",
                        len(wall),
                        f"{median(wall):.0f}",
                        f"{percentile(wall, 95):.0f}",
                        f"{median(cpu):.0f}",
                        f"{sum(cpu) / len(cpu):.1f}",
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

    print("### Emulator: one 1000-item list page of the large site\n")
    print(
        f"Command: `{command('page_serving', argv)}` (emulator in a child process via "
        f"`tableau-steward emulator --size large`, client: plain `requests`, one keep-alive session, "
        f"{args.warmup} warm-up rounds, the cases in turn within each round, pages 1-20 (users 1-10) in turn; "
        f"emulator CPU from /proc, at clock-tick resolution: the mean is the figure to read)  "
    )
    print(f"Machine: {machine_note()}\n")
    print(
        markdown_table(
            ["page", "resource", "fields", "format", "KiB/page", "requests", "median ms", "p95 ms",
             "emulator CPU median ms", "emulator CPU mean ms"],
            rows,
        )
    )
    print(f"\nEmulator start-up (generating the large site, until it printed its URL): {startup:.1f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
