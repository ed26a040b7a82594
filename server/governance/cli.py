"""`tableau-steward policy|audit|approvals ...`: the administrator's side of governance.

    tableau-steward policy check [FILE | --policy FILE]
    tableau-steward policy explain --tool T [--args JSON] [--principal P] [--facts JSON]
    tableau-steward policy hash-token [--principal P] [--role R ...] [--generate]   (token on stdin)
    tableau-steward audit verify | tail [-n N] [--follow] [--json] | export --format jsonl [--output F]
    tableau-steward approvals list [--status S] | show ID | approve ID --as NAME [--reason R]
                              | deny ID --as NAME --reason R

The policy file is --policy (or the positional FILE of `policy check`), else $STEWARD_POLICY, else
./policies.yaml. Audit and approval commands use the policy's audit store unless --store is given.
The approvals commands are the approval surface: whoever runs them can write the store, and
`--as` names the approver the policy must list (see docs/GOVERNANCE.md).
"""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from server.governance.approvals import STATUSES, ApprovalError, ApprovalRequest, ApprovalStore
from server.governance.audit import AuditLog, AuditRecord, AuditUnavailable
from server.governance.policy import (
    CONDITION_FACTS,
    DEFAULT_CATALOG,
    CallFacts,
    Policy,
    PolicyError,
    ToolInfo,
    decide,
    default_policy_path,
    hash_token,
    load_policy,
    visible_tools,
)

MIN_TOKEN_LENGTH = 16


def known_tools() -> Mapping[str, ToolInfo]:
    """The tool catalog the CLI validates policies against (the lead points this at the real registry)."""
    return DEFAULT_CATALOG


# -- registration ---------------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_policy(subparsers)
    _register_audit(subparsers)
    _register_approvals(subparsers)


def _policy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", help="Policy file (default: $STEWARD_POLICY or ./policies.yaml).")


def _store_options(parser: argparse.ArgumentParser) -> None:
    _policy_option(parser)
    parser.add_argument("--store", help="The audit store (SQLite) to use instead of the policy's audit.path.")


def _register_policy(subparsers: argparse._SubParsersAction) -> None:
    policy = subparsers.add_parser(
        "policy", help="Check and explain the governance policy; hash bearer tokens."
    )
    sub = policy.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")

    check = sub.add_parser("check", help="Validate a policy file and print what it allows.")
    check.add_argument("file", nargs="?", help="Policy file (the same as --policy; kept for older scripts).")
    _policy_option(check)
    check.add_argument("--json", action="store_true", help="Print the summary as JSON.")
    check.set_defaults(handler=cmd_policy_check)

    explain = sub.add_parser("explain", help="Show the decision for one call and the rule that made it.")
    _policy_option(explain)
    explain.add_argument("--tool", required=True)
    explain.add_argument("--args", default="{}", help="The call's arguments as a JSON object.")
    explain.add_argument("--principal", help="Who calls (default: the policy's local principal).")
    explain.add_argument(
        "--facts",
        help="Facts about the target as JSON (project_path, group_name, content_kind, target_user_site_role); "
        "they override what can be derived from --args.",
    )
    explain.set_defaults(handler=cmd_policy_explain)

    token = sub.add_parser("hash-token", help="Hash a bearer token (read from stdin) into a policy entry.")
    token.add_argument("--principal", default="CHANGE-ME", help="The principal the token authenticates.")
    token.add_argument("--role", action="append", default=[], help="A role for the principal (repeatable).")
    token.add_argument(
        "--generate",
        action="store_true",
        help="Generate a new random token instead of reading one from stdin.",
    )
    token.set_defaults(handler=cmd_policy_hash_token)


def _register_audit(subparsers: argparse._SubParsersAction) -> None:
    audit = subparsers.add_parser("audit", help="Verify, read and export the audit log.")
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")

    verify = sub.add_parser("verify", help="Check the hash chain; exit 1 naming the first bad record.")
    _store_options(verify)
    verify.set_defaults(handler=cmd_audit_verify)

    tail = sub.add_parser("tail", help="Print the last records (and, with --follow, new ones as they come).")
    _store_options(tail)
    tail.add_argument("-n", "--lines", type=int, default=20, help="How many records (default 20).")
    tail.add_argument("--follow", "-f", action="store_true", help="Keep printing new records (Ctrl-C stops).")
    tail.add_argument("--json", action="store_true", help="Print each record as one JSON line.")
    tail.set_defaults(handler=cmd_audit_tail)

    export = sub.add_parser("export", help="Export every record, with its hashes.")
    _store_options(export)
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.add_argument("--output", "-o", help="Write to this file instead of stdout.")
    export.set_defaults(handler=cmd_audit_export)


