"""The policy: who may call which tool on what, loaded strictly from YAML, decided by a pure function.

Loading (`load_policy` / `parse_policy`) validates the YAML with pydantic (`extra="forbid"` everywhere)
and then checks names against the tool catalog, the declared roles and the known principals. Every
problem is reported with the file name, the YAML line and a hint::

    policies.yaml line 23: unknown tool 'add_user_to_groups' (did you mean 'add_user_to_group'?)

Deciding (`decide`) is pure: no I/O, no clock, no Tableau. The tool layer resolves the facts about the
call's target from the site (`CallFacts`) and the policy compares them with the rules' conditions.

Precedence: a matching `deny` rule wins over `require_approval`, which wins over `allow`; when no rule
matches the call is denied. In `mode: read-only` write tools are neither visible nor callable.

Facts and the conditions that need them (`when:` keys of a rule):

    condition               fact (CallFacts field)     resolved by the tool layer as
    project_path            project_path               the target content's full project path, 'Sales/EMEA'
    group_name              group_name                 the target group's name, 'Administrators'
    content_kind            content_kind               'workbook', 'datasource', 'flow', 'view' or 'project'
    target_user_site_role   target_user_site_role      the target user's site role, 'Creator', 'Viewer', ...
    group_minimum_site_role group_minimum_site_role    the site role the target group grants on sign-in
                                                       (Tableau's grant-license mode), '' when it grants none
    from_site_role          from_site_role             the target user's site role before the change ('' for a
                                                       user that does not exist yet)
    to_site_role            to_site_role               the site role the change gives the target user
    owner_kind              owner_kind                 the kinds of content whose owner changes
    (max_changes: N)        change_count               how many objects one request would change

A fact may hold several values (a group sync names several groups, a hand-over several kinds): a
`deny` or `require_approval` rule's condition matches when ANY value matches, an `allow` rule's only
when EVERY value does, and an `unless` exception excuses a restrictive rule only when every value
matches it (and disqualifies an allow rule when any value does). Safe either way.

`max_changes: N` is a blast-radius limit: the rule matches only calls that would change more than N
objects, and `over_limit` says what then happens (`deny`, or `{require_approvals: 2}`: a gate that
needs that many distinct approvers).

A rule whose condition needs a fact the tool did not resolve (the field is None) fails closed: a
`deny` or `require_approval` rule in that state turns the decision into a deny (nothing that a
restrictive rule might have caught slips through), and an `allow` rule simply does not match.
When the catalog declares which facts a tool resolves (`ToolInfo.facts`), a rule applies only to
the tools that resolve every fact its conditions use, so `tools: ["*"]` with a `group_name`
condition concerns only the group tools.

Resources and prompts are read through the same rules: `resources:` and `prompts:` list their names
(or globs, `"*"` for all) beside or instead of `tools:`, and `decide_read` answers allow or deny with the
same precedence and the same default deny. Such a rule cannot require approval or carry conditions.
"""

from __future__ import annotations

import difflib
import hmac
import os
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from server.governance import safe_yaml
from server.governance.canonical import canonical_json, sha256_hex
from server.notify.config import NotificationsSpec

__all__ = [
    "CONDITION_FACTS",
    "DEFAULT_AUDIT_PATH",
    "DEFAULT_CATALOG",
    "DEFAULT_READABLES",
    "CallFacts",
    "Decision",
    "Effect",
    "Policy",
    "PolicyError",
    "Principal",
    "ToolInfo",
    "decide",
    "decide_read",
    "default_policy_path",
    "hash_token",
    "load_policy",
    "parse_policy",
    "policy_hash",
    "visible_tools",
]

Effect = Literal["allow", "deny", "require_approval"]
EFFECTS: tuple[str, ...] = ("allow", "deny", "require_approval")
DEFAULT_AUDIT_PATH = ".steward/audit.sqlite"
STORE_URL_ENV = "STEWARD_STORE_URL"  # a postgresql:// URL: the store replicas share (overrides audit.url)
POLICY_ENV = "STEWARD_POLICY"

SITE_ROLES: tuple[str, ...] = (
    "Creator",
    "Explorer",
    "ExplorerCanPublish",
    "SiteAdministratorCreator",
    "SiteAdministratorExplorer",
    "Viewer",
    "Unlicensed",
    "ServerAdministrator",
    "ReadOnly",
)
CONTENT_KINDS: tuple[str, ...] = ("workbook", "datasource", "flow", "view", "project")
CONDITION_FACTS: tuple[str, ...] = (
    "project_path",
    "group_name",
    "content_kind",
    "target_user_site_role",
    "group_minimum_site_role",
    "from_site_role",
    "to_site_role",
    "owner_kind",
)
# The fact a `max_changes` limit needs: how many objects the call would change (a number, no patterns).
CHANGE_COUNT = "change_count"
# The facts whose patterns must match a Tableau site role.
_SITE_ROLE_FACTS = frozenset({"target_user_site_role", "group_minimum_site_role", "from_site_role", "to_site_role"})
# The facts whose patterns must be content kinds.
_CONTENT_KIND_FACTS = frozenset({"content_kind", "owner_kind"})


# -- the tool catalog --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolInfo:
    """What the policy needs to know about a tool.

    `facts`: the `CONDITION_FACTS` the tool layer resolves for this tool's calls. None means
    "undeclared": every condition may apply and a missing fact fails closed.
    """

    is_write: bool
    facts: frozenset[str] | None = None


_READ = ToolInfo(is_write=False, facts=frozenset())
# The tools the server offers; the lead replaces this by the real registry (tools/registry.py).
DEFAULT_CATALOG: Mapping[str, ToolInfo] = MappingProxyType(
    {
        "list_content": _READ,
        "list_users": _READ,
        "list_groups": _READ,
        "find_owners": _READ,
        "get_job": _READ,
        "list_jobs": _READ,
        "inspect_permissions": _READ,
        "get_request": _READ,
        "list_refresh_tasks": _READ,
        "whoami": _READ,
        "refresh_and_wait": ToolInfo(is_write=True, facts=frozenset({"project_path", "content_kind"})),
        "add_user_to_group": ToolInfo(
            is_write=True, facts=frozenset({"group_name", "target_user_site_role", "group_minimum_site_role"})
        ),
        "remove_user_from_group": ToolInfo(
            is_write=True,
            facts=frozenset({"group_name", "target_user_site_role", "group_minimum_site_role", CHANGE_COUNT}),
        ),
        "create_user": ToolInfo(
            is_write=True,
            facts=frozenset({"from_site_role", "to_site_role", "target_user_site_role", "group_name",
                             "group_minimum_site_role", CHANGE_COUNT}),
        ),
        "update_user_site_role": ToolInfo(
            is_write=True, facts=frozenset({"from_site_role", "to_site_role", "target_user_site_role", CHANGE_COUNT})
        ),
        "cancel_job": ToolInfo(is_write=True, facts=frozenset({CHANGE_COUNT})),
        "sync_group_members": ToolInfo(
            is_write=True, facts=frozenset({"group_name", "group_minimum_site_role", CHANGE_COUNT})
        ),
        "transfer_content_ownership": ToolInfo(
            is_write=True, facts=frozenset({"owner_kind", "project_path", CHANGE_COUNT})
        ),
    }
)


