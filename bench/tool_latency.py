"""MCP tool latency, the governance overhead of a read call, and find_owners over the large site.

    .venv/bin/python -m bench.tool_latency [--calls 100] [--overhead-calls 200] [--large-runs 3] [--skip-large]
    .venv/bin/python -m bench tool_latency [same options]

1. **Per tool, demo site.** The demo site is served by an emulator in a child process
   (`emulator.process.EmulatorProcess`, 0 ms injected latency, job speed 500), so it does not share
   the client's GIL. A governed server (`server.app.build_server`, a policy that allows everything,
   audit log on disk in a temp dir with the shipped `synchronous: full`) is reached through an
   in-process `mcp.Client`. Every tool is called `--calls` times:
   - *pipeline, cold*: caches cleared before each call (`TableauClient.invalidate_caches()`),
   - *pipeline, warm*: caches as they stay between calls (cache_ttl 60 s, as shipped),
   - *bare, cold*: the same `TableauClient` calls the tool body makes, called directly on a
     second client without the audit observer, caches cleared before each iteration.
   Requests per call come from the emulator's request log (sign-in, serverInfo and sign-out excluded).
   Both clients run with the client-side rate limiter off (`rate_limit=0`, `rate_limit_per_hour=0`);
   the shipped sliding budget of 40,000 calls an hour never slows loops this short anyway.
   `get_request` is measured on a pending request created directly in the approval store
   (`Governance.create_approval`), so no approval-gated policy is needed; its "bare" column is the
   approval-store read. `add_user_to_group` alternates: add a user to a group ("added"), then the
   same call again ("no_change"), over 50 (user, group) pairs; memberships are removed again
   (untimed) after each phase.
2. **Governance overhead.** Three read tools with warm caches, interleaved, in-process: the tool
   body alone (`spec.input_model.model_validate` + `spec.run(ToolContext(...))` on a client
   without audit observer), `CallPipeline.call` (visibility check, intent record, policy decision
   record, run, outcome record, one audit record per Tableau request), and the whole MCP round trip
   through `mcp.Client`. Once more with `audit.synchronous: normal` for comparison.
3. **find_owners over the large site** (20,000 workbooks, 10,000 users) with 50 ms injected
   latency per request (`tableau-steward emulator --size large --latency-ms 50`), through
   `mcp.Client` with cold caches each run; wall time median of `--large-runs`, requests by kind,
   the floor ceil(N/1000)/concurrency x 50 ms, the size of the result text, and the CPU time the
   client process and the emulator process spent (to tell latency-bound from CPU-bound).

Every TableauClient signs in with its own PAT: Tableau allows one session per PAT, so clients that
share one sign each other out and each switch costs a 401 and a re-sign-in.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from . import ROOT, machine_note, markdown_table, median, percentile

# One PAT per TableauClient: Tableau (and the emulator) allow one session per PAT, so two clients
# sharing a PAT would sign each other out and every switch would cost a 401 and a re-sign-in.
PATS = [(f"bench-pat-{i}", f"bench-pat-secret-{i}") for i in range(7)]
_AUTH_PATHS = ("/auth/signin", "/auth/signout", "/serverInfo")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

POLICY = """\
version: 1
mode: read-write
local:
  principal: bench
  roles: [admin]
roles:
  admin: {{}}
rules:
  - id: everything
    tools: ["*"]
    roles: [admin]
    effect: allow
approvals:
  approvers: {{roles: [admin]}}
audit:
  path: audit.sqlite
  synchronous: {synchronous}
