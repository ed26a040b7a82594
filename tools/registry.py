"""The single, explicit registry of every tool the server offers, in the order they are listed."""

from __future__ import annotations

from server.toolkit import ToolSpec
from tools.approvals import GET_REQUEST
from tools.content import FIND_OWNERS, LIST_CONTENT
from tools.directory import LIST_GROUPS, LIST_USERS
from tools.groups import ADD_USER_TO_GROUP
from tools.jobs import GET_JOB, LIST_JOBS, REFRESH_AND_WAIT
from tools.permissions import INSPECT_PERMISSIONS

TOOLS: tuple[ToolSpec, ...] = (
    LIST_CONTENT,
    FIND_OWNERS,
    LIST_USERS,
    LIST_GROUPS,
    INSPECT_PERMISSIONS,
    LIST_JOBS,
    GET_JOB,
    REFRESH_AND_WAIT,
    ADD_USER_TO_GROUP,
    GET_REQUEST,
)

TOOLS_BY_NAME: dict[str, ToolSpec] = {spec.name: spec for spec in TOOLS}
