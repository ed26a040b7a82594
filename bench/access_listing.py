"""Benchmark: list every workbook with owner names and project paths, four ways.

    .venv/bin/python -m bench.access_listing [--size large] [--latency-ms 50] [--runs 5] [--blog-runs 3]

1. **access layer**: `TableauClient.list_content("workbook")` + `project_tree()` (page 1, then the
   other pages concurrently, names via `fields`), 4 in flight, once with the client-side rate
   limiter off (what the layer itself costs) and once with the shipped 40,000 calls/hour budget; each
   through the shipped JSON reader (`json_pages.py`) and through the XML reader (`parsing.py`).
2. **blog-post way**: `TSC.Pager(server.workbooks)` at TSC's default page size (100), then one
   `users.get_by_id` per distinct owner, and `TSC.Pager(server.projects)` for the project paths.
3. **TSC.Pager at 1000**: sequential pages of 1000 with the same `fields` (names in the same call),
   plus the projects at 1000. This isolates what concurrency buys.

The emulator runs in a separate process (so its CPU does not share the client's GIL) with the
given latency per request. Every run happens in a fresh child interpreter: wall time is the
median of `--runs` runs (sign-in excluded, each run signs in fresh); requests are counted from the
emulator's request log (sign-in, serverInfo and sign-out excluded); peak memory is the child's peak
RSS minus its RSS after imports (median over runs); CPU is the child's process time during the
timed part and the emulator process's CPU over the whole run (medians). The floor is
ceil(N/1000)/concurrency × latency.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

PAT = ("bench-pat", "bench-pat-secret")
_ROOT = Path(__file__).resolve().parents[1]
_AUTH_PATHS = ("/auth/signin", "/serverInfo", "/auth/signout")


# -- emulator ----------------------------------------------------------------------------------


class _Emulator:
    def __init__(
        self, url: str, site: str, control: Any, stop: Callable[[], None], workbooks: int, pid: int | None = None
    ) -> None:
        self.url, self.site, self.control, self._stop, self.workbooks = url, site, control, stop, workbooks
        self.pid = pid

    def cpu_seconds(self) -> float:
        """User + system CPU of the emulator process so far (0 when it runs in-process)."""
        import os

        if self.pid is None:
            return 0.0
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def api_requests(self) -> int:
        return sum(1 for e in self.control.get_request_log() if not e.path.endswith(_AUTH_PATHS))

    def stop(self) -> None:
        self._stop()


@contextmanager
def emulator(size: str, latency_ms: float, fallback_workbooks: int) -> Iterator[_Emulator]:
    """The generated `size` site via `tableau-steward emulator` when the generator exists, else
    `small_site(workbooks=fallback_workbooks)` in an EmulatorProcess."""
    from emulator.process import RemoteControl

    try:
        import emulator.generator  # noqa: F401
    except ImportError:
        generator = False
    else:
        generator = True
    if generator:
        command = [
            sys.executable, "-m", "server.cli", "emulator", "--size", size, "--port", "0",
            "--latency-ms", str(latency_ms), "--pat", f"{PAT[0]}:{PAT[1]}",
        ]
        process = subprocess.Popen(command, cwd=_ROOT, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        line = process.stdout.readline()
        if " at http" not in line:
            process.kill()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        url = line.split(" at ", 1)[1].split()[0]
        site = line.split("site='", 1)[1].split("'", 1)[0]

        def stop() -> None:
            process.terminate()
            process.wait(10)

        control = RemoteControl(url)
        count = _count_workbooks(url, site)
        emu = _Emulator(url, site, control, stop, count, process.pid)
    else:
        from emulator.process import EmulatorProcess
        from emulator.testing import add_admin_pat, small_site

        state = small_site(workbooks=fallback_workbooks, content_url="bench")
        add_admin_pat(state, *PAT)
        process = EmulatorProcess(state, latency_ms=latency_ms).start()
        emu = _Emulator(process.url, "bench", process.control, process.stop, fallback_workbooks,
                        getattr(process, "pid", None))
    try:
        yield emu
    finally:
        emu.stop()


def _count_workbooks(url: str, site: str) -> int:
    import tableauserverclient as TSC

    server = TSC.Server(url, use_server_version=True, http_options={"timeout": 30})
    server.auth.sign_in(TSC.PersonalAccessTokenAuth(*PAT, site_id=site))
    try:
        _, pagination = server.workbooks.get(TSC.RequestOptions(pagesize=1))
        return int(pagination.total_available)
    finally:
        server.auth.sign_out()


# -- the three ways ----------------------------------------------------------------------------


def _tsc_server(emu: _Emulator) -> Any:
    import tableauserverclient as TSC

    server = TSC.Server(emu.url, use_server_version=True, http_options={"timeout": 60})
    server.auth.sign_in(TSC.PersonalAccessTokenAuth(*PAT, site_id=emu.site))
    return server


def _paths(projects: dict[str, Any]) -> dict[str, str]:
    def path(pid: str) -> str:
        parts, current, seen = [], pid, set()
        while current in projects and current not in seen:
            seen.add(current)
            parts.append(projects[current].name)
            current = projects[current].parent_id
        return "/".join(reversed(parts))

    return {pid: path(pid) for pid in projects}


def blog_post_way(emu: _Emulator) -> tuple[float, int]:
    import tableauserverclient as TSC

    server = _tsc_server(emu)
    try:
        started = time.perf_counter()
        workbooks = list(TSC.Pager(server.workbooks))
        owner_ids = {wb.owner_id for wb in workbooks if wb.owner_id}  # one lookup per distinct owner
        owners = {owner_id: server.users.get_by_id(owner_id) for owner_id in owner_ids}
        paths = _paths({p.id: p for p in TSC.Pager(server.projects)})
        rows = [(wb.name, owners[wb.owner_id].name if wb.owner_id else None, paths.get(wb.project_id))
                for wb in workbooks]
        elapsed = time.perf_counter() - started
    finally:
        server.auth.sign_out()
    return elapsed, len(rows)


def pager_1000_way(emu: _Emulator) -> tuple[float, int]:
    import tableauserverclient as TSC

    server = _tsc_server(emu)
    try:
        started = time.perf_counter()
        options = TSC.RequestOptions(pagesize=1000)
        options.fields |= {"_default_", "owner.name", "owner.email", "project.name"}
        workbooks = list(TSC.Pager(server.workbooks, options))
        paths = _paths({p.id: p for p in TSC.Pager(server.projects, TSC.RequestOptions(pagesize=1000))})
        rows = [(wb.name, wb.owner.name if wb.owner else None, paths.get(wb.project_id)) for wb in workbooks]
        elapsed = time.perf_counter() - started
    finally:
        server.auth.sign_out()
    return elapsed, len(rows)


def _access_layer(emu: _Emulator, list_format: str | None = None, **tunables: Any) -> tuple[float, int]:
    from server.config import Settings
    from server.tableau import TableauClient

    async def run() -> tuple[float, int]:
        client = TableauClient(Settings.for_pat(emu.url, emu.site, *PAT, **tunables))
        if list_format is not None:
            client.list_format = list_format  # time one reader against the other on the same pages
        async with client:
            started = time.perf_counter()
            results: dict[str, Any] = {}

            async def workbooks() -> None:
                results["workbooks"] = await client.list_content("workbook")

            async def tree() -> None:
                results["tree"] = await client.project_tree()

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(workbooks)
                tasks.start_soon(tree)
            tree_ = results["tree"]
            rows = [(r.name, r.owner_name, tree_.path_of(r.project_id)) for r in results["workbooks"]]
            return time.perf_counter() - started, len(rows)

    return anyio.run(run)


def access_layer_shipped(emu: _Emulator) -> tuple[float, int]:
    return _access_layer(emu)


def access_layer_unlimited(emu: _Emulator) -> tuple[float, int]:
    return _access_layer(emu, rate_limit_per_hour=0)


def access_layer_xml_shipped(emu: _Emulator) -> tuple[float, int]:
    return _access_layer(emu, list_format="xml")


def access_layer_xml_unlimited(emu: _Emulator) -> tuple[float, int]:
    return _access_layer(emu, list_format="xml", rate_limit_per_hour=0)


OURS = "access layer, 4 in flight, rate limiter off"
SHIPPED = "access layer, shipped limits (4 in flight, 40,000 calls/hour)"
XML_OURS = "access layer, XML reader, 4 in flight, rate limiter off"
XML_SHIPPED = "access layer, XML reader, shipped limits (4 in flight, 40,000 calls/hour)"
PAGER_1000 = "TSC.Pager, page size 1000 + fields"
BLOG = "blog post: Pager(100) + users.get_by_id per owner"
WAYS: dict[str, Callable[[_Emulator], tuple[float, int]]] = {
    OURS: access_layer_unlimited,
    SHIPPED: access_layer_shipped,
    XML_OURS: access_layer_xml_unlimited,
    XML_SHIPPED: access_layer_xml_shipped,
    PAGER_1000: pager_1000_way,
    BLOG: blog_post_way,
}


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(way: str, url: str, site: str) -> int:
    """One timed run in this (fresh) interpreter; prints a JSON line."""
    import json

    emu = _Emulator(url, site, None, lambda: None, 0)
    for module in ("tableauserverclient", "server.tableau", "anyio"):
        __import__(module)
    baseline = _rss_mb()
    cpu = time.process_time()
    elapsed, rows = WAYS[way](emu)
    cpu = time.process_time() - cpu  # includes the sign-in, a few ms
    print(json.dumps({"elapsed": elapsed, "rows": rows, "peak_mb": _rss_mb(), "baseline_mb": baseline,
                      "cpu": cpu}))
    return 0


def _one_run(emu: _Emulator, way: str) -> dict[str, Any]:
    import json

    emu.control.reset_request_log()
    emulator_cpu = emu.cpu_seconds()
    output = subprocess.run(
        [sys.executable, "-m", "bench.access_listing", "--child", way, emu.url, emu.site],
        cwd=_ROOT, check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    result = json.loads(output)
    result["emulator_cpu"] = emu.cpu_seconds() - emulator_cpu
    result["requests"] = emu.api_requests()
    return result


def measure_interleaved(emu: _Emulator, ways: list[str], runs: int) -> dict[str, dict[str, Any]]:
    """`runs` rounds, each running every way once in turn, so a noisy minute hits them all alike."""
    samples: dict[str, list[dict[str, Any]]] = {way: [] for way in ways}
    for _ in range(runs):
        for way in ways:
            samples[way].append(_one_run(emu, way))
    return {way: _summary(runs_of_way) for way, runs_of_way in samples.items()}


def measure(emu: _Emulator, way: str, runs: int) -> dict[str, Any]:
    return measure_interleaved(emu, [way], runs)[way]


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    times = [r["elapsed"] for r in samples]
    return {"median_s": statistics.median(times), "times": times, "requests": samples[-1]["requests"],
            "rows": samples[-1]["rows"], "peak_mb": statistics.median(r["peak_mb"] - r["baseline_mb"] for r in samples),
            "cpu_s": statistics.median(r["cpu"] for r in samples),
            "emulator_cpu_s": statistics.median(r["emulator_cpu"] for r in samples)}


def _print_readers(results: dict[str, dict[str, Any]], floor: float) -> None:
    """The JSON reader against the XML reader, same emulator, interleaved rounds."""
    pairs = [(label, results.get(json_way), results.get(xml_way))
             for label, json_way, xml_way in (("rate limiter off", OURS, XML_OURS), ("shipped limits", SHIPPED, XML_SHIPPED))]
    pairs = [p for p in pairs if p[1] is not None and p[2] is not None]
    if not pairs:
        return
    print()
    print("| limits | reader | median wall time | range | requests | client CPU | emulator CPU | vs. floor |")
    print("|---|---|---|---|---|---|---|---|")
    for label, json_r, xml_r in pairs:
        for reader, r in (("XML (parsing.py)", xml_r), ("JSON (json_pages.py, orjson)", json_r)):
            print(f"| {label} | {reader} | {r['median_s'] * 1000:.0f} ms | {min(r['times']) * 1000:.0f}–"
                  f"{max(r['times']) * 1000:.0f} ms | {r['requests']} | {r['cpu_s'] * 1000:.0f} ms | "
                  f"{r['emulator_cpu_s'] * 1000:.0f} ms | {r['median_s'] / floor:.1f}× |")
        print(f"| {label} | JSON / XML | {json_r['median_s'] / xml_r['median_s']:.2f}× | | | "
              f"{json_r['cpu_s'] / xml_r['cpu_s']:.2f}× | {json_r['emulator_cpu_s'] / xml_r['emulator_cpu_s']:.2f}× | |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.access_listing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="large", choices=("demo", "large"))
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--runs", type=int, default=5,
                        help="rounds for the fast ways (median); each round runs every way once, in turn")
    parser.add_argument("--blog-runs", type=int, default=3, help="timed runs for the blog-post way")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="run only the ways whose name contains TEXT (repeatable)")
    parser.add_argument("--sweep", default="", metavar="MS,MS,...",
                        help="also time the access layer (limiter off) at these latencies, to separate "
                             "latency from fixed CPU cost")
    parser.add_argument("--child", nargs=3, metavar=("WAY", "URL", "SITE"), help=argparse.SUPPRESS)
    parser.add_argument("--fallback-workbooks", type=int, default=10000,
                        help="workbooks in the fallback site when emulator.generator is missing")
    args, _unknown = parser.parse_known_args(argv)  # `python -m bench` passes everyone's options
    if args.child:
        return child(*args.child)

    with emulator(args.size, args.latency_ms, args.fallback_workbooks) as emu:
        n = emu.workbooks
        concurrency = 4
        pages = math.ceil(n / 1000)
        floor = pages / concurrency * args.latency_ms / 1000
        # page 1 must arrive before the total is known; the rest go in waves of `concurrency`
        waves = (1 + math.ceil((pages - 1) / concurrency)) * args.latency_ms / 1000
        print(f"site {emu.site!r}: {n} workbooks, latency {args.latency_ms:g} ms; floor "
              f"ceil(N/1000)/{concurrency} x latency = {floor * 1000:.0f} ms", flush=True)
        chosen = [name for name in WAYS if not args.only or any(text in name for text in args.only)]
        fast = [name for name in chosen if name != BLOG]
        results = measure_interleaved(emu, fast, args.runs) if fast else {}
        if BLOG in chosen:
            results[BLOG] = measure(emu, BLOG, args.blog_runs)
        for name, r in results.items():
            runs = len(r["times"])
            print(f"  {name}: median {r['median_s'] * 1000:.0f} ms over {runs} runs "
                  f"({', '.join(f'{t * 1000:.0f}' for t in r['times'])}), {r['requests']} requests, "
                  f"peak +{r['peak_mb']:.0f} MB RSS, client CPU {r['cpu_s'] * 1000:.0f} ms, "
                  f"emulator CPU {r['emulator_cpu_s'] * 1000:.0f} ms, rows {r['rows']}", flush=True)
        sweep = [float(ms) for ms in args.sweep.split(",") if ms.strip()]
        swept = {}
        for latency in sweep:
            emu.control.set_latency(latency)
            swept[latency] = measure(emu, OURS, args.runs)
            print(f"  sweep {latency:g} ms: median {swept[latency]['median_s'] * 1000:.0f} ms", flush=True)

    if swept:
        print()
        print(f"{OURS}, by injected latency ({args.runs} runs each, same emulator):")
        print()
        print("| latency | floor | structural floor | median wall time | range | vs. floor | "
              "vs. structural floor | client CPU | emulator CPU |")
        print("|---|---|---|---|---|---|---|---|---|")
        for latency, r in swept.items():
            fl, st = pages / concurrency * latency / 1000, (1 + math.ceil((pages - 1) / concurrency)) * latency / 1000
            ratio = f"{r['median_s'] / fl:.2f}×" if fl else "—"
            ratio_st = f"{r['median_s'] / st:.2f}×" if st else "—"
            print(f"| {latency:g} ms | {fl * 1000:.0f} ms | {st * 1000:.0f} ms | {r['median_s'] * 1000:.0f} ms | "
                  f"{min(r['times']) * 1000:.0f}–{max(r['times']) * 1000:.0f} ms | {ratio} | {ratio_st} | "
                  f"{r['cpu_s'] * 1000:.0f} ms | {r['emulator_cpu_s'] * 1000:.0f} ms |")

    _print_readers(results, floor)
    if OURS not in results or BLOG not in results:
        return 0  # a partial run (--only) prints no summary
    ours = results[OURS]["median_s"]
    print()
    print("| approach | runs | median wall time | range | requests | peak RSS over baseline | client CPU | "
          "emulator CPU | vs. floor | vs. access layer |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {len(r['times'])} | {r['median_s'] * 1000:.0f} ms | {min(r['times']) * 1000:.0f}–"
              f"{max(r['times']) * 1000:.0f} ms | {r['requests']} | {r['peak_mb']:.0f} MB | "
              f"{r['cpu_s'] * 1000:.0f} ms | {r['emulator_cpu_s'] * 1000:.0f} ms | {r['median_s'] / floor:.1f}× | "
              f"{r['median_s'] / ours:.1f}× |")
    print(f"| floor: ceil(N/1000)/4 × latency | | {floor * 1000:.0f} ms | | {math.ceil(n / 1000)} | | | | 1.0× | "
          f"{floor / ours:.2f}× |")
    print(f"| structural floor: page 1, then waves of 4 | | {waves * 1000:.0f} ms | | {math.ceil(n / 1000)} | | | | "
          f"{waves / floor:.1f}× | {waves / ours:.2f}× |")
    print()
    print(f"access layer / floor = {ours / floor:.2f} (target ≤ 1.5), / structural floor = {ours / waves:.2f}; "
          f"blog post / access layer = "
          f"{results[BLOG]['median_s'] / ours:.1f}, / shipped limits = "
          f"{results[BLOG]['median_s'] / results[SHIPPED]['median_s']:.1f} (target ≥ 10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
