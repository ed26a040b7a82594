"""The admin API: list, show, approve and deny approval requests, for approvers holding an admin token.

It is the only way a decision reaches the store: the approver is the principal of the admin token the
request carries (``Authorization: Bearer ...``, an `audience: admin` entry of the policy), never a name
the caller types. MCP tokens are refused here, and admin tokens are refused by the MCP endpoint.

    GET  /admin/whoami                      who the token is, and whether the policy makes it an approver
    GET  /admin/requests[?status=S]         requests, newest first (at most MAX_LISTED, with the total)
    GET  /admin/requests/{id}               one request: arguments, targets, site, preview, decisions, result
    POST /admin/requests/{id}/approve       {"reason": "..."} (optional reason)
    POST /admin/requests/{id}/deny          {"reason": "..."} (reason required)

In HTTP mode the routes live on the MCP listener under /admin/; in stdio mode the server serves them on
a loopback port of its own. Either way it writes where it listens into a discovery file next to the
store (mode 0600), which `tableau-steward approvals ...` reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.governance.approvals import STATUSES, ApprovalError, ApprovalRequest
from server.governance.audit import AuditUnavailable

log = logging.getLogger(__name__)

PREFIX = "/admin"
MAX_LISTED = 200
MAX_BODY = 16_384
MAX_REASON = 1000
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class AdminBackend(Protocol):
    """What the API needs from the server (server.governed.Governance implements it)."""

    def admin_principal(self, token: str) -> str | None: ...
    def is_approver(self, principal: str) -> bool: ...
    def list_requests(self, status: str | None) -> list[ApprovalRequest]: ...
    def get_request(self, request_id: str) -> ApprovalRequest | None: ...
    def decide_request(
        self, approver: str, request_id: str, *, approve: bool, reason: str | None
    ) -> ApprovalRequest: ...


def _json_default(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _reply(body: Any, status: int = 200, **headers: str) -> Response:
    return Response(
        json.dumps(body, default=_json_default), status_code=status, media_type="application/json", headers=headers
    )


def _error(status: int, message: str, code: str | None = None) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="tableau-steward-admin"'} if status == 401 else {}
    return _reply({"error": message, "code": code}, status, **headers)


def admin_routes(backend_of: Callable[[], AdminBackend | None], prefix: str = PREFIX) -> list[Route]:
    """The API's routes; `backend_of()` is None while the server is still starting."""

    async def authenticate(request: Request) -> tuple[AdminBackend, str] | Response:
        backend = backend_of()
        if backend is None:
            return _error(503, "the server is still starting; try again in a moment")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        principal = admin_principal_of(backend, token) if scheme.lower() == "bearer" else None
        if principal is None:
            return _error(
                401,
                "an admin token is required (Authorization: Bearer <token>, from an `audience: admin` entry of "
                "the policy); MCP tokens cannot use this API",
                "unauthenticated",
            )
        return backend, principal

    async def whoami(request: Request) -> Response:
        auth = await authenticate(request)
        if isinstance(auth, Response):
            return auth
        backend, principal = auth
        return _reply({"principal": principal, "approver": backend.is_approver(principal)})

    async def list_requests(request: Request) -> Response:
        auth = await authenticate(request)
        if isinstance(auth, Response):
            return auth
        status = request.query_params.get("status") or None
        if status is not None and status not in STATUSES:
            return _error(400, f"unknown status {status!r}; known: {', '.join(STATUSES)}", "bad_request")
        found = await _stored(auth[0].list_requests, status)
        if isinstance(found, Response):
            return found
        return _reply({"requests": [r.view() for r in found[:MAX_LISTED]], "total": len(found)})

    async def show(request: Request) -> Response:
        auth = await authenticate(request)
        if isinstance(auth, Response):
            return auth
        request_id = request.path_params["request_id"]
        found = await _stored(auth[0].get_request, request_id)
        if isinstance(found, Response):
            return found
        if found is None:
            return _error(404, f"no approval request {request_id}", "not_found")
        return _reply(found.view())

    def deciding(approve: bool) -> Callable[[Request], Any]:
        async def decide_endpoint(request: Request) -> Response:
            auth = await authenticate(request)
            if isinstance(auth, Response):
                return auth
            backend, principal = auth
            reason = await _reason(request)
            if isinstance(reason, Response):
                return reason
            try:
                decided = await decide(backend, principal, request.path_params["request_id"], approve=approve,
                                       reason=reason)
            except ApprovalError as exc:
                return _error(refusal_status(exc.code), f"refused: {exc}", exc.code)
            except AuditUnavailable as exc:
                return _unavailable(exc)
            return _reply(decided.view())

        return decide_endpoint

    return [
        Route(f"{prefix}/whoami", whoami, methods=["GET"]),
        Route(f"{prefix}/requests", list_requests, methods=["GET"]),
        Route(f"{prefix}/requests/{{request_id}}", show, methods=["GET"]),
        Route(f"{prefix}/requests/{{request_id}}/approve", deciding(True), methods=["POST"]),
        Route(f"{prefix}/requests/{{request_id}}/deny", deciding(False), methods=["POST"]),
    ]


