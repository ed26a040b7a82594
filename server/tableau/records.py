"""What the access layer returns: small, frozen pydantic models with no TSC types in them.

All datetimes are timezone-aware UTC (or None when Tableau did not say). Ids are Tableau LUIDs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

ContentKind = Literal["workbook", "view", "datasource", "flow", "project"]
CONTENT_KINDS: tuple[ContentKind, ...] = ("workbook", "view", "datasource", "flow", "project")
CapabilityMode = Literal["Allow", "Deny"]
JobStatus = Literal["Pending", "InProgress", "Success", "Failed", "Cancelled"]


def _utc(value: datetime) -> datetime:
    # TSC attaches its own UTC tzinfo class; normalise to datetime.UTC (naive means UTC).
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


def parse_utc(value: str | None) -> datetime | None:
    """Tableau's ISO 8601 time ("2024-05-01T10:00:00Z") as an aware UTC datetime; None if absent or unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 reads the trailing "Z"
    except ValueError:
        return None
    if parsed.tzinfo is UTC:  # Tableau's "…Z": already what records hold (half the cost of astimezone)
        return parsed
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class ServerInfo(_Record):
    """The server, the negotiated API version, the site and the signed-in user."""

    server_url: str
    product_version: str | None = None
    build: str | None = None
    api_version: str = Field(description="The REST API version every request uses (negotiated or pinned).")
    server_api_version: str | None = Field(None, description="The highest REST API version the server offers.")
    site_id: str
    site_name: str | None = None
    site_content_url: str = ""
    user_id: str
    user_name: str | None = None
    user_site_role: str | None = None


class SiteIdentity(_Record):
    """Which Tableau server and site a session is on: the server URL, the site's content URL and the site
    id (LUID) Tableau returned at sign-in. Approval requests are bound to it."""

    server_url: str
    content_url: str
    site_id: str


class ContentRecord(_Record):
    """One workbook, view, datasource, flow or project, with owner and project names already resolved.

    Fields that do not apply to a kind are None (e.g. `workbook_name` is only set for views,
    `parent_project_id`/`content_permissions` only for projects; for a project `project_id` is None).
    """

    kind: ContentKind
    id: str
    name: str
    content_url: str | None = None
    webpage_url: str | None = None
    description: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    owner_id: str | None = None
    owner_name: str | None = Field(None, description="The owner's sign-in name.")
    owner_email: str | None = None
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None
    tags: tuple[str, ...] = ()
    # workbooks and datasources
    size: int | None = Field(None, description="Size in MB, as Tableau reports it (workbooks, datasources).")
    has_extracts: bool | None = None
    # workbooks
    show_tabs: bool | None = None
    sheet_count: int | None = None
    default_view_id: str | None = None
    # views
    workbook_id: str | None = None
    workbook_name: str | None = None
    sheet_type: str | None = None
    total_view_count: int | None = Field(None, description="For views: all-time view count (usage statistics).")
    # datasources
    type: str | None = Field(None, description="For datasources: the connection type, e.g. 'snowflake'.")
    is_certified: bool | None = None
    # projects
    parent_project_id: str | None = None
    content_permissions: str | None = Field(
        None, description="For projects: ManagedByOwner, LockedToProject or LockedToProjectWithoutNested."
    )


class OwnedRecord(NamedTuple):
    """A content item as `LEAN_FIELDS` reads it: what it is, who owns it, where it lives, when it changed.

    For listings of a whole site that only count, group and filter (find_owners, ownership transfers,
    what a user owns): a plain tuple builds in a fifteenth of a validated ContentRecord's time, which
    on 20,000 workbooks is most of the client's CPU. It has the attributes those callers read under
    the same names as ContentRecord, and is only ever built from the access layer's own parsed values.
    `updated` is Tableau's text, parsed only when a caller reads `updated_at` (a date filter): most
    listings never do, and 20,000 parses are a tenth of the reader's time.
    """

    kind: ContentKind
    id: str
    name: str
    project_id: str | None
    owner_id: str | None
    updated: str | None
    tags: tuple[str, ...] = ()

    @property
    def updated_at(self) -> datetime | None:
        return parse_utc(self.updated)


class ProjectNode(_Record):
    id: str
    name: str
    parent_id: str | None = None
    path: str = Field(description="Full path from the top level, e.g. 'Sales/EMEA'.")
    content_permissions: str | None = Field(None, description="Lock mode.")
    owner_id: str | None = None
    description: str | None = None


class ProjectTree(_Record):
    """Every project on the site by id, with full paths. Cached briefly by the client."""

    nodes: dict[str, ProjectNode] = Field(default_factory=dict)

    def get(self, project_id: str | None) -> ProjectNode | None:
        return self.nodes.get(project_id) if project_id else None

    def path_of(self, project_id: str | None) -> str | None:
        """'Sales/EMEA' for a project id; None when the id is None or unknown."""
        node = self.get(project_id)
        return node.path if node else None

    def paths(self) -> dict[str, str]:
        """id → full path for every project."""
        return {pid: node.path for pid, node in self.nodes.items()}

    def by_path(self, path: str) -> ProjectNode | None:
        """The project at `path` (case-insensitive, surrounding slashes ignored)."""
        wanted = path.strip("/").lower()
        for node in self.nodes.values():
            if node.path.lower() == wanted:
                return node
        return None

    def children(self, project_id: str | None) -> list[ProjectNode]:
        """Direct sub-projects of `project_id` (None: the top-level projects)."""
        return [n for n in self.nodes.values() if n.parent_id == project_id]

    def ancestors(self, project_id: str) -> list[ProjectNode]:
        """The project's chain from itself up to its top-level project (itself first)."""
        chain: list[ProjectNode] = []
        current = self.get(project_id)
        while current is not None and current not in chain:
            chain.append(current)
            current = self.get(current.parent_id)
        return chain


