"""The emulated site's state: plain dataclasses held in memory.

This module is the contract between the data generator (which fills a `SiteState`)
and the HTTP layer (which reads and mutates it). It holds no HTTP or XML concerns.
All datetimes are timezone-aware UTC; all ids are UUID strings.
"""

from __future__ import annotations

import itertools
import uuid
import weakref
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from typing import Any, Self

SITE_ROLES = (
    "Creator",
    "Explorer",
    "ExplorerCanPublish",
    "SiteAdministratorCreator",
    "SiteAdministratorExplorer",
    "Viewer",
    "Unlicensed",
    "ServerAdministrator",
)
ADMIN_ROLES = frozenset({"SiteAdministratorCreator", "SiteAdministratorExplorer", "ServerAdministrator"})

LOCK_MODES = ("ManagedByOwner", "LockedToProject", "LockedToProjectWithoutNested")

# Content kinds that carry permissions, as they appear in REST paths.
PERMISSION_RESOURCES = ("projects", "workbooks", "datasources", "views", "flows")
# Content types a project's default permissions are kept for (REST path segment).
DEFAULT_PERMISSION_TYPES = (
    "workbooks",
    "datasources",
    "flows",
    "lenses",
    "metrics",
    "dataroles",
    "virtualConnections",
    "databases",
    "tables",
)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def new_id(rng: Random | None = None) -> str:
    """A UUID; deterministic when the generator passes its seeded Random."""
    if rng is None:
        return str(uuid.uuid4())
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# -- change stamps ------------------------------------------------------------------------------------
# Every attribute set on a model object and every insert or delete in a SiteState collection stores a
# fresh stamp, so a cache (the sort orders in `query.py`) can tell in O(1) that nothing it was
# computed from changed since, whoever changed it: a request, the job clock, a test reaching into
# the model. Stamps are drawn from one counter (`next` is atomic under the GIL) and each is stored
# once, so a stamp once read never comes back. What a stamp cannot see: sets and lists changed in
# place (`wb.tags.add`, `wb.view_ids.append`), and dict-valued entries changed in place (permission
# rules); the sort fields that read those are declared `volatile` in `tables.py` and never cached.
# Jobs are stamped apart: the job clock changes running jobs on every request, and no list but the
# jobs list reads a job, so a running refresh does not void the workbooks' order.
_TICKS = itertools.count(1)
_STAMPS = [0, 0]  # [every model object and collection but jobs, jobs]
_SITE, _JOBS = 0, 1


def stamp(kind: type) -> Hashable:
    """What changes whenever anything a list of `kind` items can be filtered or sorted by may have changed."""
    return (_STAMPS[_SITE], _STAMPS[_JOBS]) if kind is Job else _STAMPS[_SITE]


class _Stamped:
    """Base of the model dataclasses: every attribute set stamps a change (after the value is set)."""

    __slots__ = ()
    _stamp_slot = _SITE

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        _STAMPS[self._stamp_slot] = next(_TICKS)


class Listing(list):
    """Every value of a `Collection`, in its order, when listed: a sorted order computed from it stays
    valid for another listing of the same collection while the stamp has not changed (`query.py`).
    Shared by every list request until the next change: never change one."""

    __slots__ = ("source",)

    def __init__(self, source: Collection) -> None:
        super().__init__(source.values())
        self.source = source


# The last listing of each collection and the stamp it was made at, by id(collection); the weak
# reference tells a live collection from a new one at a reused id. Kept outside the collection so
# copies and pickles of a site never carry a listing of the original's objects.
_LISTINGS: dict[int, tuple[weakref.ref, Hashable, Listing]] = {}


