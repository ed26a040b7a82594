"""`tableau-steward approvals list|show|approve|deny`: a client of the server's admin API.

    tableau-steward approvals list [--status S]
    tableau-steward approvals show ID [--json]
    tableau-steward approvals approve ID [--reason R]
    tableau-steward approvals deny ID --reason R
    (each with [--server URL] [--token-file FILE] [--policy FILE | --store FILE])

The commands never open the store: the server records every decision, as the principal of the admin token
the command sends. The token comes from $STEWARD_ADMIN_TOKEN, else --token-file, else a no-echo prompt.
The server is --server URL, else the discovery file the running server writes next to its store (the
policy's audit.path, or --store).
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import os
import stat
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from server.governance.admin_api import LOOPBACK_HOSTS, PREFIX, DiscoveryError, discovery_path, read_discovery
from server.governance.approvals import STATUSES
from server.governance.display import escape_controls
from server.governance.policy import PolicyError, default_policy_path, load_policy

TOKEN_ENV = "STEWARD_ADMIN_TOKEN"
TIMEOUT_SECONDS = 30


class CliError(Exception):
    """A problem to report on stderr (exit 1)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    approvals = subparsers.add_parser(
        "approvals", help="List, inspect, approve and deny gated calls (through the server's admin API)."
    )
    sub = approvals.add_subparsers(dest="approvals_command", required=True, metavar="SUBCOMMAND")

    listing = sub.add_parser("list", help="Approval requests, newest first.")
    _connection_options(listing)
    listing.add_argument("--status", choices=STATUSES)
    listing.set_defaults(handler=cmd_list)

    show = sub.add_parser("show", help="One request: arguments, targets, site, preview, decisions, result.")
    _connection_options(show)
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="Print the request as JSON.")
    show.set_defaults(handler=cmd_show)

    approve = sub.add_parser("approve", help="Approve a pending request, as the principal of your admin token.")
    _connection_options(approve)
    approve.add_argument("id")
    approve.add_argument("--reason", default=None)
    approve.set_defaults(handler=cmd_approve)

    deny = sub.add_parser("deny", help="Deny a pending request (or revoke an approval that has not run).")
    _connection_options(deny)
    deny.add_argument("id")
    deny.add_argument("--reason", required=True)
    deny.set_defaults(handler=cmd_deny)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        metavar="URL",
        help="The server's admin API, e.g. http://127.0.0.1:8765 (default: the discovery file next to the store).",
    )
    parser.add_argument(
        "--token-file", metavar="FILE", help=f"A file holding your admin token (default: ${TOKEN_ENV}, else a prompt)."
    )
    parser.add_argument("--policy", help="Policy file, to find the store (default: $STEWARD_POLICY or ./policies.yaml).")
    parser.add_argument("--store", help="The audit store whose discovery file to read, instead of the policy's.")


# -- where and who -----------------------------------------------------------------------------------------------


def admin_url(args: argparse.Namespace) -> str:
    """The admin API's base URL (ending in /admin), from --server or the discovery file."""
    if args.server:
        url = args.server.rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(f"--server must be an http(s) URL such as http://127.0.0.1:8765, not {args.server!r}")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise CliError(f"{parts.hostname} is not loopback: use https:// so the admin token does not cross the network in clear")
        return url if url.endswith(PREFIX) else url + PREFIX
    if args.store:
        store = Path(args.store)
    else:
        from server.governance.cli import known_tools

        try:
            store = load_policy(Path(args.policy) if args.policy else default_policy_path(), known_tools()).audit_path
        except PolicyError as exc:
            raise CliError(f"{exc}\n(pass --server URL to skip reading the policy)") from None
    try:
        return read_discovery(discovery_path(store))
    except DiscoveryError as exc:
        raise CliError(str(exc)) from None


def admin_token(args: argparse.Namespace) -> str:
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token and args.token_file:
        path = Path(args.token_file)
        try:
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                raise CliError(f"--token-file {path} is readable by others; chmod 600 it (it holds an approver's token)")
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"cannot read --token-file {args.token_file}: {exc.strerror}") from None
    if not token and sys.stdin.isatty():
        token = getpass.getpass("Admin token (not echoed): ").strip()
    if not token:
        raise CliError(f"an admin token is needed: set {TOKEN_ENV}, pass --token-file, or run in a terminal")
    return token


