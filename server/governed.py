"""The governance adapter the call path uses: who is calling, what the policy says, audit and approvals.

It binds the pure governance core (server/governance) to this server: the tool registry is the
policy's catalog, HTTP bearer tokens become principals, and Tableau requests are audited.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from pydantic import AnyHttpUrl

from server.governance import (
    ApprovalError,
    ApprovalRequest,
    ApprovalStore,
    AuditKeyError,
    AuditLog,
    AuditUnavailable,
    CallFacts,
    Decision,
    Policy,
    PolicyError,
    Principal,
    ToolInfo,
    decide,
    load_policy,
    visible_tools,
)
from server.governance.keys import SigningKey, SigningKeyError, load_signing_key
from server.governance.policy import TokenSpec, decide_read, readable
from server.notify.config import DeliveryTarget, NotificationsError, resolve_targets
from server.operations import Operations
from server.toolkit import ToolSpec

__all__ = ["AuditUnavailable", "ChangeHook", "Governance", "PolicyError", "signing_key_for"]

# Called after a change to a request is committed: (event kind, the request as stored now, actor, reason).
# Kinds: created, approved, denied, executed, failed, expired, cancelled. Hooks may run in a worker thread.
ChangeHook = Callable[[str, "ApprovalRequest", "str | None", "str | None"], None]

log = logging.getLogger(__name__)
RESULT_RETRY_SECONDS = 300.0  # how long an approved request's result waits for an unreachable store
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def tool_catalog() -> dict[str, ToolInfo]:
    """The policy's catalog is the real registry, so a policy naming a tool we do not have fails to load."""
    from tools.registry import TOOLS

    return {spec.name: ToolInfo(is_write=spec.is_write, facts=_facts_of(spec)) for spec in TOOLS}


def _facts_of(spec: ToolSpec) -> frozenset[str]:
    declared = {
        "refresh_and_wait": {"project_path", "content_kind"},
        "add_user_to_group": {"group_name", "target_user_site_role", "group_minimum_site_role"},
    }
    return frozenset(declared.get(spec.name, set())) | spec.fact_names


def signing_key_for(policy: Policy) -> SigningKey:
    """The server's signing key for the policy's store ($STEWARD_SIGNING_KEY or the key file, created on first
    start). A key problem is an AuditKeyError: the server does not start, and says what to do."""
    try:
        return load_signing_key(policy.audit_path)
    except SigningKeyError as exc:
        raise AuditKeyError(str(exc), "the signing key is missing or unusable") from None


def notification_targets(policy: Policy) -> tuple[DeliveryTarget, ...]:
    """The policy's notification targets with their URLs and secrets read from the environment or files
    (relative to the policy file). PolicyError listing every missing one, never showing a value."""
    base = policy.source.parent if policy.source is not None else None
    try:
        return resolve_targets(policy.spec.notifications, base_dir=base)
    except NotificationsError as exc:
        raise PolicyError("notifications: " + "; ".join(exc.problems)) from None


def _slack_verifier(policy: Policy) -> Any:
    from server.integrations.slack_route import slack_verifier

    try:
        return slack_verifier(policy)
    except NotificationsError as exc:
        raise PolicyError("notifications: " + "; ".join(exc.problems)) from None