async def _reason(request: Request) -> str | None | Response:
    body = await request.body()
    if len(body) > MAX_BODY:
        return _error(413, f"the request body is larger than {MAX_BODY} bytes", "bad_request")
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return _error(400, 'the body must be a JSON object such as {"reason": "ticket 4411"}', "bad_request")
    if not isinstance(data, dict) or set(data) - {"reason"}:
        return _error(400, 'the body may only hold "reason"', "bad_request")
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        return _error(400, f"reason must be text of at most {MAX_REASON} characters", "bad_request")
    return reason


# -- the one decision path (this API and the web console; the CLI calls this API) -----------------------------


def admin_principal_of(backend: AdminBackend, token: str) -> str | None:
    """The principal of an admin token (`audience: admin`); None for an MCP token, an unknown one or none."""
    token = token.strip()
    return backend.admin_principal(token) if token else None


async def decide(
    backend: AdminBackend, principal: str, request_id: str, *, approve: bool, reason: str | None
) -> ApprovalRequest:
    """Approve or deny `request_id` as `principal` (an admin token's principal, never a typed name).

    Every decision goes through here, whichever door it came in by: the store then refuses the requester,
    non-approvers, a second approval by the same approver and anything not pending, and records each refusal.
    Raises ApprovalError (refused) or AuditUnavailable (nothing was recorded).
    """
    if reason is not None and len(reason) > MAX_REASON:
        raise ApprovalError("bad_request", f"reason must be text of at most {MAX_REASON} characters")
    return await anyio.to_thread.run_sync(
        lambda: backend.decide_request(principal, request_id, approve=approve, reason=reason)
    )


def refusal_status(code: str) -> int:
    """The HTTP status of a refused decision (ApprovalError.code)."""
    if code == "not_found":
        return 404
    if code in ("not_approver", "self_approval"):
        return 403
    return 400 if code == "bad_request" else 409


def _unavailable(exc: AuditUnavailable) -> Response:
    log.error("admin API: the audit store is unavailable: %s", exc)
    return _error(503, "the audit store cannot be used right now; nothing was recorded", "unavailable")


async def _stored(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A store call in a worker thread (it may wait on another process's write lock)."""
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
    except AuditUnavailable as exc:
        return _unavailable(exc)


# -- the stdio-mode listener and the discovery file ----------------------------------------------------------


def discovery_path(store_path: Path) -> Path:
    """Where the server says its admin API listens: next to the store (e.g. .steward/audit.admin.json)."""
    return store_path.with_name(store_path.stem + ".admin.json")


def write_discovery(path: Path, url: str) -> None:
    """Write (atomically, mode 0600) where the admin API listens."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"url": url, "pid": os.getpid()}, fh)
    os.replace(temp, path)


def remove_discovery(path: Path, url: str) -> None:
    """Remove the discovery file if it still names `url` (another server sharing the store may have replaced it)."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("url") == url:
            path.unlink()


class DiscoveryError(Exception):
    """The discovery file is missing or cannot be trusted."""


def read_discovery(path: Path) -> str:
    """The admin API URL from a discovery file, refusing one that someone else could have planted."""
    try:
        info = path.stat()
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DiscoveryError(f"no server has written {path}: start the server, or pass --server URL") from None
    except (OSError, ValueError) as exc:
        raise DiscoveryError(f"cannot read {path} ({exc.__class__.__name__}); pass --server URL") from None
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o022:
        raise DiscoveryError(f"{path} is not owned by you or is writable by others; pass --server URL")
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str) or urlsplit(url).hostname not in LOOPBACK_HOSTS:
        # The token goes wherever the URL says: only a loopback address is taken from a file.
        raise DiscoveryError(f"{path} does not name a loopback address; pass --server URL if you trust it")
    return url


@contextlib.contextmanager
def _no_signals() -> Iterator[None]:
    yield


@contextlib.asynccontextmanager
async def loopback_listener(routes: list[Route]) -> AsyncIterator[str]:
    """Serve `routes` on 127.0.0.1 at a free port while the block runs; yields the API's base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    import uvicorn

    # No log config (our stderr logging), no access log (uvicorn's goes to stdout, the MCP wire in stdio mode).
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=routes), log_config=None, access_log=False, lifespan="off"))
    server.capture_signals = _no_signals  # type: ignore[method-assign]  # SIGINT stays the MCP server's
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [sock])
        while not server.started:
            if server.should_exit:
                raise OSError("the admin API could not start listening")
            await anyio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}{PREFIX}"
        finally:
            server.should_exit = True
    sock.close()