# What resources and prompts the server offers, by name (server/resources.py registers exactly these).
DEFAULT_READABLES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "resource": frozenset({"site_summary", "policy"}),
        "prompt": frozenset({
            "audit_project_ownership", "why_cannot_user_access", "failed_refreshes",
            "reclaim_licenses", "hand_over_content", "reconcile_group",
        }),
    }
)


# -- call-time values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """Who is calling. Build it with `Policy.local_principal()`, `principal_for_token()` or `principal_named()`
    so the roles come from the policy; `decide` trusts `roles` as given."""

    name: str
    roles: frozenset[str] = frozenset()
    via: str = "local"  # "local" (stdio / --no-auth), "token" (HTTP bearer) or "named" (CLI, tests)


# One value, or several (a sorted tuple) when a call touches several targets of the kind.
FactValue = str | tuple[str, ...]


@dataclass(frozen=True)
class CallFacts:
    """Facts about a call's target, resolved from the site by the tool layer (None = not resolved).

    `target_user` and `target_name` are informational (shown by explain, kept in audit records); no
    condition uses them.
    """

    project_path: FactValue | None = None
    group_name: FactValue | None = None
    content_kind: FactValue | None = None
    target_user_site_role: FactValue | None = None
    group_minimum_site_role: FactValue | None = None
    from_site_role: FactValue | None = None
    to_site_role: FactValue | None = None
    owner_kind: FactValue | None = None
    change_count: int | None = None
    target_user: str | None = None
    target_name: str | None = None

    @classmethod
    def from_mapping(cls, facts: Mapping[str, Any] | CallFacts | None) -> CallFacts:
        """From the dict a tool's `facts` function returns; unknown keys are a programming error.

        A list or set of values (several groups, several kinds) becomes a sorted tuple of strings."""
        if facts is None:
            return cls()
        if isinstance(facts, CallFacts):
            return facts
        unknown = set(facts) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown call facts {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**{k: _fact_value(k, v) for k, v in facts.items()})

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items() if v is not None}



def _fact_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == CHANGE_COUNT:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"change_count must be a count (0 or more), got {value!r}")
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(sorted({str(v) for v in value}))
    return str(value)


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one call. `rule_id` is None for the default deny and the built-in refusals."""

    effect: Effect
    rule_id: str | None
    rule_description: str | None
    reason: str
    required_approvals: int = 0
    trace: tuple[str, ...] = ()  # one line per rule that concerned the tool and principal (for `explain`)
    # True when the deny comes from a fact the call did not provide, not from a rule that matched.
    fail_closed: bool = False

    @property
    def allowed(self) -> bool:
        return self.effect == "allow"

    @property
    def needs_approval(self) -> bool:
        return self.effect == "require_approval"

    @property
    def denied(self) -> bool:
        return self.effect == "deny"


# -- errors ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file} line {self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"
        )


class PolicyError(ValueError):
    """The policy file is invalid. `problems` lists each issue; the message has one per line, first issue first."""

    def __init__(self, problems: Iterable[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("policy", None, problems)]
        self.problems = tuple(sorted(problems, key=lambda p: (p.file, p.line or 0)))
        super().__init__("\n".join(str(p) for p in self.problems))


# -- the file schema (pydantic, strict) -----------------------------------------------------------------


def _str_list(value: Any) -> Any:
    """A single string is accepted where a list of strings is expected: `tools: list_users`."""
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], BeforeValidator(_str_list)]


def _database_url(value: str) -> str:
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"the audit store URL must start with postgresql:// (got {value.split(':', 1)[0]!r}:...)")
    return value