class Collection(dict):
    """A SiteState collection: a dict whose inserts and deletes stamp a change (reads stay plain dict reads)."""

    _stamp_slot = _SITE

    def listing(self) -> Listing:
        """The values as a `Listing`: the same one while nothing changed (20,000 items are not copied
        for every page of a big collection)."""
        stamp = _STAMPS[self._stamp_slot]
        found = _LISTINGS.get(id(self))
        if found is not None and found[0]() is self and found[1] == stamp:
            return found[2]
        listing = Listing(self)
        if len(_LISTINGS) > 64:  # collections of sites long gone
            _LISTINGS.clear()
        _LISTINGS[id(self)] = (weakref.ref(self), stamp, listing)
        return listing

    def _changed(self) -> None:
        _STAMPS[self._stamp_slot] = next(_TICKS)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._changed()

    def __ior__(self, other: Any) -> Self:
        super().__ior__(other)
        self._changed()
        return self

    def pop(self, *args: Any) -> Any:
        try:
            return super().pop(*args)
        finally:
            self._changed()

    def popitem(self) -> tuple[Any, Any]:
        try:
            return super().popitem()
        finally:
            self._changed()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        try:
            return super().setdefault(key, default)
        finally:
            self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def clear(self) -> None:
        super().clear()
        self._changed()


class JobCollection(Collection):
    _stamp_slot = _JOBS


@dataclass
class User(_Stamped):
    id: str
    name: str  # the sign-in name, usually an email address on Cloud
    full_name: str
    email: str
    site_role: str
    created_at: datetime
    last_login: datetime | None = None  # None: never signed in
    auth_setting: str = "ServerDefault"
    locale: str | None = None
    password: str | None = None  # for user name + password sign-in; never serialized


@dataclass
class Group(_Stamped):
    id: str
    name: str
    minimum_site_role: str | None = None
    domain_name: str = "local"
    member_ids: set[str] = field(default_factory=set)


@dataclass
class Project(_Stamped):
    id: str
    name: str
    owner_id: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    parent_id: str | None = None
    content_permissions: str = "ManagedByOwner"  # one of LOCK_MODES


@dataclass
class Connection(_Stamped):
    id: str
    type: str  # e.g. "postgres", "snowflake", "excel-direct", "sqlproxy"
    server_address: str = ""
    server_port: str = ""
    username: str = ""
    embed_password: bool = False
    datasource_id: str | None = None  # a workbook connection to a published datasource


@dataclass
class View(_Stamped):
    id: str
    name: str
    content_url: str
    workbook_id: str
    owner_id: str
    created_at: datetime
    updated_at: datetime
    sheet_type: str = "worksheet"  # worksheet | dashboard | story
    view_url_name: str = ""
    total_view_count: int = 0
    tags: set[str] = field(default_factory=set)


@dataclass
class Workbook(_Stamped):
    id: str
    name: str
    content_url: str
    project_id: str
    owner_id: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    size: int = 1  # megabytes, as Tableau reports it
    show_tabs: bool = True
    has_extracts: bool = False
    tags: set[str] = field(default_factory=set)
    view_ids: list[str] = field(default_factory=list)  # ordered; the first is the default view
    connections: list[Connection] = field(default_factory=list)
    # When set, every extract refresh of this workbook fails with this reason.
    refresh_failure: str | None = None
    # Seconds (simulated) an extract refresh of this item takes.
    refresh_seconds: float = 20.0


@dataclass
class Datasource(_Stamped):
    id: str
    name: str
    content_url: str
    project_id: str
    owner_id: str
    created_at: datetime
    updated_at: datetime
    type: str = "postgres"  # connection type of the datasource, e.g. "hyper", "snowflake"
    description: str = ""
    size: int = 1
    has_extracts: bool = False
    is_certified: bool = False
    certification_note: str = ""
    encrypt_extracts: bool = False
    tags: set[str] = field(default_factory=set)
    connections: list[Connection] = field(default_factory=list)
    refresh_failure: str | None = None
    refresh_seconds: float = 20.0


@dataclass
class Flow(_Stamped):
    id: str
    name: str
    project_id: str
    owner_id: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    tags: set[str] = field(default_factory=set)


@dataclass
class Schedule(_Stamped):
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    frequency: str = "Daily"  # Hourly | Daily | Weekly | Monthly
    start_time: str = "04:00:00"  # HH:MM:SS
    end_time: str | None = None
    interval_hours: int | None = None  # for Hourly: one of 1, 2, 4, 6, 8, 12
    week_days: list[str] = field(default_factory=list)  # for Weekly
    state: str = "Active"
    priority: int = 50
    type: str = "Extract"
    execution_order: str = "Parallel"
    next_run_at: datetime | None = None


