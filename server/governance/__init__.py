"""Governance core: the policy (who may call what), the audit log (what happened) and approvals.

Pure and Tableau-independent. The server's single call path uses it as:

    policy = load_policy(path, known_tools)                      # PolicyError on any problem
    principal = policy.local_principal() or policy.principal_for_token(token)
    if tool not in visible_tools(policy, principal): ...         # tools/list filter, and a first check
    log.record_intent(call_id=..., principal=..., tool=..., arguments=..., policy_hash=policy.hash)
                                                                 # AuditUnavailable -> refuse the call
    decision = decide(policy, principal, tool, CallFacts.from_mapping(facts))
    deny -> refuse; require_approval -> approvals.create(...) and answer pending_approval; allow -> run
    log.record_outcome(call_id=..., tool=..., status=..., duration_ms=...)

See docs/GOVERNANCE.md for the policy file and the administrator commands.
"""

from server.governance.approvals import ApprovalDecision, ApprovalError, ApprovalRequest, ApprovalStore
from server.governance.audit import AuditKeyError, AuditLog, AuditRecord, AuditUnavailable, VerifyResult
from server.governance.canonical import Redactor, args_digest, canonical_json, redact
from server.governance.policy import (
    DEFAULT_CATALOG,
    CallFacts,
    Decision,
    Policy,
    PolicyError,
    Principal,
    ToolInfo,
    decide,
    hash_token,
    load_policy,
    parse_policy,
    policy_hash,
    visible_tools,
)

__all__ = [
    "DEFAULT_CATALOG",
    "ApprovalDecision",
    "ApprovalError",
    "ApprovalRequest",
    "ApprovalStore",
    "AuditKeyError",
    "AuditLog",
    "AuditRecord",
    "AuditUnavailable",
    "CallFacts",
    "Decision",
    "Policy",
    "PolicyError",
    "Principal",
    "Redactor",
    "ToolInfo",
    "VerifyResult",
    "args_digest",
    "canonical_json",
    "decide",
    "hash_token",
    "load_policy",
    "parse_policy",
    "policy_hash",
    "redact",
    "visible_tools",
]
