"""The one path every tool call takes: policy, then approval, then execution, then audit.

Nothing reaches Tableau before the intent record is written (fail closed), and the same
policy that hides a tool from `tools/list` is checked again on every call.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import cache, partial
from typing import Any, Literal, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated
from mcp.types import INTERNAL_ERROR, INVALID_REQUEST, CallToolResult, TextContent
from pydantic import BaseModel, Field, create_model

from server.arguments import ArgumentError, parse_arguments
from server.governance import admin_api
from server.governance.display import escape_controls
from server.governed import AuditUnavailable, Governance
from server.integrations.slack_route import slack_routes
from server.notify.service import call_on_loop, running_notifications
from server.operations import health_routes
from server.tableau.errors import TableauError
from server.toolkit import Progress, ToolContext, ToolFailure, ToolSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

# The Tableau client of the call or read in progress (per-user identity), for code reached without a ToolContext.
_CALLER_TABLEAU: ContextVar[Any] = ContextVar("caller_tableau", default=None)

# How often the server looks for approved requests to run: the cross-process fallback (another replica
# sharing the store decides; its in-process wake-up cannot reach us). A decision here wakes the pool at once.
APPROVAL_POLL_SECONDS = 1.0
# How many approved requests run side by side, so a long refresh does not hold up a group change.
MAX_PARALLEL_RUNS = 4
# Tests that alter the store between an approval and its execution turn the wake-up off (and the poll down).
WAKE_ON_DECISION = True


class PendingApproval(BaseModel):
    request_id: str
    preview: str = Field(description="What the change would do, computed from the site's current state.")
    expires_at: datetime
    message: str


@cache
def result_model_for(spec: ToolSpec) -> type[BaseModel]:
    """Read tools return their output model; write tools wrap it, since a gated call returns a pending result."""
    if not spec.is_write:
        return spec.output_model
    return create_model(
        f"{spec.output_model.__name__}Envelope",
        status=(Literal["done", "pending_approval"], Field(description="'done' when the change ran now.")),
        result=(spec.output_model | None, Field(None, description="The outcome, when status is 'done'.")),
        approval=(PendingApproval | None, Field(None, description="Set when an administrator must approve.")),
    )


@dataclass
class Services:
    """What the tools run against: the Tableau client and the governance (policy, audit, approvals)."""

    tableau: Any
    governance: Governance
    # Under `identity: per_user`, the per-user sessions (server.tableau.UserSessions); `tableau` stays the
    # service session (site identity, server-wide work).
    identities: Any = None


def _summary(result: BaseModel) -> str:
    text = result.model_dump_json()
    return text if len(text) <= 500 else text[:497] + "..."


class CallPipeline:
    def __init__(self, specs: Sequence[ToolSpec]):
        self.specs = {spec.name: spec for spec in specs}
        self.services: Services | None = None
        self._woken: anyio.Event | None = None
        self._loop_token: Any = None
        self._running: dict[str, Progress] = {}  # request id -> its live progress, while it runs here
        self._taken: set[str] = set()  # requests a pass of this process is claiming or running
        self._limiter: anyio.CapacityLimiter | None = None  # made in `attached` (it needs the event loop)
        # Where `subscriptions/listen` streams are fed (MCPServer(subscriptions=...)); set by build_server.
        self.bus: Any = None
        self._updates: Any = None  # send side of the stream of request URIs to announce

    # -- wiring ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def attached(self, services: Services) -> AsyncIterator[None]:
        self.services = services
        services.governance.observe(services.tableau)  # a no-op when the services factory already did it
        if services.identities is not None:
            services.governance.observe(services.identities)
        self._loop_token = anyio.lowlevel.current_token()
        self._woken = anyio.Event()
        self._limiter = anyio.CapacityLimiter(MAX_PARALLEL_RUNS)
        services.governance.on_decided(self._decided)
        self._updates, updates = anyio.create_memory_object_stream[str](1000)
        async with running_notifications(services.governance), anyio.create_task_group() as tasks:
            tasks.start_soon(self._run_approved_requests_forever)
            tasks.start_soon(self._announce_updates, updates)
            try:
                async with self._admin_api(services.governance):
                    yield
            finally:
                tasks.cancel_scope.cancel()

    def admin_routes(self) -> list[Any]:
        """The admin API's routes (server/governance/admin_api.py), the web console's (server/console), Slack's
        interactivity endpoint (server/integrations/slack_route.py) and the operator's /healthz, /readyz and
        /metrics (server/operations.py), answering once the services are up."""
        from server.console.web import Console

        return [
            *admin_api.admin_routes(self._governance),
            *slack_routes(self._governance),
            *health_routes(self._governance),
            *Console(self).routes(),
        ]

    def _governance(self) -> Governance | None:
        return self.services.governance if self.services else None

    @asynccontextmanager
    async def _admin_api(self, governance: Governance) -> AsyncIterator[None]:
        """Where approvers decide: on the HTTP listener under /admin/, or (stdio) on a loopback port of its
        own; either way written into the discovery file next to the store for `tableau-steward approvals`."""
        discovery = admin_api.discovery_path(governance.policy.audit_path)
        if governance.transport == "http":
            host = "127.0.0.1" if governance.host in ("0.0.0.0", "localhost") else governance.host
            host = f"[{host}]" if ":" in host else host
            url = f"http://{host}:{governance.port}{admin_api.PREFIX}"
            listening: Any = _nothing(url)
        else:
            listening = admin_api.loopback_listener(self.admin_routes())
        async with listening as url:
            try:
                admin_api.write_discovery(discovery, url)
                log.info("admin API for approvals at %s (written to %s); web console at %s/", url, discovery,
                         url.removesuffix(admin_api.PREFIX) + "/console")
            except OSError as exc:  # approvals still work with --server; tool calls need no discovery
                log.error("admin API at %s, but %s cannot be written (%s): pass --server to the approvals CLI",
                          url, discovery, exc.strerror)
            try:
                yield
            finally:
                admin_api.remove_discovery(discovery, url)

    @property
    def live(self) -> Services:
        if self.services is None:
            raise ToolError("The server is still starting; try again in a moment.")
        return self.services

    # -- the Tableau identity a call acts as --------------------------------------------------------

    @asynccontextmanager
    async def tableau_as(self, tableau_user: str | None) -> AsyncIterator[Any]:
        """The Tableau client to act with: the service session, or (per-user identity) `tableau_user`'s own.
        Resources read it back with `caller_tableau()`."""
        services = self.live
        if tableau_user is None:
            yield services.tableau
            return
        if services.identities is None:
            raise ToolError("This server has no per-user Tableau sessions configured; ask an administrator.")
        async with services.identities.lease(tableau_user) as client:
            token = _CALLER_TABLEAU.set(client)
            try:
                yield client
            finally:
                _CALLER_TABLEAU.reset(token)

    def caller_tableau(self) -> Any:
        """The Tableau client of the call or read in progress (the service session outside one)."""
        return _CALLER_TABLEAU.get() or self.live.tableau

    def site_of(self, tableau_user: str | None) -> dict[str, Any]:
        """The site a request is bound to; under per-user identity, with the Tableau user it will run as."""
        site = self.live.tableau.site_identity.model_dump()
        return site if tableau_user is None else {**site, "tableau_user": tableau_user}

    async def list_filter_middleware(self, ctx: Any, call_next: Any) -> Any:
        """Hide the tools the caller may never use; `call` checks again, so hiding is not the only guard.

        A call to a hidden tool is answered here, before the SDK validates its arguments, exactly as the SDK
        answers an unknown tool: nothing tells the caller that the tool exists.
        """
        method = getattr(ctx, "method", None)
        if method == "tools/call" and self.services is not None:
            params = ctx.params if isinstance(ctx.params, dict) else {}
            name = params.get("name")
            governance = self.services.governance
            if isinstance(name, str) and name not in governance.visible_tools(governance.current_principal()):
                hidden = name in self.specs
                await self.refused(name[:200], "hidden by the policy (answered as an unknown tool)" if hidden else "no such tool")
                if hidden:
                    return CallToolResult(content=[TextContent(type="text", text=f"Unknown tool: {name}")], is_error=True)
            elif isinstance(name, str) and (problems := _invalid_arguments(self.specs[name], params.get("arguments"))):
                await self.refused(name, f"invalid arguments: {problems}")  # the SDK answers it, as before
        result = await call_next(ctx)
        if method in READABLE_LISTS and self.services is not None:
            return self._filter_readables(method, result)
        if method != "tools/list" or self.services is None:
            return result
        visible = self.services.governance.visible_tools(self.services.governance.current_principal())
        if isinstance(result, BaseModel):
            result.tools = [t for t in result.tools if t.name in visible]  # type: ignore[attr-defined]
        elif isinstance(result, dict) and "tools" in result:
            result["tools"] = [t for t in result["tools"] if t.get("name") in visible]
        return result

    async def refused(self, tool: str, reason: str) -> None:
        """Audit a call answered before the call path (a hidden or unknown tool, invalid arguments)."""
        if self.services is not None:
            governance = self.services.governance
            await _stored(governance.record_refusal, governance.current_principal(), tool, reason)

    def _filter_readables(self, method: str, result: Any) -> Any:
        """resources/list and prompts/list show only what the policy lets the caller read."""
        kind, key = READABLE_LISTS[method]
        governance = self.live.governance
        allowed = governance.readable(governance.current_principal(), kind)
        if isinstance(result, BaseModel):
            setattr(result, key, [r for r in getattr(result, key) if r.name in allowed])
        elif isinstance(result, dict) and key in result:
            result[key] = [r for r in result[key] if r.get("name") in allowed]
        return result

    async def governed_read(self, kind: str, name: str, arguments: dict[str, Any], produce: Callable[[], Any]) -> Any:
        """A resource read (kind "resource") or prompt get ("prompt") on the tools' path: the intent on record
        before anything runs, the policy's decision, the Tableau requests tagged with the read's id, the outcome."""
        services = self.live
        governance = services.governance
        principal = governance.current_principal()
        unmapped = governance.unmapped(principal)
        if unmapped is not None:
            await self.refused(f"{kind}:{name}", unmapped)
            raise MCPError(INVALID_REQUEST, f"Refused: {unmapped}.")
        call_id = f"{kind}_" + secrets.token_hex(8)
        label = f"{kind}:{name}"
        started = time.monotonic()
        async with services.tableau.operation(call_id):
            try:
                await _stored(governance.record_read, call_id, principal, kind, name, arguments)
            except AuditUnavailable as exc:
                log.error("refusing %s: audit log unavailable: %s", label, exc)
                raise MCPError(INTERNAL_ERROR, _unaudited(exc)) from None
            decision = await _stored(governance.decide_read, principal, kind, name, call_id=call_id)
            if not decision.allowed:
                await _stored(governance.record_outcome, call_id, label, "denied", started, error=decision.reason)
                raise MCPError(
                    INVALID_REQUEST, f"Not allowed by policy: {decision.reason}. Ask an administrator if this is needed."
                )
            try:
                async with self.tableau_as(governance.tableau_user(principal)):
                    result = await produce()
            except TableauError as exc:
                await _stored(governance.record_outcome, call_id, label, "error", started, error=str(exc))
                raise MCPError(INTERNAL_ERROR, str(exc)) from None
            except Exception:
                log.exception("%s failed unexpectedly (%s)", label, call_id)
                await _stored(governance.record_outcome, call_id, label, "error", started, error="internal error")
                raise MCPError(
                    INTERNAL_ERROR, f"Reading {name} failed unexpectedly; the server log has the details under {call_id}."
                ) from None
            await _stored(governance.record_outcome, call_id, label, "ok", started)
            return result

    # -- the call path ---------------------------------------------------------------------------

    async def call(self, spec: ToolSpec, args: BaseModel, mcp_ctx: Context) -> BaseModel:
        services = self.live
        governance = services.governance
        principal = governance.current_principal()
        if spec.name not in governance.visible_tools(principal):
            # Denied and unknown tools answer alike, so the listing leaks nothing.
            await self.refused(spec.name, "hidden by the policy")
            raise ToolError(f"Unknown tool: {spec.name}")
        unmapped = governance.unmapped(principal)
        if unmapped is not None:
            await self.refused(spec.name, unmapped)
            raise ToolError(f"Refused: {unmapped}. Nothing was sent to Tableau.")
        tableau_user = governance.tableau_user(principal)
        call_id = "call_" + secrets.token_hex(8)
        arguments = args.model_dump(mode="json")
        tool_ctx = ToolContext(
            tableau=services.tableau,
            principal=principal,
            call_id=call_id,
            progress=Progress(mcp_ctx.report_progress),
            approvals=governance,
            live_progress=self.live_progress,
        )
        started = time.monotonic()
        async with services.tableau.operation(call_id):
            try:
                await _stored(governance.record_intent, call_id, principal, spec, arguments, tableau_user=tableau_user)
            except AuditUnavailable as exc:
                log.error("refusing %s: audit log unavailable: %s", spec.name, exc)
                raise ToolError(_unaudited(exc)) from None
            try:
                async with self.tableau_as(tableau_user) as tableau:
                    tool_ctx.tableau = tableau
                    result = await self._decide_and_run(spec, args, arguments, tool_ctx, tableau_user)
            except ToolFailure as exc:
                await _stored(governance.record_outcome, call_id, spec, "error", started, error=str(exc))
                raise ToolError(str(exc)) from None
            except TableauError as exc:
                await _stored(governance.record_outcome, call_id, spec, "error", started, error=str(exc))
                raise ToolError(str(exc)) from None
            except _Denied as exc:
                await _stored(governance.record_outcome, call_id, spec, "denied", started, error=str(exc))
                raise ToolError(str(exc)) from None
            except anyio.get_cancelled_exc_class():
                await _stored(governance.record_outcome, call_id, spec, "cancelled", started)
                raise
            except Exception:
                log.exception("tool %s failed unexpectedly (call %s)", spec.name, call_id)
                await _stored(governance.record_outcome, call_id, spec, "error", started, error="internal error")
                raise ToolError(
                    f"{spec.name} failed unexpectedly; the server log has the details under call id {call_id}."
                ) from None
            status = "pending_approval" if getattr(result, "status", None) == "pending_approval" else "ok"
            await _stored(governance.record_outcome, call_id, spec, status, started, summary=_summary(result))
            return result

    async def _decide_and_run(
        self, spec: ToolSpec, args: BaseModel, arguments: dict[str, Any], ctx: ToolContext, tableau_user: str | None
    ) -> BaseModel:
        governance = self.live.governance
        if spec.literal_facts is not None:
            early = await _stored(governance.early_deny, ctx.principal, spec, spec.literal_facts(args), call_id=ctx.call_id)
            if early is not None:
                raise _Denied(f"Not allowed by policy: {early.reason}. Ask an administrator if this is needed.")
        facts = await spec.facts(ctx, args) if spec.facts else {}
        decision = await _stored(governance.decide, ctx.principal, spec, arguments, facts, call_id=ctx.call_id)
        if decision.effect == "deny":
            raise _Denied(f"Not allowed by policy: {decision.reason}. Ask an administrator if this is needed.")
        if decision.effect == "require_approval" and not spec.own_requests_only:
            preview = escape_controls(await spec.preview(ctx, args)) if spec.preview else f"Run {spec.name}."
            targets = await spec.targets(ctx, args) if spec.targets else []
            request = await _stored(
                governance.create_approval, ctx.principal, spec, arguments, preview, call_id=ctx.call_id,
                targets=targets, site=self.site_of(tableau_user),
                required_approvals=decision.required_approvals,
            )
            again = request.call_id != ctx.call_id
            pending = PendingApproval(
                request_id=request.id,
                preview=request.preview,
                expires_at=request.expires_at,
                message=(
                    f"This change needs an administrator's approval ({decision.reason}). "
                    + (f"The same change is already pending as request {request.id}; no new request was made. "
                       if again else f"Request {request.id} is pending; ")
                    + "an approver decides with `tableau-steward approvals approve`. Check its status and "
                    "result with get_request."
                ),
            )
            return result_model_for(spec)(status="pending_approval", approval=pending)
        output = await spec.run(ctx, args)
        return result_model_for(spec)(status="done", result=output) if spec.is_write else output

    # -- approved requests -----------------------------------------------------------------------

    def wake(self) -> None:
        """Look for approved requests now. Safe from any thread (the decision path runs in a worker thread; a
        PostgreSQL LISTEN callback may run in its own); a no-op before the server is up."""
        if self._woken is not None and self._loop_token is not None:
            call_on_loop(self._loop_token, self._set_woken)  # False once the loop stopped: nothing to wake

    def _set_woken(self) -> None:
        if self._woken is not None:  # read on the loop: the runner's current event, never a replaced one
            self._woken.set()

    def _decided(self, kind: str, request: Any, actor: str | None, reason: str | None) -> None:
        if WAKE_ON_DECISION and kind == "approved":
            self.wake()
        if kind != "created" and self._loop_token is not None:
            call_on_loop(self._loop_token, self._queue_update, request_uri(request.id))

    def _queue_update(self, uri: str) -> None:
        try:
            self._updates.send_nowait(uri)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            log.warning("could not announce %s to listening clients", uri)

    async def _announce_updates(self, updates: Any) -> None:
        """A requester listening on steward://requests/{id} (subscriptions/listen) hears of each change to
        its request: decided, done, expired. The event carries the URI only; get_request reads the state."""
        async with updates:
            async for uri in updates:
                if self.bus is not None:
                    await self.bus.publish(ResourceUpdated(uri=uri))

    def live_progress(self, request_id: str) -> dict[str, Any] | None:
        """The job a request running in this process is waiting on (id, progress %, status), if any."""
        progress = self._running.get(request_id)
        return None if progress is None or progress.job_id is None else progress.snapshot()

    async def run_approved(self, request_id: str | None = None) -> int:
        """Verify, claim and run the approved requests that are due now, side by side (at most
        MAX_PARALLEL_RUNS, exactly once across processes); returns how many ran."""
        services, limiter = self.services, self._limiter
        if services is None or limiter is None:
            return 0
        site = services.tableau.site_identity.model_dump()
        due = [r for r in await _stored(services.governance.approved_requests, request_id, site)
               if r.id not in self._taken and r.tool in self.specs]
        self._taken.update(r.id for r in due)  # before any await: an overlapping pass leaves them alone
        ran = 0

        async def run_one(request: Any) -> None:
            nonlocal ran
            # The request's own record says which Tableau user it runs as; the seal covers it.
            recorded_user = (request.site or {}).get("tableau_user")
            request_site = {**site, "tableau_user": recorded_user} if recorded_user is not None else site
            try:
                async with limiter:
                    claimed = await _stored(services.governance.claim, request, request_site)
                    if claimed is not None:
                        ran += 1
                        await self._execute_claimed(self.specs[request.tool], claimed)
            finally:
                self._taken.discard(request.id)

        async with anyio.create_task_group() as tasks:
            for request in due:
                tasks.start_soon(run_one, request)
        return ran

    async def _execute_claimed(self, spec: ToolSpec, request: Any) -> None:
        """Run a verified request on its recorded targets, loaded by id, after checking the policy again on
        their current facts; a target renamed or moved since the approval is said so in the result."""
        governance = self.live.governance
        call_id = "call_" + secrets.token_hex(8)
        started = time.monotonic()
        bound = {t["role"]: t["id"] for t in request.targets} if spec.targets else None
        progress = Progress.recorded()
        ctx = ToolContext(
            tableau=self.live.tableau, principal=request.requester, call_id=call_id, approvals=governance, bound=bound,
            progress=progress,
        )
        self._running[request.id] = progress
        try:
            await self._run_in(ctx, spec, request, started)
        finally:
            self._running.pop(request.id, None)

    async def _run_in(self, ctx: ToolContext, spec: ToolSpec, request: Any, started: float) -> None:
        governance = self.live.governance
        call_id = ctx.call_id
        tableau_user = (request.site or {}).get("tableau_user")
        async with self.live.tableau.operation(call_id), AsyncExitStack() as acting:
            try:
                await _stored(
                    governance.record_intent, call_id, request.requester, spec, request.arguments, approval_id=request.id,
                    tableau_user=tableau_user,
                )
                _check_identity(governance, request.requester, tableau_user)
                ctx.tableau = await acting.enter_async_context(self.tableau_as(tableau_user))
                args = spec.input_model.model_validate(request.arguments)
                ctx.tableau.invalidate_caches()  # the targets' facts as they are now, not as cached before
                changed = describe_changes(request.targets, await spec.targets(ctx, args)) if spec.targets else ""
                facts = await spec.facts(ctx, args) if spec.facts else {}
                decision = await _stored(governance.decide, request.requester, spec, request.arguments, facts, call_id=call_id)
                if decision.effect == "deny":
                    raise _Denied(
                        f"Refused: {changed + ' ' if changed else ''}The policy now denies this call "
                        f"({decision.reason}); nothing was changed."
                    )
                if decision.needs_approval and decision.required_approvals > request.required_approvals:
                    raise _Denied(  # e.g. the change count grew past a blast-radius limit since the approval
                        f"Refused: {changed + ' ' if changed else ''}The call now needs "
                        f"{decision.required_approvals} approvals ({decision.reason}) and was approved by "
                        f"{request.required_approvals}; nothing was changed. Ask for a new request."
                    )
                output = await spec.run(ctx, args)
            except (ToolFailure, TableauError, _Denied) as exc:
                await _stored(governance.finish_approval, request.id, ok=False, result=str(exc))
                await _stored(
                    governance.record_outcome, call_id, spec, "error", started, error=str(exc), approval_id=request.id
                )
                return
            except Exception:
                log.exception("approved request %s failed", request.id)
                await _stored(governance.finish_approval, request.id, ok=False, result="internal error; see the server log")
                await _stored(
                    governance.record_outcome, call_id, spec, "error", started, error="internal error",
                    approval_id=request.id,
                )
                return
            note = f"{changed} The policy still allows it, so the approved id was acted on." if changed else None
            result = json.dumps({"output": output.model_dump(mode="json"), "note": note})
            await _stored(governance.finish_approval, request.id, ok=True, result=result)
            await _stored(
                governance.record_outcome, call_id, spec, "ok", started, summary=_summary(output), approval_id=request.id
            )

    async def _run_approved_requests_forever(self) -> None:
        """Run approved requests when woken (a decision in this process) or every APPROVAL_POLL_SECONDS (a
        decision in another process sharing the store). Each pass runs in the background, so a long refresh
        does not keep the next approval waiting; requests already running here are not picked up twice."""
        async with anyio.create_task_group() as passes:
            if self.live.governance.audit.backend == "postgresql":
                passes.start_soon(self._wake_on_notify)
            while True:
                assert self._woken is not None
                self._woken = anyio.Event()
                passes.start_soon(self._one_pass)
                with anyio.move_on_after(APPROVAL_POLL_SECONDS):
                    await self._woken.wait()

    async def _wake_on_notify(self) -> None:
        """PostgreSQL: an approval made by any replica arrives as a NOTIFY; wake the runner for it. (On SQLite
        the runner's own poll is the only cross-process signal.)"""
        while True:
            try:
                await self.live.governance.approval_wakeup(APPROVAL_POLL_SECONDS)  # a NOTIFY, or the timeout
            except Exception as exc:  # noqa: BLE001 - whatever the store raised, the runner must go on polling
                log.warning("not listening for approvals (%s); polling", type(exc).__name__)
                await anyio.sleep(APPROVAL_POLL_SECONDS)
                continue
            self._set_woken()

    async def _one_pass(self) -> None:
        try:
            if self.services is not None:  # the sweeper: lapsed requests become expired (and say so) once
                await _stored(self.services.governance.expire_due)
            await self.run_approved()
        except AuditUnavailable as exc:  # fail closed: nothing runs while the store is unusable
            log.warning("not running approved requests: %s", exc)
        except Exception:
            log.exception("running approved requests failed; will try again")


def request_uri(request_id: str) -> str:
    """The URI a client listens on to hear that request `request_id` changed."""
    return f"steward://requests/{request_id}"


def _check_identity(governance: Governance, requester: str, recorded: str | None) -> None:
    """An approved request runs as the requester's Tableau user recorded with it, so an approval never
    widens what the requester could do in Tableau; a policy that now maps them otherwise refuses it."""
    current = governance.tableau_user(requester)
    if governance.per_user and recorded is None:
        raise _Denied("Refused: the request was made without a Tableau user (identity: service) and this server "
                      "now acts as each caller (identity: per_user); nothing was changed. Ask again.")
    if current != recorded:
        now = f"'{current}'" if current else "no Tableau user"
        raise _Denied(f"Refused: the request was made as Tableau user '{recorded}', but the policy now maps "
                      f"{requester} to {now}; nothing was changed.")


@asynccontextmanager
async def _nothing(value: T) -> AsyncIterator[T]:
    yield value


def describe_changes(recorded: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]]) -> str:
    """What changed in the targets between the approval and now, in words ('' when nothing did)."""
    now = {t["role"]: t for t in current}
    changes = []
    for then in recorded:
        target = now.get(then["role"], {})
        moved = [
            f"{fact.replace('_', ' ')} '{then[fact]}' is now '{target.get(fact)}'"
            for fact in sorted(then)
            if fact not in ("role", "kind", "id") and target.get(fact) != then[fact]
        ]
        if moved:
            changes.append(f"the {then['kind']} {then['id']} changed since the approval ({'; '.join(moved)})")
    if not changes:
        return ""
    text = "; ".join(changes)
    return text[0].upper() + text[1:] + "."


READABLE_LISTS = {"resources/list": ("resource", "resources"), "prompts/list": ("prompt", "prompts")}


def _invalid_arguments(spec: ToolSpec, arguments: Any) -> str:
    """What is wrong with a call's raw arguments ('' when they are valid), in the words tools use."""
    try:
        parse_arguments(spec.input_model, arguments if isinstance(arguments, dict) else {})
    except ArgumentError as exc:
        return str(exc)
    return ""


def _unaudited(exc: AuditUnavailable) -> str:
    return (
        f"Refused: the audit log cannot be written ({exc.public_reason}), and nothing runs unaudited. "
        "Ask the administrator to check the audit store."
    )


async def _stored(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a governance step that touches the SQLite store in a worker thread.

    Each write is an fsync'd transaction that may also wait (up to the busy timeout) for another
    process sharing the store; on the event loop that would stall every other call and the HTTP
    transport with it. Shielded, so a record the call has started (its cancelled outcome too) is
    always finished.
    """
    with anyio.CancelScope(shield=True):
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))


class _Denied(Exception):
    """The policy refused the call."""