class PolicyTokenVerifier:
    """Maps an HTTP bearer token to the policy's principal; tokens are compared as sha256 hashes."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    async def verify_token(self, token: str) -> AccessToken | None:
        principal = self.policy.principal_for_token(token)
        if principal is None:
            return None
        return AccessToken(token=token, client_id=principal.name, scopes=[], subject=principal.name)


def http_auth_kwargs(policy: Policy, *, transport: str, no_auth: bool, host: str, port: int) -> dict[str, Any]:
    """MCPServer arguments for bearer-token authentication on streamable HTTP; none for stdio or --no-auth.

    Built from the policy alone, so the server can install authentication before its services open.
    """
    if transport != "http" or no_auth:
        return {}
    return {
        "token_verifier": PolicyTokenVerifier(policy),
        "auth": AuthSettings(
            issuer_url=AnyHttpUrl(f"http://{host}:{port}"),
            resource_server_url=AnyHttpUrl(f"http://{host}:{port}/mcp"),
            validate_token_resource=False,
        ),
    }


def same_site(recorded: Mapping[str, Any] | None, site: Mapping[str, Any]) -> bool:
    """Whether a request was made on `site` (the Tableau user it runs as, recorded under per-user identity,
    is not part of the site)."""
    return recorded is not None and {k: v for k, v in recorded.items() if k != "tableau_user"} == dict(site)


class Governance:
    def __init__(
        self,
        policy: Policy,
        audit: AuditLog,
        approvals: ApprovalStore,
        *,
        transport: str = "stdio",
        no_auth: bool = False,
        host: str = "127.0.0.1",
        port: int = 8765,
    ) -> None:
        self.policy = policy
        self.audit = audit
        self.approvals = approvals
        self.transport = transport
        self.no_auth = no_auth
        self.host = host
        self.port = port
        self._observed: set[int] = set()  # ids of the Tableau clients whose requests are audited
        self._wakeups: Any = None  # PostgreSQL: LISTENs for approvals made by any replica
        self.operations = Operations(tool_catalog())
        audit.commit_observer = self.operations.audit_committed
        self.operations.watch_pending(approvals.count_pending)
        self._principals: dict[str, str] = {}  # call id -> principal, while the call runs (for its requests)
        self._hooks: list[ChangeHook] = []  # told of each committed change to a request (wake-up, notifications)
        self.notification_targets: tuple[DeliveryTarget, ...] = ()  # resolved by `open` (secrets read then)
        self.slack_verifier: Any = None  # server.integrations.slack.SlackInteractionVerifier, made by `open`

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def load(cls, policy_path: Path, *, transport: str = "stdio", no_auth: bool = False, host: str = "127.0.0.1",
             extra_tokens: Sequence[TokenSpec] = ()) -> Policy:
        """Load the policy and check it fits the transport. Raises PolicyError with what to fix.
        `extra_tokens` are token entries held outside the file (the demo's one-run admin token)."""
        policy = load_policy(policy_path, tool_catalog())
        if extra_tokens:
            policy = policy.with_tokens(extra_tokens)
        if transport == "http" and not no_auth and not policy.tokens_for("mcp"):
            raise PolicyError(
                f"{policy_path}: streamable HTTP requires bearer tokens, and the policy defines none under "
                "http.tokens. Add one with `tableau-steward policy hash-token --principal NAME --role ROLE "
                "--generate`, or serve on loopback with --no-auth."
            )
        if transport == "http" and no_auth and host not in LOOPBACK:
            raise PolicyError("--no-auth is only allowed when binding to loopback (127.0.0.1, localhost, ::1).")
        if (transport == "stdio" or no_auth) and policy.local_principal() is None:
            raise PolicyError(f"{policy_path}: stdio and --no-auth run as the `local:` principal, which is missing.")
        return policy

    @classmethod
    def check(cls, policy_path: Path, **kwargs: Any) -> None:
        cls.load(policy_path, **kwargs)

    @classmethod
    def open(cls, policy_path: Path, *, transport: str = "stdio", no_auth: bool = False,
             host: str = "127.0.0.1", port: int = 8765, key: SigningKey | None = None,
             extra_tokens: Sequence[TokenSpec] = ()) -> Governance:
        """Load the policy, open the store sealed with the signing key (`key`, else `signing_key_for`), and
        record `policy.loaded`. Raises PolicyError or AuditUnavailable (AuditKeyError) saying what to fix."""
        policy = cls.load(policy_path, transport=transport, no_auth=no_auth, host=host, extra_tokens=extra_tokens)
        audit = AuditLog.open(policy.audit_store, key=key or signing_key_for(policy),
                              synchronous=policy.audit_synchronous, redact=policy.redact_names)
        governance = cls(policy, audit, ApprovalStore(audit), transport=transport, no_auth=no_auth, host=host, port=port)
        try:
            governance.notification_targets = notification_targets(policy)
            governance.slack_verifier = _slack_verifier(policy)
            governance.record_policy_loaded("start")
        except BaseException:
            audit.close()
            raise
        return governance

    def close(self) -> None:
        if self._wakeups is not None:
            self._wakeups.close()
        self.audit.close()

    async def readiness(self) -> dict[str, dict[str, Any]]:
        """/readyz: the policy in force, whether the store answers, and the Tableau session's state."""
        session = self.operations.session.state()
        checks: dict[str, dict[str, Any]] = {
            "policy": {"ok": True, "hash": self.policy.hash, "mode": self.policy.mode},
            "tableau": {"ok": session["status"] in ("signed_in", "contended"), **session},
        }
        try:
            head = await anyio.to_thread.run_sync(self._store_head)
            checks["store"] = {"ok": True, "backend": self.audit.backend, "head_seq": head}
        except AuditUnavailable as exc:
            checks["store"] = {"ok": False, "backend": self.audit.backend, "error": exc.public_reason}
        return checks

    def _store_head(self) -> int:
        if not self.audit.readonly:
            self.audit.check_present()
        return self.audit.head()[0]

    async def approval_wakeup(self, poll_seconds: float) -> None:
        """Return when approved requests may be waiting: at once on an approval NOTIFY from any replica
        (PostgreSQL), else after `poll_seconds` (SQLite, or a notification missed while the store was away)."""
        if self.audit.backend != "postgresql":
            await anyio.sleep(poll_seconds)
            return
        if self._wakeups is None:
            from server.governance.audit_pg import ApprovalWakeups

            self._wakeups = ApprovalWakeups(self.audit.url)
        await anyio.to_thread.run_sync(self._wakeups.wait, poll_seconds, abandon_on_cancel=True)

    def mcp_auth_kwargs(self) -> dict[str, Any]:
        return http_auth_kwargs(self.policy, transport=self.transport, no_auth=self.no_auth, host=self.host, port=self.port)

    @property
    def requires_token(self) -> bool:
        return self.transport == "http" and not self.no_auth

    # -- who and what -------------------------------------------------------------------------

    def current_principal(self) -> str | None:
        """Who is calling; None when nobody is (authenticated HTTP without a token: never the local user)."""
        token = get_access_token()
        if token is not None:
            return token.subject or token.client_id
        if self.requires_token:
            return None
        local = self.policy.local_principal()
        return local.name if local is not None else None

    def _principal(self, name: str) -> Principal:
        local = self.policy.local_principal()
        if local is not None and local.name == name:
            return local
        return Principal(name=name, roles=self.policy.roles_of(name), via="token")

    # -- Tableau identity (policy `identity: service | per_user`) -------------------------------------------

    @property
    def per_user(self) -> bool:
        return self.policy.identity == "per_user"

    def tableau_user(self, principal: str | None) -> str | None:
        """The Tableau user `principal` acts as under `identity: per_user`; None in service mode or unmapped."""
        return self.policy.tableau_user_of(principal) if self.per_user and principal is not None else None

    def unmapped(self, principal: str | None) -> str | None:
        """Why `principal` cannot reach Tableau under `identity: per_user` (no mapping), else None."""
        if not self.per_user or principal is None or self.tableau_user(principal) is not None:
            return None
        return (
            f"principal '{principal}' has no Tableau user: this server signs in to Tableau as each caller "
            f"(identity: per_user), so an administrator must set principals.{principal}.tableau_user in the policy"
        )

    def _identity_fields(self, principal: str | None) -> dict[str, Any]:
        """`tableau_user` for an audit record under per-user identity (nothing in service mode)."""
        return {"tableau_user": self.tableau_user(principal)} if self.per_user else {}

    def visible_tools(self, principal: str | None) -> set[str]:
        return set() if principal is None else visible_tools(self.policy, self._principal(principal))

    def readable(self, principal: str | None, kind: str) -> set[str]:
        """The resources (kind "resource") or prompts ("prompt") `principal` may read: what to list."""
        return set() if principal is None else readable(self.policy, self._principal(principal), kind)

    def decide_read(self, principal: str | None, kind: str, name: str, *, call_id: str) -> Decision:
        """The policy's answer for reading a resource or getting a prompt, on record as a decision."""
        if principal is None:
            decision = Decision("deny", None, None, "nobody is signed in")
        else:
            decision = decide_read(self.policy, self._principal(principal), kind, name)
        self.audit.append(
            "tool_call.decision",
            call_id=call_id,
            principal=principal or "(nobody)",
            tool=f"{kind}:{name}",
            effect=decision.effect,
            rule=decision.rule_id,
            reason=decision.reason,
            policy_hash=self.policy.hash,
        )
        return decision

    def record_read(self, call_id: str, principal: str | None, kind: str, name: str, arguments: dict[str, Any]) -> None:
        """The intent of a resource read or prompt get, written before anything runs (fail closed)."""
        self.audit.record_intent(
            call_id=call_id, principal=principal or "(nobody)", tool=f"{kind}:{name}", arguments=arguments,
            policy_hash=self.policy.hash, effect="read", **self._identity_fields(principal),
        )
        self._principals[call_id] = principal or "(nobody)"

    def decide(self, principal: str, spec: ToolSpec, arguments: dict[str, Any], facts: dict[str, Any],
               *, call_id: str) -> Decision:
        decision = decide(self.policy, self._principal(principal), spec.name, CallFacts.from_mapping(facts))
        self.audit.append(
            "tool_call.decision",
            call_id=call_id,
            principal=principal,
            tool=spec.name,
            effect=decision.effect,
            rule=decision.rule_id,
            reason=decision.reason,
            facts=CallFacts.from_mapping(facts).as_dict(),
            policy_hash=self.policy.hash,
        )
        return decision

    def early_deny(self, principal: str, spec: ToolSpec, literal_facts: dict[str, Any], *, call_id: str) -> Decision | None:
        """A deny that an explicit rule already gives on the literal arguments, before any site lookup."""
        facts = CallFacts.from_mapping(literal_facts)
        decision = decide(self.policy, self._principal(principal), spec.name, facts)
        if not decision.denied or decision.rule_id is None or decision.fail_closed:
            return None
        self.audit.append(
            "tool_call.decision",
            call_id=call_id,
            principal=principal,
            tool=spec.name,
            effect=decision.effect,
            rule=decision.rule_id,
            reason=decision.reason,
            facts=facts.as_dict(),
            policy_hash=self.policy.hash,
            stage="literal",
        )
        return decision

    def describe_policy(self, principal: str) -> dict[str, Any]:
        visible = self.visible_tools(principal)
        return {
            "principal": principal,
            "mode": self.policy.mode,
            "policy_hash": self.policy.hash,
            "tools_you_can_use": sorted(visible),
            "tools_hidden_from_you": sorted(set(self.policy.catalog) - visible),
            "rules": [
                {"id": r.id, "description": r.description, "tools": sorted(r.tools), "effect": r.effect}
                for r in self.policy.rules
                if r.applies_to(self._principal(principal))
            ],
            "approvals": {
                "required_approvals": self.policy.required_approvals,
                "ttl_seconds": self.policy.approval_ttl,
            },
        }

    # -- audit ----------------------------------------------------------------------------------

    def record_intent(self, call_id: str, principal: str, spec: ToolSpec, arguments: dict[str, Any],
                      approval_id: str | None = None, tableau_user: str | None = None) -> None:
        """`tableau_user` (per-user identity) is the Tableau user the call acts as, on record next to the principal."""
        identity = {"tableau_user": tableau_user} if self.per_user else {}  # the recorded one, for approved runs
        self.audit.record_intent(
            call_id=call_id,
            principal=principal,
            tool=spec.name,
            arguments=arguments,
            policy_hash=self.policy.hash,
            approval_id=approval_id,
            effect=spec.effect,
            **identity,
        )
        self._principals[call_id] = principal  # only once on record: nothing runs before

    def record_outcome(self, call_id: str, spec: ToolSpec | str, status: str, started: float, *,
                       summary: str | None = None, error: str | None = None, approval_id: str | None = None) -> None:
        """`spec` is the tool, or the name a read was recorded under ('resource:site_summary')."""
        name = spec if isinstance(spec, str) else spec.name
        self._principals.pop(call_id, None)
        self.operations.tool_call(name, status)
        try:
            self.audit.record_outcome(
                call_id=call_id,
                tool=name,
                status=status,
                duration_ms=(time.monotonic() - started) * 1000,
                summary=summary,
                error=error,
                approval_id=approval_id,
            )
        except AuditUnavailable:
            # The intent is on record; an outcome that cannot be written must not hide the result.
            log.error("could not write the outcome record of %s (call %s)", name, call_id)

    def record_tableau_request(self, event: Any) -> None:
        """Audit one HTTP attempt with the principal of the call or read that made it ("(server)" for the
        server's own sign-in, serverInfo and sign-out)."""
        operation = getattr(event, "operation_id", None) or ""
        principal = self._principals.get(operation) or ("(server)" if operation.startswith("tableau:") else None)
        self.operations.tableau_request(event)
        try:
            self.audit.record_tableau_request(event, principal=principal)
        except AuditUnavailable:
            log.error("could not audit a Tableau request (%s %s)", event.method, event.path)

    def observe(self, tableau: Any) -> None:
        """Audit every request `tableau` makes. Call it before the client connects, so the sign-in and
        serverInfo requests are on record too; observing the same client again changes nothing."""
        if id(tableau) not in self._observed:
            self._observed.add(id(tableau))
            tableau.add_observer(self.record_tableau_request)

    def record_policy_loaded(self, reason: str) -> None:
        """`policy.loaded` with the hash of the policy now in force (at start; call again after a reload)."""
        self.audit.append(
            "policy.loaded",
            policy_hash=self.policy.hash,
            source=str(self.policy.source) if self.policy.source else None,
            mode=self.policy.mode,
            reason=reason,
            key_id=self.audit.key.key_id,
        )

    def record_refusal(self, principal: str | None, tool: str, reason: str) -> None:
        """`tool_call.refused`: a call answered before the call path (a hidden or unknown tool, bad arguments).
        A refusal that cannot be recorded still refuses."""
        self.operations.tool_call(tool, "refused")
        try:
            self.audit.append("tool_call.refused", principal=principal, tool=tool, reason=reason,
                              policy_hash=self.policy.hash)
        except AuditUnavailable:
            log.error("could not audit the refusal of %s for %s", tool, principal)

    # -- approvals ------------------------------------------------------------------------------

    def on_decided(self, hook: ChangeHook) -> None:
        """Call `hook` after every committed change to a request (see ChangeHook)."""
        self._hooks.append(hook)

    def _changed(self, kind: str, request: ApprovalRequest, actor: str | None = None, reason: str | None = None) -> None:
        for hook in self._hooks:
            try:
                hook(kind, request, actor, reason)
            except Exception:  # a wake-up or a notification must never undo or fail a committed change
                log.exception("a change hook failed for %s (%s)", request.id, kind)

    def create_approval(self, principal: str, spec: ToolSpec, arguments: dict[str, Any], preview: str,
                        *, call_id: str, targets: list[dict[str, Any]], site: dict[str, Any],
                        required_approvals: int = 0) -> ApprovalRequest:
        """A request bound to the resolved targets and the site (or the requester's identical live one), needing
        the policy's approvers or, past a blast-radius limit, the decision's (`required_approvals`)."""
        request = self.approvals.create(
            spec.name,
            arguments,
            principal,
            preview,
            self.policy.approval_ttl,
            required_approvals=max(self.policy.required_approvals, required_approvals),
            call_id=call_id,
            policy_hash=self.policy.hash,
            targets=targets,
            site=site,
            target_args=spec.target_args,
        )
        if request.call_id == call_id:  # a new request, not the requester's identical pending one
            self._changed("created", request)
        return request

    def approved_requests(self, request_id: str | None, site: dict[str, Any]) -> list[ApprovalRequest]:
        """Approved requests to run: the one asked for, or every one made on this server's site (a request
        of another site is left to its server; asked for by id here, the claim refuses it)."""
        if request_id is not None:
            request = self.approvals.get(request_id)
            return [request] if request is not None and request.status == "approved" else []
        return [r for r in self.approvals.list(status="approved") if same_site(r.site, site)]

    def claim(self, request: ApprovalRequest, site: dict[str, Any]) -> ApprovalRequest | None:
        """Verify and atomically take an approved request to run; None when refused (audited by the store:
        tampering, another site, not enough approvers under the policy now) or another process got it."""
        try:
            return self.approvals.claim_for_execution(
                request.id, request.tool, request.args_digest, policy=self.policy, site=site
            )
        except ApprovalError as exc:
            log.log(logging.WARNING if exc.code in ("tampered", "other_site") else logging.INFO,
                    "not running %s: %s", request.id, exc)
            return None

    # -- deciding (the admin API: the principal comes from an admin token, never from a name) --------------

    def is_approver(self, principal: str) -> bool:
        return self.policy.is_approver(principal)

    def list_requests(self, status: str | None) -> list[ApprovalRequest]:
        return self.approvals.list(status)

    def admin_principal(self, token: str) -> str | None:
        principal = self.policy.principal_for_token(token, audience="admin")
        return principal.name if principal is not None else None

    def decide_request(self, approver: str, request_id: str, *, approve: bool, reason: str | None) -> ApprovalRequest:
        """The one decision path (admin API, console, Slack): the store refuses the requester, non-approvers
        and anything not pending; once committed, the hooks wake the runner and send notifications."""
        if approve:
            request = self.approvals.approve(request_id, approver, reason, self.policy)
            if request.status == "approved":  # the last approval needed (two-person: the second)
                self._changed("approved", request, approver, reason)
            return request
        request = self.approvals.deny(request_id, approver, reason or "", self.policy)
        self._changed("denied", request, approver, reason)
        return request

    def cancel_request(self, requester: str, request_id: str, reason: str | None) -> ApprovalRequest:
        """The requester withdraws its own request before it runs: a sealed `denied` decision by the requester
        (the store allows that, and refuses any decision after it), told to the hooks as `denied`."""
        why = "withdrawn by the requester" + (f": {reason}" if reason else "")
        request = self.approvals.deny(request_id, requester, why, self.policy)
        self._changed("denied", request, requester, why)
        return request

    def finish_approval(self, request_id: str, *, ok: bool, result: str) -> None:
        """Record how a claimed request ended. While the store is away this waits for it (up to
        RESULT_RETRY_SECONDS): a claimed request never runs again, so its result must not be lost."""
        deadline = time.monotonic() + RESULT_RETRY_SECONDS
        while True:
            try:
                request = self.approvals.record_result(request_id, ok, result)
                break
            except AuditUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("cannot record the result of %s yet (%s); retrying", request_id, exc.public_reason)
                time.sleep(1.0)
        self._changed("executed" if ok else "failed", request)

    def expire_due(self) -> int:
        """Expire lapsed requests (the sweeper); each one's `expired` change is told once, by whoever expired it."""
        expired = self.approvals.expire_due()
        for request_id in expired:
            request = self.approvals.get(request_id)
            if request is not None:
                self._changed("expired", request)
        return len(expired)

    def get_request(self, request_id: str) -> ApprovalRequest | None:
        return self.approvals.get(request_id)

    def request_view(self, request: ApprovalRequest) -> dict[str, Any]:
        view = request.view()
        status = view["status"]
        messages = {
            "pending": f"Waiting for {request.required_approvals} approval(s) from an approver.",
            "approved": "Approved; the server runs it shortly.",
            "executing": "Approved and running now.",
            "executed": "Approved and done; `result` says what changed.",
            "failed": "Approved, but running it failed; `result` says why.",
            "denied": "An approver denied it; nothing was changed.",
            "expired": "It expired before it was approved or run; nothing was changed. Ask again if still needed.",
            "refused": "The server refused to run it (`result` says why); nothing was changed.",
        }
        view["message"] = messages.get(status, status)
        if status == "denied" and any(d.get("approver") == request.requester for d in view.get("decisions", [])):
            view["message"] = "You withdrew it; nothing was changed."
        for internal in ("args_digest", "required_approvals", "site", "integrity"):
            view.pop(internal, None)
        return view
