"""The Tableau access layer: one shared session, retries, rate limits, parallel paging, a request observer.

This package is the only code that touches tableauserverclient. Tools use `TableauClient`:

    from server.config import Settings
    from server.tableau import TableauClient, NotFound

    async with TableauClient(Settings.from_env()) as client:
        async with client.operation("call_42"):
            workbooks = await client.list_content("workbook")
"""

from .client import TableauClient
from .errors import (
    BadConfiguration,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    TableauError,
    TableauUnavailable,
    TimedOut,
)
from .records import (
    ContentKind,
    ContentRecord,
    GroupRecord,
    JobList,
    JobRecord,
    PermissionRule,
    ProjectNode,
    ProjectTree,
    RefreshStarted,
    ServerInfo,
    SiteIdentity,
    UserRecord,
)
from .transport import RequestEvent

__all__ = [
    "BadConfiguration",
    "Conflict",
    "ContentKind",
    "ContentRecord",
    "Forbidden",
    "GroupRecord",
    "InvalidRequest",
    "JobList",
    "JobRecord",
    "NotFound",
    "PermissionRule",
    "ProjectNode",
    "ProjectTree",
    "RateLimited",
    "RefreshStarted",
    "RequestEvent",
    "ServerInfo",
    "SiteIdentity",
    "TableauClient",
    "TableauError",
    "TableauUnavailable",
    "TimedOut",
    "UserRecord",
]