"""

# The demo-site arguments (from the README's examples where there is one).
INSPECT_TARGET = ("workbook", "Rolling Revenue Forecast")
INSPECT_USER = "tom.becker@example.com"
GROUPS_USER = "dana.whitfield@example.com"
REFRESH_TARGET = "Warehouse Query History"  # a datasource with an extract that refreshes successfully


# -- small helpers -----------------------------------------------------------------------------


def _ms(seconds: list[float]) -> tuple[float, float]:
    values = [s * 1000 for s in seconds]
    return median(values), percentile(values, 95)


def _fmt(ms: float) -> str:
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def _endpoint(method: str, path: str) -> str:
    """'GET workbooks', 'GET projects/{id}/permissions', ... (API version and site id stripped)."""
    path = re.sub(r"^/api/[^/]+/sites/[^/]+/?", "", path)
    path = re.sub(r"^/api/[^/]+/?", "", path)
    return f"{method} {_UUID.sub('{id}', path).rstrip('/')}"


def _api_entries(control: Any) -> list[Any]:
    return [e for e in control.get_request_log() if not e.path.endswith(_AUTH_PATHS)]


def _breakdown(entries: list[Any], calls: int) -> str:
    counts = Counter(_endpoint(e.method, e.path) for e in entries)
    return ", ".join(
        f"{name} ×{_count(n / calls)}" for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def _write_policy(directory: Path, synchronous: str = "full") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "policies.yaml"
    path.write_text(textwrap.dedent(POLICY.format(synchronous=synchronous)))
    return path


class _NoProgress:
    """Stands in for the MCP request context when CallPipeline.call is called directly."""

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        return None


@asynccontextmanager
async def _governed(url: str, site: str, policy_path: Path, pat: tuple[str, str], **tunables: Any):
    """(services, mcp.Client) for a governed server on `url`, as tests/server/conftest.py builds it."""
    from mcp import Client

    from server.app import build_server
    from server.config import Settings
    from server.governed import Governance
    from server.pipeline import Services
    from server.tableau import TableauClient

    governance = Governance.open(policy_path)
    try:
        async with TableauClient(Settings.for_pat(url, site, *pat, **tunables)) as tableau:
            services = Services(tableau=tableau, governance=governance)
            async with Client(build_server(services)) as client:
                yield services, client
    finally:
        governance.close()


async def _call(client: Any, tool: str, args: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, args)
    if result.is_error:
        text = result.content[0].text if result.content else str(result)
        raise RuntimeError(f"{tool}({args}) failed: {text}")
    return result


# -- part 1: per-tool latency on the demo site ---------------------------------------------------


@dataclass
class ToolCase:
    name: str
    args: Callable[[int], dict[str, Any]]
    bare: Callable[[Any, int], Awaitable[Any]]
    bare_label: str
    warmup_args: dict[str, Any] | None = None
    reset: Callable[[Any], Awaitable[None]] | None = None
    warm: bool = True
    check: Callable[[Any, int], None] | None = None
    tableau_calls: bool = True


@dataclass
class ToolResult:
    case: ToolCase
    calls: int
    cold: list[float] = field(default_factory=list)
    cold_requests: float = 0.0
    cold_breakdown: str = ""
    warm: list[float] = field(default_factory=list)
    warm_requests: float | None = None
    bare: list[float] = field(default_factory=list)
    bare_requests: float = 0.0
    bare_breakdown: str = ""


def _pick_membership_pairs(site: Any, count: int) -> list[tuple[str, str]]:
    """(user name, group name) pairs where the user is licensed and not yet a member."""
    groups = sorted((g for g in site.groups.values() if g.name != "All Users"), key=lambda g: g.name)
    users = sorted((u for u in site.users.values() if str(u.site_role) != "Unlicensed"), key=lambda u: u.name)
    pairs: list[tuple[str, str]] = []
    for user in users:
        for group in groups:
            if user.id not in group.member_ids:
                pairs.append((user.name, group.name))
                break
        if len(pairs) == count:
            break
    if len(pairs) < count:  # more pairs than users: take further groups per user
        seen = set(pairs)
        for user in users:
            for group in groups:
                pair = (user.name, group.name)
                if user.id not in group.member_ids and pair not in seen and len(pairs) < count:
                    pairs.append(pair)
                    seen.add(pair)
    return pairs


def _demo_cases(site: Any, calls: int, governance: Any) -> list[ToolCase]:
    from tools.content import OWNED_KINDS
    from tools.groups import ADD_USER_TO_GROUP
    from tools.jobs import POLL_CAP, POLL_GROWTH, POLL_START

    failed_job = min((j for j in site.jobs.values() if j.status == "Failed"), key=lambda j: j.id)
    job_id = failed_job.id
    pairs = _pick_membership_pairs(site, max(1, calls // 2))
    any_user = pairs[0][0]  # licensed; "All Users" holds everyone, so the warm-up call changes nothing
    request = governance.create_approval(
        "bench",
        ADD_USER_TO_GROUP,
        {"user": pairs[0][0], "group": pairs[0][1]},
        "bench: a pending request for get_request",
        call_id="call_bench",
    )

    def users_named(users: dict[str, Any], name: str) -> Any:
        return next(u for u in users.values() if u.name == name)

    async def bare_list_content(c: Any, i: int) -> None:
        await c.project_tree()
        await c.list_content("workbook")

    async def bare_find_owners(c: Any, i: int) -> None:
        for kind in OWNED_KINDS:  # the tool lists the kinds one after another
            await c.project_tree()
            await c.list_content(kind)
        await c.users_by_id()

    async def bare_list_users(c: Any, i: int) -> None:
        await c.users_by_id()

    async def bare_list_groups(c: Any, i: int) -> None:
        await c.list_groups()
        user = users_named(await c.users_by_id(), GROUPS_USER)
        await c.user_groups(user.id)

    async def bare_inspect(c: Any, i: int) -> None:
        kind, target = INSPECT_TARGET
        tree = await c.project_tree()
        [record] = await c.list_content(kind, filters=[("name", "eq", target)])
        async with anyio.create_task_group() as tasks:
            for node in tree.ancestors(record.project_id):
                tasks.start_soon(c.permissions, "project", node.id)
        await c.permissions(kind, record.id)  # the target's project is not locked: its own rules govern
        users = await c.users_by_id()
        await c.list_groups()
        await c.user_groups(users_named(users, INSPECT_USER).id)

    async def bare_list_jobs(c: Any, i: int) -> None:
        start = (datetime.now(UTC) - timedelta(days=7)).replace(microsecond=0)
        jobs = await c.list_jobs(filters=[("createdAt", "gte", start.strftime("%Y-%m-%dT%H:%M:%SZ"))])
        oldest = datetime.min.replace(tzinfo=UTC)
        page = sorted(jobs, key=lambda j: (j.created_at or oldest, j.id), reverse=True)[:50]
        async with anyio.create_task_group() as tasks:
            for job in page:
                if job.status == "Failed":
                    tasks.start_soon(c.get_job, job.id)

    async def bare_get_job(c: Any, i: int) -> None:
        await c.get_job(job_id)

    async def bare_get_request(c: Any, i: int) -> None:
        governance.request_view(governance.get_request(request.id))

    async def bare_refresh(c: Any, i: int) -> None:
        await c.project_tree()
        [record] = await c.list_content("datasource", filters=[("name", "eq", REFRESH_TARGET)])
        started = await c.refresh("datasource", record.id)
        delay = POLL_START
        job = await c.get_job(started.job_id)
        while job.completed_at is None:  # the tool's poll schedule
            await anyio.sleep(delay)
            delay = min(delay * POLL_GROWTH, POLL_CAP)
            job = await c.get_job(started.job_id)

    async def bare_add(c: Any, i: int) -> None:
        user_name, group_name = pairs[(i // 2) % len(pairs)]
        user = users_named(await c.users_by_id(), user_name)
        group = next(g for g in await c.list_groups() if g.name == group_name)
        await c.add_group_member(group.id, user.id)
        await c.group_members(group.id)

    async def remove_pairs(c: Any) -> None:
        users = await c.users_by_id()
        groups = {g.name: g for g in await c.list_groups()}
        for user_name, group_name in pairs:
            await c.remove_group_member(groups[group_name].id, users_named(users, user_name).id)
        c.invalidate_caches()

    def check_add(result: Any, i: int) -> None:
        status = result.structured_content["result"]["status"]
        wanted = "added" if i % 2 == 0 else "no_change"
        if status != wanted:
            raise RuntimeError(f"add_user_to_group call {i}: {status}, expected {wanted}")

    def check_refresh(result: Any, i: int) -> None:
        outcome = result.structured_content["result"]["outcome"]
        if outcome != "succeeded":
            raise RuntimeError(f"refresh_and_wait call {i}: {outcome}")

    return [
        ToolCase(
            "list_content",
            lambda i: {"kind": "workbook"},
            bare_list_content,
            "project_tree + list_content(workbook)",
        ),
        ToolCase(
            "find_owners",
            lambda i: {},
            bare_find_owners,
            "project_tree + list_content × 4 kinds (in turn) + users_by_id",
        ),
        ToolCase("list_users", lambda i: {}, bare_list_users, "users_by_id"),
        ToolCase(
            "list_groups",
            lambda i: {"user": GROUPS_USER},
            bare_list_groups,
            "list_groups + users_by_id + user_groups",
        ),
        ToolCase(
            "inspect_permissions",
            lambda i: {"kind": INSPECT_TARGET[0], "target": INSPECT_TARGET[1], "user": INSPECT_USER},
            bare_inspect,
            "project_tree + list_content(name eq) + permissions × (2 projects + workbook) + users_by_id "
            "+ list_groups + user_groups",
        ),
        ToolCase(
            "list_jobs",
            lambda i: {},
            bare_list_jobs,
            "list_jobs(7 days) + get_job per failed job on the page",
        ),
        ToolCase("get_job", lambda i: {"job_id": job_id}, bare_get_job, "get_job"),
        ToolCase(
            "get_request",
            lambda i: {"request_id": request.id},
            bare_get_request,
            "approval store read (no Tableau call)",
            tableau_calls=False,
        ),
        ToolCase(
            "add_user_to_group",
            lambda i: {"user": pairs[(i // 2) % len(pairs)][0], "group": pairs[(i // 2) % len(pairs)][1]},
            bare_add,
            "users_by_id + list_groups + add_group_member + group_members",
            warmup_args={"user": any_user, "group": "All Users"},
            reset=remove_pairs,
            check=check_add,
        ),
        ToolCase(
            "refresh_and_wait",
            lambda i: {"kind": "datasource", "target": REFRESH_TARGET},
            bare_refresh,
            "project_tree + list_content(name eq) + refresh + get_job polls (0.5 s, ×1.4)",
            warm=False,
            check=check_refresh,
        ),
    ]


async def _time(
    n: int, one: Callable[[int], Awaitable[Any]], before: Callable[[], None] | None = None
) -> list[float]:
    times = []
    for i in range(n):
        if before is not None:
            before()
        started = time.perf_counter()
        await one(i)
        times.append(time.perf_counter() - started)
    return times


async def measure_tool(
    case: ToolCase, calls: int, services: Any, client: Any, bare: Any, control: Any
) -> ToolResult:
    result = ToolResult(case, calls)

    async def via_mcp(i: int) -> None:
        reply = await _call(client, case.name, case.args(i))
        if case.check is not None:
            case.check(reply, i)

    # pipeline, cold caches
    control.reset_request_log()
    result.cold = await _time(calls, via_mcp, services.tableau.invalidate_caches)
    entries = _api_entries(control)
    result.cold_requests, result.cold_breakdown = len(entries) / calls, _breakdown(entries, calls)
    if case.reset is not None:
        await case.reset(bare)

    # pipeline, warm caches
    if case.warm:
        services.tableau.invalidate_caches()
        await _call(client, case.name, case.warmup_args or case.args(0))
        control.reset_request_log()
        result.warm = await _time(calls, via_mcp)
        result.warm_requests = len(_api_entries(control)) / calls
        if case.reset is not None:
            await case.reset(bare)

    # the bare access-layer calls, cold caches
    control.reset_request_log()
    result.bare = await _time(calls, lambda i: case.bare(bare, i), bare.invalidate_caches)
    entries = _api_entries(control)
    result.bare_requests, result.bare_breakdown = len(entries) / calls, _breakdown(entries, calls)
    if case.reset is not None:
        await case.reset(bare)
    return result


# -- part 2: governance overhead ------------------------------------------------------------------


@dataclass
class OverheadRow:
    label: str
    body: list[float]
    pipeline: list[float]
    mcp: list[float]
    records_per_call: int
    requests_per_call: float
    client_validation: list[float]


async def measure_overhead(
    spec: Any,
    args: dict[str, Any],
    label: str,
    rounds: int,
    direct: Any,
    pipeline: Any,
    pipeline_services: Any,
    client: Any,
    control: Any,
) -> OverheadRow:
    from server.toolkit import ToolContext

    counter = iter(range(10**9))

    async def body() -> None:
        ctx = ToolContext(tableau=direct, principal="bench", call_id=f"call_direct_{next(counter)}")
        await spec.run(ctx, spec.input_model.model_validate(args))

    async def governed() -> None:
        await pipeline.call(spec, spec.input_model.model_validate(args), _NoProgress())

    async def mcp_call() -> None:
        await _call(client, spec.name, args)

    # warm all three paths' caches; count audit records and requests of one governed call
    for fn in (body, governed, mcp_call):
        await fn()
    audit = pipeline_services.governance.audit
    seq = audit.head()[0]
    control.reset_request_log()
    await governed()
    records = audit.head()[0] - seq
    requests = len(_api_entries(control))

    times: dict[str, list[float]] = {"body": [], "pipeline": [], "mcp": []}
    for _ in range(rounds):  # interleaved, so drift on the shared machine hits all three alike
        for name, fn in (("body", body), ("pipeline", governed), ("mcp", mcp_call)):
            started = time.perf_counter()
            await fn()
            times[name].append(time.perf_counter() - started)
    # The Python MCP client validates structuredContent against the tool's output schema (jsonschema):
    # client-side work that an in-process measurement includes; time it on its own.
    from jsonschema.validators import validator_for
    from referencing import Registry

    schema = next(t for t in (await client.list_tools()).tools if t.name == spec.name).output_schema
    validator = validator_for(schema)(schema, registry=Registry())
    structured = (await _call(client, spec.name, args)).structured_content
    validation = []
    for _ in range(rounds):
        started = time.perf_counter()
        validator.validate(structured)
        validation.append(time.perf_counter() - started)
    return OverheadRow(label, times["body"], times["pipeline"], times["mcp"], records, requests, validation)


async def run_demo(
    args: argparse.Namespace, workdir: Path
) -> tuple[list[ToolResult], list[OverheadRow], float]:
    from emulator.generator import build_site
    from emulator.process import EmulatorProcess
    from emulator.testing import add_admin_pat
    from server.config import Settings
    from server.pipeline import CallPipeline, Services
    from server.tableau import TableauClient
    from tools.registry import TOOLS, TOOLS_BY_NAME

    site = build_site(size="demo", seed=7, content_url="demo")
    for pat in PATS:
        add_admin_pat(site, *pat)
    started = time.perf_counter()
    emulator = EmulatorProcess(site, latency_ms=0, job_speed=args.job_speed).start()
    startup = time.perf_counter() - started
    tunables = {"rate_limit": 0, "rate_limit_per_hour": 0}
    try:
        async with AsyncExitStack() as stack:
            services, client = await stack.enter_async_context(
                _governed(
                    emulator.url, site.content_url, _write_policy(workdir / "full"), PATS[0], **tunables
                )
            )

            def settings(i: int) -> Settings:
                return Settings.for_pat(emulator.url, site.content_url, *PATS[i], **tunables)

            bare = await stack.enter_async_context(TableauClient(settings(1)))
            control = emulator.control
            assert control is not None

            results = []
            for case in _demo_cases(site, args.calls, services.governance):
                began = time.perf_counter()
                results.append(await measure_tool(case, args.calls, services, client, bare, control))
                print(f"  {case.name}: {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)

            # governance overhead: body on `bare` (no observer), pipeline.call on its own client
            # (with the audit observer), the MCP round trip on the server's client
            rows = []
            piped_client = await stack.enter_async_context(TableauClient(settings(2)))
            pipeline = CallPipeline(TOOLS)
            piped = Services(tableau=piped_client, governance=services.governance)
            await stack.enter_async_context(pipeline.attached(piped))
            job_id = min(j.id for j in site.jobs.values() if j.status == "Failed")
            overhead_cases = [
                ("list_users", {}, "list_users (users cached: 0 requests)"),
                (
                    "list_content",
                    {"kind": "workbook"},
                    "list_content workbooks (project tree cached: 1 request)",
                ),
                ("get_job", {"job_id": job_id}, "get_job (1 request)"),
            ]
            for name, call_args, label in overhead_cases:
                rows.append(
                    await measure_overhead(
                        TOOLS_BY_NAME[name],
                        call_args,
                        label,
                        args.overhead_calls,
                        bare,
                        pipeline,
                        piped,
                        client,
                        control,
                    )
                )
            print("  governance overhead (full): done", file=sys.stderr, flush=True)

            # the same with audit.synchronous: normal (no fsync per record)
            services_n, client_n = await stack.enter_async_context(
                _governed(
                    emulator.url,
                    site.content_url,
                    _write_policy(workdir / "normal", "normal"),
                    PATS[3],
                    **tunables,
                )
            )
            piped_n_client = await stack.enter_async_context(TableauClient(settings(4)))
            pipeline_n = CallPipeline(TOOLS)
            piped_n = Services(tableau=piped_n_client, governance=services_n.governance)
            await stack.enter_async_context(pipeline_n.attached(piped_n))
            rows.append(
                await measure_overhead(
                    TOOLS_BY_NAME["list_users"],
                    {},
                    "list_users, `audit.synchronous: normal`",
                    args.overhead_calls,
                    bare,
                    pipeline_n,
                    piped_n,
                    client_n,
                    control,
                )
            )
    finally:
        emulator.stop()
    return results, rows, startup


# -- part 3: find_owners over the large site --------------------------------------------------------


@dataclass
class LargeRow:
    label: str
    times: list[float]
    requests: int
    workbook_pages: int
    by_endpoint: str
    chars: int
    total_owners: int
    total_items: int
    latency_ms: float
    client_cpu: list[float]
    emulator_cpu: list[float]


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a child process has used so far; 0 where /proc is missing."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def large_emulator(latency_ms: float) -> Iterator[tuple[str, str, Any, float, int]]:
    command = [
        sys.executable,
        "-m",
        "server.cli",
        "emulator",
        "--size",
        "large",
        "--port",
        "0",
        "--latency-ms",
        str(latency_ms),
    ]
    for name, secret in PATS:
        command += ["--pat", f"{name}:{secret}"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    try:
        if " at http" not in line:
            raise RuntimeError(f"the emulator did not start: {line!r}")
        url = line.split(" at ", 1)[1].split()[0]
        site = line.split("site='", 1)[1].split("'", 1)[0]
        from emulator.process import RemoteControl

        yield url, site, RemoteControl(url), time.perf_counter() - started, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


async def run_large(
    args: argparse.Namespace, workdir: Path, emulator: tuple[str, str, Any, float, int]
) -> tuple[list[LargeRow], float, dict[str, list[float]]]:
    from server.config import Settings
    from server.tableau import TableauClient

    latency = args.large_latency_ms
    workbook = {"kind": "workbook"}
    # (label, find_owners arguments or None for the bare access-layer calls, tunables, latency ms)
    configs: list[tuple[str, dict[str, Any] | None, dict[str, Any], float]] = [
        ('find_owners `{"kind": "workbook"}`, shipped limits (4 in flight, 40,000 calls/hour)', workbook, {}, latency),
        ('find_owners `{"kind": "workbook"}`, rate limiter off', workbook, {"rate_limit_per_hour": 0}, latency),
        (
            'find_owners `{"kind": "workbook"}`, rate limiter off, XML list reader',
            workbook,
            {"rate_limit_per_hour": 0, "list_format": "xml"},
            latency,
        ),
        (
            "bare: project_tree → list_content(workbook) → users_by_id, rate limiter off",
            None,
            {"rate_limit_per_hour": 0},
            latency,
        ),
        (
            'find_owners `{"kind": "workbook"}`, rate limiter off, **0 ms** latency',
            workbook,
            {"rate_limit_per_hour": 0},
            0.0,
        ),
        ("find_owners `{}` (all kinds), shipped limits", {}, {}, latency),
    ]
    rows = []
    url, site, control, startup, pid = emulator
    for i, (label, call_args, tunables, ms) in enumerate(configs):
        control.set_latency(ms)
        tunables = dict(tunables)
        list_format = tunables.pop("list_format", None)  # a client attribute, not a setting
        times: list[float] = []
        client_cpu: list[float] = []
        emulator_cpu: list[float] = []
        entries: list[Any] = []
        text, structured = "", {"total_owners": 0, "total_items": 0}
        if call_args is None:
            async with TableauClient(Settings.for_pat(url, site, *PATS[i], **tunables)) as bare:
                bare.list_format = list_format or bare.list_format
                for _ in range(args.large_runs):
                    bare.invalidate_caches()
                    control.reset_request_log()
                    cpu, emu_cpu, began = time.process_time(), _process_cpu(pid), time.perf_counter()
                    await bare.project_tree()
                    records = await bare.list_content("workbook")
                    await bare.users_by_id()
                    times.append(time.perf_counter() - began)
                    client_cpu.append(time.process_time() - cpu)
                    emulator_cpu.append(_process_cpu(pid) - emu_cpu)
                    entries = _api_entries(control)
                structured = {"total_owners": len({r.owner_id for r in records}), "total_items": len(records)}
        else:
            policy = _write_policy(workdir / f"large{i}")
            async with _governed(url, site, policy, PATS[i], **tunables) as (services, client):
                services.tableau.list_format = list_format or services.tableau.list_format
                for _ in range(args.large_runs):
                    services.tableau.invalidate_caches()
                    control.reset_request_log()
                    cpu, emu_cpu, began = time.process_time(), _process_cpu(pid), time.perf_counter()
                    reply = await _call(client, "find_owners", call_args)
                    times.append(time.perf_counter() - began)
                    client_cpu.append(time.process_time() - cpu)
                    emulator_cpu.append(_process_cpu(pid) - emu_cpu)
                    entries = _api_entries(control)
                    text, structured = reply.content[0].text, reply.structured_content
        pages = sum(1 for e in entries if _endpoint(e.method, e.path) == "GET workbooks")
        rows.append(
            LargeRow(
                label,
                times,
                len(entries),
                pages,
                _breakdown(entries, 1),
                len(text),
                structured["total_owners"],
                structured["total_items"],
                ms,
                client_cpu,
                emulator_cpu,
            )
        )
        print(f"  large: {label}: {[round(t, 2) for t in times]}", file=sys.stderr, flush=True)
    control.set_latency(0)
    sort_costs = _page_sort_cost(url, site, args.large_runs * 2)
    control.set_latency(latency)
    return rows, startup, sort_costs


def _page_sort_cost(url: str, site: str, pages: int) -> dict[str, list[float]]:
    """Seconds per 1000-workbook page (0 ms latency), with and without the access layer's sort."""
    from xml.etree import ElementTree

    import requests

    from server.tableau.client import CONTENT_SORT, LIST_FIELDS

    name, secret = PATS[-1]
    body = (
        f'<tsRequest><credentials personalAccessTokenName="{name}" personalAccessTokenSecret="{secret}">'
        f'<site contentUrl="{site}"/></credentials></tsRequest>'
    )
    ns = "{http://tableau.com/api}"
    results: dict[str, list[float]] = {}
    with requests.Session() as session:
        reply = session.post(f"{url}/api/3.24/auth/signin", data=body, timeout=30)
        reply.raise_for_status()
        credentials = ElementTree.fromstring(reply.content).find(f"{ns}credentials")
        site_node = credentials.find(f"{ns}site") if credentials is not None else None
        assert credentials is not None and site_node is not None
        site_id = site_node.get("id", "")
        session.headers["X-Tableau-Auth"] = credentials.get("token", "")
        fields = ",".join(LIST_FIELDS["workbook"])
        sort = ",".join(CONTENT_SORT)
        for label, extra in (
            (f"`sort={sort}` (what the access layer sends)", {"sort": sort}),
            ("no sort", {}),
        ):
            times = []
            for number in range(2, 2 + pages):
                params = {"pageSize": 1000, "pageNumber": number, "fields": fields, **extra}
                started = time.perf_counter()
                page = session.get(f"{url}/api/3.24/sites/{site_id}/workbooks", params=params, timeout=60)
                page.raise_for_status()
                times.append(time.perf_counter() - started)
            results[label] = times
        session.post(f"{url}/api/3.24/auth/signout", timeout=10)
    return results


