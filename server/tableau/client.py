"""`TableauClient`: the async API the tools use. The only code that calls tableauserverclient.

    async with TableauClient(settings) as client:
        async with client.operation("call_123") as op_id:
            workbooks = await client.list_content("workbook", filters=[("projectName", "eq", "Sales")])

One TSC `Server` is shared by all concurrent work: it signs in once at `connect()` (negotiating the
REST API version the way TSC's `use_server_version` does), signs in again at most once per expiry
(single-flight) when Tableau answers 401, and signs out at `close()`. Blocking TSC calls run in
worker threads (`anyio.to_thread.run_sync`), never on the event loop. Every HTTP request goes
through `transport.StewardSession` (rate limit, concurrency limit, timeout, retries, observers).

Listings fetch page 1 with `Settings.page_size` (1000) items, learn `totalAvailable`, then fetch
the remaining pages concurrently, asking for owner/project/workbook names in the same calls with
`fields`, with a stable sort (createdAt, then name), and drop duplicates by id.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from operator import attrgetter
from typing import Any, Self, TypeVar
from urllib.parse import quote_plus, urlencode

import anyio
import anyio.to_thread
import tableauserverclient as TSC
from defusedxml.ElementTree import fromstring
from packaging.version import InvalidVersion, Version
from tableauserverclient.server.endpoint.endpoint import Endpoint
from tableauserverclient.server.endpoint.exceptions import ServerResponseError
from tableauserverclient.server.exceptions import EndpointUnavailableError, ServerInfoEndpointNotFoundError

from server.config import Settings

from . import json_pages
from .auth import tsc_credentials
from .errors import (
    BadConfiguration,
    Conflict,
    Context,
    InvalidRequest,
    NotFound,
    TableauError,
    first_error,
    short_id,
    translate,
)
from .parsing import content_page, group_page, owned_page, user_facts_page, user_page
from .records import (
    CONTENT_KINDS,
    ContentKind,
    ContentRecord,
    GroupRecord,
    JobList,
    JobRecord,
    JobTarget,
    PermissionRule,
    ProjectNode,
    ProjectTree,
    RefreshStarted,
    ScheduleRecord,
    ServerInfo,
    SiteIdentity,
    TaskRecord,
    UserFacts,
    UserRecord,
    listed_job,
)
from .transport import OPERATION_ID, Observer, Transport

log = logging.getLogger(__name__)

T = TypeVar("T")

# A filter is (field, operator, value): ("name", "eq", "Sales"), ("createdAt", "gte", datetime(...)),
# ("tags", "in", ["a", "b"]). Field names are Tableau's camelCase filter fields.
Filter = tuple[str, str, Any]
# A sort key is "field:asc|desc" or (field, "asc"|"desc").
SortKey = str | tuple[str, str]

FILTER_OPERATORS = frozenset({"eq", "gt", "gte", "lt", "lte", "in", "has", "cieq"})

_OWNER_FIELDS = ("owner.name", "owner.email")
# The `fields` expression per kind: Tableau's default attributes plus the names we'd otherwise look up.
LIST_FIELDS: dict[str, tuple[str, ...]] = {
    "workbook": ("_default_", *_OWNER_FIELDS, "project.name"),
    "view": ("_default_", *_OWNER_FIELDS, "project.name", "workbook.name"),
    "datasource": ("_default_", *_OWNER_FIELDS, "project.name"),
    "flow": ("_default_", *_OWNER_FIELDS, "project.name"),
    "project": ("_default_", *_OWNER_FIELDS),
}
# Just what an ownership count needs (who owns what, where, and when it changed): Tableau's field
# expressions take plain attribute names and nested ids (tableau-semantics §1.3); the sort by
# createdAt works without sending it. Flows are not on the list of endpoints that take `fields`, so
# they keep LIST_FIELDS.
LEAN_FIELDS: tuple[str, ...] = ("id", "name", "updatedAt", "project.id", "owner.id")
LEAN_KINDS = frozenset({"workbook", "view", "datasource"})
# A stable order, so concurrently fetched pages of a site that is not changing never overlap.
CONTENT_SORT: tuple[str, ...] = ("createdAt:asc", "name:asc")
DIRECTORY_SORT: tuple[str, ...] = ("name:asc",)
# Who a user is and whether they are active (UserFacts), listed explicitly: tableau-mcp found that some
# sites leave lastLogin out of the default users reply (tableau-semantics §1.3).
USER_FACT_FIELDS: tuple[str, ...] = ("id", "name", "fullName", "email", "siteRole", "lastLogin")
JOB_SORT: tuple[str, ...] = ("createdAt:desc",)

_ENDPOINTS = {
    "workbook": "workbooks",
    "view": "views",
    "datasource": "datasources",
    "flow": "flows",
    "project": "projects",
}
_HINTS = {
    "workbook": "list_content can find it by name",
    "view": "list_content with kind 'view' can find it by name",
    "datasource": "list_content with kind 'datasource' can find it by name",
    "flow": "list_content with kind 'flow' can find it by name",
    "project": "list_content with kind 'project' shows every project path",
    "user": "list_users can find users by name or email",
    "group": "list_groups shows every group",
    "job": "Tableau removes finished jobs after a while; list_jobs shows recent jobs",
}
DEFAULT_PERMISSION_TYPES = {
    "workbook": "workbook",
    "datasource": "datasource",
    "flow": "flow",
    "lens": "lens",
    "metric": "metric",
    "datarole": "datarole",
    "virtualconnection": "virtualConnection",
    "database": "database",
    "table": "table",
}
_JOB_TYPES = {
    "RefreshExtract": "refresh_extracts",
    "IncrementExtract": "increment_extracts",
    "RunFlow": "run_flow",
}
_QUEUED_REFRESH_CANDIDATES = 50
# How the hot list paths (content, users, groups, jobs) are read: "json" (json_pages.py, orjson) or
# "xml" (parsing.py and TSC). JSON measured cheaper for the client, serving the same (BENCHMARKS.md).
LIST_FORMAT = "json"


class _Query(TSC.RequestOptions):
    """RequestOptions that keep sort keys in the given order (TSC sorts them alphabetically, which
    silently changes a multi-key sort's priority) and send our `fields` list verbatim."""

    def __init__(
        self,
        page_number: int,
        page_size: int,
        filters: Sequence[str] = (),
        sort: Sequence[str] = (),
        fields: Sequence[str] = (),
    ) -> None:
        super().__init__(pagenumber=page_number, pagesize=page_size)
        self._filters = list(filters)
        self._sorts = list(sort)
        self._field_list = list(fields)

    def get_query_params(self) -> dict:
        params: dict[str, Any] = {}
        if self._sorts:
            params["sort"] = ",".join(self._sorts)
        if self._filters:
            params["filter"] = ",".join(self._filters)
        if self.all_fields and not self._field_list:  # users.get() always asks for _all_
            params["fields"] = "_all_"
        params["pageNumber"] = self.pagenumber
        params["pageSize"] = self.pagesize
        if self._field_list:
            params["fields"] = ",".join(self._field_list)
        return params

    def apply_query_params(self, url: str) -> str:  # only used below API 3.7
        return f"{url}{'&' if '?' in url else '?'}{urlencode(self.get_query_params())}"


# -------------------------------------------------------------------------------------------------
# filters and sorts


def _format_value(value: Any, field: str) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif isinstance(value, (int, float)):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise InvalidRequest(f"The filter value for '{field}' must be text, a number, a boolean or a datetime.")
    if any(ch in text for ch in ",&[]"):
        raise InvalidRequest(
            f"The filter value {text!r} for '{field}' contains ',', '&', '[' or ']', which Tableau's filter "
            "syntax cannot express. Filter on a shorter value (e.g. with '*' wildcards and 'eq'), or list "
            "without this filter and select locally."
        )
    # Tableau URL-decodes a filter value once more after decoding the query string, so a literal
    # '+' would read as a space and '%xx' as a character (server-client-python#418): encode it once.
    return quote_plus(text, safe="*")


def filter_expressions(filters: Iterable[Filter] | None) -> list[str]:
    """`[("name","eq","X")]` → `["name:eq:X"]`, validated."""
    expressions: list[str] = []
    for entry in filters or ():
        try:
            field, op, value = entry
        except (TypeError, ValueError):
            raise InvalidRequest(
                f"A filter must be (field, operator, value), e.g. ('name', 'eq', 'Sales'); got {entry!r}."
            ) from None
        if not isinstance(field, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", field):
            raise InvalidRequest(f"{field!r} is not a Tableau filter field name (camelCase, e.g. 'projectName').")
        op = str(op).lower()
        if op not in FILTER_OPERATORS:
            raise InvalidRequest(
                f"'{op}' is not a Tableau filter operator; use one of {', '.join(sorted(FILTER_OPERATORS))}."
            )
        if op == "in":
            values = [value] if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) else list(value)
            if not values:
                raise InvalidRequest(f"The 'in' filter on '{field}' needs at least one value.")
            expressions.append(f"{field}:in:[{','.join(_format_value(v, field) for v in values)}]")
        else:
            expressions.append(f"{field}:{op}:{_format_value(value, field)}")
    return expressions


def sort_expressions(sort: Iterable[SortKey] | None, default: Sequence[str]) -> list[str]:
    if sort is None:
        return list(default)
    result: list[str] = []
    for key in sort:
        if isinstance(key, tuple):
            field, direction = key
        else:
            field, _, direction = str(key).partition(":")
        direction = (direction or "asc").lower()
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", field) or direction not in ("asc", "desc"):
            raise InvalidRequest(f"{key!r} is not a sort key; use 'field:asc' or 'field:desc', e.g. 'updatedAt:desc'.")
        result.append(f"{field}:{direction}")
    return result


# -------------------------------------------------------------------------------------------------
# TSC items → records


def _tags(item: Any) -> tuple[str, ...]:
    return tuple(sorted(getattr(item, "tags", None) or ()))


def _owner(item: Any) -> tuple[str | None, str | None]:
    owner = getattr(item, "owner", None) if not isinstance(item, TSC.FlowItem) else None
    if owner is None:
        return None, None
    return getattr(owner, "name", None), getattr(owner, "email", None)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def content_record(kind: str, item: Any) -> ContentRecord:
    owner_name, owner_email = _owner(item)
    common: dict[str, Any] = {
        "kind": kind,
        "id": item.id,
        "name": item.name or "",
        "owner_id": getattr(item, "owner_id", None),
        "owner_name": owner_name,
        "owner_email": owner_email,
        "tags": _tags(item),
    }
    if kind == "workbook":
        return ContentRecord(
            **common,
            content_url=item.content_url,
            webpage_url=item.webpage_url,
            description=item.description,
            project_id=item.project_id,
            project_name=item.project_name,
            created_at=item.created_at,
            updated_at=item.updated_at,
            size=_int(item.size),
            has_extracts=item.has_extracts,
            show_tabs=item.show_tabs,
            sheet_count=_int(item.sheet_count),
            default_view_id=item.default_view_id,
        )
    if kind == "view":
        project = item.project
        workbook = item.workbook
        return ContentRecord(
            **common,
            content_url=item.content_url,
            project_id=item.project_id,
            project_name=getattr(project, "name", None) if project is not None else None,
            created_at=item.created_at,
            updated_at=item.updated_at,
            workbook_id=item.workbook_id,
            workbook_name=getattr(workbook, "name", None) if workbook is not None else None,
            sheet_type=item.sheet_type,
            total_view_count=item._total_views,  # the property raises when usage was not requested
        )
    if kind == "datasource":
        return ContentRecord(
            **common,
            content_url=item.content_url,
            webpage_url=item.webpage_url,
            description=item.description,
            project_id=item.project_id,
            project_name=item.project_name,
            created_at=item.created_at,
            updated_at=item.updated_at,
            size=_int(item.size),
            has_extracts=item.has_extracts,
            type=item.datasource_type,
            is_certified=item.certified,
        )
    if kind == "flow":
        return ContentRecord(
            **common,
            webpage_url=item.webpage_url,
            description=item.description,
            project_id=item.project_id,
            project_name=item.project_name,
            created_at=item.created_at,
            updated_at=item.updated_at,
        )
    if kind == "project":
        return ContentRecord(
            **common,
            description=item.description,
            parent_project_id=item.parent_id,
            content_permissions=item.content_permissions,
        )
    raise InvalidRequest(f"unknown kind {kind!r}")


def user_record(item: TSC.UserItem) -> UserRecord:
    return UserRecord(
        id=item.id,
        name=item.name or "",
        full_name=item.fullname,
        email=item.email,
        site_role=item.site_role,
        last_login=item.last_login,
        auth_setting=item.auth_setting,
        domain_name=item.domain_name,
        locale=item.locale,
    )


def group_record(item: TSC.GroupItem) -> GroupRecord:
    return GroupRecord(
        id=item.id,
        name=item.name or "",
        user_count=_int(item.user_count),
        minimum_site_role=item.minimum_site_role,
        domain_name=item.domain_name,
    )


def permission_rules(rules: Iterable[Any]) -> list[PermissionRule]:
    result = []
    for rule in rules:
        result.append(
            PermissionRule(
                grantee_kind=rule.grantee.tag_name,
                grantee_id=rule.grantee.id,
                capabilities=dict(rule.capabilities),
            )
        )
    return result


def _job_status(item: TSC.JobItem) -> str:
    if item.completed_at is not None:
        return {0: "Success", 1: "Failed", 2: "Cancelled", 3: "Success"}.get(item.finish_code, "Failed")
    return "InProgress" if item.started_at is not None else "Pending"


def job_record(item: TSC.JobItem, flow_name: str | None = None) -> JobRecord:
    """`flow_name`: TSC's JobItem drops the flow's name, so the caller reads it from the response."""
    target_kind = target_id = target_name = None
    if item.workbook_id:
        target_kind, target_id, target_name = "workbook", item.workbook_id, item.workbook_name
    elif item.datasource_id:
        target_kind, target_id, target_name = "datasource", item.datasource_id, item.datasource_name
    elif item.flow_run is not None and getattr(item.flow_run, "flow_id", None):
        target_kind, target_id, target_name = "flow", item.flow_run.flow_id, flow_name
    notes = [n for n in (item.notes or []) if n]
    notes += [n.get("text") for n in (item.status_notes or []) if n.get("text")]
    done = item.completed_at is not None
    return JobRecord(
        id=item.id,
        status=_job_status(item),
        job_type=_JOB_TYPES.get(item.type or "", item.type),
        progress=_int(item.progress),
        created_at=item.created_at,
        started_at=item.started_at,
        completed_at=item.completed_at,
        finish_code=item.finish_code if done and item.finish_code is not None and item.finish_code >= 0 else None,
        notes="\n".join(notes) or None,
        target_kind=target_kind,
        target_id=target_id,
        target_name=target_name,
    )


def background_job_record(item: TSC.BackgroundJobItem) -> JobRecord:
    return listed_job(
        id=item.id, status=item.status, job_type=item.type, created_at=item.created_at, started_at=item.started_at,
        ended_at=item.ended_at, subtitle=item.subtitle, priority=_int(item.priority), title=item.title,
    )


_FREQUENCIES = {"HourlyInterval": "Hourly", "DailyInterval": "Daily", "WeeklyInterval": "Weekly",
                "MonthlyInterval": "Monthly"}


def schedule_record(item: Any) -> ScheduleRecord:
    interval = getattr(item, "interval_item", None)
    frequency = _FREQUENCIES.get(type(interval).__name__)
    values = [str(v) for v in getattr(interval, "interval", ()) or () if v is not None]
    described = {
        "Hourly": lambda: f"every {values[0] if values else 1} hours",
        "Weekly": lambda: ", ".join(values),
        "Monthly": lambda: "day " + ", ".join(values),
    }.get(frequency or "", lambda: None)()
    start, end = getattr(interval, "start_time", None), getattr(interval, "end_time", None)
    return ScheduleRecord(
        id=item.id,
        name=item.name,
        state=item.state,
        frequency=frequency,
        next_run_at=item.next_run_at,
        start_time=start.strftime("%H:%M:%S") if start else None,
        end_time=end.strftime("%H:%M:%S") if end else None,
        interval=described or None,
        priority=_int(item.priority),
    )


def task_record(item: TSC.TaskItem) -> TaskRecord:
    target = item.target
    return TaskRecord(
        id=item.id,
        refresh_type="incremental" if "increment" in (item.task_type or "").lower() else "full",
        target_kind=target.type if target is not None and target.type in ("workbook", "datasource") else None,
        target_id=target.id if target is not None else None,
        schedule=schedule_record(item.schedule_item) if item.schedule_item is not None else None,
        consecutive_failures=item.consecutive_failed_count or 0,
        priority=_int(item.priority),
        last_run_at=item.last_run_at,
    )


# -------------------------------------------------------------------------------------------------


# Workers per listing beyond `concurrency`: the transport's slots still hold requests in flight to
# `concurrency`, but a spare worker is waiting for each slot as it frees, so a lane sends its next
# request while the worker that freed it is still reading its page (without them, each lane idled for
# the 5-8 ms a page takes to read once the other listings of a call were done).
SPARE_WORKERS = 2


def _without_repeats(items: list[T], key: Callable[[T], str]) -> list[T]:
    """`items` keeping the first of each key: pages read while the site changes can overlap by an item.

    Almost always nothing repeats, and the keys are compared in C (map, set) before any Python loop.
    """
    if len(set(map(key, items))) == len(items):
        return items
    seen: set[str] = set()
    kept = []
    for item, item_key in zip(items, map(key, items), strict=True):
        if item_key not in seen:
            seen.add(item_key)
            kept.append(item)
    return kept


class TableauClient:
    """The Tableau access layer. Use as `async with TableauClient(settings) as client:`.

    All methods are coroutines safe to call concurrently; errors are `TableauError` subclasses.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._transport = Transport(settings)
        self._transport.reauthenticate = self._reauthenticate
        self._server: TSC.Server | None = None
        self._auth_lock = threading.Lock()
        self._reauth_failure: tuple[str, TableauError] | None = None
        self._sign_ins = 0
        self._closed = False
        self._threads = anyio.CapacityLimiter(max(8, settings.concurrency * 2))
        self._server_api_version: str | None = None
        self._product_version: str | None = None
        self._build: str | None = None
        self._info: ServerInfo | None = None
        self._cache: dict[str, tuple[float, Any]] = {}
        self._cache_locks: dict[str, anyio.Lock] = {}
        self.list_format = LIST_FORMAT  # the benchmark flips it to time both readers in one run

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Sign in once and negotiate the REST API version. Raises BadConfiguration on bad settings."""
        if self._server is not None:
            return
        server = TSC.Server(
            self.settings.server_url,
            use_server_version=False,  # negotiated in _connect_blocking, after sign-in, like TSC does
            session_factory=self._transport.session_factory,
        )
        _skip_unused_response_logging(server)
        self._server = server
        async with self._default_operation("tableau:connect"):
            try:
                await self._call(self._ctx("signing in"), self._connect_blocking)
            except BaseException:
                self._server = None
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(_quiet_sign_out, server, limiter=self._threads)
                raise
        log.info("signed in to %s (REST API %s)", self.settings.describe(), server.version)

    async def close(self) -> None:
        """Sign out (best effort) and release connections. Safe to call twice."""
        server, self._server = self._server, None
        if server is None or self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            async with self._default_operation("tableau:close"):
                try:
                    await anyio.to_thread.run_sync(server.auth.sign_out, limiter=self._threads)
                except Exception as exc:  # noqa: BLE001  the session may already be gone; nothing to do about it
                    log.info("sign-out from %s failed: %s", self.settings.server_url, type(exc).__name__)
                finally:
                    server.close()

    @property
    def sign_ins(self) -> int:
        """How many sign-ins this client made (1 after connect, +1 per re-sign-in after a 401)."""
        return self._sign_ins

    @property
    def api_version(self) -> str:
        return self._tsc().version

    @property
    def site_identity(self) -> SiteIdentity:
        """The server and site this client signed in to (no request: the site id comes from sign-in)."""
        server = self._tsc()
        return SiteIdentity(
            server_url=self.settings.server_url.rstrip("/"),
            content_url=self.settings.site_id or "",
            site_id=str(server.site_id or ""),
        )

    # -- operations and observers ----------------------------------------------------------

    @asynccontextmanager
    async def operation(self, name: str | None = None) -> AsyncIterator[str]:
        """Tag every request made inside the block with an operation id; yields the id.

        `name` becomes the id (pass something unique, such as the MCP call id); without a name a
        random `op_…` id is generated. The id follows the work into worker threads.
        """
        op_id = name or f"op_{secrets.token_hex(6)}"
        token = OPERATION_ID.set(op_id)
        try:
            yield op_id
        finally:
            OPERATION_ID.reset(token)

    def add_observer(self, observer: Observer) -> None:
        """Call `observer(event: RequestEvent)` for every HTTP request attempt.

        It runs in the worker thread that made the request, so it must be quick and thread-safe;
        exceptions it raises are logged and ignored.
        """
        self._transport.add_observer(observer)

    def remove_observer(self, observer: Observer) -> None:
        self._transport.remove_observer(observer)

    @asynccontextmanager
    async def _default_operation(self, name: str) -> AsyncIterator[None]:
        if OPERATION_ID.get() is None:
            async with self.operation(name):
                yield
        else:
            yield

    # -- plumbing ----------------------------------------------------------------------------

    def _tsc(self) -> TSC.Server:
        if self._server is None:
            raise BadConfiguration(
                "The Tableau client is not connected; use `async with TableauClient(settings)` or call connect()."
            )
        return self._server

    def _ctx(self, what: str, hint: str | None = None) -> Context:
        return Context(what=what, site=self.settings.site_id, server_url=self.settings.server_url, hint=hint)

    def _item_ctx(self, kind: str, item_id: str, action: str = "") -> Context:
        what = f"{kind} {short_id(item_id)}" if not action else f"{action} {kind} {short_id(item_id)}"
        return self._ctx(what, _HINTS.get(kind))

    async def _call(self, ctx: Context, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking TSC work in a worker thread; translate its exceptions (the one mapping point)."""
        try:
            return await anyio.to_thread.run_sync(partial(fn, *args), limiter=self._threads)
        except TableauError:
            raise
        except Exception as exc:
            mapped = translate(exc, ctx)
            if mapped is None:
                raise
            raise mapped from exc

    def _sign_in_blocking(self) -> None:
        server = self._tsc()
        server.auth.sign_in(tsc_credentials(self.settings.credentials, self.settings.site_id))
        self._sign_ins += 1

    def _connect_blocking(self) -> None:
        self._sign_in_blocking()
        self._negotiate_blocking()

    def _negotiate_blocking(self) -> None:
        server = self._tsc()
        info = None
        try:
            info = server.server_info.get()
        except (ServerInfoEndpointNotFoundError, EndpointUnavailableError):
            server.use_server_version()  # TSC's legacy fallback for very old servers
        if info is not None:
            self._product_version = info.product_version
            self._build = info.build_number
            self._server_api_version = info.rest_api_version
        if self.settings.api_version:
            server.version = self.settings.api_version
        elif self._server_api_version:
            server.version = self._server_api_version
        try:
            Version(str(server.version))
        except InvalidVersion:
            raise BadConfiguration(
                f"Tableau at {self.settings.server_url} did not report a usable REST API version "
                f"({server.version!r}); set STEWARD_API_VERSION (e.g. 3.24)."
            ) from None
        if info is None and not self.settings.api_version:
            log.warning("could not read serverInfo; using REST API %s", server.version)

    def _reauthenticate(self, failed_token: str) -> str:
        """Single-flight re-sign-in, called from the transport on a 401 (in a worker thread).

        Callers whose token was already replaced get the current token without signing in; if the
        re-sign-in for this token failed, every caller waiting on it gets the same error.
        """
        with self._auth_lock:
            server = self._tsc()
            current = server._auth_state.auth_token
            if current is not None and current != failed_token:
                return current
            if self._reauth_failure is not None and self._reauth_failure[0] == failed_token:
                raise self._reauth_failure[1]
            log.info("Tableau session expired or was replaced; signing in again")
            try:
                self._sign_in_blocking()
            except Exception as exc:
                mapped = exc if isinstance(exc, TableauError) else translate(exc, self._ctx("signing in again"))
                if mapped is None:
                    raise
                self._reauth_failure = (failed_token, mapped)
                raise mapped from exc
            return server.auth_token

    async def _paged(
        self,
        ctx: Context,
        fetch: Callable[[int, int], tuple[list[T], Any]],
        *,
        limit: int | None = None,
        key: Callable[[T], str] = attrgetter("id"),
    ) -> tuple[list[T], int]:
        """All pages (or the first `limit` items): page 1 first, then the rest concurrently.

        `fetch(page_number, page_size)` returns (items, TSC PaginationItem). Returns (items, total).
        """
        size = self.settings.page_size if limit is None else max(1, min(self.settings.page_size, limit))
        first, pagination = await self._call(ctx, fetch, 1, size)
        total = getattr(pagination, "total_available", None)
        if total is None or total < 0:  # an unpaged answer
            return list(first), len(first)
        page_size = pagination.page_size if getattr(pagination, "page_size", 0) and pagination.page_size > 0 else size
        wanted = total if limit is None else min(total, limit)
        pages = max(1, math.ceil(wanted / page_size))
        results: dict[int, list[T]] = {1: list(first)}
        if pages > 1:
            numbers = iter(range(2, pages + 1))

            async def worker() -> None:
                for number in numbers:  # the workers share one iterator: each takes the next page
                    items, _ = await self._call(ctx, fetch, number, page_size)
                    results[number] = list(items)

            try:
                async with anyio.create_task_group() as tasks:
                    for _ in range(min(self.settings.concurrency + SPARE_WORKERS, pages - 1)):
                        tasks.start_soon(worker)
            except BaseExceptionGroup as group:
                raise first_error(group) from None
        merged = _without_repeats([item for number in sorted(results) for item in results[number]], key)
        if limit is not None:
            merged = merged[:limit]
        elif len(merged) != total:
            log.info("%s: Tableau reported %d items but %d arrived (the site changed while listing)",
                     ctx.what, total, len(merged))
        return merged, total

    async def _cached(self, key: str, load: Callable[[], Awaitable[T]], *, force: bool = False) -> T:
        """A TTL cache with single-flight loading (concurrent callers share one load)."""
        entry = None if force else self._fresh(key)
        if entry is not None:
            return entry[1]
        lock = self._cache_locks.setdefault(key, anyio.Lock())
        async with lock:
            entry = None if force else self._fresh(key)
            if entry is not None:
                return entry[1]
            started = time.monotonic()
            value = await load()
            if self.settings.cache_ttl > 0:
                self._cache[key] = (started, value)
            return value

    def _fresh(self, key: str) -> tuple[float, Any] | None:
        """The cache entry under `key` while it is younger than cache_ttl, else None."""
        entry = self._cache.get(key)
        return entry if entry is not None and time.monotonic() - entry[0] < self.settings.cache_ttl else None

    def invalidate_caches(self, *keys: str) -> None:
        """Forget cached projects/users/groups (all of them without arguments); "users" covers user_facts too."""
        if not keys:
            self._cache.clear()
        for key in keys:
            self._cache.pop(key, None)
            if key == "users":
                self._cache.pop("user_facts", None)

    @staticmethod
    def _check_kind(kind: str, allowed: Sequence[str] = CONTENT_KINDS) -> None:
        if kind not in allowed:
            raise InvalidRequest(f"'{kind}' is not a content kind; use one of: {', '.join(allowed)}.")

    # -- site --------------------------------------------------------------------------------

    async def server_info(self) -> ServerInfo:
        """Product version, API version, the site (name, content URL, id) and the signed-in user."""
        if self._info is not None:
            return self._info
        server = self._tsc()

        def load() -> ServerInfo:
            site = server.sites.get_by_id(server.site_id)
            user = server.users.get_by_id(server.user_id)
            return ServerInfo(
                server_url=self.settings.server_url,
                product_version=self._product_version,
                build=self._build,
                api_version=str(server.version),
                server_api_version=self._server_api_version,
                site_id=server.site_id,
                site_name=site.name,
                site_content_url=site.content_url or "",
                user_id=server.user_id,
                user_name=user.name,
                user_site_role=user.site_role,
            )

        self._info = await self._call(self._ctx("reading the site and signed-in user"), load)
        return self._info

    # -- content -----------------------------------------------------------------------------

    def _content_fetch(
        self, kind: str, filters: list[str], sort: list[str], lean: bool = False
    ) -> Callable[[int, int], tuple[list[Any], Any]]:
        server = self._tsc()
        endpoint = getattr(server, _ENDPOINTS[kind])
        fields = LEAN_FIELDS if lean else LIST_FIELDS[kind]
        read_json = json_pages.owned_page if lean else json_pages.content_page
        read_xml = owned_page if lean else content_page

        def fetch(number: int, size: int) -> tuple[list[Any], Any]:
            query = _Query(number, size, filters, sort, fields)
            url = endpoint.baseurl + ("?includeUsageStatistics=true" if kind == "view" and not lean else "")
            if self.list_format == "json":
                return read_json(kind, json_pages.get_json(endpoint, url, query))
            response = endpoint.get_request(url, query)  # TSC sends it; parsing.py reads it (fast)
            return read_xml(kind, response.content)

        return fetch

    async def list_content(
        self,
        kind: ContentKind,
        *,
        filters: Iterable[Filter] | None = None,
        sort: Iterable[SortKey] | None = None,
        limit: int | None = None,
        lean: bool = False,
    ) -> list[Any]:
        """Every `kind` item matching `filters` (Tableau filter fields, ANDed), all pages, fetched in parallel.

        Owner name/email, project name and (views) workbook name come in the same calls; should a
        server leave owner names out, they are filled from the cached user list (a constant number
        of requests, never one per item). The default order is createdAt then name. `limit` stops
        after that many items. `lean` asks Tableau for `LEAN_FIELDS` only (a third of the bytes)
        and returns `OwnedRecord`s, for callers that only count, group or filter by owner, project,
        name and time; kinds whose endpoint takes no `fields` (flows, projects) still come as
        ContentRecords, which have the same attributes.
        """
        self._check_kind(kind)
        lean = lean and kind in LEAN_KINDS
        expressions, order = filter_expressions(filters), sort_expressions(sort, CONTENT_SORT)
        fetch = self._content_fetch(kind, expressions, order, lean)
        records, _ = await self._paged(self._ctx(f"listing {kind}s"), fetch, limit=limit)
        if not lean and any(r.owner_id and r.owner_name is None for r in records):
            records = await self._fill_owners(records)  # e.g. a server that ignores owner.name on flows
        return records

    async def content_page(
        self,
        kind: ContentKind,
        *,
        page_number: int,
        page_size: int,
        filters: Iterable[Filter] | None = None,
        sort: Iterable[SortKey] | None = None,
    ) -> tuple[list[ContentRecord], int]:
        """One page of `kind` items, filtered, sorted and paged by Tableau: one request.

        Returns (records, how many match in all). A page past the end is an empty page, not an error
        (Tableau answers it with 400006; the count then costs one more request).
        """
        self._check_kind(kind)
        expressions = filter_expressions(filters)
        fetch = self._content_fetch(kind, expressions, sort_expressions(sort, CONTENT_SORT))
        try:
            records, page = await self._call(self._ctx(f"listing {kind}s"), fetch, page_number, page_size)
        except InvalidRequest as exc:
            if page_number <= 1 or getattr(exc, "code", None) != "400006":
                raise
            return [], await self.count_content(kind, filters)
        if any(r.owner_id and r.owner_name is None for r in records):
            records = await self._fill_owners(records)
        total = page.total_available if page.total_available >= 0 else len(records)
        return records, total

    async def workbook_views(self, workbook: ContentRecord) -> list[ContentRecord]:
        """Every view of one workbook with its usage count: one unpaged request (Query Views for Workbook).

        Tableau leaves the owner, project and workbook out of this answer; they are the workbook's.
        """
        server = self._tsc()
        endpoint = server.workbooks

        def fetch() -> list[ContentRecord]:
            url = f"{endpoint.baseurl}/{workbook.id}/views?includeUsageStatistics=true"
            return content_page("view", endpoint.get_request(url).content)[0]

        views = await self._call(self._item_ctx("workbook", workbook.id, "listing the views of"), fetch)
        inherited = {
            "workbook_id": workbook.id,
            "workbook_name": workbook.name,
            "project_id": workbook.project_id,
            "project_name": workbook.project_name,
            "owner_id": workbook.owner_id,
            "owner_name": workbook.owner_name,
            "owner_email": workbook.owner_email,
        }
        return [view.model_copy(update=inherited) for view in views]

    async def count_content(self, kind: ContentKind, filters: Iterable[Filter] | None = None) -> int:
        """How many `kind` items match `filters` (one request with pageSize=1)."""
        self._check_kind(kind)
        server = self._tsc()
        endpoint = getattr(server, _ENDPOINTS[kind])
        # TSC's flow parser insists on a project, so flows keep their default fields.
        fields = ("_default_",) if kind == "flow" else ("id",)
        query = _Query(1, 1, filter_expressions(filters), (), fields)

        def count() -> int:
            _, pagination = endpoint.get(query)
            total = pagination.total_available
            return int(total) if total is not None and total >= 0 else 0

        return await self._call(self._ctx(f"counting {kind}s"), count)

    async def get_content(self, kind: ContentKind, item_id: str) -> ContentRecord:
        """One item by id, with owner, project and (views) workbook names filled in."""
        self._check_kind(kind)
        if kind == "project":
            return await self._get_project(item_id)
        server = self._tsc()
        ctx = self._item_ctx(kind, item_id)

        def load() -> ContentRecord:
            if kind == "workbook":
                item = server.workbooks.get_by_id(item_id)
            elif kind == "view":
                item = server.views.get_by_id(item_id, usage=True)
            elif kind == "datasource":
                item = server.datasources.get_by_id(item_id)
            else:
                item = server.flows.get_by_id(item_id)
            return content_record(kind, item)

        record = await self._call(ctx, load)
        updates: dict[str, Any] = {}
        if record.owner_id and record.owner_name is None:
            user = (await self.users_by_id()).get(record.owner_id)
            if user is not None:
                updates.update(owner_name=user.name, owner_email=user.email)
        if record.project_id and record.project_name is None:
            node = (await self.project_tree()).get(record.project_id)
            if node is not None:
                updates["project_name"] = node.name
        if kind == "view" and record.workbook_id and record.workbook_name is None:
            workbook = await self._call(
                self._item_ctx("workbook", record.workbook_id), server.workbooks.get_by_id, record.workbook_id
            )
            updates["workbook_name"] = workbook.name
        return record.model_copy(update=updates) if updates else record

    async def _fill_owners(self, records: list[ContentRecord]) -> list[ContentRecord]:
        users = await self.users_by_id()
        filled = []
        for record in records:
            user = users.get(record.owner_id or "")
            if user is not None and record.owner_name is None:
                record = record.model_copy(update={"owner_name": user.name, "owner_email": user.email})
            filled.append(record)
        return filled

    async def _project_records(self, *, force: bool = False) -> list[ContentRecord]:
        async def load() -> list[ContentRecord]:
            return await self.list_content("project")

        return await self._cached("projects", load, force=force)

    async def project_records(self) -> list[ContentRecord]:
        """Every project, from the same cached listing as project_tree() (no request while it is fresh)."""
        return list(await self._project_records())

    async def _get_project(self, project_id: str) -> ContentRecord:
        # TSC's projects.get_by_id is a PUT (an empty update), which needs write permission on a real
        # server; the cached project listing answers without it.
        for force in (False, True):
            for record in await self._project_records(force=force):
                if record.id == project_id:
                    return record
        raise NotFound(
            f"project {short_id(project_id)} not found on {self._ctx('').site_label}; {_HINTS['project']}.",
            status=404,
        )

    async def project_tree(self) -> ProjectTree:
        """Every project with its full path ('Sales/EMEA'), parent, lock mode and owner; cached for cache_ttl."""

        async def load() -> ProjectTree:
            records = await self._project_records(force=True)
            by_id = {r.id: r for r in records}
            paths: dict[str, str] = {}

            def path(pid: str) -> str:
                parts: list[str] = []
                seen: set[str] = set()
                current: str | None = pid
                while current is not None and current in by_id and current not in seen:
                    seen.add(current)
                    parts.append(by_id[current].name)
                    current = by_id[current].parent_project_id
                return "/".join(reversed(parts))

            for pid in by_id:
                paths[pid] = path(pid)
            return ProjectTree(
                nodes={
                    r.id: ProjectNode(
                        id=r.id,
                        name=r.name,
                        parent_id=r.parent_project_id,
                        path=paths[r.id],
                        content_permissions=r.content_permissions,
                        owner_id=r.owner_id,
                        description=r.description,
                    )
                    for r in records
                }
            )

        return await self._cached("project_tree", load)

    # -- users and groups ---------------------------------------------------------------------

    async def list_users(
        self, filters: Iterable[Filter] | None = None, *, sort: Iterable[SortKey] | None = None
    ) -> list[UserRecord]:
        """Users on the site matching `filters` (e.g. [("siteRole", "eq", "Viewer")]), all pages in parallel."""
        server = self._tsc()
        expressions, order = filter_expressions(filters), sort_expressions(sort, DIRECTORY_SORT)

        def fetch(number: int, size: int) -> tuple[list[UserRecord], Any]:
            query = _Query(number, size, expressions, order)
            query.all_fields = True  # exactly what TSC's users.get() sends
            if self.list_format == "json":
                return json_pages.user_page(json_pages.get_json(server.users, server.users.baseurl, query))
            response = server.users.get_request(server.users.baseurl, query)
            return user_page(response.content)  # several times cheaper than TSC's UserItem parser

        users, _ = await self._paged(self._ctx("listing users"), fetch)
        return users

    async def users_by_id(self) -> dict[str, UserRecord]:
        """Every user by id; cached for cache_ttl and dropped after our own writes."""

        async def load() -> dict[str, UserRecord]:
            return {u.id: u for u in await self.list_users()}

        return dict(await self._cached("users", load))

    async def user_facts(self) -> dict[str, UserFacts | UserRecord]:
        """Every user by id with name, full name, email, site role and last sign-in: the cached users while
        they are fresh, else one listing of just those fields (`USER_FACT_FIELDS`, as tableau-mcp asks; `_all_`
        is the more expensive path on Tableau's side) read into plain tuples, cached like the users."""
        users = self._fresh("users")
        if users is not None:
            return dict(users[1])
        server = self._tsc()

        def fetch(number: int, size: int) -> tuple[list[UserFacts], Any]:
            query = _Query(number, size, [], list(DIRECTORY_SORT), USER_FACT_FIELDS)
            if self.list_format == "json":
                return json_pages.user_facts_page(json_pages.get_json(server.users, server.users.baseurl, query))
            return user_facts_page(server.users.get_request(server.users.baseurl, query).content)

        async def load() -> dict[str, UserFacts]:
            facts, _ = await self._paged(self._ctx("listing users"), fetch)
            return {u.id: u for u in facts}

        return dict(await self._cached("user_facts", load))

    async def list_groups(self, filters: Iterable[Filter] | None = None) -> list[GroupRecord]:
        """Groups (with user counts) matching `filters`; the unfiltered list is cached for cache_ttl."""
        server = self._tsc()
        expressions = filter_expressions(filters)

        async def load() -> list[GroupRecord]:
            def fetch(number: int, size: int) -> tuple[list[GroupRecord], Any]:
                query = _Query(number, size, expressions, DIRECTORY_SORT, ("_default_", "userCount"))
                if self.list_format == "json":
                    return json_pages.group_page(json_pages.get_json(server.groups, server.groups.baseurl, query))
                response = server.groups.get_request(server.groups.baseurl, query)
                return group_page(response.content)  # reads minimumSiteRole, which TSC's parser drops

            groups, _ = await self._paged(self._ctx("listing groups"), fetch)
            return groups

        if expressions:
            return await load()
        return list(await self._cached("groups", load))

    async def group_members(self, group_id: str) -> list[UserRecord]:
        """The group's members, all pages in parallel."""
        server = self._tsc()
        group = TSC.GroupItem()
        group._id = group_id

        def fetch(number: int, size: int) -> tuple[list[UserRecord], Any]:
            items, pagination = server.groups._get_users_for_group(group, _Query(number, size, (), DIRECTORY_SORT))
            return [user_record(u) for u in items], pagination

        members, _ = await self._paged(self._item_ctx("group", group_id, "listing the members of"), fetch)
        return members

    async def user_groups(self, user_id: str) -> list[GroupRecord]:
        """The groups a user belongs to."""
        server = self._tsc()
        user = TSC.UserItem()
        user._id = user_id

        def fetch(number: int, size: int) -> tuple[list[GroupRecord], Any]:
            items, pagination = server.users._get_groups_for_user(user, _Query(number, size, (), DIRECTORY_SORT))
            return [group_record(g) for g in items], pagination

        groups, _ = await self._paged(self._item_ctx("user", user_id, "listing the groups of"), fetch)
        return groups

    async def add_group_member(self, group_id: str, user_id: str) -> bool:
        """Add a user to a group: True if added, False if already a member (Tableau's 409011)."""
        server = self._tsc()
        group = TSC.GroupItem()
        group._id = group_id

        def add() -> bool:
            try:
                server.groups.add_user(group, user_id)
            except ServerResponseError as exc:
                if exc.code == "409011":
                    return False
                raise
            return True

        ctx = self._ctx(
            f"adding user {short_id(user_id)} to group {short_id(group_id)}",
            "list_users and list_groups show valid users and groups",
        )
        try:
            return await self._call(ctx, add)
        finally:
            self.invalidate_caches("groups", "users")

    async def remove_group_member(self, group_id: str, user_id: str) -> bool:
        """Remove a user from a group: True if removed, False if they were not a member."""
        server = self._tsc()
        group = TSC.GroupItem()
        group._id = group_id
        ctx = self._ctx(
            f"removing user {short_id(user_id)} from group {short_id(group_id)}",
            "list_users and list_groups show valid users and groups",
        )
        try:
            await self._call(ctx, server.groups.remove_user, group, user_id)
            return True
        except NotFound:
            # Tableau answers 404 both for an unknown group/user and for "not a member": tell them apart.
            await self._call(self._item_ctx("group", group_id), server.groups._get_users_for_group, group,
                             _Query(1, 1))
            await self._call(self._item_ctx("user", user_id), server.users.get_by_id, user_id)
            return False
        finally:
            self.invalidate_caches("groups", "users")

    async def add_user(self, name: str, site_role: str, auth_setting: str | None = None) -> UserRecord:
        """Add a user to the site (Tableau's Add User: name, site role, authentication); one POST."""
        server = self._tsc()
        item = TSC.UserItem(name, site_role, auth_setting=auth_setting)
        ctx = self._ctx(f"adding user '{name}'", "list_users shows who is on the site")
        try:
            return user_record(await self._call(ctx, server.users.add, item))
        finally:
            self.invalidate_caches("users", "groups")

    async def update_user(self, user_id: str, *, site_role: str | None = None, email: str | None = None) -> UserRecord:
        """Change a user's site role and/or email: one PUT whose body holds only those attributes (TSC's
        `users.update` would send every field the item carries)."""
        server = self._tsc()
        attributes = {"siteRole": site_role, "email": email}
        shown = " ".join(f'{key}="{_xml_attr(value)}"' for key, value in attributes.items() if value is not None)
        body = f"<tsRequest><user {shown}/></tsRequest>"
        ctx = self._item_ctx("user", user_id, "updating")

        def put() -> UserRecord:
            response = server.users.put_request(f"{server.users.baseurl}/{user_id}", body.encode())
            return user_record(TSC.UserItem.from_response(response.content, server.namespace)[0])

        try:
            return await self._call(ctx, put)
        finally:
            self.invalidate_caches("users", "groups")

    async def change_owner(self, kind: ContentKind, item_id: str, owner_id: str) -> None:
        """Make `owner_id` the owner of one workbook, data source, flow or project: one PUT, nothing read.

        The body holds only `<owner id/>`: TSC's `update()` would also send fields the item does not carry
        (a datasource's `isCertified="none"`, a workbook's default `showTabs="false"`) and change them."""
        self._check_kind(kind, ("workbook", "datasource", "flow", "project"))
        server = self._tsc()
        endpoint = getattr(server, _ENDPOINTS[kind])
        body = f'<tsRequest><{kind}><owner id="{_xml_attr(owner_id)}"/></{kind}></tsRequest>'
        url = f"{endpoint.baseurl}/{item_id}"
        ctx = self._item_ctx(kind, item_id, "changing the owner of")
        try:
            await self._call(ctx, endpoint.put_request, url, body.encode())
        finally:
            if kind == "project":
                self.invalidate_caches("projects", "project_tree")

    # -- permissions -------------------------------------------------------------------------

    async def permissions(self, kind: ContentKind, item_id: str) -> list[PermissionRule]:
        """The explicit permission rules on one item (not the effective permissions)."""
        self._check_kind(kind)
        server = self._tsc()
        endpoint = getattr(server, _ENDPOINTS[kind])
        stub = _Stub(item_id)
        ctx = self._item_ctx(kind, item_id, "reading the permissions of")
        rules = await self._call(ctx, endpoint._permissions._get_permissions, stub)
        return permission_rules(rules)

    async def default_permissions(self, project_id: str, content_type: str) -> list[PermissionRule]:
        """A project's default permission rules for new `content_type` items (workbook, datasource, flow, ...)."""
        key = content_type.lower().removesuffix("s") if content_type.lower() != "lens" else "lens"
        if content_type.lower() == "lenses":
            key = "lens"
        resource = DEFAULT_PERMISSION_TYPES.get(key)
        if resource is None:
            raise InvalidRequest(
                f"'{content_type}' has no default permissions; use one of: {', '.join(DEFAULT_PERMISSION_TYPES)}."
            )
        server = self._tsc()
        ctx = self._item_ctx("project", project_id, f"reading the default {key} permissions of")
        rules = await self._call(ctx, server.projects._default_permissions._get_default_permissions,
                                 _Stub(project_id), resource)
        return permission_rules(rules)

    # -- refresh and jobs ----------------------------------------------------------------------

    async def refresh(self, kind: str, item_id: str, incremental: bool = False) -> RefreshStarted:
        """Start an extract refresh of a workbook or datasource.

        If Tableau says one is already queued (409093), attach to that job instead
        (`already_queued=True`).
        """
        if kind not in ("workbook", "datasource"):
            raise InvalidRequest(f"Only workbooks and datasources have extract refreshes, not '{kind}'.")
        server = self._tsc()
        if incremental and not server.check_at_least_version("3.25"):
            raise InvalidRequest(
                f"Incremental refresh through the REST API needs API 3.25 or later; this server uses "
                f"{server.version}. Run a full refresh instead."
            )
        endpoint = server.workbooks if kind == "workbook" else server.datasources
        ctx = self._item_ctx(kind, item_id, "refreshing")
        job = await self._call(ctx, partial(endpoint.refresh, item_id, incremental=incremental))
        if job is not None:
            return RefreshStarted(job_id=job.id, already_queued=False, kind=kind, target_id=item_id)
        existing = await self._call(ctx, self._find_queued_refresh, kind, item_id)
        if existing is None:
            raise Conflict(
                f"Tableau says a refresh of {kind} {short_id(item_id)} is already queued, but no pending or "
                "running refresh job for it was found (it may have just finished). Check list_jobs, then try "
                "again.",
                status=409,
                code="409093",
            )
        return RefreshStarted(job_id=existing, already_queued=True, kind=kind, target_id=item_id)

    def _find_queued_refresh(self, kind: str, item_id: str) -> str | None:
        server = self._tsc()
        candidates: list[str] = []
        for status in ("InProgress", "Pending"):
            query = _Query(
                1, 100, [f"status:eq:{status}", "jobType:in:[increment_extracts,refresh_extracts]"], JOB_SORT
            )
            jobs, _ = server.jobs.get(req_options=query)
            candidates += [j.id for j in jobs]
        for job_id in candidates[:_QUEUED_REFRESH_CANDIDATES]:
            try:
                job = server.jobs.get_by_id(job_id)
            except ServerResponseError:
                continue  # finished and cleaned up in between
            target = job.workbook_id if kind == "workbook" else job.datasource_id
            if target == item_id and job.completed_at is None:
                return job.id
        return None

    async def get_job(self, job_id: str) -> JobRecord:
        """One job's state: status, progress, times, finish code, notes and target (flows named too)."""
        server = self._tsc()

        def load() -> JobRecord:
            response = server.jobs.get_request(f"{server.jobs.baseurl}/{job_id}")
            item = TSC.JobItem.from_response(response.content, server.namespace)[0]
            flow = fromstring(response.content).find(".//t:runFlowJobType//t:flow", server.namespace)
            return job_record(item, flow.get("name") if flow is not None else None)

        return await self._call(self._item_ctx("job", job_id), load)

    async def jobs_page(
        self, filters: Iterable[Filter] | None, sort: Iterable[SortKey] | None, number: int, size: int
    ) -> tuple[list[JobRecord], int]:
        """One page of Query Jobs (Tableau filters, sorts and pages); returns (jobs, total matching)."""
        server = self._tsc()
        query = _Query(number, size, filter_expressions(filters), sort_expressions(sort, JOB_SORT))

        def fetch() -> tuple[list[JobRecord], int]:
            items, pagination = server.jobs.get(req_options=query)
            total = getattr(pagination, "total_available", None)
            return [background_job_record(j) for j in items], len(items) if total is None or total < 0 else total

        return await self._call(self._ctx("listing jobs"), fetch)

    async def job_targets(self) -> dict[str, list[JobTarget]]:
        """What jobs can work on, by name: extract-bearing workbooks and data sources, and flows.

        Query Jobs names a job's target (its subtitle) but gives no id; this cached index supplies
        kind and id for a page of jobs without a request per job.
        """

        async def load() -> dict[str, list[JobTarget]]:
            extracts = [("hasExtracts", "eq", True)]
            # One after another: a cached index, so its latency is paid once per cache lifetime.
            records = [
                *await self.list_content("workbook", filters=extracts),
                *await self.list_content("datasource", filters=extracts),
                *await self.list_content("flow"),
            ]
            index: dict[str, list[JobTarget]] = {}
            for record in records:
                target = JobTarget(kind=record.kind, id=record.id, name=record.name, project_id=record.project_id)
                index.setdefault(record.name, []).append(target)
            return index

        return await self._cached("job_targets", load)

    async def extract_refresh_tasks(self) -> list[TaskRecord]:
        """Every extract-refresh task with its schedule (one unpaged request, as Tableau answers it)."""
        server = self._tsc()

        def load() -> list[TaskRecord]:
            items, _ = server.tasks.get()
            return [task_record(t) for t in items]

        return await self._call(self._ctx("listing extract-refresh tasks"), load)

    async def list_jobs(
        self,
        filters: Iterable[Filter] | None = None,
        sort: Iterable[SortKey] | None = None,
        limit: int | None = None,
    ) -> JobList:
        """Background jobs matching `filters` (e.g. [("status","eq","Failed")]), newest first by default.

        Returns a list with a `.total` attribute (how many matched on the server, which can exceed
        `limit`).
        """
        server = self._tsc()
        expressions, order = filter_expressions(filters), sort_expressions(sort, JOB_SORT)

        def fetch(number: int, size: int) -> tuple[list[JobRecord], Any]:
            if self.list_format == "json":
                query = _Query(number, size, expressions, order)
                return json_pages.job_page(json_pages.get_json(server.jobs, server.jobs.baseurl, query))
            items, pagination = server.jobs.get(req_options=_Query(number, size, expressions, order))
            return [background_job_record(j) for j in items], pagination

        jobs, total = await self._paged(self._ctx("listing jobs"), fetch, limit=limit)
        return JobList(jobs, total)

    async def cancel_job(self, job_id: str) -> None:
        """Ask Tableau to cancel a job (not retried automatically; check get_job afterwards)."""
        server = self._tsc()
        await self._call(self._item_ctx("job", job_id, "cancelling"), server.jobs.cancel, job_id)


def _xml_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _skip_unused_response_logging(server: TSC.Server) -> None:
    """Stop TSC 0.42 from re-parsing and re-serialising every response body for a log line it never emits.

    `Endpoint._make_request` calls `log_response_safely()` on every response, which parses the
    whole body with defusedxml and serialises it again (`helpers.strings.redact_xml`) only to bind
    the result to a local variable whose log call is commented out. On a 1000-item page that is
    about 60% of the client's CPU time, and it holds the GIL, so concurrent pages serialise on it.
    Overriding the method on this Server's endpoint instances (not the class) changes nothing else.
    """

    def skip(response: Any) -> str:
        return ""

    seen: set[int] = set()
    stack = [value for value in vars(server).values() if isinstance(value, Endpoint)]
    while stack:
        endpoint = stack.pop()
        if id(endpoint) in seen:
            continue
        seen.add(id(endpoint))
        endpoint.log_response_safely = skip  # type: ignore[method-assign]
        stack.extend(value for value in vars(endpoint).values() if isinstance(value, Endpoint))


def _quiet_sign_out(server: TSC.Server) -> None:
    try:
        server.auth.sign_out()  # a no-op when the sign-in itself failed
    except Exception as exc:  # noqa: BLE001  best effort: a failed sign-out must not mask the real error
        log.info("sign-out failed: %s", type(exc).__name__)
    finally:
        server.close()


class _Stub:
    """The minimum TSC needs to address an item by id (permission endpoints read only `.id`)."""

    def __init__(self, item_id: str) -> None:
        self.id = item_id


def _settings_summary(settings: Settings) -> Mapping[str, Any]:  # pragma: no cover - debugging aid
    return {k: v for k, v in settings.model_dump().items() if k != "credentials"}