def _register_approvals(subparsers: argparse._SubParsersAction) -> None:
    approvals = subparsers.add_parser("approvals", help="List, inspect, approve and deny gated calls.")
    sub = approvals.add_subparsers(dest="approvals_command", required=True, metavar="SUBCOMMAND")

    listing = sub.add_parser("list", help="Approval requests, newest first.")
    _store_options(listing)
    listing.add_argument("--status", choices=STATUSES)
    listing.set_defaults(handler=cmd_approvals_list)

    show = sub.add_parser("show", help="One request: arguments, preview, decisions, result.")
    _store_options(show)
    show.add_argument("id")
    show.set_defaults(handler=cmd_approvals_show)

    approve = sub.add_parser("approve", help="Approve a pending request as an approver named by the policy.")
    _store_options(approve)
    approve.add_argument("id")
    approve.add_argument("--as", dest="actor", required=True, metavar="NAME", help="The approving principal.")
    approve.add_argument("--reason", default=None)
    approve.set_defaults(handler=cmd_approvals_approve)

    deny = sub.add_parser("deny", help="Deny a pending request (or revoke an approval that has not run).")
    _store_options(deny)
    deny.add_argument("id")
    deny.add_argument("--as", dest="actor", required=True, metavar="NAME")
    deny.add_argument("--reason", required=True)
    deny.set_defaults(handler=cmd_approvals_deny)


# -- helpers ---------------------------------------------------------------------------------------------------


def _err(message: str) -> None:
    print(f"tableau-steward: {message}", file=sys.stderr)


def _load(path: str | None) -> Policy:
    return load_policy(Path(path) if path else default_policy_path(), known_tools())


def _open_log(args: argparse.Namespace, *, readonly: bool) -> AuditLog:
    if getattr(args, "store", None):
        return AuditLog.open(args.store, readonly=readonly)
    policy = _load(args.policy)
    return AuditLog.open(
        policy.audit_path, readonly=readonly, synchronous=policy.audit_synchronous, redact=policy.redact_names
    )


def _store_path(args: argparse.Namespace, policy: Policy | None) -> Path:
    if args.store:
        return Path(args.store)
    assert policy is not None
    return policy.audit_path


def _open_store(args: argparse.Namespace, *, readonly: bool) -> tuple[ApprovalStore | None, Policy | None]:
    """The approval store (None when reading and no store exists yet) and the policy (None with --store only)."""
    policy = _load(args.policy) if (args.policy or not args.store or not readonly) else None
    path = _store_path(args, policy)
    if readonly and not path.exists():
        return None, policy
    if policy is not None and not args.store:
        log = AuditLog.open(
            path, readonly=readonly, synchronous=policy.audit_synchronous, redact=policy.redact_names
        )
    else:
        log = AuditLog.open(path, readonly=readonly)
    return ApprovalStore(log), policy


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


# -- policy ------------------------------------------------------------------------------------------------------


def cmd_policy_check(args: argparse.Namespace) -> int:
    if args.file and args.policy and Path(args.file) != Path(args.policy):
        print(f"Two policy files given ({args.file} and --policy {args.policy}): give one.", file=sys.stderr)
        return 2
    try:
        policy = _load(args.file or args.policy)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    summary = policy.summary()
    principals = sorted(policy.known_principals())
    summary["visible_tools"] = {
        p: sorted(visible_tools(policy, policy.principal_named(p))) for p in principals
    }
    if getattr(args, "json", False):
        print(_json(summary))
        return 0
    print(f"OK: {summary['source']}")
    print(f"  mode: {policy.mode}    policy hash: {policy.hash[:16]}…")
    local = policy.local_principal()
    print(
        f"  local principal: {local.name if local else '(none: stdio is refused)'}"
        + (f" roles {sorted(local.roles)}" if local else "")
    )
    print(f"  HTTP token principals: {', '.join(summary['token_principals']) or '(none)'}")
    print(f"  rules ({len(policy.rules)}):")
    for rule in summary["rules"]:
        who = ", ".join([*(f"role:{r}" for r in rule["roles"]), *rule["principals"]])
        when = "; ".join(f"{k} in {v}" for k, v in rule["when"].items())
        unless = "; ".join(f"{k} in {v}" for k, v in rule["unless"].items())
        scope = (f" when {when}" if when else "") + (f" unless {unless}" if unless else "")
        print(
            f"    {rule['id']}: {rule['effect']} {', '.join(rule['tools']) or '(no tools)'} for {who}{scope}"
        )
    print(
        f"  approvers: {', '.join(summary['approvers']) or '(none)'};"
        f" {policy.required_approvals} distinct approver(s) needed, requests live {_duration(policy.approval_ttl)}"
    )
    print(f"  audit store: {summary['audit_path']}")
    for name, tools in summary["visible_tools"].items():
        print(f"  {name} sees: {', '.join(tools) or '(nothing)'}")
    for warning in policy.warnings:
        print(f"  warning: {warning}")
    return 0


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