def _name_table(value: Any) -> Any:
    """`roles: [a, b]` or `roles: {a: {...}, b:}`: a list of names or a mapping whose values may be empty."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {v: {} for v in value}
    if isinstance(value, dict):
        return {k: ({} if v is None else v) for k, v in value.items()}
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def _duration(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30m, 24h or 7d")  # noqa: TRY004 (pydantic needs ValueError)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(f"bad duration {value!r}: use a number of seconds or e.g. 30m, 24h, 7d")


Duration = Annotated[float, BeforeValidator(_duration), Field(gt=0, le=90 * 86400)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class RoleSpec(_Strict):
    description: str = ""


class PrincipalSpec(_Strict):
    roles: StrList = []
    description: str = ""
    tableau_user: Name | None = None  # the Tableau user this principal acts as under `identity: per_user`


class LocalSpec(_Strict):
    principal: Name
    roles: StrList = []
    tableau_user: Name | None = None


# What a bearer token may be used for: "mcp" calls tools; "admin" lists and decides approval requests
# through the admin API. A token has exactly one audience, so neither can stand in for the other.
TokenAudience = Literal["mcp", "admin"]


class TokenSpec(_Strict):
    hash: str
    principal: Name
    roles: StrList = []
    audience: TokenAudience = "mcp"
    description: str = ""


class TokensFileSpec(_Strict):
    tokens: list[TokenSpec] = []


class HttpSpec(_Strict):
    tokens: list[TokenSpec] = []
    tokens_file: str | None = None


class ConditionSpec(_Strict):
    project_path: StrList | None = None
    group_name: StrList | None = None
    content_kind: StrList | None = None
    target_user_site_role: StrList | None = None
    group_minimum_site_role: StrList | None = None
    from_site_role: StrList | None = None
    to_site_role: StrList | None = None
    owner_kind: StrList | None = None


class OverLimitApprovals(_Strict):
    """`over_limit: {require_approvals: N}`: past the limit the call waits for N distinct approvers."""

    require_approvals: Annotated[int, Field(ge=1, le=10)]


_OVER_LIMIT_FORMS = "over_limit: deny, or over_limit: {require_approvals: 2}"


def _over_limit(value: Any) -> Any:
    """One clear message for a bad `over_limit`, instead of one per member of the union."""
    if value == "deny":
        return value
    if isinstance(value, dict):
        unknown = [k for k in value if k != "require_approvals"]
        if unknown:
            hint = _suggest(str(unknown[0]), ["require_approvals"])
            raise ValueError(f"unknown key '{unknown[0]}' in over_limit{hint} ({_OVER_LIMIT_FORMS})")
        count = value.get("require_approvals")
        if isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= 10:
            return OverLimitApprovals(require_approvals=count)
        raise ValueError(f"over_limit require_approvals must be a number from 1 to 10, got {count!r}")
    raise ValueError(f"bad over_limit {value!r} ({_OVER_LIMIT_FORMS})")


class RuleSpec(_Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")]
    description: str = ""
    tools: StrList = []
    resources: StrList = []
    prompts: StrList = []
    principals: StrList = []
    roles: StrList = []
    # Required, except on a blast-radius rule (`max_changes`), whose effect is its `over_limit`.
    effect: Literal["allow", "deny", "require_approval"] | None = None
    when: ConditionSpec | None = None
    unless: ConditionSpec | None = None
    # Blast radius: the rule matches only calls that would change more than `max_changes` objects.
    max_changes: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    over_limit: Annotated[Literal["deny"] | OverLimitApprovals, BeforeValidator(_over_limit)] | None = None


class ApproversSpec(_Strict):
    roles: StrList = []
    principals: StrList = []


class ApprovalsSpec(_Strict):
    approvers: ApproversSpec = ApproversSpec()
    required_approvals: Annotated[int, Field(ge=1, le=10)] = 1
    ttl: Duration = 86400.0


class AuditSpec(_Strict):
    path: Name = DEFAULT_AUDIT_PATH
    url: Annotated[str, AfterValidator(_database_url)] | None = None  # PostgreSQL: overrides `path`
    redact: StrList = []
    synchronous: Literal["full", "normal"] = "full"


class PolicySpec(_Strict):
    version: Literal[1]
    mode: Literal["read-only", "read-write"]
    # service: every call acts as the one configured Tableau account. per_user: the server signs in with
    # the connected app as the calling principal's `tableau_user`, so Tableau's permissions bound each answer.
    identity: Literal["service", "per_user"] = "service"
    local: LocalSpec | None = None
    roles: Annotated[dict[str, RoleSpec], BeforeValidator(_name_table)] = {}
    principals: Annotated[dict[str, PrincipalSpec], BeforeValidator(_name_table)] = {}
    http: HttpSpec = HttpSpec()
    rules: list[RuleSpec] = []
    approvals: ApprovalsSpec = ApprovalsSpec()
    audit: AuditSpec = AuditSpec()
    notifications: NotificationsSpec = NotificationsSpec()


# -- globs ----------------------------------------------------------------------------------------------------


class GlobError(ValueError):
    pass


_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def _segment_regex(segment: str, any_char: str) -> str:
    """Regex for one glob segment: `*`, `?`, `[abc]`, `[!abc]`, `[a-z]`; everything else literal."""
    out: list[str] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out.append(f"{any_char}*")
        elif c == "?":
            out.append(any_char)
        elif c == "[":
            start = i + 1
            if segment[start : start + 1] == "!":
                start += 1
            if segment[start : start + 1] == "]":  # a leading ']' is literal: '[]x]'
                start += 1
            j = segment.find("]", start)
            if j < 0:
                raise GlobError("unclosed '[' (write '[[]' to match a literal '[')")
            body = segment[i + 1 : j]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            if not body:
                raise GlobError("empty character class '[]'")
            escaped = re.escape(body).replace(r"\-", "-")
            out.append(f"[{'^' if negate else ''}{escaped}]")
            i = j
        elif c == "]":
            raise GlobError("']' without a matching '['")
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_name_glob(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """A glob over plain names (tool, group, site role): `*` matches anything, including '/'."""
    if not pattern or not pattern.strip():
        raise GlobError("empty pattern")
    return re.compile(_segment_regex(pattern, "."), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def compile_path_glob(pattern: str) -> re.Pattern[str]:
    """A glob over project paths 'Sales/EMEA/Forecasts' (case-insensitive).

    `*` and `?` stay inside one path segment; a whole segment `**` matches zero or more segments, so
    'Finance/**' matches 'Finance' and every project below it, '**/Drafts' any project named Drafts.
    """
    if not pattern or not pattern.strip():
        raise GlobError("empty pattern")
    if pattern.startswith("/") or pattern.endswith("/") or "//" in pattern:
        raise GlobError("project paths look like 'Sales/EMEA' (no leading, trailing or double '/')")
    segments = pattern.split("/")
    regex = ""
    for i, seg in enumerate(segments):
        if seg == "**":
            if len(segments) == 1:
                regex = ".*"
            elif i == 0:
                regex += "(?:.*/)?"
            else:
                regex += "(?:/.*)?"
            continue
        if "**" in seg:
            raise GlobError("'**' must be a whole path segment, e.g. 'Finance/**'")
        if i > 0 and not (i == 1 and segments[0] == "**"):
            regex += "/"
        regex += _segment_regex(seg, "[^/]")
    return re.compile(regex, re.IGNORECASE | re.DOTALL)


# -- the compiled policy ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    fact: str
    patterns: tuple[str, ...]
    regexes: tuple[re.Pattern[str], ...]

    def match(self, value: str) -> str | None:
        """The first pattern that matches `value`, or None."""
        for pattern, regex in zip(self.patterns, self.regexes):
            if regex.fullmatch(value):
                return pattern
        return None

    def match_values(self, value: FactValue, *, need_all: bool) -> str | None:
        """For a fact with several values: the pattern that matched, when any (or, `need_all`, every)
        value matches; None otherwise. No values at all never match (nothing to judge is not a match)."""
        values = (value,) if isinstance(value, str) else value
        hits = [self.match(v) for v in values]
        matched = [h for h in hits if h is not None]
        if not values or (need_all and len(matched) < len(values)) or not matched:
            return None
        return matched[0]


def _shown(value: FactValue) -> str:
    return f"'{value}'" if isinstance(value, str) else "[" + ", ".join(f"'{v}'" for v in value) + "]"


@dataclass(frozen=True)
class CompiledRule:
    id: str
    description: str
    effect: Effect
    tools: frozenset[str]  # resolved against the catalog at load time
    principals: frozenset[str]
    any_principal: bool
    roles: frozenset[str]
    conditions: tuple[Condition, ...]
    exceptions: tuple[Condition, ...] = ()
    line: int | None = None
    resources: frozenset[str] = frozenset()
    prompts: frozenset[str] = frozenset()
    max_changes: int | None = None  # a blast-radius rule: matches calls changing more objects than this
    required_approvals: int | None = None  # a gate that needs more approvers than the policy's default

    def names_readable(self, kind: str, name: str) -> bool:
        return name in (self.resources if kind == "resource" else self.prompts)

    def applies_to(self, principal: Principal) -> bool:
        return self.any_principal or principal.name in self.principals or bool(self.roles & principal.roles)

    def evaluate(self, facts: CallFacts, resolvable: frozenset[str] | None = None) -> tuple[str, str]:
        """("match" | "nomatch" | "unknown", explanation) for a call with `facts`.

        `when`: every condition must match; a missing fact gives "unknown". `unless`: the rule does not
        apply when every exception condition matches. An exception that cannot be checked (its fact is
        missing, or the tool never resolves it: `resolvable`) never excuses a deny/require_approval
        rule, and makes an allow rule not match (fail closed either way).
        """
        details: list[str] = []
        restrictive = self.effect != "allow"
        for cond in self.conditions:
            value = getattr(facts, cond.fact)
            if value is None:
                return "unknown", f"fact '{cond.fact}' was not resolved"
            # Several values: a restrictive rule catches the call when any matches, an allow needs them all.
            hit = cond.match_values(value, need_all=not restrictive)
            if hit is None:
                return "nomatch", f"{cond.fact} {_shown(value)} matches none of {list(cond.patterns)}"
            details.append(f"{cond.fact} {_shown(value)} matches '{hit}'")
        if self.max_changes is not None:
            count = facts.change_count
            if count is None:
                return "unknown", f"fact '{CHANGE_COUNT}' was not resolved"
            if count <= self.max_changes:
                return "nomatch", f"{count} change(s) is within max_changes {self.max_changes}"
            details.append(f"{count} changes exceed max_changes {self.max_changes}")
        if self.exceptions:
            excepted, unknown, why = True, False, []
            for cond in self.exceptions:
                value = getattr(facts, cond.fact)
                if value is None or (resolvable is not None and cond.fact not in resolvable):
                    excepted, unknown = False, True
                    why.append(f"exception fact '{cond.fact}' unknown")
                    continue
                # An exception excuses a restrictive rule only when every value is excepted.
                hit = cond.match_values(value, need_all=restrictive)
                if hit is None:
                    excepted = False
                    why.append(f"not excepted: {cond.fact} {_shown(value)} matches none of {list(cond.patterns)}")
                else:
                    why.append(f"{cond.fact} {_shown(value)} matches exception '{hit}'")
            if excepted:
                return "nomatch", "excepted by unless: " + "; ".join(why)
            if unknown and self.effect == "allow":
                return "nomatch", "cannot check the unless exception (" + "; ".join(why) + ")"
            details.extend(why)
        return "match", "; ".join(details) if details else "no conditions"


@dataclass(frozen=True, eq=False)
class Policy:
    """A loaded, validated policy. Use `decide` and `visible_tools`; never mutate."""

    spec: PolicySpec
    source: Path | None
    catalog: Mapping[str, ToolInfo]
    hash: str
    rules: tuple[CompiledRule, ...]
    tokens: tuple[TokenSpec, ...]
    warnings: tuple[str, ...] = ()
    _principal_roles: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False)

    # convenient views
    @property
    def mode(self) -> str:
        return self.spec.mode

    @property
    def read_only(self) -> bool:
        return self.spec.mode == "read-only"

    @property
    def required_approvals(self) -> int:
        return self.spec.approvals.required_approvals

    @property
    def approval_ttl(self) -> float:
        """Seconds an approval request stays valid (pending or approved-not-yet-run)."""
        return self.spec.approvals.ttl

    @property
    def redact_names(self) -> tuple[str, ...]:
        return tuple(self.spec.audit.redact)

    @property
    def audit_synchronous(self) -> str:
        return self.spec.audit.synchronous

    @property
    def audit_store(self) -> Path | str:
        """Where the audit log and approvals live: $STEWARD_STORE_URL, else `audit.url` (PostgreSQL,
        shared by replicas), else the SQLite file `audit_path`."""
        url = os.environ.get(STORE_URL_ENV) or self.spec.audit.url
        if not url:
            return self.audit_path
        try:
            return _database_url(url)
        except ValueError as exc:
            raise PolicyError(f"{STORE_URL_ENV}: {exc}") from None

    @property
    def audit_path(self) -> Path:
        """The audit store; a relative `audit.path` is relative to the policy file's directory."""
        path = Path(self.spec.audit.path).expanduser()
        if not path.is_absolute():
            base = self.source.parent if self.source is not None else Path.cwd()
            path = base / path
        return path

    @property
    def identity(self) -> str:
        return self.spec.identity

    def tableau_user_of(self, name: str) -> str | None:
        """The Tableau user `name` maps to (`principals.<name>.tableau_user`, or `local.tableau_user`)."""
        spec = self.spec.principals.get(name)
        if spec is not None and spec.tableau_user:
            return spec.tableau_user
        local = self.spec.local
        return local.tableau_user if local is not None and local.principal == name else None

    # principals
    def known_principals(self) -> frozenset[str]:
        return frozenset(self._principal_roles)

    def roles_of(self, name: str) -> frozenset[str]:
        return self._principal_roles.get(name, frozenset())

    def local_principal(self) -> Principal | None:
        """The principal stdio (and HTTP with --no-auth) runs as, or None when `local:` is absent."""
        if self.spec.local is None:
            return None
        name = self.spec.local.principal
        return Principal(name=name, roles=self.roles_of(name), via="local")

    def tokens_for(self, audience: TokenAudience) -> tuple[TokenSpec, ...]:
        return tuple(t for t in self.tokens if t.audience == audience)

    def principal_for_token(self, token: str, audience: TokenAudience = "mcp") -> Principal | None:
        """The principal a bearer token of `audience` maps to, or None (also for a token of the other
        audience: an admin token never calls tools, an MCP token never decides). Compares sha256 digests
        in constant time."""
        if not token:
            return None
        digest = hash_token(token)
        found: TokenSpec | None = None
        for entry in self.tokens:  # no early exit: every entry is compared
            if hmac.compare_digest(entry.hash.lower(), digest) and found is None and entry.audience == audience:
                found = entry
        if found is None:
            return None
        return Principal(name=found.principal, roles=self.roles_of(found.principal), via="token")

    def principal_named(self, name: str) -> Principal:
        """A principal by name with every role the policy gives that name (CLI, explain, tests)."""
        return Principal(name=name, roles=self.roles_of(name), via="named")

    def is_approver(self, name: str) -> bool:
        approvers = self.spec.approvals.approvers
        return name in approvers.principals or bool(set(approvers.roles) & self.roles_of(name))

    def eligible_approvers(self) -> list[str]:
        return sorted(n for n in self.known_principals() if self.is_approver(n))

    def with_tokens(self, extra: Iterable[TokenSpec]) -> Policy:
        """This policy plus token entries held outside the file (the demo's one-run admin token).

        The entries must name principals the policy knows and add no roles; the hash covers them, so the
        audit shows that the effective policy is not the file alone.
        """
        extra = tuple(extra)
        for entry in extra:
            if entry.principal not in self._principal_roles or entry.roles:
                raise PolicyError(f"an extra token must name a known principal and add no roles ({entry.principal})")
        if {t.hash.lower() for t in extra} & {t.hash.lower() for t in self.tokens}:
            raise PolicyError("an extra token shares a hash with a token of the policy")
        payload = {"policy_hash": self.hash, "extra_tokens": [t.model_dump(mode="json") for t in extra]}
        return replace(self, tokens=self.tokens + extra, hash=sha256_hex(canonical_json(payload)))

    def summary(self) -> dict[str, Any]:
        """A JSON-able description (no token hashes) for `policy check` and the server's policy resource."""
        return {
            "source": str(self.source) if self.source else None,
            "hash": self.hash,
            "mode": self.mode,
            "local_principal": self.spec.local.principal if self.spec.local else None,
            "token_principals": sorted({t.principal for t in self.tokens_for("mcp")}),
            "admin_token_principals": sorted({t.principal for t in self.tokens_for("admin")}),
            "roles": sorted(self.spec.roles),
            "rules": [
                {
                    "id": r.id,
                    "effect": r.effect,
                    "tools": sorted(r.tools),
                    "resources": sorted(r.resources),
                    "prompts": sorted(r.prompts),
                    "principals": ["*"] if r.any_principal else sorted(r.principals),
                    "roles": sorted(r.roles),
                    "when": {c.fact: list(c.patterns) for c in r.conditions},
                    "unless": {c.fact: list(c.patterns) for c in r.exceptions},
                    **({"max_changes": r.max_changes} if r.max_changes is not None else {}),
                    **({"required_approvals": r.required_approvals} if r.required_approvals else {}),
                    "description": r.description,
                }
                for r in self.rules
            ],
            "approvers": self.eligible_approvers(),
            "approver_roles": list(self.spec.approvals.approvers.roles),
            "required_approvals": self.required_approvals,
            "approval_ttl_seconds": self.approval_ttl,
            "audit_path": str(self.audit_path),
            "audit_redact": list(self.redact_names),
        }


