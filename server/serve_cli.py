"""`tableau-steward serve` and `tableau-steward demo`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

log = logging.getLogger("tableau_steward")

DEMO_PAT_NAME = "steward-server"
DEMO_PAT_SECRET = "demo-only-secret-not-for-production"


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("serve", help="Run the MCP server against the Tableau site in TABLEAU_* variables.")
    _transport_arguments(serve)
    serve.set_defaults(handler=run_serve)

    demo = subparsers.add_parser("demo", help="Run the MCP server against an embedded emulated demo site.")
    _transport_arguments(demo)
    demo.add_argument("--size", choices=("demo", "large"), default="demo", help="Which emulated site to build.")
    demo.add_argument("--latency-ms", type=int, default=0, help="Latency the emulated site adds to each request.")
    demo.add_argument("--job-speed", type=float, default=1.0, help="How fast emulated jobs run (2 = twice as fast).")
    demo.add_argument("--verbose", action="store_true", help="Also log every request to the emulated site.")
    demo.set_defaults(handler=run_demo)


def _transport_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default loopback).")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765).")
    parser.add_argument(
        "--policy",
        default=os.environ.get("STEWARD_POLICY", "policies.yaml"),
        help="Policy file (default: $STEWARD_POLICY or ./policies.yaml).",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="Serve HTTP without bearer tokens; allowed on loopback only, as the local principal.",
    )
    parser.add_argument(
        "--stateless-http",
        action="store_true",
        help="No MCP sessions: every HTTP request stands alone, so replicas behind one URL need no session "
        "affinity (progress notifications are dropped; see docs/DEPLOY.md).",
    )
    parser.add_argument("--log-level", default=os.environ.get("STEWARD_LOG_LEVEL", "INFO"))


def _configure_logging(level: str) -> None:
    # stderr only: in stdio mode stdout is the MCP wire.
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _services_factory(settings, args: argparse.Namespace):
    from server.governed import Governance
    from server.pipeline import Services
    from server.tableau import TableauClient
    from server.tableau.identities import UserSessions

    @asynccontextmanager
    async def open_services() -> AsyncIterator[Services]:
        governance = Governance.open(
            Path(args.policy), transport=args.transport, no_auth=args.no_auth, host=args.host, port=args.port,
            extra_tokens=_extra_tokens(args),
        )
        try:
            client = TableauClient(settings)
            governance.observe(client)  # before connecting: the sign-in and serverInfo requests are audited
            identities = UserSessions(settings) if governance.per_user else None  # no connected app: fails here
            async with client:
                try:
                    yield Services(tableau=client, governance=governance, identities=identities)
                finally:
                    if identities is not None:
                        await identities.close()
        finally:
            governance.close()

    return open_services


def _extra_tokens(args: argparse.Namespace) -> tuple:
    """Token entries held outside the policy file: only `demo` sets one (its approver's admin token)."""
    return tuple(getattr(args, "extra_tokens", ()))


def _check_http_binding(args: argparse.Namespace) -> None:
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if args.transport == "http" and args.no_auth and not loopback:
        raise SystemExit("--no-auth is only allowed when binding to loopback (127.0.0.1, localhost or ::1).")


def _port_in_use(args: argparse.Namespace) -> str | None:
    """Why the HTTP port cannot be bound, checked before anything starts (a uvicorn traceback otherwise)."""
    if args.transport != "http":
        return None
    try:
        with socket.create_server((args.host, args.port)):
            return None
    except OSError as exc:
        return f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); pass another --port."


def _no_connected_app(policy, settings) -> str | None:
    """`identity: per_user` signs in as each caller through a connected app: without one, stop here."""
    from server.config import ConfigError

    if policy.identity != "per_user":
        return None
    try:
        settings.as_user("check")
    except ConfigError as exc:
        return str(exc)
    return None


def _cannot_sign_in(settings) -> str | None:
    """Sign in and out once before serving, so bad credentials or an unreachable server is one line."""
    import anyio

    from server.tableau import TableauClient
    from server.tableau.errors import TableauError

    async def check() -> None:
        async with TableauClient(settings):
            pass

    try:
        anyio.run(check)
    except TableauError as exc:
        return str(exc)
    return None


def _serve(settings, args: argparse.Namespace) -> int:
    from server.app import build_server
    from server.governance import AuditLog
    from server.governed import AuditUnavailable, Governance, PolicyError, http_auth_kwargs, signing_key_for

    _check_http_binding(args)
    try:
        policy = Governance.load(
            Path(args.policy), transport=args.transport, no_auth=args.no_auth, host=args.host,
            extra_tokens=_extra_tokens(args),
        )
        # The key and the store, checked before serving: a missing key or a store sealed with another key
        # stops the server here with what to do, not in the middle of the MCP handshake.
        AuditLog.open(policy.audit_store, key=signing_key_for(policy)).close()
    except (PolicyError, AuditUnavailable) as exc:
        print(f"tableau-steward: {exc}", file=sys.stderr)
        return 2
    problem = _port_in_use(args) or _no_connected_app(policy, settings) or _cannot_sign_in(settings)
    if problem:
        print(f"tableau-steward: {problem}", file=sys.stderr)
        return 2
    auth = http_auth_kwargs(policy, transport=args.transport, no_auth=args.no_auth, host=args.host, port=args.port)
    mcp = build_server(_services_factory(settings, args), auth=auth)
    if args.transport == "stdio":
        mcp.run("stdio")
    else:
        log.info("serving MCP over streamable HTTP at http://%s:%d/mcp", args.host, args.port)
        mcp.run("streamable-http", host=args.host, port=args.port, streamable_http_path="/mcp",
                stateless_http=getattr(args, "stateless_http", False))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from server.config import ConfigError, Settings

    _configure_logging(args.log_level)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"tableau-steward: {exc}", file=sys.stderr)
        return 2
    return _serve(settings, args)


