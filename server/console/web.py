"""The web approval console: sign in with an admin token, see what waits with its live preview, decide.

    GET  /console/                          the requests (pending with live previews, then history), or sign-in
    POST /console/sign-in                   form: token, csrf      -> session cookie
    POST /console/sign-out                  form: csrf
    POST /console/requests/{id}/approve     form: reason, csrf     (through admin_api.decide, like the API)
    POST /console/requests/{id}/deny        form: reason, csrf
    GET  /console/requests/{id}             one request with its audit trail
    GET  /console/state.json                a version of the request list, polled by console.js
    GET  /console/fragment                  the request list alone, fetched when the version changes
    GET  /console/static/console.{css,js}

Served where the admin API is: on the HTTP listener, or on the stdio server's loopback admin port.
Security model (docs/GOVERNANCE.md, "The web console"): the token is sent once, in a POST body; the session
is a random id in an HttpOnly, SameSite=Strict cookie (Secure under TLS) with server-side expiry; every POST
carries the session's CSRF token and, when the browser sends one, a same-origin Origin header; every answer
has a strict Content-Security-Policy (no inline script or style), nosniff, no referrer and no framing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from server.console import render
from server.console.render import fill, text
from server.console.sessions import MAX_AGE_SECONDS, Session, SessionStore
from server.governance import admin_api
from server.governance.approvals import ApprovalError, ApprovalRequest
from server.governance.audit import AuditUnavailable
from server.governance.display import escape_controls
from server.tableau.errors import TableauError
from server.toolkit import ToolContext, ToolFailure

log = logging.getLogger(__name__)

PREFIX = "/console"
COOKIE = "steward_console"
SIGN_IN_COOKIE = "steward_console_sign_in"  # the sign-in form's own CSRF token (double submit)
MAX_FORM = 16_384
PENDING_SHOWN = 50
LIVE_PREVIEWS = 20  # previews recomputed per page: each costs a few Tableau requests
HISTORY_SHOWN = 50
TRAIL_SHOWN = 300
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
STATIC_DIR = Path(__file__).with_name("static")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

Handler = Callable[[Request], Awaitable[Response]]


class Console:
    """The console's routes and sessions, over the call pipeline's live services (None while starting)."""

    def __init__(self, pipeline: Any, prefix: str = PREFIX) -> None:
        self.pipeline = pipeline
        self.prefix = prefix
        self.sessions = SessionStore()

    @property
    def governance(self) -> Any:
        services = self.pipeline.services
        return services.governance if services is not None else None

    def routes(self) -> list[Route]:
        p = self.prefix
        return [
            Route(p, self._secured(self.to_index), methods=["GET"]),
            Route(f"{p}/", self._secured(self.index), methods=["GET"]),
            Route(f"{p}/sign-in", self._secured(self.sign_in), methods=["POST"]),
            Route(f"{p}/sign-out", self._secured(self.sign_out), methods=["POST"]),
            Route(f"{p}/requests/{{request_id}}", self._secured(self.detail), methods=["GET"]),
            Route(f"{p}/requests/{{request_id}}/approve", self._secured(self.deciding(True)), methods=["POST"]),
            Route(f"{p}/requests/{{request_id}}/deny", self._secured(self.deciding(False)), methods=["POST"]),
            Route(f"{p}/state.json", self._secured(self.state), methods=["GET"]),
            Route(f"{p}/fragment", self._secured(self.fragment), methods=["GET"]),
            Route(f"{p}/static/{{name}}", self._secured(self.static), methods=["GET"]),
        ]

    # -- plumbing -----------------------------------------------------------------------------------------------

    def _secured(self, handler: Handler) -> Handler:
        async def secured(request: Request) -> Response:
            if self.governance is None:
                response: Response = Response("The server is still starting; try again in a moment.", 503)
            else:
                try:
                    response = await handler(request)
                except AuditUnavailable as exc:
                    log.error("console: the audit store is unavailable: %s", exc)
                    response = Response("The audit store cannot be used right now; nothing was recorded.", 503)
            response.headers.update(SECURITY_HEADERS)
            return response

        return secured

    def _session(self, request: Request, *, touch: bool = True) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE), touch=touch)

    def _page(self, title: str, body: str, *, session: Session | None = None, status: int = 200,
              notice: str = "", version: str = "") -> Response:
        account = ""
        if session is not None:
            role = "" if self.governance.is_approver(session.principal) else " (not an approver: you can only look)"
            account = fill("account", prefix=self.prefix, principal=text(session.principal), role=text(role),
                           csrf=text(session.csrf))
        live = session is not None and version
        html = fill(
            "page", title=text(title), prefix=self.prefix, account=account, body=body, notice=notice,
            state_url=f"{self.prefix}/state.json" if live else "", fragment_url=f"{self.prefix}/fragment" if live else "",
            version=text(version),
        )
        return Response(html, status, media_type="text/html; charset=utf-8")

    async def _stored(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    async def _audit(self, kind: str, **fields: Any) -> None:
        await self._stored(self.governance.audit.append, kind, **fields)

    async def _form(self, request: Request) -> dict[str, str] | None:
        """A small url-encoded form (one value per name), or None when it is not one."""
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return None
        body = await request.body()
        if len(body) > MAX_FORM:
            return None
        try:
            fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=8)
        except (UnicodeDecodeError, ValueError):
            return None
        return {name: values[0] for name, values in fields.items()}

    def _same_origin(self, request: Request) -> bool:
        """A browser's POST names its page's origin; one from another origin (or 'null') is refused."""
        origin = request.headers.get("origin")
        return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"

    def _notice(self, message: str, *, error: bool = False) -> str:
        kind, role = ("alert", "alert") if error else ("ok", "status")
        return f"<p class=\"notice {kind}\" role=\"{role}\">{text(message)}</p>"

    # -- signing in and out -------------------------------------------------------------------------------------

    async def to_index(self, request: Request) -> Response:
        return RedirectResponse(f"{self.prefix}/", 308)

    def _sign_in_page(self, request: Request, error: str = "", status: int = 200) -> Response:
        csrf = secrets.token_urlsafe(32)
        body = fill("sign_in", prefix=self.prefix, csrf=csrf, error=self._notice(error, error=True) if error else "")
        response = self._page("Sign in", body, status=status)
        response.set_cookie(SIGN_IN_COOKIE, csrf, max_age=600, path=self.prefix, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    async def sign_in(self, request: Request) -> Response:
        form = await self._form(request)
        cookie = request.cookies.get(SIGN_IN_COOKIE, "")
        client = request.client.host if request.client else None
        if form is None or not self._same_origin(request) or not cookie or not hmac.compare_digest(
            form.get("csrf", "").encode(), cookie.encode()
        ):
            await self._audit("console.sign_in", outcome="refused", reason="no valid sign-in form token", client=client)
            return self._sign_in_page(request, "The sign-in form had expired or was not this console's; try again.", 403)
        principal = admin_api.admin_principal_of(self.governance, form.get("token", ""))
        if principal is None:
            # Recorded without the token (nor any part of it): who tried from where, and that it failed.
            await self._audit("console.sign_in", outcome="refused", reason="not an admin token", client=client)
            return self._sign_in_page(
                request, "That is not an admin token of this server. MCP tokens cannot sign in here.", 401
            )
        session_id, _ = self.sessions.create(principal)
        await self._audit("console.sign_in", outcome="ok", principal=principal, client=client)
        response = RedirectResponse(f"{self.prefix}/", 303)
        response.set_cookie(COOKIE, session_id, max_age=MAX_AGE_SECONDS, path=self.prefix, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
        response.delete_cookie(SIGN_IN_COOKIE, path=self.prefix)
        return response

    async def sign_out(self, request: Request) -> Response:
        session = self._session(request)
        form = await self._form(request)
        if session is None or form is None or not session.csrf_ok(form.get("csrf")) or not self._same_origin(request):
            return self._sign_in_page(request, "You were not signed in (or the form was not this console's).", 403)
        self.sessions.end(request.cookies.get(COOKIE))
        await self._audit("console.sign_out", principal=session.principal)
        response = RedirectResponse(f"{self.prefix}/", 303)
        response.delete_cookie(COOKIE, path=self.prefix)
        return response

    # -- the requests -------------------------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._sign_in_page(request)
        return await self._dashboard(session, notice=session.take_notice() or "")

    async def _dashboard(self, session: Session, *, notice: str = "", error: bool = False, status: int = 200) -> Response:
        requests = await self._stored(self.governance.list_requests, None)
        body = "<div id=\"live\" class=\"visually-hidden\" aria-live=\"polite\"></div>\n"
        body += "<h1>Approval requests</h1>\n<div id=\"requests\">" + await self._request_list(session, requests) + "</div>"
        shown = self._notice(notice, error=error) if notice else ""
        return self._page("Approvals", body, session=session, status=status, notice=shown, version=_version(requests))

    async def _request_list(self, session: Session, requests: list[ApprovalRequest]) -> str:
        now = render.now_utc()
        pending = [r for r in requests if r.status == "pending"]
        history = [r for r in requests if r.status != "pending"]
        previews = await self._live_previews(session.principal, pending[:LIVE_PREVIEWS])
        items = [
            render.pending_item(r, *previews.get(r.id, (r.preview, False, "only the newest are recomputed")),
                                csrf=session.csrf, prefix=self.prefix, now=now)
            for r in pending[:PENDING_SHOWN]
        ]
        done = [render.history_item(r, self.prefix, now) for r in history[:HISTORY_SHOWN]]
        return (
            render.section("pending", "Waiting for a decision", items, len(pending), "Nothing is waiting for a decision.")
            + render.section("history", "History", done, len(history), "No request has been decided yet.")
        )

    async def _live_previews(self, viewer: str, pending: list[ApprovalRequest]) -> dict[str, tuple[str, bool, str]]:
        """Each request's preview recomputed by its tool's own preview code on its recorded targets, as one
        audited read by the viewer (its Tableau requests are on record under the viewer's name). A preview that
        cannot be recomputed falls back to the stored one, saying why."""
        if not pending:
            return {}
        governance, services = self.governance, self.pipeline.services
        call_id = "console_" + secrets.token_hex(8)
        started = time.monotonic()
        try:
            await self._stored(governance.record_read, call_id, viewer, "console", "preview",
                               {"request_ids": [r.id for r in pending]})
        except AuditUnavailable:
            return {r.id: (r.preview, False, "the audit log is unavailable, so the site was not read") for r in pending}
        previews = {}
        failures = 0
        async with services.tableau.operation(call_id):
            for request in pending:
                previews[request.id] = await self._live_preview(services, request, call_id)
                failures += not previews[request.id][1]
        await self._stored(governance.record_outcome, call_id, "console:preview", "ok" if not failures else "error",
                           started, summary=f"{len(pending) - failures} of {len(pending)} previews recomputed")
        return previews

    async def _live_preview(self, services: Any, request: ApprovalRequest, call_id: str) -> tuple[str, bool, str]:
        spec = self.pipeline.specs.get(request.tool)
        if spec is None or spec.preview is None:
            return request.preview, False, "this tool has no live preview"
        bound = {t["role"]: t["id"] for t in request.targets} if spec.targets else None
        ctx = ToolContext(tableau=services.tableau, principal=request.requester, call_id=call_id,
                          approvals=services.governance, bound=bound)
        try:
            args = spec.input_model.model_validate(request.arguments)
            return escape_controls(await spec.preview(ctx, args)), True, ""
        except TableauError as exc:
            return request.preview, False, f"the site could not be reached or refused ({exc})"
        except ToolFailure as exc:
            return request.preview, False, str(exc)
        except Exception:
            log.exception("console: recomputing the preview of %s failed", request.id)
            return request.preview, False, "recomputing it failed; the server log has the details"

    async def state(self, request: Request) -> Response:
        session = self._session(request, touch=False)
        if session is None:
            return JSONResponse({"error": "signed out"}, 401)
        requests = await self._stored(self.governance.list_requests, None)
        pending = [r.id for r in requests if r.status == "pending"]
        return JSONResponse({"version": _version(requests), "pending": len(pending), "pending_ids": pending[:PENDING_SHOWN]})

    async def fragment(self, request: Request) -> Response:
        session = self._session(request, touch=False)
        if session is None:
            return Response("signed out", 401)
        requests = await self._stored(self.governance.list_requests, None)
        html = await self._request_list(session, requests)
        return Response(html, media_type="text/html; charset=utf-8", headers={"X-Steward-Version": _version(requests)})

    def deciding(self, approve: bool) -> Handler:
        async def decide(request: Request) -> Response:
            session = self._session(request)
            if session is None:
                return self._sign_in_page(request, "Sign in first: your session has ended.", 401)
            form = await self._form(request)
            if form is None or not session.csrf_ok(form.get("csrf")) or not self._same_origin(request):
                # Possibly another site's page posting with the approver's cookie: refused and on record.
                await self._audit("approval.refused", approval_id=request.path_params["request_id"],
                                  actor=session.principal, action="approve" if approve else "deny",
                                  reason="the console form carried no valid CSRF token or came from another origin",
                                  code="csrf")
                return await self._dashboard(
                    session, notice="Refused: the form did not carry this page's security token. Nothing was decided; "
                    "use the buttons on this page.", error=True, status=403,
                )
            reason = form.get("reason", "").strip()
            request_id = request.path_params["request_id"]
            if not reason:
                return await self._dashboard(session, notice="A reason is required to approve or deny.", error=True,
                                             status=400)
            try:
                decided = await admin_api.decide(self.governance, session.principal, request_id, approve=approve,
                                                 reason=reason)
            except ApprovalError as exc:
                return await self._dashboard(session, notice=f"Refused: {exc}", error=True,
                                             status=admin_api.refusal_status(exc.code))
            verb = "Approved" if approve else "Denied"
            session.notice = f"{verb} {decided.id}: {render.progress(decided)}, status {decided.status}."
            return RedirectResponse(f"{self.prefix}/", 303)

        return decide

    async def detail(self, request: Request) -> Response:
        session = self._session(request)
        if session is None:
            return self._sign_in_page(request)
        found = await self._stored(self.governance.get_request, request.path_params["request_id"])
        if found is None:
            return self._page("Not found", self._notice("No such request.", error=True), session=session, status=404)
        records, total = await self._stored(
            self.governance.audit.records_for_approval, found.id, [found.call_id] if found.call_id else [], TRAIL_SHOWN
        )
        now = render.now_utc()
        body = fill(
            "detail", prefix=self.prefix, tool=text(found.tool), request_id=text(found.id), status=text(found.status),
            requester=text(found.requester), targets=render.targets(found),
            arguments=text(json.dumps(dict(found.arguments), ensure_ascii=False, sort_keys=True)),
            created_iso=found.created_at.isoformat(), created=text(f"{found.created_at:%Y-%m-%d %H:%M:%S} UTC"),
            expires_iso=found.expires_at.isoformat(), expires=text(render.relative(found.expires_at, now)),
            progress=text(render.progress(found)), decisions=render.decisions(found), preview=text(found.preview),
            result=text(render.cut(found.result, 4000)) or "none",
            integrity=text("; ".join(found.integrity)) if found.integrity else "seals verified",
            trail_total=text(f"{len(records)} of {total} records" + (" (the first ones)" if total > len(records) else "")),
            trail="\n".join(render.trail_row(r) for r in records),
        )
        return self._page(f"Request {found.id}", body, session=session)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found", 404)
        return Response((STATIC_DIR / name).read_bytes(), media_type=STATIC[name])


def _version(requests: list[ApprovalRequest]) -> str:
    """Changes whenever a request appears, is decided, runs, finishes or expires (what the page shows)."""
    summary = "|".join(f"{r.id}:{r.status}:{len(r.decisions)}:{r.result is not None}" for r in requests)
    return hashlib.sha256(summary.encode()).hexdigest()[:16]
