"""What a signed-in user may change. Reads are open to every signed-in user except admin-only lists.

Simplified from Tableau's effective-permission rules (semantics §4.3): administrators may do
anything; content may be changed by its owner, by the owner of its project (or any ancestor
project: project leaders), or by a user with an explicit Allow (and no Deny) for the capability,
directly or through a group. Viewers and Unlicensed users never write.
"""

from __future__ import annotations

from . import model as m
from .errors import ApiError

NON_WRITERS = frozenset({"Viewer", "Unlicensed"})
PUBLISHERS = frozenset({"Creator", "ExplorerCanPublish"}) | m.ADMIN_ROLES


def is_admin(user: m.User) -> bool:
    return user.site_role in m.ADMIN_ROLES


def denied(detail: str) -> ApiError:
    return ApiError(403, "403000", "Forbidden", detail)


def require_admin(user: m.User, action: str) -> None:
    if not is_admin(user):
        raise denied(f"Only site administrators can {action}; '{user.name}' is {user.site_role}.")


def leads(state: m.SiteState, user: m.User, project_id: str | None) -> bool:
    seen = set()
    while project_id and project_id not in seen:
        seen.add(project_id)
        project = state.projects.get(project_id)
        if project is None:
            return False
        if project.owner_id == user.id:
            return True
        rules = state.permissions.get(("projects", project.id), {})
        if _allowed(state, user, rules, "ProjectLeader"):
            return True
        project_id = project.parent_id
    return False


def _allowed(state: m.SiteState, user: m.User, rules: m.Rules, capability: str) -> bool:
    mine = rules.get(("user", user.id), {}).get(capability)
    if mine is not None:
        return mine == "Allow"  # a user rule overrides group rules
    modes = {rules.get(("group", g.id), {}).get(capability) for g in state.groups_of(user.id)}
    return "Allow" in modes and "Deny" not in modes


def may_change(
    state: m.SiteState,
    user: m.User,
    resource: str,
    item_id: str,
    owner_id: str | None,
    project_id: str | None,
    capability: str = "Write",
) -> bool:
    if is_admin(user):
        return True
    if user.site_role in NON_WRITERS:
        return False
    if owner_id == user.id or leads(state, user, project_id):
        return True
    return _allowed(state, user, state.permissions.get((resource, item_id), {}), capability)


def require_change(
    state: m.SiteState,
    user: m.User,
    resource: str,
    item_id: str,
    owner_id: str | None,
    project_id: str | None,
    capability: str = "Write",
) -> None:
    if not may_change(state, user, resource, item_id, owner_id, project_id, capability):
        raise denied(f"'{user.name}' may not change {resource[:-1]} '{item_id}' (needs {capability}).")