def client_instructions(args: argparse.Namespace) -> str:
    """How to connect an MCP client to this server: a desktop-client JSON snippet, or the HTTP URL."""
    if args.transport == "http":
        auth = " (no bearer token: --no-auth on loopback)" if args.no_auth else " (send Authorization: Bearer <token>)"
        return f"MCP endpoint: http://{args.host}:{args.port}/mcp{auth}"
    snippet = {
        "mcpServers": {
            "tableau-steward": {
                "command": str(Path(sys.executable).with_name("tableau-steward")),
                "args": ["demo", "--transport", "stdio", "--policy", str(Path(args.policy).resolve())],
            }
        }
    }
    return "Claude Desktop style configuration:\n" + json.dumps(snippet, indent=2)


TRY_PAT_NAME = "try-tsc"


def add_try_pat(site) -> str:
    """A second admin PAT for people trying TSC against the demo site; returns its (random) secret.

    Not the server's own PAT: a second sign-in with one PAT ends the first session, and the server's
    secret stays out of every log.
    """
    from emulator.model import PersonalAccessToken

    secret = secrets.token_urlsafe(12)
    site.pats[TRY_PAT_NAME] = PersonalAccessToken(TRY_PAT_NAME, secret, site.site_admin().id)
    return secret


def demo_credentials(url: str, content_url: str, secret: str) -> str:
    return (
        f"Try TSC against the emulated site: TSC.Server('{url}', use_server_version=True) with "
        f"TSC.PersonalAccessTokenAuth('{TRY_PAT_NAME}', '{secret}', site_id='{content_url}') (demo only)."
    )


def _quiet_demo_logs(verbose: bool) -> None:
    """Per-request lines (TSC's 'Querying ...', HTTP access lines) drown the demo's output unless asked for."""
    if not verbose:
        for name in ("TSC", "uvicorn.access", "emulator.access"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # The MCP listener's uvicorn re-applies its logging config when it starts, which puts uvicorn.access
        # back to INFO for the emulator's listener too; a filter survives that (dictConfig keeps filters).
        logging.getLogger("uvicorn.access").addFilter(lambda record: record.levelno >= logging.WARNING)


def run_demo(args: argparse.Namespace) -> int:
    from emulator.generator import build_site
    from emulator.model import PersonalAccessToken
    from emulator.runner import EmulatorServer
    from server.config import Settings

    _configure_logging(args.log_level)
    _quiet_demo_logs(args.verbose)
    site = build_site(args.size)
    site.pats[DEMO_PAT_NAME] = PersonalAccessToken(DEMO_PAT_NAME, DEMO_PAT_SECRET, site.site_admin().id)
    try_secret = add_try_pat(site)
    with EmulatorServer(site, latency_ms=args.latency_ms, job_speed=args.job_speed) as emulator:
        settings = Settings.for_pat(emulator.url, site.content_url, DEMO_PAT_NAME, DEMO_PAT_SECRET)
        print(f"Emulated Tableau site '{site.content_url}' at {emulator.url}", file=sys.stderr)
        print(client_instructions(args), file=sys.stderr)
        print(demo_approver_token(args), file=sys.stderr)
        print(demo_credentials(emulator.url, site.content_url, try_secret), file=sys.stderr)
        return _serve(settings, args)


def demo_approver_token(args: argparse.Namespace) -> str:
    """Give the demo policy's approver an admin token for this run (held in memory only, never in the
    file) and say how to approve with it; sets `args.extra_tokens`."""
    import secrets

    from server.governance.policy import TokenSpec, hash_token
    from server.governed import Governance, PolicyError

    try:
        policy = Governance.load(Path(args.policy), transport=args.transport, no_auth=args.no_auth, host=args.host)
    except PolicyError:
        return ""  # _serve reports the problem
    approvers = policy.eligible_approvers()
    local = policy.local_principal()
    approver = next((a for a in approvers if local is None or a != local.name), None)
    if approver is None:
        return "The policy names no approver, so gated changes cannot be approved in this demo."
    token = secrets.token_urlsafe(32)
    args.extra_tokens = (TokenSpec(hash=hash_token(token), principal=approver, audience="admin"),)
    command = f"{Path(sys.executable).with_name('tableau-steward')} approvals"
    where = f"--policy {Path(args.policy).resolve()}"
    if args.transport == "stdio":
        # stderr of a stdio server ends up in the MCP client's log files: the token goes to a 0600 file.
        path = policy.audit_path.with_name("demo-admin.token")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        held, use = f"is in {path} (mode 0600)", f"--token-file {path}"
    else:
        held, use = f"is:\n  {token}", ""
    prefix = "" if use else f"STEWARD_ADMIN_TOKEN={token} "
    console = (f"http://{args.host}:{args.port}/console/" if args.transport == "http"
               else "the loopback port this server logs below ('web console at ...')")
    return (
        f"The admin token of the approver '{approver}', valid for this run only, {held}\n"
        f"Sign in with it at the web console, {console}, or, when the assistant's change is pending,\n"
        "approve it from another terminal with:\n"
        f"  {prefix}{command} approve <request id> {where} {use}".rstrip() + "\n"
        f"  (see what waits with: {prefix}{command} list {where} {use})".replace(" )", ")")
    )