def call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One admin API request; the decoded JSON answer, or CliError with the server's explanation."""
    url = admin_url(args) + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_unredirected_header("Authorization", f"Bearer {admin_token(args)}")  # never sent on to a redirect
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise CliError(_explain(exc)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(f"no admin API answers at {admin_url(args)} ({reason}); is the server running?") from None
    except ValueError:
        raise CliError(f"{url} did not answer with JSON; is it a Tableau Steward admin API?") from None


def _explain(exc: urllib.error.HTTPError) -> str:
    try:
        answer = json.loads(exc.read() or b"{}")
        message = answer.get("error") if isinstance(answer, dict) else None
    except ValueError:
        message = None
    if exc.code == 401:
        return "refused: the server did not accept this admin token (an MCP token is never accepted here)"
    return escape_controls(message or f"the server answered HTTP {exc.code}")


# -- the commands ------------------------------------------------------------------------------------------------------


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%SZ")


def _row(view: dict[str, Any]) -> str:
    approvals = f"{sum(d['decision'] == 'approved' for d in view['decisions'])}/{view['required_approvals']}"
    preview = view["preview"] if len(view["preview"]) <= 70 else view["preview"][:67] + "..."
    flag = "" if view.get("integrity") == "ok" else "  [SEAL BROKEN]"
    return escape_controls(
        f"{view['request_id']}  {view['status']:<9} {view['tool']:<18} by {view['requested_by']:<14} "
        f"{approvals:>4}  expires {_when(view['expires_at'])}  {preview}{flag}"
    )


def _reported(command: Callable[..., int]) -> Callable[..., int]:
    """A command whose CliError is reported on stderr with exit status 1."""

    @functools.wraps(command)
    def run(args: argparse.Namespace, *more: Any) -> int:
        try:
            return command(args, *more)
        except CliError as exc:
            print(f"tableau-steward: {exc}", file=sys.stderr)
            return 1

    return run


@_reported
def cmd_list(args: argparse.Namespace) -> int:
    query = f"?status={args.status}" if args.status else ""
    answer = call(args, "GET", f"/requests{query}")
    if not answer["requests"]:
        print("no approval requests" + (f" with status {args.status}" if args.status else ""))
    for view in answer["requests"]:
        print(_row(view))
    if answer["total"] > len(answer["requests"]):
        print(f"(showing the newest {len(answer['requests'])} of {answer['total']}; filter with --status)")
    return 0


def _lines(view: dict[str, Any]) -> list[str]:
    site = view.get("site") or {}
    lines = [
        f"request   {view['request_id']}  ({view['status']})",
        f"tool      {view['tool']}",
        f"arguments {json.dumps(view['arguments'], ensure_ascii=False, sort_keys=True)}",
        f"preview   {view['preview']}",
        f"site      {site.get('content_url') or 'Default'} (id {site.get('site_id')}) at {site.get('server_url')}",
        f"requester {view['requested_by']}   created {_when(view['created_at'])}   expires {_when(view['expires_at'])}",
        f"needs     {view['required_approvals']} approval(s)",
    ]
    for target in view.get("targets", []):
        shown = ", ".join(f"{k}={v}" for k, v in sorted(target.items()) if k not in ("role", "kind", "id"))
        lines.append(f"target    {target['kind']} {target['id']} ({shown})")
    for decision in view["decisions"]:
        reason = f": {decision['reason']}" if decision.get("reason") else ""
        lines.append(f"decision  {decision['decision']} by {decision['approver']} at {_when(decision['at'])}{reason}")
    if view.get("result"):
        lines.append(f"result    {view['result']}")
    if view.get("integrity") != "ok":
        lines.append(f"INTEGRITY {view.get('integrity')}")
    return [escape_controls(line) for line in lines]


@_reported
def cmd_show(args: argparse.Namespace) -> int:
    view = call(args, "GET", f"/requests/{quote(args.id, safe='')}")
    # ensure_ascii: every control or bidi character in a name or reason is printed as an escape.
    print(json.dumps(view, indent=2, sort_keys=True) if args.json else "\n".join(_lines(view)))
    return 0


@_reported
def _decide(args: argparse.Namespace, action: str) -> int:
    view = call(args, "POST", f"/requests/{quote(args.id, safe='')}/{action}", {"reason": args.reason})
    approvals = sum(d["decision"] == "approved" for d in view["decisions"])
    if action == "deny":
        print(f"{view['request_id']} denied.")
    elif view["status"] == "approved":
        print(
            f"{view['request_id']} approved ({approvals} of {view['required_approvals']}); the server runs it "
            "at its next poll or when the requester calls get_request."
        )
    else:
        print(
            f"{view['request_id']}: approval recorded ({approvals} of {view['required_approvals']}); "
            "another approver must also approve."
        )
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, "approve")


def cmd_deny(args: argparse.Namespace) -> int:
    return _decide(args, "deny")