_UUID_CHARS = set("0123456789abcdefABCDEF-")


def derive_facts(tool: str, arguments: Mapping[str, Any]) -> dict[str, str]:
    """The facts `explain` can read straight off the arguments. The server resolves them from the site
    instead (a name or id becomes the group's real name, the content's real project path)."""
    facts: dict[str, str] = {}
    if tool == "refresh_and_wait":
        if arguments.get("kind"):
            facts["content_kind"] = str(arguments["kind"])
        if arguments.get("project"):
            facts["project_path"] = str(arguments["project"]).strip("/")
        if arguments.get("target"):
            facts["target_name"] = str(arguments["target"])
    elif tool == "add_user_to_group":
        group = arguments.get("group")
        if group and not (len(str(group)) == 36 and set(str(group)) <= _UUID_CHARS):
            facts["group_name"] = str(group)
        if arguments.get("user"):
            facts["target_user"] = str(arguments["user"])
    return facts


def cmd_policy_explain(args: argparse.Namespace) -> int:
    try:
        policy = _load(args.policy)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    try:
        arguments = json.loads(args.args)
        extra = json.loads(args.facts) if args.facts else {}
    except ValueError as exc:
        _err(f"--args and --facts must be JSON: {exc}")
        return 2
    if not isinstance(arguments, dict) or not isinstance(extra, dict):
        _err("--args and --facts must be JSON objects")
        return 2
    try:
        facts = CallFacts.from_mapping({**derive_facts(args.tool, arguments), **extra})
    except ValueError as exc:
        _err(str(exc))
        return 2
    if args.principal:
        principal = policy.principal_named(args.principal)
    else:
        principal = policy.local_principal()
        if principal is None:
            _err("the policy has no local principal; pass --principal")
            return 2
    decision = decide(policy, principal, args.tool, facts)
    print(f"decision: {decision.effect}")
    print(f"  principal: {principal.name} (roles: {', '.join(sorted(principal.roles)) or 'none'})")
    print(f"  tool: {args.tool}")
    print(f"  facts: {json.dumps(facts.as_dict(), sort_keys=True)}")
    print(
        f"  rule: {decision.rule_id or '(none)'}"
        + (f" - {decision.rule_description}" if decision.rule_description else "")
    )
    print(f"  reason: {decision.reason}")
    if decision.needs_approval:
        print(
            f"  approvals: {decision.required_approvals} distinct approver(s) from: "
            f"{', '.join(policy.eligible_approvers()) or '(none)'}; the requester never approves"
        )
    if decision.trace:
        print("  rules considered:")
        for line in decision.trace:
            print(f"    {line}")
    info = policy.catalog.get(args.tool)
    relevant = CONDITION_FACTS if info is None or info.facts is None else sorted(info.facts)
    missing = [f for f in relevant if getattr(facts, f) is None]
    if missing and info is not None and info.is_write:
        print(
            f"  note: unresolved facts {missing}; the server resolves them from the site (pass --facts to try values)"
        )
    return 0


def cmd_policy_hash_token(args: argparse.Namespace) -> int:
    if args.generate:
        token = secrets.token_urlsafe(32)
        print("# New token (shown once; give it to the client, keep it out of the policy):")
        print(f"# {token}")
    else:
        if sys.stdin.isatty():
            token = getpass.getpass("Token (not echoed): ")
        else:
            token = sys.stdin.readline()
        token = token.strip()
        if not token:
            _err("no token on stdin (pipe it in, or use --generate)")
            return 2
        if len(token) < MIN_TOKEN_LENGTH:
            _err(
                f"refusing a token shorter than {MIN_TOKEN_LENGTH} characters; use --generate for a strong one"
            )
            return 2
    roles = ", ".join(args.role)
    print("# Paste under http.tokens in the policy (or into its tokens_file):")
    print(f"- hash: {hash_token(token)}")
    print(f"  principal: {args.principal}")
    print(f"  roles: [{roles}]")
    return 0


# -- audit ---------------------------------------------------------------------------------------------------------