def policy_hash(policy: Policy) -> str:
    """sha256 (hex) of the canonical JSON of the effective policy (including a tokens_file's entries)."""
    return policy.hash


def hash_token(token: str) -> str:
    """The policy form of a bearer token: 'sha256:<hex>'."""
    return "sha256:" + sha256_hex(token)


def default_policy_path() -> Path:
    import os

    return Path(os.environ.get(POLICY_ENV) or "policies.yaml")


# -- deciding ---------------------------------------------------------------------------------------------------------


def decide(
    policy: Policy, principal: Principal, tool: str, facts: CallFacts | Mapping[str, Any] | None = None
) -> Decision:
    """The policy's effect for `principal` calling `tool` on the target described by `facts`. Pure.

    deny > require_approval > allow; no matching rule = deny. A deny/approval rule whose fact is
    missing denies (fail closed). Unknown tools and, in read-only mode, write tools are denied.
    """
    facts = CallFacts.from_mapping(facts)
    info = policy.catalog.get(tool)
    if info is None:
        return Decision("deny", None, None, f"unknown tool '{tool}'")
    if policy.read_only and info.is_write:
        return Decision("deny", None, None, f"the policy is read-only: write tool '{tool}' is disabled")
    trace: list[str] = []
    denies: list[tuple[CompiledRule, str]] = []
    gates: list[tuple[CompiledRule, str]] = []
    allows: list[tuple[CompiledRule, str]] = []
    unresolved: list[tuple[CompiledRule, str]] = []
    for rule in policy.rules:
        if tool not in rule.tools or not rule.applies_to(principal):
            continue
        outcome, detail = rule.evaluate(facts, info.facts)
        trace.append(f"rule '{rule.id}' ({rule.effect}): {outcome}: {detail}")
        if outcome == "match":
            {"deny": denies, "require_approval": gates, "allow": allows}[rule.effect].append((rule, detail))
        elif outcome == "unknown" and rule.effect != "allow":
            unresolved.append((rule, detail))
    tr = tuple(trace)
    if denies:
        rule, detail = denies[0]
        return Decision(
            "deny", rule.id, rule.description or None, f"denied by rule '{rule.id}' ({detail})", trace=tr
        )
    if unresolved:
        rule, detail = unresolved[0]
        return Decision(
            "deny",
            rule.id,
            rule.description or None,
            f"rule '{rule.id}' needs facts the call did not provide ({detail}); failing closed",
            trace=tr,
            fail_closed=True,
        )
    if gates:
        # The strictest gate decides how many approvers the request needs (a blast-radius rule may ask more).
        rule, detail = max(gates, key=lambda g: g[0].required_approvals or 0)
        needed = max(policy.required_approvals, rule.required_approvals or 0)
        return Decision(
            "require_approval",
            rule.id,
            rule.description or None,
            f"rule '{rule.id}' requires approval ({detail})",
            required_approvals=needed,
            trace=tr,
        )
    if allows:
        rule, detail = allows[0]
        return Decision(
            "allow", rule.id, rule.description or None, f"allowed by rule '{rule.id}' ({detail})", trace=tr
        )
    return Decision(
        "deny",
        None,
        None,
        f"no rule allows '{tool}' for principal '{principal.name}' (default deny)",
        trace=tr,
    )


