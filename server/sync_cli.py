"""`tableau-steward sync groups FILE.csv|FILE.yaml [--apply]`: group sync for scheduled jobs.

The same engine as the sync_group_members tool (tools/sync.py). Without --apply it prints the diff
(reads only, each Tableau request audited). With --apply it calls the tool through the governed call
path in process (server/pipeline.py `CallPipeline.call`), as the policy's local principal: the policy decides, a gated sync
becomes an approval request (printed with its id), and nothing bypasses approval. An approved request
runs on a Tableau Steward server sharing the store (its background runner), or when the requester
checks it with get_request.

Files: CSV with a header row holding `group` and `member` (or `user`, `email`) columns, one member a
row; YAML as `{GROUP: [MEMBER, ...], ...}` or `{groups: [{group: GROUP, members: [...]}, ...]}`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio

MEMBER_COLUMNS = ("member", "user", "email")


class SyncFileError(Exception):
    """The file cannot be read as desired group members: says what to fix."""


def register(subparsers: argparse._SubParsersAction) -> None:
    sync = subparsers.add_parser("sync", help="Reconcile the site with a source of truth (groups).")
    what = sync.add_subparsers(dest="sync_command", required=True, metavar="WHAT")
    groups = what.add_parser("groups", help="Make group members match FILE (.csv or .yaml); --apply to request it.")
    groups.add_argument("file", help="CSV (group,member columns) or YAML ({group: [members]}).")
    groups.add_argument("--apply", action="store_true", help="Request the change through the policy and approval.")
    groups.add_argument("--remove-missing", action="store_true", help="Also remove members not in the file.")
    groups.add_argument(
        "--policy", default=os.environ.get("STEWARD_POLICY", "policies.yaml"),
        help="Policy file (default: $STEWARD_POLICY or ./policies.yaml).",
    )
    groups.set_defaults(handler=run_sync_groups)


def read_desired(path: Path) -> list[dict[str, Any]]:
    """The desired members per group, in the sync_group_members argument shape."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SyncFileError(f"cannot read {path}: {exc.strerror}") from None
    wanted = _from_csv(text) if path.suffix.lower() == ".csv" else _from_yaml(text)
    if not wanted:
        raise SyncFileError(f"{path} lists no groups")
    return [{"group": group, "members": members} for group, members in wanted.items()]


def _from_csv(text: str) -> dict[str, list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    columns = {name.strip().lower(): name for name in reader.fieldnames or ()}
    member = next((columns[c] for c in MEMBER_COLUMNS if c in columns), None)
    if "group" not in columns or member is None:
        raise SyncFileError("the CSV needs a header row with a 'group' and a 'member' (or 'user', 'email') column")
    wanted: dict[str, list[str]] = {}
    for line, row in enumerate(reader, start=2):
        group, name = (row.get(columns["group"]) or "").strip(), (row.get(member) or "").strip()
        if not group:
            raise SyncFileError(f"line {line}: no group")
        members = wanted.setdefault(group, [])
        if name:  # a row with a group and no member keeps the group in the sync (an empty group)
            members.append(name)
    return wanted


def _from_yaml(text: str) -> dict[str, list[str]]:
    import yaml

    from server.governance.safe_yaml import compose

    try:
        _, data = compose(text)
    except yaml.YAMLError as exc:  # UnsafeYaml is one too: say what, never a traceback
        raise SyncFileError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    if isinstance(data, dict) and set(data) == {"groups"} and isinstance(data["groups"], list):
        pairs = [(g.get("group"), g.get("members")) if isinstance(g, dict) else (None, None) for g in data["groups"]]
    elif isinstance(data, dict):
        pairs = list(data.items())
    else:
        raise SyncFileError("the YAML must map each group to its list of members")
    wanted: dict[str, list[str]] = {}
    for group, members in pairs:
        if not isinstance(group, str) or not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise SyncFileError(f"group {group!r}: give a group name and a list of member names or emails")
        wanted[group] = members
    return wanted


def run_sync_groups(args: argparse.Namespace) -> int:
    from server.config import ConfigError, Settings

    try:
        arguments = {"groups": read_desired(Path(args.file)), "remove_missing": args.remove_missing}
        settings = Settings.from_env()
    except (SyncFileError, ConfigError) as exc:
        print(f"tableau-steward sync groups: {exc}", file=sys.stderr)
        return 2
    return anyio.run(_apply if args.apply else _dry_run, settings, Path(args.policy), arguments)


async def _governed_services(settings: Any, policy: Path):
    from contextlib import asynccontextmanager

    from server.governed import Governance
    from server.pipeline import Services
    from server.tableau import TableauClient

    @asynccontextmanager
    async def services():
        governance = Governance.open(policy)
        try:
            client = TableauClient(settings)
            governance.observe(client)  # every Tableau request, reads included, is audited
            async with client:
                yield Services(tableau=client, governance=governance)
        finally:
            governance.close()

    return services()


async def _dry_run(settings: Any, policy: Path, arguments: dict[str, Any]) -> int:
    """Print the diff; changes nothing."""
    from server.tableau.errors import TableauError
    from server.toolkit import ToolContext, ToolFailure
    from tools.sync import SyncGroupMembersInput, describe_plan, plan_sync

    async with await _governed_services(settings, policy) as services:
        principal = services.governance.current_principal()
        ctx = ToolContext(tableau=services.tableau, principal=principal, call_id="sync-dry-run")
        try:
            plans = await plan_sync(ctx, SyncGroupMembersInput.model_validate(arguments))
        except (ToolFailure, TableauError) as exc:
            print(f"tableau-steward sync groups: {exc}", file=sys.stderr)
            return 1
    for plan in plans:
        print(describe_plan(plan))
    changes = sum(len(p.to_add) + len(p.to_remove) for p in plans)
    print(f"{changes} changes. Nothing was changed: run with --apply to request them (the policy decides).")
    return 0


class _NoProgress:
    """Stands in for the MCP request context: the CLI shows no progress."""

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        return None


async def _apply(settings: Any, policy: Path, arguments: dict[str, Any]) -> int:
    """Call sync_group_members through the governed call path (visibility, intent record, policy, approval
    request, audit) as the policy's local principal. The pipeline is used without `attached`: a one-shot
    command neither runs approved requests nor serves (and so never replaces) a running server's admin API."""
    from mcp.server.mcpserver.exceptions import ToolError

    from server.pipeline import CallPipeline
    from tools.registry import TOOLS, TOOLS_BY_NAME

    spec = TOOLS_BY_NAME["sync_group_members"]
    async with await _governed_services(settings, policy) as services:
        pipeline = CallPipeline(TOOLS)
        pipeline.services = services
        try:
            answer = await pipeline.call(spec, spec.input_model.model_validate(arguments), _NoProgress())
        except ToolError as exc:
            print(f"tableau-steward sync groups: {exc}", file=sys.stderr)
            return 1
    if answer.status == "pending_approval":
        approval = answer.approval
        print(f"Request {approval.request_id} is pending approval (expires {approval.expires_at:%Y-%m-%d %H:%M} UTC).")
        print(approval.preview)
        print("An approver decides with `tableau-steward approvals approve ID`; a running server then applies it.")
        return 0
    print(json.dumps(answer.result.model_dump(mode="json"), indent=2))
    return 0
