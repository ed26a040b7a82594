"""The single, explicit registry of every tool the server offers, in the order they are listed."""

from __future__ import annotations

from server.toolkit import ToolSpec
from tools.approvals import CANCEL_REQUEST, GET_REQUEST
from tools.budget import with_clipped_output
from tools.content import FIND_OWNERS
from tools.directory import LIST_GROUPS, LIST_USERS
from tools.groups import ADD_USER_TO_GROUP
from tools.jobs import CANCEL_JOB, GET_JOB, LIST_JOBS, REFRESH_AND_WAIT
from tools.lifecycle import CREATE_USER, REMOVE_USER_FROM_GROUP, UPDATE_USER_SITE_ROLE
from tools.listing import LIST_CONTENT
from tools.ownership import TRANSFER_CONTENT_OWNERSHIP
from tools.permissions import INSPECT_PERMISSIONS
from tools.site import LIST_REFRESH_TASKS, WHOAMI
from tools.sync import SYNC_GROUP_MEMBERS

_SPECS: tuple[ToolSpec, ...] = (
    LIST_CONTENT,
    FIND_OWNERS,
    LIST_USERS,
    LIST_GROUPS,
    INSPECT_PERMISSIONS,
    LIST_JOBS,
    GET_JOB,
    LIST_REFRESH_TASKS,
    REFRESH_AND_WAIT,
    CANCEL_JOB,
    ADD_USER_TO_GROUP,
    REMOVE_USER_FROM_GROUP,
    CREATE_USER,
    UPDATE_USER_SITE_ROLE,
    SYNC_GROUP_MEMBERS,
    TRANSFER_CONTENT_OWNERSHIP,
    GET_REQUEST,
    CANCEL_REQUEST,
    WHOAMI,
)
# Every result has its long strings cut with a marker (tools/budget.py), whichever tool made it.
TOOLS: tuple[ToolSpec, ...] = tuple(with_clipped_output(spec) for spec in _SPECS)

TOOLS_BY_NAME: dict[str, ToolSpec] = {spec.name: spec for spec in TOOLS}