def decide_read(policy: Policy, principal: Principal, kind: str, name: str) -> Decision:
    """May `principal` read resource `name` (kind "resource") or get prompt `name` (kind "prompt")? Pure.

    deny > allow; no rule naming it for the principal = deny. Read-only mode does not concern reads.
    """
    if kind not in DEFAULT_READABLES or name not in DEFAULT_READABLES[kind]:
        return Decision("deny", None, None, f"unknown {kind} '{name}'")
    rules = [r for r in policy.rules if r.names_readable(kind, name) and r.applies_to(principal)]
    trace = tuple(f"rule '{r.id}' ({r.effect}): names {kind} '{name}'" for r in rules)
    for effect in ("deny", "allow"):
        rule = next((r for r in rules if r.effect == effect), None)
        if rule is not None:
            verb = "denied" if effect == "deny" else "allowed"
            return Decision(effect, rule.id, rule.description or None, f"{verb} by rule '{rule.id}'", trace=trace)
    return Decision(
        "deny", None, None, f"no rule lets principal '{principal.name}' read {kind} '{name}' (default deny)", trace=trace
    )


def readable(policy: Policy, principal: Principal, kind: str) -> set[str]:
    """The resources or prompts to list for `principal`: those `decide_read` allows."""
    return {name for name in DEFAULT_READABLES[kind] if decide_read(policy, principal, kind, name).allowed}


def visible_tools(policy: Policy, principal: Principal) -> set[str]:
    """Tools to list for `principal`: those some allow or require_approval rule could grant, minus write
    tools in read-only mode and tools an unconditional deny rule always refuses. `decide` still checks
    every call; hiding is only a courtesy to the model."""
    visible: set[str] = set()
    for tool, info in policy.catalog.items():
        if policy.read_only and info.is_write:
            continue
        rules = [r for r in policy.rules if tool in r.tools and r.applies_to(principal)]
        if any(r.effect == "deny" and not r.conditions and not r.exceptions for r in rules):
            continue
        if any(r.effect in ("allow", "require_approval") for r in rules):
            visible.add(tool)
    return visible