# -- report ---------------------------------------------------------------------------------------


def report(args: argparse.Namespace, argv: list[str], demo: Any, large: Any, elapsed: float) -> str:
    out: list[str] = []
    cmd = " ".join([".venv/bin/python -m bench tool_latency", *argv])
    out.append("## MCP tools (issue 5) and governance overhead (issue 6)\n")
    out.append(f"Measured {datetime.now().date().isoformat()}.\n")
    out.append(f"Command: `{cmd}` (whole run {elapsed:.0f} s)  ")
    out.append(f"Machine: {machine_note()}\n")
    if demo is not None:
        results, overhead, startup = demo
        out.append("### Per-tool latency on the demo site\n")
        out.append(
            f"Emulator: demo site in a child process (`EmulatorProcess`, 0 ms injected latency, job speed "
            f"{args.job_speed:g}; started in {startup:.1f} s). Server: `build_server(Services(...))` with an "
            "allow-everything policy, audit on disk (`synchronous: full`, as shipped), reached through an "
            f"in-process `mcp.Client`. {args.calls} calls per tool and column; client-side rate limiter off "
            "(`rate_limit=0`, `rate_limit_per_hour=0`) for the MCP server and the bare client alike, 4 requests in flight. *cold*: "
            "`invalidate_caches()` before every call or iteration; *warm*: the caches kept between calls "
            "(cache_ttl 60 s, as shipped). Requests per call are counted in the emulator's log (sign-in, "
            "serverInfo, sign-out excluded). Each client signs in with its own PAT (one session per PAT). "
            '`add_user_to_group` alternates "added" and "no_change" over 50 (user, group) pairs (removed '
            "again, untimed, after each column); `get_request` reads a pending request created directly in the "
            "approval store, so its bare column is that store read; `refresh_and_wait` refreshes an extract that "
            "takes 12.7 simulated seconds (25 ms at speed 500), so every call waits out the first 0.5 s poll "
            "interval, and it has no warm column. p95 is nearest-rank.\n"
        )
        rows = []
        for r in results:
            cold_med, cold_p95 = _ms(r.cold)
            bare_med, bare_p95 = _ms(r.bare)
            warm = (
                f"{_fmt(median([t * 1000 for t in r.warm]))} ({_count(r.warm_requests)} req)"
                if r.warm
                else "—"
            )
            ratio = f"{cold_med / bare_med:.2f}×" if r.case.tableau_calls else "n/a"
            rows.append(
                [
                    f"`{r.case.name}`",
                    _fmt(cold_med),
                    _fmt(cold_p95),
                    warm,
                    _fmt(bare_med),
                    _fmt(bare_p95),
                    ratio,
                    _count(r.cold_requests),
                    _count(r.bare_requests),
                ]
            )
        out.append(
            markdown_table(
                [
                    "tool",
                    "MCP cold median ms",
                    "p95 ms",
                    "MCP warm median ms (requests)",
                    "bare cold median ms",
                    "bare p95 ms",
                    "MCP / bare",
                    "requests/call (MCP)",
                    "requests/call (bare)",
                ],
                rows,
            )
        )
        out.append("\nWhat each call asked Tableau (cold, per call) and what the bare column calls:\n")
        out.append(
            markdown_table(
                ["tool", "arguments", "requests per MCP call, cold", "bare access-layer calls"],
                [
                    [
                        f"`{r.case.name}`",
                        "`" + _json(r.case.args(0)) + "`",
                        r.cold_breakdown or "(none)",
                        r.case.bare_label,
                    ]
                    for r in results
                ],
            )
        )
        out.append("")
        out.append("### Governance overhead of a read tool call (median, in-process)\n")
        out.append(
            f"Warm caches, {args.overhead_calls} rounds, the three paths interleaved in each round. *body*: "
            "`spec.input_model.model_validate(args)` + `spec.run(ToolContext(...))` on a client without "
            "the audit observer; *pipeline*: `CallPipeline.call` (visibility check, intent record, decision "
            "record, run, outcome record, plus one `tableau_request` record per HTTP request); *MCP*: "
            "`mcp.Client.call_tool` over the in-memory transport (JSON-RPC, argument and output models, "
            "the pipeline).\n"
        )
        rows = []
        for o in overhead:
            b, p, m = (median([t * 1000 for t in ts]) for ts in (o.body, o.pipeline, o.mcp))
            v = median([t * 1000 for t in o.client_validation])
            rows.append(
                [
                    o.label,
                    f"{o.requests_per_call:g}",
                    o.records_per_call,
                    _fmt(b),
                    _fmt(p),
                    _fmt(m),
                    f"{p - b:+.2f}",
                    f"{m - p:+.2f} ({v:.2f})",
                    f"{m - b:+.2f}",
                    f"{percentile([t * 1000 for t in o.mcp], 95):.1f}",
                ]
            )
        out.append(
            markdown_table(
                [
                    "read tool",
                    "requests",
                    "audit records/call",
                    "body ms",
                    "pipeline ms",
                    "MCP ms",
                    "governance (pipeline − body) ms",
                    "MCP protocol (MCP − pipeline) ms (of which client-side output validation)",
                    "total overhead ms",
                    "MCP p95 ms",
                ],
                rows,
            )
        )
        out.append("")
    if large is not None:
        rows_l, startup, sort_costs = large
        n = 20000
        floor = math.ceil(n / 1000) / 4 * args.large_latency_ms
        out.append("### `find_owners` over the large site (20,000 workbooks, 50 ms per request)\n")
        out.append(
            f"Emulator: `tableau-steward emulator --size large --latency-ms {args.large_latency_ms:g}` in a child "
            f"process (started in {startup:.1f} s); the same governed server and `mcp.Client`; caches cleared "
            f"before each of {args.large_runs} runs; wall time is the median. Floor = ceil(20000/1000) / 4 in "
            f"flight × {args.large_latency_ms:g} ms = {floor:.0f} ms (the workbook pages alone). Result size is "
            "the characters of the text content the model reads (budget < 25,000).\n"
        )
        rows = []
        for r in rows_l:
            med = median(r.times) * 1000
            row_floor = math.ceil(n / 1000) / 4 * r.latency_ms
            request_floor = math.ceil(r.requests / 4) * r.latency_ms  # every request, 4 in flight
            rows.append(
                [
                    r.label,
                    f"{med:.0f}",
                    f"{min(r.times) * 1000:.0f}–{max(r.times) * 1000:.0f}",
                    r.requests,
                    r.workbook_pages,
                    r.requests - r.workbook_pages,
                    f"{med / row_floor:.1f}×" if row_floor else "—",
                    f"{request_floor:.0f} ms, {med / request_floor:.2f}×" if request_floor else "—",
                    f"{r.chars:,}" if r.chars else "—",
                    f"{median(r.client_cpu) * 1000:.0f}",
                    f"{median(r.emulator_cpu) * 1000:.0f}",
                    f"{r.total_owners:,} owners / {r.total_items:,} items",
                ]
            )
        out.append(
            markdown_table(
                [
                    "call",
                    "median ms",
                    "range ms",
                    "requests",
                    "workbook pages",
                    "other requests",
                    "vs floor",
                    "⌈requests ÷ 4⌉ × latency, wall ÷ it",
                    "result chars",
                    "client CPU ms",
                    "emulator CPU ms",
                    "totals in result",
                ],
                rows,
            )
        )
        out.append("\nRequests of the last run, by endpoint:\n")
        out.extend(f"- {r.label}: {r.by_endpoint}" for r in rows_l)
        out.append(
            "\nOne 1000-workbook page from the same emulator at 0 ms latency (plain `requests`, the access "
            "layer's `fields`), with and without its sort:\n"
        )
        out.append(
            markdown_table(
                ["query", "pages", "median ms", "min ms", "max ms"],
                [
                    [
                        label,
                        len(ts),
                        f"{median(ts) * 1000:.0f}",
                        f"{min(ts) * 1000:.0f}",
                        f"{max(ts) * 1000:.0f}",
                    ]
                    for label, ts in sort_costs.items()
                ],
            )
        )
        out.append("")
    return "\n".join(out)


def _count(value: float | None) -> str:
    return "—" if value is None else f"{round(value, 2):g}"


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value, separators=(", ", ": "))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m bench tool_latency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--calls", type=int, default=100, help="calls per tool and column (default 100)")
    parser.add_argument("--overhead-calls", type=int, default=200, help="rounds of the overhead comparison")
    parser.add_argument("--job-speed", type=float, default=500)
    parser.add_argument("--large-runs", type=int, default=3)
    parser.add_argument("--large-latency-ms", type=float, default=50)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-demo", action="store_true")
    args, _unknown = parser.parse_known_args(argv)  # `python -m bench` passes everyone's options
    mine = [a for a in argv if a not in _unknown]

    for name in ("TSC", "server", "mcp", "httpx"):  # TSC logs every listing at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-tool-latency-") as tmp:
        workdir = Path(tmp)
        demo = None if args.skip_demo else anyio.run(run_demo, args, workdir)
        large = None
        if not args.skip_large:
            with large_emulator(args.large_latency_ms) as emulator:
                large = anyio.run(run_large, args, workdir, emulator)
    print(report(args, mine, demo, large, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