class UserRecord(_Record):
    id: str
    name: str = Field(description="Sign-in name.")
    full_name: str | None = None
    email: str | None = None
    site_role: str | None = None
    last_login: UtcDatetime | None = None
    auth_setting: str | None = None
    domain_name: str | None = None
    locale: str | None = None


class UserFacts(NamedTuple):
    """Who a user is and whether they are active: what `USER_FACT_FIELDS` reads, for callers that look up
    thousands of owners (find_owners). A plain tuple, with the attributes of UserRecord it carries;
    `last_login` is parsed from Tableau's text when read (most of a site's users are never looked at)."""

    id: str
    name: str
    full_name: str | None
    email: str | None
    site_role: str | None
    last_login_text: str | None

    @property
    def last_login(self) -> datetime | None:
        return parse_utc(self.last_login_text)


class GroupRecord(_Record):
    id: str
    name: str
    user_count: int | None = None
    minimum_site_role: str | None = Field(None, description="Grant-license-on-sign-in role, if any.")
    domain_name: str | None = None


class PermissionRule(_Record):
    """One grantee's explicit capabilities on one item (a `<granteeCapabilities>` block)."""

    grantee_kind: Literal["user", "group", "groupSet"]
    grantee_id: str
    capabilities: dict[str, CapabilityMode]


class RefreshStarted(_Record):
    job_id: str
    already_queued: bool = Field(
        description="True when Tableau said a refresh was already queued (409093) and this is that job."
    )
    kind: Literal["workbook", "datasource"]
    target_id: str


class JobRecord(_Record):
    """A background job. From `get_job` every field Tableau reports is set; from `list_jobs`, Tableau's
    job list does not include progress, finish code, notes or the target's id (`target_name` is the
    job's subtitle there)."""

    id: str
    status: JobStatus | str
    job_type: str | None = Field(None, description="refresh_extracts, increment_extracts, run_flow, ...")
    progress: int | None = None
    created_at: UtcDatetime | None = None
    started_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None
    finish_code: int | None = Field(None, description="0 success, 1 failed, 2 cancelled, 3 completed; None while running.")
    notes: str | None = None
    target_kind: Literal["workbook", "datasource", "flow"] | None = None
    target_id: str | None = None
    target_name: str | None = None
    priority: int | None = None
    title: str | None = None

    @property
    def done(self) -> bool:
        return self.completed_at is not None


class JobTarget(_Record):
    """What a job can work on: an extract-bearing workbook or data source, or a flow."""

    kind: Literal["workbook", "datasource", "flow"]
    id: str
    name: str
    project_id: str | None = None


class ScheduleRecord(_Record):
    """A schedule as a task carries it (Tableau Cloud has no schedule list of its own)."""

    id: str | None = None
    name: str | None = None
    state: str | None = None
    frequency: str | None = Field(None, description="Hourly, Daily, Weekly or Monthly.")
    next_run_at: UtcDatetime | None = None
    start_time: str | None = Field(None, description="HH:MM:SS, the schedule's time zone's wall clock.")
    end_time: str | None = None
    interval: str | None = Field(None, description="e.g. 'every 4 hours', 'Monday, Thursday', 'day 1'.")
    priority: int | None = None


class TaskRecord(_Record):
    """An extract-refresh task: what it refreshes, on which schedule, and how it has been going."""

    id: str
    refresh_type: str = Field(description="full or incremental")
    target_kind: Literal["workbook", "datasource"] | None = None
    target_id: str | None = None
    schedule: ScheduleRecord | None = None
    consecutive_failures: int = 0
    priority: int | None = None
    last_run_at: UtcDatetime | None = None


class JobList(list[JobRecord]):
    """The jobs `list_jobs` returned (a plain list) plus `total`: how many jobs matched on the server."""

    def __init__(self, jobs: list[JobRecord] | None = None, total: int | None = None) -> None:
        super().__init__(jobs or [])
        self.total = len(self) if total is None else total

    def __repr__(self) -> str:
        return f"JobList({list.__repr__(self)}, total={self.total})"


# Query Jobs gives a status but no finish code; the status says which one Query Job would give.
FINISH_CODES = {"Success": 0, "Failed": 1, "Cancelled": 2}


def listed_job(
    *, id: str, status: str | None, job_type: str | None, created_at: datetime | None, started_at: datetime | None,
    ended_at: datetime | None, subtitle: str | None, priority: int | None, title: str | None,
) -> JobRecord:
    """A job as Query Jobs lists it, whichever reader parsed the page (XML through TSC, or JSON)."""
    status = status or "Pending"
    return JobRecord(
        id=id,
        status=status,
        job_type=job_type,
        created_at=created_at,
        started_at=started_at,
        completed_at=ended_at,
        finish_code=FINISH_CODES.get(status) if ended_at is not None else None,
        target_kind="flow" if job_type == "run_flow" else None,
        target_name=subtitle,
        priority=priority,
        title=title,
    )
