"""Effective permissions: why a user can or can't do something to one piece of content.

Pure logic: no I/O, no Tableau calls. The caller fetches users, groups, projects and explicit
rules (REST lists explicit rules only, semantics §4.1) and this module answers what Tableau would
decide, with the step that decided it and a sentence an assistant can repeat to a person.

Spec: ``/work/shared/reference/tableau-semantics.md`` §4 (lock modes §4.2, resolution order §4.3,
capability names §4.4). Tableau's own page is "Effective permissions"
(https://help.tableau.com/current/server/en-us/permission_effective.htm).

Typical use::

    source_rules = governing_rules(content, content_rules, project_chain, workbook_rules=...)
    decisions = effective_permissions(user, user_groups, content, source_rules, project_chain)
    holders = who_has("ViewUnderlyingData", content, source_rules, users, groups_with_members,
                      project_chain)

Call `governing_source` first to learn which rule set to fetch at all: content in a locked project
is governed by the locking project's default permissions, so its own rules need not be fetched.

Resolution order (§4.3), as implemented by `effective_capability`:

1. ``site_role_cap``: the site role's maximum (`SITE_ROLE_MAXIMUMS`) does not include the
   capability → denied, whatever the rules say. Unlicensed users have no capabilities.
2. Specific users, each → allowed:
   ``administrator`` (site or server administrator), then ``project_owner`` (owner of the
   content's project or of any ancestor), then ``project_leader`` (ProjectLeader on the content's
   project or any ancestor, for the user or one of their groups), then ``content_owner`` (except
   ChangePermissions while the content's permissions are locked to a project).
3. ``user_rule``: a rule for the user on the governing rule set: Deny → denied, Allow → allowed.
4. ``group_deny`` if any of the user's groups denies; otherwise ``group_allow`` if any allows.
5. ``unspecified`` → denied.

Documented choices (where §4 is silent or loose):

* **Administrators' license level.** "Administrators always have all capabilities applicable to
  their license level." SiteAdministratorCreator and ServerAdministrator hold a Creator license
  and are capped like Creator (i.e. not at all). SiteAdministratorExplorer holds an Explorer
  license but may publish, so it is capped like ExplorerCanPublish: it gets everything except
  what needs a Creator license (on this catalog: Web Edit of flows). See `LICENSE_LEVEL_ROLE`.
* **Cells the §4.3 table leaves open** (see `SITE_ROLE_MAXIMUMS`): Workbook Move is Creator and
  ExplorerCanPublish only (the table marks Explorer "not possible in practice"). Run Explain Data
  is open to every role including Viewer (Tableau: viewers with the capability can run it in
  viewing mode). Create/Refresh Metrics and Create Metric Definitions need Explorer or higher.
  ExtractRefresh and data-source Save As follow Overwrite (Creator, ExplorerCanPublish). API
  Access follows Connect (all roles). Flow Web Edit needs a Creator license. Data-source and flow
  Move follow Overwrite. ProjectLeader needs Explorer or higher: a Viewer with a ProjectLeader
  Allow is not treated as a project leader (rules then apply as usual).
* **View capabilities.** §4.4 marks RunExplainData and ExportXml on views as "one validator only";
  they are kept in the view catalog (the emulator accepts them) and capped like the workbook's.
* **Project leader.** ProjectLeader on the content's project or any ancestor makes the user a
  leader (Tableau shows this as InheritedProjectLeader on nested projects). Within one project the
  ProjectLeader grant is resolved like any capability (user rule over group rules, any group Deny
  over group Allows); a Deny on a nested project does not revoke leadership inherited from a
  parent. Projects whose own rules are overridden by a locked (nested) ancestor contribute no
  ProjectLeader rules of their own. ``InheritedProjectLeader`` (read-only) rules are ignored: the
  chain already says where leadership comes from.
* **Project owner.** Owning the content's project or any ancestor counts (owners of a parent
  project administer its nested projects). Owners are checked along the whole chain before
  leaders, nearest project first, so the reason names the nearest project.
* **Locked content and its rules.** In a locked project the content's permissions are the locking
  project's *default permissions* for the content's template (workbooks and views: the workbook
  template; data sources; flows), not the project's own Read/Write rules; pass them in
  `ProjectNode.default_rules`. A nested project under a LockedToProject ancestor is governed by
  that ancestor's project rules. The topmost LockedToProject ancestor wins;
  LockedToProjectWithoutNested locks only the project's direct content (`governing_source`).
* **Conflicting rules.** If one grantee has both Allow and Deny for a capability (REST never
  returns that, but merged inputs might), Deny wins.
* **Group sets.** Not modelled separately. A group set resolves like a group for the users who
  belong to all of its groups: pass it as a group (grantee_kind "group") for those users.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ADMIN_ROLES",
    "CAPABILITIES",
    "LICENSE_LEVEL_ROLE",
    "SITE_ROLE_MAXIMUMS",
    "CapabilityDecision",
    "CapabilitySpec",
    "Content",
    "ContentKind",
    "DecidingStep",
    "GoverningRules",
    "GoverningSource",
    "Group",
    "GroupWithMembers",
    "LockMode",
    "MissingRulesError",
    "Mode",
    "ProjectNode",
    "Rule",
    "RuleSource",
    "SiteRole",
    "User",
    "WorkbookRef",
    "capabilities_for",
    "capability_spec",
    "effective_capability",
    "effective_permissions",
    "governing_rules",
    "governing_source",
    "site_role_permits",
    "who_has",
]


# --------------------------------------------------------------------------------------------------
# Vocabulary


class ContentKind(StrEnum):
    PROJECT = "project"
    WORKBOOK = "workbook"
    VIEW = "view"
    DATASOURCE = "datasource"
    FLOW = "flow"


class SiteRole(StrEnum):
    CREATOR = "Creator"
    EXPLORER_CAN_PUBLISH = "ExplorerCanPublish"
    EXPLORER = "Explorer"
    VIEWER = "Viewer"
    UNLICENSED = "Unlicensed"
    SITE_ADMINISTRATOR_CREATOR = "SiteAdministratorCreator"
    SITE_ADMINISTRATOR_EXPLORER = "SiteAdministratorExplorer"
    SERVER_ADMINISTRATOR = "ServerAdministrator"


class LockMode(StrEnum):
    """A project's ``contentPermissions`` (semantics §4.2)."""

    MANAGED_BY_OWNER = "ManagedByOwner"
    LOCKED_TO_PROJECT = "LockedToProject"
    LOCKED_TO_PROJECT_WITHOUT_NESTED = "LockedToProjectWithoutNested"