# -- loading ---------------------------------------------------------------------------------------------------------


def load_policy(
    path: str | Path | None = None, known_tools: Mapping[str, ToolInfo] = DEFAULT_CATALOG
) -> Policy:
    """Load and validate a policy file (default: $STEWARD_POLICY or ./policies.yaml). Raises PolicyError."""
    path = Path(path) if path is not None else default_policy_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(
            [Problem(str(path), None, "no such policy file (copy the shipped policies.yaml and adapt it)")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(
            [Problem(str(path), None, f"cannot read the policy file: {exc.__class__.__name__}")]
        ) from None
    return parse_policy(text, source=path.resolve(), known_tools=known_tools, display_name=str(path))


def parse_policy(
    text: str,
    *,
    source: Path | None = None,
    known_tools: Mapping[str, ToolInfo] = DEFAULT_CATALOG,
    display_name: str | None = None,
) -> Policy:
    """Validate policy YAML text. `source` (the file's path) anchors relative paths (audit, tokens_file)."""
    name = display_name or (source.name if source else "policies.yaml")
    data, lines = _parse_yaml(text, name)
    spec = _validate(PolicySpec, data, lines, name)
    return _Compiler(spec, lines, name, source, known_tools).compile()


def _parse_yaml(text: str, name: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    try:
        node, data = safe_yaml.compose(text)  # bounded aliases, no Python tags
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        kind = "refused YAML" if isinstance(exc, safe_yaml.UnsafeYaml) else "YAML syntax error"
        raise PolicyError(
            [Problem(name, mark.line + 1 if mark else None, f"{kind}: {problem}")]
        ) from None
    if node is None:
        raise PolicyError([Problem(name, None, "the file is empty (start from the shipped policies.yaml)")])
    problems: list[Problem] = []
    lines: dict[tuple[Any, ...], int] = {(): node.start_mark.line + 1}
    _index_lines(node, (), lines, problems, name)
    if problems:
        raise PolicyError(problems)
    if not isinstance(data, dict):
        raise PolicyError(
            [Problem(name, 1, "the top level must be a mapping of keys (version:, mode:, rules:, ...)")]
        )
    return data, lines


def _index_lines(
    node: yaml.Node, path: tuple[Any, ...], out: dict, problems: list[Problem], name: str
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                problems.append(Problem(name, line, f"duplicate key '{key}' (first at line {seen[key]})"))
            seen[key] = line
            out[path + (key,)] = line
            _index_lines(value_node, path + (key,), out, problems, name)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _index_lines(item, path + (i,), out, problems, name)


def _line(lines: Mapping[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the top level"


def _suggest(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and Optional[...] so `_model_at` can walk the schema."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin is Union or isinstance(tp, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if (
            isinstance(tp, type)
            and issubclass(tp, BaseModel)
            and isinstance(part, str)
            and part in tp.model_fields
        ):
            tp = tp.model_fields[part].annotation
        elif origin in (list, tuple) and isinstance(part, int):
            tp = get_args(tp)[0]
        elif origin is dict and isinstance(part, str):
            tp = get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


_SECRET_FIELDS = {"hash"}


def _validate(model: type[BaseModel], data: Any, lines: Mapping, name: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))  # drop validator tags
            problems.append(Problem(name, _line(lines, loc), _describe(model, err, loc)))
        raise PolicyError(problems) from None


def _describe(root: type[BaseModel], err: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    where = _where(loc)
    secret = bool(loc) and loc[-1] in _SECRET_FIELDS
    if kind == "extra_forbidden":
        key = str(loc[-1])
        parent = _model_at(root, loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        hint = _suggest(key, allowed) or (f" (allowed here: {', '.join(allowed)})" if allowed else "")
        return f"unknown key '{key}' in {_where(loc[:-1])}{hint}"
    if kind == "missing":
        return f"missing required key '{loc[-1]}' in {_where(loc[:-1])}"
    if kind == "literal_error":
        value = err.get("input")
        expected = err.get("ctx", {}).get("expected", "")
        options = re.findall(r"'([^']*)'", expected) or [o.strip() for o in expected.split(" or ")]
        hint = _suggest(str(value), options) if isinstance(value, str) else ""
        return f"bad value {value!r} for '{loc[-1]}' (expected {expected}){hint}"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "id":
        return f"bad rule id {err.get('input')!r}: use letters, digits, '_', '-', '.', ':' (start with a letter or digit)"
    message = err.get("msg", "invalid value").removeprefix("Value error, ")
    if secret:
        return f"{where}: {message}"
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None else f" (got {value!r})"
    return f"{where}: {message}{shown}"


_HASH = re.compile(r"^sha256:[0-9a-fA-F]{64}$")
_ROLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TOOL_GLOB = re.compile(r"^[A-Za-z0-9_*?\[\]!-]+$")


class _Compiler:
    def __init__(
        self,
        spec: PolicySpec,
        lines: Mapping,
        name: str,
        source: Path | None,
        catalog: Mapping[str, ToolInfo],
    ):
        self.spec, self.lines, self.name, self.source = spec, lines, name, source
        self.catalog = MappingProxyType(dict(catalog))
        self.problems: list[Problem] = []
        self.warnings: list[str] = []

    def problem(
        self, loc: tuple[Any, ...], message: str, *, lines: Mapping | None = None, name: str | None = None
    ) -> None:
        self.problems.append(Problem(name or self.name, _line(lines or self.lines, loc), message))

    def compile(self) -> Policy:
        spec = self.spec
        for role in spec.roles:
            if not _ROLE_NAME.match(role):
                self.problem(("roles", role), f"bad role name '{role}' (letters, digits, '_', '-', '.')")
        tokens = self._tokens()
        principal_roles = self._principals(tokens)
        rules = tuple(
            r for r in (self._rule(i, rule, principal_roles) for i, rule in enumerate(spec.rules)) if r
        )
        eligible = self._approvers(principal_roles, rules)
        self._slack_approvers(eligible)
        for i, name in enumerate(spec.audit.redact):
            if not name.strip():
                self.problem(("audit", "redact", i), "empty name in audit.redact")
        if self.problems:
            raise PolicyError(self.problems)
        payload = {
            "policy": spec.model_dump(mode="json"),
            "tokens_file_tokens": [t.model_dump(mode="json") for t in tokens[len(spec.http.tokens) :]],
        }
        return Policy(
            spec=spec,
            source=self.source,
            catalog=self.catalog,
            hash=sha256_hex(canonical_json(payload)),
            rules=rules,
            tokens=tuple(tokens),
            warnings=tuple(self.warnings),
            _principal_roles=MappingProxyType(principal_roles),
        )

    # roles and principals ------------------------------------------------------------------------------------

    def _check_roles(self, loc: tuple[Any, ...], roles: Iterable[str], **where: Any) -> frozenset[str]:
        ok = set()
        for i, role in enumerate(roles):
            if role in self.spec.roles:
                ok.add(role)
            else:
                hint = _suggest(role, self.spec.roles) or " (declare it under roles:)"
                self.problem(loc + (i,), f"unknown role '{role}'{hint}", **where)
        return frozenset(ok)

    def _tokens(self) -> list[TokenSpec]:
        tokens = list(self.spec.http.tokens)
        for i, token in enumerate(tokens):
            self._check_token(("http", "tokens", i), token)
        file_name = self.spec.http.tokens_file
        if file_name:
            path = Path(file_name).expanduser()
            if not path.is_absolute():
                path = (self.source.parent if self.source else Path.cwd()) / path
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                self.problem(
                    ("http", "tokens_file"),
                    f"cannot read tokens_file '{file_name}': {exc.__class__.__name__}",
                )
                return tokens
            try:
                data, lines = _parse_yaml(text, str(file_name))
                extra = _validate(TokensFileSpec, data, lines, str(file_name))
            except PolicyError as exc:
                self.problems.extend(exc.problems)
                return tokens
            for i, token in enumerate(extra.tokens):
                self._check_token(("tokens", i), token, lines=lines, name=str(file_name))
            tokens.extend(extra.tokens)
        seen: set[str] = set()
        for token in tokens:
            if token.hash.lower() in seen:
                self.problems.append(
                    Problem(
                        self.name, None, f"two token entries share a hash (principal '{token.principal}')"
                    )
                )
            seen.add(token.hash.lower())
        return tokens

    def _check_token(self, loc: tuple[Any, ...], token: TokenSpec, **where: Any) -> None:
        if not _HASH.match(token.hash):
            # Never echo the value: it may be a token pasted in clear.
            self.problem(
                loc + ("hash",),
                "token hash must be 'sha256:<64 hex digits>'; never put a token itself in the policy "
                "(generate the entry with: tableau-steward policy hash-token)",
                **where,
            )
        self._check_roles(loc + ("roles",), token.roles, **where)

    def _principals(self, tokens: list[TokenSpec]) -> dict[str, frozenset[str]]:
        roles: dict[str, set[str]] = {}
        if self.spec.local is not None:
            roles.setdefault(self.spec.local.principal, set()).update(
                self._check_roles(("local", "roles"), self.spec.local.roles)
            )
        for name, p in self.spec.principals.items():
            roles.setdefault(name, set()).update(self._check_roles(("principals", name, "roles"), p.roles))
        for token in tokens:
            roles.setdefault(token.principal, set()).update(r for r in token.roles if r in self.spec.roles)
        return {k: frozenset(v) for k, v in roles.items()}

    def _check_principals(
        self, loc: tuple[Any, ...], names: Iterable[str], known: Mapping[str, Any]
    ) -> frozenset[str]:
        ok = set()
        for i, name in enumerate(names):
            if name in known:
                ok.add(name)
            else:
                hint = _suggest(name, known) or " (principals come from local:, principals: or http tokens)"
                self.problem(loc + (i,), f"unknown principal '{name}'{hint}")
        return frozenset(ok)

    # rules ------------------------------------------------------------------------------------------------------

    def _select_tools(self, loc: tuple[Any, ...], patterns: list[str]) -> set[str]:
        selected: set[str] = set()
        for i, pattern in enumerate(patterns):
            here = loc + (i,)
            if pattern.startswith("@"):
                if pattern in ("@read", "@write"):
                    write = pattern == "@write"
                    selected |= {t for t, info in self.catalog.items() if info.is_write == write}
                else:
                    self.problem(
                        here, f"unknown tool selector '{pattern}'{_suggest(pattern, ['@read', '@write'])}"
                    )
                continue
            if not is_glob(pattern):
                if pattern in self.catalog:
                    selected.add(pattern)
                else:
                    hint = (
                        _suggest(pattern, self.catalog)
                        or f" (known tools: {', '.join(sorted(self.catalog))})"
                    )
                    self.problem(here, f"unknown tool '{pattern}'{hint}")
                continue
            if not _TOOL_GLOB.match(pattern):
                self.problem(here, f"bad tool glob '{pattern}': tool names use letters, digits and '_'")
                continue
            try:
                regex = compile_name_glob(pattern, ignore_case=False)
            except GlobError as exc:
                self.problem(here, f"bad tool glob '{pattern}': {exc}")
                continue
            hits = {t for t in self.catalog if regex.fullmatch(t)}
            if not hits:
                self.problem(
                    here, f"tool glob '{pattern}' matches no known tool{_suggest(pattern, self.catalog)}"
                )
            selected |= hits
        return selected

    def _conditions(
        self, loc: tuple[Any, ...], when: ConditionSpec | None, key: str = "when"
    ) -> tuple[Condition, ...]:
        if when is None:
            return ()
        out = []
        for fact in CONDITION_FACTS:
            patterns = getattr(when, fact)
            if patterns is None:
                continue
            here = loc + (fact,)
            if not patterns:
                self.problem(here, f"'{fact}' lists no patterns (remove it, or list at least one)")
                continue
            regexes = []
            for i, pattern in enumerate(patterns):
                try:
                    regexes.append(self._condition_regex(fact, pattern))
                except GlobError as exc:
                    self.problem(here + (i,), f"bad {fact} pattern '{pattern}': {exc}")
            if len(regexes) == len(patterns):
                out.append(Condition(fact, tuple(patterns), tuple(regexes)))
        if not any(getattr(when, f) is not None for f in CONDITION_FACTS):
            self.problem(loc, f"'{key}' has no conditions (remove it, or add project_path, group_name, ...)")
        return tuple(out)

    def _condition_regex(self, fact: str, pattern: str) -> re.Pattern[str]:
        if fact == "project_path":
            return compile_path_glob(pattern)
        if fact in _CONTENT_KIND_FACTS:
            if pattern not in CONTENT_KINDS:
                raise GlobError(
                    f"unknown content kind{_suggest(pattern, CONTENT_KINDS) or ' (known: ' + ', '.join(CONTENT_KINDS) + ')'}"
                )
            return re.compile(re.escape(pattern))
        regex = compile_name_glob(pattern, ignore_case=True)
        if fact in _SITE_ROLE_FACTS and not any(regex.fullmatch(r) for r in SITE_ROLES):
            hint = _suggest(pattern, SITE_ROLES) or f" (site roles: {', '.join(SITE_ROLES)})"
            raise GlobError(f"matches no Tableau site role{hint}")
        return regex

    def _rule(self, index: int, rule: RuleSpec, principal_roles: Mapping[str, Any]) -> CompiledRule | None:
        loc = ("rules", index)
        before = len(self.problems)
        if any(r.id == rule.id for r in self.spec.rules[:index]):
            self.problem(loc + ("id",), f"duplicate rule id '{rule.id}'")
        if not (rule.tools or rule.resources or rule.prompts):
            self.problem(
                loc + ("tools",),
                "a rule must name at least one tool (a name, a glob like 'list_*', '@read' or '@write'), "
                "resource or prompt",
            )
        tools = self._select_tools(loc + ("tools",), rule.tools)
        readables = {kind: self._select_readables(loc, kind, getattr(rule, kind + "s")) for kind in DEFAULT_READABLES}
        effect, required_approvals = self._effect(loc, rule)
        if (rule.resources or rule.prompts) and (effect == "require_approval" or rule.max_changes is not None):
            self.problem(loc + ("effect",), "reading a resource or prompt cannot wait for approval: use allow or deny")
        if (rule.resources or rule.prompts) and (rule.when or rule.unless):
            self.problem(
                loc, "when/unless concern tool calls only: name resources and prompts in a rule without conditions"
            )
        any_principal = "*" in rule.principals
        principals = self._check_principals(
            loc + ("principals",), [p for p in rule.principals if p != "*"], principal_roles
        )
        roles = self._check_roles(loc + ("roles",), rule.roles)
        if not rule.principals and not rule.roles:
            self.problem(
                loc,
                f"rule '{rule.id}' names nobody: add roles: [...], principals: [...], or principals: ['*'] for everyone",
            )
        conditions = self._conditions(loc + ("when",), rule.when)
        exceptions = self._conditions(loc + ("unless",), rule.unless, key="unless")
        needed = {c.fact for c in conditions} | ({CHANGE_COUNT} if rule.max_changes is not None else set())
        if needed and tools:
            applicable = {
                t for t in tools if self.catalog[t].facts is None or needed <= self.catalog[t].facts
            }
            if not applicable:
                provides = "; ".join(
                    f"{t}: {', '.join(sorted(self.catalog[t].facts or ())) or 'none'}" for t in sorted(tools)
                )
                self.problem(
                    loc + ("when",),
                    f"rule '{rule.id}': none of its tools resolves {', '.join(sorted(needed))} ({provides})",
                )
            tools = applicable
        if len(self.problems) > before:
            return None
        return CompiledRule(
            id=rule.id,
            description=rule.description,
            effect=effect,
            tools=frozenset(tools),
            principals=principals,
            any_principal=any_principal,
            roles=roles,
            conditions=conditions,
            exceptions=exceptions,
            line=_line(self.lines, loc),
            resources=frozenset(readables["resource"]),
            prompts=frozenset(readables["prompt"]),
            max_changes=rule.max_changes,
            required_approvals=required_approvals,
        )

    def _effect(self, loc: tuple[Any, ...], rule: RuleSpec) -> tuple[Effect, int | None]:
        """A rule's effect and the approvers it needs: `effect:`, or for a blast-radius rule its `over_limit`."""
        if rule.max_changes is None:
            if rule.over_limit is not None:
                self.problem(loc + ("over_limit",), "'over_limit' needs 'max_changes' (the limit it applies past)")
            if rule.effect is None:
                self.problem(loc, f"missing required key 'effect' in {_where(loc)} (allow, deny or require_approval)")
            return rule.effect or "deny", None
        if rule.effect is not None:
            self.problem(
                loc + ("effect",),
                "a rule with 'max_changes' takes its effect from 'over_limit' "
                "(over_limit: deny, or over_limit: {require_approvals: 2}); remove 'effect'",
            )
        if rule.over_limit is None:
            self.problem(
                loc + ("max_changes",),
                "'max_changes' needs 'over_limit': what happens past the limit "
                "(over_limit: deny, or over_limit: {require_approvals: 2})",
            )
            return "deny", None
        if rule.over_limit == "deny":
            return "deny", None
        return "require_approval", rule.over_limit.require_approvals

    def _select_readables(self, loc: tuple[Any, ...], kind: str, patterns: list[str]) -> set[str]:
        """Resource or prompt names (or globs over them) from a rule's `resources:` / `prompts:`."""
        known = DEFAULT_READABLES[kind]
        selected: set[str] = set()
        for i, pattern in enumerate(patterns):
            here = loc + (kind + "s", i)
            try:
                regex = compile_name_glob(pattern, ignore_case=False)
            except GlobError as exc:
                self.problem(here, f"bad {kind} pattern '{pattern}': {exc}")
                continue
            hits = {name for name in known if regex.fullmatch(name)}
            if not hits:
                hint = _suggest(pattern, known) or f" (known {kind}s: {', '.join(sorted(known))})"
                self.problem(here, f"unknown {kind} '{pattern}'{hint}")
            selected |= hits
        return selected

    def _slack_approvers(self, eligible: set[str]) -> None:
        """Each Slack user of `notifications.slack_interactions` must map to a principal who may approve."""
        slack = self.spec.notifications.slack_interactions
        for user_id, principal in (slack.users if slack else {}).items():
            if principal not in eligible:
                hint = _suggest(principal, sorted(eligible)) or f" (approvers: {', '.join(sorted(eligible)) or 'none'})"
                self.problem(
                    ("notifications", "slack_interactions", "users", user_id),
                    f"Slack user {user_id} maps to '{principal}', who is not an approver under approvals.approvers"
                    + hint,
                )

    def _approvers(
        self, principal_roles: Mapping[str, frozenset[str]], rules: tuple[CompiledRule, ...]
    ) -> set[str]:
        approvers = self.spec.approvals.approvers
        roles = self._check_roles(("approvals", "approvers", "roles"), approvers.roles)
        names = self._check_principals(
            ("approvals", "approvers", "principals"), approvers.principals, principal_roles
        )
        eligible = set(names) | {n for n, r in principal_roles.items() if r & roles}
        gated = [r.id for r in rules if r.effect == "require_approval"]
        if gated and not (approvers.roles or approvers.principals):
            self.problem(
                ("approvals",),
                f"rule '{gated[0]}' requires approval but approvals.approvers names nobody who could approve",
            )
        elif gated and len(eligible) < self.spec.approvals.required_approvals:
            self.warnings.append(
                f"approvals need {self.spec.approvals.required_approvals} distinct approvers but the policy names "
                f"{len(eligible)} ({', '.join(sorted(eligible)) or 'none'}); gated calls can never be approved"
            )
        for rule in rules:
            if (rule.required_approvals or 0) > len(eligible):
                self.warnings.append(
                    f"rule '{rule.id}' needs {rule.required_approvals} distinct approvers past its limit but the "
                    f"policy names {len(eligible)}; such calls can never be approved"
                )
        return eligible
