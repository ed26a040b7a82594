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
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache, partial
from typing import Any, Literal, TypeVar

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_REQUEST, CallToolResult, TextContent
from pydantic import BaseModel, Field, create_model

from server.arguments import ArgumentError, parse_arguments
from server.governance import admin_api
from server.governance.display import escape_controls
from server.governed import AuditUnavailable, Governance
from server.tableau.errors import TableauError
from server.toolkit import Progress, ToolContext, ToolFailure, ToolSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often the server looks for approved requests to run (several processes may share the store).
APPROVAL_POLL_SECONDS = 1.0


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


def _summary(result: BaseModel) -> str:
    text = result.model_dump_json()
    return text if len(text) <= 500 else text[:497] + "..."


class CallPipeline:
    def __init__(self, specs: Sequence[ToolSpec]):
        self.specs = {spec.name: spec for spec in specs}
        self.services: Services | None = None

    # -- wiring ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def attached(self, services: Services) -> AsyncIterator[None]:
        self.services = services
        services.governance.observe(services.tableau)  # a no-op when the services factory already did it
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._run_approved_requests_forever)
            try:
                async with self._admin_api(services.governance):
                    yield
            finally:
                tasks.cancel_scope.cancel()

    def admin_routes(self) -> list[Any]:
        """The admin API's routes (server/governance/admin_api.py), answering once the services are up."""
        return admin_api.admin_routes(lambda: self.services.governance if self.services else None)

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
                log.info("admin API for approvals at %s (written to %s)", url, discovery)
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
        call_id = "call_" + secrets.token_hex(8)
        arguments = args.model_dump(mode="json")
        tool_ctx = ToolContext(
            tableau=services.tableau,
            principal=principal,
            call_id=call_id,
            progress=Progress(mcp_ctx.report_progress),
            approvals=governance,
            run_approved=self.run_approved,
        )
        started = time.monotonic()
        async with services.tableau.operation(call_id):
            try:
                await _stored(governance.record_intent, call_id, principal, spec, arguments)
            except AuditUnavailable as exc:
                log.error("refusing %s: audit log unavailable: %s", spec.name, exc)
                raise ToolError(_unaudited(exc)) from None
            try:
                result = await self._decide_and_run(spec, args, arguments, tool_ctx)
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
        self, spec: ToolSpec, args: BaseModel, arguments: dict[str, Any], ctx: ToolContext
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
        if decision.effect == "require_approval":
            preview = escape_controls(await spec.preview(ctx, args)) if spec.preview else f"Run {spec.name}."
            targets = await spec.targets(ctx, args) if spec.targets else []
            request = await _stored(
                governance.create_approval, ctx.principal, spec, arguments, preview, call_id=ctx.call_id,
                targets=targets, site=self.live.tableau.site_identity.model_dump(),
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

    async def run_approved(self, request_id: str | None = None) -> int:
        """Verify, claim and run approved requests (exactly once across processes); returns how many ran."""
        services = self.services
        if services is None:
            return 0
        site = services.tableau.site_identity.model_dump()
        ran = 0
        for request in await _stored(services.governance.approved_requests, request_id, site):
            spec = self.specs.get(request.tool)
            claimed = await _stored(services.governance.claim, request, site) if spec else None
            if claimed is None:
                continue
            ran += 1
            await self._execute_claimed(spec, claimed)
        return ran

    async def _execute_claimed(self, spec: ToolSpec, request: Any) -> None:
        """Run a verified request on its recorded targets, loaded by id, after checking the policy again on
        their current facts; a target renamed or moved since the approval is said so in the result."""
        governance = self.live.governance
        call_id = "call_" + secrets.token_hex(8)
        started = time.monotonic()
        bound = {t["role"]: t["id"] for t in request.targets} if spec.targets else None
        ctx = ToolContext(
            tableau=self.live.tableau, principal=request.requester, call_id=call_id, approvals=governance, bound=bound
        )
        async with self.live.tableau.operation(call_id):
            try:
                await _stored(
                    governance.record_intent, call_id, request.requester, spec, request.arguments, approval_id=request.id
                )
                args = spec.input_model.model_validate(request.arguments)
                self.live.tableau.invalidate_caches()  # the targets' facts as they are now, not as cached before
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
        while True:
            try:
                await self.run_approved()
            except AuditUnavailable as exc:  # fail closed: nothing runs while the store is unusable
                log.warning("not running approved requests: %s", exc)
            except Exception:
                log.exception("running approved requests failed; will try again")
            await anyio.sleep(APPROVAL_POLL_SECONDS)


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