def cmd_audit_verify(args: argparse.Namespace) -> int:
    try:
        log = _open_log(args, readonly=True)
        result = log.verify()
    except (PolicyError, AuditUnavailable) as exc:
        _err(str(exc))
        return 1
    if result.ok:
        print(f"OK: {result.reason}; head seq {result.head_seq} hash {result.head_hash}")
        return 0
    print(
        f"BROKEN at record {result.first_bad_seq}: {result.reason} ({result.checked} records verified before it)"
    )
    return 1


def _line(record: AuditRecord) -> str:
    f = record.fields
    parts: list[str] = []
    for key in (
        "principal",
        "requester",
        "tool",
        "effect",
        "decision",
        "status",
        "approval_id",
        "approver",
        "actor",
        "method",
        "path",
        "attempt",
        "call_id",
    ):
        if f.get(key) is not None:
            parts.append(f"{key}={f[key]}")
    for key in ("reason", "error"):
        if f.get(key):
            parts.append(f"{key}={str(f[key])[:120]!r}")
    return f"{record.seq:>6} {record.ts} {record.kind:<18} {' '.join(parts)}"


def cmd_audit_tail(args: argparse.Namespace) -> int:
    try:
        log = _open_log(args, readonly=True)
        records = log.tail(args.lines)
    except (PolicyError, AuditUnavailable) as exc:
        _err(str(exc))
        return 1

    def show(record: AuditRecord) -> None:
        print(json.dumps(record.to_dict(), sort_keys=True) if args.json else _line(record), flush=True)

    for record in records:
        show(record)
    if args.follow:
        for record in log.follow(after_seq=records[-1].seq if records else 0):
            show(record)
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    try:
        log = _open_log(args, readonly=True)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as fp:
                count = log.export_jsonl(fp)
            print(f"exported {count} records to {args.output}", file=sys.stderr)
        else:
            log.export_jsonl(sys.stdout)
    except (PolicyError, AuditUnavailable) as exc:
        _err(str(exc))
        return 1
    return 0


# -- approvals --------------------------------------------------------------------------------------------------


def _row(request: ApprovalRequest) -> str:
    approvals = f"{len(request.approvers)}/{request.required_approvals}"
    preview = request.preview if len(request.preview) <= 70 else request.preview[:67] + "..."
    return (
        f"{request.id}  {request.status:<9} {request.tool:<18} by {request.requester:<14} "
        f"{approvals:>4}  expires {_when(request.expires_at)}  {preview}"
    )


def cmd_approvals_list(args: argparse.Namespace) -> int:
    try:
        store, _ = _open_store(args, readonly=True)
        requests = store.list(args.status) if store else []
    except (PolicyError, AuditUnavailable) as exc:
        _err(str(exc))
        return 1
    if not requests:
        print("no approval requests" + (f" with status {args.status}" if args.status else ""))
    for request in requests:
        print(_row(request))
    return 0


def cmd_approvals_show(args: argparse.Namespace) -> int:
    try:
        store, _ = _open_store(args, readonly=True)
        request = store.get(args.id) if store else None
    except (PolicyError, AuditUnavailable) as exc:
        _err(str(exc))
        return 1
    if request is None:
        _err(f"no approval request {args.id}")
        return 1
    print(_json(request.view()))
    return 0


def _decide(args: argparse.Namespace, approve: bool) -> int:
    try:
        store, policy = _open_store(args, readonly=False)
        assert store is not None and policy is not None
        if approve:
            request = store.approve(args.id, args.actor, args.reason, policy)
        else:
            request = store.deny(args.id, args.actor, args.reason, policy)
    except (PolicyError, AuditUnavailable) as exc:
        _err(str(exc))
        return 1
    except ApprovalError as exc:
        _err(f"refused: {exc}")
        return 1
    if approve and request.status == "approved":
        print(
            f"{request.id} approved ({len(request.approvers)} of {request.required_approvals}); the server runs it "
            "at its next poll or when the requester calls get_request."
        )
    elif approve:
        print(
            f"{request.id}: approval recorded ({len(request.approvers)} of {request.required_approvals}); "
            "another approver must also approve."
        )
    else:
        print(f"{request.id} denied.")
    return 0


def cmd_approvals_approve(args: argparse.Namespace) -> int:
    return _decide(args, approve=True)


def cmd_approvals_deny(args: argparse.Namespace) -> int:
    return _decide(args, approve=False)


def build_parser() -> argparse.ArgumentParser:
    """A parser with only these subcommands (tests, and `python -m server.governance.cli`)."""
    parser = argparse.ArgumentParser(prog="tableau-steward")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