@dataclass
class ExtractRefreshTask(_Stamped):
    id: str
    schedule_id: str
    target_kind: str  # "workbook" | "datasource"
    target_id: str
    refresh_type: str = "FullRefresh"  # FullRefresh | IncrementalRefresh
    priority: int = 50
    consecutive_failed_count: int = 0


@dataclass
class Job(_Stamped):
    """A background job. Its visible state is derived from the simulated clock by the jobs module.

    `finish_code` and `completed_at` are set only once the job is done (0 success, 1 failed,
    2 cancelled). `failure` holds the reason a refresh will fail, decided when the job is created.
    """

    _stamp_slot = _JOBS  # stamped apart (see `stamp`)

    id: str
    job_type: str  # refresh_extracts | increment_extracts | run_flow
    target_kind: str  # "workbook" | "datasource"
    target_id: str
    target_name: str
    created_at: datetime
    queue_seconds: float = 1.0  # simulated seconds spent Pending
    run_seconds: float = 20.0  # simulated seconds spent InProgress
    failure: str | None = None
    priority: int = 50
    started_at: datetime | None = None
    completed_at: datetime | None = None
    finish_code: int | None = None
    progress: int = 0
    status: str = "Pending"  # Pending | InProgress | Success | Failed | Cancelled
    notes: str = ""
    elapsed: float = 0.0  # simulated seconds since creation (advanced by the jobs module)
    task_id: str | None = None


@dataclass
class PersonalAccessToken(_Stamped):
    name: str
    secret: str
    user_id: str


@dataclass
class ConnectedApp(_Stamped):
    client_id: str
    secret_id: str
    secret_value: str
    enabled: bool = True


# Permission rules: grantee key is ("user" | "group", id); value maps capability name -> "Allow" | "Deny".
GranteeKey = tuple[str, str]
Rules = dict[GranteeKey, dict[str, str]]


@dataclass
class SiteState(_Stamped):
    id: str
    name: str
    content_url: str
    created_at: datetime
    run_now_enabled: bool = True
    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    workbooks: dict[str, Workbook] = field(default_factory=dict)
    views: dict[str, View] = field(default_factory=dict)
    datasources: dict[str, Datasource] = field(default_factory=dict)
    flows: dict[str, Flow] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    tasks: dict[str, ExtractRefreshTask] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    # (resource kind from PERMISSION_RESOURCES, resource id) -> rules
    permissions: dict[tuple[str, str], Rules] = field(default_factory=dict)
    # (project id, content type from DEFAULT_PERMISSION_TYPES) -> rules
    default_permissions: dict[tuple[str, str], Rules] = field(default_factory=dict)
    pats: dict[str, PersonalAccessToken] = field(default_factory=dict)  # by token name
    connected_apps: dict[str, ConnectedApp] = field(default_factory=dict)  # by client id

    def __setattr__(self, name: str, value: object) -> None:
        # Every collection is stamped, also one assigned whole (`state.workbooks = {...}`).
        if type(value) is dict:
            value = (JobCollection if name == "jobs" else Collection)(value)
        super().__setattr__(name, value)

    def groups_of(self, user_id: str) -> list[Group]:
        return [g for g in self.groups.values() if user_id in g.member_ids]

    def user_by_name(self, name: str) -> User | None:
        lowered = name.lower()
        for user in self.users.values():
            if user.name.lower() == lowered:
                return user
        return None

    def site_admin(self) -> User:
        """The first site administrator: the owner of PATs created without a user name."""
        for user in self.users.values():
            if user.site_role in ADMIN_ROLES:
                return user
        raise LookupError("the site has no administrator")

    def project_path(self, project_id: str) -> str:
        parts: list[str] = []
        current: str | None = project_id
        while current is not None:
            project = self.projects[current]
            parts.append(project.name)
            current = project.parent_id
        return "/".join(reversed(parts))
