"""Effective-permission resolution (server/permissions.py) against Tableau's order, semantics §4.3.

Every case is built on one purpose-built site (`build_site`): each user, group, project and rule
exists to exercise one rule of the order, named after what it proves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from server.permissions import (
    CAPABILITIES,
    LICENSE_LEVEL_ROLE,
    SITE_ROLE_MAXIMUMS,
    Content,
    ContentKind,
    DecidingStep,
    Group,
    GroupWithMembers,
    LockMode,
    MissingRulesError,
    Mode,
    ProjectNode,
    Rule,
    RuleSource,
    SiteRole,
    User,
    WorkbookRef,
    capability_spec,
    effective_capability,
    effective_permissions,
    governing_rules,
    governing_source,
    site_role_permits,
    who_has,
)

S = DecidingStep


# --------------------------------------------------------------------------------------------------
# The site


def allow(kind: str, grantee: str, *caps: str) -> list[Rule]:
    return [Rule(grantee_kind=kind, grantee_id=grantee, capability=c, mode=Mode.ALLOW) for c in caps]


def deny(kind: str, grantee: str, *caps: str) -> list[Rule]:
    return [Rule(grantee_kind=kind, grantee_id=grantee, capability=c, mode=Mode.DENY) for c in caps]


@dataclass
class Site:
    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)  # group id -> user ids
    projects: dict[str, ProjectNode] = field(default_factory=dict)
    contents: dict[str, Content] = field(default_factory=dict)
    rules: dict[str, list[Rule]] = field(default_factory=dict)  # content id -> its own (explicit) rules

    def groups_of(self, user_id: str) -> list[Group]:
        return [self.groups[g] for g, ids in self.members.items() if user_id in ids]

    def chain(self, content: Content) -> list[ProjectNode]:
        out: list[ProjectNode] = []
        pid = content.id if content.kind is ContentKind.PROJECT else content.project_id
        while pid is not None:
            out.append(self.projects[pid])
            pid = self.projects[pid].parent_id
        return out

    def governing(self, content: Content):
        workbook_rules = self.rules.get(content.workbook.id) if content.workbook else None
        return governing_rules(content, self.rules.get(content.id), self.chain(content), workbook_rules)

    def decide(self, user: str, content: str, capability: str):
        c = self.contents[content]
        return effective_capability(
            self.users[user],
            self.groups_of(self.users[user].id),
            c,
            self.governing(c),
            self.chain(c),
            capability,
        )


def build_site() -> Site:
    site = Site()
    for name, role in [
        ("dana", "Creator"),  # member of Analysts and Contractors, has user rules on Q3 Forecast
        ("eve", "Explorer"),  # member of Analysts and Contractors, no user rules
        ("ana", "Explorer"),  # member of Analysts only
        ("vic", "Viewer"),  # Analysts; user Allow on WebAuthoring/ExportXml (capped)
        ("una", "Unlicensed"),  # user Allow on Read (capped)
        ("ada", "SiteAdministratorCreator"),  # user Deny on Read (admins ignore rules)
        ("sam", "SiteAdministratorExplorer"),
        ("stan", "ServerAdministrator"),
        ("olga", "Creator"),  # owns Q3 Forecast and Board Pack
        ("pat", "ExplorerCanPublish"),  # owns project Finance
        ("lee", "Creator"),  # user ProjectLeader on Finance
        ("gail", "Creator"),  # ProjectLeader on Finance through group Finance Leads
        ("lena", "Creator"),  # in Finance Leads, but a user Deny on ProjectLeader
        ("nina", "Creator"),  # ProjectLeader on the nested project Forecasts only
        ("vera", "Viewer"),  # ProjectLeader on Finance, but Viewers can't lead
        ("tom", "Creator"),  # in Temps: a second denying group
    ]:
        site.users[name] = User(id=f"u-{name}", name=name, site_role=role)
    for key, name, members in [
        ("all", "All Users", list(site.users)),
        ("analysts", "Analysts", ["dana", "eve", "ana", "vic", "tom"]),
        ("contractors", "Contractors", ["dana", "eve", "tom"]),
        ("temps", "Temps", ["tom"]),
        ("leads", "Finance Leads", ["gail", "lena"]),
    ]:
        site.groups[f"g-{key}"] = Group(id=f"g-{key}", name=name)
        site.members[f"g-{key}"] = {f"u-{m}" for m in members}

    def project(
        pid, name, parent=None, mode=LockMode.MANAGED_BY_OWNER, owner="u-root", rules=(), defaults=None
    ):
        site.projects[pid] = ProjectNode(
            id=pid,
            name=name,
            owner_id=owner,
            parent_id=parent,
            content_permissions=mode,
            rules=tuple(rules),
            default_rules=defaults or {},
        )
        site.contents[pid] = Content(kind="project", id=pid, name=name, owner_id=owner, project_id=parent)

    project(
        "p-finance",
        "Finance",
        owner="u-pat",
        rules=[
            *allow("group", "g-all", "Read"),
            *allow("user", "u-lee", "ProjectLeader"),
            *allow("user", "u-vera", "ProjectLeader"),
            *allow("group", "g-leads", "ProjectLeader"),
            *deny("user", "u-lena", "ProjectLeader"),
        ],
    )
    project("p-forecasts", "Forecasts", parent="p-finance", rules=allow("user", "u-nina", "ProjectLeader"))
    # Locked including nested projects; its nested project carries stale rules of its own.
    project(
        "p-board",
        "Board",
        mode=LockMode.LOCKED_TO_PROJECT,
        rules=[*allow("group", "g-analysts", "Read")],
        defaults={
            "workbook": [
                *allow("group", "g-analysts", "Read", "ExportData"),
                *deny("group", "g-contractors", "Read"),
            ]
        },
    )
    project(
        "p-minutes",
        "Board Minutes",
        parent="p-board",
        rules=[*allow("group", "g-contractors", "Read"), *allow("user", "u-dana", "ProjectLeader")],
        defaults={"workbook": allow("group", "g-contractors", "Read")},
    )
    # Locked for its own content only.
    project(
        "p-ops",
        "Ops",
        mode=LockMode.LOCKED_TO_PROJECT_WITHOUT_NESTED,
        defaults={
            "workbook": allow("group", "g-analysts", "Read"),
            "datasource": allow("group", "g-analysts", "Read", "Connect"),
        },
    )
    project("p-sandbox", "Ops Sandbox", parent="p-ops", rules=allow("group", "g-contractors", "Read"))
    project(
        "p-archive",
        "Ops Archive",
        parent="p-ops",
        mode=LockMode.LOCKED_TO_PROJECT_WITHOUT_NESTED,
        defaults={"workbook": allow("user", "u-eve", "Read")},
    )

    def content(cid, kind, name, project_id, owner="u-root", rules=(), workbook=None):
        site.contents[cid] = Content(
            kind=kind, id=cid, name=name, owner_id=owner, project_id=project_id, workbook=workbook
        )
        site.rules[cid] = list(rules)

    content(
        "wb-q3",
        "workbook",
        "Q3 Forecast",
        "p-finance",
        owner="u-olga",
        rules=[
            *allow(
                "group", "g-analysts", "Read", "ExportData", "ViewUnderlyingData", "WebAuthoring", "ExportXml"
            ),
            *allow("group", "g-contractors", "Read"),
            *deny("group", "g-contractors", "ViewUnderlyingData"),
            *deny("group", "g-temps", "ViewUnderlyingData"),
            *deny("user", "u-dana", "ExportData"),
            *allow("user", "u-dana", "ViewUnderlyingData"),
            *allow("user", "u-vic", "WebAuthoring", "ExportXml"),
            *allow("user", "u-una", "Read"),
            *deny("user", "u-ada", "Read"),
            *deny("user", "u-olga", "Delete"),
        ],
    )
    content("wb-plan", "workbook", "Plan FY26", "p-forecasts")
    content(
        "wb-board",
        "workbook",
        "Board Pack",
        "p-board",
        owner="u-olga",
        rules=[
            # stale rules from before the lock: ignored
            *allow("group", "g-contractors", "Read"),
            *allow("user", "u-eve", "ViewUnderlyingData"),
            *allow("user", "u-olga", "ChangePermissions"),
        ],
    )
    content("wb-minutes", "workbook", "Minutes", "p-minutes", rules=allow("group", "g-contractors", "Read"))
    content("wb-ops", "workbook", "Ops Daily", "p-ops", rules=deny("group", "g-analysts", "Read"))
    content("wb-sandbox", "workbook", "Scratch", "p-sandbox", rules=deny("group", "g-contractors", "Read"))
    content("wb-archive", "workbook", "Old Ops", "p-archive", rules=allow("group", "g-analysts", "Read"))
    content("wb-detail", "workbook", "Sales Detail", "p-finance", rules=allow("group", "g-analysts", "Read"))
    content(
        "v-summary",
        "view",
        "Summary",
        "p-finance",
        owner="u-olga",
        workbook=WorkbookRef(id="wb-q3", name="Q3 Forecast", show_tabs=True),
        rules=allow("group", "g-contractors", "ViewUnderlyingData"),
    )  # overwritten when tabs turned on
    content(
        "v-detail",
        "view",
        "Detail",
        "p-finance",
        workbook=WorkbookRef(id="wb-detail", name="Sales Detail", show_tabs=False),
        rules=allow("user", "u-eve", "ViewUnderlyingData"),
    )
    content(
        "v-board",
        "view",
        "Board KPIs",
        "p-board",
        workbook=WorkbookRef(id="wb-board", name="Board Pack", show_tabs=False),
        rules=allow("user", "u-eve", "Read"),
    )
    content(
        "ds-sales",
        "datasource",
        "Sales",
        "p-finance",
        rules=[*allow("group", "g-all", "Read", "Connect", "ExportXml")],
    )
    content(
        "fl-nightly",
        "flow",
        "Nightly Prep",
        "p-finance",
        rules=[*allow("group", "g-analysts", "Read", "Execute", "WebAuthoringForFlows")],
    )
    return site


SITE = build_site()


@pytest.fixture()
def site() -> Site:
    return SITE


# --------------------------------------------------------------------------------------------------
# One capability for one user: every rule of the order, on purpose


@dataclass(frozen=True)
class Case:
    name: str
    user: str
    content: str
    capability: str
    allowed: bool
    step: DecidingStep
    reason: str | None = None  # substring the reason must contain


# fmt: off
CASES = [
    # 3./4. User rules override group rules; any group Deny overrides group Allows.
    Case("user deny beats group allow", "dana", "wb-q3", "ExportData", False, S.USER_RULE,
         "denied: a user rule denies Download Summary Data to dana on workbook 'Q3 Forecast'"),
    Case("user allow beats group deny", "dana", "wb-q3", "ViewUnderlyingData", True, S.USER_RULE,
         "allowed: a user rule allows Download Full Data to dana"),
    Case("any group deny beats another group's allow",
         "eve", "wb-q3", "ViewUnderlyingData", False, S.GROUP_DENY,
         "denied: group 'Contractors' denies Download Full Data on workbook 'Q3 Forecast'"),
    Case("two denying groups are both named", "tom", "wb-q3", "ViewUnderlyingData", False, S.GROUP_DENY,
         "groups 'Contractors', 'Temps' deny Download Full Data"),
    Case("group allow", "ana", "wb-q3", "ViewUnderlyingData", True, S.GROUP_ALLOW,
         "allowed: group 'Analysts' allows Download Full Data on workbook 'Q3 Forecast'"),
    Case("several allowing groups", "eve", "wb-q3", "Read", True, S.GROUP_ALLOW,
         "groups 'Analysts', 'Contractors' allow View"),
    # 5. Unspecified.
    Case("unspecified means denied", "dana", "wb-q3", "ChangeHierarchy", False, S.UNSPECIFIED,
         "no rule allows Move to dana"),
    # 1. Site-role maximum caps explicit Allows.
    Case("viewer allow on web edit is capped", "vic", "wb-q3", "WebAuthoring", False, S.SITE_ROLE_CAP,
         "site role Viewer cannot Web Edit (WebAuthoring)"),
    Case("viewer allow on download workbook is capped", "vic", "wb-q3", "ExportXml", False, S.SITE_ROLE_CAP,
         "site role Viewer cannot Download Workbook/Save a Copy"),
    Case("viewer group allow on full data is capped",
         "vic", "wb-q3", "ViewUnderlyingData", False, S.SITE_ROLE_CAP),
    Case("viewer may view", "vic", "wb-q3", "Read", True, S.GROUP_ALLOW),
    Case("unlicensed user allow is capped", "una", "wb-q3", "Read", False, S.SITE_ROLE_CAP,
         "unlicensed users have no capabilities"),
    Case("explorer cannot overwrite", "eve", "wb-q3", "Write", False, S.SITE_ROLE_CAP),
    Case("explorer cannot run a flow", "eve", "fl-nightly", "Execute", False, S.SITE_ROLE_CAP),
    Case("viewer can connect to a data source", "vic", "ds-sales", "Connect", True, S.GROUP_ALLOW),
    Case("viewer cannot download a data source", "vic", "ds-sales", "ExportXml", False, S.SITE_ROLE_CAP),
    # 2. Administrators.
    Case("site admin creator ignores a user deny", "ada", "wb-q3", "Read", True, S.ADMINISTRATOR,
         "allowed: ada is a site administrator (SiteAdministratorCreator)"),
    Case("server admin can delete", "stan", "wb-q3", "Delete", True, S.ADMINISTRATOR, "server administrator"),
    Case("site admin explorer can set permissions",
         "sam", "wb-q3", "ChangePermissions", True, S.ADMINISTRATOR),
    Case("site admin explorer is capped at its license",
         "sam", "fl-nightly", "WebAuthoringForFlows", False, S.SITE_ROLE_CAP,
         "license level (ExplorerCanPublish)"),
    Case("site admin creator can web edit flows",
         "ada", "fl-nightly", "WebAuthoringForFlows", True, S.ADMINISTRATOR),
    # 2. Project owner and project leader.
    Case("project owner", "pat", "wb-q3", "Delete", True, S.PROJECT_OWNER,
         "allowed: pat owns project 'Finance'"),
    Case("project owner of a parent project", "pat", "wb-plan", "Delete", True, S.PROJECT_OWNER,
         "pat owns project 'Finance' (which contains workbook 'Plan FY26')"),
    Case("project owner still capped by site role",
         "pat", "fl-nightly", "WebAuthoringForFlows", False, S.SITE_ROLE_CAP),
    Case("project leader by user rule", "lee", "wb-q3", "ChangePermissions", True, S.PROJECT_LEADER,
         "allowed: lee is the project leader of 'Finance'"),
    Case("project leader through a group", "gail", "wb-q3", "Delete", True, S.PROJECT_LEADER,
         "gail is the project leader of 'Finance' through group 'Finance Leads'"),
    Case("project leader of a parent project", "lee", "wb-plan", "Write", True, S.PROJECT_LEADER,
         "lee is the project leader of 'Finance' (which contains workbook 'Plan FY26')"),
    Case("group leader of a parent project", "gail", "wb-plan", "Delete", True, S.PROJECT_LEADER,
         "gail is the project leader of 'Finance' (which contains workbook 'Plan FY26') through group "
         "'Finance Leads'"),
    Case("leader of a nested project does not lead its parent",
         "nina", "wb-q3", "Read", False, S.UNSPECIFIED),
    Case("leader of a nested project leads its content", "nina", "wb-plan", "Delete", True, S.PROJECT_LEADER),
    Case("user deny on project leader beats the group's allow",
         "lena", "wb-q3", "Delete", False, S.UNSPECIFIED),
    Case("viewer is not made a project leader", "vera", "wb-q3", "Read", False, S.UNSPECIFIED),
    Case("project leader of the project itself", "lee", "p-finance", "Write", True, S.PROJECT_LEADER),
    Case("project leader capability on the project",
         "gail", "p-finance", "ProjectLeader", True, S.PROJECT_LEADER),
    Case("project owner on the project itself", "pat", "p-finance", "ProjectLeader", True, S.PROJECT_OWNER),
    Case("project read via group rule", "dana", "p-finance", "Read", True, S.GROUP_ALLOW),
    # 2. Content owner.
    Case("content owner ignores a user deny", "olga", "wb-q3", "Delete", True, S.CONTENT_OWNER,
         "allowed: olga owns workbook 'Q3 Forecast'"),
    Case("content owner sets permissions when not locked",
         "olga", "wb-q3", "ChangePermissions", True, S.CONTENT_OWNER),
    Case("content owner loses set permissions when locked",
         "olga", "wb-board", "ChangePermissions", False, S.UNSPECIFIED,
         "olga owns workbook 'Board Pack', but content owners cannot Set Permissions while its "
         "permissions are locked to project 'Board'"),
    Case("content owner keeps the rest when locked", "olga", "wb-board", "Delete", True, S.CONTENT_OWNER),
    # Locked projects: the project's rules govern, stale content rules don't count.
    Case("locked project template denies despite stale allow", "eve", "wb-board", "Read", False, S.GROUP_DENY,
         "group 'Contractors' denies View on workbook 'Board Pack' (permissions locked to project 'Board')"),
    Case("stale user allow on locked content is ignored",
         "eve", "wb-board", "ViewUnderlyingData", False, S.UNSPECIFIED),
    Case("locked project template allows", "ana", "wb-board", "ExportData", True, S.GROUP_ALLOW,
         "group 'Analysts' allows Download Summary Data on workbook 'Board Pack' (permissions locked"),
    Case("locked view follows the workbook template", "eve", "v-board", "Read", False, S.GROUP_DENY),
    Case("nested project under a lock follows the locking project",
         "ana", "wb-minutes", "Read", True, S.GROUP_ALLOW,
         "locked to project 'Board'"),
    Case("nested project under a lock ignores its own defaults",
         "eve", "wb-minutes", "Read", False, S.GROUP_DENY),
    Case("leader rules of a project governed by a locked parent are ignored",
         "dana", "wb-minutes", "Delete", False, S.UNSPECIFIED),
    Case("nested project itself follows the locking project's rules",
         "ana", "p-minutes", "Read", True, S.GROUP_ALLOW,
         "project 'Board Minutes' (permissions locked to project 'Board')"),
    Case("nested project itself ignores its stale rules", "eve", "p-minutes", "Read", True, S.GROUP_ALLOW,
         "group 'Analysts' allows View"),
    # LockedToProjectWithoutNested: direct content only.
    Case("without-nested locks direct content", "ana", "wb-ops", "Read", True, S.GROUP_ALLOW,
         "locked to project 'Ops'"),
    Case("without-nested leaves a managed nested project alone",
         "dana", "wb-sandbox", "Read", False, S.GROUP_DENY,
         "group 'Contractors' denies View on workbook 'Scratch'"),
    Case("nested project's own lock governs its content", "eve", "wb-archive", "Read", True, S.USER_RULE,
         "locked to project 'Ops Archive'"),
    Case("nested project's own lock ignores content rules",
         "ana", "wb-archive", "Read", False, S.UNSPECIFIED),
    Case("nested project under without-nested keeps its own rules",
         "dana", "p-sandbox", "Read", True, S.GROUP_ALLOW,
         "on project 'Ops Sandbox'"),
    # Views.
    Case("view with tabs is governed by the workbook",
         "eve", "v-summary", "ViewUnderlyingData", False, S.GROUP_DENY,
         "on workbook 'Q3 Forecast' (view 'Summary' inherits its workbook's permissions)"),
    Case("view with tabs: workbook user rule applies", "dana", "v-summary", "ExportData", False, S.USER_RULE),
    Case("view without tabs has its own rules", "eve", "v-detail", "ViewUnderlyingData", True, S.USER_RULE,
         "on view 'Detail'"),
    Case("view without tabs ignores the workbook", "ana", "v-detail", "Read", False, S.UNSPECIFIED),
    # Flows and data sources.
    Case("creator runs a flow by group rule", "dana", "fl-nightly", "Execute", True, S.GROUP_ALLOW),
    Case("creator web edits a flow by group rule",
         "dana", "fl-nightly", "WebAuthoringForFlows", True, S.GROUP_ALLOW),
    Case("data source unspecified", "dana", "ds-sales", "Write", False, S.UNSPECIFIED),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_resolution_order(site: Site, case: Case) -> None:
    decision = site.decide(case.user, case.content, case.capability)
    assert (decision.allowed, decision.step) == (case.allowed, case.step), decision.reason
    assert decision.capability == case.capability
    assert decision.ui_name == capability_spec(site.contents[case.content].kind, case.capability).ui_name
    assert decision.reason.startswith("allowed: " if case.allowed else "denied: ")
    if case.reason is not None:
        assert case.reason in decision.reason


def test_case_names_are_unique() -> None:
    assert len({c.name for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------------------------------
# All capabilities at once


@dataclass(frozen=True)
class AllCase:
    name: str
    user: str
    content: str
    step: DecidingStep | None  # every capability decided by this step (None: mixed)
    allowed: frozenset[str] | None  # exactly these capabilities allowed (None: all of them)


ALL_CASES = [
    AllCase("unlicensed gets nothing", "una", "wb-q3", S.SITE_ROLE_CAP, frozenset()),
    AllCase("admin gets everything", "ada", "wb-q3", S.ADMINISTRATOR, None),
    AllCase("server admin gets everything on a flow", "stan", "fl-nightly", S.ADMINISTRATOR, None),
    AllCase("content owner gets everything unlocked", "olga", "wb-q3", S.CONTENT_OWNER, None),
    AllCase("project owner gets everything", "pat", "wb-q3", S.PROJECT_OWNER, None),
    AllCase("project leader gets everything", "lee", "ds-sales", S.PROJECT_LEADER, None),
    AllCase(
        "group project leader gets everything on a parent's content",
        "gail",
        "wb-plan",
        S.PROJECT_LEADER,
        None,
    ),
    AllCase(
        "content owner in a locked project: all but set permissions",
        "olga",
        "wb-board",
        None,
        frozenset(s.name for s in CAPABILITIES[ContentKind.WORKBOOK]) - {"ChangePermissions"},
    ),
    AllCase(
        "viewer only gets what the role allows and rules grant",
        "vic",
        "wb-q3",
        None,
        frozenset({"Read", "ExportData"}),
    ),
]


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_effective_permissions(site: Site, case: AllCase) -> None:
    content = site.contents[case.content]
    user = site.users[case.user]
    decisions = effective_permissions(
        user, site.groups_of(user.id), content, site.governing(content), site.chain(content)
    )
    assert [d.capability for d in decisions] == [s.name for s in CAPABILITIES[content.kind]]
    expected = case.allowed if case.allowed is not None else {s.name for s in CAPABILITIES[content.kind]}
    assert {d.capability for d in decisions if d.allowed} == expected
    if case.step is not None:
        assert {d.step for d in decisions} == {case.step}


def test_sae_gets_admin_capabilities_capped_like_explorer_can_publish(site: Site) -> None:
    flow = site.contents["fl-nightly"]
    sam = site.users["sam"]
    decisions = {
        d.capability: d for d in effective_permissions(sam, [], flow, site.governing(flow), site.chain(flow))
    }
    assert {c for c, d in decisions.items() if not d.allowed} == {"WebAuthoringForFlows"}
    assert decisions["ChangePermissions"].step is S.ADMINISTRATOR


# --------------------------------------------------------------------------------------------------
# Which rule set governs


@pytest.mark.parametrize(
    ("content", "source", "source_id", "locked"),
    [
        ("wb-q3", RuleSource.CONTENT, "wb-q3", False),
        ("wb-plan", RuleSource.CONTENT, "wb-plan", False),
        ("wb-board", RuleSource.LOCKED_PROJECT, "p-board", True),
        ("wb-minutes", RuleSource.LOCKED_PROJECT, "p-board", True),
        ("p-minutes", RuleSource.LOCKED_PROJECT, "p-board", True),
        ("p-board", RuleSource.CONTENT, "p-board", False),
        ("wb-ops", RuleSource.LOCKED_PROJECT, "p-ops", True),
        ("wb-sandbox", RuleSource.CONTENT, "wb-sandbox", False),
        ("p-sandbox", RuleSource.CONTENT, "p-sandbox", False),
        ("wb-archive", RuleSource.LOCKED_PROJECT, "p-archive", True),
        ("v-summary", RuleSource.WORKBOOK, "wb-q3", False),
        ("v-detail", RuleSource.CONTENT, "v-detail", False),
        ("v-board", RuleSource.LOCKED_PROJECT, "p-board", True),
    ],
)
def test_governing_rules(site: Site, content: str, source: RuleSource, source_id: str, locked: bool) -> None:
    item = site.contents[content]
    governing = site.governing(item)
    assert (governing.source, governing.source_id, governing.locked) == (source, source_id, locked)
    assert governing.reason
    if source is RuleSource.LOCKED_PROJECT:
        project = site.projects[source_id]
        expected = (
            project.rules if item.kind is ContentKind.PROJECT else project.default_rules[ContentKind.WORKBOOK]
        )
        assert governing.rules == tuple(expected)
        assert governing.controlling_project_name == project.name
    elif source is RuleSource.WORKBOOK:
        assert governing.rules == tuple(site.rules[item.workbook.id])
    else:
        own = site.projects[item.id].rules if item.kind is ContentKind.PROJECT else tuple(site.rules[item.id])
        assert governing.rules == own


def test_governing_source_needs_no_rules_and_says_what_to_fetch(site: Site) -> None:
    board = site.contents["wb-board"]
    src = governing_source(board, site.chain(board))
    assert src.fetch == "GET /projects/p-board/default-permissions/workbooks"
    assert "LockedToProject" in src.reason
    q3 = site.contents["wb-q3"]
    assert governing_source(q3, site.chain(q3)).fetch == "GET /workbooks/wb-q3/permissions"


def test_locked_content_needs_no_content_rules(site: Site) -> None:
    board = site.contents["wb-board"]
    assert governing_rules(board, None, site.chain(board)).source is RuleSource.LOCKED_PROJECT


@pytest.mark.parametrize(
    ("content", "content_rules", "workbook_rules", "fetch"),
    [
        ("wb-q3", None, None, "GET /workbooks/wb-q3/permissions"),
        ("v-summary", [], None, "GET /workbooks/wb-q3/permissions"),
        ("wb-ops", [], None, None),  # Ops has a workbook template: fine
    ],
)
def test_missing_governing_rules(site: Site, content, content_rules, workbook_rules, fetch) -> None:
    item = site.contents[content]
    if fetch is None:
        governing_rules(item, content_rules, site.chain(item), workbook_rules)
        return
    with pytest.raises(MissingRulesError) as err:
        governing_rules(item, content_rules, site.chain(item), workbook_rules)
    assert err.value.fetch == fetch


def test_missing_project_template_is_reported(site: Site) -> None:
    flow = Content(kind="flow", id="fl-board", name="Board Flow", project_id="p-board")
    with pytest.raises(MissingRulesError, match="default flow permissions of project 'Board'") as err:
        governing_rules(flow, [], site.chain(flow))
    assert err.value.fetch == "GET /projects/p-board/default-permissions/flows"


def test_governing_rules_must_belong_to_the_content(site: Site) -> None:
    q3, plan = site.contents["wb-q3"], site.contents["wb-plan"]
    with pytest.raises(ValueError, match="governing rules are for workbook 'wb-plan'"):
        effective_capability(site.users["dana"], [], q3, site.governing(plan), site.chain(q3), "Read")


@pytest.mark.parametrize(
    ("content", "chain_ids", "message"),
    [
        ("wb-plan", ["p-finance"], "must start with the project of workbook 'Plan FY26'"),
        ("wb-plan", ["p-forecasts"], "parent 'p-finance' is missing"),
        ("wb-plan", [], "must start with the project"),
        ("p-forecasts", ["p-finance"], "must start with the project itself"),
        ("wb-plan", ["p-forecasts", "p-board"], "the parent of 'Forecasts' is 'p-finance'"),
        ("wb-q3", ["p-finance", "p-board"], "top-level but project_chain goes on"),
    ],
)
def test_bad_project_chains_are_rejected(
    site: Site, content: str, chain_ids: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        governing_source(site.contents[content], [site.projects[p] for p in chain_ids])


def test_unknown_capability_is_rejected(site: Site) -> None:
    with pytest.raises(ValueError, match="view has no capability 'Write'"):
        site.decide("dana", "v-detail", "Write")
    with pytest.raises(ValueError, match="no capability 'InheritedProjectLeader'"):
        site.decide("dana", "p-finance", "InheritedProjectLeader")


def test_models_reject_inconsistent_input() -> None:
    with pytest.raises(ValueError, match="a view needs its workbook"):
        Content(kind="view", id="v", name="v")
    with pytest.raises(ValueError, match="only views have a workbook"):
        Content(kind="workbook", id="w", name="w", workbook=WorkbookRef(id="x", name="x", show_tabs=True))
    with pytest.raises(ValueError):
        User(id="u", name="u", site_role="Publisher")
    with pytest.raises(ValueError, match="default_rules keys"):
        ProjectNode(id="p", name="p", parent_id=None, default_rules={"view": []})


# --------------------------------------------------------------------------------------------------
# who_has


def groups_with_members(site: Site) -> list[GroupWithMembers]:
    return [
        GroupWithMembers(id=g.id, name=g.name, member_ids=frozenset(site.members[g.id]))
        for g in site.groups.values()
    ]


@pytest.mark.parametrize(
    ("content", "capability", "expected"),
    [
        # Contractors and Temps deny; dana's user Allow wins; viewers are capped; Finance owner and leaders,
        # admins and the content owner have it without rules; lena's leadership is denied.
        ("wb-q3", "ViewUnderlyingData", {"dana", "ana", "ada", "sam", "stan", "olga", "pat", "lee", "gail"}),
        (
            "wb-q3",
            "Read",
            {"dana", "eve", "ana", "vic", "tom", "ada", "sam", "stan", "olga", "pat", "lee", "gail"},
        ),
        ("wb-board", "Read", {"ana", "vic", "ada", "sam", "stan", "olga"}),
        ("fl-nightly", "WebAuthoringForFlows", {"dana", "tom", "ada", "stan", "lee", "gail"}),
        ("p-finance", "ProjectLeader", {"ada", "sam", "stan", "pat", "lee", "gail"}),
    ],
)
def test_who_has(site: Site, content: str, capability: str, expected: set[str]) -> None:
    item = site.contents[content]
    holders = who_has(
        capability,
        item,
        site.governing(item),
        list(site.users.values()),
        groups_with_members(site),
        site.chain(item),
    )
    assert {u.name for u, _ in holders} == expected
    assert all(d.allowed and d.capability == capability for _, d in holders)
    # Input order is kept.
    order = [u.name for u in site.users.values() if u.name in expected]
    assert [u.name for u, _ in holders] == order


def test_who_has_matches_per_user_resolution(site: Site) -> None:
    for key in ("wb-q3", "wb-board", "v-summary", "wb-minutes", "p-finance", "ds-sales"):
        item = site.contents[key]
        governing, chain = site.governing(item), site.chain(item)
        for spec in CAPABILITIES[item.kind]:
            rows = who_has(
                spec.name,
                item,
                governing,
                list(site.users.values()),
                groups_with_members(site),
                chain,
                include_denied=True,
            )
            assert len(rows) == len(site.users)
            for user, decision in rows:
                assert decision == effective_capability(
                    user, site.groups_of(user.id), item, governing, chain, spec.name
                ), (key, spec.name, user.name)


def test_who_has_names_the_denying_group(site: Site) -> None:
    q3 = site.contents["wb-q3"]
    rows = {
        u.name: d
        for u, d in who_has(
            "ViewUnderlyingData",
            q3,
            site.governing(q3),
            list(site.users.values()),
            groups_with_members(site),
            site.chain(q3),
            include_denied=True,
        )
    }
    assert (
        rows["eve"].reason
        == "denied: group 'Contractors' denies Download Full Data on workbook 'Q3 Forecast'"
    )
    assert rows["eve"].via == ("g-contractors",)


def test_who_has_scales_with_users_not_rules() -> None:
    # 20k users in one allowing group: the answer is built in one pass.
    project = ProjectNode(id="p", name="P", parent_id=None)
    wb = Content(kind="workbook", id="w", name="W", project_id="p")
    users = [User(id=f"u{i}", name=f"user{i}", site_role="Viewer") for i in range(20_000)]
    big = GroupWithMembers(id="g", name="Everyone", member_ids=frozenset(u.id for u in users))
    idle = GroupWithMembers(id="idle", name="No rules", member_ids=frozenset(u.id for u in users))
    rules = allow("group", "g", "Read") + deny("user", "u7", "Read")
    holders = who_has("Read", wb, governing_rules(wb, rules, [project]), users, [big, idle], [project])
    assert len(holders) == 19_999
    assert "u7" not in {u.id for u, _ in holders}


# --------------------------------------------------------------------------------------------------
# Catalog and site-role table


def test_every_capability_has_a_ui_name_and_a_site_role_entry() -> None:
    assert set(CAPABILITIES) == set(ContentKind) == set(SITE_ROLE_MAXIMUMS)
    for kind, specs in CAPABILITIES.items():
        names = [s.name for s in specs]
        assert len(names) == len(set(names)), kind
        assert set(names) == set(SITE_ROLE_MAXIMUMS[kind]), kind
        for spec in specs:
            assert spec.ui_name.strip(), (kind, spec.name)
            roles = SITE_ROLE_MAXIMUMS[kind][spec.name]
            assert roles, (kind, spec.name)
            assert SiteRole.CREATOR in roles, (kind, spec.name)  # Creator is the widest licence
            assert not roles & ({SiteRole.UNLICENSED} | set(LICENSE_LEVEL_ROLE)), (kind, spec.name)


def test_catalog_matches_the_emulator() -> None:
    from emulator.handlers.permissions import CAPABILITIES as EMULATED

    for kind, specs in CAPABILITIES.items():
        assert {s.name for s in specs} == set(EMULATED[f"{kind.value}s"]), kind


@pytest.mark.parametrize(
    ("kind", "capability", "role", "permitted"),
    [
        ("project", "Read", "Viewer", True),
        ("project", "Write", "Explorer", False),
        ("project", "Write", "ExplorerCanPublish", True),
        ("workbook", "ExportImage", "Viewer", True),
        ("workbook", "ExportData", "Viewer", True),
        ("workbook", "ViewUnderlyingData", "Viewer", False),
        ("workbook", "ViewUnderlyingData", "Explorer", True),
        ("workbook", "ShareView", "Viewer", False),
        ("workbook", "ExportXml", "Explorer", True),
        ("workbook", "Write", "Explorer", False),
        ("workbook", "ChangeHierarchy", "Explorer", False),
        ("workbook", "ChangePermissions", "ExplorerCanPublish", True),
        ("datasource", "Connect", "Viewer", True),
        ("datasource", "ExportXml", "Viewer", False),
        ("datasource", "Delete", "Explorer", False),
        ("flow", "Read", "Viewer", True),
        ("flow", "ExportXml", "Explorer", True),
        ("flow", "Execute", "Explorer", False),
        ("flow", "Execute", "ExplorerCanPublish", True),
        ("flow", "Write", "ExplorerCanPublish", True),
        ("flow", "WebAuthoringForFlows", "SiteAdministratorExplorer", False),
        ("flow", "WebAuthoringForFlows", "ServerAdministrator", True),
        ("view", "Read", "Unlicensed", False),
        ("workbook", "Read", "Unlicensed", False),
        ("workbook", "ChangePermissions", "SiteAdministratorExplorer", True),
    ],
)
def test_site_role_maximums_follow_the_reference_table(kind, capability, role, permitted) -> None:
    assert site_role_permits(role, kind, capability) is permitted