class Mode(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


class DecidingStep(StrEnum):
    """Which step of Tableau's evaluation order (§4.3) decided a capability."""

    SITE_ROLE_CAP = "site_role_cap"
    ADMINISTRATOR = "administrator"
    PROJECT_OWNER = "project_owner"
    PROJECT_LEADER = "project_leader"
    CONTENT_OWNER = "content_owner"
    USER_RULE = "user_rule"
    GROUP_DENY = "group_deny"
    GROUP_ALLOW = "group_allow"
    UNSPECIFIED = "unspecified"


class RuleSource(StrEnum):
    """Whose explicit rules govern a piece of content."""

    CONTENT = "content"  # the item's own rules
    WORKBOOK = "workbook"  # a view whose workbook shows sheets as tabs: the workbook's rules
    LOCKED_PROJECT = "locked_project"  # a locking project's default (or, for projects, own) rules


ADMIN_ROLES: frozenset[SiteRole] = frozenset(
    {SiteRole.SITE_ADMINISTRATOR_CREATOR, SiteRole.SITE_ADMINISTRATOR_EXPLORER, SiteRole.SERVER_ADMINISTRATOR}
)

# The non-administrator role whose maximums cap each administrator role (its license level).
LICENSE_LEVEL_ROLE: Mapping[SiteRole, SiteRole] = MappingProxyType(
    {
        SiteRole.SITE_ADMINISTRATOR_CREATOR: SiteRole.CREATOR,
        SiteRole.SERVER_ADMINISTRATOR: SiteRole.CREATOR,
        SiteRole.SITE_ADMINISTRATOR_EXPLORER: SiteRole.EXPLORER_CAN_PUBLISH,
    }
)


# --------------------------------------------------------------------------------------------------
# Capability catalog (§4.4) and site-role maximums (§4.3)


class CapabilitySpec(BaseModel):
    """One capability of one content kind: the REST name and the name Tableau's UI shows."""

    model_config = ConfigDict(frozen=True)

    name: str
    ui_name: str


def _specs(*pairs: tuple[str, str]) -> tuple[CapabilitySpec, ...]:
    return tuple(CapabilitySpec(name=name, ui_name=ui) for name, ui in pairs)


# UI names come from the §4.4 mapping table where it has one; the others (Filter, View Comments,
# Add Comments, Run Explain Data, Create/Refresh Metrics, Extract Refresh, API Access, Create Metric
# Definitions, Project Leader, Delete) are the labels of Tableau's permission dialogs.
_VIZ = (
    ("Read", "View"),
    ("Filter", "Filter"),
    ("ViewComments", "View Comments"),
    ("AddComment", "Add Comments"),
    ("ExportImage", "Download Image/PDF"),
    ("ExportData", "Download Summary Data"),
    ("ShareView", "Share Customized"),
    ("ViewUnderlyingData", "Download Full Data"),
    ("WebAuthoring", "Web Edit"),
    ("RunExplainData", "Run Explain Data"),
    ("ExportXml", "Download Workbook/Save a Copy"),
)

CAPABILITIES: Mapping[ContentKind, tuple[CapabilitySpec, ...]] = MappingProxyType(
    {
        ContentKind.PROJECT: _specs(
            ("Read", "View"),
            ("Write", "Publish"),
            ("ProjectLeader", "Project Leader"),
        ),
        ContentKind.WORKBOOK: _specs(
            *_VIZ,
            ("Write", "Overwrite"),
            ("CreateRefreshMetrics", "Create/Refresh Metrics"),
            ("ChangeHierarchy", "Move"),
            ("Delete", "Delete"),
            ("ChangePermissions", "Set Permissions"),
            ("ExtractRefresh", "Extract Refresh"),
        ),
        ContentKind.VIEW: _specs(
            *_VIZ,
            ("Delete", "Delete"),
            ("ChangePermissions", "Set Permissions"),
        ),
        ContentKind.DATASOURCE: _specs(
            ("Read", "View"),
            ("Connect", "Connect"),
            ("ExportXml", "Download Data Source"),
            ("Write", "Overwrite"),
            ("SaveAs", "Save As"),
            ("ChangeHierarchy", "Move"),
            ("Delete", "Delete"),
            ("ChangePermissions", "Set Permissions"),
            ("ExtractRefresh", "Extract Refresh"),
            ("VizqlDataApiAccess", "API Access"),
            ("PulseMetricDefine", "Create Metric Definitions"),
        ),
        ContentKind.FLOW: _specs(
            ("Read", "View"),
            ("ExportXml", "Download Flow"),
            ("Execute", "Run Flow"),
            ("WebAuthoringForFlows", "Web Edit"),
            ("Write", "Overwrite"),
            ("ChangeHierarchy", "Move"),
            ("Delete", "Delete"),
            ("ChangePermissions", "Set Permissions"),
        ),
    }
)

_C, _EP, _E, _V = SiteRole.CREATOR, SiteRole.EXPLORER_CAN_PUBLISH, SiteRole.EXPLORER, SiteRole.VIEWER
_ALL = frozenset({_C, _EP, _E, _V})  # every licensed non-administrator role
_EXPLORERS = frozenset({_C, _EP, _E})  # "not Viewer"
_PUBLISHERS = frozenset({_C, _EP})
_CREATOR = frozenset({_C})

_VIZ_MAX = {
    "Read": _ALL,
    "Filter": _ALL,
    "ViewComments": _ALL,
    "AddComment": _ALL,
    "ExportImage": _ALL,
    "ExportData": _ALL,
    "RunExplainData": _ALL,
    "ShareView": _EXPLORERS,
    "ViewUnderlyingData": _EXPLORERS,
    "WebAuthoring": _EXPLORERS,
    "ExportXml": _EXPLORERS,
}

# Which non-administrator roles may hold each capability at all. Administrators are capped by
# their license level (`LICENSE_LEVEL_ROLE`); Unlicensed appears nowhere (no capabilities).
SITE_ROLE_MAXIMUMS: Mapping[ContentKind, Mapping[str, frozenset[SiteRole]]] = MappingProxyType(
    {
        ContentKind.PROJECT: MappingProxyType(
            {
                "Read": _ALL,
                "Write": _PUBLISHERS,
                "ProjectLeader": _EXPLORERS,
            }
        ),
        ContentKind.WORKBOOK: MappingProxyType(
            {
                **_VIZ_MAX,
                "Write": _PUBLISHERS,
                "CreateRefreshMetrics": _EXPLORERS,
                "ChangeHierarchy": _PUBLISHERS,
                "Delete": _PUBLISHERS,
                "ChangePermissions": _PUBLISHERS,
                "ExtractRefresh": _PUBLISHERS,
            }
        ),
        ContentKind.VIEW: MappingProxyType(
            {
                **_VIZ_MAX,
                "Delete": _PUBLISHERS,
                "ChangePermissions": _PUBLISHERS,
            }
        ),
        ContentKind.DATASOURCE: MappingProxyType(
            {
                "Read": _ALL,
                "Connect": _ALL,
                "VizqlDataApiAccess": _ALL,
                "ExportXml": _EXPLORERS,
                "PulseMetricDefine": _EXPLORERS,
                "Write": _PUBLISHERS,
                "SaveAs": _PUBLISHERS,
                "ChangeHierarchy": _PUBLISHERS,
                "Delete": _PUBLISHERS,
                "ChangePermissions": _PUBLISHERS,
                "ExtractRefresh": _PUBLISHERS,
            }
        ),
        ContentKind.FLOW: MappingProxyType(
            {
                "Read": _ALL,
                "ExportXml": _EXPLORERS,
                "Execute": _PUBLISHERS,
                "WebAuthoringForFlows": _CREATOR,
                "Write": _PUBLISHERS,
                "ChangeHierarchy": _PUBLISHERS,
                "Delete": _PUBLISHERS,
                "ChangePermissions": _PUBLISHERS,
            }
        ),
    }
)

# Default-permission template that governs each kind in a locked project.
_TEMPLATE_OF: Mapping[ContentKind, ContentKind] = MappingProxyType(
    {
        ContentKind.WORKBOOK: ContentKind.WORKBOOK,
        ContentKind.VIEW: ContentKind.WORKBOOK,
        ContentKind.DATASOURCE: ContentKind.DATASOURCE,
        ContentKind.FLOW: ContentKind.FLOW,
    }
)
_TEMPLATE_PATH = {
    ContentKind.WORKBOOK: "workbooks",
    ContentKind.DATASOURCE: "datasources",
    ContentKind.FLOW: "flows",
}


def capabilities_for(kind: ContentKind | str) -> tuple[CapabilitySpec, ...]:
    """The capabilities of a content kind, in Tableau's dialog order."""
    return CAPABILITIES[ContentKind(kind)]


def capability_spec(kind: ContentKind | str, capability: str) -> CapabilitySpec:
    """The spec of one capability; ValueError if the kind has no such capability."""
    for spec in capabilities_for(kind):
        if spec.name == capability:
            return spec
    known = ", ".join(s.name for s in capabilities_for(kind))
    raise ValueError(f"{ContentKind(kind).value} has no capability {capability!r} (known: {known})")


def site_role_permits(site_role: SiteRole | str, kind: ContentKind | str, capability: str) -> bool:
    """Whether the site role's maximum includes the capability (step 1 of §4.3)."""
    role = SiteRole(site_role)
    capped_as = LICENSE_LEVEL_ROLE.get(role, role)
    return capped_as in SITE_ROLE_MAXIMUMS[ContentKind(kind)].get(capability, frozenset())


# --------------------------------------------------------------------------------------------------
# Inputs


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class User(_Frozen):
    id: str
    name: str
    site_role: SiteRole


class Group(_Frozen):
    id: str
    name: str


class GroupWithMembers(Group):
    """A group and the ids of its members (for `who_has`)."""

    member_ids: frozenset[str] = frozenset()


class Rule(_Frozen):
    """One explicit rule: grantee, capability → Allow | Deny (a `<capability>` in REST).

    Capabilities are free strings: rules for capabilities this catalog doesn't know are ignored.
    """

    grantee_kind: Literal["user", "group"]
    grantee_id: str
    capability: str
    mode: Mode


class WorkbookRef(_Frozen):
    """The workbook a view belongs to."""

    id: str
    name: str
    show_tabs: bool


class Content(_Frozen):
    """The item being asked about.

    For a project, ``id`` is the project itself and ``project_id`` its parent (None at the top).
    For a view, ``workbook`` is required; ``owner_id`` is the view's owner (the workbook's owner).
    """

    kind: ContentKind
    id: str
    name: str
    owner_id: str | None = None
    project_id: str | None = None
    workbook: WorkbookRef | None = None

    @model_validator(mode="after")
    def _workbook_only_for_views(self) -> Content:
        if self.kind is ContentKind.VIEW and self.workbook is None:
            raise ValueError("a view needs its workbook (id, name, show_tabs)")
        if self.kind is not ContentKind.VIEW and self.workbook is not None:
            raise ValueError(f"only views have a workbook, not a {self.kind.value}")
        return self

    @property
    def label(self) -> str:
        return f"{self.kind.value} '{self.name}'"


class ProjectNode(_Frozen):
    """One project of the chain from the content's project up to the top-level project.

    ``rules`` are the project's own explicit rules (Read, Write, ProjectLeader). ``default_rules``
    are its default permissions per template (workbook, datasource, flow); they are only needed
    when this project locks the content being asked about. A missing key means "not fetched";
    an empty tuple means "fetched, no rules".
    """

    id: str
    name: str
    owner_id: str | None = None
    parent_id: str | None  # required: None only for a top-level project
    content_permissions: LockMode = LockMode.MANAGED_BY_OWNER
    rules: tuple[Rule, ...] = ()
    default_rules: Mapping[ContentKind, tuple[Rule, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _templates_only(self) -> ProjectNode:
        bad = [k.value for k in self.default_rules if k not in _TEMPLATE_PATH]
        if bad:
            raise ValueError(f"default_rules keys must be workbook, datasource or flow, not {bad}")
        return self


# --------------------------------------------------------------------------------------------------
# Which rule set governs


class MissingRulesError(ValueError):
    """The rule set that governs the content was not passed in. ``fetch`` says what to ask for."""

    def __init__(self, message: str, fetch: str) -> None:
        super().__init__(message)
        self.fetch = fetch


class GoverningSource(_Frozen):
    """Whose rules decide for a piece of content, and why (no rules yet)."""

    content_id: str
    content_kind: ContentKind
    source: RuleSource
    source_kind: ContentKind  # kind of the item the rules are read from
    source_id: str
    source_name: str
    locked: bool  # the content's permissions are locked to `controlling_project_*`
    controlling_project_id: str | None = None
    controlling_project_name: str | None = None
    where: str  # "workbook 'Q3 Forecast'" with a suffix saying where its rules come from
    reason: str
    fetch: str  # the REST call that lists the governing rules


class GoverningRules(GoverningSource):
    """`GoverningSource` plus the rules themselves: what `effective_permissions` consumes."""

    rules: tuple[Rule, ...] = ()


def _check_chain(content: Content, chain: Sequence[ProjectNode]) -> None:
    if content.kind is ContentKind.PROJECT:
        if not chain or chain[0].id != content.id:
            raise ValueError(
                f"for project '{content.name}', project_chain must start with the project itself"
            )
        if (
            chain[0].parent_id is not None
            and content.project_id is not None
            and chain[0].parent_id != content.project_id
        ):
            raise ValueError(
                f"project '{content.name}' has parent {content.project_id!r} but the chain says "
                f"{chain[0].parent_id!r}"
            )
    elif content.project_id is not None:
        if not chain or chain[0].id != content.project_id:
            raise ValueError(
                f"project_chain must start with the project of {content.label} ({content.project_id!r})"
            )
    elif chain:
        raise ValueError(f"{content.label} has no project, so project_chain must be empty")
    seen: set[str] = set()
    for i, node in enumerate(chain):
        if node.id in seen:
            raise ValueError(f"project '{node.name}' appears twice in project_chain")
        seen.add(node.id)
        if node.parent_id is None:
            if i + 1 < len(chain):
                raise ValueError(f"project '{node.name}' is top-level but project_chain goes on")
        elif i + 1 == len(chain):
            raise ValueError(
                f"project_chain stops at '{node.name}' but its parent {node.parent_id!r} is missing"
            )
        elif chain[i + 1].id != node.parent_id:
            raise ValueError(
                f"project_chain: the parent of '{node.name}' is {node.parent_id!r}, not '{chain[i + 1].name}'"
            )


def _controlling_index(content: Content, chain: Sequence[ProjectNode]) -> int | None:
    """Index in `chain` of the project whose lock governs `content`, or None (not locked).

    The topmost LockedToProject project of the chain locks everything below it (nested projects
    included). LockedToProjectWithoutNested locks only the project's direct content; a project's
    own lock mode never governs the project itself.
    """
    candidates = chain[1:] if content.kind is ContentKind.PROJECT else chain
    offset = 1 if content.kind is ContentKind.PROJECT else 0
    top_locked = None
    for i, node in enumerate(candidates):
        if node.content_permissions is LockMode.LOCKED_TO_PROJECT:
            top_locked = i + offset
    if top_locked is not None:
        return top_locked
    if (
        content.kind is not ContentKind.PROJECT
        and chain
        and chain[0].content_permissions is LockMode.LOCKED_TO_PROJECT_WITHOUT_NESTED
    ):
        return 0
    return None


def _fetch_call(kind: ContentKind, item_id: str) -> str:
    return f"GET /{kind.value}s/{item_id}/permissions"


def governing_source(content: Content, project_chain: Sequence[ProjectNode]) -> GoverningSource:
    """Decide whose explicit rules govern `content`, before any rules are fetched.

    * Content in a locked project: the controlling project's default permissions for the
      content's template (views use the workbook template); a nested project under a
      LockedToProject ancestor: that ancestor's project rules.
    * A view whose workbook shows tabs: the workbook's rules.
    * Otherwise (ManagedByOwner, or a nested project under LockedToProjectWithoutNested): the
      content's own rules.

    `project_chain` runs from the content's project (for a project: the project itself) to the
    top; ValueError if it doesn't fit the content.
    """
    _check_chain(content, project_chain)
    base = {"content_id": content.id, "content_kind": content.kind}
    index = _controlling_index(content, project_chain)
    if index is not None:
        ctl = project_chain[index]
        mode = ctl.content_permissions.value
        if content.kind is ContentKind.PROJECT:
            why = (
                f"permissions of project '{ctl.name}' are locked ({mode}) including nested projects, so its "
                f"rules govern {content.label}"
            )
            src_kind, fetch = ContentKind.PROJECT, _fetch_call(ContentKind.PROJECT, ctl.id)
        else:
            template = _TEMPLATE_OF[content.kind]
            scope = (
                "including nested projects"
                if ctl.content_permissions is LockMode.LOCKED_TO_PROJECT
                else "for its direct content"
            )
            why = (
                f"permissions of project '{ctl.name}' are locked ({mode}) {scope}, so its default "
                f"{template.value} permissions govern {content.label}"
            )
            if content.kind is ContentKind.VIEW:
                why += " (views follow the workbook template)"
            src_kind = template
            fetch = f"GET /projects/{ctl.id}/default-permissions/{_TEMPLATE_PATH[template]}"
        return GoverningSource(
            **base,
            source=RuleSource.LOCKED_PROJECT,
            source_kind=src_kind,
            source_id=ctl.id,
            source_name=ctl.name,
            locked=True,
            controlling_project_id=ctl.id,
            controlling_project_name=ctl.name,
            where=f"{content.label} (permissions locked to project '{ctl.name}')",
            reason=why,
            fetch=fetch,
        )
    if content.kind is ContentKind.VIEW and content.workbook is not None and content.workbook.show_tabs:
        wb = content.workbook
        return GoverningSource(
            **base,
            source=RuleSource.WORKBOOK,
            source_kind=ContentKind.WORKBOOK,
            source_id=wb.id,
            source_name=wb.name,
            locked=False,
            where=f"workbook '{wb.name}' (view '{content.name}' inherits its workbook's permissions)",
            reason=f"workbook '{wb.name}' shows sheets as tabs, so its rules govern {content.label}",
            fetch=_fetch_call(ContentKind.WORKBOOK, wb.id),
        )
    if content.kind is ContentKind.PROJECT:
        why = f"{content.label} is not under a locked (nested) project, so its own rules govern"
    elif project_chain:
        mode = project_chain[0].content_permissions.value
        why = f"project '{project_chain[0].name}' is {mode} for {content.label}, so its own rules govern"
    else:
        why = f"{content.label} is in no project, so its own rules govern"
    if content.kind is ContentKind.VIEW:
        why += " (its workbook does not show tabs)"
    return GoverningSource(
        **base,
        source=RuleSource.CONTENT,
        source_kind=content.kind,
        source_id=content.id,
        source_name=content.name,
        locked=False,
        where=content.label,
        reason=why,
        fetch=_fetch_call(content.kind, content.id),
    )


def governing_rules(
    content: Content,
    content_rules: Iterable[Rule] | None,
    project_chain: Sequence[ProjectNode],
    workbook_rules: Iterable[Rule] | None = None,
) -> GoverningRules:
    """The rule set that governs `content`, and why (see `governing_source`).

    `content_rules` are the item's own explicit rules and `workbook_rules` the view's workbook's;
    either may be None when not fetched. A project's own rules are read from
    ``project_chain[0].rules`` (pass None, or the same rules, as `content_rules`). Locked content
    takes its rules from the controlling project in `project_chain` (`ProjectNode.default_rules`,
    or `rules` for a project), ignoring any stale rules the item still carries.
    MissingRulesError (with ``fetch``: the REST call to make) if the governing set wasn't passed.
    """
    source = governing_source(content, project_chain)
    rules: Iterable[Rule] | None
    if source.source is RuleSource.LOCKED_PROJECT:
        ctl = next(p for p in project_chain if p.id == source.source_id)
        rules = (
            ctl.rules if content.kind is ContentKind.PROJECT else ctl.default_rules.get(source.source_kind)
        )
        missing = f"the default {source.source_kind.value} permissions of project '{ctl.name}'"
    elif source.source is RuleSource.WORKBOOK:
        rules, missing = workbook_rules, f"the rules of workbook '{source.source_name}'"
    elif content.kind is ContentKind.PROJECT:
        rules, missing = project_chain[0].rules, ""
        if content_rules is not None and tuple(content_rules) != rules:
            raise ValueError(
                f"the rules of {content.label} come from project_chain[0].rules; "
                "content_rules disagrees with them"
            )
    else:
        rules, missing = content_rules, f"the rules of {content.label}"
    if rules is None:
        raise MissingRulesError(f"{source.reason}; pass {missing} ({source.fetch})", source.fetch)
    return GoverningRules(**source.model_dump(), rules=tuple(rules))


# --------------------------------------------------------------------------------------------------
# Outputs


class CapabilityDecision(_Frozen):
    capability: str  # REST name
    ui_name: str
    allowed: bool
    step: DecidingStep
    reason: str  # "denied: group 'Contractors' denies Download Full Data on workbook 'Q3 Forecast'"
    via: tuple[str, ...] = ()  # ids of the deciding user, groups or project (empty otherwise)


# --------------------------------------------------------------------------------------------------
# Resolution


def _index(rules: Iterable[Rule]) -> tuple[dict[str, dict[str, Mode]], dict[str, dict[str, Mode]]]:
    """capability → grantee id → mode, for users and groups; Deny wins over a conflicting Allow."""
    users: dict[str, dict[str, Mode]] = {}
    groups: dict[str, dict[str, Mode]] = {}
    for rule in rules:
        table = users if rule.grantee_kind == "user" else groups
        modes = table.setdefault(rule.capability, {})
        if modes.get(rule.grantee_id) is not Mode.DENY:
            modes[rule.grantee_id] = rule.mode
    return users, groups


def _names(groups: Iterable[Group]) -> str:
    names = sorted(g.name for g in groups)
    quoted = ", ".join(f"'{n}'" for n in names)
    return f"group {quoted}" if len(names) == 1 else f"groups {quoted}"


class _Resolver:
    """Everything about one content item that doesn't depend on the user, indexed once."""

    def __init__(self, content: Content, governing: GoverningRules, chain: Sequence[ProjectNode]) -> None:
        if governing.content_id != content.id or governing.content_kind is not content.kind:
            raise ValueError(
                f"governing rules are for {governing.content_kind.value} {governing.content_id!r}, "
                f"not {content.label} ({content.id!r}); build them with governing_rules()"
            )
        _check_chain(content, chain)
        self.content = content
        self.governing = governing
        self.chain = tuple(chain)
        self.user_rules, self.group_rules = _index(governing.rules)
        # ProjectLeader rules per chain project, nearest first. Projects below the topmost
        # LockedToProject project (strictly) are governed by it and contribute no rules of their own.
        top_locked = max(
            (i for i, p in enumerate(self.chain) if p.content_permissions is LockMode.LOCKED_TO_PROJECT),
            default=None,
        )
        self.leader_rules: list[tuple[ProjectNode, dict[str, Mode], dict[str, Mode]]] = []
        for i, project in enumerate(self.chain):
            if top_locked is not None and i < top_locked:
                continue
            users, groups = _index(r for r in project.rules if r.capability == "ProjectLeader")
            self.leader_rules.append(
                (project, users.get("ProjectLeader", {}), groups.get("ProjectLeader", {}))
            )

    def group_ids_of_interest(self, capability: str) -> set[str]:
        """Groups whose membership can change the decision on `capability` for this content."""
        ids = set(self.group_rules.get(capability, {}))
        for _, _, groups in self.leader_rules:
            ids.update(groups)
        return ids

    def _leads(self, user: User, groups: Sequence[Group]) -> tuple[ProjectNode, Group | None] | None:
        if not site_role_permits(user.site_role, ContentKind.PROJECT, "ProjectLeader"):
            return None
        for project, users, group_modes in self.leader_rules:
            mine = users.get(user.id)
            if mine is not None:
                if mine is Mode.ALLOW:
                    return project, None
                continue  # a user Deny here overrides this project's group Allows
            modes = [(g, group_modes[g.id]) for g in groups if g.id in group_modes]
            if modes and all(m is Mode.ALLOW for _, m in modes):
                return project, min((g for g, _ in modes), key=lambda g: g.name)
        return None

    def decide(self, spec: CapabilitySpec, user: User, groups: Sequence[Group]) -> CapabilityDecision:
        content, cap, ui = self.content, spec.name, spec.ui_name
        who = user.name
        where = self.governing.where

        def result(
            allowed: bool, step: DecidingStep, reason: str, via: Iterable[str] = ()
        ) -> CapabilityDecision:
            verdict = "allowed" if allowed else "denied"
            return CapabilityDecision(
                capability=cap,
                ui_name=ui,
                allowed=allowed,
                step=step,
                reason=f"{verdict}: {reason}",
                via=tuple(via),
            )

        # 1. Site-role maximum.
        if not site_role_permits(user.site_role, content.kind, cap):
            role = user.site_role.value
            if user.site_role is SiteRole.UNLICENSED:
                detail = "unlicensed users have no capabilities"
            elif user.site_role in LICENSE_LEVEL_ROLE:
                level = LICENSE_LEVEL_ROLE[user.site_role].value
                detail = f"capped at its license level ({level}); no rule can grant it"
            else:
                detail = "no rule can grant it"
            return result(
                False,
                DecidingStep.SITE_ROLE_CAP,
                f"site role {role} cannot {ui} ({cap}) on any {content.kind.value}; {detail}",
            )
        # 2. Specific users.
        if user.site_role in ADMIN_ROLES:
            what = (
                "a server administrator"
                if user.site_role is SiteRole.SERVER_ADMINISTRATOR
                else "a site administrator"
            )
            return result(True, DecidingStep.ADMINISTRATOR, f"{who} is {what} ({user.site_role.value})")
        for project in self.chain:
            if project.owner_id is not None and project.owner_id == user.id:
                return result(
                    True,
                    DecidingStep.PROJECT_OWNER,
                    f"{who} owns project '{project.name}'{self._relation(project)}",
                    (project.id,),
                )
        lead = self._leads(user, groups)
        if lead is not None:
            project, group = lead
            through = f" through group '{group.name}'" if group else ""
            return result(
                True,
                DecidingStep.PROJECT_LEADER,
                f"{who} is the project leader of '{project.name}'{self._relation(project)}{through}",
                (project.id,) if group is None else (project.id, group.id),
            )
        owner_note = ""
        if content.owner_id is not None and content.owner_id == user.id:
            if not (cap == "ChangePermissions" and self.governing.locked):
                return result(True, DecidingStep.CONTENT_OWNER, f"{who} owns {content.label}", (user.id,))
            owner_note = (
                f"; {who} owns {content.label}, but content owners cannot {ui} while its permissions are "
                f"locked to project '{self.governing.controlling_project_name}'"
            )
        # 3. User rules.
        mine = self.user_rules.get(cap, {}).get(user.id)
        if mine is Mode.DENY:
            return result(
                False,
                DecidingStep.USER_RULE,
                f"a user rule denies {ui} to {who} on {where}{owner_note}",
                (user.id,),
            )
        if mine is Mode.ALLOW:
            return result(
                True, DecidingStep.USER_RULE, f"a user rule allows {ui} to {who} on {where}", (user.id,)
            )
        # 4. Group rules.
        group_modes = self.group_rules.get(cap, {})
        denying = [g for g in groups if group_modes.get(g.id) is Mode.DENY]
        if denying:
            verb = "denies" if len(denying) == 1 else "deny"
            return result(
                False,
                DecidingStep.GROUP_DENY,
                f"{_names(denying)} {verb} {ui} on {where}{owner_note}",
                sorted(g.id for g in denying),
            )
        allowing = [g for g in groups if group_modes.get(g.id) is Mode.ALLOW]
        if allowing:
            verb = "allows" if len(allowing) == 1 else "allow"
            return result(
                True,
                DecidingStep.GROUP_ALLOW,
                f"{_names(allowing)} {verb} {ui} on {where}",
                sorted(g.id for g in allowing),
            )
        # 5. Unspecified.
        return result(
            False,
            DecidingStep.UNSPECIFIED,
            f"no rule allows {ui} to {who} or their groups on {where}; unspecified means denied{owner_note}",
        )

    def _relation(self, project: ProjectNode) -> str:
        if self.content.kind is ContentKind.PROJECT and project.id == self.content.id:
            return ""
        if self.chain and project.id == self.chain[0].id:
            return ""
        return f" (which contains {self.content.label})"


def effective_capability(
    user: User,
    user_groups: Sequence[Group],
    content: Content,
    governing_rules: GoverningRules,
    project_chain: Sequence[ProjectNode],
    capability: str,
) -> CapabilityDecision:
    """What Tableau decides for one capability (REST name). ValueError if the kind lacks it."""
    spec = capability_spec(content.kind, capability)
    return _Resolver(content, governing_rules, project_chain).decide(spec, user, _unique(user_groups))


def effective_permissions(
    user: User,
    user_groups: Sequence[Group],
    content: Content,
    governing_rules: GoverningRules,
    project_chain: Sequence[ProjectNode],
) -> list[CapabilityDecision]:
    """Decisions for every capability of the content's kind, in catalog order.

    `user_groups` are the groups the user belongs to (including All Users); `governing_rules`
    comes from `governing_rules()` for this content; `project_chain` runs from the content's
    project (for a project: the project itself) up to the top-level project.
    """
    resolver = _Resolver(content, governing_rules, project_chain)
    groups = _unique(user_groups)
    return [resolver.decide(spec, user, groups) for spec in capabilities_for(content.kind)]


def who_has(
    capability: str,
    content: Content,
    governing_rules: GoverningRules,
    users: Iterable[User],
    groups_with_members: Iterable[GroupWithMembers],
    project_chain: Sequence[ProjectNode],
    *,
    include_denied: bool = False,
) -> list[tuple[User, CapabilityDecision]]:
    """Who effectively has `capability` on `content`, with group membership expanded.

    Returns (user, decision) for each user in `users` (input order) that is allowed, or for every
    user if `include_denied`. Work is O(users + memberships of the groups that appear in the
    governing rules or ProjectLeader rules); the caller bounds and pages the output.
    """
    spec = capability_spec(content.kind, capability)
    resolver = _Resolver(content, governing_rules, project_chain)
    relevant = resolver.group_ids_of_interest(spec.name)
    groups_of: dict[str, list[Group]] = {}
    for group in groups_with_members:
        if group.id not in relevant:
            continue
        plain = Group(id=group.id, name=group.name)
        for member_id in group.member_ids:
            groups_of.setdefault(member_id, []).append(plain)
    out: list[tuple[User, CapabilityDecision]] = []
    for user in users:
        decision = resolver.decide(spec, user, _unique(groups_of.get(user.id, ())))
        if decision.allowed or include_denied:
            out.append((user, decision))
    return out


def _unique(groups: Iterable[Group]) -> tuple[Group, ...]:
    seen: dict[str, Group] = {}
    for group in groups:
        seen.setdefault(group.id, group)
    return tuple(seen.values())
