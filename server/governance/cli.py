"""`tableau-steward policy|audit|approvals ...`: the administrator's side of governance.

    tableau-steward policy check [FILE | --policy FILE]
    tableau-steward policy explain --tool T [--args JSON] [--principal P] [--facts JSON]
    tableau-steward policy hash-token [--principal P] [--role R ...] [--generate]   (token on stdin)
    tableau-steward audit verify [--expect-head ANCHOR] | anchor | tail [-n N] [--follow] [--json]
                          | export --format jsonl [--output F]
    tableau-steward approvals list [--status S] | show ID | approve ID [--reason R] | deny ID --reason R
                              (through the server's admin API, with an admin token: approvals_cli.py)

The policy file is --policy (or the positional FILE of `policy check`), else $STEWARD_POLICY, else
./policies.yaml. Audit and approval commands use the policy's audit store unless --store is given.
The approvals commands never write the store: the server decides, as the principal of the admin token
the command sends (see docs/GOVERNANCE.md).
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

from server.governance import approvals, approvals_cli
from server.governance.audit import ANCHOR_PREFIX, AuditLog, AuditRecord, AuditUnavailable
from server.governance.display import escape_controls
from server.governance.policy import (
    CONDITION_FACTS,
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
    """The tool catalog the CLI validates policies against: the server's real registry, so `policy check` and
    the approvals CLI accept exactly the policies the server loads (DEFAULT_CATALOG lags behind new tools)."""
    from server.governed import tool_catalog  # the registry imports every tool module: only when needed

    return tool_catalog()


# -- registration ---------------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_policy(subparsers)
    _register_audit(subparsers)
    approvals_cli.register(subparsers)


def _policy_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", help="Policy file (default: $STEWARD_POLICY or ./policies.yaml).")


def _store_options(parser: argparse.ArgumentParser) -> None:
    _policy_option(parser)
    parser.add_argument("--store", help="The audit store to use instead of the policy's: a SQLite file or a postgresql:// URL.")


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
        "--audience",
        choices=["mcp", "admin"],
        default="mcp",
        help="mcp (default): the token calls tools over HTTP. admin: the token approves and denies requests "
        "through the admin API (`tableau-steward approvals`); it can never call a tool, and an mcp token never "
        "decides.",
    )
    token.add_argument(
        "--generate",
        action="store_true",
        help="Generate a new random token instead of reading one from stdin.",
    )
    token.set_defaults(handler=cmd_policy_hash_token)


def _register_audit(subparsers: argparse._SubParsersAction) -> None:
    audit = subparsers.add_parser("audit", help="Verify, read and export the audit log.")
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")

    verify = sub.add_parser(
        "verify", help="Check the keyed hash chain (needs the signing key); exit 1 naming the first bad record."
    )
    _store_options(verify)
    verify.add_argument(
        "--expect-head",
        metavar="ANCHOR",
        help="An anchor printed earlier by `audit anchor` (or a file holding it): the chain must still contain "
        "that record unchanged, which catches a roll-back to an older copy of the store.",
    )
    verify.set_defaults(handler=cmd_audit_verify)

    anchor = sub.add_parser(
        "anchor", help="Verify the chain and print its sealed head, to keep outside the store (a ticket, a bucket)."
    )
    _store_options(anchor)
    anchor.set_defaults(handler=cmd_audit_anchor)

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
        policy.audit_store, readonly=readonly, synchronous=policy.audit_synchronous, redact=policy.redact_names
    )


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
    print(f"  admin token principals: {', '.join(summary['admin_token_principals']) or '(none: no approver can decide yet)'}")
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
    if args.audience != "mcp":
        print(f"  audience: {args.audience}")
    return 0


# -- audit ---------------------------------------------------------------------------------------------------------


def _expected_head(value: str | None) -> str | None:
    """`--expect-head` is the anchor itself or the path of a file holding it."""
    if value is None or value.startswith(ANCHOR_PREFIX):
        return value
    try:
        return Path(value).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"--expect-head is neither an anchor nor a readable file: {exc.strerror}") from None


def cmd_audit_verify(args: argparse.Namespace) -> int:
    try:
        log = _open_log(args, readonly=True)
        result = log.verify(expect_head=_expected_head(args.expect_head))
        tampered = approvals.ApprovalStore(log).integrity_problems() if result.ok else []
    except (PolicyError, AuditUnavailable, ValueError) as exc:
        _err(str(exc))
        return 1
    for request_id, problems in tampered:
        print(escape_controls(f"TAMPERED approval request {request_id}: {'; '.join(problems)}"))
    if result.ok and not tampered:
        print(f"OK: {result.reason}; head seq {result.head_seq} hash {result.head_hash}")
        return 0
    if result.ok:
        print(f"BROKEN: {len(tampered)} approval request(s) do not match their seals (the server never runs them)")
        return 1
    print(
        f"BROKEN at record {result.first_bad_seq}: {result.reason} ({result.checked} records verified before it)"
    )
    return 1


def cmd_audit_anchor(args: argparse.Namespace) -> int:
    try:
        log = _open_log(args, readonly=True)
        anchor = log.anchor()
    except (PolicyError, AuditUnavailable) as exc:
        _err(str(exc))
        return 1
    print(anchor)
    print(
        f"anchored record {anchor.seq}; keep this line outside the store and check it later with "
        "`tableau-steward audit verify --expect-head ANCHOR`",
        file=sys.stderr,
    )
    return 0


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
            parts.append(f"{key}={escape_controls(f[key])}")
    for key in ("reason", "error"):
        if f.get(key):
            parts.append(f"{key}={str(f[key])[:120]!r}")
    return f"{record.seq:>6} {record.ts} {escape_controls(record.kind):<18} {' '.join(parts)}"


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
